// What is specific to the PostgreSQL inventory (schemas/pgsql, PostgresInventory): migrating an empty database,
// refusing foreign and newer ones, two instances migrating at once, NOTIFY reaching another connection's
// changeCounter(), the listener-id advisory lock, the append-only rules, capability sets, secrets kept out of
// messages. Against the real temporary PostgreSQL server of harness/PgServer.h.
#include "harness/PgServer.h"
#include "inventory/Inventory.h"
#include "inventory/Open.h"
#include "inventory/PostgresInventory.h"
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <libpq-fe.h>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace callhome;
using namespace callhome::inventory;
using namespace std::chrono_literals;

namespace {
const std::string FpA = "SHA256:abcdEFGHijklMNOPqrstUVWXyz0123456789+/AbCdE";
const std::string FpB = "SHA256:abcdXYZ1ijklMNOPqrstUVWXyz0123456789+/AbCdE";

/** The test process's PostgreSQL server (harness/PgServer.h), with the few helpers these cases need. */
class TestServer {
public:
    /** A new, empty database; returns its connection string. */
    std::string createDatabase() { return pg().createDatabase(); }
    const std::string& socketDir() const { return pg().socketDir(); }

    /** Runs `statement` in the database of connection string `db`; returns the error message, empty on success. */
    std::string sql(const std::string& db, const std::string& statement) const
    {
        auto* conn = PQconnectdb(db.c_str());
        REQUIRE(PQstatus(conn) == CONNECTION_OK);
        auto* res = PQexec(conn, statement.c_str());
        auto st = PQresultStatus(res);
        std::string error = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? "" : PQresultErrorMessage(res);
        if (error.empty() && st == PGRES_TUPLES_OK && PQntuples(res) > 0) {
            m_lastValue = PQgetvalue(res, 0, 0);
        }
        PQclear(res);
        PQfinish(conn);
        return error;
    }
    /** The first column of the first row of `query`. */
    std::string value(const std::string& db, const std::string& query) const
    {
        m_lastValue.clear();
        REQUIRE(sql(db, query).empty());
        return m_lastValue;
    }

private:
    static callhome::test::PgServer& pg() { return callhome::test::PgServer::shared(); }
    mutable std::string m_lastValue;
};

TestServer& server()
{
    static TestServer s;
    return s;
}

/** Polls `fn` until true, failing after `timeout`. */
template<typename Fn>
bool eventually(Fn fn, std::chrono::milliseconds timeout)
{
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!fn()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        std::this_thread::sleep_for(5ms);
    }
    return true;
}
} // namespace

TEST_CASE("an empty database is migrated to the current schema")
{
    auto spec = server().createDatabase();
    auto inv = openInventory(spec, OpenMode::CreateAndMigrate);
    REQUIRE(server().value(spec, "SELECT version FROM callhome_schema")
        == std::to_string(PostgresInventory::knownSchemaVersion()));
    REQUIRE(server().value(spec, "SELECT application FROM callhome_schema") == "callhome inventory");

    auto d = inv->recordContact(Transport::Ssh, FpA, "ssh-ed25519", "192.0.2.7", now()).device;
    REQUIRE(d.state == DeviceState::Pending);
    inv->listenerStarted("l1", now());
    inv->sessionOpened(d.id, "l1", now(), { "urn:ietf:params:netconf:base:1.1", "urn:x:y" });
    auto e = inv->recordContact(Transport::Ssh, FpB, "ssh-ed25519", "192.0.2.8", now()).device;
    inv->sessionOpened(e.id, "l1", now(), { "urn:ietf:params:netconf:base:1.1", "urn:x:y" });
    // one capability set for the two devices, shown in v_devices as the JSON array
    REQUIRE(server().value(spec, "SELECT COUNT(*) FROM capability_sets") == "1");
    REQUIRE(server().value(spec, "SELECT capabilities FROM v_devices WHERE id = " + std::to_string(d.id))
        == R"(["urn:ietf:params:netconf:base:1.1","urn:x:y"])");
    REQUIRE(server().value(spec, "SELECT connected FROM v_devices WHERE id = " + std::to_string(d.id)) == "1");
    REQUIRE(inv->findById(d.id)->capabilities.size() == 2);

    auto approved = inv->approve(d.id, "edge-1", std::nullopt);
    REQUIRE(approved.state == DeviceState::Approved);
    // the view's times are ISO 8601 UTC with milliseconds, as in SQLite
    auto decided = server().value(spec, "SELECT decided_at FROM v_devices WHERE name = 'edge-1'");
    REQUIRE(decided == toIso8601(*approved.decidedAt));
    REQUIRE(inv->resolve("abcdEFGHijklMNOPqr").id == d.id); // unambiguous prefix, 18 characters
    REQUIRE_THROWS_AS(inv->resolve("abcd"), NotFound);
    REQUIRE_THROWS_AS(inv->resolve("SHA256:abcd" + std::string(12, 'x')), NotFound);
    REQUIRE(server().value(spec, "SELECT kind FROM v_events ORDER BY id DESC LIMIT 1") == "approved");

    // an existing, current inventory opens for readers, and migrating again changes nothing
    auto reader = openInventory(spec, OpenMode::ExistingOnly);
    REQUIRE(reader->findById(d.id)->name == "edge-1");
    REQUIRE(openInventory(spec, OpenMode::CreateAndMigrate)->devices().size() == 2);
    REQUIRE(inv->checkIntegrity().empty());
}

