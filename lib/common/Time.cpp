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
    const int year = tm.tm_year + 1900;
    if (year < 0 || year > 9999) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", year, tm.tm_mon + 1, tm.tm_mday,
            tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
        return buf;
    }
    // What the snprintf above writes, digit by digit: listings format hundreds of thousands of times.
    std::string out = "0000-00-00T00:00:00.000Z";
    auto digits = [&](std::size_t end, int value, int width) {
        for (int i = 0; i < width; ++i, value /= 10) {
            out[end - i] = static_cast<char>('0' + value % 10);
        }
    };
    digits(3, year, 4);
    digits(6, tm.tm_mon + 1, 2);
    digits(9, tm.tm_mday, 2);
    digits(12, tm.tm_hour, 2);
    digits(15, tm.tm_min, 2);
    digits(18, tm.tm_sec, 2);
    digits(22, frac, 3);
    return out;
}

namespace {
/** The longest relative time accepted ("36525d"): a hundred years, far from any overflow of milliseconds. */
constexpr long long MaxRelativeSeconds = 36525LL * 86400;
constexpr int MinYear = 1970;
constexpr int MaxYear = 9999;

/** Digits only (the regexes guarantee that); nullopt when the value exceeds `max`, never an overflow. */
std::optional<long long> boundedNumber(const std::string& digits, long long max)
{
    long long value = 0;
    for (char c : digits) {
        value = value * 10 + (c - '0');
        if (value > max) {
            return std::nullopt;
        }
    }
    return value;
}

bool isLeap(int year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int daysIn(int year, int month)
{
    static constexpr int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    return month == 2 && isLeap(year) ? 29 : days[month - 1];
}
} // namespace

std::optional<TimePoint> parseTime(const std::string& text, TimePoint reference)
{
    static const std::regex relative(R"(^(\d+)([smhd])$)");
    static const std::regex absolute(
        R"(^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?Z?)?$)");
    std::smatch m;
    if (std::regex_match(text, m, relative)) {
        const long long unit = m[2] == "s" ? 1 : m[2] == "m" ? 60 : m[2] == "h" ? 3600 : 86400;
        auto n = boundedNumber(m[1], MaxRelativeSeconds / unit);
        if (!n) {
            return std::nullopt;
        }
        return reference - std::chrono::milliseconds(*n * unit * 1000);
    }
    if (std::regex_match(text, m, absolute)) {
        // Every field has at most 4 digits (the regex), so std::stoi cannot throw or overflow here.
        const int year = std::stoi(m[1]);
        const int month = std::stoi(m[2]);
        const int day = std::stoi(m[3]);
        std::tm tm {};
        tm.tm_hour = m[4].matched ? std::stoi(m[4]) : 0;
        tm.tm_min = m[5].matched ? std::stoi(m[5]) : 0;
        tm.tm_sec = m[6].matched ? std::stoi(m[6]) : 0;
        if (year < MinYear || year > MaxYear || month < 1 || month > 12 || day < 1 || day > daysIn(year, month)
            || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) {
            return std::nullopt;
        }
        tm.tm_year = year - 1900;
        tm.tm_mon = month - 1;
        tm.tm_mday = day;
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
