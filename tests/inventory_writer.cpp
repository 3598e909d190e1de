// The daemon's side of a fleet inventory (issue 8): the change log the schema's triggers write, the in-memory
// identity index that follows it, batched writes through one writer (also while another process holds the write
// lock), event retention, and the pending caps. Real SQLite files in temp dirs; "another process" is a second
// SQLite connection, as sqlite3 or a script would hold it.
#include "RawSqlite.h"
#include "ScratchDir.h"
#include "TestInventory.h"
#include "identity/Identity.h"
#include "identity/IdentityIndex.h"
#include "inventory/Inventory.h"
#include "inventory/Writer.h"
#include <catch2/catch.hpp>
#include <set>

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
std::string fp(int n)
{
    auto digits = std::to_string(n);
    return "SHA256:" + std::string(43 - digits.size(), 'w') + digits;
}

std::set<int64_t> changedIds(Inventory& inv, int64_t after)
{
    std::set<int64_t> out;
    for (const auto& c : inv.changesAfter(after, 1000)) {
        out.insert(c.deviceId);
    }
    return out;
}

int64_t count(sqlite3* db, const std::string& sql)
{
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
    auto n = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return n;
}

/** SQL from "another process" (a script, psql/sqlite3) on the test's inventory, whichever the backend. */
void otherProcessSql(const TestInventory& dir, const std::string& sql)
{
    if (dir.postgres()) {
        callhome::test::PgServer::shared().execute(dir.database, sql);
    } else {
        auto db = raw(dir.db());
        REQUIRE(exec(db.get(), sql) == "");
    }
}

int64_t eventsOf(Inventory& inv, EventKind kind)
{
    int64_t n = 0;
    inv.forEachEvent({}, [&](const Event& e) { n += e.kind == kind; });
    return n;
}
} // namespace

TEST_CASE("the change log names the devices whose decision-relevant fields changed, whoever wrote them")
{
    TestInventory dir;
    auto inv = openForTest(dir.db());
    auto a = inv->recordContact(Transport::Ssh, fp(1), "ssh-ed25519", "192.0.2.1", now()).device;
    auto b = inv->recordContact(Transport::Ssh, fp(2), "ssh-ed25519", "192.0.2.2", now()).device;
    CHECK(changedIds(*inv, 0) == std::set<int64_t> { a.id, b.id }); // created
    auto mark = inv->lastChange();
    REQUIRE(mark > 0);

    // contacts and events are bookkeeping, not changes
    inv->recordContact(Transport::Ssh, fp(1), "ssh-ed25519", "192.0.2.9", now());
    inv->listenerStarted("L", now());
    inv->addEvent({ .at = now(), .kind = EventKind::SessionOpened, .deviceId = a.id });
    CHECK(inv->lastChange() == mark);
    // a session opened is one (since schema 9, several instances: the instance that held the device learns that
    // another took it over), of that device only
    inv->sessionOpened(a.id, "L", now(), { "urn:ietf:params:netconf:base:1.1" });
    CHECK(changedIds(*inv, mark) == std::set<int64_t> { a.id });
    mark = inv->lastChange();

    inv->approve(a.id, "edge-1", std::nullopt);
    CHECK(changedIds(*inv, mark) == std::set<int64_t> { a.id });
    mark = inv->lastChange();

    // another process (a script with SQL, callhomectl) goes through the same triggers
    otherProcessSql(dir, "UPDATE devices SET state = 'rejected' WHERE id = " + std::to_string(b.id));
    CHECK(changedIds(*inv, mark) == std::set<int64_t> { b.id });
    mark = inv->lastChange();
    inv->forget(b.id);
    CHECK(changedIds(*inv, mark) == std::set<int64_t> { b.id });

    // pruning keeps the newest row, so a reader can tell the log goes on
    inv->pruneChanges(now() + 1h);
    CHECK(inv->firstChange() == inv->lastChange());
}

