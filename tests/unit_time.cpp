#include "common/Time.h"
#include <catch2/catch.hpp>

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
