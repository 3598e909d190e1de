#include "harness/PgServer.h"
#include "harness/Util.h"
#include <algorithm>
#include <arpa/inet.h>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <grp.h>
#include <libpq-fe.h>
#include <memory>
#include <netinet/in.h>
#include <optional>
#include <pwd.h>
#include <sstream>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace callhome::test {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct PgConnFree {
    void operator()(PGconn* p) const noexcept { PQfinish(p); }
};
using PgConnPtr = std::unique_ptr<PGconn, PgConnFree>;
struct PgResultFree {
    void operator()(PGresult* p) const noexcept { PQclear(p); }
};
using PgResultPtr = std::unique_ptr<PGresult, PgResultFree>;

struct Fd {
    int fd = -1;
    explicit Fd(int f)
        : fd(f)
    { }
    ~Fd()
    {
        if (fd >= 0) {
            ::close(fd);
        }
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
};

/** The account initdb and postgres run as: Debian's `postgres` user when we are root, else none (ourselves). */
struct Account {
    uid_t uid;
    gid_t gid;
};

std::optional<Account> serverAccount()
{
    if (::geteuid() != 0) {
        return std::nullopt;
    }
    const passwd* pw = ::getpwnam("postgres");
    if (!pw) {
        throw HarnessError("PgServer: running as root, but there is no `postgres` user to run PostgreSQL as "
                           "(install the postgresql package: scripts/setup)");
    }
    return Account { pw->pw_uid, pw->pw_gid };
}

/** The directory with initdb and postgres: $CALLHOME_PG_BINDIR, else the newest /usr/lib/postgresql/NN/bin. */
std::string binDir()
{
    if (const char* env = std::getenv("CALLHOME_PG_BINDIR"); env && *env) {
        return env;
    }
    std::vector<std::pair<int, std::string>> found;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
        auto bin = entry.path() / "bin";
        if (fs::exists(bin / "initdb") && fs::exists(bin / "postgres")) {
            found.emplace_back(std::atoi(entry.path().filename().c_str()), bin.string());
        }
    }
    if (found.empty()) {
        throw HarnessError("PgServer: no PostgreSQL server in /usr/lib/postgresql/*/bin (install the postgresql "
                           "package: scripts/setup) and CALLHOME_PG_BINDIR is not set");
    }
    return std::max_element(found.begin(), found.end())->second;
}

/** Every ancestor of `path` lets others through (o+x): the `postgres` user can reach what we create there. */
bool traversableByOthers(const fs::path& path)
{
    for (fs::path p = fs::absolute(path); !p.empty(); p = p.parent_path()) {
        struct stat st { };
        if (::stat(p.c_str(), &st) != 0 || !(st.st_mode & S_IXOTH)) {
            return false;
        }
        if (p == p.root_path()) {
            break;
        }
    }
    return true;
}

std::string makeBaseDir(bool asOtherUser)
{
    std::string base = "/tmp";
    if (const char* env = std::getenv("TMPDIR"); env && *env) {
        // The socket path (DIR/sock/.s.PGSQL.NNNNN) must fit in sun_path (108 bytes).
        if (std::strlen(env) < 60 && (!asOtherUser || traversableByOthers(env))) {
            base = env;
        }
    }
    std::string pattern = base + "/callhome-pg.XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) {
        throw HarnessError("PgServer: mkdtemp " + pattern + ": " + std::strerror(errno));
    }
    return buf.data();
}

void giveTo(const std::string& path, const std::optional<Account>& account, mode_t mode)
{
    if (account && ::chown(path.c_str(), account->uid, account->gid) != 0) {
        throw HarnessError("PgServer: chown " + path + ": " + std::strerror(errno));
    }
    if (::chmod(path.c_str(), mode) != 0) {
        throw HarnessError("PgServer: chmod " + path + ": " + std::strerror(errno));
    }
}

/**
 * fork + exec `argv` in its own process group, stdin /dev/null, stdout and stderr appended to `logPath`, as
 * `account` when given (the child drops root before exec), in `cwd`. Only async-signal-safe calls between fork and
 * exec.
 */