TEST_CASE("capability sets are shared, kept while used and dropped when unused; one dropped by another connection "
          "is stored again")
{
    auto spec = server().createDatabase();
    auto inv = openInventory(spec, OpenMode::CreateAndMigrate);
    auto other = openInventory(spec, OpenMode::CreateAndMigrate); // another instance on the same database
    inv->listenerStarted("l1", now());
    const std::vector<std::string> v1 { "urn:ietf:params:netconf:base:1.1", "urn:model:v1" };
    const std::vector<std::string> v2 { "urn:ietf:params:netconf:base:1.1", "urn:model:v2" };
    auto sets = [&] { return server().value(spec, "SELECT COUNT(*) FROM capability_sets"); };
    auto setOf = [&](int64_t id) {
        return server().value(spec, "SELECT capability_set FROM devices WHERE id = " + std::to_string(id));
    };
    auto a = inv->recordContact(Transport::Ssh, FpA, "ssh-ed25519", "192.0.2.7", now()).device;
    auto b = inv->recordContact(Transport::Ssh, FpB, "ssh-ed25519", "192.0.2.8", now()).device;

    inv->sessionOpened(a.id, "l1", now(), v1);
    inv->sessionOpened(b.id, "l1", now(), v1);
    REQUIRE(sets() == "1");
    const auto first = setOf(a.id);
    REQUIRE(setOf(b.id) == first);
    // the same list again: the same set, the device's row not rewritten (its xmin, the writing transaction, stays)
    const auto xmin = server().value(spec, "SELECT xmin FROM devices WHERE id = " + std::to_string(a.id));
    inv->sessionOpened(a.id, "l1", now(), v1);
    REQUIRE(server().value(spec, "SELECT xmin FROM devices WHERE id = " + std::to_string(a.id)) == xmin);

    // a upgraded: v1 stays (b uses it); b upgraded too: v1 is dropped
    inv->sessionOpened(a.id, "l1", now(), v2);
    REQUIRE(sets() == "2");
    inv->sessionOpened(b.id, "l1", now(), v2);
    REQUIRE(sets() == "1");
    REQUIRE(setOf(a.id) == setOf(b.id));
    REQUIRE(inv->findById(a.id)->capabilities == v2);

    // v1 comes back while `inv` still knows v1's old id: dropped meanwhile, so stored again under a new one
    inv->sessionOpened(a.id, "l1", now(), v1);
    REQUIRE(sets() == "2");
    REQUIRE(setOf(a.id) != first);
    REQUIRE(inv->findById(a.id)->capabilities == v1);
    // the other connection drops it (b back to v1 then forgotten, a moved to v2), and inv stores v1 once more
    other->sessionOpened(b.id, "l1", now(), v1);
    other->sessionOpened(a.id, "l1", now(), v2);
    other->forget(b.id);
    REQUIRE(sets() == "1");
    inv->sessionOpened(a.id, "l1", now(), v1);
    REQUIRE(inv->findById(a.id)->capabilities == v1);
    REQUIRE(sets() == "1"); // v2 went with its last device
    // forgetting the last device using a set drops it
    inv->forget(a.id);
    REQUIRE(sets() == "0");
    REQUIRE(inv->checkIntegrity().empty());
}

