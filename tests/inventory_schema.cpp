// Opening, migrating and refusing inventory files; the public views and the append-only event log.
#include "RawSqlite.h"
#include "ScratchDir.h"
#include "inventory/CredentialStore.h"
#include "inventory/Inventory.h"
#include "inventory/SqliteInventory.h"
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sqlite3.h>
#include <sys/stat.h>
#include <tuple>

namespace fs = std::filesystem;
using namespace callhome;
using namespace callhome::inventory;
using namespace std::chrono_literals;

using callhome::test::exec;
using callhome::test::raw;
using callhome::test::RawDb;
using callhome::test::ScratchDir;

namespace {
const std::string FpA = "SHA256:abcdEFGHijklMNOPqrstUVWXyz0123456789+/AbCdE";

std::string readBytes(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

void writeBytes(const std::string& path, const std::string& bytes)
{
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
    REQUIRE(out.good());
}

/** First row of a query as strings (NULL → "<null>"), with the column names. */
std::vector<std::pair<std::string, std::string>> row(sqlite3* db, const std::string& sql)
{
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
    std::vector<std::pair<std::string, std::string>> out;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
            auto text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
            out.emplace_back(sqlite3_column_name(stmt, i), text ? text : "<null>");
        }
    }
    sqlite3_finalize(stmt);
    return out;
}

std::string scalar(sqlite3* db, const std::string& sql)
{
    auto r = row(db, sql);
    REQUIRE(!r.empty());
    return r.front().second;
}

std::string value(const std::vector<std::pair<std::string, std::string>>& r, const std::string& column)
{
    for (const auto& [name, v] : r) {
        if (name == column) {
            return v;
        }
    }
    FAIL("no column " << column);
    return {};
}
} // namespace

TEST_CASE("a new inventory is created, marked and migrated")
{
    ScratchDir dir;
    int64_t id;
    {
        auto inv = openSqlite(dir.db());
        id = inv->recordContact(Transport::Ssh, FpA, "ssh-ed25519", "192.0.2.1", now()).device.id;
    }
    REQUIRE(SqliteInventory::knownSchemaVersion() >= 1);
    auto db = raw(dir.db());
    REQUIRE(scalar(db.get(), "PRAGMA user_version") == std::to_string(SqliteInventory::knownSchemaVersion()));
    REQUIRE(scalar(db.get(), "PRAGMA application_id") == std::to_string(ApplicationId));
    REQUIRE(scalar(db.get(), "PRAGMA journal_mode") == "wal");
    db.reset();

    // reopening keeps data and does not migrate again
    auto again = openSqlite(dir.db());
    REQUIRE(again->findById(id)->fingerprint == FpA);
    auto reader = openSqliteExisting(dir.db());
    REQUIRE(reader->findById(id)->fingerprint == FpA);
}

