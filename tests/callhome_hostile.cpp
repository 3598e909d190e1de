// Isolation: hostile approved SSH devices (tests/hostile/hostile_ssh.py) against the real station in-process, with
// real devices (OpenSSH sshd + netconfd) using it at the same time. Written to the requirement of DESIGN.md's
// engine ("a device that exceeds [its bounds] is disconnected, alone"), not to what the first engine does.
#include "callhome_hostile_scenario.h"
#include <catch2/catch.hpp>
#include <iostream>

using namespace callhome;
using namespace callhome::test;
using namespace callhome::test::hostile;

TEST_CASE("SSH: hostile approved devices (NETCONF level) do not hold up, disconnect or hide real devices")
{
    const std::string mode = GENERATE(
        as<std::string> {}, "half-message", "never-read", "notification-flood", "huge-message", "no-close-reply");
    INFO("mode " << mode);
    CallhomeFixture f;
    configureKeepalives(f);
    RealDevices real(f);
    // declared after the fixture and the real devices: stopped first, so teardown never waits on them
    HostileSwarm swarm(f, HostileKind::Ssh, mode);
    real.check("ssh " + mode);
    swarm.checkRevoked("ssh " + mode); // an operator can still get rid of them, each at once
    real.checkSteady("after the hostile devices were revoked");
}
