// The operator's story with the real binaries: callhomed as a process, callhomectl as a process, an OpenSSH device.
#include "Binaries.h"
#include "harness/Process.h"
#include "harness/SshdDevice.h"
#include "harness/TempDir.h"
#include "harness/Util.h"
#include <catch2/catch.hpp>
#include <csignal>
#include <iostream>
#include <nlohmann/json.hpp>
#include <regex>

using namespace callhome::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {
struct Daemon {
    const TempDir& dir;
    std::unique_ptr<Process> process;
    uint16_t port = 0;
    std::string log;

    explicit Daemon(const TempDir& d)
        : dir(d)
    {
        start();
    }
    void start()
    {
        static int n = 0;
        log = dir.file("callhomed" + std::to_string(++n) + ".log");
        process = std::make_unique<Process>(ProcessSpec {
            { kCallhomed, "--state-dir", dir.file("state"), "--listen", "ssh:127.0.0.1:0", "--log-level", "debug" },
            dir.file("callhomed.out"), log });
        port = waitListening(*process, log);
    }
};

json ctlJson(const TempDir& dir, std::vector<std::string> args)
{
    std::vector<std::string> argv { kCallhomectl, "--state-dir", dir.file("state"), "--json" };
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = runCommand(dir, argv);
    INFO(r.err);
    REQUIRE(r.status == 0);
    return json::parse(r.out);
}
} // namespace

/** Prints the listener's and the device's logs when the test fails, so that a CI failure explains itself. */
struct DumpLogsOnFailure {
    const Daemon& daemon;
    const SshdDevice* device = nullptr;
    ~DumpLogsOnFailure()
    {
        if (std::uncaught_exceptions() == 0 && Catch::getResultCapture().lastAssertionPassed()) {
            return;
        }
        std::cerr << "---- " << daemon.log << "\n" << readFileIfExists(daemon.log);
        if (device) {
            std::cerr << "---- " << device->logPath() << "\n" << readFileIfExists(device->logPath());
        }
    }
};

TEST_CASE("operator flow with callhomed and callhomectl; SIGTERM and kill -9")
{
    ignoreSigpipe();
    TempDir dir("callhome-e2e");
    Daemon daemon(dir);
    DumpLogsOnFailure dump { daemon };

    auto key = runCommand(dir, { kCallhomectl, "--state-dir", dir.file("state"), "station-key" });
    REQUIRE(key.status == 0);
    REQUIRE(key.out.rfind("ssh-ed25519 ", 0) == 0);
    SshdDevice device(dir, KeyType::Ed25519, key.out);
    dump.device = &device;

    device.callHome("127.0.0.1", daemon.port).waitExit(10s);
    json devices;
    waitFor([&] { return !(devices = ctlJson(dir, { "devices" }))["devices"].empty(); }, 10s, "device listed");
    auto pending = devices["devices"][0];
    CHECK(pending["state"] == "pending");
    CHECK(pending["fingerprint"] == device.hostKeyFingerprint());
    CHECK(pending["key_type"] == "ssh-ed25519");
    CHECK(pending["last_address"] == "127.0.0.1");
    CHECK(pending["attempts"] == 1);
    CHECK(device.authAttempts() == 0);

    // approve by an unambiguous fingerprint prefix, while callhomed runs
    auto prefix = device.hostKeyFingerprint().substr(0, 23); // "SHA256:" and 16 base64 characters, the minimum
    auto approved = runCommand(dir,
        { kCallhomectl, "--state-dir", dir.file("state"), "approve", prefix, "--name", "edge-7", "--user",
            device.user() });
    INFO(approved.err);
    REQUIRE(approved.status == 0);
    CHECK_THAT(approved.out, Catch::Contains("edge-7"));

    device.callHome("127.0.0.1", daemon.port);
    json shown;
    waitFor([&] { return (shown = ctlJson(dir, { "show", "edge-7" }))["connected"] == true; }, 30s, "edge-7 connected");
    CHECK(shown["state"] == "approved");
    CHECK(shown["session_start"].is_string());
    auto caps = shown["capabilities"].get<std::vector<std::string>>();
    CHECK(std::any_of(
        caps.begin(), caps.end(), [](const auto& c) { return c.rfind("urn:ietf:params:netconf:base:1.", 0) == 0; }));
    auto human = runCommand(dir, { kCallhomectl, "--state-dir", dir.file("state"), "show", "edge-7" });
    CHECK_THAT(human.out, Catch::Contains("connected") && Catch::Contains("urn:ietf:params:netconf:base:1."));

    // SIGTERM: <close-session>, disconnected in the inventory, exit 0
    ::kill(daemon.process->pid(), SIGTERM);
    auto status = daemon.process->waitExit(15s);
    REQUIRE(status.has_value());
    CHECK(*status == 0);
    CHECK(ctlJson(dir, { "show", "edge-7" })["connected"] == false);
    auto events = ctlJson(dir, { "events", "--device", "edge-7" })["events"];
    REQUIRE(!events.empty());
    CHECK(events.back()["kind"] == "session-closed");
    CHECK_THAT(events.back()["detail"].get<std::string>(), Catch::Contains("shutting down"));
    CHECK_THAT(readFile(daemon.log), !Catch::Contains("PRIVATE KEY") && !Catch::Contains("AAAA"));

    // restart keeps the inventory; the device calls again; kill -9; after a restart nobody shows connected
    daemon.start();
    device.callHome("127.0.0.1", daemon.port);
    waitFor([&] { return ctlJson(dir, { "show", "edge-7" })["connected"] == true; }, 30s, "edge-7 connected again");
    ::kill(daemon.process->pid(), SIGKILL);
    REQUIRE(daemon.process->waitExit(5s).has_value());
    daemon.start();
    CHECK(ctlJson(dir, { "show", "edge-7" })["connected"] == false);
    CHECK(ctlJson(dir, { "show", "edge-7" })["state"] == "approved");

    // revoke through the CLI ends a live session at once
    device.callHome("127.0.0.1", daemon.port);
    waitFor(
        [&] {
            return ctlJson(dir, { "show", "edge-7" })["connected"] == true;
        },
        30s, "edge-7 connected after restart");
    REQUIRE(runCommand(dir, { kCallhomectl, "--state-dir", dir.file("state"), "revoke", "edge-7" }).status == 0);
    waitFor([&] { return ctlJson(dir, { "show", "edge-7" })["connected"] == false; }, 5s, "session ended by revoke");
    daemon.process->stop();
}

