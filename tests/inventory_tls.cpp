// TLS devices in the inventory: 802.1AR identities, pre-provisioning from shipping data, pinned self-signed
// certificates, certificate renewal and references by serial number; against a real SQLite file in a temp dir.
#include "ScratchDir.h"
#include "TestInventory.h"
#include "inventory/ExpectError.h"
#include "inventory/Inventory.h"
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>

namespace fs = std::filesystem;
using namespace callhome;
using namespace callhome::inventory;

using callhome::test::openExistingForTest;
using callhome::test::openForTest;
using callhome::test::ScratchDir;
using callhome::test::TestInventory;

namespace {
const std::string Fp1 = "SHA256:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:"
                        "23:45:67:89";
const std::string Fp2 = "SHA256:AB:CD:99:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:"
                        "23:45:67:88";
const std::string Fp3 = "SHA256:12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0:12:34:56:78:"
                        "9A:BC:DE:F0";
const std::string FpSsh = "SHA256:abcdEFGHijklMNOPqrstUVWXyz0123456789+/AbCdE";

TimePoint at(int64_t ms)
{
    return TimePoint(std::chrono::milliseconds(ms));
}

TlsIdentity verified(
    const std::string& serial, const std::string& fingerprint, const std::string& manufacturer = "example")
{
    return { .manufacturer = manufacturer,
        .serial = serial,
        .fingerprint = fingerprint,
        .subject = "CN=router,serialNumber=" + serial + ",O=Example",
        .issuer = "CN=Example IDevID CA,O=Example" };
}

TlsIdentity selfSigned(const std::string& fingerprint)
{
    return { .fingerprint = fingerprint, .subject = "CN=lab-box", .issuer = "CN=lab-box" };
}

struct Fixture {
    TestInventory dir;
    std::unique_ptr<Inventory> inv = openForTest(dir.db());
};
} // namespace

