// The test fixture's temporary PostgreSQL server (harness/PgServer.h): it starts, serves databases over its UNIX
// socket (and loopback when asked), runs as the `postgres` user when we are root, and is gone after stop().
#include "harness/PgServer.h"
#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <libpq-fe.h>
#include <memory>
#include <sys/stat.h>
#include <unistd.h>

using namespace callhome::test;

namespace {
struct PgConnFree {
    void operator()(PGconn* p) const noexcept { PQfinish(p); }
};
using Conn = std::unique_ptr<PGconn, PgConnFree>;

/** SELECT returning one value, as text; fails the test on any error. */
std::string scalar(const std::string& conninfo, const std::string& sql)
{
    Conn c(PQconnectdb(conninfo.c_str()));
    INFO(conninfo << ": " << PQerrorMessage(c.get()));
    REQUIRE(PQstatus(c.get()) == CONNECTION_OK);
    std::unique_ptr<PGresult, decltype(&PQclear)> r(PQexec(c.get(), sql.c_str()), &PQclear);
    INFO(sql << ": " << PQerrorMessage(c.get()));
    REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
    REQUIRE(PQntuples(r.get()) == 1);
    return PQgetvalue(r.get(), 0, 0);
}
} // namespace

TEST_CASE("a temporary server serves fresh databases over its UNIX socket")
{
    auto& server = PgServer::shared();
    REQUIRE(server.pid() > 0);
    REQUIRE(::kill(server.pid(), 0) == 0);

    auto a = server.createDatabase();
    auto b = server.createDatabase("named_one");
    CHECK(a != b);
    CHECK(b == server.connectionString("named_one"));
    CHECK(scalar(a, "SELECT current_user") == "postgres");
    CHECK(scalar(b, "SELECT current_database()") == "named_one");
    // The URL form reaches the same database.
    CHECK(server.url("named_one").rfind("postgresql://", 0) == 0);
    CHECK(scalar(server.url("named_one"), "SELECT current_database()") == "named_one");
    // No TCP listener unless asked for.
    CHECK(scalar(b, "SHOW listen_addresses").empty());
    CHECK_THROWS(server.tcpUrl("named_one"));

    server.execute("named_one", "CREATE TABLE t(x int); INSERT INTO t VALUES (41), (1)");
    CHECK(scalar(b, "SELECT sum(x) FROM t") == "42");
    REQUIRE_THROWS_WITH(server.execute("named_one", "SELECT * FROM nope"), Catch::Contains("nope"));
    REQUIRE_THROWS(server.createDatabase("named_one")); // exists already

    server.dropDatabase("named_one");
    Conn gone(PQconnectdb(b.c_str()));
    CHECK(PQstatus(gone.get()) != CONNECTION_OK);

    // Run as root, the cluster belongs to the postgres user (initdb and postgres refuse root).
    struct stat st { };
    REQUIRE(::stat((std::filesystem::path(server.socketDir()).parent_path() / "data").c_str(), &st) == 0);
    if (::geteuid() == 0) {
        CHECK(st.st_uid != 0);
    } else {
        CHECK(st.st_uid == ::geteuid());
    }
}

TEST_CASE("a server with a loopback port, stopped by its PID, leaves nothing behind")
{
    std::string dir;
    pid_t pid;
    {
        PgServer server({ .tcp = true });
        pid = server.pid();
        dir = std::filesystem::path(server.socketDir()).parent_path().string();
        REQUIRE(server.port() > 0);
        server.createDatabase("over_tcp");
        auto url = server.tcpUrl("over_tcp");
        CHECK(url == "postgresql://postgres@127.0.0.1:" + std::to_string(server.port()) + "/over_tcp");
        CHECK(scalar(url, "SELECT inet_server_addr()::text") == "127.0.0.1/32");

        Conn held(PQconnectdb(url.c_str())); // an open session must not keep the server alive
        REQUIRE(PQstatus(held.get()) == CONNECTION_OK);
        server.stop();
        CHECK(server.pid() == -1);
        CHECK(::kill(pid, 0) != 0);
        CHECK(::kill(-pid, 0) != 0); // no backend left in its group
        Conn refused(PQconnectdb(url.c_str()));
        CHECK(PQstatus(refused.get()) != CONNECTION_OK);
        CHECK(std::filesystem::exists(dir));
    }
    if (!std::getenv("CALLHOME_KEEP_TEST_DIRS")) {
        CHECK(!std::filesystem::exists(dir));
    }
}
