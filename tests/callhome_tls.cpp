// TLS call home against real, independent device-side TLS servers on loopback: stunnel (inetd mode) in front of
// yuma123 netconfd, and libnetconf2's own call-home server; identities from scripts/dev-pki.
#include "CallhomeFixture.h"
#include "harness/Nc2Device.h"
#include "harness/StunnelDevice.h"
#include "harness/Util.h"
#include "identity/Certificate.h"
#include "server/SessionRegistry.h"
#include <arpa/inet.h>
#include <catch2/catch.hpp>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace callhome;
using namespace callhome::test;
using namespace std::chrono_literals;
using inventory::DeviceState;
using inventory::EventKind;

namespace {
std::string fingerprintOf(const std::string& pemPath)
{
    return identity::inspectPem(readFile(pemPath)).fingerprint;
}

bool hasBaseCapability(const inventory::Device& d)
{
    return std::any_of(d.capabilities.begin(), d.capabilities.end(),
        [](const auto& c) { return c.rfind("urn:ietf:params:netconf:base:1.", 0) == 0; });
}

StunnelDeviceOptions demandingStation(const DevPki& pki)
{
    return StunnelDeviceOptions { .trustedCaPath = pki.stationCa() };
}
} // namespace

TEST_CASE("TLS: unknown serial is pending, approval gives a NETCONF session; revoke ends it")
{
    CallhomeFixture f(true);
    auto cred = f.pki->device("sn-0001");
    StunnelDevice device(f.dir, cred, demandingStation(*f.pki));

    device.callHome("127.0.0.1", f.portV4()).waitExit(10s);
    auto pending = f.waitForDevice(fingerprintOf(cred.cert));
    CHECK(pending.state == DeviceState::Pending);
    CHECK(pending.transport == inventory::Transport::Tls);
    CHECK(pending.manufacturer == "example");
    CHECK(pending.serial == "SN0001");
    CHECK_THAT(pending.certSubject, Catch::Contains("serialNumber=SN0001") && Catch::Contains("CN=router-sn0001"));
    CHECK_THAT(pending.certIssuer, Catch::Contains("Example Networks IDevID CA"));
    // closed after the handshake: no NETCONF session on our side (stunnel may already have started its subsystem)
    CHECK(f.daemon->registry().size() == 0);
    CHECK(f.eventsOf(EventKind::SessionOpened).empty());

    f.inventory().approve(pending.id, "router-1", std::nullopt);
    device.callHome("127.0.0.1", f.portV4());
    f.waitForSessions(1);
    auto connected = *f.inventory().findById(pending.id);
    CHECK(connected.connected);
    CHECK(hasBaseCapability(connected));
    CHECK(device.peerVerificationFailures() == 0); // the device verified our station certificate

    f.inventory().revoke(pending.id);
    f.waitForSessions(0);
    f.waitForEvent(EventKind::SessionClosed, pending.id);
    device.callHome("127.0.0.1", f.portV4()).waitExit(10s);
    f.waitForEvent(EventKind::Refused, pending.id);
    CHECK(f.eventsOf(EventKind::SessionOpened, pending.id).size() == 1);
}

TEST_CASE("TLS: a pre-provisioned (expected) device is accepted with no manual step")
{
    CallhomeFixture f(true);
    f.inventory().expect({ { "SN0001", "example", "edge-router" } });
    auto cred = f.pki->device("sn-0001");
    StunnelDevice device(f.dir, cred, demandingStation(*f.pki));
    device.callHome("::1", f.portV6());
    f.waitForSessions(1);
    auto d = *f.inventory().findByFingerprint(fingerprintOf(cred.cert));
    CHECK(d.name == "edge-router");
    CHECK(d.state == DeviceState::Approved);
    CHECK(d.decidedBy == "pre-provisioned");
    CHECK(d.lastAddress == "::1");
    CHECK(d.connected);
    CHECK_THAT(f.eventsOf(EventKind::Accepted, d.id).at(0).detail, Catch::Contains("pre-provisioned"));
}

TEST_CASE("TLS: libnetconf2 device with the serial in hardwareModuleName; cert-to-name derives the name")
{
    CallhomeFixture f(true);
    auto caFingerprint = fingerprintOf(f.pki->manufacturerCa());
    f.config.manufacturers = { { "example", "hardware-module-name", false } };
    f.config.certToName = { { 1, caFingerprint, "san-dns-name", "" } };
    f.stop();
    f.start();
    auto cred = f.pki->device("hwmn-0002");
    Nc2Device device(f.dir, "127.0.0.1", f.portV4(),
        Nc2DeviceOptions { .user = "netconf",
            .tls = true,
            .certPath = cred.cert,
            .keyPath = cred.key,
            .chainPath = cred.chain,
            .trustedCaPath = f.pki->stationCa() });
    auto d = f.waitForDevice(fingerprintOf(cred.cert));
    CHECK(d.serial == "SN0002");
    CHECK(d.name == "switch-hwmn.example.net"); // first dNSName of the leaf, rule matched on the CA fingerprint
    CHECK(d.state == DeviceState::Pending);
    f.inventory().approve(d.id, std::nullopt, std::nullopt);
    f.waitForSessions(1);
    f.waitConnected(d.id); // the writer records the session (and its capabilities) after the registry has it
    CHECK(hasBaseCapability(*f.inventory().findById(d.id)));
    waitFor([&] { return device.sessionsEstablished() >= 1; }, 10s, "device saw the session");
}

