// The inventory's state machine and queries, against a real SQLite file in a temp dir.
#include "ScratchDir.h"
#include "TestInventory.h"
#include "inventory/Inventory.h"
#include "inventory/SqliteInventory.h"
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <sqlite3.h>

namespace fs = std::filesystem;
using namespace callhome;
using namespace callhome::inventory;
using namespace std::chrono_literals;

using callhome::test::openExistingForTest;
using callhome::test::openForTest;
using callhome::test::ScratchDir;
using callhome::test::TestInventory;

namespace {
const std::string FpA = "SHA256:abcdEFGHijklMNOPqrstUVWXyz0123456789+/AbCdE";
const std::string FpB = "SHA256:abcdXYZ1ijklMNOPqrstUVWXyz0123456789+/AbCdE";
const std::string FpC = "SHA256:Zz9yxwvutsrqponmlkjihgfedcba9876543210+/QQQ";
const std::string FpD = "SHA256:qqqqrrrrssssttttuuuuvvvvwwwwxxxxyyyyzzzz012";

TimePoint at(int64_t ms)
{
    return TimePoint(std::chrono::milliseconds(ms));
}

Device pending(Inventory& inv, const std::string& fp, const std::string& address = "192.0.2.1")
{
    return inv.recordContact(Transport::Ssh, fp, "ssh-ed25519", address, now()).device;
}
} // namespace

TEST_CASE("string conversions")
{
    for (auto s : { DeviceState::Pending, DeviceState::Approved, DeviceState::Rejected, DeviceState::Revoked }) {
        REQUIRE(deviceStateFromString(toString(s)) == s);
    }
    REQUIRE(toString(DeviceState::Revoked) == "revoked");
    REQUIRE(toString(Transport::Tls) == "tls");
    REQUIRE(transportFromString("ssh") == Transport::Ssh);
    REQUIRE(toString(EventKind::HandshakeFailed) == "handshake-failed");
    REQUIRE(eventKindFromString("session-closed") == EventKind::SessionClosed);
    REQUIRE(eventKindFromString("rekeyed") == EventKind::Rekeyed);
    REQUIRE_THROWS_AS(deviceStateFromString("Approved"), UsageError);
    REQUIRE_THROWS_AS(transportFromString("telnet"), UsageError);
    REQUIRE_THROWS_WITH(eventKindFromString("nope"), Catch::Contains("unknown event kind \"nope\""));
}

TEST_CASE("contacts create pending devices and count attempts")
{
    TestInventory dir;
    auto inv = openForTest(dir.db());

    auto first = inv->recordContact(Transport::Ssh, FpA, "ssh-ed25519", "192.0.2.7", at(1'000'000));
    REQUIRE(first.created);
    REQUIRE(first.device.id > 0);
    REQUIRE(first.device.state == DeviceState::Pending);
    REQUIRE(!first.device.name);
    REQUIRE(first.device.fingerprint == FpA);
    REQUIRE(first.device.keyType == "ssh-ed25519");
    REQUIRE(first.device.lastAddress == "192.0.2.7");
    REQUIRE(first.device.attempts == 1);
    REQUIRE(first.device.firstSeen == at(1'000'000));
    REQUIRE(!first.device.sameAddressAs);
    REQUIRE(!first.device.connected);
    REQUIRE(first.device.decidedBy.empty());

    auto second = inv->recordContact(Transport::Ssh, FpA, "ssh-ed25519", "2001:db8::1", at(2'000'000));
    REQUIRE(!second.created);
    REQUIRE(second.device.id == first.device.id);
    REQUIRE(second.device.attempts == 2);
    REQUIRE(second.device.lastAddress == "2001:db8::1");
    REQUIRE(second.device.firstSeen == at(1'000'000));
    REQUIRE(second.device.lastSeen == at(2'000'000));

    REQUIRE(inv->findByFingerprint(FpA)->id == first.device.id);
    REQUIRE(!inv->findByFingerprint(FpB));
    REQUIRE(inv->findById(first.device.id)->fingerprint == FpA);
    REQUIRE(!inv->findById(first.device.id + 100));
    REQUIRE(inv->devices().size() == 1);
}

