#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct pg_conn;
struct pg_result;

namespace callhome::inventory::pg {
/** Closes a libpq connection (PQfinish). */
struct ConnFinish {
    void operator()(pg_conn* conn) const noexcept;
};
using ConnPtr = std::unique_ptr<pg_conn, ConnFinish>;

/** Frees a libpq result (PQclear). */
struct ResultClear {
    void operator()(pg_result* result) const noexcept;
};
using ResultPtr = std::unique_ptr<pg_result, ResultClear>;

class Connection;

/**
 * A parameterised statement (PQexecParams), written with SQLite's numbered parameters (?1, ?2, …) so that the two
 * backends read alike; they are sent as $1, $2, …. Integers go as int8, text as text, NULL as a parameter of
 * unknown type (the server infers it from its use: write `?3::bigint IS NULL` where nothing else would tell it);
 * a parameter never bound is NULL text.
 * The whole result is fetched on the first step(). Each statement is prepared once per connection (PQprepare) and
 * executed by name afterwards.
 */
class Statement {
public:
    Statement(Connection& conn, const std::string& sql, std::string purpose);
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    Statement& bind(int index, int64_t value);
    Statement& bind(int index, const std::string& value);
    Statement& bind(int index, std::nullopt_t);
    Statement& bind(int index, const std::optional<int64_t>& value);
    Statement& bind(int index, const std::optional<std::string>& value);

    /** Runs the statement on the first call; true while a row is available. Throws DatabaseError. */
    bool step();
    /** Runs a statement whose rows (if any) do not matter. */
    void run();
    /** Rows the statement inserted, updated or deleted (after run() or step()). */
    int64_t changes() const noexcept { return m_changes; }

    bool isNull(int column) const;
    int64_t integer(int column) const;
    std::string text(int column) const;
    /** The column's text without a copy: valid while this statement lives (NULL reads as empty). */
    std::string_view textView(int column) const;
    std::optional<int64_t> optionalInteger(int column) const;
    std::optional<std::string> optionalText(int column) const;

private:
    void set(int index, std::optional<std::string> value, unsigned type);
    void execute();

    Connection& m_conn;
    std::string m_sql;
    std::string m_purpose;
    std::vector<std::optional<std::string>> m_values;
    std::vector<unsigned> m_types;
    ResultPtr m_result;
    int m_row = -1;
    int m_rows = 0;
    int64_t m_changes = 0;
};

/**
 * One libpq connection. Not thread-safe: the owner serializes use. Error messages carry the server's message and
 * the purpose, never the connection string (which may hold a password).
 */
class Connection {
public:
    /** Connects with `conninfo` (URL or keyword string); `label` (the redacted spec) names it in errors. */
    Connection(const std::string& conninfo, std::string label);
    pg_conn* handle() const noexcept { return m_conn.get(); }
    const std::string& label() const noexcept { return m_label; }
    Statement prepare(const std::string& sql, const std::string& purpose) { return Statement(*this, sql, purpose); }
    /** Runs one or more statements without parameters (migrations, BEGIN/COMMIT). */
    void exec(const std::string& sql, const std::string& purpose);
    /** Runs sql without throwing (ROLLBACK in destructors); false when it failed. */
    bool tryExec(const std::string& sql) noexcept;
    /** Runs a statement whose single result is an integer. */
    int64_t queryInteger(const std::string& sql, const std::string& purpose);
    /** Connects again (PQreset, blocking) after the server dropped the connection; forgets prepared statements. */
    void reset();
    /** Rows changed by the last statement run with Statement::run()/step() on this connection. */
    int64_t changes() const noexcept { return m_changes; }

private:
    friend class Statement;
    ConnPtr m_conn;
    std::string m_label;
    int64_t m_changes = 0;
    /// statements prepared on this connection: SQL and parameter types → server-side name
    std::map<std::string, std::string> m_prepared;
};

/** Throws DatabaseError "<purpose>: <server message>" for a failed result (or connection). */
[[noreturn]] void fail(pg_conn* conn, pg_result* result, const std::string& purpose);
/** The SQLSTATE of a failed result, or empty. */
std::string sqlState(pg_result* result);
/** Translates ?N parameters (outside quoted text) into $N; returns the highest N through `maxIndex`. */
std::string translateParameters(std::string_view sql, int& maxIndex);
} // namespace callhome::inventory::pg
