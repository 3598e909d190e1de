// Staged configuration in the inventory (schema version 6): the queue of edits per device, its transitions, what
// callhomed reads to apply it, a restart's re-queue, and the public view v_staged; against a real SQLite file.
#include "RawSqlite.h"
#include "ScratchDir.h"
#include "TestInventory.h"
#include "common/Error.h"
#include "inventory/Inventory.h"
#include "inventory/SqliteInventory.h"
#include <algorithm>
#include <catch2/catch.hpp>

using namespace callhome;
using namespace callhome::inventory;
using callhome::test::openExistingForTest;
using callhome::test::openForTest;
using callhome::test::ScratchDir;
using callhome::test::TestInventory;

namespace {
constexpr const char* kEdit = "<system xmlns=\"urn:ietf:params:xml:ns:yang:ietf-system\"><contact>x</contact></system>";

struct Fixture {
    TestInventory dir;
    std::unique_ptr<Inventory> inv = openForTest(dir.db());
    Device device = inv->expect({ { "SN1", "example", "edge-1" } }).front();

    StagedEdit stageXml(const std::string& target = "running", bool commit = false)
    {
        return inv->stage(device.id, { .target = target, .commit = commit, .format = "xml", .content = kEdit });
    }
};

std::vector<EventKind> kindsOf(Inventory& inv, int64_t deviceId)
{
    std::vector<EventKind> out;
    for (const auto& e : inv.events({ .deviceId = deviceId })) {
        out.push_back(e.kind);
    }
    return out;
}
} // namespace

TEST_CASE_METHOD(Fixture, "staging an edit for an expected device: queued, attributed, listed in order, with an event")
{
    inv->setActor("uid 1000 (alice)");
    auto first = stageXml("candidate", true);
    auto second = inv->stage(device.id, { .format = "json", .content = R"({"ietf-system:system":{}})" });
    CHECK(first.state == StagedState::Queued);
    CHECK(first.createdBy == "uid 1000 (alice)");
    CHECK(first.deviceName == "edge-1");
    CHECK(first.commit);
    CHECK(first.target == "candidate");
    CHECK(first.content == kEdit);
    CHECK(second.id > first.id);
    auto list = inv->stagedEdits(device.id, false);
    REQUIRE(list.size() == 2);
    CHECK(list[0].id == first.id);
    CHECK(list[1].format == "json");
    CHECK(inv->stagedEdits(std::nullopt, false).size() == 2);
    auto events = inv->events({ .deviceId = device.id });
    REQUIRE(events.back().kind == EventKind::Staged);
    CHECK_THAT(events.back().detail, Catch::Contains("staged edit #" + std::to_string(second.id)));
    CHECK_THAT(events.back().detail, Catch::Contains("by uid 1000 (alice)"));
    CHECK(inv->devicesWithStaged() == std::vector<int64_t> { device.id });
    CHECK(inv->nextStaged(device.id)->id == first.id);
}

TEST_CASE_METHOD(Fixture, "bad staged input is refused and stores nothing")
{
    CHECK_THROWS_AS(inv->stage(device.id, { .target = "startup", .content = kEdit }), UsageError);
    CHECK_THROWS_AS(inv->stage(device.id, { .target = "running", .commit = true, .content = kEdit }), UsageError);
    CHECK_THROWS_AS(inv->stage(device.id, { .format = "yaml", .content = kEdit }), UsageError);
    CHECK_THROWS_AS(inv->stage(device.id, { .content = " \n" }), UsageError);
    CHECK_THROWS_AS(inv->stage(device.id, { .content = std::string(17u << 20, 'x') }), UsageError);
    CHECK_THROWS_AS(inv->stage(device.id + 100, { .content = kEdit }), NotFound);
    CHECK_THROWS_AS(inv->stagedEdit(4242), NotFound);
    CHECK(inv->stagedEdits(std::nullopt, true).empty());
}

