// Blocked sources in the inventory (schema version 3): admission control's blocks persisted, listed, lifted by an
// operator while the daemon runs, and the public view v_blocked_sources; against a real SQLite file in a temp dir.
#include "RawSqlite.h"
#include "ScratchDir.h"
#include "TestInventory.h"
#include "inventory/Inventory.h"
#include "inventory/SqliteInventory.h"
#include <catch2/catch.hpp>
#include <thread>

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

namespace {
// On SQLite changeCounter() reads the file's data version: another connection's commit shows at once. On PostgreSQL
// it counts notifications, which arrive moments after the commit: wait for them, with a deadline.

/** True once `inv`'s change counter has moved from `from` (within 5 s). */
bool movesFrom(Inventory& inv, uint64_t from)
{
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (inv.changeCounter() == from && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return inv.changeCounter() != from;
}

/** The change counter once no notification is on its way any more (unchanged for 300 ms; at most 5 s). */
uint64_t settled(Inventory& inv)
{
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    auto value = inv.changeCounter();
    auto stableSince = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - stableSince < std::chrono::milliseconds(300)
        && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (auto now = inv.changeCounter(); now != value) {
            value = now;
            stableSince = std::chrono::steady_clock::now();
        }
    }
    return value;
}
} // namespace

TEST_CASE_METHOD(Fixture, "a block is stored with a blocked event, listed until it ends")
{
    inv->blockSource("192.0.2.9", t0, t0 + 600s, "50 failed handshakes within 60 s", 50);
    inv->blockSource("2001:db8:1:2::/64", t0 - 1s, t0 + 10s, "3 failed handshakes within 60 s", 3);

    auto list = inv->blockedSources(t0);
    REQUIRE(list.size() == 2);
    CHECK(list[0].source == "192.0.2.9");
    CHECK(list[0].since == t0);
    CHECK(list[0].until == t0 + 600s);
    CHECK(list[0].reason == "50 failed handshakes within 60 s");
    CHECK(list[0].failures == 50);
    CHECK(list[1].source == "2001:db8:1:2::/64");
    // ended blocks are not listed
    CHECK(inv->blockedSources(t0 + 10s).size() == 1);
    CHECK(inv->blockedSources(t0 + 600s).empty());

    auto log = inv->events({});
    REQUIRE(log.size() == 2);
    CHECK(log[0].kind == EventKind::Blocked);
    CHECK(log[0].address == "2001:db8:1:2::/64"); // the log is in time order
    CHECK(log[1].address == "192.0.2.9");
    CHECK(log[1].at == t0);
    CHECK_THAT(log[1].detail, Catch::Contains("blocked until") && Catch::Contains("50 failed handshakes"));
    CHECK_FALSE(log[1].deviceId);
}

TEST_CASE_METHOD(Fixture, "blocking again replaces the block; ended rows are dropped")
{
    inv->blockSource("192.0.2.9", t0, t0 + 10s, "first", 5);
    inv->blockSource("192.0.2.9", t0 + 20s, t0 + 80s, "second", 7);
    auto list = inv->blockedSources(t0 + 30s);
    REQUIRE(list.size() == 1);
    CHECK(list[0].reason == "second");
    CHECK(list[0].failures == 7);
    CHECK(list[0].since == t0 + 20s);

    inv->blockSource("198.51.100.1", t0 + 100s, t0 + 200s, "third", 1);
    CHECK(inv->blockedSources(t0 + 150s).size() == 1);
    if (dir.postgres()) {
        return; // the table itself, as SQLite stores it
    }
    auto db = raw(dir.db(), SQLITE_OPEN_READONLY);
    CHECK(scalar(db.get(), "SELECT COUNT(*) FROM blocked_sources") == "1");
    CHECK(scalar(db.get(), "SELECT source FROM blocked_sources") == "198.51.100.1");
}