TEST_CASE("readers refuse an empty database; a foreign or newer one is refused untouched")
{
    auto empty = server().createDatabase();
    REQUIRE_THROWS_WITH(openInventory(empty, OpenMode::ExistingOnly),
        Catch::Contains("is an empty database, not a callhome inventory; start callhomed once"));
    REQUIRE(server().value(empty, "SELECT COUNT(*) FROM pg_class WHERE relname = 'callhome_schema'") == "0");

    auto foreign = server().createDatabase();
    REQUIRE(server().sql(foreign, "CREATE TABLE customers (id int); INSERT INTO customers VALUES (1)").empty());
    for (auto mode : { OpenMode::CreateAndMigrate, OpenMode::ExistingOnly }) {
        REQUIRE_THROWS_WITH(openInventory(foreign, mode), Catch::Contains("is not a callhome inventory"));
    }
    REQUIRE(server().value(foreign, "SELECT COUNT(*) FROM pg_class WHERE relname = 'devices'") == "0");
    REQUIRE(server().value(foreign, "SELECT COUNT(*) FROM customers") == "1");

    auto newer = server().createDatabase();
    openInventory(newer, OpenMode::CreateAndMigrate)->recordContact(Transport::Ssh, FpA, "", "192.0.2.1", now());
    REQUIRE(server().sql(newer, "UPDATE callhome_schema SET version = 99").empty());
    for (auto mode : { OpenMode::CreateAndMigrate, OpenMode::ExistingOnly }) {
        REQUIRE_THROWS_WITH(openInventory(newer, mode),
            Catch::Contains("has schema version 99, newer than this build knows")
                && Catch::Contains("use a newer callhome"));
    }
    REQUIRE(server().value(newer, "SELECT COUNT(*) FROM devices") == "1");
}