TEST_CASE_METHOD(Fixture, "applying: applied moves the queue on; failed holds it until retried or unstaged")
{
    auto a = stageXml();
    auto b = stageXml();
    REQUIRE(inv->markStagedApplying(a.id, "C1"));
    CHECK_FALSE(inv->markStagedApplying(a.id, "C1")); // no longer queued
    CHECK(inv->devicesWithStaged().empty()); // the first open item is applying
    CHECK_THROWS_AS(inv->unstage(a.id), UsageError);
    inv->finishStaged(a.id, { .state = StagedState::Applied, .connectionId = "C1", .messageId = "7", .detail = "ok" });
    auto applied = inv->stagedEdit(a.id);
    CHECK(applied.state == StagedState::Applied);
    CHECK(applied.attempts == 1);
    CHECK(applied.messageId == "7");
    CHECK(inv->nextStaged(device.id)->id == b.id);

    REQUIRE(inv->markStagedApplying(b.id, "C1"));
    inv->finishStaged(b.id,
        { .state = StagedState::Failed,
            .connectionId = "C1",
            .errorTag = "invalid-value",
            .errorMessage = "bad \x1b value",
            .detail = "the device answered <rpc-error>" });
    auto failed = inv->stagedEdit(b.id);
    CHECK(failed.state == StagedState::Failed);
    CHECK(failed.errorTag == "invalid-value");
    CHECK(failed.errorMessage.find('\x1b') == std::string::npos); // the device's text is stored escaped
    auto c = stageXml();
    CHECK(inv->devicesWithStaged().empty()); // the failed item holds c back
    CHECK(inv->nextStaged(device.id)->id == b.id);
    CHECK_THROWS_AS(inv->retryStaged(c.id), UsageError); // only failed items
    CHECK(inv->retryStaged(b.id).state == StagedState::Queued);
    CHECK(inv->devicesWithStaged() == std::vector<int64_t> { device.id });
    REQUIRE(inv->markStagedApplying(b.id, "C2"));
    inv->finishStaged(b.id, { .state = StagedState::Failed, .detail = "again" });
    CHECK(inv->stagedEdit(b.id).attempts == 2);
    CHECK(inv->unstage(b.id).state == StagedState::Dropped);
    CHECK_THROWS_AS(inv->unstage(b.id), UsageError);
    CHECK_THROWS_AS(inv->unstage(a.id), UsageError); // applied
    CHECK(inv->nextStaged(device.id)->id == c.id);
    CHECK(inv->stagedEdits(device.id, false).size() == 2); // a, c
    CHECK(inv->stagedEdits(device.id, true).size() == 3);

    auto kinds = kindsOf(*inv, device.id);
    for (auto k :
        { EventKind::StagedApplied, EventKind::StagedFailed, EventKind::StagedRetried, EventKind::Unstaged }) {
        CHECK(std::count(kinds.begin(), kinds.end(), k) >= 1);
    }
}

TEST_CASE_METHOD(Fixture, "a session that ended before the reply, or a restart, puts the item back in the queue")
{
    auto a = stageXml();
    REQUIRE(inv->markStagedApplying(a.id, "C1"));
    inv->finishStaged(a.id, { .state = StagedState::Queued, .detail = "the session ended before the reply" });
    CHECK(inv->stagedEdit(a.id).state == StagedState::Queued);
    REQUIRE(inv->markStagedApplying(a.id, "C2"));
    inv.reset(); // callhomed stopped (or was killed) while it was applying
    inv = openForTest(dir.db());
    CHECK(inv->requeueApplying() == 1);
    auto back = inv->stagedEdit(a.id);
    CHECK(back.state == StagedState::Queued);
    CHECK(back.attempts == 2);
    CHECK(inv->devicesWithStaged() == std::vector<int64_t> { device.id });
}

TEST_CASE_METHOD(Fixture, "forgetting a device drops its queue; v_staged shows the rest")
{
    auto other = inv->expect({ { "SN2", "example", "edge-2" } }).front();
    stageXml();
    inv->stage(other.id, { .content = kEdit });
    inv->forget(device.id);
    auto all = inv->stagedEdits(std::nullopt, true);
    REQUIRE(all.size() == 1);
    CHECK(all[0].deviceId == other.id);
    if (dir.postgres()) {
        return; // v_staged as SQLite serves it
    }
    auto db = test::raw(dir.db());
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(
                db.get(), "SELECT device_name, state, target, commit_after, format FROM v_staged", -1, &stmt, nullptr)
        == SQLITE_OK);
    REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
    CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0))) == "edge-2");
    CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 1))) == "queued");
    CHECK(sqlite3_column_int(stmt, 3) == 0);
    CHECK(sqlite3_step(stmt) == SQLITE_DONE);
    sqlite3_finalize(stmt);
}