TEST_CASE("operator state machine")
{
    TestInventory dir;
    auto inv = openForTest(dir.db());
    auto d = pending(*inv, FpA);

    SECTION("approve needs a valid, unique name")
    {
        REQUIRE_THROWS_WITH(inv->approve(d.id, std::nullopt, std::nullopt), Catch::Contains("approving needs --name"));
        REQUIRE_THROWS_WITH(inv->approve(d.id, std::string(""), std::nullopt), Catch::Contains("cannot be empty"));
        REQUIRE_THROWS_WITH(inv->approve(d.id, std::string(65, 'x'), std::nullopt), Catch::Contains("longer than 64"));
        REQUIRE_THROWS_WITH(
            inv->approve(d.id, std::string("edge 7"), std::nullopt), Catch::Contains("may contain only"));
        REQUIRE_THROWS_WITH(
            inv->approve(d.id, std::string("edge/7"), std::nullopt), Catch::Contains("may contain only"));
        REQUIRE(inv->findById(d.id)->state == DeviceState::Pending);

        auto other = pending(*inv, FpB);
        inv->approve(other.id, std::string("edge-7"), std::nullopt);
        REQUIRE_THROWS_WITH(inv->approve(d.id, std::string("edge-7"), std::nullopt),
            Catch::Contains("already used by device " + std::to_string(other.id)) && Catch::Contains(FpB));
        REQUIRE(inv->findById(d.id)->state == DeviceState::Pending);
        REQUIRE(inv->approve(d.id, std::string(64, 'a'), std::nullopt).name == std::string(64, 'a'));
    }

    SECTION("full cycle")
    {
        auto before = now();
        auto a = inv->approve(d.id, std::string("edge-1.lab_A"), std::string("admin"));
        REQUIRE(a.state == DeviceState::Approved);
        REQUIRE(a.name == "edge-1.lab_A");
        REQUIRE(a.sshUser == "admin");
        REQUIRE(a.decidedBy == "operator");
        REQUIRE(a.decidedAt);
        REQUIRE(*a.decidedAt >= before);
        REQUIRE_THROWS_WITH(inv->approve(d.id, std::nullopt, std::nullopt), Catch::Contains("already approved"));

        auto r = inv->reject(d.id);
        REQUIRE(r.state == DeviceState::Rejected);
        REQUIRE_THROWS_WITH(inv->reject(d.id), Catch::Contains("already rejected"));
        REQUIRE_THROWS_WITH(inv->revoke(d.id), Catch::Contains("already rejected"));

        // a named device can be re-approved without --name; the ssh user stays unless given
        a = inv->approve(d.id, std::nullopt, std::nullopt);
        REQUIRE(a.state == DeviceState::Approved);
        REQUIRE(a.name == "edge-1.lab_A");
        REQUIRE(a.sshUser == "admin");

        auto v = inv->revoke(d.id);
        REQUIRE(v.state == DeviceState::Revoked);
        REQUIRE_THROWS_WITH(inv->revoke(d.id), Catch::Contains("already revoked"));
        REQUIRE_THROWS_AS(inv->reject(d.id), UsageError);

        a = inv->approve(d.id, std::nullopt, std::string("netconf"));
        REQUIRE(a.state == DeviceState::Approved);
        REQUIRE(a.sshUser == "netconf");

        auto kinds = std::vector<EventKind> {};
        for (const auto& e : inv->events({ .deviceId = d.id })) {
            kinds.push_back(e.kind);
        }
        REQUIRE(kinds
            == std::vector<EventKind> { EventKind::Approved, EventKind::Rejected, EventKind::Approved,
                EventKind::Revoked, EventKind::Approved });
        auto log = inv->events({ .deviceId = d.id });
        REQUIRE(log.front().detail.find("approved as edge-1.lab_A (was pending)") != std::string::npos);
        REQUIRE(log.front().deviceName == "edge-1.lab_A");
        REQUIRE(log.front().fingerprint == FpA);
        REQUIRE(log[1].detail == "rejected (was approved)");
        REQUIRE(log[3].detail == "revoked (was approved)");
        REQUIRE(log[4].detail.find("(was revoked)") != std::string::npos);
    }

    SECTION("revoke only from approved")
    {
        REQUIRE_THROWS_AS(inv->revoke(d.id), UsageError);
        auto named = inv->rename(d.id, "edge-7");
        REQUIRE(named.name == "edge-7");
        REQUIRE(named.state == DeviceState::Pending);
        REQUIRE_THROWS_WITH(inv->revoke(d.id), "edge-7 is pending; use reject");
        REQUIRE(inv->reject(d.id).state == DeviceState::Rejected);
    }

    SECTION("rename")
    {
        inv->approve(d.id, std::string("old"), std::nullopt);
        auto other = pending(*inv, FpB);
        inv->approve(other.id, std::string("taken"), std::nullopt);
        REQUIRE_THROWS_WITH(inv->rename(d.id, "taken"), Catch::Contains("already used"));
        REQUIRE_THROWS_AS(inv->rename(d.id, ""), UsageError);
        REQUIRE(inv->rename(d.id, "new").name == "new");
        auto log = inv->events({ .deviceId = d.id });
        REQUIRE(log.back().kind == EventKind::Renamed);
        REQUIRE(log.back().detail == "renamed from old to new");
        REQUIRE(inv->resolve("new").id == d.id);
        REQUIRE_THROWS_AS(inv->resolve("old"), NotFound);
    }

    SECTION("unknown ids")
    {
        REQUIRE_THROWS_AS(inv->approve(d.id + 99, std::string("x"), std::nullopt), NotFound);
        REQUIRE_THROWS_AS(inv->forget(d.id + 99), NotFound);
    }
}