TEST_CASE("TLS: a self-signed device certificate is pending, and pinned by fingerprint once approved")
{
    CallhomeFixture f(true);
    auto cred = f.pki->device("selfsigned");
    StunnelDevice device(f.dir, cred, demandingStation(*f.pki));
    device.callHome("127.0.0.1", f.portV4()).waitExit(10s);
    auto d = f.waitForDevice(fingerprintOf(cred.cert));
    CHECK(d.state == DeviceState::Pending);
    CHECK(d.manufacturer.empty());
    f.inventory().approve(d.id, "lab-box", std::nullopt);
    device.callHome("127.0.0.1", f.portV4());
    f.waitForSessions(1);
}

TEST_CASE("TLS: invalid chains are refused with the reason in the event log")
{
    CallhomeFixture f(true);
    struct Case {
        const char* device;
        const char* reason;
    };
    auto c = GENERATE(Case { "other-ca-0007", "does not lead to any configured manufacturer" },
        Case { "expired-0003", "expired" }, Case { "revoked-0004", "revoked" });
    INFO(c.device);
    auto cred = f.pki->device(c.device);
    StunnelDevice device(f.dir, cred, demandingStation(*f.pki));
    device.callHome("127.0.0.1", f.portV4()).waitExit(10s);
    f.waitForEvent(EventKind::Refused);
    auto refused = f.eventsOf(EventKind::Refused).back();
    CHECK_THAT(refused.detail, Catch::Contains(c.reason));
    CHECK(refused.fingerprint == fingerprintOf(cred.cert));
    CHECK(f.inventory().devices().empty());
    CHECK(f.eventsOf(EventKind::SessionOpened).empty());
}

TEST_CASE("TLS: ignore-lifetime accepts an expired IDevID of that manufacturer")
{
    CallhomeFixture f(true);
    f.config.manufacturers = { { "example", "subject-serial-number", true } };
    f.stop();
    f.start();
    auto cred = f.pki->device("expired-0003");
    StunnelDevice device(f.dir, cred, demandingStation(*f.pki));
    device.callHome("127.0.0.1", f.portV4()).waitExit(10s);
    CHECK(f.waitForDevice(fingerprintOf(cred.cert)).serial == "SN0003");
}

TEST_CASE("TLS: misbehaving peers are cut off and never take the listener down")
{
    CallhomeFixture f(true);
    f.inventory().expect({ { "SN0001", "example", "r1" } });
    auto cred = f.pki->device("sn-0001");
    SECTION("a device that demands a client certificate we do not have (refused after a TLS 1.3 handshake)")
    {
        StunnelDevice device(f.dir, cred, StunnelDeviceOptions { .trustedCaPath = f.pki->otherCa() });
        device.callHome("127.0.0.1", f.portV4()).waitExit(15s);
        f.waitForEvent(EventKind::HandshakeFailed);
        CHECK(device.peerVerificationFailures() >= 1);
        // TLS 1.3: the refusal arrives after the handshake and is reported before any NETCONF starts
        CHECK_THAT(f.eventsOf(EventKind::HandshakeFailed).back().detail, Catch::Contains("unknown ca"));
        CHECK(f.eventsOf(EventKind::SessionOpened).empty());
        CHECK(f.daemon->registry().size() == 0);
    }
    SECTION("a peer that offers only TLS 1.0")
    {
        StunnelDevice device(
            f.dir, cred, StunnelDeviceOptions { .trustedCaPath = f.pki->stationCa(), .tls10Only = true });
        device.callHome("127.0.0.1", f.portV4()).waitExit(15s);
        f.waitForEvent(EventKind::HandshakeFailed);
        CHECK_THAT(f.eventsOf(EventKind::HandshakeFailed).back().detail,
            Catch::Contains("TLS handshake failed") && Catch::Contains("protocol version"));
    }
    SECTION("garbage instead of a ServerHello")
    {
        UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in a {};
        a.sin_family = AF_INET;
        a.sin_port = htons(f.portV4());
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        std::string garbage = "SSH-2.0-OpenSSH_9.2\r\n" + std::string(2048, 'x');
        [[maybe_unused]] auto n = ::write(fd.get(), garbage.data(), garbage.size());
        f.waitForEvent(EventKind::HandshakeFailed);
        CHECK_THAT(f.eventsOf(EventKind::HandshakeFailed).back().detail, Catch::Contains("wrong version number"));
    }
    // the listener still serves a well-behaved device afterwards
    StunnelDevice good(f.dir, cred, demandingStation(*f.pki));
    good.callHome("127.0.0.1", f.portV4());
    f.waitForSessions(1);
}
