#include "common/Time.h"
#include <catch2/catch.hpp>
#include <cstdio>
#include <ctime>

using namespace callhome;

TEST_CASE("ISO 8601 round trip")
{
    TimePoint t(std::chrono::milliseconds(1795740915123));
    CHECK(toIso8601(t) == "2026-11-27T00:55:15.123Z");
    CHECK(parseTime("2026-11-27T00:55:15.123Z", now()) == t);
    CHECK(parseTime("2026-11-27", now()) == TimePoint(std::chrono::milliseconds(1795737600000)));
}

TEST_CASE("relative times")
{
    TimePoint ref(std::chrono::milliseconds(10'000'000));
    CHECK(parseTime("15m", ref) == ref - std::chrono::minutes(15));
    CHECK(parseTime("2h", ref) == ref - std::chrono::hours(2));
    CHECK(parseTime("30s", ref) == ref - std::chrono::seconds(30));
}

TEST_CASE("bad times")
{
    for (const char* bad : { "", "yesterday", "2026-13-01", "2026-11-22T25:00", "15x", "-5m" }) {
        INFO(bad);
        CHECK_FALSE(parseTime(bad, now()));
    }
}

TEST_CASE("time ranges are checked, never overflow or throw")
{
    const TimePoint ref(std::chrono::milliseconds(1795740915123));
    for (const char* bad : { "99999999999999999999m", "9223372036854775807s", "36526d", "876601h", "52596001m",
             "3155760001s", "1969-12-31", "0000-01-01", "10000-01-01", "2026-02-29", "2026-04-31", "2026-00-10",
             "2026-01-01T24:00", "2026-01-01T12:60" }) {
        INFO(bad);
        CHECK_NOTHROW(parseTime(bad, ref));
        CHECK_FALSE(parseTime(bad, ref));
    }
    CHECK(parseTime("36525d", ref) == ref - std::chrono::hours(24 * 36525));
    CHECK(parseTime("3155760000s", ref) == ref - std::chrono::seconds(3155760000LL));
    CHECK(parseTime("0000015m", ref) == ref - std::chrono::minutes(15));
    CHECK(parseTime("2024-02-29", ref));
    CHECK(parseTime("2000-02-29", ref));
    CHECK_FALSE(parseTime("1900-02-29", ref));
    CHECK(parseTime("9999-12-31T23:59:59Z", ref));
    CHECK(parseTime("1970-01-01", ref) == TimePoint(std::chrono::milliseconds(0)));
}

TEST_CASE("ISO 8601 formatting matches strftime-style formatting across dates")
{
    // toIso8601 writes its digits itself (listings format hundreds of thousands of times): compare it with the
    // snprintf form over leap days, year ends, the epoch and far dates, and negative milliseconds.
    for (long long ms : { 0LL, 999LL, 1000LL, -1LL, -1001LL, 951782400000LL /* 2000-02-29 */, 1767225599999LL,
             1767225600000LL, 4102444800123LL, 253402300799999LL /* 9999-12-31T23:59:59.999 */ }) {
        TimePoint t { std::chrono::milliseconds(ms) };
        std::time_t secs = static_cast<std::time_t>(ms / 1000);
        int frac = static_cast<int>(ms % 1000);
        if (frac < 0) {
            frac += 1000;
            --secs;
        }
        std::tm tm {};
        gmtime_r(&secs, &tm);
        char buf[64];
        std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
            tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
        INFO(ms);
        CHECK(toIso8601(t) == buf);
    }
    CHECK(toIso8601(TimePoint { std::chrono::milliseconds(951782400007LL) }) == "2000-02-29T00:00:00.007Z");
}
