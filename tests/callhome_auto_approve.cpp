// admission/auto-approve with real devices: OpenSSH devices from matching and non-matching loopback sources, and a
// stunnel TLS device whose IDevID chain verifies to the rule's manufacturer.
#include "CallhomeFixture.h"
#include "harness/SshdDevice.h"
#include "harness/StunnelDevice.h"
#include "harness/Util.h"
#include "identity/Certificate.h"
#include "server/SessionRegistry.h"
#include <catch2/catch.hpp>

using namespace callhome;
using namespace callhome::test;
using namespace std::chrono_literals;
using inventory::DeviceState;
using inventory::EventKind;

namespace {
config::AutoApproveRule rule(const std::string& name, const std::string& namePrefix)
{
    config::AutoApproveRule r;
    r.name = name;
    r.namePrefix = namePrefix;
    return r;
}
} // namespace

TEST_CASE("auto-approve: an SSH device from a matching prefix gets a session without an operator; others stay pending")
{
    CallhomeFixture f;
    SshdDevice lab(f.dir, KeyType::Ed25519, f.daemon->stationPublicKey());
    SshdDevice outsider(f.dir, KeyType::Ed25519, f.daemon->stationPublicKey());
    SshdDevice beyondCap(f.dir, KeyType::Ed25519, f.daemon->stationPublicKey());
    auto r = rule("lab", "lab-");
    r.sources = { parsePrefix("10.9.0.0/16"), parsePrefix("127.1.0.0/16") };
    r.transport = config::Transport::Ssh;
    r.sshUser = lab.user(); // the configured default user ("netconf") is not the devices'
    f.config.autoApprove = { r };
    f.config.admission.maxPending = 1;
    f.stop();
    f.start();

    // not matching: pending as always, nothing sent to it; it fills the pending cap of 1
    REQUIRE(outsider.callHome("127.0.0.1", f.portV4()).waitExit(10s).has_value());
    auto pending = f.waitForDevice(outsider.hostKeyFingerprint());
    CHECK(pending.state == DeviceState::Pending);
    CHECK(pending.decidedBy.empty());
    CHECK(outsider.authAttempts() == 0);
    // the cap still applies to identities no rule matches: not even recorded
    REQUIRE(beyondCap.callHome("127.0.0.1", f.portV4()).waitExit(10s).has_value());
    CHECK(beyondCap.authAttempts() == 0);

    // matching: approved on first contact (the cap does not apply), the same connection authenticates
    lab.callHome("127.0.0.1", f.portV4(), "127.1.3.4");
    f.waitForSessions(1);
    f.waitConnected(f.inventory().findByFingerprint(lab.hostKeyFingerprint())->id);
    auto d = *f.inventory().findByFingerprint(lab.hostKeyFingerprint());
    CHECK(d.state == DeviceState::Approved);
    CHECK(d.name == "lab-" + std::to_string(d.id));
    CHECK(d.decidedBy == "auto-approve rule lab");
    CHECK(d.sshUser == lab.user());
    CHECK(d.attempts == 1);
    CHECK(d.connected);
    CHECK(lab.acceptedLogins() == 1);
    CHECK(f.eventsOf(EventKind::Pending, d.id).empty());
    auto approved = f.eventsOf(EventKind::Approved, d.id);
    REQUIRE(approved.size() == 1);
    CHECK_THAT(approved[0].detail, Catch::Contains("by auto-approve rule lab") && Catch::Contains("was pending"));
    CHECK_THAT(f.eventsOf(EventKind::Accepted, d.id).at(0).detail, Catch::Contains("auto-approved by rule lab"));
    CHECK_FALSE(f.inventory().findByFingerprint(beyondCap.hostKeyFingerprint()));

    // an identity already pending is the operator's, even from a matching source now (documented)
    REQUIRE(outsider.callHome("127.0.0.1", f.portV4(), "127.1.0.9").waitExit(10s).has_value());
    waitFor([&] { return f.inventory().findById(pending.id)->attempts == 2; }, 10s, "the second attempt recorded");
    CHECK(f.inventory().findById(pending.id)->state == DeviceState::Pending);
    CHECK(outsider.authAttempts() == 0);

    // a rejected identity is never auto-approved
    f.inventory().reject(pending.id);
    REQUIRE(outsider.callHome("127.0.0.1", f.portV4(), "127.1.0.9").waitExit(10s).has_value());
    f.waitForEvent(EventKind::Refused, pending.id);
    CHECK(f.inventory().findById(pending.id)->state == DeviceState::Rejected);

    // the rules are live: without them a new matching identity is pending again
    auto next = f.daemon->liveConfig();
    next.autoApprove.clear();
    auto report = f.daemon->reload(next);
    CHECK(std::find(report.applied.begin(), report.applied.end(), "admission/auto-approve") != report.applied.end());
    SshdDevice late(f.dir, KeyType::Ed25519, f.daemon->stationPublicKey());
    f.inventory().forget(pending.id); // room under the pending cap, once the daemon's index has followed
    waitFor([&] { return f.daemon->statusLine().find(" 0 devices pending") != std::string::npos; }, 10s,
        "the forgotten device out of the pending count");
    REQUIRE(late.callHome("127.0.0.1", f.portV4(), "127.1.3.5").waitExit(10s).has_value());
    CHECK(f.waitForDevice(late.hostKeyFingerprint()).state == DeviceState::Pending);
    CHECK(late.authAttempts() == 0);
}

TEST_CASE("auto-approve: a TLS device of the rule's manufacturer is approved with its rule recorded")
{
    CallhomeFixture f(true);
    auto r = rule("example-idevid", "tls-");
    r.manufacturer = "example";
    f.config.autoApprove = { r };
    f.stop();
    f.start();

    auto cred = f.pki->device("sn-0001");
    StunnelDevice device(f.dir, cred, StunnelDeviceOptions { .trustedCaPath = f.pki->stationCa() });
    device.callHome("127.0.0.1", f.portV4());
    f.waitForSessions(1);
    auto fingerprint = identity::inspectPem(readFile(cred.cert)).fingerprint;
    auto d = *f.inventory().findByFingerprint(fingerprint);
    CHECK(d.state == DeviceState::Approved);
    CHECK(d.manufacturer == "example");
    CHECK(d.serial == "SN0001");
    CHECK(d.name == "tls-" + std::to_string(d.id));
    CHECK(d.decidedBy == "auto-approve rule example-idevid");
    CHECK(d.connected);
    CHECK(f.eventsOf(EventKind::Pending, d.id).empty());
    CHECK_THAT(f.eventsOf(EventKind::Approved, d.id).at(0).detail, Catch::Contains("auto-approve rule example-idevid"));

    // a self-signed certificate has no manufacturer: pending as always
    auto self = f.pki->device("selfsigned");
    StunnelDevice pinned(f.dir, self, StunnelDeviceOptions { .trustedCaPath = f.pki->stationCa() });
    REQUIRE(pinned.callHome("127.0.0.1", f.portV4()).waitExit(10s).has_value());
    auto p = f.waitForDevice(identity::inspectPem(readFile(self.cert)).fingerprint);
    CHECK(p.state == DeviceState::Pending);
    CHECK(f.daemon->registry().size() == 1);
}
