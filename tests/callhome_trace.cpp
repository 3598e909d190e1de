// Traceability (RFC 7922) through the control API against real devices: every operation sent to a device leaves one
// trace record with who asked (uid, pid), the client's trace id, the device, message-id, operation and outcome, and
// never the request's content; decisions carry who made them. OpenSSH sshd + yuma123 netconfd, a hostile device that
// never answers, and callhomed as a process at --log-level trace.
#include "api/ControlApi.h"
#include "callhome_api_common.h"
#include "harness/HostilePeer.h"
#include "harness/SshdDevice.h"
#include "server/SessionRegistry.h"
#include "server/TraceLog.h"
#include <csignal>
#include <regex>
#include <unistd.h>

using namespace callhome;
using namespace callhome::test;
using namespace callhome::test::api;
using namespace std::chrono_literals;

namespace {
constexpr const char* kSystem = "urn:ietf:params:xml:ns:yang:ietf-system";

std::string systemLeaf(const std::string& leaf, const std::string& value)
{
    return "<system xmlns=\"" + std::string(kSystem) + "\"><" + leaf + ">" + value + "</" + leaf + "></system>";
}

/** A marker no log line, record or schema could hold by chance. */
std::string uniqueMarker()
{
    return "secret-marker-" + std::to_string(::getpid()) + "-"
        + std::to_string(Clock::now().time_since_epoch().count());
}

/** The trace records a /v1/trace query lists, once it lists at least `n` (the writer batches behind the answer). */
std::vector<json> traceRecords(CallhomeFixture& f, const std::string& query, size_t n)
{
    std::vector<json> out;
    waitFor(
        [&] {
            auto doc = getJson(f, "/v1/trace" + query);
            out = doc["trace"].get<std::vector<json>>();
            return out.size() >= n;
        },
        10s, std::to_string(n) + " trace records for " + query);
    return out;
}

/** All bytes of the inventory: the database file and its WAL (where fresh commits live). */
std::string inventoryBytes(const std::string& path)
{
    return readFileIfExists(path) + readFileIfExists(path + "-wal");
}

std::string me()
{
    return std::to_string(::getuid());
}
} // namespace

