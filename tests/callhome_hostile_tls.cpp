// Isolation over TLS: hostile approved TLS devices (tests/hostile/hostile_tls.py, self-signed identities pinned by
// approval) against the real station in-process, with real stunnel + netconfd devices using it at the same time.
#include "callhome_hostile_scenario.h"
#include <catch2/catch.hpp>

using namespace callhome;
using namespace callhome::test;
using namespace callhome::test::hostile;

TEST_CASE("TLS: a hostile approved device does not hold up, disconnect or hide real devices")
{
    const std::string mode = GENERATE(
        as<std::string> {}, "half-message", "never-read", "notification-flood", "huge-message", "no-close-reply");
    INFO("mode " << mode);
    CallhomeFixture f(true);
    configureKeepalives(f);
    RealDevices real(f);
    HostileSwarm swarm(f, HostileKind::Tls, mode);
    real.check("tls " + mode);
    swarm.checkRevoked("tls " + mode);
    real.checkSteady("after the hostile devices were revoked");
}

TEST_CASE("TLS: a device that answers nothing is closed by the NETCONF probe within keepalive interval x (count + 1)")
{
    CallhomeFixture f(true);
    configureKeepalives(f);
    HostileSwarm swarm(f, HostileKind::Tls, "no-close-reply", 1); // its TLS is alive, its NETCONF never answers
    const auto id = swarm.ids.at(0);
    REQUIRE(within(5s, [&] { return connected(f, id); }));
    // one interval of silence before the first probe, count unanswered ones, and 2 s for the close itself
    const auto bound = kKeepaliveInterval * (kKeepaliveCountMax + 1) + 2s;
    CHECK(within(bound, [&] { return !connected(f, id); }));
    auto closed = f.eventsOf(inventory::EventKind::SessionClosed, id);
    REQUIRE_FALSE(closed.empty());
    CHECK_THAT(closed.back().detail, Catch::Contains("no answer to 3 keepalives"));
}
