#pragma once
// A plain SQLite connection to the inventory file, as a script or another process would use, for inventory tests.
#include <catch2/catch.hpp>
#include <memory>
#include <sqlite3.h>
#include <string>

namespace callhome::test {
struct RawClose {
    void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
using RawDb = std::unique_ptr<sqlite3, RawClose>;

/** Opens `path` directly with sqlite3; fails the test when it cannot. */
inline RawDb raw(const std::string& path, int flags = SQLITE_OPEN_READWRITE)
{
    sqlite3* db = nullptr;
    auto rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
    RawDb owner(db);
    REQUIRE(rc == SQLITE_OK);
    return owner;
}

/** Runs SQL; returns the error message, empty on success. */
inline std::string exec(sqlite3* db, const std::string& sql)
{
    char* err = nullptr;
    auto rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    std::string message = rc == SQLITE_OK ? "" : (err ? err : "error");
    sqlite3_free(err);
    return message;
}
} // namespace callhome::test
