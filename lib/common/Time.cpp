#include "common/Time.h"
#include <cstdio>
#include <ctime>
#include <regex>

namespace callhome {
TimePoint now()
{
    return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

std::string toIso8601(TimePoint t)
{
    auto ms = t.time_since_epoch().count();
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    int frac = static_cast<int>(ms % 1000);
    if (frac < 0) {
        frac += 1000;
        --secs;
    }
    std::tm tm {};
    gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
        tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
    return buf;
}

std::optional<TimePoint> parseTime(const std::string& text, TimePoint reference)
{
    static const std::regex relative(R"(^(\d+)([smhd])$)");
    static const std::regex absolute(
        R"(^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?Z?)?$)");
    std::smatch m;
    if (std::regex_match(text, m, relative)) {
        long long n = std::stoll(m[1]);
        long long unit = m[2] == "s" ? 1 : m[2] == "m" ? 60 : m[2] == "h" ? 3600 : 86400;
        return reference - std::chrono::milliseconds(n * unit * 1000);
    }
    if (std::regex_match(text, m, absolute)) {
        std::tm tm {};
        tm.tm_year = std::stoi(m[1]) - 1900;
        tm.tm_mon = std::stoi(m[2]) - 1;
        tm.tm_mday = std::stoi(m[3]);
        tm.tm_hour = m[4].matched ? std::stoi(m[4]) : 0;
        tm.tm_min = m[5].matched ? std::stoi(m[5]) : 0;
        tm.tm_sec = m[6].matched ? std::stoi(m[6]) : 0;
        if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59
            || tm.tm_sec > 60) {
            return std::nullopt;
        }
        long long ms = 0;
        if (m[7].matched) {
            auto f = m[7].str();
            f.resize(3, '0');
            ms = std::stoll(f);
        }
        return TimePoint(std::chrono::milliseconds(static_cast<long long>(timegm(&tm)) * 1000 + ms));
    }
    return std::nullopt;
}
} // namespace callhome