TEST_CASE_METHOD(Fixture, "an operator unblocks a source: row deleted, unblocked event, change counter moves")
{
    inv->blockSource("192.0.2.9", t0 - 1s, t0 + 600s, "50 failed handshakes within 60 s", 50);
    inv->blockSource("192.0.2.10", t0 - 1s, t0 + 600s, "x", 50);
    // the daemon holds the inventory open; callhomectl works on its own connection
    auto daemonSees = inv->changeCounter();
    auto operatorSide = openExistingForTest(dir.db());
    REQUIRE(operatorSide->unblockSource("192.0.2.9", "operator"));
    CHECK(movesFrom(*inv, daemonSees));

    auto list = inv->blockedSources(now());
    REQUIRE(list.size() == 1);
    CHECK(list[0].source == "192.0.2.10");
    auto log = inv->events({});
    REQUIRE(log.size() == 3);
    CHECK(log[2].kind == EventKind::Unblocked);
    CHECK(log[2].address == "192.0.2.9");
    CHECK_THAT(log[2].detail, Catch::Contains("unblocked by operator") && Catch::Contains("50 failed handshakes"));

    // not blocked (any more, or ever): false, and nothing written
    auto before = settled(*inv);
    CHECK_FALSE(operatorSide->unblockSource("192.0.2.9", "operator"));
    CHECK_FALSE(operatorSide->unblockSource("203.0.113.1", "operator"));
    CHECK(settled(*inv) == before);
    CHECK(inv->events({}).size() == 3);
}

TEST_CASE_METHOD(Fixture, "an ended block cannot be lifted")
{
    inv->blockSource("192.0.2.9", t0 - 20s, t0 - 10s, "over", 5);
    CHECK_FALSE(inv->unblockSource("192.0.2.9", "operator"));
    CHECK(inv->events({}).size() == 1);
}

TEST_CASE_METHOD(Fixture, "invalid blocks are refused")
{
    CHECK_THROWS_AS(inv->blockSource("", t0, t0 + 1s, "", 0), UsageError);
    CHECK_THROWS_AS(inv->blockSource("192.0.2.1\n", t0, t0 + 1s, "", 0), UsageError);
    CHECK_THROWS_WITH(inv->blockSource("192.0.2.1", t0, t0 - 1s, "", 0), Catch::Contains("before it starts"));
    CHECK(inv->blockedSources(t0).empty());
    CHECK(inv->events({}).empty());
}

TEST_CASE_METHOD(Fixture, "public view v_blocked_sources shows current blocks only", "[sqlite]")
{
    inv->blockSource("192.0.2.9", TimePoint(1'700'000'000'123ms), now() + 1h, "50 failed handshakes within 60 s", 50);
    inv->blockSource("192.0.2.10", now() - 2h, now() - 1h, "ended", 3);
    auto db = raw(dir.db(), SQLITE_OPEN_READONLY);
    CHECK(scalar(db.get(), "SELECT COUNT(*) FROM v_blocked_sources") == "1");
    CHECK(scalar(db.get(), "SELECT source FROM v_blocked_sources") == "192.0.2.9");
    CHECK(scalar(db.get(), "SELECT since FROM v_blocked_sources") == "2023-11-14T22:13:20.123Z");
    CHECK(scalar(db.get(), "SELECT failures FROM v_blocked_sources") == "50");
    CHECK(scalar(db.get(), "SELECT reason FROM v_blocked_sources") == "50 failed handshakes within 60 s");
    CHECK(std::stoll(scalar(db.get(), "SELECT until_ms FROM v_blocked_sources")) > now().time_since_epoch().count());
    CHECK(scalar(db.get(), "SELECT kind FROM v_events ORDER BY id LIMIT 1") == "blocked");
    // the table's constraint holds for scripts too
    auto rw = raw(dir.db());
    CHECK_THAT(exec(rw.get(), "INSERT INTO blocked_sources (source, since, until) VALUES ('x', 2, 1)"),
        Catch::Contains("CHECK"));
}

TEST_CASE_METHOD(Fixture, "blocks survive reopening (a daemon restart)")
{
    inv->blockSource("2001:db8:1:2::/64", t0, t0 + 1h, "restart", 9);
    inv.reset();
    auto again = openForTest(dir.db());
    auto list = again->blockedSources(t0);
    REQUIRE(list.size() == 1);
    CHECK(list[0].source == "2001:db8:1:2::/64");
    CHECK(SqliteInventory::knownSchemaVersion() >= 3); // later migrations keep the blocks too
}