TEST_CASE("trace: edit-config, get-config, a refused edit; trace id echoed and found by callhomectl; no body stored")
{
    CallhomeFixture f;
    startWithApi(f);
    SshdDevice device(f.dir, KeyType::Ed25519, f.daemon->stationPublicKey());
    device.callHome("127.0.0.1", f.portV4()).waitExit(10s);
    auto id = f.waitForDevice(device.hostKeyFingerprint()).id;
    auto approved = approve(f, device.hostKeyFingerprint(), "edge-1", device.user());
    device.callHome("127.0.0.1", f.portV4());
    f.waitForSessions(1);
    auto connectionId = f.daemon->registry().find(id)->connectionId;

    // the decision made through the API names the client, in the device and in its event
    CHECK_THAT(approved["decided_by"].get<std::string>(), Catch::StartsWith("uid " + me()));
    auto events = getJson(f, "/v1/events?device=edge-1")["events"];
    bool attributed = false;
    for (const auto& e : events) {
        attributed = attributed
            || (e["kind"] == "approved" && e["detail"].get<std::string>().find(" by uid " + me()) != std::string::npos);
    }
    CHECK(attributed);

    const auto marker = uniqueMarker();
    const std::string traceId = "change-" + marker.substr(14);
    auto edit = call(f, "POST", deviceUrl("edge-1", "edit?target=candidate&commit=true"), systemLeaf("contact", marker),
        { { "Content-Type", "application/xml" }, { "X-Callhome-Trace-Id", traceId } });
    INFO(edit.body);
    REQUIRE(edit.status == 200);
    CHECK(edit.header("x-callhome-trace-id") == traceId);

    auto get = call(f, "GET", deviceUrl("edge-1", "data?datastore=running"), {},
        { { "Accept", "application/xml" }, { "X-Callhome-Trace-Id", "read-1" } });
    REQUIRE(get.status == 200);
    CHECK_THAT(get.body, Catch::Contains(marker)); // the edit took effect

    auto refused = call(f, "POST", deviceUrl("edge-1", "edit?target=candidate"),
        "<system xmlns=\"" + std::string(kSystem) + "\"><ntp><enabled>maybe</enabled></ntp></system>",
        { { "Content-Type", "application/xml" }, { "X-Callhome-Trace-Id", "bad-1" } });
    REQUIRE(refused.status == 400);
    CHECK(refused.header("x-callhome-trace-id") == "bad-1");

    // a trace id that is not printable text is refused, not stored
    auto badId = call(f, "GET", deviceUrl("edge-1", "data"), {}, { { "X-Callhome-Trace-Id", std::string(200, 'x') } });
    CHECK(badId.status == 400);
    CHECK(bodyJson(badId)["error"] == "bad-request");

    auto records = traceRecords(f, "?trace_id=" + traceId, 2);
    REQUIRE(records.size() == 2);
    const auto& e = records[0];
    INFO(e.dump());
    CHECK(e["operation"] == "edit-config");
    CHECK(e["datastore"] == "candidate");
    CHECK(e["outcome"] == "ok");
    CHECK(e["client_uid"] == ::getuid());
    CHECK(e["client_pid"] == ::getpid()); // the harness's HTTP client runs in this process
    CHECK_THAT(e["client"].get<std::string>(), Catch::StartsWith("uid " + me()));
    CHECK(e["trace_id"] == traceId);
    CHECK(e["device_id"] == id);
    CHECK(e["device_name"] == "edge-1");
    CHECK(e["connection_id"] == connectionId);
    CHECK(std::regex_match(e["message_id"].get<std::string>(), std::regex("callhome-api-[0-9]+")));
    CHECK(e["request_bytes"].get<int64_t>() > static_cast<int64_t>(marker.size()));
    CHECK(std::regex_match(e["request_sha256"].get<std::string>(), std::regex("[0-9a-f]{64}")));
    CHECK(e["received_at"].get<std::string>() <= e["answered_at"].get<std::string>());
    CHECK(e["duration_ms"].get<int64_t>() >= 0);
    CHECK(e["source"] == "api");
    CHECK(records[1]["operation"] == "commit");
    CHECK(records[1]["message_id"] != e["message_id"]);
    CHECK(records[1]["outcome"] == "ok");

    auto reads = traceRecords(f, "?trace_id=read-1", 1);
    CHECK(reads[0]["operation"] == "get-config");
    CHECK(reads[0]["datastore"] == "running");
    CHECK(reads[0]["outcome"] == "ok");
    CHECK(std::regex_match(reads[0]["message_id"].get<std::string>(), std::regex("callhome-api-[0-9]+")));

    auto bad = traceRecords(f, "?trace_id=bad-1", 1);
    CHECK(bad[0]["operation"] == "edit-config");
    CHECK(bad[0]["outcome"] == "rpc-error");
    CHECK(bad[0]["error_tag"] == "invalid-value");
    CHECK_THAT(bad[0]["error_path"].get<std::string>(), Catch::Contains("enabled"));

    // the same edit body hashes the same: two records can be compared without the body
    auto again = call(f, "POST", deviceUrl("edge-1", "edit?target=candidate&commit=true"),
        systemLeaf("contact", marker), { { "Content-Type", "application/xml" }, { "X-Callhome-Trace-Id", "again-1" } });
    REQUIRE(again.status == 200);
    auto repeated = traceRecords(f, "?trace_id=again-1", 1);
    CHECK(repeated[0]["request_sha256"] == e["request_sha256"]);

    // filters: by device, by client (the uid), the newest N
    CHECK(traceRecords(f, "?device=edge-1&client=" + me(), 6).size() == 6);
    CHECK(getJson(f, "/v1/trace?client=nobody-such")["trace"].empty());
    CHECK(getJson(f, "/v1/trace?limit=1")["trace"].size() == 1);
    CHECK(call(f, "GET", "/v1/trace?since=yesterday-ish").status == 400);

    // callhomectl finds the client's trace id in the inventory (as a table, as JSON, as JSON lines)
    auto table = runCommand(f.dir, { kCallhomectl, "--db", f.config.inventoryPath, "trace", "--trace-id", traceId });
    INFO(table.err);
    REQUIRE(table.status == 0);
    CHECK_THAT(table.out, Catch::Contains("edit-config") && Catch::Contains("commit") && Catch::Contains(traceId));
    auto listed
        = runCommand(f.dir, { kCallhomectl, "--db", f.config.inventoryPath, "--json", "trace", "--trace-id", traceId });
    REQUIRE(listed.status == 0);
    auto doc = json::parse(listed.out);
    REQUIRE(doc["trace"].size() == 2);
    CHECK(doc["trace"][0]["message_id"] == e["message_id"]);
    auto lines = runCommand(f.dir,
        { kCallhomectl, "--db", f.config.inventoryPath, "trace", "--jsonl", "--device", "edge-1", "--client", me() });
    REQUIRE(lines.status == 0);
    auto parsed = jsonLines(lines.out);
    CHECK(parsed.size() == 6);
    CHECK(std::count(lines.out.begin(), lines.out.end(), '\n') == 6);
    auto unknown = runCommand(f.dir, { kCallhomectl, "--db", f.config.inventoryPath, "trace", "--device", "nope" });
    CHECK(unknown.status != 0);
    CHECK_THAT(unknown.err, Catch::Contains("nope"));

    // a follower sees new records as they are written, filtered
    HttpStream follow(f.apiSocket(), HttpRequest { "GET", "/v1/trace?follow=true&trace_id=live-1" }, 10s);
    REQUIRE(follow.status() == 200);
    auto live
        = call(f, "GET", deviceUrl("edge-1", "data?datastore=candidate"), {}, { { "X-Callhome-Trace-Id", "live-1" } });
    REQUIRE(live.status == 200);
    auto line = lineMatching(
        follow, [](const std::string& l) { return l.find("\"live-1\"") != std::string::npos; }, 10s, "live record");
    auto liveRecord = json::parse(line);
    CHECK(liveRecord["operation"] == "get-config");
    CHECK(liveRecord["datastore"] == "candidate");

    // never the body: not in the trace, the events or anywhere in the database file
    REQUIRE(f.api->traceLog()->flush(5s));
    CHECK_THAT(getJson(f, "/v1/trace").dump(), !Catch::Contains(marker));
    CHECK_THAT(inventoryBytes(f.config.inventoryPath), !Catch::Contains(marker));
}