TEST_CASE("resolve references")
{
    // shares its first 20 base64 characters with FpA
    const std::string FpE = "SHA256:abcdEFGHijklMNOPqrstZZZZyz0123456789+/AbCdE";
    TestInventory dir;
    auto inv = openForTest(dir.db());
    auto a = pending(*inv, FpA);
    auto b = pending(*inv, FpB);
    auto c = pending(*inv, FpC);
    auto e = pending(*inv, FpE);
    inv->approve(a.id, std::string("router-1"), std::nullopt);
    // a name that looks like another device's id is refused: it would shadow the id
    REQUIRE_THROWS_WITH(inv->rename(c.id, std::to_string(b.id)), Catch::Contains("all digits"));
    REQUIRE_THROWS_WITH(inv->approve(c.id, std::string("0042"), std::nullopt), Catch::Contains("all digits"));
    REQUIRE(inv->rename(c.id, "42a").name == "42a");

    REQUIRE(inv->resolve("router-1").id == a.id);
    REQUIRE(inv->resolve(std::to_string(a.id)).id == a.id);
    REQUIRE(inv->resolve(std::to_string(b.id)).id == b.id);
    REQUIRE(inv->resolve(FpB).id == b.id);
    REQUIRE(inv->resolve(FpB.substr(7)).id == b.id);
    REQUIRE(inv->resolve("SHA256:Zz9yxwvutsrqponm").id == c.id); // 16 characters
    REQUIRE(inv->resolve("Zz9yxwvutsrqponml").id == c.id);
    REQUIRE(inv->resolve("abcdEFGHijklMNOPqrstU").id == a.id);
    // prefixes are case-sensitive, like base64
    REQUIRE_THROWS_AS(inv->resolve("zZ9yxwvutsrqponm"), NotFound);
    // shorter than 16 characters: an impostor could make a key matching it, so it is refused even if unique
    for (auto shortPrefix : { "Zz9yxwvutsrqpon", "SHA256:Zz9", "Zz9y", "SHA256:abcd", "abcd" }) {
        INFO(shortPrefix);
        REQUIRE_THROWS_WITH(inv->resolve(shortPrefix), Catch::Contains("at least 16 base64 characters"));
        REQUIRE_THROWS_AS(inv->resolve(shortPrefix), NotFound);
    }
    REQUIRE_THROWS_WITH(inv->resolve("nothing-here"), Catch::Contains("no device matches \"nothing-here\""));
    REQUIRE_THROWS_AS(inv->resolve("999"), NotFound);
    REQUIRE_THROWS_AS(inv->resolve(""), NotFound);

    try {
        inv->resolve("SHA256:abcdEFGHijklMNOPqrst");
        FAIL("expected Ambiguous");
    } catch (const Ambiguous& err) {
        std::string msg = err.what();
        REQUIRE(msg.find("\"SHA256:abcdEFGHijklMNOPqrst\" matches 2 devices") != std::string::npos);
        REQUIRE(msg.find(FpA + " (router-1)") != std::string::npos);
        REQUIRE(msg.find(FpE + " (unnamed)") != std::string::npos);
    }
    REQUIRE_THROWS_AS(inv->resolve("abcdEFGHijklMNOP"), Ambiguous);
    // Ambiguous and NotFound are UsageErrors (callhomectl prints them as such)
    REQUIRE_THROWS_AS(inv->resolve("abcdEFGHijklMNOP"), UsageError);
    (void)e;
}