TEST_CASE("the identity index follows the change log and counts pending devices per source")
{
    TestInventory dir;
    auto inv = openForTest(dir.db());
    for (int n = 1; n <= 5; ++n) {
        inv->recordContact(
            Transport::Ssh, fp(n), "ssh-ed25519", n <= 3 ? "192.0.2.1" : "2001:db8::" + std::to_string(n), now());
    }
    identity::IdentityIndex index;
    index.load(*inv);
    CHECK(index.size() == 5);
    CHECK(index.pending() == 5);
    CHECK(index.pendingFrom("192.0.2.1") == 3);
    CHECK(index.pendingFrom("2001:db8::/64") == 2); // IPv6 sources are /64 prefixes

    auto cli = openExistingForTest(dir.db()); // an operator's callhomectl
    auto one = cli->resolve(fp(1));
    cli->approve(one.id, "edge-1", std::nullopt);
    cli->forget(cli->resolve(fp(2)).id);
    auto changed = index.follow(*inv);
    CHECK(changed.size() == 2);
    CHECK(index.byFingerprint(fp(1))->state == DeviceState::Approved);
    CHECK(index.byFingerprint(fp(1))->name == "edge-1");
    CHECK_FALSE(index.byFingerprint(fp(2)));
    CHECK(index.pending() == 3);
    CHECK(index.pendingFrom("192.0.2.1") == 1);
    CHECK(index.follow(*inv).empty()); // nothing new

    // a reader that fell behind the pruned log reloads everything
    cli->reject(cli->resolve(fp(3)).id);
    otherProcessSql(dir, "UPDATE device_changes SET at = 0");
    cli->rename(one.id, "edge-one");
    inv->pruneChanges(now() - 1min); // deletes every row but the newest, including ones the index has not read
    auto all = index.follow(*inv);
    CHECK(all.size() == 4);
    CHECK(index.byFingerprint(fp(3))->state == DeviceState::Rejected);
    CHECK(index.byFingerprint(fp(1))->name == "edge-one");
}

TEST_CASE("writeBatch: one transaction, a failing call undone alone")
{
    TestInventory dir;
    auto inv = openForTest(dir.db());
    auto d = inv->recordContact(Transport::Ssh, fp(1), "ssh-ed25519", "192.0.2.1", now()).device;
    inv->listenerStarted("L", now());
    int failures = 0;
    inv->writeBatch([&] {
        inv->addEvent({ .at = now(), .kind = EventKind::Pending, .deviceId = d.id, .detail = "first" });
        try {
            inv->sessionOpened(999, "L", now(), {}); // no such device
        } catch (const NotFound&) {
            ++failures;
        }
        inv->addEvent({ .at = now(), .kind = EventKind::Pending, .deviceId = d.id, .detail = "second" });
    });
    CHECK(failures == 1);
    CHECK(eventsOf(*inv, EventKind::Pending) == 2);

    // a batch that throws leaves nothing behind
    CHECK_THROWS_AS(inv->writeBatch([&] {
        inv->addEvent({ .at = now(), .kind = EventKind::Pending, .detail = "rolled back" });
        throw std::runtime_error("stop");
    }),
        std::runtime_error);
    CHECK(eventsOf(*inv, EventKind::Pending) == 2);
}

