#include "inventory/Pg.h"
#include "inventory/Inventory.h"
#include <charconv>
#include <libpq-fe.h>

namespace callhome::inventory::pg {
namespace {
// Parameter type OIDs (pg_type.oid): fixed since PostgreSQL 7.
constexpr unsigned Int8Oid = 20;
constexpr unsigned TextOid = 25;

std::string trimmed(const char* message)
{
    std::string out = message ? message : "";
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) {
        out.pop_back();
    }
    return out;
}
} // namespace

void ConnFinish::operator()(pg_conn* conn) const noexcept
{
    PQfinish(conn);
}

void ResultClear::operator()(pg_result* result) const noexcept
{
    PQclear(result);
}

std::string sqlState(pg_result* result)
{
    const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
    return state ? state : "";
}

void fail(pg_conn* conn, pg_result* result, const std::string& purpose)
{
    auto message = trimmed(result ? PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY) : nullptr);
    if (message.empty()) {
        message = trimmed(conn ? PQerrorMessage(conn) : "out of memory");
    }
    auto state = sqlState(result);
    if (state == "55P03") {
        // lock_timeout: another writer held the inventory's write lock too long
        throw DatabaseError(purpose + ": inventory is locked by another writer (" + message + ")");
    }
    throw DatabaseError(purpose + ": " + message);
}

std::string translateParameters(std::string_view sql, int& maxIndex)
{
    std::string out;
    out.reserve(sql.size());
    maxIndex = 0;
    char quote = 0;
    for (size_t i = 0; i < sql.size(); ++i) {
        char c = sql[i];
        if (quote) {
            out += c;
            if (c == quote) {
                quote = 0;
            }
            continue;
        }
        if (c == '\'' || c == '"') {
            quote = c;
            out += c;
            continue;
        }
        if (c == '?' && i + 1 < sql.size() && sql[i + 1] >= '0' && sql[i + 1] <= '9') {
            size_t j = i + 1;
            int n = 0;
            while (j < sql.size() && sql[j] >= '0' && sql[j] <= '9') {
                n = n * 10 + (sql[j] - '0');
                ++j;
            }
            maxIndex = std::max(maxIndex, n);
            out += '$';
            out.append(sql.substr(i + 1, j - i - 1));
            i = j - 1;
            continue;
        }
        out += c;
    }
    return out;
}

Statement::Statement(Connection& conn, const std::string& sql, std::string purpose)
    : m_conn(conn)
    , m_purpose(std::move(purpose))
{
    int maxIndex = 0;
    m_sql = translateParameters(sql, maxIndex);
    m_values.resize(static_cast<size_t>(maxIndex));
    // A parameter left unbound is NULL text (SQLite's unbound parameters are NULL): typed, so that the server never
    // has to infer the type of one that the statement does not use.
    m_types.resize(static_cast<size_t>(maxIndex), TextOid);
}

void Statement::set(int index, std::optional<std::string> value, unsigned type)
{
    if (index < 1 || static_cast<size_t>(index) > m_values.size()) {
        throw DatabaseError(m_purpose + ": internal error: no parameter ?" + std::to_string(index));
    }
    m_values[static_cast<size_t>(index - 1)] = std::move(value);
    m_types[static_cast<size_t>(index - 1)] = type;
}

Statement& Statement::bind(int index, int64_t value)
{
    set(index, std::to_string(value), Int8Oid);
    return *this;
}

Statement& Statement::bind(int index, const std::string& value)
{
    set(index, value, TextOid);
    return *this;
}

Statement& Statement::bind(int index, std::nullopt_t)
{
    set(index, std::nullopt, 0);
    return *this;
}

Statement& Statement::bind(int index, const std::optional<int64_t>& value)
{
    return value ? bind(index, *value) : (set(index, std::nullopt, Int8Oid), *this);
}

Statement& Statement::bind(int index, const std::optional<std::string>& value)
{
    return value ? bind(index, *value) : (set(index, std::nullopt, TextOid), *this);
}

