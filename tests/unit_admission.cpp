#include "common/Address.h"
#include "common/Error.h"
#include "config/Config.h"
#include "server/Admission.h"
#include <catch2/catch.hpp>
#include <thread>

using namespace callhome;
using namespace callhome::server;
using namespace std::chrono_literals;

namespace {
/** A fixed origin: every test drives time itself. */
const SteadyTime T0 = SteadyTime {} + 1000h;

AdmissionLimits generous()
{
    AdmissionLimits l;
    l.maxHandshakes = 1000;
    l.perSourceHandshakes = 0;
    l.perSourceRate = 0;
    l.perSourceBurst = 1;
    l.blockAfterFailures = 0;
    return l;
}

std::optional<Refusal> refusal(Admission& a, const std::string& address, SteadyTime now)
{
    return a.admit(address, now).refusal;
}
} // namespace

TEST_CASE("sourceKey: IPv4 /32, IPv6 /64, IPv4-mapped as IPv4")
{
    CHECK(sourceKey("192.0.2.7") == "192.0.2.7");
    CHECK(sourceKey("192.0.2.7/32") == "192.0.2.7");
    CHECK(sourceKey("::ffff:192.0.2.7") == "192.0.2.7");
    CHECK(sourceKey("2001:db8:1:2::5") == "2001:db8:1:2::/64");
    CHECK(sourceKey("2001:0DB8:0001:0002:aaaa:bbbb:cccc:dddd") == "2001:db8:1:2::/64");
    CHECK(sourceKey("2001:db8:1:2::/64") == "2001:db8:1:2::/64");
    CHECK(sourceKey("2001:db8:1:2:ffff::1/64") == "2001:db8:1:2::/64");
    CHECK(sourceKey("[2001:db8::1]") == "2001:db8::/64");
    CHECK(sourceKey("fe80::1%eth0") == "fe80::/64");
    CHECK(sourceKey("::1") == "::/64");
    for (const auto* bad : { "", "localhost", "192.0.2", "192.0.2.7/24", "2001:db8::/48", "2001:db8::1/", " 192.0.2.7",
             "::ffff:192.0.2.7/64", "192.0.2.7:4334" }) {
        INFO(bad);
        CHECK_THROWS_AS(sourceKey(bad), UsageError);
    }
    CHECK_THROWS_WITH(sourceKey("2001:db8::/48"), Catch::Contains("/64"));
}

TEST_CASE("handshake capacity from the open-file limit")
{
    CHECK(handshakeCapacityFromFdLimit(0) == 1);
    CHECK(handshakeCapacityFromFdLimit(64) == 1);
    CHECK(handshakeCapacityFromFdLimit(70) == 1);
    CHECK(handshakeCapacityFromFdLimit(1024) == 160); // (1024 - 64) / 3 / 2
    CHECK(handshakeCapacityFromFdLimit(4096) == 672);
    CHECK(handshakeCapacityFromFdLimit(1 << 20) == MaxDerivedHandshakes);
    CHECK(handshakeCapacityFromFdLimit(RLIM_INFINITY) == MaxDerivedHandshakes);
}

TEST_CASE("limits from the configuration")
{
    config::AdmissionSettings settings;
    auto l = admissionLimits(settings, 1024);
    CHECK(l.maxHandshakes == 160);
    CHECK(l.perSourceHandshakes == 64);
    CHECK(l.perSourceRate == 50.0);
    CHECK(l.perSourceBurst == 200.0);
    CHECK(l.blockAfterFailures == 50);
    CHECK(l.failureWindow == 60s);
    CHECK(l.blockDuration == 600s);
    settings.maxHandshakes = 10;
    settings.perSourceRate = 0.5;
    l = admissionLimits(settings, 1024);
    CHECK(l.maxHandshakes == 10);
    CHECK(l.perSourceRate == 0.5);
}

