// The operator's story on a PostgreSQL inventory, with the real binaries: callhomed --db postgresql://... as a
// process, callhomectl --db (URL and libpq keyword forms), an OpenSSH device, the test's temporary PostgreSQL server.
#include "Binaries.h"
#include "harness/PgServer.h"
#include "harness/Process.h"
#include "harness/SshdDevice.h"
#include "harness/TempDir.h"
#include "harness/Util.h"
#include <algorithm>
#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

using namespace callhome::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {
// The server trusts local connections, so any password is accepted: enough to see that none is ever shown.
const std::string kSecret = "s3cret-Pw-4711";

/** `url` (postgresql://postgres@/...) with a password in its user info. */
std::string withPassword(const std::string& url)
{
    const std::string user = "postgresql://postgres";
    REQUIRE(url.rfind(user + "@", 0) == 0);
    return user + ":" + kSecret + url.substr(user.size());
}

json ctlJson(const TempDir& dir, const std::string& db, std::vector<std::string> args)
{
    std::vector<std::string> argv { kCallhomectl, "--state-dir", dir.file("state"), "--db", db, "--json" };
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = runCommand(dir, argv);
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK_THAT(r.out + r.err, !Catch::Contains(kSecret));
    return json::parse(r.out);
}
} // namespace

TEST_CASE("operator flow on a PostgreSQL inventory: pending, approve with callhomectl, session up, connected")
{
    ignoreSigpipe();
    auto& pg = PgServer::shared();
    const auto keywords = pg.createDatabase("e2e");
    const auto url = withPassword(pg.url("e2e"));
    TempDir dir("callhome-e2e-pg");

    const auto log = dir.file("callhomed.log");
    auto daemon = std::make_unique<Process>(ProcessSpec { { kCallhomed, "--state-dir", dir.file("state"), "--db", url,
                                                              "--listen", "ssh:127.0.0.1:0", "--log-level", "debug" },
        dir.file("callhomed.out"), log });
    struct DumpLog {
        std::string path;
        ~DumpLog()
        {
            if (std::uncaught_exceptions() || !Catch::getResultCapture().lastAssertionPassed()) {
                std::cerr << "---- " << path << "\n" << readFileIfExists(path);
            }
        }
    } dump { log };
    const auto port = waitListening(*daemon, log);

    auto key = runCommand(dir, { kCallhomectl, "--state-dir", dir.file("state"), "station-key" });
    REQUIRE(key.status == 0);
    SshdDevice device(dir, KeyType::Ed25519, key.out);

    device.callHome("127.0.0.1", port).waitExit(10s);
    json devices;
    waitFor(
        [&] { return !(devices = ctlJson(dir, keywords, { "devices" }))["devices"].empty(); }, 10s, "device listed");
    auto pending = devices["devices"][0];
    CHECK(pending["state"] == "pending");
    CHECK(pending["fingerprint"] == device.hostKeyFingerprint());
    CHECK(device.authAttempts() == 0);

    auto approved = runCommand(dir,
        { kCallhomectl, "--db", url, "approve", device.hostKeyFingerprint(), "--name", "edge-pg", "--user",
            device.user() });
    INFO(approved.err);
    REQUIRE(approved.status == 0);
    CHECK_THAT(approved.out, Catch::Contains("edge-pg"));

    device.callHome("127.0.0.1", port);
    json shown;
    waitFor(
        [&] {
            return (shown = ctlJson(dir, url, { "show", "edge-pg" }))["connected"] == true;
        },
        30s, "edge-pg connected");
    CHECK(shown["state"] == "approved");
    auto caps = shown["capabilities"].get<std::vector<std::string>>();
    CHECK(std::any_of(
        caps.begin(), caps.end(), [](const auto& c) { return c.rfind("urn:ietf:params:netconf:base:1.", 0) == 0; }));
    auto table = runCommand(dir, { kCallhomectl, "--db", keywords, "devices" });
    REQUIRE(table.status == 0);
    CHECK_THAT(table.out, Catch::Contains("edge-pg") && Catch::Contains("approved") && Catch::Contains("yes"));

    // SIGTERM: the session is closed and recorded as such
    ::kill(daemon->pid(), SIGTERM);
    auto status = daemon->waitExit(15s);
    REQUIRE(status.has_value());
    CHECK(*status == 0);
    CHECK(ctlJson(dir, keywords, { "show", "edge-pg" })["connected"] == false);

    // Nothing went to a SQLite file, and the password was never logged.
    CHECK_FALSE(std::filesystem::exists(dir.file("state/inventory.db")));
    const auto text = readFile(log);
    CHECK_THAT(text, !Catch::Contains(kSecret));
    CHECK_THAT(text, Catch::Contains("postgresql://postgres:***@"));
}

TEST_CASE("bad PostgreSQL inventories: one clear line, exit 1, no password shown")
{
    auto& pg = PgServer::shared();
    TempDir dir("callhome-e2e-pg-bad");
    // a database that does not exist: callhomectl and callhomed refuse it, neither creates it
    const auto missing = "host=" + pg.socketDir() + " port=" + std::to_string(pg.port())
        + " dbname=nope user=postgres password=" + kSecret;
    auto r = runCommand(dir, { kCallhomectl, "--db", missing, "devices" });
    CHECK(r.status == 1);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK_THAT(r.err, Catch::Contains("nope") && !Catch::Contains(kSecret));
    r = runCommand(
        dir, { kCallhomed, "--state-dir", dir.file("state"), "--db", missing, "--listen", "ssh:127.0.0.1:0" });
    CHECK(r.status == 1);
    CHECK_THAT(r.err, Catch::Contains("nope") && !Catch::Contains(kSecret));

    // an existing database without the schema: callhomectl refuses it and leaves it empty
    const auto empty = pg.createDatabase("empty_one");
    r = runCommand(dir, { kCallhomectl, "--db", empty, "devices" });
    CHECK(r.status == 1);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    pg.execute("empty_one",
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = 'public') THEN "
        "RAISE EXCEPTION 'callhomectl created tables'; END IF; END $$");

    // inventory-group is for SQLite files
    writeFile(dir.file("grouped.json"), R"({"callhome-config:callhome": {"inventory-group": "callhome"}})");
    r = runCommand(dir,
        { kCallhomed, "--config", dir.file("grouped.json"), "--db", withPassword(pg.url("empty_one")),
            "--check-config" });
    CHECK(r.status == 1);
    CHECK_THAT(r.err, Catch::Contains("inventory-group") && Catch::Contains("***") && !Catch::Contains(kSecret));

    // --check-config shows the inventory without its password
    r = runCommand(dir,
        { kCallhomed, "--db", withPassword(pg.url("empty_one")), "--state-dir", dir.file("state"), "--check-config" });
    CHECK(r.status == 0);
    CHECK_THAT(r.out, Catch::Contains("inventory postgresql://postgres:***@/empty_one") && !Catch::Contains(kSecret));
}