TEST_CASE("sameAddressAs flags a new key from a known device's address")
{
    TestInventory dir;
    auto inv = openForTest(dir.db());
    auto oldDev = inv->recordContact(Transport::Ssh, FpA, "ssh-rsa", "192.0.2.10", at(1000)).device;
    auto olderDev = inv->recordContact(Transport::Ssh, FpD, "ssh-rsa", "192.0.2.10", at(500)).device;

    // while the devices are pending, their address does not flag anything
    auto p1 = inv->recordContact(Transport::Ssh, FpB, "ssh-ed25519", "192.0.2.10", at(2000)).device;
    REQUIRE(!p1.sameAddressAs);

    inv->approve(oldDev.id, std::string("edge-a"), std::nullopt);
    inv->approve(olderDev.id, std::string("edge-d"), std::nullopt);
    auto p2 = inv->recordContact(Transport::Ssh, FpC, "ssh-ed25519", "192.0.2.10", at(3000)).device;
    REQUIRE(p2.sameAddressAs == oldDev.id); // the most recently seen one
    // a second contact does not change the flag, an unrelated address gives none
    REQUIRE(inv->recordContact(Transport::Ssh, FpC, "ssh-ed25519", "192.0.2.99", at(4000)).device.sameAddressAs
        == oldDev.id);
    inv->forget(p1.id);
    auto p3 = inv->recordContact(Transport::Ssh, FpB, "ssh-ed25519", "198.51.100.1", at(5000)).device;
    REQUIRE(!p3.sameAddressAs);

    // forgetting the flagged-against device clears the reference
    inv->forget(oldDev.id);
    REQUIRE(!inv->findById(p2.id)->sameAddressAs);
}

