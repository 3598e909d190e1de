// Fleet-scale inventory (issue 8): streaming listings with filters and paging, SSH pre-provisioning, bulk decisions,
// the integrity check, escaping of peer text, file modes. Real SQLite files in temp dirs.
#include "ScratchDir.h"
#include "TestInventory.h"
#include "common/Text.h"
#include "identity/Identity.h"
#include "inventory/ExpectError.h"
#include "inventory/Inventory.h"
#include <catch2/catch.hpp>
#include <grp.h>
#include <sys/stat.h>

using namespace callhome;
using namespace callhome::inventory;
using callhome::test::openExistingForTest;
using callhome::test::openForTest;
using callhome::test::ScratchDir;
using callhome::test::TestInventory;

namespace {
TimePoint at(int64_t ms)
{
    return TimePoint(std::chrono::milliseconds(ms));
}

/** A well-formed SSH fingerprint (43 base64 characters), distinct per n. */
std::string fp(int n)
{
    auto digits = std::to_string(n);
    return "SHA256:" + std::string(43 - digits.size(), 'k') + digits;
}

std::vector<int64_t> ids(Inventory& inv, const DeviceFilter& f)
{
    std::vector<int64_t> out;
    inv.forEachDevice(f, [&](const Device& d) { out.push_back(d.id); });
    return out;
}

mode_t modeOf(const std::string& path)
{
    struct stat st { };
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_mode & 07777;
}
} // namespace

