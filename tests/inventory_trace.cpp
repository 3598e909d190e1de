// The operation trace in the inventory (schemas/sql/0005-trace.sql): records appended, listed with filters, append-only
// against SQL from outside (update, delete), pruned only through retention, readable through v_trace; and operator
// decisions attributed to who made them. Against a real SQLite file in a temp dir.
#include "RawSqlite.h"
#include "ScratchDir.h"
#include "TestInventory.h"
#include "inventory/Inventory.h"
#include "inventory/SqliteInventory.h"
#include <catch2/catch.hpp>

using namespace callhome;
using namespace callhome::inventory;
using namespace std::chrono_literals;
using callhome::test::exec;
using callhome::test::openExistingForTest;
using callhome::test::openForTest;
using callhome::test::raw;
using callhome::test::ScratchDir;
using callhome::test::TestInventory;

namespace {
struct Fixture {
    TestInventory dir;
    std::unique_ptr<Inventory> inv = openForTest(dir.db());
    TimePoint t0 = now();
    int64_t deviceId = 0;
    Fixture()
    {
        auto c = inv->recordContact(Transport::Ssh, "SHA256:" + std::string(43, 'A'), "ssh-ed25519", "192.0.2.7", t0);
        deviceId = inv->approve(c.device.id, "edge-1", std::nullopt).id;
    }

    TraceRecord record(const std::string& operation, TimePoint at, const std::string& traceId = {})
    {
        TraceRecord r;
        r.receivedAt = at;
        r.answeredAt = at + 5ms;
        r.durationMs = 5;
        r.client = "uid 1000 (alice) pid 4242";
        r.clientUid = 1000;
        r.clientUser = "alice";
        r.clientPid = 4242;
        r.traceId = traceId;
        r.deviceId = deviceId;
        r.deviceName = "edge-1";
        r.connectionId = "C7";
        r.messageId = "callhome-api-1";
        r.operation = operation;
        r.datastore = "running";
        r.outcome = "ok";
        r.requestBytes = 120;
        r.requestSha256 = std::string(64, 'a');
        return r;
    }
};

std::string scalar(sqlite3* db, const std::string& sql)
{
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
    std::string out = "<none>";
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        auto text = sqlite3_column_text(stmt, 0);
        out = text ? reinterpret_cast<const char*>(text) : "<null>";
    }
    sqlite3_finalize(stmt);
    return out;
}
} // namespace

TEST_CASE_METHOD(Fixture, "trace records are stored as given and listed with filters")
{
    auto a = record("edit-config", t0, "change-1");
    a.errorTag = "invalid-value";
    a.errorPath = "/sys:system/sys:ntp";
    a.outcome = "rpc-error";
    auto b = record("get-config", t0 + 1s);
    b.clientUid.reset();
    b.clientUser.clear();
    b.clientPid.reset();
    b.client = "cert CN=nms SHA256:AB:CD";
    b.clientCertSubject = "CN=nms";
    b.clientCertFingerprint = "SHA256:AB:CD";
    auto c = record("commit", t0 + 2s, "change-1");
    c.deviceId.reset();
    c.deviceName = "gone";
    inv->addTrace({ a, b, c });

    auto all = inv->trace({});
    REQUIRE(all.size() == 3);
    CHECK(all[0].id < all[1].id);
    CHECK(all[0].operation == "edit-config");
    CHECK(all[0].receivedAt == t0);
    CHECK(all[0].answeredAt == t0 + 5ms);
    CHECK(all[0].durationMs == 5);
    CHECK(all[0].clientUid == 1000);
    CHECK(all[0].clientUser == "alice");
    CHECK(all[0].clientPid == 4242);
    CHECK(all[0].traceId == "change-1");
    CHECK(all[0].deviceId == deviceId);
    CHECK(all[0].connectionId == "C7");
    CHECK(all[0].messageId == "callhome-api-1");
    CHECK(all[0].outcome == "rpc-error");
    CHECK(all[0].errorTag == "invalid-value");
    CHECK(all[0].errorPath == "/sys:system/sys:ntp");
    CHECK(all[0].requestBytes == 120);
    CHECK(all[1].clientCertSubject == "CN=nms");
    CHECK_FALSE(all[1].clientUid.has_value());

    CHECK(inv->trace({ .traceId = "change-1" }).size() == 2);
    CHECK(inv->trace({ .deviceId = deviceId }).size() == 2);
    CHECK(inv->trace({ .client = "1000" }).size() == 2);
    CHECK(inv->trace({ .client = "alice" }).size() == 2);
    CHECK(inv->trace({ .client = "CN=nms" }).size() == 1);
    CHECK(inv->trace({ .client = "SHA256:AB:CD" }).size() == 1);
    CHECK(inv->trace({ .client = "bob" }).empty());
    CHECK(inv->trace({ .since = t0 + 1s }).size() == 2);
    auto newest = inv->trace({ .limit = 1 });
    REQUIRE(newest.size() == 1);
    CHECK(newest[0].operation == "commit");
    auto after = inv->trace({ .afterId = all[0].id, .limit = 1 });
    REQUIRE(after.size() == 1);
    CHECK(after[0].operation == "get-config");

    // a forgotten device's records keep its name, lose the id
    inv->forget(deviceId);
    auto kept = inv->trace({ .traceId = "change-1" });
    REQUIRE(kept.size() == 2);
    CHECK_FALSE(kept[0].deviceId.has_value());
    CHECK(kept[0].deviceName == "edge-1");
}