TEST_CASE("rekey moves a device to a new key and retires the old one")
{
    TestInventory dir;
    auto inv = openForTest(dir.db());
    auto dev = inv->recordContact(Transport::Ssh, FpA, "ssh-rsa", "192.0.2.10", at(1000)).device;
    inv->approve(dev.id, std::string("edge-7"), std::string("admin"));
    inv->revoke(dev.id);
    auto fresh = inv->recordContact(Transport::Ssh, FpB, "ssh-ed25519", "192.0.2.11", at(2000)).device;
    inv->recordContact(Transport::Ssh, FpB, "ssh-ed25519", "192.0.2.12", at(3000));
    inv->addEvent({ .at = at(3000),
        .kind = EventKind::Pending,
        .deviceId = fresh.id,
        .connectionId = "C9",
        .address = "192.0.2.12",
        .detail = "unknown key" });
    auto other = pending(*inv, FpC);

    REQUIRE_THROWS_AS(inv->rekey(dev.id, dev.id), UsageError);
    REQUIRE_THROWS_WITH(inv->rekey(fresh.id, other.id), Catch::Contains("is pending"));
    REQUIRE_THROWS_WITH(inv->rekey(dev.id, dev.id + 1000), Catch::Contains("no device"));
    auto third = pending(*inv, FpD);
    inv->approve(third.id, std::string("third"), std::nullopt);
    REQUIRE_THROWS_WITH(inv->rekey(dev.id, third.id), Catch::Contains("rekey needs a pending key"));

    auto moved = inv->rekey(dev.id, fresh.id);
    REQUIRE(moved.id == dev.id);
    REQUIRE(moved.name == "edge-7");
    REQUIRE(moved.sshUser == "admin");
    REQUIRE(moved.state == DeviceState::Approved);
    REQUIRE(moved.fingerprint == FpB);
    REQUIRE(moved.keyType == "ssh-ed25519");
    REQUIRE(moved.lastAddress == "192.0.2.12");
    REQUIRE(moved.attempts == 2);
    REQUIRE(moved.decidedBy == "operator");
    REQUIRE(!inv->findById(fresh.id));
    REQUIRE(inv->findByFingerprint(FpB)->id == dev.id);
    REQUIRE(!inv->findByFingerprint(FpA));

    auto log = inv->events({ .deviceId = dev.id });
    REQUIRE(log.back().kind == EventKind::Rekeyed);
    REQUIRE(log.back().detail.find(FpA) != std::string::npos);
    REQUIRE(log.back().detail.find(FpB) != std::string::npos);
    // the pending key's contact history now belongs to the device
    REQUIRE(std::any_of(log.begin(), log.end(), [](const Event& e) { return e.connectionId == "C9"; }));

    // the retired key is not trusted: it comes back as a new pending device
    auto again = inv->recordContact(Transport::Ssh, FpA, "ssh-rsa", "192.0.2.10", at(9000));
    REQUIRE(again.created);
    REQUIRE(again.device.state == DeviceState::Pending);
    REQUIRE(again.device.id != dev.id);
    REQUIRE(again.device.sameAddressAs == std::nullopt); // edge-7 was last seen at .12 now

    // the retired identity is recorded (in SQLite's table: PostgreSQL's schema is checked by its own tests)
    if (dir.postgres()) {
        return;
    }
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open_v2(dir.db().c_str(), &raw, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(
        sqlite3_prepare_v2(raw, "SELECT device_id, fingerprint, key_type FROM retired_identities", -1, &stmt, nullptr)
        == SQLITE_OK);
    REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
    REQUIRE(sqlite3_column_int64(stmt, 0) == dev.id);
    REQUIRE(std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 1))) == FpA);
    REQUIRE(std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 2))) == "ssh-rsa");
    REQUIRE(sqlite3_step(stmt) == SQLITE_DONE);
    sqlite3_finalize(stmt);
    sqlite3_close(raw);
}

TEST_CASE("forget deletes the device and keeps its history readable")
{
    TestInventory dir;
    auto inv = openForTest(dir.db());
    auto d = pending(*inv, FpA, "192.0.2.5");
    inv->approve(d.id, std::string("gone"), std::nullopt);
    inv->listenerStarted("L1", now());
    inv->sessionOpened(d.id, "L1", now(), { "urn:ietf:params:netconf:base:1.1" });
    inv->addEvent({ .at = now(),
        .kind = EventKind::SessionOpened,
        .deviceId = d.id,
        .connectionId = "C1",
        .address = "192.0.2.5" });
    auto keep = pending(*inv, FpB);

    inv->forget(d.id);
    REQUIRE(!inv->findById(d.id));
    REQUIRE_THROWS_AS(inv->resolve("gone"), NotFound);
    REQUIRE(inv->devices().size() == 1);
    REQUIRE(inv->devices().front().id == keep.id);

    auto all = inv->events({});
    REQUIRE(all.size() == 3);
    for (const auto& e : all) {
        REQUIRE(!e.deviceId);
        REQUIRE(e.deviceName == "gone");
        REQUIRE(e.fingerprint == FpA);
    }
    REQUIRE(all[1].kind == EventKind::SessionOpened);
    REQUIRE(all[1].connectionId == "C1");
    REQUIRE(all[2].kind == EventKind::Forgotten);
    REQUIRE(all[2].address == "192.0.2.5");
    // the name is free again
    REQUIRE(inv->approve(keep.id, std::string("gone"), std::nullopt).name == "gone");
}