TEST_CASE("two instances starting together migrate once")
{
    auto spec = server().createDatabase();
    std::atomic<int> opened { 0 };
    std::vector<std::string> errors(4);
    std::vector<std::thread> threads;
    for (size_t i = 0; i < errors.size(); ++i) {
        threads.emplace_back([&, i] {
            try {
                auto inv = openInventory(spec, OpenMode::CreateAndMigrate);
                ++opened;
            } catch (const std::exception& e) {
                errors[i] = e.what();
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    for (const auto& e : errors) {
        REQUIRE(e.empty());
    }
    REQUIRE(opened == 4);
    REQUIRE(server().value(spec, "SELECT COUNT(*) || ':' || MAX(version) FROM callhome_schema")
        == "1:" + std::to_string(PostgresInventory::knownSchemaVersion()));
}

TEST_CASE("another connection's decision reaches changeCounter() within a second (NOTIFY)")
{
    auto spec = server().createDatabase();
    auto daemon = openInventory(spec, OpenMode::CreateAndMigrate);
    auto operatorSide = openInventory(spec, OpenMode::ExistingOnly);
    auto d = daemon->recordContact(Transport::Ssh, FpA, "ssh-ed25519", "192.0.2.7", now()).device;
    const auto seq = daemon->lastChange();
    auto c0 = daemon->changeCounter();
    // nothing changed elsewhere: the counter stays; a rolled-back write notifies nobody
    REQUIRE(daemon->changeCounter() == c0);
    REQUIRE_FALSE(operatorSide->unblockSource("203.0.113.1", "operator"));
    REQUIRE(daemon->changeCounter() == c0);

    const auto start = std::chrono::steady_clock::now();
    operatorSide->approve(d.id, "edge-1", std::nullopt);
    REQUIRE(eventually([&] { return daemon->changeCounter() != c0; }, 1s));
    REQUIRE(std::chrono::steady_clock::now() - start < 1s);
    auto changes = daemon->changesAfter(seq, 100);
    REQUIRE(changes.size() == 1);
    REQUIRE(changes.front().deviceId == d.id);

    // blocked sources and staged edits are followed too
    // a commit that returned before the call is counted by that very call (as SQLite's data_version), not later
    auto c1 = daemon->changeCounter();
    operatorSide->blockSource("192.0.2.9", now(), now() + 1h, "test", 5);
    REQUIRE(daemon->changeCounter() != c1);
    auto c2 = daemon->changeCounter();
    REQUIRE(operatorSide->unblockSource("192.0.2.9", "operator"));
    REQUIRE(eventually([&] { return daemon->changeCounter() != c2; }, 1s));
    auto c3 = daemon->changeCounter();
    operatorSide->stage(d.id, { .content = "<x/>" });
    REQUIRE(eventually([&] { return daemon->changeCounter() != c3; }, 1s));
    // a script's plain SQL too
    auto c4 = daemon->changeCounter();
    REQUIRE(server().sql(spec, "UPDATE devices SET ssh_user = 'admin'").empty());
    REQUIRE(eventually([&] { return daemon->changeCounter() != c4; }, 1s));
    REQUIRE(daemon->findById(d.id)->sshUser == "admin");
}

TEST_CASE("one callhomed per listener id: a session-level advisory lock")
{
    auto spec = server().createDatabase();
    auto first = std::make_unique<PostgresInventory>(spec, PostgresInventory::Mode::CreateAndMigrate);
    auto second = std::make_unique<PostgresInventory>(spec, PostgresInventory::Mode::CreateAndMigrate);
    first->lockListener("edge-station");
    REQUIRE_THROWS_AS(second->lockListener("edge-station"), UsageError);
    REQUIRE_THROWS_WITH(second->lockListener("edge-station"),
        Catch::Contains("another callhomed (callhome (pid ") && Catch::Contains("runs with listener id 'edge-station'")
            && Catch::Contains("give each instance its own listener-id"));
    second->lockListener("other-station"); // another id is free
    first.reset(); // the lock ends with its connection
    REQUIRE(eventually(
        [&] {
            try {
                second->lockListener("edge-station");
                return true;
            } catch (const UsageError&) {
                return false;
            }
        },
        5s));
}

TEST_CASE("events and trace records are append-only; retention may delete old ones")
{
    auto spec = server().createDatabase();
    auto inv = openInventory(spec, OpenMode::CreateAndMigrate);
    inv->addEvent({ .at = now() - 48h, .kind = EventKind::Pending, .address = "192.0.2.1" });
    inv->addEvent({ .at = now(), .kind = EventKind::Pending, .address = "192.0.2.2" });
    REQUIRE_THAT(server().sql(spec, "DELETE FROM events"), Catch::Contains("events are append-only"));
    REQUIRE_THAT(server().sql(spec, "TRUNCATE events"), Catch::Contains("events are append-only"));
    REQUIRE_THAT(server().sql(spec, "UPDATE events SET detail = 'x'"), Catch::Contains("events are append-only"));
    REQUIRE_THAT(server().sql(spec, "INSERT INTO event_pruning VALUES (callhome_now_ms())"),
        Catch::Contains("only delete events older than one hour"));
    REQUIRE(inv->pruneEvents(now() - 24h) == 1);
    auto kinds = inv->events({});
    REQUIRE(kinds.size() == 2);
    REQUIRE(kinds.back().kind == EventKind::EventsPruned);

    inv->addTrace({ TraceRecord {
        .receivedAt = now() - 48h, .answeredAt = now() - 48h, .operation = "get-config", .outcome = "ok" } });
    REQUIRE_THAT(server().sql(spec, "UPDATE trace SET outcome = 'rpc-error'"), Catch::Contains("append-only"));
    REQUIRE_THAT(server().sql(spec, "DELETE FROM trace"), Catch::Contains("append-only"));
    REQUIRE(inv->pruneTrace(now() - 24h) == 1);
    REQUIRE(inv->trace({}).empty());
}

TEST_CASE("a password in the connection string stays out of messages")
{
    const auto socketDir = server().socketDir();
    const std::string url = "postgresql://postgres:s3cr3t-pw@/no_such_db?host=" + socketDir;
    try {
        openInventory(url, OpenMode::ExistingOnly);
        FAIL("opened a missing database");
    } catch (const DatabaseError& e) {
        std::string what = e.what();
        REQUIRE_THAT(what, Catch::Contains("no_such_db") && Catch::Contains("***"));
        REQUIRE(what.find("s3cr3t-pw") == std::string::npos);
    }
    try {
        openInventory(
            "host=" + socketDir + " user=postgres password=s3cr3t-pw dbname=no_such_db", OpenMode::CreateAndMigrate);
        FAIL("opened a missing database");
    } catch (const DatabaseError& e) {
        REQUIRE(std::string(e.what()).find("s3cr3t-pw") == std::string::npos);
    }
}

TEST_CASE("listings stream in pages: every device and event once, in order; name globs")
{
    auto spec = server().createDatabase();
    auto inv = openInventory(spec, OpenMode::CreateAndMigrate);
    std::vector<ExpectedDevice> batch;
    for (int i = 0; i < 2'500; ++i) {
        batch.push_back({ .serial = "SN" + std::to_string(i),
            .manufacturer = "example",
            .name = (i % 2 ? "edge-" : "core-") + std::to_string(i) });
    }
    REQUIRE(inv->expectAll(batch).created == 2'500);

    int64_t last = 0;
    size_t count = 0;
    inv->forEachDevice({}, [&](const Device& d) {
        REQUIRE(d.id > last);
        last = d.id;
        ++count;
    });
    REQUIRE(count == 2'500);
    REQUIRE(inv->devices().size() == 2'500);

    DeviceFilter page { .afterId = inv->devices()[999].id, .limit = 1'200 };
    std::vector<Device> got;
    inv->forEachDevice(page, [&](const Device& d) { got.push_back(d); });
    REQUIRE(got.size() == 1'200);
    REQUIRE(got.front().serial == "SN1000");
    REQUIRE(got.back().serial == "SN2199");

    // SQLite GLOB semantics: case-sensitive, *, ?, [...]; a regular expression's characters are literal
    auto names = [&](const std::string& glob) {
        std::vector<std::string> out;
        inv->forEachDevice({ .nameGlob = glob }, [&](const Device& d) { out.push_back(*d.name); });
        return out;
    };
    REQUIRE(names("edge-*").size() == 1'250);
    REQUIRE(names("EDGE-*").empty());
    REQUIRE(names("edge-1?") == std::vector<std::string> { "edge-11", "edge-13", "edge-15", "edge-17", "edge-19" });
    REQUIRE(names("core-[12]") == std::vector<std::string> { "core-2" });
    REQUIRE(names("core-[^0-8]") == std::vector<std::string> {});
    REQUIRE(names("edge.1").empty());
    REQUIRE(names("edge-1").size() == 1);

    auto events = inv->events({});
    REQUIRE(events.size() == 2'500);
    for (size_t i = 1; i < events.size(); ++i) {
        REQUIRE(events[i].id > events[i - 1].id);
    }
    REQUIRE(inv->events({ .limit = 1'500, .afterId = events[99].id }).size() == 1'500);
    auto newest = inv->events({ .limit = 3 });
    REQUIRE(newest.size() == 3);
    REQUIRE(newest.back().id == events.back().id);
    REQUIRE(inv->decideAll({ .nameGlob = "core-*" }, { .action = BulkDecision::Action::Revoke }) == 1'250);
    REQUIRE(inv->events({ .afterId = events.back().id }).size() == 1'250);
}

TEST_CASE("a dropped connection (server restart, pg_terminate_backend) is opened again by the next call")
{
    auto spec = server().createDatabase();
    auto inv = openInventory(spec, OpenMode::CreateAndMigrate);
    auto d = inv->recordContact(Transport::Ssh, FpA, "ssh-ed25519", "192.0.2.7", now()).device;
    const std::string others = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()";
    REQUIRE(server().value(spec, "SELECT COUNT(*) " + others) == "2"); // the inventory's and its LISTEN connection
    REQUIRE(server().sql(spec, "SELECT pg_terminate_backend(pid) " + others).empty());
    REQUIRE(eventually([&] { return server().value(spec, "SELECT COUNT(*) " + others) == "0"; }, 5s));

    // the call that finds the connection gone fails with a clear error, and nothing half-done; the next one works
    try {
        inv->approve(d.id, "edge-1", std::nullopt);
        FAIL("approved on a dropped connection");
    } catch (const DatabaseError& e) {
        REQUIRE_THAT(e.what(), Catch::Contains("approving a device"));
    }
    REQUIRE(inv->findById(d.id)->state == DeviceState::Pending);
    REQUIRE(inv->approve(d.id, "edge-1", std::nullopt).state == DeviceState::Approved);
    // change following resumes too
    auto c0 = inv->changeCounter();
    auto other = openInventory(spec, OpenMode::ExistingOnly);
    other->rename(d.id, "edge-2");
    REQUIRE(eventually([&] { return inv->changeCounter() != c0; }, 1s));
    REQUIRE(inv->findById(d.id)->name == "edge-2");
}
