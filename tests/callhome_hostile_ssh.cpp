// Isolation at the SSH layer: hostile approved devices that hang SSH itself (a channel window of 0, unanswered
// keepalives and channel requests) against the real station in-process, with real OpenSSH sshd + netconfd devices
// using it at the same time; and the keepalive bound on a hung device.
#include "callhome_hostile_scenario.h"
#include <catch2/catch.hpp>
#include <iostream>

using namespace callhome;
using namespace callhome::test;
using namespace callhome::test::hostile;

TEST_CASE("SSH: hostile approved devices (SSH layer) do not hold up, disconnect or hide real devices")
{
    const std::string mode = GENERATE(as<std::string> {}, "zero-window", "no-keepalive-reply");
    INFO("mode " << mode);
    CallhomeFixture f;
    configureKeepalives(f);
    RealDevices real(f);
    HostileSwarm swarm(f, HostileKind::Ssh, mode);
    real.check("ssh " + mode);
    swarm.checkRevoked("ssh " + mode);
    real.checkSteady("after the hostile devices were revoked");
}

TEST_CASE("SSH: a device whose SSH layer hangs is closed and recorded disconnected within keepalive interval x count")
{
    CallhomeFixture f;
    configureKeepalives(f);
    RealDevices real(f);
    HostilePeer peer(f.dir, HostileKind::Ssh, { .source = hostileSource(0) });
    auto& attempt = approvedHostileAttempt(f, peer, "no-keepalive-reply", "hung", "hello-received");
    const auto start = Clock::now();
    const auto id = f.inventory().findByFingerprint(peer.hostKeyFingerprint())->id;
    REQUIRE(within(5s, [&] { return connected(f, id); }));
    // interval x count, plus one interval for the phase of the first keepalive and 1 s for the close itself
    const auto bound = kKeepaliveInterval * (kKeepaliveCountMax + 1) + 1s;
    bool closed = within(bound, [&] { return !connected(f, id); });
    std::cerr << "[no-keepalive-reply] hung device " << (closed ? "disconnected after " : "STILL connected after ")
              << msSince(start) << " ms (bound " << std::chrono::milliseconds(bound).count() << " ms)\n";
    INFO(attempt.describe());
    CHECK(closed);
    CHECK(attempt.waitExit(2s).has_value()); // its connection was really closed
    CHECK(attempt.has("request-ignored")); // and it was hung: keepalives went unanswered
    CHECK(!f.eventsOf(inventory::EventKind::SessionClosed, id).empty());
    real.checkSteady("after the hung device was closed"); // a device that answers keepalives is kept
}