TEST_CASE_METHOD(
    Fixture, "trace records cannot be changed or deleted by SQL; retention prunes old ones only", "[sqlite]")
{
    inv->addTrace({ record("edit-config", t0 - 48h), record("get-config", t0 - 1h), record("commit", t0) });
    auto db = raw(dir.db());
    CHECK_THAT(
        exec(db.get(), "UPDATE trace SET outcome = 'rpc-error', error_tag = 'x' WHERE operation = 'edit-config'"),
        Catch::Contains("append-only"));
    CHECK_THAT(exec(db.get(), "UPDATE trace SET client = 'someone else'"), Catch::Contains("append-only"));
    CHECK_THAT(exec(db.get(), "UPDATE trace SET received_at = 0"), Catch::Contains("append-only"));
    CHECK_THAT(exec(db.get(), "DELETE FROM trace WHERE operation = 'commit'"), Catch::Contains("append-only"));
    CHECK_THAT(exec(db.get(), "DELETE FROM trace"), Catch::Contains("append-only"));
    CHECK(scalar(db.get(), "SELECT COUNT(*) FROM trace") == "3");
    // the retention window admits old rows only, and only while it is open
    CHECK_THAT(exec(db.get(), "BEGIN; INSERT INTO trace_prune (id, before) VALUES (1, 0); DELETE FROM trace; COMMIT"),
        Catch::Contains("append-only"));
    exec(db.get(), "ROLLBACK");
    CHECK(scalar(db.get(), "SELECT COUNT(*) FROM trace") == "3");

    CHECK(inv->pruneTrace(t0 - 24h) == 1);
    auto left = inv->trace({});
    REQUIRE(left.size() == 2);
    CHECK(left[0].operation == "get-config");
    CHECK(scalar(db.get(), "SELECT COUNT(*) FROM trace_prune") == "0"); // the window is closed again
    CHECK_THAT(exec(db.get(), "DELETE FROM trace"), Catch::Contains("append-only"));
    CHECK(inv->pruneTrace(t0 - 24h) == 0);
    CHECK(inv->pruneTrace(t0 + 1s) == 2);
    CHECK(inv->trace({}).empty());
}

TEST_CASE_METHOD(Fixture, "public view v_trace", "[sqlite]")
{
    inv->addTrace({ record("edit-config", TimePoint(1700000000123ms), "change-9") });
    auto db = raw(dir.db(), SQLITE_OPEN_READONLY);
    CHECK(scalar(db.get(), "SELECT received_at FROM v_trace") == "2023-11-14T22:13:20.123Z");
    CHECK(scalar(db.get(), "SELECT received_at_ms FROM v_trace") == "1700000000123");
    CHECK(scalar(db.get(), "SELECT answered_at FROM v_trace") == "2023-11-14T22:13:20.128Z");
    CHECK(scalar(db.get(), "SELECT operation || ' ' || datastore || ' ' || outcome FROM v_trace")
        == "edit-config running ok");
    CHECK(scalar(db.get(), "SELECT client_uid || ' ' || client_user || ' ' || client_pid FROM v_trace")
        == "1000 alice 4242");
    CHECK(scalar(db.get(),
              "SELECT trace_id || ' ' || device_name || ' ' || connection_id || ' ' || message_id FROM "
              "v_trace")
        == "change-9 edge-1 C7 callhome-api-1");
    CHECK(scalar(db.get(), "SELECT request_bytes || ' ' || length(request_sha256) FROM v_trace") == "120 64");
}

TEST_CASE_METHOD(Fixture, "operator decisions carry the actor in decided_by and in the event")
{
    auto c = inv->recordContact(Transport::Ssh, "SHA256:" + std::string(43, 'B'), "ssh-ed25519", "192.0.2.8", t0);
    inv->setActor("uid 1000 (alice)");
    auto d = inv->approve(c.device.id, "edge-2", std::nullopt);
    CHECK(d.decidedBy == "uid 1000 (alice)");
    auto log = inv->events({ .deviceId = d.id });
    REQUIRE(!log.empty());
    CHECK(log.back().kind == EventKind::Approved);
    CHECK(log.back().detail == "approved as edge-2 (was pending) by uid 1000 (alice)");
    inv->setActor("cert CN=nms,O=Example");
    d = inv->revoke(d.id);
    CHECK(d.decidedBy == "cert CN=nms,O=Example");
    CHECK(inv->events({ .deviceId = d.id }).back().detail == "revoked (was approved) by cert CN=nms,O=Example");
    CHECK_THROWS_AS(inv->setActor("bad\nactor"), UsageError);
    CHECK_THROWS_AS(inv->setActor(""), UsageError);
}
