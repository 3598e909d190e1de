#pragma once
#include "inventory/Inventory.h"
#include <memory>
#include <string>

namespace callhome::inventory {
/** How openInventory() treats the database it is given. */
enum class OpenMode {
    CreateAndMigrate, ///< callhomed: create the inventory if missing, apply pending migrations, check integrity
    ExistingOnly, ///< readers and callhomectl: never create, never migrate; refuse a missing/foreign/newer schema
};

/**
 * True when `spec` names a PostgreSQL inventory: a `postgresql://` or `postgres://` URL, or a libpq keyword
 * connection string (`host=/run/postgresql dbname=callhome`). Anything else is a SQLite file path.
 */
bool isPostgresSpec(const std::string& spec);

/**
 * Opens the inventory `spec` names (see isPostgresSpec) with the backend it needs. The only place outside the
 * backends that knows there is more than one. Throws DatabaseError.
 */
std::unique_ptr<Inventory> openInventory(const std::string& spec, OpenMode mode);

/** `spec` fit for messages and logs: a PostgreSQL password (URL user info or `password=`) replaced by "***". */
std::string redactSpec(const std::string& spec);
} // namespace callhome::inventory