pid_t spawn(const std::vector<std::string>& argv, const std::string& logPath, const std::optional<Account>& account,
    const std::string& cwd)
{
    Fd log(::open(logPath.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    Fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (log.fd < 0 || null.fd < 0) {
        throw HarnessError("PgServer: cannot open " + logPath + ": " + std::strerror(errno));
    }
    if (account && ::fchown(log.fd, account->uid, account->gid) != 0) {
        throw HarnessError("PgServer: chown " + logPath + ": " + std::strerror(errno));
    }
    std::vector<std::string> args = argv;
    std::vector<char*> cargs;
    for (auto& a : args) {
        cargs.push_back(a.data());
    }
    cargs.push_back(nullptr);

    pid_t pid = ::fork();
    if (pid < 0) {
        throw HarnessError(std::string("PgServer: fork: ") + std::strerror(errno));
    }
    if (pid == 0) {
        ::setpgid(0, 0);
        ::dup2(null.fd, 0);
        ::dup2(log.fd, 1);
        ::dup2(log.fd, 2);
        // The test ignores SIGPIPE and may block signals: the server gets the defaults.
        for (int sig : { SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGCHLD, SIGHUP, SIGUSR1, SIGUSR2 }) {
            ::signal(sig, SIG_DFL);
        }
        sigset_t none;
        ::sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        if (account) {
            gid_t gid = account->gid;
            if (::setgroups(1, &gid) != 0 || ::setgid(account->gid) != 0 || ::setuid(account->uid) != 0) {
                ::_exit(126);
            }
        }
        // Our cwd (the build tree) may be closed to the postgres user.
        if (::chdir(cwd.c_str()) != 0) {
            ::_exit(125);
        }
        ::execv(cargs[0], cargs.data());
        ::_exit(127);
    }
    return pid;
}

/** Reaps `pid` if it has exited: its status (exit code, 128+signal), else nullopt. */
std::optional<int> reapIfExited(pid_t pid)
{
    int status = 0;
    pid_t r;
    do {
        r = ::waitpid(pid, &status, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == pid) {
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (r < 0) {
        return -1; // not our child any more: treat as gone
    }
    return std::nullopt;
}

std::optional<int> waitExited(pid_t pid, std::chrono::milliseconds deadline)
{
    const auto until = Clock::now() + deadline;
    while (true) {
        if (auto st = reapIfExited(pid)) {
            return st;
        }
        if (Clock::now() >= until) {
            return std::nullopt;
        }
        std::this_thread::sleep_for(10ms);
    }
}

std::string tail(const std::string& path, std::size_t lines = 15)
{
    std::ifstream in(path);
    std::vector<std::string> all;
    for (std::string line; std::getline(in, line);) {
        all.push_back(line);
    }
    std::ostringstream out;
    for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) {
        out << "\n  " << all[i];
    }
    return out.str();
}

uint16_t pickLoopbackPort()
{
    Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (s.fd < 0 || ::bind(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0
        || ::getsockname(s.fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        throw HarnessError(std::string("PgServer: cannot pick a loopback port: ") + std::strerror(errno));
    }
    return ntohs(a.sin_port);
}

std::string percentEncode(const std::string& s)
{
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}
} // namespace

PgServer::PgServer(PgServerOptions options)
    : m_tcp(options.tcp)
{
    const auto account = serverAccount();
    const auto bin = binDir();
    m_dir = makeBaseDir(account.has_value());
    try {
        giveTo(m_dir, account, 0755);
        m_dataDir = m_dir + "/data";
        m_socketDir = m_dir + "/sock";
        m_logPath = m_dir + "/postgres.log";
        if (::mkdir(m_socketDir.c_str(), 0755) != 0) {
            throw HarnessError("PgServer: mkdir " + m_socketDir + ": " + std::strerror(errno));
        }
        giveTo(m_socketDir, account, 0755);

        const auto initdbLog = m_dir + "/initdb.log";
        pid_t initdb = spawn({ bin + "/initdb", "-D", m_dataDir, "-A", "trust", "-U", "postgres", "--no-sync",
                                 "--no-locale", "-E", "UTF8", "--no-instructions" },
            initdbLog, account, m_dir);
        auto st = waitExited(initdb, 60s);
        if (!st) {
            ::kill(-initdb, SIGKILL);
            waitExited(initdb, 5s);
            throw HarnessError("PgServer: initdb did not finish within 60 s" + tail(initdbLog));
        }
        if (*st != 0) {
            throw HarnessError("PgServer: initdb failed (status " + std::to_string(*st) + ")" + tail(initdbLog));
        }

        for (int attempt = 0;; ++attempt) {
            if (m_tcp) {
                m_port = pickLoopbackPort(); // another process may take it before postgres binds: retried below
            }
            std::vector<std::string> argv { bin + "/postgres", "-D", m_dataDir, "-k", m_socketDir, "-p",
                std::to_string(m_port), "-c", std::string("listen_addresses=") + (m_tcp ? "127.0.0.1" : ""), "-c",
                "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200",
                "-c", "unix_socket_permissions=0777" };
            m_pid = spawn(argv, m_logPath, account, m_dir);
            const auto until = Clock::now() + options.startDeadline;
            const auto conninfo = connectionString("postgres");
            bool ready = false;
            std::optional<int> exited;
            while (Clock::now() < until) {
                if (PQping(conninfo.c_str()) == PQPING_OK) {
                    ready = true;
                    break;
                }
                if ((exited = reapIfExited(m_pid))) {
                    break;
                }
                std::this_thread::sleep_for(20ms);
            }
            if (ready) {
                break;
            }
            if (exited) {
                m_pid = -1;
                if (m_tcp && attempt < 3) {
                    continue;
                }
                throw HarnessError("PgServer: postgres exited (status " + std::to_string(*exited)
                    + ") before accepting connections" + tail(m_logPath));
            }
            stop();
            throw HarnessError("PgServer: postgres did not accept connections within "
                + std::to_string(options.startDeadline.count()) + " ms" + tail(m_logPath));
        }
    } catch (...) {
        stop();
        std::error_code ec;
        if (!std::getenv("CALLHOME_KEEP_TEST_DIRS")) {
            fs::remove_all(m_dir, ec);
        }
        throw;
    }
}

PgServer::~PgServer()
{
    stop();
    if (!std::getenv("CALLHOME_KEEP_TEST_DIRS")) {
        std::error_code ec; // a destructor must not throw; a leftover directory is harmless
        fs::remove_all(m_dir, ec);
    }
}

PgServer& PgServer::shared()
{
    static PgServer server;
    return server;
}

void PgServer::stop()
{
    if (m_pid <= 0) {
        return;
    }
    // SIGINT: fast shutdown (sessions are disconnected); SIGQUIT: immediate; SIGKILL last.
    bool gone = false;
    for (auto [sig, deadline] : { std::pair { SIGINT, 10000ms }, std::pair { SIGQUIT, 5000ms } }) {
        ::kill(m_pid, sig);
        if (waitExited(m_pid, deadline)) {
            gone = true;
            break;
        }
    }
    if (!gone) {
        ::kill(-m_pid, SIGKILL);
        waitExited(m_pid, 5s);
    }
    // The group outlives its leader while backends remain; they exit on postmaster death, SIGKILL makes sure.
    if (::kill(-m_pid, 0) == 0) {
        ::kill(-m_pid, SIGKILL);
    }
    m_pid = -1;
}

std::string PgServer::connectionString(const std::string& database) const
{
    return "host=" + m_socketDir + " port=" + std::to_string(m_port) + " dbname=" + database + " user=postgres";
}

std::string PgServer::url(const std::string& database) const
{
    return "postgresql://postgres@/" + percentEncode(database) + "?host=" + percentEncode(m_socketDir)
        + "&port=" + std::to_string(m_port);
}

std::string PgServer::tcpUrl(const std::string& database) const
{
    if (!m_tcp) {
        throw HarnessError("PgServer::tcpUrl: the server was started without PgServerOptions::tcp");
    }
    return "postgresql://postgres@127.0.0.1:" + std::to_string(m_port) + "/" + percentEncode(database);
}

void PgServer::execute(const std::string& database, const std::string& sql)
{
    PgConnPtr conn(PQconnectdb(connectionString(database).c_str()));
    if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
        throw HarnessError(
            "PgServer: cannot connect to " + database + ": " + (conn ? PQerrorMessage(conn.get()) : "out of memory"));
    }
    PgResultPtr res(PQexec(conn.get(), sql.c_str()));
    auto status = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        throw HarnessError("PgServer: " + sql + ": " + PQerrorMessage(conn.get()));
    }
}

std::string PgServer::createDatabase(const std::string& name)
{
    auto db = name.empty() ? "t" + std::to_string(++m_nextDatabase) : name;
    PgConnPtr conn(PQconnectdb(connectionString("postgres").c_str()));
    if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
        throw HarnessError("PgServer: cannot connect: " + std::string(conn ? PQerrorMessage(conn.get()) : ""));
    }
    std::unique_ptr<char, decltype(&PQfreemem)> quoted(
        PQescapeIdentifier(conn.get(), db.c_str(), db.size()), &PQfreemem);
    PgResultPtr res(PQexec(conn.get(), ("CREATE DATABASE " + std::string(quoted.get())).c_str()));
    if (!res || PQresultStatus(res.get()) != PGRES_COMMAND_OK) {
        throw HarnessError("PgServer: CREATE DATABASE " + db + ": " + PQerrorMessage(conn.get()));
    }
    return connectionString(db);
}

void PgServer::dropDatabase(const std::string& name)
{
    PgConnPtr conn(PQconnectdb(connectionString("postgres").c_str()));
    if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
        throw HarnessError("PgServer: cannot connect: " + std::string(conn ? PQerrorMessage(conn.get()) : ""));
    }
    std::unique_ptr<char, decltype(&PQfreemem)> quoted(
        PQescapeIdentifier(conn.get(), name.c_str(), name.size()), &PQfreemem);
    PgResultPtr res(
        PQexec(conn.get(), ("DROP DATABASE IF EXISTS " + std::string(quoted.get()) + " WITH (FORCE)").c_str()));
    if (!res || PQresultStatus(res.get()) != PGRES_COMMAND_OK) {
        throw HarnessError("PgServer: DROP DATABASE " + name + ": " + PQerrorMessage(conn.get()));
    }
}
} // namespace callhome::test
