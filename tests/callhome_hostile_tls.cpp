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