TEST_CASE("event log filters")
{
    TestInventory dir;
    auto inv = openForTest(dir.db());
    auto a = pending(*inv, FpA);
    auto b = pending(*inv, FpB);
    for (int i = 0; i < 10; ++i) {
        inv->addEvent({ .at = at(1000 * (i + 1)),
            .kind = i % 2 ? EventKind::Accepted : EventKind::HandshakeFailed,
            .deviceId = i % 2 ? a.id : b.id,
            .connectionId = "C" + std::to_string(i),
            .address = "192.0.2.1",
            .detail = "n" + std::to_string(i) });
    }
    inv->addEvent({ .at = at(500), .kind = EventKind::Refused, .address = "203.0.113.9", .detail = "rate limited" });

    auto all = inv->events({});
    REQUIRE(all.size() == 11);
    REQUIRE(all.front().detail == "rate limited"); // oldest first by time
    REQUIRE(all.back().detail == "n9");
    REQUIRE(!all.front().deviceId);
    REQUIRE(all[1].fingerprint == FpB); // filled in from the device
    REQUIRE(all[1].id > 0);

    auto onlyA = inv->events({ .deviceId = a.id });
    REQUIRE(onlyA.size() == 5);
    REQUIRE(std::all_of(onlyA.begin(), onlyA.end(), [&](const Event& e) { return e.deviceId == a.id; }));

    auto since = inv->events({ .since = at(8000) });
    REQUIRE(since.size() == 3);
    REQUIRE(since.front().detail == "n7");

    auto newest = inv->events({ .limit = 2 });
    REQUIRE(newest.size() == 2);
    REQUIRE(newest[0].detail == "n8");
    REQUIRE(newest[1].detail == "n9");

    auto combined = inv->events({ .deviceId = b.id, .since = at(3000), .limit = 2 });
    REQUIRE(combined.size() == 2);
    REQUIRE(combined[0].detail == "n6");
    REQUIRE(combined[1].detail == "n8");
    REQUIRE(inv->events({ .limit = 0 }).empty());
}

TEST_CASE("connected follows live sessions of listeners with a fresh heartbeat")
{
    TestInventory dir;
    auto inv = openForTest(dir.db());
    auto d = pending(*inv, FpA);
    inv->approve(d.id, std::string("edge-1"), std::nullopt);
    REQUIRE(!inv->findById(d.id)->connected);

    inv->listenerStarted("L1", now());
    auto start = now();
    inv->sessionOpened(d.id, "L1", start, { "urn:ietf:params:netconf:base:1.0", "urn:example:x?module=x" });
    auto live = *inv->findById(d.id);
    REQUIRE(live.connected);
    REQUIRE(live.sessionStart == start);
    REQUIRE(
        live.capabilities == std::vector<std::string> { "urn:ietf:params:netconf:base:1.0", "urn:example:x?module=x" });

    SECTION("stale heartbeat")
    {
        inv->heartbeat("L1", now() - HeartbeatWindow - 1s);
        auto stale = *inv->findById(d.id);
        REQUIRE(!stale.connected);
        REQUIRE(!stale.sessionStart);
        REQUIRE(stale.capabilities.size() == 2); // capabilities stay from the last hello
        inv->heartbeat("L1", now());
        REQUIRE(inv->findById(d.id)->connected);
        // just inside the window
        inv->heartbeat("L1", now() - HeartbeatWindow + 2s);
        REQUIRE(inv->findById(d.id)->connected);
    }

    SECTION("session closed")
    {
        inv->sessionClosed(d.id, "L1");
        REQUIRE(!inv->findById(d.id)->connected);
    }

    SECTION("listener restart drops its sessions")
    {
        inv->listenerStarted("L1", now());
        REQUIRE(!inv->findById(d.id)->connected);
    }

    SECTION("listener stopped")
    {
        inv->listenerStopped("L1");
        REQUIRE(!inv->findById(d.id)->connected);
        REQUIRE_THROWS_WITH(inv->sessionOpened(d.id, "L1", now(), {}), Catch::Contains("not registered"));
    }

    SECTION("another live listener keeps the device connected")
    {
        inv->listenerStarted("L2", now());
        auto later = now() + 5ms;
        inv->sessionOpened(d.id, "L2", later, {});
        inv->heartbeat("L1", now() - 1h);
        auto dev = *inv->findById(d.id);
        REQUIRE(dev.connected);
        REQUIRE(dev.sessionStart == later);
        REQUIRE(dev.capabilities.empty());
    }

    SECTION("forget removes the session")
    {
        inv->forget(d.id);
        REQUIRE(inv->devices().empty());
    }
}