TEST_CASE("forEachDevice: filters and paging")
{
    TestInventory dir;
    auto inv = openForTest(dir.db());
    // 1..20 SSH, pending; even ones approved as edge-N; 21..25 TLS pending; contacts at n seconds
    for (int n = 1; n <= 20; ++n) {
        auto d = inv->recordContact(Transport::Ssh, fp(n), "ssh-ed25519", "192.0.2.1", at(n * 1000)).device;
        REQUIRE(d.id == n);
        if (n % 2 == 0) {
            inv->approve(d.id, "edge-" + std::to_string(n), std::nullopt);
        }
    }
    for (int n = 21; n <= 25; ++n) {
        TlsIdentity id { .manufacturer = "example",
            .serial = "SN" + std::to_string(n),
            .fingerprint = "SHA256:AA:" + std::to_string(n),
            .subject = "CN=x",
            .issuer = "CN=ca" };
        inv->recordTlsContact(id, "192.0.2.2", at(n * 1000));
    }
    inv->listenerStarted("L1", now());
    inv->sessionOpened(4, "L1", now(), { "urn:ietf:params:netconf:base:1.1" });

    REQUIRE(ids(*inv, {}).size() == 25);
    REQUIRE(
        ids(*inv, { .state = DeviceState::Approved }) == std::vector<int64_t> { 2, 4, 6, 8, 10, 12, 14, 16, 18, 20 });
    REQUIRE(ids(*inv, { .transport = Transport::Tls }) == std::vector<int64_t> { 21, 22, 23, 24, 25 });
    REQUIRE(ids(*inv, { .connected = true }) == std::vector<int64_t> { 4 });
    REQUIRE(ids(*inv, { .connected = false }).size() == 24);
    REQUIRE(ids(*inv, { .nameGlob = "edge-1*" }) == std::vector<int64_t> { 10, 12, 14, 16, 18 });
    REQUIRE(ids(*inv, { .nameGlob = "EDGE-*" }).empty()); // GLOB is case-sensitive
    REQUIRE(ids(*inv, { .seenSince = at(23'000) }) == std::vector<int64_t> { 23, 24, 25 });
    REQUIRE(ids(*inv, { .state = DeviceState::Pending, .transport = Transport::Ssh, .seenSince = at(15'000) })
        == std::vector<int64_t> { 15, 17, 19 });

    // paging by id: pages of 10 cover everything exactly once
    std::vector<int64_t> all;
    int64_t after = 0;
    for (int page = 0; page < 10; ++page) {
        auto got = ids(*inv, { .afterId = after, .limit = 10 });
        if (got.empty()) {
            break;
        }
        REQUIRE(got.size() <= 10);
        all.insert(all.end(), got.begin(), got.end());
        after = got.back();
    }
    REQUIRE(all == ids(*inv, {}));
    REQUIRE(
        ids(*inv, { .state = DeviceState::Approved, .afterId = 10, .limit = 2 }) == std::vector<int64_t> { 12, 14 });

    // the same-address-as flag carries the other device's name (the listing cannot look it up while it runs)
    auto fresh = inv->recordContact(Transport::Ssh, fp(99), "ssh-ed25519", "192.0.2.1", now()).device;
    REQUIRE(fresh.sameAddressAs);
    std::optional<Device> seen;
    inv->forEachDevice({ .afterId = fresh.id - 1 }, [&](const Device& d) { seen = d; });
    REQUIRE(seen->sameAddressAsName == inv->findById(*fresh.sameAddressAs)->name);

    // devices() is still the whole list
    REQUIRE(inv->devices().size() == 26);
}

TEST_CASE("forEachEvent: paging after an id, newest N")
{
    TestInventory dir;
    auto inv = openForTest(dir.db());
    for (int n = 1; n <= 30; ++n) {
        inv->addEvent({ .at = at(n * 1000), .kind = EventKind::Pending, .detail = "e" + std::to_string(n) });
    }
    // one recorded late with an early time: time order puts it first, id order last
    inv->addEvent({ .at = at(500), .kind = EventKind::Pending, .detail = "late" });
    auto details = [&](const EventFilter& f) {
        std::vector<std::string> out;
        inv->forEachEvent(f, [&](const Event& e) { out.push_back(e.detail); });
        return out;
    };
    REQUIRE(details({}).front() == "late");
    REQUIRE(details({ .limit = 2 }) == std::vector<std::string> { "e29", "e30" });
    REQUIRE(details({ .limit = 3, .afterId = 10 }) == std::vector<std::string> { "e11", "e12", "e13" });
    REQUIRE(details({ .afterId = 29 }) == std::vector<std::string> { "e30", "late" });
    REQUIRE(details({ .afterId = 31 }).empty());
    REQUIRE(inv->events({ .limit = 2, .afterId = 10 }).size() == 2);
}

TEST_CASE("expected SSH keys are accepted on their first call home")
{
    TestInventory dir;
    auto inv = openForTest(dir.db());
    auto result = inv->expectAll({
        { .name = std::string("router-1"), .fingerprint = fp(1), .keyType = "ssh-ed25519", .sshUser = "admin" },
        { .name = std::string("router-2"), .fingerprint = fp(2) },
        { .serial = "SN1", .manufacturer = "example", .name = std::string("tls-1") },
    });
    REQUIRE(result.created == 3);
    const auto& r1 = result.devices[0];
    REQUIRE(r1.state == DeviceState::Approved);
    REQUIRE(r1.transport == Transport::Ssh);
    REQUIRE(r1.decidedBy == "pre-provisioned");
    REQUIRE(r1.sshUser == "admin");
    REQUIRE(r1.attempts == 0);
    REQUIRE(r1.keyType == "ssh-ed25519");

    // idempotent: the same entries again change nothing
    auto again = inv->expectAll(
        { { .name = std::string("router-1"), .fingerprint = fp(1), .sshUser = "admin" }, { .fingerprint = fp(2) } });
    REQUIRE(again.created == 0);
    REQUIRE(again.devices[0].id == r1.id);
    REQUIRE(inv->devices().size() == 3);

    // all or nothing: a conflict in entry 2 keeps entry 1 out too
    try {
        inv->expectAll({ { .name = std::string("new-3"), .fingerprint = fp(3) },
            { .name = std::string("other-name"), .fingerprint = fp(1) } });
        FAIL("expected ExpectError");
    } catch (const ExpectError& e) {
        REQUIRE(e.position() == 2);
        REQUIRE_THAT(e.problem(), Catch::Contains("already device") && Catch::Contains("router-1"));
    }
    REQUIRE(!inv->findByFingerprint(fp(3)));
    REQUIRE_THROWS_WITH(inv->expectAll({ { .name = std::string("x"), .fingerprint = "SHA256:short" } }),
        Catch::Contains("not an SSH host key fingerprint"));
    REQUIRE_THROWS_WITH(
        inv->expectAll({ { .name = std::string("123"), .fingerprint = fp(4) } }), Catch::Contains("all digits"));
    REQUIRE_THROWS_WITH(
        inv->expectAll({ { .serial = "SN9", .manufacturer = "example", .sshUser = "admin" } }), Catch::Contains("SSH"));
    // a pending key is approved, not pre-provisioned
    inv->recordContact(Transport::Ssh, fp(5), "ssh-ed25519", "192.0.2.5", now());
    REQUIRE_THROWS_WITH(
        inv->expectAll({ { .name = std::string("r5"), .fingerprint = fp(5) } }), Catch::Contains("approve it instead"));

    // the first call home: the identity step accepts it, with no operator action
    identity::IdentityPolicy policy(*inv);
    auto decision = policy.decideSsh({ .connectionId = "C1", .address = "192.0.2.2" }, fp(2), "ecdsa-sha2-nistp256");
    REQUIRE(decision.verdict == identity::Verdict::Accept);
    REQUIRE(decision.reason == "expected device (pre-provisioned)");
    auto d = inv->findByFingerprint(fp(2));
    REQUIRE(d->attempts == 1);
    REQUIRE(d->keyType == "ecdsa-sha2-nistp256"); // learnt on the first contact
    REQUIRE(d->firstSeen == d->lastSeen);
    REQUIRE(d->firstSeen > at(0));
    // a key type given at pre-provisioning stays
    policy.decideSsh({ .connectionId = "C2", .address = "192.0.2.1" }, fp(1), "ssh-ed25519");
    REQUIRE(inv->findByFingerprint(fp(1))->keyType == "ssh-ed25519");
}

TEST_CASE("decideAll: bulk decisions in one transaction")
{
    TestInventory dir;
    auto inv = openForTest(dir.db());
    for (int n = 1; n <= 6; ++n) {
        inv->recordContact(Transport::Ssh, fp(n), "ssh-ed25519", "192.0.2." + std::to_string(n), now());
    }
    inv->approve(1, std::string("core-1"), std::nullopt);
    inv->rename(2, "named-2");
    using Action = BulkDecision::Action;

    REQUIRE(inv->decideAll({ .state = DeviceState::Pending }, { .action = Action::Approve, .dryRun = true }) == 5);
    // unnamed devices without a prefix: all or nothing
    REQUIRE_THROWS_WITH(inv->decideAll({ .state = DeviceState::Pending }, { .action = Action::Approve }),
        Catch::Contains("has no name"));
    REQUIRE(inv->findById(2)->state == DeviceState::Pending);
    REQUIRE(inv->decideAll({ .state = DeviceState::Pending },
                { .action = Action::Approve, .namePrefix = "edge-", .sshUser = "op" })
        == 5);
    REQUIRE(inv->findById(2)->name == "named-2"); // named devices keep their name
    REQUIRE(inv->findById(3)->name == "edge-3");
    REQUIRE(inv->findById(3)->sshUser == "op");
    REQUIRE(inv->findById(6)->state == DeviceState::Approved);
    REQUIRE(inv->events({ .deviceId = 6 }).back().kind == EventKind::Approved);
    // only what changes counts
    REQUIRE(inv->decideAll({}, { .action = Action::Approve }) == 0);
    REQUIRE(inv->decideAll({ .nameGlob = "edge-*" }, { .action = Action::Revoke }) == 4);
    REQUIRE(inv->decideAll({}, { .action = Action::Revoke }) == 2);
    REQUIRE(inv->decideAll({}, { .action = Action::Reject }) == 0); // revoked ones are refused already
    REQUIRE(inv->decideAll({ .limit = 2 }, { .action = Action::Forget }) == 2);
    REQUIRE(inv->devices().size() == 4);
    REQUIRE_THROWS_WITH(inv->decideAll({}, { .action = Action::Approve, .namePrefix = "bad prefix" }),
        Catch::Contains("may contain only"));
}

TEST_CASE("peer-chosen text is stored escaped")
{
    TestInventory dir;
    auto inv = openForTest(dir.db());
    TlsIdentity hostile { .manufacturer = "example",
        .serial = "SN\x1b[2J",
        .fingerprint = "SHA256:AB:01",
        .subject = "CN=evil\x1b]0;owned\x07,O=\xc2\x9b"
                   "31m",
        .issuer = "CN=ca\r\nX-Injected: 1" };
    auto d = inv->recordTlsContact(hostile, "192.0.2.66", now()).device;
    REQUIRE(d.certSubject == "CN=evil\\x1B]0;owned\\x07,O=\\u009B31m");
    REQUIRE(d.certIssuer == "CN=ca\\x0D\\x0AX-Injected: 1");
    REQUIRE(d.serial == "SN\\x1B[2J");
    // the next contact finds the same device by its (escaped) serial
    REQUIRE(inv->recordTlsContact(hostile, "192.0.2.66", now()).device.id == d.id);
    REQUIRE(inv->resolve("example/SN\\x1B[2J").id == d.id);

    inv->addEvent({ .at = now(), .kind = EventKind::HandshakeFailed, .detail = "disconnect: \x1b[31mbye\x7f\n" });
    REQUIRE(inv->events({}).back().detail == "disconnect: \\x1B[31mbye\\x7F\\x0A");
    inv->listenerStarted("L1", now());
    inv->sessionOpened(d.id, "L1", now(), { "urn:x\x1b" });
    REQUIRE(inv->findById(d.id)->capabilities == std::vector<std::string> { "urn:x\\x1B" });
}

TEST_CASE("checkIntegrity runs the whole-file check on demand")
{
    TestInventory dir;
    {
        auto inv = openForTest(dir.db());
        inv->recordContact(Transport::Ssh, fp(1), "ssh-ed25519", "192.0.2.1", now());
    }
    auto reader = openExistingForTest(dir.db());
    REQUIRE(reader->checkIntegrity().empty());
}

TEST_CASE("inventory files are created 0600 whatever the umask", "[sqlite]")
{
    ScratchDir dir;
    const auto old = ::umask(0);
    struct RestoreUmask {
        mode_t mask;
        ~RestoreUmask() { ::umask(mask); }
    } restore { old };
    const auto path = (dir.path / "fresh.db").string();
    {
        auto inv = openSqlite(path);
        inv->recordContact(Transport::Ssh, fp(1), "ssh-ed25519", "192.0.2.1", now());
        // while it is open, the WAL and the shared-memory index exist
        REQUIRE(modeOf(path) == 0600);
        REQUIRE(modeOf(path + "-wal") == 0600);
        REQUIRE(modeOf(path + "-shm") == 0600);
        // a reader (callhomectl) creating them gets the same mode
        auto reader = openSqliteExisting(path);
        REQUIRE(reader->devices().size() == 1);
    }
    REQUIRE(modeOf(path) == 0600);

    // an existing file readable by everyone loses the others' permissions when callhomed opens it
    REQUIRE(::chmod(path.c_str(), 0666) == 0);
    {
        auto inv = openSqlite(path);
        REQUIRE(modeOf(path) == 0660);
        inv->recordContact(Transport::Ssh, fp(2), "ssh-ed25519", "192.0.2.1", now());
        REQUIRE(modeOf(path + "-wal") == 0660);
    }
}

TEST_CASE("escapeControl")
{
    REQUIRE(escapeControl("plain text, UTF-8: Zürich 東京 ✓") == "plain text, UTF-8: Zürich 東京 ✓");
    REQUIRE(escapeControl(std::string("a\0b", 3)) == "a\\x00b");
    REQUIRE(escapeControl("\t\n\r\x1b\x7f") == "\\x09\\x0A\\x0D\\x1B\\x7F");
    // C1 controls as UTF-8 (U+0080..U+009F) and as raw bytes (not UTF-8)
    REQUIRE(escapeControl("\xc2\x80\xc2\x9b\xc2\x9f\xc2\xa0") == "\\u0080\\u009B\\u009F\xc2\xa0");
    REQUIRE(escapeControl("\x9b"
                          "31m")
        == "\\x9B31m");
    // invalid UTF-8: overlong, surrogate, truncated, beyond U+10FFFF
    REQUIRE(escapeControl("\xc0\xaf") == "\\xC0\\xAF");
    REQUIRE(escapeControl("\xed\xa0\x80") == "\\xED\\xA0\\x80");
    REQUIRE(escapeControl("ab\xe2\x82") == "ab\\xE2\\x82");
    REQUIRE(escapeControl("\xf4\x90\x80\x80") == "\\xF4\\x90\\x80\\x80");
    // a backslash stays (RFC 2253 uses it); escaping is idempotent
    REQUIRE(escapeControl("CN=a\\,b") == "CN=a\\,b");
    const std::string once = escapeControl("x\x1b\xc2\x85y\xff");
    REQUIRE(escapeControl(once) == once);
    REQUIRE(!needsEscape(once));
    REQUIRE(needsEscape("\x1b"));
}

TEST_CASE("with a configured group the inventory files are 0640 and the group's", "[sqlite]")
{
    ScratchDir dir;
    const auto path = (dir.path / "shared.db").string();
    struct group* g = ::getgrgid(::getegid()); // a group this process may give files to
    REQUIRE(g);
    const std::string groupName = g->gr_name;
    auto inv = openSqlite(path);
    inv->recordContact(Transport::Ssh, fp(1), "ssh-ed25519", "192.0.2.1", now());
    shareWithGroup(path, groupName);
    for (const auto& file : { path, path + "-wal", path + "-shm" }) {
        INFO(file);
        CHECK(modeOf(file) == 0640);
        struct stat st { };
        REQUIRE(::stat(file.c_str(), &st) == 0);
        CHECK(st.st_gid == ::getegid());
    }
    CHECK_THROWS_WITH(shareWithGroup(path, "no-such-group-callhome"),
        Catch::Contains("inventory group \"no-such-group-callhome\"") && Catch::Contains("no such group"));
}
