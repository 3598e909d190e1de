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
