// Hooks (config hooks/...: README "Hooks", server/HookRunner.h) against a real OpenSSH sshd + yuma123 netconfd device:
// on-pending with the documented environment, on-connect running callhomectl get-config against the device that just
// connected, a hook that hangs past its timeout (killed, recorded; the session unaffected), a failing hook's status,
// and a shutdown that no running hook delays. The hooks are shell scripts the test writes into its temp dir.
#include "callhome_api_common.h"
#include "harness/SshdDevice.h"
#include "server/SessionRegistry.h"
#include <csignal>
#include <filesystem>
#include <map>
#include <regex>
#include <sstream>
#include <sys/stat.h>

using namespace callhome;
using namespace callhome::test;
using namespace callhome::test::api;
using namespace std::chrono_literals;

namespace {
/** A shell script in the fixture's dir, executable; returns its path. */
std::string script(CallhomeFixture& f, const std::string& name, const std::string& body)
{
    auto path = tempFile(f, name, "#!/bin/sh\n" + body);
    ::chmod(path.c_str(), 0700);
    return path;
}

/** `env` output (NAME=VALUE lines) as a map; values here have no newlines. */
std::map<std::string, std::string> parseEnv(const std::string& text)
{
    std::map<std::string, std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        auto eq = line.find('=');
        if (eq != std::string::npos) {
            out[line.substr(0, eq)] = line.substr(eq + 1);
        }
    }
    return out;
}

/** The file once it exists (the hooks write NAME.tmp, then rename it), within 20 s. */
std::string waitForFile(const std::string& path)
{
    waitFor([&] { return std::filesystem::exists(path); }, 20s, path);
    return readFileIfExists(path);
}

/** `callhomectl --json events --device DEVICE` (the inventory file), the hook events in it. */
std::vector<json> hookEvents(CallhomeFixture& f, const std::string& device)
{
    auto r
        = runCommand(f.dir, { kCallhomectl, "--db", f.config.inventoryPath, "--json", "events", "--device", device });
    INFO(r.err);
    REQUIRE(r.status == 0);
    std::vector<json> out;
    auto doc = json::parse(r.out);
    for (const auto& e : doc.at("events")) {
        if (e.at("kind") == "hook") {
            out.push_back(e);
        }
    }
    return out;
}

/** Waits (20 s) for a hook event of `device` whose detail contains `text`; returns it. */
json waitForHookEvent(CallhomeFixture& f, const std::string& device, const std::string& text)
{
    json found;
    waitFor(
        [&] {
            for (const auto& e : hookEvents(f, device)) {
                if (e.at("detail").get<std::string>().find(text) != std::string::npos) {
                    found = e;
                    return true;
                }
            }
            return false;
        },
        20s, "a hook event of " + device + " with \"" + text + "\"");
    return found;
}
} // namespace