TEST_CASE("several instances: the holder is the newest live session's listener; a session is a change; endpoints")
{
    ScratchDir dir;
    auto inv = openSqlite(dir.db());
    auto d = pending(*inv, FpA);
    inv->approve(d.id, std::string("edge-1"), std::nullopt);
    inv->listenerStarted("a", now());
    inv->listenerStarted("b", now());
    REQUIRE(!inv->findById(d.id)->listenerId);

    auto seq = inv->lastChange();
    inv->sessionOpened(d.id, "a", now(), {});
    REQUIRE(inv->findById(d.id)->listenerId == "a");
    // a session opened is a change of its device: every instance following the change log sees it
    auto changes = inv->changesAfter(seq, 100);
    REQUIRE(changes.size() == 1);
    REQUIRE(changes[0].deviceId == d.id);

    // the device calls b: b's newer session holds it, while a still has its row
    seq = inv->lastChange();
    inv->sessionOpened(d.id, "b", now() + 5ms, {});
    auto held = *inv->findById(d.id);
    REQUIRE(held.connected);
    REQUIRE(held.listenerId == "b");
    REQUIRE(inv->changesAfter(seq, 100).size() == 1);
    std::vector<std::optional<std::string>> listed;
    inv->forEachDevice({}, [&](const Device& x) { listed.push_back(x.listenerId); });
    REQUIRE(listed == std::vector<std::optional<std::string>> { std::string("b") });

    // a closes its stale session: still b; b's heartbeat goes stale: nobody holds it (a's row is gone)
    inv->sessionClosed(d.id, "a");
    REQUIRE(inv->findById(d.id)->listenerId == "b");
    inv->heartbeat("b", now() - HeartbeatWindow - 1s);
    REQUIRE(!inv->findById(d.id)->listenerId);
    REQUIRE(!inv->findById(d.id)->connected);

    // control endpoints, for forwarding
    inv->setControlEndpoint("a", "127.0.0.1:4336");
    inv->setControlEndpoint("b", "[::1]:4337");
    auto listeners = inv->listeners();
    REQUIRE(listeners.size() == 2);
    REQUIRE(listeners[0].id == "a");
    REQUIRE(listeners[0].alive);
    REQUIRE(listeners[0].controlEndpoint == "127.0.0.1:4336");
    REQUIRE(listeners[1].id == "b");
    REQUIRE(!listeners[1].alive);
    REQUIRE(listeners[1].controlEndpoint == "[::1]:4337");
    inv->setControlEndpoint("a", "");
    REQUIRE(inv->listeners()[0].controlEndpoint.empty());
    REQUIRE_THROWS_WITH(inv->setControlEndpoint("c", "127.0.0.1:1"), Catch::Contains("not registered"));
    inv->listenerStopped("b");
    REQUIRE(inv->listeners().size() == 1);
}