TEST_CASE_METHOD(Fixture, "an unknown TLS identity becomes pending, then counts attempts")
{
    auto first = inv->recordTlsContact(verified("SN0001", Fp1), "192.0.2.10", at(1'000));
    REQUIRE(first.created);
    const auto& d = first.device;
    REQUIRE(d.state == DeviceState::Pending);
    REQUIRE(d.transport == Transport::Tls);
    REQUIRE(d.manufacturer == "example");
    REQUIRE(d.serial == "SN0001");
    REQUIRE(d.fingerprint == Fp1);
    REQUIRE(d.certSubject == "CN=router,serialNumber=SN0001,O=Example");
    REQUIRE(d.certIssuer == "CN=Example IDevID CA,O=Example");
    REQUIRE(d.keyType.empty());
    REQUIRE(d.lastAddress == "192.0.2.10");
    REQUIRE(d.attempts == 1);
    REQUIRE(d.firstSeen == at(1'000));
    REQUIRE(!d.name);
    REQUIRE(d.decidedBy.empty());

    auto again = inv->recordTlsContact(verified("SN0001", Fp1), "192.0.2.11", at(2'000));
    REQUIRE(!again.created);
    REQUIRE(again.device.id == d.id);
    REQUIRE(again.device.attempts == 2);
    REQUIRE(again.device.lastAddress == "192.0.2.11");
    REQUIRE(again.device.firstSeen == at(1'000));
    REQUIRE(again.device.lastSeen == at(2'000));

    // the same serial from another manufacturer is another device
    auto other = inv->recordTlsContact(verified("SN0001", Fp3, "acme"), "192.0.2.12", at(3'000));
    REQUIRE(other.created);
    REQUIRE(other.device.id != d.id);
    REQUIRE(inv->devices().size() == 2);

    // an operator approves a pending TLS device like an SSH one
    auto approved = inv->approve(d.id, std::string("router-1"), std::nullopt);
    REQUIRE(approved.state == DeviceState::Approved);
    REQUIRE(approved.decidedBy == "operator");
    auto accepted = inv->recordTlsContact(verified("SN0001", Fp1), "192.0.2.11", at(4'000));
    REQUIRE(!accepted.created);
    REQUIRE(accepted.device.state == DeviceState::Approved);
    REQUIRE(accepted.device.name == "router-1");
}

TEST_CASE_METHOD(Fixture, "a pre-provisioned device is approved on its first contact")
{
    auto expected = inv->expect({ { .serial = "SN0002", .manufacturer = "example", .name = "edge-2" } });
    REQUIRE(expected.size() == 1);
    const auto& e = expected.front();
    REQUIRE(e.state == DeviceState::Approved);
    REQUIRE(e.transport == Transport::Tls);
    REQUIRE(e.decidedBy == "pre-provisioned");
    REQUIRE(e.decidedAt);
    REQUIRE(e.name == "edge-2");
    REQUIRE(e.attempts == 0);
    REQUIRE(e.fingerprint.empty());
    REQUIRE(e.lastAddress.empty());
    REQUIRE(!inv->findByFingerprint(""));
    auto log = inv->events({});
    REQUIRE(log.size() == 1);
    REQUIRE(log.front().kind == EventKind::Approved);
    REQUIRE(log.front().deviceId == e.id);
    REQUIRE_THAT(log.front().detail, Catch::Contains("pre-provisioned example/SN0002 as edge-2"));

    auto contact = inv->recordTlsContact(verified("SN0002", Fp1), "2001:db8::2", at(5'000));
    REQUIRE(!contact.created);
    REQUIRE(contact.device.id == e.id);
    REQUIRE(contact.device.state == DeviceState::Approved);
    REQUIRE(contact.device.decidedBy == "pre-provisioned");
    REQUIRE(contact.device.attempts == 1);
    REQUIRE(contact.device.fingerprint == Fp1);
    REQUIRE(contact.device.firstSeen == at(5'000));
    REQUIRE(contact.device.lastSeen == at(5'000));
    REQUIRE(contact.device.lastAddress == "2001:db8::2");
    REQUIRE(contact.device.certSubject == "CN=router,serialNumber=SN0002,O=Example");
    REQUIRE(inv->findByFingerprint(Fp1)->id == e.id);
    REQUIRE(inv->devices().size() == 1);
}

TEST_CASE_METHOD(Fixture, "a renewed certificate updates fingerprint, subject and issuer")
{
    auto id = inv->expect({ { .serial = "SN0003", .manufacturer = "example" } }).front().id;
    inv->recordTlsContact(verified("SN0003", Fp1), "192.0.2.3", at(1'000));
    auto renewed = verified("SN0003", Fp2);
    renewed.subject = "CN=router-renewed,serialNumber=SN0003,O=Example";
    renewed.issuer = "CN=Example IDevID CA 2,O=Example";
    auto contact = inv->recordTlsContact(renewed, "192.0.2.3", at(2'000));
    REQUIRE(!contact.created);
    REQUIRE(contact.device.id == id);
    REQUIRE(contact.device.fingerprint == Fp2);
    REQUIRE(contact.device.certSubject == "CN=router-renewed,serialNumber=SN0003,O=Example");
    REQUIRE(contact.device.certIssuer == "CN=Example IDevID CA 2,O=Example");
    REQUIRE(contact.device.attempts == 2);
    REQUIRE(contact.device.state == DeviceState::Approved);
    REQUIRE(!inv->findByFingerprint(Fp1));
    REQUIRE(inv->findByFingerprint(Fp2)->id == id);
}

TEST_CASE_METHOD(Fixture, "a self-signed certificate is pinned by its fingerprint when approved")
{
    auto first = inv->recordTlsContact(selfSigned(Fp3), "198.51.100.3", at(1'000));
    REQUIRE(first.created);
    REQUIRE(first.device.state == DeviceState::Pending);
    REQUIRE(first.device.manufacturer.empty());
    REQUIRE(first.device.serial.empty());
    REQUIRE(first.device.certSubject == "CN=lab-box");

    // referenced by a TLS fingerprint prefix, with or without "SHA256:", in either case
    // (at least 24 hex digits: 96 bits, as 16 base64 characters of an SSH fingerprint)
    REQUIRE(inv->resolve("12:34:56:78:9A:BC:DE:F0:12:34:56:78").id == first.device.id);
    REQUIRE(inv->resolve("SHA256:12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A").id == first.device.id);
    REQUIRE(inv->resolve("sha256:12:34:56:78:9a:bc:de:f0:12:34:56:78").id == first.device.id);
    REQUIRE(inv->resolve(Fp3).id == first.device.id);
    REQUIRE_THROWS_WITH(inv->resolve("12:34:56:78:9A:BC:DE:F0:12:34:56"), Catch::Contains("at least 24 hex"));
    REQUIRE_THROWS_WITH(inv->resolve("SHA256:12:34"), Catch::Contains("at least 24 hex"));
    REQUIRE_THROWS_AS(inv->resolve("9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0"), NotFound); // a prefix, not a substring
}

TEST_CASE_METHOD(Fixture, "self-signed pinning: the approved fingerprint is accepted, another one is not")
{
    auto pendingDevice = inv->recordTlsContact(selfSigned(Fp3), "198.51.100.3", at(1'000)).device;
    auto approved = inv->approve(pendingDevice.id, std::string("lab-box"), std::nullopt);
    REQUIRE(approved.state == DeviceState::Approved);
    REQUIRE(approved.decidedBy == "operator");

    auto again = inv->recordTlsContact(selfSigned(Fp3), "198.51.100.4", at(2'000));
    REQUIRE(!again.created);
    REQUIRE(again.device.id == pendingDevice.id);
    REQUIRE(again.device.state == DeviceState::Approved);
    REQUIRE(again.device.attempts == 2);
    REQUIRE(again.device.lastAddress == "198.51.100.4");

    auto impostor = inv->recordTlsContact(selfSigned(Fp1), "198.51.100.4", at(3'000));
    REQUIRE(impostor.created);
    REQUIRE(impostor.device.state == DeviceState::Pending);
    REQUIRE(impostor.device.sameAddressAs == pendingDevice.id);
}

TEST_CASE_METHOD(Fixture, "expect: errors name the entry, and nothing is imported")
{
    // SN0009 called home before the shipping data was imported: it is pending, not expected
    inv->recordTlsContact(verified("SN0009", Fp1), "192.0.2.9", at(1'000));
    inv->recordContact(Transport::Ssh, FpSsh, "ssh-ed25519", "192.0.2.50", at(1'000));
    inv->approve(inv->findByFingerprint(FpSsh)->id, std::string("core-1"), std::nullopt);
    const auto before = inv->devices().size();
    const auto eventsBefore = inv->events({}).size();

    auto failsAt = [&](const std::vector<ExpectedDevice>& list, size_t position, const std::string& mentions) {
        INFO(mentions);
        try {
            inv->expect(list);
            FAIL("expect() accepted the list");
        } catch (const ExpectError& e) {
            REQUIRE(e.position() == position);
            REQUIRE_THAT(e.what(), Catch::StartsWith("entry " + std::to_string(position) + ": "));
            REQUIRE_THAT(e.problem(), Catch::Contains(mentions));
        }
        REQUIRE(inv->devices().size() == before);
        REQUIRE(inv->events({}).size() == eventsBefore);
    };
    const ExpectedDevice ok1 { .serial = "SN0101", .manufacturer = "example", .name = "r-101" };
    const ExpectedDevice ok2 { .serial = "SN0102", .manufacturer = "example" };

    failsAt({ ok1, ok2, { .serial = "SN0009", .manufacturer = "example" } }, 3, "example/SN0009 is already device");
    failsAt({ ok1, { .serial = "SN0009", .manufacturer = "example" } }, 2, "pending");
    failsAt({ ok1, { .serial = "SN0103", .manufacturer = "example", .name = "core-1" } }, 2,
        "name \"core-1\" is already used");
    failsAt({ { .serial = "SN0104", .manufacturer = "example", .name = "bad name" } }, 1, "may contain only");
    failsAt({ ok1, ok2, { .serial = "", .manufacturer = "example" } }, 3, "serial number is empty");
    failsAt({ ok1, { .serial = "SN0105", .manufacturer = "" } }, 2, "manufacturer is empty");
    failsAt({ ok1, { .serial = "SN\n0106", .manufacturer = "example" } }, 2, "control characters");
    // the same serial twice in one list with different names
    failsAt({ ok1, ok2, { .serial = "SN0101", .manufacturer = "example", .name = "r-other" } }, 3, "rename");
    // an ExpectError is a UsageError: callers that do not care about positions catch it as such
    REQUIRE_THROWS_AS(inv->expect({ { .serial = "SN0009", .manufacturer = "example" } }), UsageError);
}

TEST_CASE_METHOD(Fixture, "expect: importing the same data again changes nothing")
{
    const std::vector<ExpectedDevice> shipping { { .serial = "SN0201", .manufacturer = "example", .name = "r-201" },
        { .serial = "SN0202", .manufacturer = "example" } };
    auto first = inv->expect(shipping);
    REQUIRE(first.size() == 2);
    const auto events = inv->events({}).size();
    REQUIRE(events == 2);

    auto second = inv->expect(shipping);
    REQUIRE(second.size() == 2);
    REQUIRE(second[0].id == first[0].id);
    REQUIRE(second[1].id == first[1].id);
    REQUIRE(inv->devices().size() == 2);
    REQUIRE(inv->events({}).size() == events);

    // a line without a name makes no claim about it; one more device in the list is added
    auto third = inv->expect({ { .serial = "SN0201", .manufacturer = "example" },
        { .serial = "SN0203", .manufacturer = "example", .name = "r-203" } });
    REQUIRE(third[0].id == first[0].id);
    REQUIRE(third[0].name == "r-201");
    REQUIRE(third[1].name == "r-203");
    REQUIRE(inv->devices().size() == 3);

    // still idempotent after the device called home
    inv->recordTlsContact(verified("SN0201", Fp1), "192.0.2.1", at(1'000));
    REQUIRE(inv->expect(shipping)[0].attempts == 1);
    REQUIRE(inv->devices().size() == 3);
}

TEST_CASE_METHOD(Fixture, "resolve finds TLS devices by serial and MANUFACTURER/SERIAL")
{
    auto expected = inv->expect({ { .serial = "SN0005", .manufacturer = "example" },
        { .serial = "SN0006", .manufacturer = "example", .name = "r-6" },
        { .serial = "SN0006", .manufacturer = "acme/labs" } });
    REQUIRE(inv->resolve("SN0005").id == expected[0].id);
    REQUIRE(inv->resolve("example/SN0005").id == expected[0].id);
    REQUIRE(inv->resolve("example/SN0006").id == expected[1].id);
    REQUIRE(inv->resolve("acme/labs/SN0006").id == expected[2].id);
    REQUIRE_THROWS_AS(inv->resolve("SN0006"), Ambiguous);
    REQUIRE_THROWS_WITH(inv->resolve("SN0006"),
        Catch::Contains("example/SN0006 (r-6)") && Catch::Contains("acme/labs/SN0006 (unnamed)")
            && Catch::Contains("MANUFACTURER/SERIAL"));
    REQUIRE_THROWS_AS(inv->resolve("other/SN0005"), NotFound);
    REQUIRE_THROWS_AS(inv->resolve("sn0005"), NotFound); // serials compare exactly

    // names and ids come first; fingerprints and their prefixes work once the device has called home
    inv->recordTlsContact(verified("SN0005", Fp1), "192.0.2.5", at(1'000));
    inv->recordTlsContact(verified("SN0006", Fp2), "192.0.2.6", at(1'000));
    REQUIRE(inv->resolve(Fp1).id == expected[0].id);
    REQUIRE(inv->resolve("AB:CD:EF:01:23:45:67:89:AB:CD:EF:01").id == expected[0].id);
    REQUIRE(inv->resolve("SHA256:AB:CD:99:01:23:45:67:89:AB:CD:EF:01").id == expected[1].id);
    // a short prefix is refused even where it would be unique (or, as "AB:CD", ambiguous)
    REQUIRE_THROWS_WITH(inv->resolve("AB:CD"), Catch::Contains("at least 24 hex digits"));
    REQUIRE_THROWS_WITH(inv->resolve("AB:CD:EF"), Catch::Contains("at least 24 hex digits"));
    REQUIRE_THROWS_WITH(inv->resolve("AB:"), Catch::Contains("at least 24 hex digits"));
    REQUIRE(inv->resolve("r-6").id == expected[1].id);
    REQUIRE(inv->resolve(std::to_string(expected[2].id)).id == expected[2].id);
}

TEST_CASE_METHOD(Fixture, "a certificate-derived name is used only when the device has none and it is free")
{
    auto withName = [](TlsIdentity id, const std::string& name) {
        id.derivedName = name;
        return id;
    };
    inv->expect({ { .serial = "SN0301", .manufacturer = "example", .name = "r-301" },
        { .serial = "SN0302", .manufacturer = "example" } });

    // never overrides a name
    auto named = inv->recordTlsContact(withName(verified("SN0301", Fp1), "from-cert"), "192.0.2.1", at(1'000));
    REQUIRE(named.device.name == "r-301");
    // an expected device without a name takes it
    auto unnamed = inv->recordTlsContact(withName(verified("SN0302", Fp2), "router-302"), "192.0.2.2", at(1'000));
    REQUIRE(unnamed.device.name == "router-302");
    // so does a new pending device
    auto fresh = inv->recordTlsContact(withName(verified("SN0303", Fp3), "router-303"), "192.0.2.3", at(1'000));
    REQUIRE(fresh.created);
    REQUIRE(fresh.device.name == "router-303");
    // taken by another device: ignored, no error
    auto clash = inv->recordTlsContact(withName(selfSigned("SHA256:00:11"), "router-303"), "192.0.2.4", at(1'000));
    REQUIRE(clash.created);
    REQUIRE(!clash.device.name);
    // not a valid device name (e.g. an e-mail address from san-rfc822-name): ignored
    auto odd = inv->recordTlsContact(withName(selfSigned("SHA256:00:22"), "ops@example.com"), "192.0.2.5", at(1'000));
    REQUIRE(!odd.device.name);
    // a pending device named from its certificate is approved without --name
    REQUIRE(inv->approve(fresh.device.id, std::nullopt, std::nullopt).name == "router-303");
}

TEST_CASE_METHOD(Fixture, "rekey is for SSH host keys only")
{
    auto ssh = inv->recordContact(Transport::Ssh, FpSsh, "ssh-ed25519", "192.0.2.7", at(1'000)).device;
    inv->approve(ssh.id, std::string("edge-7"), std::nullopt);
    auto tls = inv->recordTlsContact(verified("SN0401", Fp1), "192.0.2.7", at(2'000)).device;
    auto expected = inv->expect({ { .serial = "SN0402", .manufacturer = "example", .name = "r-402" } }).front();
    REQUIRE_THROWS_WITH(inv->rekey(ssh.id, tls.id), Catch::Contains("rekey is for SSH host keys"));
    REQUIRE_THROWS_WITH(inv->rekey(expected.id, tls.id), Catch::Contains("rekey is for SSH host keys"));
    REQUIRE(inv->findById(ssh.id)->fingerprint == FpSsh);
    REQUIRE(inv->findById(tls.id)->state == DeviceState::Pending);
}

TEST_CASE_METHOD(Fixture, "decisions about TLS devices stick across contacts")
{
    auto d = inv->expect({ { .serial = "SN0501", .manufacturer = "example", .name = "r-501" } }).front();
    inv->revoke(d.id);
    auto contact = inv->recordTlsContact(verified("SN0501", Fp1), "192.0.2.8", at(1'000));
    REQUIRE(!contact.created);
    REQUIRE(contact.device.state == DeviceState::Revoked);
    REQUIRE(contact.device.attempts == 1);
    // a revoked expected device is not silently re-admitted by re-importing the shipping data
    REQUIRE_THROWS_AS(inv->expect({ { .serial = "SN0501", .manufacturer = "example", .name = "r-501" } }), ExpectError);
    inv->forget(d.id);
    REQUIRE(inv->devices().empty());
    REQUIRE(inv->events({}).back().kind == EventKind::Forgotten);
}