TEST_CASE("global cap on handshakes in flight")
{
    auto l = generous();
    l.maxHandshakes = 3;
    Admission a(l);
    CHECK(a.admit("192.0.2.1", T0).admitted());
    CHECK(a.admit("192.0.2.2", T0).admitted());
    CHECK(a.admit("2001:db8::1", T0).admitted());
    CHECK(refusal(a, "192.0.2.4", T0) == Refusal::GlobalCap);
    CHECK(refusal(a, "192.0.2.1", T0) == Refusal::GlobalCap);
    CHECK(a.inFlight() == 3);
    CHECK_FALSE(a.finished("192.0.2.2", false, T0));
    CHECK(a.inFlight() == 2);
    CHECK(a.admit("192.0.2.4", T0).admitted());
    // a finished() without an admit() is ignored: no slot leaks either way
    CHECK_FALSE(a.finished("198.51.100.1", true, T0));
    CHECK_FALSE(a.finished("192.0.2.2", false, T0));
    CHECK(a.inFlight() == 3);
}

TEST_CASE("per-source cap on handshakes in flight")
{
    auto l = generous();
    l.perSourceHandshakes = 2;
    Admission a(l);
    CHECK(a.admit("192.0.2.1", T0).admitted());
    CHECK(a.admit("192.0.2.1", T0).admitted());
    CHECK(refusal(a, "192.0.2.1", T0) == Refusal::SourceCap);
    CHECK(a.admit("192.0.2.2", T0).admitted());
    a.finished("192.0.2.1", false, T0);
    CHECK(a.admit("192.0.2.1", T0).admitted());
}

TEST_CASE("IPv6 sources are grouped by /64, IPv4-mapped ones count as IPv4")
{
    auto l = generous();
    l.perSourceHandshakes = 2;
    Admission a(l);
    auto v = a.admit("2001:db8:1:2::1", T0);
    CHECK(v.admitted());
    CHECK(v.key == "2001:db8:1:2::/64");
    CHECK(a.admit("2001:db8:1:2:aaaa::99", T0).admitted());
    CHECK(refusal(a, "2001:db8:1:2:ffff:ffff:ffff:ffff", T0) == Refusal::SourceCap);
    CHECK(a.admit("2001:db8:1:3::1", T0).admitted()); // the next /64 is another source
    CHECK(a.admit("::ffff:192.0.2.7", T0).key == "192.0.2.7");
    CHECK(a.admit("192.0.2.7", T0).admitted());
    CHECK(refusal(a, "::ffff:192.0.2.7", T0) == Refusal::SourceCap);
    // finished() with the other spelling releases the same slot
    a.finished("192.0.2.7", false, T0);
    CHECK(a.admit("::ffff:192.0.2.7", T0).admitted());
    CHECK(a.sourceCount() == 3);
}

TEST_CASE("token bucket: burst, then the refill rate")
{
    auto l = generous();
    l.perSourceRate = 2; // per second
    l.perSourceBurst = 5;
    Admission a(l);
    auto admitOne = [&](SteadyTime t) {
        auto v = a.admit("192.0.2.1", t);
        if (v.admitted()) {
            a.finished("192.0.2.1", false, t);
        }
        return v.refusal;
    };
    for (int i = 0; i < 5; ++i) {
        CHECK_FALSE(admitOne(T0));
    }
    CHECK(admitOne(T0) == Refusal::SourceRate);
    CHECK(admitOne(T0 + 100ms) == Refusal::SourceRate); // 0.2 tokens
    CHECK_FALSE(admitOne(T0 + 600ms)); // 1.2 tokens
    CHECK(admitOne(T0 + 600ms) == Refusal::SourceRate);
    CHECK(admitOne(T0 + 900ms) == Refusal::SourceRate); // 0.8
    CHECK_FALSE(admitOne(T0 + 1100ms)); // 1.2
    // other sources have their own bucket
    CHECK(a.admit("192.0.2.2", T0 + 1100ms).admitted());
    // a long pause refills up to the burst, not beyond
    for (int i = 0; i < 5; ++i) {
        CHECK_FALSE(admitOne(T0 + 1h));
    }
    CHECK(admitOne(T0 + 1h) == Refusal::SourceRate);
}