TEST_CASE("callhomed refuses bad input with one clear line and exit 1")
{
    TempDir dir("callhome-e2e-bad");
    writeFile(dir.file("bad.json"), R"({"callhome-config:callhome": {"listen": [{"name": "a", "port": 70000}]}})");
    auto r = runCommand(dir, { kCallhomed, "--config", dir.file("bad.json"), "--state-dir", dir.file("state") });
    CHECK(r.status == 1);
    CHECK_THAT(r.err, Catch::Contains("bad.json") && Catch::Contains("port"));

    r = runCommand(dir, { kCallhomed, "--listen", "ssh:localhost:4334", "--state-dir", dir.file("state") });
    CHECK(r.status == 1);
    CHECK_THAT(r.err, Catch::Contains("not a numeric IP address"));

    writeFile(dir.file("garbage.db"), "this is not a database, but it is a file someone cares about\n");
    r = runCommand(dir,
        { kCallhomed, "--db", dir.file("garbage.db"), "--state-dir", dir.file("state"), "--listen",
            "ssh:127.0.0.1:0" });
    CHECK(r.status == 1);
    CHECK_THAT(r.err, Catch::Contains("garbage.db"));
    CHECK(readFile(dir.file("garbage.db")) == "this is not a database, but it is a file someone cares about\n");

    for (const auto& binary : { kCallhomed, kCallhomectl }) {
        r = runCommand(dir, { binary, "--version" });
        CHECK(r.status == 0);
        CHECK_THAT(r.out, Catch::StartsWith(binary.substr(binary.rfind('/') + 1) + " " + CALLHOME_TEST_VERSION));
    }

    r = runCommand(dir, { kCallhomed, "--help" });
    CHECK(r.status == 0);
    for (const char* opt : { "--config", "--state-dir", "--db", "--listen", "--log-level" }) {
        CHECK_THAT(r.out, Catch::Contains(opt));
    }
}

TEST_CASE("a second callhomed with the same listener id on the same inventory refuses to start")
{
    TempDir dir("callhome-e2e-twice");
    Daemon first(dir);
    DumpLogsOnFailure dump { first };
    auto r = runCommand(dir, { kCallhomed, "--state-dir", dir.file("state"), "--listen", "ssh:127.0.0.1:0" });
    CHECK(r.status == 1);
    CHECK_THAT(r.err, Catch::Contains("another callhomed") && Catch::Contains("listener id"));
    CHECK(first.process->running());
    // a different listener id on the same inventory is another instance, and may run
    writeFile(dir.file("other.json"), R"({"callhome-config:callhome": {"listener-id": "second"}})");
    Process second(ProcessSpec { { kCallhomed, "--config", dir.file("other.json"), "--state-dir", dir.file("state"),
                                     "--listen", "ssh:127.0.0.1:0", "--control-socket", dir.file("second.sock") },
        dir.file("second.out"), dir.file("second.log") });
    waitFor(
        [&] { return readFileIfExists(dir.file("second.log")).find("listening for call home") != std::string::npos; },
        10s, "the second instance listening");
    CHECK(second.running());
}
