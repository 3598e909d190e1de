#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <sys/types.h>

namespace callhome::test {
struct PgServerOptions {
    /** Also listen on 127.0.0.1 at a port picked at run time (tcpUrl()); by default only the UNIX socket. */
    bool tcp = false;
    std::chrono::milliseconds startDeadline = std::chrono::seconds(30);
};

/**
 * A real PostgreSQL server (Debian's postgresql package, /usr/lib/postgresql/NN/bin) in a fresh temporary directory:
 * initdb (trust authentication, superuser `postgres`, no fsync), then `postgres` listening on a UNIX socket in that
 * directory only (or on loopback too, see PgServerOptions::tcp). Run as root, initdb and postgres run as the
 * `postgres` system user (they refuse root), the directory owned by it. The destructor stops the server by its PID
 * (SIGINT: fast shutdown, then SIGQUIT, then SIGKILL, each with a deadline) and removes the directory.
 *
 * Starting one costs about a second: a test process uses shared() and one database per test (createDatabase()).
 */
class PgServer {
public:
    explicit PgServer(PgServerOptions options = {});
    PgServer(const PgServer&) = delete;
    PgServer& operator=(const PgServer&) = delete;
    ~PgServer();

    /** The server of this test process (UNIX socket only), started on first use, stopped at exit. */
    static PgServer& shared();

    /**
     * Creates an empty database and returns its libpq keyword connection string
     * (`host=DIR port=N dbname=NAME user=postgres`). An empty `name` picks a fresh one (`t1`, `t2`, ...).
     */
    std::string createDatabase(const std::string& name = "");
    /** Drops a database (disconnecting its sessions first). */
    void dropDatabase(const std::string& name);
    /** Runs one SQL statement as the superuser in `database`; throws HarnessError with the server's message. */
    void execute(const std::string& database, const std::string& sql);

    /** Keyword connection string for `database` over the UNIX socket. */
    std::string connectionString(const std::string& database) const;
    /** The same as a `postgresql://` URL: `postgresql://postgres@/NAME?host=DIR&port=N`. */
    std::string url(const std::string& database) const;
    /** `postgresql://postgres@127.0.0.1:PORT/NAME`; throws unless started with PgServerOptions::tcp. */
    std::string tcpUrl(const std::string& database) const;

    const std::string& socketDir() const noexcept { return m_socketDir; }
    uint16_t port() const noexcept { return m_port; }
    pid_t pid() const noexcept { return m_pid; }
    const std::string& logPath() const noexcept { return m_logPath; }
    /** Stops the server now (the destructor does it otherwise). Idempotent. */
    void stop();

private:
    std::string m_dir;
    std::string m_dataDir;
    std::string m_socketDir;
    std::string m_logPath;
    uint16_t m_port = 5432;
    bool m_tcp = false;
    pid_t m_pid = -1;
    int m_nextDatabase = 0;
};
} // namespace callhome::test
