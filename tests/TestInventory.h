#pragma once
// The inventory backend the inventory_* tests run against: SQLite (default) or PostgreSQL, chosen by the environment
// variable CALLHOME_TEST_INVENTORY=sqlite|postgresql (tests/inventory.cmake registers each converted test twice:
// NAME and NAME_pg). PostgreSQL databases live in this test process's temporary server (harness/PgServer.h).
// Test cases that look at the SQLite file itself (raw SQL, file modes, WAL) keep ScratchDir and carry the tag
// [sqlite]; the _pg registrations exclude them.
#include "ScratchDir.h"
#include "harness/PgServer.h"
#include "inventory/Open.h"
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>

namespace callhome::test {
enum class TestBackend { Sqlite, Postgres };

/** CALLHOME_TEST_INVENTORY: unset/"sqlite" → SQLite, "postgresql" → PostgreSQL; anything else is a test setup error. */
inline TestBackend testBackend()
{
    const char* env = std::getenv("CALLHOME_TEST_INVENTORY");
    std::string v = env ? env : "";
    if (v.empty() || v == "sqlite") {
        return TestBackend::Sqlite;
    }
    if (v == "postgresql") {
        return TestBackend::Postgres;
    }
    throw std::runtime_error("CALLHOME_TEST_INVENTORY must be sqlite or postgresql, not \"" + v + "\"");
}

/**
 * One test's own inventory location: a scratch directory (always: tests keep other files there too) and `db()`, the
 * spec openInventory() takes: the SQLite file in that directory, or a fresh database of the process's PgServer.
 */
struct TestInventory : ScratchDir {
    TestBackend backend = testBackend();
    std::string database; ///< PostgreSQL: the database's name (for PgServer::execute), else empty
    std::string spec;

    TestInventory()
    {
        if (backend == TestBackend::Postgres) {
            static int n = 0;
            database = "inv" + std::to_string(++n);
            spec = PgServer::shared().createDatabase(database);
        } else {
            spec = ScratchDir::db();
        }
    }
    std::string db() const { return spec; }
    bool postgres() const { return backend == TestBackend::Postgres; }
};

/** callhomed's way: create if missing, migrate. */
inline std::unique_ptr<inventory::Inventory> openForTest(const std::string& spec)
{
    return inventory::openInventory(spec, inventory::OpenMode::CreateAndMigrate);
}

/** callhomectl's way: an existing, current inventory only. */
inline std::unique_ptr<inventory::Inventory> openExistingForTest(const std::string& spec)
{
    return inventory::openInventory(spec, inventory::OpenMode::ExistingOnly);
}
} // namespace callhome::test