TEST_CASE("the writer batches records, and keeps them while another process holds the write lock", "[sqlite]")
{
    ScratchDir dir;
    openSqlite(dir.db()); // created and migrated
    Writer writer(openSqliteExisting(dir.db()));
    writer.start();
    constexpr int n = 3000;
    for (int i = 0; i < n; ++i) {
        REQUIRE(writer.post("event", [i](Inventory& inv) {
            inv.addEvent({ .at = now(), .kind = EventKind::HandshakeFailed, .detail = std::to_string(i) });
            return std::function<void()> {};
        }));
    }
    REQUIRE(writer.flush(20s));
    auto s = writer.stats();
    CHECK(s.written == n);
    CHECK(s.batches < n / 10); // batched: a few transactions, not one per record
    auto reader = raw(dir.db());
    CHECK(count(reader.get(), "SELECT COUNT(*) FROM events") == n);

    // A foreign writer takes the lock (as `sqlite3` with BEGIN IMMEDIATE would); records queue, callers never wait.
    auto foreign = raw(dir.db());
    REQUIRE(exec(foreign.get(), "BEGIN IMMEDIATE") == "");
    const auto posted = std::chrono::steady_clock::now();
    for (int i = 0; i < 100; ++i) {
        REQUIRE(writer.post("event", [](Inventory& inv) {
            inv.addEvent({ .at = now(), .kind = EventKind::HandshakeFailed, .detail = "during the lock" });
            return std::function<void()> {};
        }));
    }
    CHECK(std::chrono::steady_clock::now() - posted < 1s);
    CHECK_FALSE(writer.flush(300ms));
    CHECK(count(reader.get(), "SELECT COUNT(*) FROM events") == n);
    REQUIRE(exec(foreign.get(), "COMMIT") == "");
    // Written once the lock is released: after at most one busy timeout (5 s) plus the retry pause.
    REQUIRE(writer.flush(15s));
    CHECK(count(reader.get(), "SELECT COUNT(*) FROM events") == n + 100);
    CHECK(writer.stats().dropped == 0);

    // call(): the result, after the commit; an error of the call alone is the caller's
    auto contact = writer.call<Contact>("contact",
        [](Inventory& inv) { return inv.recordContact(Transport::Ssh, fp(7), "ssh-ed25519", "192.0.2.7", now()); });
    CHECK(contact.created);
    CHECK_THROWS_AS(writer.call<int>("bad",
                        [](Inventory& inv) {
                            inv.sessionOpened(4242, "nobody", now(), {});
                            return 0;
                        }),
        NotFound);
    writer.stop(1s);
    CHECK_THROWS_AS(writer.call<int>("after stop", [](Inventory&) { return 1; }), DatabaseError);
}

TEST_CASE("a full writer queue drops and counts, never blocks")
{
    TestInventory dir;
    openForTest(dir.db());
    Writer writer(openExistingForTest(dir.db()), Writer::Options { .maxQueued = 10 });
    // not started: nothing drains the queue
    int accepted = 0;
    for (int i = 0; i < 25; ++i) {
        accepted += writer.post("event", [](Inventory&) { return std::function<void()> {}; });
    }
    CHECK(accepted == 10);
    CHECK(writer.takeDropped() == 15);
    CHECK(writer.takeDropped() == 0);
}

TEST_CASE("event retention deletes only by age, is itself an event, and is the only deletion allowed")
{
    TestInventory dir;
    auto inv = openForTest(dir.db());
    const auto t = now();
    for (int days : { 100, 95, 30, 1 }) {
        inv->addEvent(
            { .at = t - std::chrono::days(days), .kind = EventKind::Pending, .detail = std::to_string(days) });
    }
    inv->addEvent({ .at = t, .kind = EventKind::Pending, .detail = "now" });
    if (!dir.postgres()) { // SQLite's triggers, by raw SQL (PostgreSQL's: inventory_postgres)
        auto db = raw(dir.db());
        // still append-only for everybody else
        CHECK(exec(db.get(), "DELETE FROM events WHERE detail = 'now'") == "events are append-only");
        CHECK(exec(db.get(), "DELETE FROM events WHERE detail = '100'") == "events are append-only");
        CHECK(exec(db.get(), "UPDATE events SET detail = 'x' WHERE detail = '100'") == "events are append-only");
        // the guard row cannot open recent history
        CHECK(exec(db.get(),
                  "INSERT INTO event_pruning (cutoff) VALUES (CAST((julianday('now') - 2440587.5) * 86400000 "
                  "AS INTEGER))")
            == "event retention may only delete events older than one hour");
    }
    CHECK_THROWS_AS(inv->pruneEvents(t), DatabaseError);

    CHECK(inv->pruneEvents(t - std::chrono::days(90)) == 2);
    std::vector<std::string> left;
    std::string pruned;
    inv->forEachEvent({}, [&](const Event& e) {
        if (e.kind == EventKind::EventsPruned) {
            pruned = e.detail;
        } else {
            left.push_back(e.detail);
        }
    });
    CHECK(left == std::vector<std::string> { "30", "1", "now" });
    CHECK(pruned.find("deleted 2 events older than") != std::string::npos);
    if (!dir.postgres()) {
        CHECK(count(raw(dir.db()).get(), "SELECT COUNT(*) FROM event_pruning") == 0);
    }
    CHECK(inv->pruneEvents(t - std::chrono::days(90)) == 0); // nothing more: no event either
    CHECK(eventsOf(*inv, EventKind::EventsPruned) == 1);
    // by row count: the time of the newest events kept
    CHECK(inv->eventTimeKeeping(2) == t - std::chrono::days(1));
    CHECK_FALSE(inv->eventTimeKeeping(100));
}