TEST_CASE("a source failing N times within the window is blocked, once")
{
    auto l = generous();
    l.blockAfterFailures = 3;
    l.failureWindow = 60s;
    l.blockDuration = 600s;
    Admission a(l);
    auto fail = [&](const std::string& address, SteadyTime t) {
        REQUIRE(a.admit(address, t).admitted());
        return a.finished(address, true, t);
    };
    CHECK_FALSE(fail("192.0.2.9", T0));
    CHECK_FALSE(fail("192.0.2.9", T0 + 10s));
    // a success in between neither counts nor resets
    REQUIRE(a.admit("192.0.2.9", T0 + 20s).admitted());
    CHECK_FALSE(a.finished("192.0.2.9", false, T0 + 20s));
    // two handshakes in flight when the block comes: the later failure does not decide it again
    REQUIRE(a.admit("192.0.2.9", T0 + 30s).admitted());
    auto d = fail("192.0.2.9", T0 + 30s);
    REQUIRE(d);
    CHECK(d->key == "192.0.2.9");
    CHECK(d->until == T0 + 630s);
    CHECK(d->duration == 600s);
    CHECK(d->failures == 3);
    CHECK(d->reason == "3 failed handshakes within 60 s");
    CHECK_FALSE(a.finished("192.0.2.9", true, T0 + 31s));

    CHECK(refusal(a, "192.0.2.9", T0 + 31s) == Refusal::Blocked);
    CHECK(a.isBlocked("192.0.2.9", T0 + 31s));
    CHECK(a.admit("192.0.2.10", T0 + 31s).admitted());
    auto list = a.blocked(T0 + 31s);
    REQUIRE(list.size() == 1);
    CHECK(list[0].key == "192.0.2.9");
    CHECK(list[0].until == T0 + 630s);
    CHECK_FALSE(list[0].confirmed);

    // the block expires on its own; the source starts with a clean count
    CHECK(refusal(a, "192.0.2.9", T0 + 629s) == Refusal::Blocked);
    CHECK_FALSE(a.isBlocked("192.0.2.9", T0 + 630s));
    CHECK(a.blocked(T0 + 630s).empty());
    CHECK_FALSE(fail("192.0.2.9", T0 + 630s));
    CHECK_FALSE(fail("192.0.2.9", T0 + 631s));
    CHECK(fail("192.0.2.9", T0 + 632s));

    auto s = a.takeSummary();
    CHECK(s.blocks == 2);
    CHECK(s.failures == 7);
    CHECK(s.refusedFor(Refusal::Blocked) == 2);
}

TEST_CASE("failures spread out over more than the window do not block")
{
    auto l = generous();
    l.blockAfterFailures = 3;
    l.failureWindow = 60s;
    Admission a(l);
    for (int i = 0; i < 20; ++i) {
        const auto t = T0 + std::chrono::seconds(31 * i); // at most 2 per window
        REQUIRE(a.admit("192.0.2.9", t).admitted());
        CHECK_FALSE(a.finished("192.0.2.9", true, t));
    }
    CHECK_FALSE(a.isBlocked("192.0.2.9", T0 + 1h));
    // blockAfterFailures 0: never
    l.blockAfterFailures = 0;
    a.setLimits(l);
    for (int i = 0; i < 100; ++i) {
        REQUIRE(a.admit("192.0.2.8", T0).admitted());
        CHECK_FALSE(a.finished("192.0.2.8", true, T0));
    }
}