TEST_CASE("trace: a timed-out RPC is recorded as a timeout, with its message-id")
{
    CallhomeFixture f;
    startWithApi(f);
    HostilePeer peer(f.dir, HostileKind::Ssh, HostilePeerOptions { .authorizedKeyLine = f.daemon->stationPublicKey() });
    auto& first = peer.callHome("normal", "127.0.0.1", f.portV4());
    first.waitFor("closed", 15s);
    f.waitForDevice(peer.hostKeyFingerprint());
    approve(f, peer.hostKeyFingerprint(), "mute");
    auto& attempt = peer.callHome("no-close-reply", "127.0.0.1", f.portV4());
    attempt.waitFor("hello-received", 15s);
    waitFor([&] { return f.daemon->registry().findByName("mute") != nullptr; }, 15s, "mute in the registry");

    auto r = call(f, "POST", deviceUrl("mute", "rpc?timeout=1"), "<get/>",
        { { "Content-Type", "application/xml" }, { "X-Callhome-Trace-Id", "slow-1" } });
    CHECK(r.status == 504);
    CHECK(r.header("x-callhome-trace-id") == "slow-1");
    auto records = traceRecords(f, "?trace_id=slow-1", 1);
    INFO(records[0].dump());
    CHECK(records[0]["operation"] == "get");
    CHECK(records[0]["datastore"] == "operational");
    CHECK(records[0]["outcome"] == "timeout");
    CHECK(std::regex_match(records[0]["message_id"].get<std::string>(), std::regex("callhome-api-[0-9]+")));
    CHECK(records[0]["duration_ms"].get<int64_t>() >= 900);
    CHECK_THAT(records[0]["detail"].get<std::string>(), Catch::Contains("no reply"));
}