TEST_CASE("pending caps: 10,000 new keys from one address store the per-source cap, count the rest")
{
    TestInventory dir;
    auto inv = openForTest(dir.db());
    Writer writer(openExistingForTest(dir.db()));
    writer.start();
    identity::IdentityIndex index;
    index.load(*inv);
    auto known = inv->recordContact(Transport::Ssh, fp(0), "ssh-ed25519", "192.0.2.1", now()).device;
    inv->approve(known.id, "known", std::nullopt);
    index.follow(*inv);
    identity::IdentityPolicy policy(*inv, index, writer, identity::PendingCaps { .global = 150, .perSource = 100 });

    int pending = 0, refused = 0;
    for (int n = 1; n <= 10'000; ++n) {
        auto d = policy.decideSsh(
            { .connectionId = "C" + std::to_string(n), .address = "192.0.2.1" }, fp(n), "ssh-ed25519");
        (d.verdict == identity::Verdict::Pending ? pending : refused) += 1;
    }
    CHECK(pending == 100);
    CHECK(refused == 9'900);
    // a known identity from the same source is still decided (from memory) and admitted
    auto again = policy.quickSsh({ .connectionId = "K", .address = "192.0.2.1" }, fp(0), "ssh-ed25519");
    REQUIRE(again);
    CHECK(again->verdict == identity::Verdict::Accept);
    // another source gets in until the global cap
    for (int n = 1; n <= 60; ++n) {
        policy.decideSsh({ .connectionId = "D", .address = "198.51.100.7" }, fp(20'000 + n), "ssh-ed25519");
    }
    auto capped = policy.takeCapped();
    CHECK(capped.perSource == 9'900);
    CHECK(capped.global == 10);
    REQUIRE_FALSE(capped.topSources.empty());
    CHECK(capped.topSources.front() == std::pair<std::string, uint64_t> { "192.0.2.1", 9'900 });
    CHECK(policy.takeCapped().total() == 0);
    REQUIRE(writer.flush(10s));
    int64_t stored = 0;
    inv->forEachDevice({ .state = DeviceState::Pending }, [&](const Device&) { ++stored; });
    CHECK(stored == 150);
    // repeated contacts of a stored identity update its row, never add one
    policy.decideSsh({ .connectionId = "R", .address = "192.0.2.1" }, fp(1), "ssh-ed25519");
    REQUIRE(writer.flush(10s));
    CHECK(inv->resolve(fp(1)).attempts == 2);
}

TEST_CASE("a listing that does not show capabilities does not read them")
{
    TestInventory dir;
    auto inv = openForTest(dir.db());
    auto d = inv->recordContact(Transport::Ssh, fp(1), "ssh-ed25519", "192.0.2.1", now()).device;
    inv->listenerStarted("L", now());
    inv->sessionOpened(d.id, "L", now(), { "urn:ietf:params:netconf:base:1.1", "urn:example:x" });
    size_t with = 0, without = 0;
    inv->forEachDevice({}, [&](const Device& x) { with = x.capabilities.size(); });
    inv->forEachDevice({ .withCapabilities = false }, [&](const Device& x) { without = x.capabilities.size(); });
    CHECK(with == 2);
    CHECK(without == 0);
    CHECK(inv->findById(d.id)->capabilities.size() == 2); // single-device lookups always have them
}