TEST_CASE("block, unblock and reconcile with the inventory")
{
    auto l = generous();
    l.blockAfterFailures = 1;
    Admission a(l);
    CHECK(a.block("2001:db8:1:2::/64", T0 + 60s, "loaded", T0));
    CHECK(a.isBlocked("2001:db8:1:2::77", T0));
    CHECK(refusal(a, "2001:db8:1:2::77", T0) == Refusal::Blocked);
    CHECK_FALSE(a.block("192.0.2.1", T0, "already over", T0));
    CHECK_THROWS_AS(a.block("not an address", T0 + 1s, "", T0), UsageError);

    CHECK(a.unblock("2001:db8:1:2::1", T0));
    CHECK_FALSE(a.unblock("2001:db8:1:2::1", T0));
    CHECK_FALSE(a.unblock("192.0.2.200", T0));
    CHECK(a.admit("2001:db8:1:2::77", T0).admitted());

    // a block decided here is kept until the inventory has shown it, and lifted when the inventory drops it
    REQUIRE(a.admit("192.0.2.9", T0).admitted());
    auto d = a.finished("192.0.2.9", true, T0);
    REQUIRE(d);
    CHECK(a.reconcile({}, T0 + 1s).empty());
    CHECK(a.isBlocked("192.0.2.9", T0 + 1s));
    CHECK(
        a.reconcile({ { "192.0.2.9", d->until, d->reason }, { "198.51.100.4", T0 + 50s, "from another run" } }, T0 + 2s)
            .empty());
    auto list = a.blocked(T0 + 2s);
    REQUIRE(list.size() == 2);
    CHECK(list[0].key == "192.0.2.9");
    CHECK(list[0].confirmed);
    CHECK(list[1].key == "198.51.100.4");
    CHECK(list[1].reason == "from another run");
    // operator unblocked 192.0.2.9 with callhomectl
    CHECK(a.reconcile({ { "198.51.100.4", T0 + 50s, "from another run" } }, T0 + 3s)
        == std::vector<std::string> { "192.0.2.9" });
    CHECK_FALSE(a.isBlocked("192.0.2.9", T0 + 3s));
    CHECK(a.isBlocked("198.51.100.4", T0 + 3s));
    // expired persisted rows are ignored
    CHECK(a.reconcile({ { "203.0.113.1", T0, "old" } }, T0 + 3s) == std::vector<std::string> { "198.51.100.4" });
    CHECK(a.blocked(T0 + 3s).empty());
}

TEST_CASE("the per-source table is bounded")
{
    auto l = generous();
    l.maxSources = 4;
    l.failureWindow = 60s;
    Admission a(l);
    // four sources with a handshake each in flight: nothing can be evicted, a fifth source is refused
    for (int i = 1; i <= 4; ++i) {
        REQUIRE(a.admit("192.0.2." + std::to_string(i), T0).admitted());
    }
    CHECK(refusal(a, "192.0.2.5", T0) == Refusal::GlobalCap);
    CHECK(a.sourceCount() == 4);
    // known sources still get in
    CHECK(a.admit("192.0.2.1", T0).admitted());
    // once one is idle, the least recently active idle entry makes room
    a.finished("192.0.2.3", false, T0);
    CHECK(a.admit("192.0.2.5", T0 + 1s).admitted());
    CHECK(a.sourceCount() == 4);
    // a blocked source is not evicted
    CHECK(a.block("192.0.2.200", T0 + 1h, "kept", T0 + 1s) == false); // full of busy sources
    a.finished("192.0.2.2", false, T0 + 1s);
    CHECK(a.block("192.0.2.200", T0 + 1h, "kept", T0 + 1s));
    a.finished("192.0.2.1", false, T0 + 1s);
    a.finished("192.0.2.1", false, T0 + 1s);
    a.finished("192.0.2.4", false, T0 + 1s);
    a.finished("192.0.2.5", false, T0 + 1s);
    for (int i = 10; i < 200; ++i) {
        auto address = "198.51.100." + std::to_string(i);
        REQUIRE(a.admit(address, T0 + 2s).admitted());
        a.finished(address, false, T0 + 2s);
        REQUIRE(a.sourceCount() <= 4);
    }
    CHECK(a.isBlocked("192.0.2.200", T0 + 2s));
    // idle entries are swept once they have been idle for the failure window
    a.admit("203.0.113.1", T0 + 10min);
    CHECK(a.sourceCount() == 2); // the blocked one and the new one
    CHECK(a.inFlight() == 1);
}

