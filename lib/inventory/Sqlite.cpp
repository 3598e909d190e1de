#include "inventory/Sqlite.h"
#include "inventory/Inventory.h"
#include <sqlite3.h>

namespace callhome::inventory::sqlite {
void DbClose::operator()(sqlite3* db) const noexcept
{
    sqlite3_close_v2(db);
}

void StmtFinalize::operator()(sqlite3_stmt* stmt) const noexcept
{
    sqlite3_finalize(stmt);
}

void fail(sqlite3* db, int rc, const std::string& purpose)
{
    std::string message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    if ((rc & 0xff) == SQLITE_BUSY) {
        // Only reached after busy_timeout expired: someone kept a write transaction open far too long.
        throw DatabaseError(purpose + ": inventory is locked by another writer (" + message + ")");
    }
    throw DatabaseError(purpose + ": " + message);
}

Statement::Statement(sqlite3* db, sqlite3_stmt* stmt, std::string purpose)
    : m_db(db)
    , m_stmt(stmt)
    , m_purpose(std::move(purpose))
{ }

Statement::~Statement()
{
    sqlite3_reset(m_stmt);
    sqlite3_clear_bindings(m_stmt);
}

Statement& Statement::bind(int index, int64_t value)
{
    if (auto rc = sqlite3_bind_int64(m_stmt, index, value); rc != SQLITE_OK) {
        fail(m_db, rc, m_purpose);
    }
    return *this;
}

Statement& Statement::bind(int index, const std::string& value)
{
    if (auto rc = sqlite3_bind_text(m_stmt, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
        rc != SQLITE_OK) {
        fail(m_db, rc, m_purpose);
    }
    return *this;
}

Statement& Statement::bind(int index, std::nullopt_t)
{
    if (auto rc = sqlite3_bind_null(m_stmt, index); rc != SQLITE_OK) {
        fail(m_db, rc, m_purpose);
    }
    return *this;
}

bool Statement::step()
{
    switch (auto rc = sqlite3_step(m_stmt)) {
    case SQLITE_ROW:
        return true;
    case SQLITE_DONE:
        return false;
    default:
        fail(m_db, rc, m_purpose);
    }
}

void Statement::run()
{
    while (step()) { }
}

bool Statement::isNull(int column) const
{
    return sqlite3_column_type(m_stmt, column) == SQLITE_NULL;
}

int64_t Statement::integer(int column) const
{
    return sqlite3_column_int64(m_stmt, column);
}

std::string Statement::text(int column) const
{
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(m_stmt, column));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(m_stmt, column))) : std::string();
}

std::string_view Statement::textView(int column) const
{
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(m_stmt, column));
    return p ? std::string_view(p, static_cast<size_t>(sqlite3_column_bytes(m_stmt, column))) : std::string_view();
}

std::optional<int64_t> Statement::optionalInteger(int column) const
{
    if (isNull(column)) {
        return std::nullopt;
    }
    return integer(column);
}

std::optional<std::string> Statement::optionalText(int column) const
{
    if (isNull(column)) {
        return std::nullopt;
    }
    return text(column);
}

Connection::Connection(const std::string& path, int flags)
{
    sqlite3* raw = nullptr;
    auto rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
    // sqlite3_open_v2 allocates a handle even on failure; it must be closed either way.
    m_db.reset(raw);
    if (rc != SQLITE_OK) {
        fail(m_db.get(), rc, "opening inventory " + path);
    }
    sqlite3_extended_result_codes(m_db.get(), 1);
}

Statement Connection::prepare(const std::string& sql, const std::string& purpose)
{
    auto it = m_cache.find(sql);
    if (it == m_cache.end()) {
        sqlite3_stmt* raw = nullptr;
        if (auto rc = sqlite3_prepare_v3(
                m_db.get(), sql.c_str(), static_cast<int>(sql.size()) + 1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
            rc != SQLITE_OK) {
            fail(m_db.get(), rc, purpose);
        }
        it = m_cache.emplace(sql, StmtPtr(raw)).first;
    }
    if (sqlite3_stmt_busy(it->second.get())) {
        // Two live Statement objects would share one sqlite3_stmt: a bug in the caller, not in the database.
        throw DatabaseError(purpose + ": internal error: statement already in use");
    }
    return Statement(m_db.get(), it->second.get(), purpose);
}

void Connection::exec(const std::string& sql, const std::string& purpose)
{
    char* rawMessage = nullptr;
    auto rc = sqlite3_exec(m_db.get(), sql.c_str(), nullptr, nullptr, &rawMessage);
    if (rc != SQLITE_OK) {
        std::string message = rawMessage ? rawMessage : sqlite3_errstr(rc);
        sqlite3_free(rawMessage);
        if ((rc & 0xff) == SQLITE_BUSY) {
            throw DatabaseError(purpose + ": inventory is locked by another writer (" + message + ")");
        }
        throw DatabaseError(purpose + ": " + message);
    }
}

int64_t Connection::queryInteger(const std::string& sql, const std::string& purpose)
{
    auto stmt = prepare(sql, purpose);
    if (!stmt.step()) {
        throw DatabaseError(purpose + ": no result");
    }
    return stmt.integer(0);
}

int64_t Connection::lastInsertId() const noexcept
{
    return sqlite3_last_insert_rowid(m_db.get());
}

int Connection::changes() const noexcept
{
    return sqlite3_changes(m_db.get());
}
} // namespace callhome::inventory::sqlite