void Statement::execute()
{
    std::vector<const char*> values;
    values.reserve(m_values.size());
    for (const auto& v : m_values) {
        values.push_back(v ? v->c_str() : nullptr);
    }
    // Prepared once per connection and parameter types (as SQLite's statement cache does): parsing and planning
    // were most of the cost of a call's small statements.
    std::string key = m_sql;
    key.push_back('\0');
    for (auto t : m_types) {
        key += std::to_string(t) + ",";
    }
    auto found = m_conn.m_prepared.find(key);
    if (found == m_conn.m_prepared.end()) {
        auto name = "callhome_" + std::to_string(m_conn.m_prepared.size() + 1);
        ResultPtr prepared(
            PQprepare(m_conn.handle(), name.c_str(), m_sql.c_str(), static_cast<int>(m_types.size()), m_types.data()));
        if (!prepared || PQresultStatus(prepared.get()) != PGRES_COMMAND_OK) {
            fail(m_conn.handle(), prepared.get(), m_purpose);
        }
        found = m_conn.m_prepared.emplace(std::move(key), std::move(name)).first;
    }
    m_result.reset(PQexecPrepared(
        m_conn.handle(), found->second.c_str(), static_cast<int>(values.size()), values.data(), nullptr, nullptr, 0));
    auto status = m_result ? PQresultStatus(m_result.get()) : PGRES_FATAL_ERROR;
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
        fail(m_conn.handle(), m_result.get(), m_purpose);
    }
    m_rows = PQntuples(m_result.get());
    const char* tuples = PQcmdTuples(m_result.get());
    m_changes = 0;
    if (tuples && *tuples) {
        std::from_chars(tuples, tuples + std::char_traits<char>::length(tuples), m_changes);
    }
    m_conn.m_changes = m_changes;
}

bool Statement::step()
{
    if (!m_result) {
        execute();
    }
    if (m_row + 1 >= m_rows) {
        m_row = m_rows;
        return false;
    }
    ++m_row;
    return true;
}

void Statement::run()
{
    if (!m_result) {
        execute();
    }
}

bool Statement::isNull(int column) const
{
    return PQgetisnull(m_result.get(), m_row, column) != 0;
}

int64_t Statement::integer(int column) const
{
    if (isNull(column)) {
        return 0;
    }
    const char* text = PQgetvalue(m_result.get(), m_row, column);
    int64_t value = 0;
    auto len = static_cast<size_t>(PQgetlength(m_result.get(), m_row, column));
    auto [ptr, ec] = std::from_chars(text, text + len, value);
    if (ec != std::errc() || ptr != text + len) {
        throw DatabaseError(m_purpose + ": column " + std::to_string(column) + " is not an integer");
    }
    return value;
}

std::string Statement::text(int column) const
{
    return std::string(textView(column));
}

std::string_view Statement::textView(int column) const
{
    if (isNull(column)) {
        return {};
    }
    return { PQgetvalue(m_result.get(), m_row, column),
        static_cast<size_t>(PQgetlength(m_result.get(), m_row, column)) };
}

std::optional<int64_t> Statement::optionalInteger(int column) const
{
    return isNull(column) ? std::nullopt : std::optional<int64_t>(integer(column));
}

std::optional<std::string> Statement::optionalText(int column) const
{
    return isNull(column) ? std::nullopt : std::optional<std::string>(text(column));
}

Connection::Connection(const std::string& conninfo, std::string label)
    : m_conn(PQconnectdb(conninfo.c_str()))
    , m_label(std::move(label))
{
    if (!m_conn) {
        throw DatabaseError("cannot connect to inventory " + m_label + ": out of memory");
    }
    if (PQstatus(m_conn.get()) != CONNECTION_OK) {
        // libpq's connection errors name host, port and user, never the password.
        throw DatabaseError("cannot connect to inventory " + m_label + ": " + trimmed(PQerrorMessage(m_conn.get())));
    }
    // Notices (e.g. "relation already exists, skipping") are not for callhome's logs.
    PQsetNoticeProcessor(
        m_conn.get(), [](void*, const char*) {}, nullptr);
}

void Connection::reset()
{
    m_prepared.clear();
    PQreset(m_conn.get());
    if (PQstatus(m_conn.get()) != CONNECTION_OK) {
        throw DatabaseError("cannot connect to inventory " + m_label + ": " + trimmed(PQerrorMessage(m_conn.get())));
    }
}

void Connection::exec(const std::string& sql, const std::string& purpose)
{
    ResultPtr result(PQexec(m_conn.get(), sql.c_str()));
    auto status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        fail(m_conn.get(), result.get(), purpose);
    }
}

bool Connection::tryExec(const std::string& sql) noexcept
{
    ResultPtr result(PQexec(m_conn.get(), sql.c_str()));
    auto status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
    return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
}

int64_t Connection::queryInteger(const std::string& sql, const std::string& purpose)
{
    auto stmt = prepare(sql, purpose);
    if (!stmt.step()) {
        throw DatabaseError(purpose + ": no result");
    }
    return stmt.integer(0);
}
} // namespace callhome::inventory::pg