TEST_CASE("hooks: on-pending environment, on-connect uses the session, timeout, failure, shutdown")
{
    CallhomeFixture f;
    auto dir = f.dir.file("hooks");
    std::filesystem::create_directories(dir);
    // on-pending: the environment, as the hook saw it
    auto pending = script(f, "pending.sh", "env > \"$1.tmp\" && mv \"$1.tmp\" \"$1\"\n");
    // on-connect: callhomectl against the device that just connected, through $CALLHOME_CONTROL_SOCKET alone
    auto connect = script(f, "connect.sh",
        "env > \"$1/connect.env.tmp\"\n"
        "cp \"$CALLHOME_CAPABILITIES_FILE\" \"$1/capabilities.txt\"\n"
        "echo \"$CALLHOME_CAPABILITIES_FILE\" > \"$1/capabilities.path\"\n"
        "\"$2\" get-config \"$CALLHOME_DEVICE_ID\"\n"
        "status=$?\n"
        "mv \"$1/connect.env.tmp\" \"$1/connect.env\"\n"
        "exit $status\n");
    auto failing = script(f, "fail.sh", "echo \"disconnected: $CALLHOME_REASON\"\nexit 3\n");
    // Hangs: says its pid first, so that the test can see it gone
    auto hang = script(f, "hang.sh", "echo $$ > \"$1.tmp\" && mv \"$1.tmp\" \"$1\"\nexec sleep 60\n");

    f.config.hooks.onPending = { pending, dir + "/pending.env" };
    f.config.hooks.onConnect = { connect, dir, kCallhomectl };
    f.config.hooks.onDisconnect = { failing };
    f.config.hooks.timeout = 5s;
    startWithApi(f);

    SshdDevice device(f.dir, KeyType::Ed25519, f.daemon->stationPublicKey());
    device.callHome("127.0.0.1", f.portV4()).waitExit(10s);
    auto id = f.waitForDevice(device.hostKeyFingerprint()).id;

    // on-pending ran with the documented environment
    auto env = parseEnv(waitForFile(dir + "/pending.env"));
    INFO(readFileIfExists(dir + "/pending.env"));
    CHECK(env["CALLHOME_EVENT"] == "pending");
    CHECK(env["CALLHOME_DEVICE_ID"] == std::to_string(id));
    CHECK(env.count("CALLHOME_DEVICE_NAME") == 1);
    CHECK(env["CALLHOME_DEVICE_NAME"].empty()); // a pending device has no name yet
    CHECK(env["CALLHOME_ADDRESS"] == "127.0.0.1");
    CHECK(env["CALLHOME_TRANSPORT"] == "ssh");
    CHECK(env["CALLHOME_FINGERPRINT"] == device.hostKeyFingerprint());
    CHECK(env.count("CALLHOME_MANUFACTURER") == 1);
    CHECK(env["CALLHOME_MANUFACTURER"].empty());
    CHECK(env.count("CALLHOME_SERIAL") == 1);
    CHECK(std::regex_match(env["CALLHOME_CONNECTION_ID"], std::regex("C[0-9]+")));
    CHECK(env.count("CALLHOME_REASON") == 1);
    CHECK(env.count("CALLHOME_CAPABILITIES_FILE") == 1);
    CHECK(env["CALLHOME_CAPABILITIES_FILE"].empty()); // connect only
    CHECK(env["CALLHOME_CONTROL_SOCKET"] == f.apiSocket());
    CHECK(env["CALLHOME_STATE_DIR"] == f.config.stateDir);
    CHECK(env["CALLHOME_TRACE_ID"] == "hook-on-pending-" + env["CALLHOME_CONNECTION_ID"]);
    CHECK_FALSE(env["PATH"].empty());
    CHECK_FALSE(env["HOME"].empty());
    auto pendingEvent = waitForHookEvent(f, device.hostKeyFingerprint(), "on-pending: exit 0");
    CHECK(pendingEvent["device_id"] == id);
    CHECK(pendingEvent["connection_id"] == env["CALLHOME_CONNECTION_ID"]);

    // Approved, it calls again: on-connect runs callhomectl get-config against it, and its output is in the event log
    approve(f, device.hostKeyFingerprint(), "edge-1", device.user());
    device.callHome("127.0.0.1", f.portV4());
    f.waitForSessions(1);
    auto connected = waitForHookEvent(f, "edge-1", "on-connect: exit 0");
    INFO(connected.dump());
    auto detail = connected.at("detail").get<std::string>();
    CHECK_THAT(detail, Catch::Contains("; output: "));
    CHECK_THAT(detail, Catch::Contains("urn:ietf:params:xml:ns:yang:ietf-netconf-acm")); // netconfd's running config
    CHECK(connected["device_name"] == "edge-1");
    auto connectEnv = parseEnv(waitForFile(dir + "/connect.env"));
    CHECK(connectEnv["CALLHOME_EVENT"] == "connect");
    CHECK(connectEnv["CALLHOME_DEVICE_NAME"] == "edge-1");
    CHECK(connectEnv["CALLHOME_DEVICE_ID"] == std::to_string(id));
    CHECK(connectEnv["CALLHOME_FINGERPRINT"] == device.hostKeyFingerprint());
    auto capabilities = readFileIfExists(dir + "/capabilities.txt");
    CHECK_THAT(capabilities, Catch::Contains("urn:ietf:params:netconf:base:1.0\n"));
    // the capabilities file is removed once the hook ended
    auto capabilitiesPath = readFileIfExists(dir + "/capabilities.path");
    capabilitiesPath = capabilitiesPath.substr(0, capabilitiesPath.find('\n'));
    CHECK_FALSE(capabilitiesPath.empty());
    CHECK_FALSE(std::filesystem::exists(capabilitiesPath));
    // the hook's request is in the operation trace under the hook's trace id
    auto traced = getJson(f, "/v1/trace?trace_id=hook-on-connect-" + connectEnv["CALLHOME_CONNECTION_ID"])["trace"];
    REQUIRE(traced.size() == 1);
    CHECK(traced[0]["operation"] == "get-config");
    CHECK(traced[0]["outcome"] == "ok");

    // A hook that hangs: killed after hooks/timeout, recorded timed out; the session is unaffected meanwhile and after
    auto next = f.daemon->liveConfig();
    next.hooks.onConnect = { hang, dir + "/hang.pid" };
    auto report = f.daemon->reload(next);
    CHECK(std::find(report.applied.begin(), report.applied.end(), "hooks") != report.applied.end());
    CHECK(report.restart.empty());
    REQUIRE(ctl(f, { "close", "edge-1" }).status == 0);
    waitFor([&] { return f.daemon->registry().size() == 0; }, 10s, "the session closed");
    // on-disconnect exits 3: its status and output are recorded
    auto failed = waitForHookEvent(f, "edge-1", "on-disconnect: exit 3");
    CHECK_THAT(failed.at("detail").get<std::string>(), Catch::Contains("output: disconnected: "));
    device.stopCallHomes();
    device.callHome("127.0.0.1", f.portV4());
    f.waitForSessions(1);
    auto pidText = waitForFile(dir + "/hang.pid");
    auto hookPid = std::stoi(pidText);
    REQUIRE(hookPid > 0);
    auto whileHanging = call(f, "GET", deviceUrl("edge-1", "data?datastore=running"));
    CHECK(whileHanging.status == 200);
    CHECK(hookEvents(f, "edge-1").size() == 3); // pending, connect, disconnect: the hanging one still runs
    auto timedOut = waitForHookEvent(f, "edge-1", "on-connect: timed out after 5.00 s, killed with SIGTERM");
    CHECK(::kill(hookPid, 0) != 0); // gone (and reaped)
    CHECK(f.daemon->registry().size() == 1);
    CHECK(call(f, "GET", deviceUrl("edge-1", "data?datastore=running")).status == 200);

    // Shutdown with a hook running: it is killed, the stop is not delayed
    std::filesystem::remove(dir + "/hang.pid");
    next.hooks.timeout = 600s;
    f.daemon->reload(next);
    REQUIRE(ctl(f, { "close", "edge-1" }).status == 0);
    waitFor([&] { return f.daemon->registry().size() == 0; }, 10s, "the session closed");
    device.stopCallHomes();
    device.callHome("127.0.0.1", f.portV4());
    f.waitForSessions(1);
    hookPid = std::stoi(waitForFile(dir + "/hang.pid"));
    auto t0 = Clock::now();
    f.stop();
    CHECK(Clock::now() - t0 < 8s);
    CHECK(::kill(hookPid, 0) != 0);
}

