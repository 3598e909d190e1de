#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace callhome::inventory::sqlite {
/** Closes a connection; sqlite3_close_v2 defers the close until any unfinalized statement is gone. */
struct DbClose {
    void operator()(sqlite3* db) const noexcept;
};
using DbPtr = std::unique_ptr<sqlite3, DbClose>;

/** Finalizes a prepared statement. */
struct StmtFinalize {
    void operator()(sqlite3_stmt* stmt) const noexcept;
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalize>;

/** Throws DatabaseError "<purpose>: <sqlite message>"; SQLITE_BUSY says the inventory is locked by another writer. */
[[noreturn]] void fail(sqlite3* db, int rc, const std::string& purpose);

/** A prepared statement borrowed from a Connection's cache; reset on destruction so that it can be reused. */
class Statement {
public:
    Statement(sqlite3* db, sqlite3_stmt* stmt, std::string purpose);
    ~Statement();
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    Statement& bind(int index, int64_t value);
    Statement& bind(int index, const std::string& value);
    Statement& bind(int index, std::nullopt_t);
    template<typename T>
    Statement& bind(int index, const std::optional<T>& value)
    {
        return value ? bind(index, *value) : bind(index, std::nullopt);
    }

    /** Steps once: true when a row is available, false when done. Throws DatabaseError. */
    bool step();
    /** Runs a statement that returns no rows (or ignores them). */
    void run();

    bool isNull(int column) const;
    int64_t integer(int column) const;
    std::string text(int column) const;
    /** The column's text without a copy: valid until the next step() or reset (NULL reads as empty). */
    std::string_view textView(int column) const;
    std::optional<int64_t> optionalInteger(int column) const;
    std::optional<std::string> optionalText(int column) const;

private:
    sqlite3* m_db;
    sqlite3_stmt* m_stmt;
    std::string m_purpose;
};

/** One SQLite connection with a cache of prepared statements. Not thread-safe: the owner serializes use. */
class Connection {
public:
    /** Opens `path` with sqlite3_open_v2 `flags`; throws DatabaseError naming the path. */
    Connection(const std::string& path, int flags);
    sqlite3* handle() const noexcept { return m_db.get(); }
    /** A cached prepared statement for `sql`; `purpose` goes into error messages ("approving a device"). */
    Statement prepare(const std::string& sql, const std::string& purpose);
    /** Runs one or more statements without parameters (migrations, pragmas, BEGIN/COMMIT). */
    void exec(const std::string& sql, const std::string& purpose);
    /** Runs a statement whose single result is an integer (e.g. a PRAGMA). */
    int64_t queryInteger(const std::string& sql, const std::string& purpose);
    int64_t lastInsertId() const noexcept;
    int changes() const noexcept;

private:
    DbPtr m_db;
    // declared after m_db: statements are finalized before the connection closes
    std::map<std::string, StmtPtr> m_cache;
};
} // namespace callhome::inventory::sqlite