TEST_CASE("trace: callhomed at --log-level trace logs no message body; callhomectl decisions name the user")
{
    ignoreSigpipe();
    TempDir dir("callhome-trace");
    const auto state = dir.file("state");
    const auto log = dir.file("callhomed.log");
    Process daemon(
        ProcessSpec { { kCallhomed, "--state-dir", state, "--listen", "ssh:127.0.0.1:0", "--log-level", "trace" },
            dir.file("callhomed.out"), log });
    const uint16_t port = waitListening(daemon, log);
    auto ctl = [&](std::vector<std::string> args) {
        std::vector<std::string> argv { kCallhomectl, "--state-dir", state };
        argv.insert(argv.end(), args.begin(), args.end());
        return runCommand(dir, argv);
    };
    auto key = ctl({ "station-key" });
    REQUIRE(key.status == 0);
    SshdDevice device(dir, KeyType::Ed25519, key.out);
    device.callHome("127.0.0.1", port).waitExit(10s);
    waitFor([&] { return ctl({ "show", device.hostKeyFingerprint() }).status == 0; }, 10s, "device pending");
    auto approved
        = ctl({ "--json", "approve", device.hostKeyFingerprint(), "--name", "edge-7", "--user", device.user() });
    INFO(approved.err);
    REQUIRE(approved.status == 0);
    CHECK_THAT(json::parse(approved.out)["decided_by"].get<std::string>(), Catch::StartsWith("uid " + me()));
    auto events = json::parse(ctl({ "--json", "events", "--device", "edge-7" }).out)["events"];
    REQUIRE(!events.empty());
    CHECK_THAT(events.back()["detail"].get<std::string>(), Catch::Contains(" by uid " + me()));

    device.callHome("127.0.0.1", port);
    waitFor([&] { return ctl({ "sessions" }).out.find("edge-7") != std::string::npos; }, 30s, "edge-7 connected");

    const auto marker = uniqueMarker();
    auto file = dir.file("edit.xml");
    writeFile(file, systemLeaf("contact", marker));
    // the script names its change: CALLHOME_TRACE_ID goes into the records of what callhomectl asks for
    auto edit = runCommand(dir,
        { "/usr/bin/env", "CALLHOME_TRACE_ID=cli-change-1", kCallhomectl, "--state-dir", state, "edit-config", "edge-7",
            file, "--target", "candidate", "--commit" });
    INFO(edit.err);
    REQUIRE(edit.status == 0);
    auto shown = ctl({ "get-config", "edge-7" });
    REQUIRE(shown.status == 0);
    CHECK_THAT(shown.out, Catch::Contains(marker));

    std::vector<json> records;
    waitFor(
        [&] {
            auto r = ctl({ "trace", "--jsonl", "--device", "edge-7" });
            records = jsonLines(r.out);
            return records.size() >= 3;
        },
        10s, "edit-config, commit and get-config traced");
    CHECK(records[0]["operation"] == "edit-config");
    CHECK(records[0]["client_uid"] == ::getuid());
    CHECK(records[1]["operation"] == "commit");
    CHECK(records[2]["operation"] == "get-config");
    auto named = ctl({ "--json", "trace", "--trace-id", "cli-change-1" });
    REQUIRE(named.status == 0);
    auto byId = json::parse(named.out)["trace"];
    REQUIRE(byId.size() == 2);
    CHECK(byId[0]["operation"] == "edit-config");
    CHECK(byId[0]["datastore"] == "candidate");
    CHECK(byId[0]["device_name"] == "edge-7");
    CHECK(byId[1]["operation"] == "commit");
    CHECK(records[2]["trace_id"] == "");

    ::kill(daemon.pid(), SIGTERM);
    REQUIRE(daemon.waitExit(20s).has_value());
    auto text = readFileIfExists(log);
    // the log was at trace level: libnetconf2 spoke, and said what it left out
    CHECK_THAT(text, Catch::Contains("libnetconf2"));
    CHECK_THAT(text, Catch::Contains("bytes of message not logged"));
    CHECK_THAT(text, !Catch::Contains(marker));
    CHECK_THAT(readFileIfExists(dir.file("callhomed.out")), !Catch::Contains(marker));
    CHECK_THAT(inventoryBytes(state + "/inventory.db"), !Catch::Contains(marker));
}