TEST_CASE("summaries count since the previous one")
{
    auto l = generous();
    l.maxHandshakes = 2;
    l.perSourceHandshakes = 1;
    Admission a(l);
    REQUIRE(a.admit("192.0.2.1", T0).admitted());
    for (int i = 0; i < 7; ++i) {
        CHECK(refusal(a, "192.0.2.1", T0) == Refusal::SourceCap);
    }
    REQUIRE(a.admit("192.0.2.2", T0).admitted());
    CHECK(refusal(a, "192.0.2.2", T0) == Refusal::GlobalCap);
    CHECK(refusal(a, "192.0.2.3", T0) == Refusal::GlobalCap);
    a.finished("192.0.2.2", true, T0);

    auto s = a.takeSummary();
    CHECK(s.admitted == 2);
    CHECK(s.refusedFor(Refusal::SourceCap) == 7);
    CHECK(s.refusedFor(Refusal::GlobalCap) == 2);
    CHECK(s.refusedFor(Refusal::SourceRate) == 0);
    CHECK(s.refusedTotal() == 9);
    CHECK(s.failures == 1);
    CHECK(s.inFlight == 1);
    CHECK(s.sources == 2);
    REQUIRE(s.topRefused.size() == 2); // 192.0.2.3 was refused before it had an entry
    CHECK(s.topRefused[0] == std::pair<std::string, uint64_t> { "192.0.2.1", 7 });
    CHECK(s.topRefused[1] == std::pair<std::string, uint64_t> { "192.0.2.2", 1 });
    CHECK_FALSE(s.quiet());
    CHECK(s.describe()
        == "refused 9 (global-cap 2, source-cap 7, source-rate 0, blocked 0), admitted 2, failed handshakes 1, new "
           "blocks 0, in flight 1, sources 2; most refused: 192.0.2.1 (7), 192.0.2.2 (1)");

    auto next = a.takeSummary();
    CHECK(next.quiet());
    CHECK(next.admitted == 0);
    CHECK(next.topRefused.empty());
    CHECK(next.inFlight == 1); // a gauge, not a count
    CHECK(refusal(a, "192.0.2.1", T0) == Refusal::SourceCap);
    auto third = a.takeSummary();
    CHECK(third.refusedTotal() == 1);
    CHECK(third.topRefused == std::vector<std::pair<std::string, uint64_t>> { { "192.0.2.1", 1 } });
}

TEST_CASE("setLimits applies to later decisions")
{
    auto l = generous();
    l.perSourceHandshakes = 1;
    Admission a(l);
    REQUIRE(a.admit("192.0.2.1", T0).admitted());
    CHECK(refusal(a, "192.0.2.1", T0) == Refusal::SourceCap);
    l.perSourceHandshakes = 2;
    a.setLimits(l);
    CHECK(a.limits().perSourceHandshakes == 2);
    CHECK(a.admit("192.0.2.1", T0).admitted());
    // a lower burst caps a fuller bucket: 192.0.2.5 starts with 100 tokens, then gets one
    l.perSourceBurst = 100;
    a.setLimits(l);
    REQUIRE(a.admit("192.0.2.5", T0).admitted());
    a.finished("192.0.2.5", false, T0);
    l.perSourceRate = 1;
    l.perSourceBurst = 1;
    a.setLimits(l);
    CHECK(a.admit("192.0.2.5", T0).admitted());
    a.finished("192.0.2.5", false, T0);
    CHECK(refusal(a, "192.0.2.5", T0) == Refusal::SourceRate);
}

TEST_CASE("concurrent admit and finished keep the counts exact")
{
    auto l = generous();
    l.maxHandshakes = 1'000'000;
    Admission a(l);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&a, t] {
            for (int i = 0; i < 5000; ++i) {
                auto address = "10.0." + std::to_string(t) + "." + std::to_string(i % 50);
                if (a.admit(address, T0).admitted()) {
                    a.finished(address, false, T0);
                }
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    CHECK(a.inFlight() == 0);
    CHECK(a.takeSummary().admitted == 20000);
}