TEST_CASE("openSqliteExisting neither creates nor migrates")
{
    ScratchDir dir;
    REQUIRE_THROWS_WITH(openSqliteExisting(dir.db()), "no inventory at " + dir.db());
    REQUIRE(!fs::exists(dir.db()));

    // an empty file is not an inventory either
    writeBytes(dir.db(), "");
    REQUIRE_THROWS_WITH(openSqliteExisting(dir.db()), Catch::Contains("not a callhome inventory"));
    REQUIRE(fs::file_size(dir.db()) == 0);

    // a file an older build created: ours (application_id) but with fewer migrations applied
    fs::remove(dir.db());
    {
        auto db = raw(dir.db(), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
        REQUIRE(exec(db.get(), "PRAGMA application_id = " + std::to_string(ApplicationId) + "; PRAGMA user_version = 0")
            == "");
    }
    auto before = readBytes(dir.db());
    REQUIRE_THROWS_WITH(openSqliteExisting(dir.db()),
        Catch::Contains("schema version 0") && Catch::Contains("start callhomed once to migrate"));
    REQUIRE(readBytes(dir.db()) == before);
    // the daemon migrates it
    auto inv = openSqlite(dir.db());
    inv->recordContact(Transport::Ssh, FpA, "ssh-ed25519", "192.0.2.1", now());
    REQUIRE(openSqliteExisting(dir.db())->devices().size() == 1);
}

TEST_CASE("files that are not a usable inventory are refused untouched")
{
    ScratchDir dir;
    const auto path = dir.db();
    std::string expected;

    SECTION("not a database")
    {
        writeBytes(path, std::string("this is a text file, not SQLite\n") + std::string(5000, 'x'));
        expected = "not a SQLite database";
    }

    SECTION("corrupt")
    {
        {
            auto inv = openSqlite(path);
            for (int i = 0; i < 300; ++i) {
                auto d = inv->recordContact(Transport::Ssh, "SHA256:device" + std::to_string(i) + std::string(30, 'q'),
                    "ssh-ed25519", "192.0.2." + std::to_string(i % 250), now());
                inv->addEvent({ .at = now(),
                    .kind = EventKind::Pending,
                    .deviceId = d.device.id,
                    .detail = std::string(100, 'd') });
            }
        }
        auto bytes = readBytes(path);
        REQUIRE(bytes.size() > 6 * 4096);
        REQUIRE(!fs::exists(path + "-wal")); // checkpointed on close: the main file has everything
        // Scribble over pages 3..5, keeping the header intact so that the file is still "SQLite".
        for (size_t i = 2 * 4096; i < 5 * 4096; ++i) {
            bytes[i] = static_cast<char>((i * 7919) & 0xff);
        }
        writeBytes(path, bytes);
        expected = "is corrupt";
    }

    SECTION("newer schema")
    {
        {
            auto inv = openSqlite(path);
            inv->recordContact(Transport::Ssh, FpA, "ssh-ed25519", "192.0.2.1", now());
        }
        auto db = raw(path);
        REQUIRE(
            exec(db.get(), "PRAGMA user_version = " + std::to_string(SqliteInventory::knownSchemaVersion() + 1)) == "");
        db.reset();
        expected = "newer than this build knows";
    }

    SECTION("another application's database")
    {
        auto db = raw(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
        REQUIRE(
            exec(db.get(), "PRAGMA application_id = 305419896; CREATE TABLE devices (id INTEGER PRIMARY KEY)") == "");
        db.reset();
        expected = "application_id 0x12345678";
    }

    SECTION("a SQLite database without any application_id")
    {
        auto db = raw(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
        REQUIRE(exec(db.get(), "CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('hello')") == "");
        db.reset();
        expected = "not a callhome inventory";
    }

    const auto before = readBytes(path);
    REQUIRE_THROWS_AS(openSqlite(path), DatabaseError);
    REQUIRE_THROWS_WITH(openSqlite(path), Catch::Contains(expected) && Catch::Contains(path));
    if (expected == "is corrupt") {
        // Readers skip the whole-file check (its cost grows with the file); damage shows when it is read, or on
        // checkIntegrity() (callhomectl check).
        try {
            auto reader = openSqliteExisting(path);
            REQUIRE(!reader->checkIntegrity().empty());
        } catch (const DatabaseError& e) {
            REQUIRE_THAT(e.what(), Catch::Contains("corrupt") || Catch::Contains("malformed"));
        }
    } else {
        REQUIRE_THROWS_WITH(openSqliteExisting(path), Catch::Contains(expected));
    }
    REQUIRE(readBytes(path) == before);
}

TEST_CASE("events are append-only")
{
    ScratchDir dir;
    auto inv = openSqlite(dir.db());
    auto d = inv->recordContact(Transport::Ssh, FpA, "ssh-ed25519", "192.0.2.1", now()).device;
    inv->addEvent({ .at = now(), .kind = EventKind::Pending, .deviceId = d.id, .detail = "first contact" });

    auto db = raw(dir.db());
    REQUIRE(exec(db.get(), "PRAGMA foreign_keys = ON") == "");
    REQUIRE(exec(db.get(), "UPDATE events SET detail = 'rewritten'") == "events are append-only");
    REQUIRE(exec(db.get(), "UPDATE events SET at = 0") == "events are append-only");
    REQUIRE(exec(db.get(), "UPDATE events SET kind = 'approved'") == "events are append-only");
    REQUIRE(exec(db.get(), "DELETE FROM events") == "events are append-only");
    REQUIRE(exec(db.get(), "INSERT INTO events (at, kind, detail) VALUES (4102444800000, 'refused', 'appending works')")
        == "");
    REQUIRE(inv->events({}).size() == 2);
    REQUIRE(inv->events({}).front().detail == "first contact");
    // deleting the device nulls device_id, the one change allowed
    REQUIRE(exec(db.get(), "DELETE FROM devices") == "");
    REQUIRE(scalar(db.get(), "SELECT COUNT(*) FROM events WHERE device_id IS NULL") == "2");
}

TEST_CASE("public views")
{
    ScratchDir dir;
    auto inv = openSqlite(dir.db());
    const auto seen = TimePoint(std::chrono::milliseconds(1'700'000'000'007));
    auto d = inv->recordContact(Transport::Ssh, FpA, "ssh-ed25519", "2001:db8::7", seen).device;
    auto approved = inv->approve(d.id, std::string("edge-9"), std::string("admin"));
    inv->listenerStarted("L1", now());
    const auto start = now();
    inv->sessionOpened(d.id, "L1", start, { "urn:ietf:params:netconf:base:1.1" });
    inv->addEvent(
        { .at = seen, .kind = EventKind::Accepted, .deviceId = d.id, .connectionId = "C3", .address = "2001:db8::7" });

    auto db = raw(dir.db(), SQLITE_OPEN_READONLY);
    auto dev = row(db.get(), "SELECT * FROM v_devices");
    std::vector<std::string> columns;
    for (const auto& [name, v] : dev) {
        columns.push_back(name);
    }
    REQUIRE(columns
        == std::vector<std::string> { "id", "name", "state", "transport", "fingerprint", "key_type", "ssh_user",
            "last_address", "first_seen", "last_seen", "attempts", "same_address_as", "decided_at", "decided_by",
            "capabilities", "connected", "session_start", "listener_id", "manufacturer", "serial", "cert_subject",
            "cert_issuer", "password_set", "key_set", "password_fallback" });
    REQUIRE(value(dev, "id") == std::to_string(d.id));
    REQUIRE(value(dev, "name") == "edge-9");
    REQUIRE(value(dev, "state") == "approved");
    REQUIRE(value(dev, "transport") == "ssh");
    REQUIRE(value(dev, "fingerprint") == FpA);
    REQUIRE(value(dev, "ssh_user") == "admin");
    REQUIRE(value(dev, "last_address") == "2001:db8::7");
    REQUIRE(value(dev, "first_seen") == "2023-11-14T22:13:20.007Z");
    REQUIRE(value(dev, "first_seen") == toIso8601(seen));
    REQUIRE(value(dev, "decided_at") == toIso8601(*approved.decidedAt));
    REQUIRE(value(dev, "same_address_as") == "<null>");
    REQUIRE(value(dev, "capabilities") == R"(["urn:ietf:params:netconf:base:1.1"])");
    REQUIRE(value(dev, "connected") == "1");
    REQUIRE(value(dev, "session_start") == toIso8601(start));
    REQUIRE(value(dev, "listener_id") == "L1");
    REQUIRE(value(dev, "manufacturer") == "");
    REQUIRE(value(dev, "serial") == "");
    REQUIRE(value(dev, "cert_subject") == "");
    REQUIRE(value(dev, "cert_issuer") == "");
    REQUIRE(value(dev, "password_set") == "0");
    REQUIRE(value(dev, "key_set") == "0");
    REQUIRE(value(dev, "password_fallback") == "0");

    inv->heartbeat("L1", now() - HeartbeatWindow - 1s);
    dev = row(db.get(), "SELECT * FROM v_devices");
    REQUIRE(value(dev, "connected") == "0");
    REQUIRE(value(dev, "session_start") == "<null>");
    REQUIRE(value(dev, "listener_id") == "<null>");

    auto ev = row(db.get(), "SELECT * FROM v_events WHERE kind = 'accepted'");
    REQUIRE(value(ev, "at") == toIso8601(seen));
    REQUIRE(value(ev, "at_ms") == "1700000000007");
    REQUIRE(value(ev, "device_id") == std::to_string(d.id));
    REQUIRE(value(ev, "device_name") == "edge-9");
    REQUIRE(value(ev, "connection_id") == "C3");
    REQUIRE(value(ev, "address") == "2001:db8::7");
    REQUIRE(value(ev, "fingerprint") == FpA);
    REQUIRE(value(ev, "detail") == "");
    REQUIRE(scalar(db.get(), "SELECT kind FROM v_events ORDER BY id LIMIT 1") == "approved");
}

TEST_CASE("public views: TLS devices (since schema version 2)")
{
    ScratchDir dir;
    auto inv = openSqlite(dir.db());
    const auto fp = std::string("SHA256:AB:CD:EF:01");
    auto expected = inv->expect({ { .serial = "SN0001", .manufacturer = "example", .name = "r-1" },
        { .serial = "SN0002", .manufacturer = "example" } });
    const auto seen = TimePoint(std::chrono::milliseconds(1'700'000'000'007));
    inv->recordTlsContact({ .manufacturer = "example",
                              .serial = "SN0001",
                              .fingerprint = fp,
                              .subject = "CN=r-1,serialNumber=SN0001,O=Example",
                              .issuer = "CN=Example CA,O=Example" },
        "192.0.2.1", seen);

    auto db = raw(dir.db(), SQLITE_OPEN_READONLY);
    auto called = row(db.get(), "SELECT * FROM v_devices WHERE serial = 'SN0001'");
    REQUIRE(value(called, "id") == std::to_string(expected[0].id));
    REQUIRE(value(called, "transport") == "tls");
    REQUIRE(value(called, "state") == "approved");
    REQUIRE(value(called, "decided_by") == "pre-provisioned");
    REQUIRE(value(called, "manufacturer") == "example");
    REQUIRE(value(called, "cert_subject") == "CN=r-1,serialNumber=SN0001,O=Example");
    REQUIRE(value(called, "cert_issuer") == "CN=Example CA,O=Example");
    REQUIRE(value(called, "fingerprint") == fp);
    REQUIRE(value(called, "key_type") == "");
    REQUIRE(value(called, "first_seen") == toIso8601(seen));
    REQUIRE(value(called, "attempts") == "1");

    // expected and never called: no fingerprint, never seen
    auto waiting = row(db.get(), "SELECT * FROM v_devices WHERE serial = 'SN0002'");
    REQUIRE(value(waiting, "name") == "<null>");
    REQUIRE(value(waiting, "fingerprint") == "<null>");
    REQUIRE(value(waiting, "first_seen") == "<null>");
    REQUIRE(value(waiting, "last_seen") == "<null>");
    REQUIRE(value(waiting, "attempts") == "0");
    REQUIRE(value(waiting, "last_address") == "");
    REQUIRE(value(waiting, "decided_at") != "<null>");
}

namespace {
/** A version-1 inventory as a build before schema 2 left it: only 0001-initial.sql applied, with data. */
void createVersion1(const std::string& path, int64_t nowMs)
{
    std::ifstream in(std::string(CALLHOME_SOURCE_DIR) + "/schemas/sql/0001-initial.sql");
    REQUIRE(in);
    const std::string initial(std::istreambuf_iterator<char>(in), {});
    auto db = raw(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    REQUIRE(exec(db.get(), "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON") == "");
    REQUIRE(exec(db.get(),
                "BEGIN; " + initial + "; PRAGMA user_version = 1; PRAGMA application_id = "
                    + std::to_string(ApplicationId) + "; COMMIT")
        == "");
    const auto t = std::to_string(nowMs);
    REQUIRE(
        exec(db.get(),
            "INSERT INTO devices (id, name, state, transport, fingerprint, key_type, ssh_user, last_address, "
            "first_seen, last_seen, attempts, decided_at, decided_by, capabilities) VALUES "
            "(1, 'edge-1', 'approved', 'ssh', 'SHA256:edgeOne', 'ssh-ed25519', 'admin', '192.0.2.1', 1000, "
                + t
                + ", 7, 2000, 'operator', '[\"urn:ietf:params:netconf:base:1.1\"]');"
                  "INSERT INTO devices (id, state, transport, fingerprint, key_type, last_address, first_seen, "
                  "last_seen, attempts, same_address_as) VALUES "
                  "(2, 'pending', 'ssh', 'SHA256:newKey', 'ecdsa-sha2-nistp256', '192.0.2.1', 3000, 3000, 1, 1);"
                  "INSERT INTO devices (id, name, state, transport, fingerprint, key_type, last_address, "
                  "first_seen, last_seen, attempts, decided_at, decided_by) VALUES "
                  "(5, 'old-box', 'revoked', 'ssh', 'SHA256:oldBox', 'ssh-rsa', '192.0.2.5', 10, 20, 3, 30, "
                  "'operator');"
                  "INSERT INTO retired_identities (device_id, fingerprint, key_type, retired_at) VALUES "
                  "(1, 'SHA256:edgeOld', 'ssh-rsa', 1500);"
                  "INSERT INTO listeners (id, started_at, heartbeat_at) VALUES ('L1', "
                + t + ", " + t
                + ");"
                  "INSERT INTO sessions (device_id, listener_id, started_at) VALUES (1, 'L1', "
                + t
                + ");"
                  "INSERT INTO events (at, kind, device_id, device_name, connection_id, address, fingerprint, detail) "
                  "VALUES (1000, 'pending', 1, '', 'C1', '192.0.2.1', 'SHA256:edgeOne', ''),"
                  "(2000, 'approved', 1, 'edge-1', '', '', 'SHA256:edgeOne', 'approved as edge-1 (was pending)'),"
                  "(3000, 'pending', 2, '', 'C2', '192.0.2.1', 'SHA256:newKey', ''),"
                  "(4000, 'forgotten', NULL, 'gone', '', '', 'SHA256:gone', 'forgot device 4 (pending)');")
        == "");
}
} // namespace

TEST_CASE("migration 1 -> 2 keeps devices, events, sessions and references")
{
    ScratchDir dir;
    createVersion1(dir.db(), now().time_since_epoch().count());
    {
        auto db = raw(dir.db());
        REQUIRE(scalar(db.get(), "PRAGMA user_version") == "1");
    }
    // readers refuse the old schema; the daemon migrates it
    REQUIRE_THROWS_WITH(openSqliteExisting(dir.db()), Catch::Contains("schema version 1"));
    auto inv = openSqlite(dir.db());
    {
        auto db = raw(dir.db(), SQLITE_OPEN_READONLY);
        // every later migration applies on top (schema 3: blocked sources)
        REQUIRE(scalar(db.get(), "PRAGMA user_version") == std::to_string(SqliteInventory::knownSchemaVersion()));
        REQUIRE(scalar(db.get(), "PRAGMA integrity_check") == "ok");
        REQUIRE(row(db.get(), "PRAGMA foreign_key_check").empty());
        // the rebuilt table took the old name: no leftovers, and the other tables' foreign keys point at it
        REQUIRE(scalar(db.get(), "SELECT COUNT(*) FROM sqlite_master WHERE sql LIKE '%devices_new%'") == "0");
        REQUIRE(scalar(db.get(), "SELECT COUNT(*) FROM pragma_foreign_key_list('sessions') WHERE \"table\" = 'devices'")
            == "1");
        REQUIRE(scalar(db.get(),
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'devices' "
                    "AND name IN ('devices_last_address', 'devices_same_address_as', "
                    "'devices_manufacturer_serial')")
            == "3");
        REQUIRE(scalar(db.get(), "SELECT COUNT(*) FROM events") == "4");
        REQUIRE(scalar(db.get(), "SELECT COUNT(*) FROM retired_identities WHERE device_id = 1") == "1");
        auto edge = row(db.get(), "SELECT * FROM v_devices WHERE id = 1");
        REQUIRE(value(edge, "connected") == "1");
        REQUIRE(value(edge, "listener_id") == "L1");
        REQUIRE(value(edge, "serial") == "");
        REQUIRE(value(edge, "first_seen") == "1970-01-01T00:00:01.000Z");
    }

    auto devices = inv->devices();
    REQUIRE(devices.size() == 3);
    const auto& edge = devices[0];
    REQUIRE(edge.id == 1);
    REQUIRE(edge.name == "edge-1");
    REQUIRE(edge.state == DeviceState::Approved);
    REQUIRE(edge.fingerprint == "SHA256:edgeOne");
    REQUIRE(edge.keyType == "ssh-ed25519");
    REQUIRE(edge.sshUser == "admin");
    REQUIRE(edge.attempts == 7);
    REQUIRE(edge.firstSeen == TimePoint(std::chrono::milliseconds(1000)));
    REQUIRE(edge.decidedBy == "operator");
    REQUIRE(edge.connected);
    REQUIRE(edge.capabilities == std::vector<std::string> { "urn:ietf:params:netconf:base:1.1" });
    REQUIRE(devices[1].id == 2);
    REQUIRE(devices[1].sameAddressAs == 1);
    REQUIRE(devices[2].id == 5);
    REQUIRE(devices[2].state == DeviceState::Revoked);
    auto log = inv->events({});
    REQUIRE(log.size() == 4);
    REQUIRE(log[1].detail == "approved as edge-1 (was pending)");
    REQUIRE(log[2].deviceId == 2);
    REQUIRE(!log[3].deviceId);

    // the ids continue after the highest one and the old data behaves as before
    auto fresh = inv->recordContact(Transport::Ssh, FpA, "ssh-ed25519", "192.0.2.9", now()).device;
    REQUIRE(fresh.id == 6);
    REQUIRE(
        inv->recordContact(Transport::Ssh, "SHA256:edgeOne", "ssh-ed25519", "192.0.2.1", now()).device.attempts == 8);
    // foreign keys are enforced again and their actions reach the rebuilt table: forgetting edge-1 cascades to its
    // session and retired key, clears the pending key's same_address_as and detaches its events
    inv->forget(1);
    {
        auto db = raw(dir.db(), SQLITE_OPEN_READONLY);
        REQUIRE(scalar(db.get(), "SELECT COUNT(*) FROM sessions") == "0");
        REQUIRE(scalar(db.get(), "SELECT COUNT(*) FROM retired_identities") == "0");
        REQUIRE(scalar(db.get(), "SELECT COUNT(*) FROM events WHERE device_id = 1") == "0");
        REQUIRE(scalar(db.get(), "SELECT same_address_as FROM devices WHERE id = 2") == "<null>");
        // its capability list (moved into capability_sets by migration 8) went with the only device using it
        REQUIRE(scalar(db.get(), "SELECT COUNT(*) FROM capability_sets") == "0");
    }
    // the event log is still append-only
    {
        auto db = raw(dir.db());
        REQUIRE_THAT(exec(db.get(), "UPDATE events SET detail = 'x' WHERE id = 2"), Catch::Contains("append-only"));
        REQUIRE_THAT(exec(db.get(), "DELETE FROM events"), Catch::Contains("append-only"));
    }
    // TLS devices work on the migrated file, and readers open it
    inv->expect({ { .serial = "SN0001", .manufacturer = "example" } });
    REQUIRE(openSqliteExisting(dir.db())->resolve("SN0001").transport == Transport::Tls);
}

TEST_CASE("capability lists are stored once and dropped when unused (schema version 8)")
{
    ScratchDir dir;
    auto inv = openSqlite(dir.db());
    inv->listenerStarted("L1", now());
    const std::vector<std::string> modelA { "urn:ietf:params:netconf:base:1.1", "urn:example:a?module=a" };
    const std::vector<std::string> modelB { "urn:ietf:params:netconf:base:1.1", "urn:example:b?module=b" };
    std::vector<int64_t> ids;
    for (int i = 0; i < 4; ++i) {
        const auto fp = "SHA256:capabilitySetDevice" + std::to_string(i);
        ids.push_back(inv->recordContact(Transport::Ssh, fp, "ssh-ed25519", "192.0.2.1", now()).device.id);
        inv->approve(ids.back(), "dev-" + std::to_string(i), std::nullopt);
        inv->sessionOpened(ids.back(), "L1", now(), i % 2 ? modelB : modelA);
    }
    auto sets
        = [&] { return scalar(raw(dir.db(), SQLITE_OPEN_READONLY).get(), "SELECT COUNT(*) FROM capability_sets"); };
    REQUIRE(sets() == "2");
    // each device reads its own list, in a listing too (the listing reuses one decoded list per set)
    std::vector<std::vector<std::string>> listed;
    inv->forEachDevice({}, [&](const Device& d) { listed.push_back(d.capabilities); });
    REQUIRE(listed == std::vector<std::vector<std::string>> { modelA, modelB, modelA, modelB });
    REQUIRE(inv->findById(ids[1])->capabilities == modelB);
    // the view shows the list as before
    REQUIRE(scalar(raw(dir.db(), SQLITE_OPEN_READONLY).get(),
                "SELECT capabilities FROM v_devices WHERE id = " + std::to_string(ids[1]))
        == R"(["urn:ietf:params:netconf:base:1.1","urn:example:b?module=b"])");
    // the listing of the table leaves them out
    inv->forEachDevice({ .withCapabilities = false }, [&](const Device& d) { REQUIRE(d.capabilities.empty()); });

    // both B devices upgrade to C: B is unused and goes, C is new
    const std::vector<std::string> modelC { "urn:ietf:params:netconf:base:1.1", "urn:example:c?module=c" };
    inv->sessionOpened(ids[1], "L1", now(), modelC);
    REQUIRE(sets() == "3"); // ids[3] still has B
    inv->sessionOpened(ids[3], "L1", now(), modelC);
    REQUIRE(sets() == "2");
    REQUIRE(inv->findById(ids[3])->capabilities == modelC);
    // forgetting the A devices drops A with the last of them
    inv->forget(ids[0]);
    REQUIRE(sets() == "2");
    inv->forget(ids[2]);
    REQUIRE(sets() == "1");
    REQUIRE(inv->findById(ids[1])->capabilities == modelC);
}

TEST_CASE("long listings and short pages read the same live sessions")
{
    // A listing longer than a short page joins the live sessions in once; a short page looks each device up: both
    // must give the same connected flag, session start and holder (the newest live session; ties by listener id).
    ScratchDir dir;
    auto inv = openSqlite(dir.db());
    inv->listenerStarted("L1", now());
    inv->listenerStarted("L2", now());
    inv->listenerStarted("dead", now() - std::chrono::minutes(5));
    std::vector<int64_t> ids;
    for (int i = 0; i < 6; ++i) {
        const auto fp = "SHA256:listingFormsDevice" + std::to_string(i);
        ids.push_back(inv->recordContact(Transport::Ssh, fp, "ssh-ed25519", "192.0.2.1", now()).device.id);
        inv->approve(ids.back(), "dev-" + std::to_string(i), std::nullopt);
    }
    const auto t0 = now() - std::chrono::seconds(10);
    inv->sessionOpened(ids[0], "L1", t0, {});
    inv->sessionOpened(ids[1], "L1", t0, {});
    inv->sessionOpened(ids[1], "L2", t0 + std::chrono::seconds(1), {}); // newer: L2 holds it
    inv->sessionOpened(ids[2], "L1", t0, {});
    inv->sessionOpened(ids[2], "L2", t0, {}); // a tie: the greater listener id, as v_devices
    inv->sessionOpened(ids[3], "dead", t0, {}); // its listener's heartbeat is stale: not connected
    inv->heartbeat("dead", now() - std::chrono::minutes(5));
    using Row = std::tuple<int64_t, bool, std::optional<TimePoint>, std::optional<std::string>>;
    auto list = [&](DeviceFilter filter) {
        std::vector<Row> rows;
        inv->forEachDevice(
            filter, [&](const Device& d) { rows.emplace_back(d.id, d.connected, d.sessionStart, d.listenerId); });
        return rows;
    };
    const auto joined = list({});
    REQUIRE(joined.size() == 6);
    CHECK(joined == list({ .limit = 10 }));
    CHECK(std::get<3>(joined[0]) == "L1");
    CHECK(std::get<3>(joined[1]) == "L2");
    CHECK(std::get<2>(joined[1]) == t0 + std::chrono::seconds(1));
    CHECK(std::get<3>(joined[2]) == "L2");
    CHECK_FALSE(std::get<1>(joined[3]));
    CHECK_FALSE(std::get<3>(joined[3]));
    CHECK_FALSE(std::get<1>(joined[5]));
    // the connected filter, both forms
    CHECK(list({ .connected = true }) == list({ .connected = true, .limit = 10 }));
    CHECK(list({ .connected = true }).size() == 3);
    CHECK(list({ .connected = false }).size() == 3);
    CHECK(list({ .connected = false, .limit = 10 }).size() == 3);
    // and what findById (a lookup) says
    CHECK(inv->findById(ids[1])->listenerId == "L2");
}

TEST_CASE("credentials record: flags, change log and event, never a secret (schema version 7)")
{
    ScratchDir dir;
    auto inv = openSqlite(dir.db());
    auto d = inv->recordContact(Transport::Ssh, FpA, "ssh-ed25519", "192.0.2.7", now()).device;
    inv->approve(d.id, "edge-1", std::nullopt);
    const auto before = inv->lastChange();
    auto changed = inv->setCredentials(d.id, { .sshUser = "admin", .passwordSet = true, .passwordFallback = true });
    CHECK(changed.sshUser == "admin");
    CHECK(changed.passwordSet);
    CHECK_FALSE(changed.keySet);
    CHECK(changed.passwordFallback);
    // The identity index learns of it through the change log.
    CHECK(inv->lastChange() > before);
    auto events = inv->events({ .deviceId = d.id });
    REQUIRE_FALSE(events.empty());
    CHECK(events.back().kind == EventKind::CredentialsChanged);
    CHECK(events.back().detail.find("password set") != std::string::npos);
    CHECK(events.back().detail.find("password fallback allowed") != std::string::npos);
    auto cleared = inv->setCredentials(d.id, { .passwordSet = false, .passwordFallback = false });
    CHECK_FALSE(cleared.passwordSet);
    CHECK_FALSE(cleared.passwordFallback);
    CHECK(cleared.sshUser == "admin");
    CHECK_THROWS_AS(inv->setCredentials(d.id, {}), UsageError);
    CHECK_THROWS_AS(inv->setCredentials(d.id, { .sshUser = std::string("bad\nuser") }), UsageError);
}

TEST_CASE("credentials store: created 0600 whatever the umask, secrets set and cleared, too-open files refused")
{
    ScratchDir dir;
    const auto path = (dir.path / "credentials.db").string();
    CHECK_THROWS_WITH(CredentialStore(path, CredentialStore::Mode::ExistingOnly),
        Catch::Contains("no credentials store") && Catch::Contains("callhomed creates it"));
    const auto old = ::umask(0);
    std::optional<CredentialStore> store;
    store.emplace(path, CredentialStore::Mode::Create);
    ::umask(old);
    auto mode = [&] {
        struct stat st { };
        REQUIRE(::stat(path.c_str(), &st) == 0);
        return st.st_mode & 07777;
    };
    CHECK(mode() == 0600);
    CHECK_FALSE(store->get(7));
    store->setPassword(7, Secret("pw-7"));
    store->setPrivateKey(7, Secret("key text"));
    REQUIRE(store->get(7));
    CHECK(store->get(7)->password->reveal() == "pw-7");
    CHECK(store->get(7)->privateKey->reveal() == "key text");
    store->setPassword(7, std::nullopt);
    CHECK_FALSE(store->get(7)->password);
    store->setPrivateKey(7, std::nullopt);
    CHECK_FALSE(store->get(7)); // nothing left: the row is gone
    store->setPassword(8, Secret("pw-8"));
    store->setPassword(9, Secret("pw-9"));
    store->setPrivateKey(10, Secret("key-10"));
    store->setPassword(10, Secret("pw-10"));
    // 8 is gone (or its id is a new device's, without secrets), 9 keeps its password, 10 says it has a key only
    CHECK(store->prune([](int64_t id) {
        return CredentialStore::Wanted { .password = id == 9, .privateKey = id == 10 };
    }) == 2);
    CHECK_FALSE(store->get(8));
    CHECK(store->get(9));
    REQUIRE(store->get(10));
    CHECK_FALSE(store->get(10)->password);
    CHECK(store->get(10)->privateKey->reveal() == "key-10");
    store.reset();

    REQUIRE(::chmod(path.c_str(), 0644) == 0);
    CHECK_THROWS_WITH(CredentialStore(path, CredentialStore::Mode::ExistingOnly), Catch::Contains("permissions 0644"));
    CredentialStore daemon(path, CredentialStore::Mode::Create); // callhomed tightens it
    CHECK(mode() == 0600);
    CHECK(daemon.get(9)->password->reveal() == "pw-9");

    // Another SQLite file is not taken for a store.
    const auto other = (dir.path / "other.db").string();
    {
        openSqlite(other);
    }
    REQUIRE(::chmod(other.c_str(), 0600) == 0);
    CHECK_THROWS_WITH(
        CredentialStore(other, CredentialStore::Mode::Create), Catch::Contains("not a callhome credentials store"));
}