TEST_CASE("hooks: a missing program is recorded as not started; the metrics count hooks")
{
    CallhomeFixture f;
    f.config.hooks.onPending = { f.dir.file("no-such-hook") };
    f.config.hooks.onRefused = { "/bin/sh", "-c", "echo \"refused: $CALLHOME_REASON\"" };
    startWithApi(f);
    SshdDevice device(f.dir, KeyType::Ed25519, f.daemon->stationPublicKey());
    device.callHome("127.0.0.1", f.portV4()).waitExit(10s);
    auto fingerprint = device.hostKeyFingerprint();
    f.waitForDevice(fingerprint);
    auto notStarted = waitForHookEvent(f, fingerprint, "on-pending: not started: ");
    CHECK_THAT(notStarted.at("detail").get<std::string>(), Catch::Contains("No such file or directory"));

    // rejected, it calls again: on-refused with the reason
    auto r = call(f, "POST", deviceUrl(fingerprint, "reject"));
    REQUIRE(r.status == 200);
    device.callHome("127.0.0.1", f.portV4()).waitExit(10s);
    auto refused = waitForHookEvent(f, fingerprint, "on-refused: exit 0");
    CHECK_THAT(refused.at("detail").get<std::string>(), Catch::Contains("output: refused: "));

    auto metrics = call(f, "GET", "/v1/metrics").body;
    CHECK_THAT(metrics, Catch::Contains("callhome_hooks_total{hook=\"on-pending\",outcome=\"not-started\"} 1"));
    CHECK_THAT(metrics, Catch::Contains("callhome_hooks_total{hook=\"on-refused\",outcome=\"ok\"} 1"));
}
