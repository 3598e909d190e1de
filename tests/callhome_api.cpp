// The control API (lib/api/README.md) against real devices over SSH: OpenSSH sshd + yuma123 netconfd, and
// libnetconf2's call-home server; the harness's own HTTP client, callhomectl and curl as independent clients.
#include "callhome_api_common.h"
#include "common/UniqueFd.h"
#include "harness/Nc2Device.h"
#include "harness/SshdDevice.h"
#include "server/SessionRegistry.h"
#include <arpa/inet.h>
#include <iostream>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace callhome;
using namespace callhome::test;
using namespace callhome::test::api;
using namespace std::chrono_literals;
using inventory::EventKind;

namespace {
// ietf-system: netconfd serves it with no instrumentation behind it, so its leaves are plain configuration. (Its
// NACM leaves are not: netconfd answers <ok/> to an edit of /nacm:nacm/write-default and keeps the old value.)
constexpr const char* kSystem = "urn:ietf:params:xml:ns:yang:ietf-system";

std::string systemLeaf(const std::string& leaf, const std::string& value)
{
    return "<system xmlns=\"" + std::string(kSystem) + "\"><" + leaf + ">" + value + "</" + leaf + "></system>";
}

/** An edit netconfd refuses: ntp/enabled is a boolean. */
std::string invalidEdit()
{
    return "<system xmlns=\"" + std::string(kSystem) + "\"><ntp><enabled>maybe</enabled></ntp></system>";
}

/** An approved OpenSSH + netconfd device named `name` with its session up. */
struct ConnectedSshd {
    SshdDevice device;
    int64_t id = 0;
    ConnectedSshd(CallhomeFixture& f, const std::string& name)
        : device(f.dir, KeyType::Ed25519, f.daemon->stationPublicKey())
    {
        device.callHome("127.0.0.1", f.portV4()).waitExit(10s);
        id = f.waitForDevice(device.hostKeyFingerprint()).id;
        approve(f, device.hostKeyFingerprint(), name, device.user());
        device.callHome("127.0.0.1", f.portV4());
        f.waitForSessions(1);
    }
};

/**
 * The running datastore's /ietf-system:system as RFC 7951 JSON, read through the API with a subtree filter, and
 * checked against the same read with an XPath filter (module-name prefixes, which callhomed sends as the module's
 * YANG prefix: yuma123 netconfd resolves XPath prefixes as module prefixes, not by the filter's xmlns declarations).
 */
json runningSystem(CallhomeFixture& f, const std::string& device)
{
    auto doc = getJson(f,
        deviceUrl(device,
            "data?datastore=running&subtree=" + percentEncode("<system xmlns=\"" + std::string(kSystem) + "\"/>")));
    INFO(doc.dump());
    REQUIRE(doc.contains("ietf-system:system"));
    auto byXpath
        = getJson(f, deviceUrl(device, "data?datastore=running&xpath=" + percentEncode("/ietf-system:system")));
    CHECK(byXpath == doc);
    return doc["ietf-system:system"];
}

/** An edit of the candidate, committed (yuma123 netconfd's default target is the candidate). */
HttpResponse editCandidate(CallhomeFixture& f, const std::string& device, const std::string& body,
    const std::string& contentType = "application/xml")
{
    return call(
        f, "POST", deviceUrl(device, "edit?target=candidate&commit=true"), body, { { "Content-Type", contentType } });
}
} // namespace

TEST_CASE("control API, SSH + yuma123 netconfd: datastore as XML and JSON, edits, rpc-error, raw RPC, close")
{
    CallhomeFixture f;
    startWithApi(f);
    ConnectedSshd dev(f, "edge-1");

    auto sessions = getJson(f, "/v1/sessions")["sessions"];
    REQUIRE(sessions.size() == 1);
    CHECK(sessions[0]["device"] == "edge-1");
    CHECK(sessions[0]["device_id"] == dev.id);
    CHECK(sessions[0]["transport"] == "ssh");
    CHECK(sessions[0]["address"] == "127.0.0.1");

    SECTION("get-config: XML and JSON; edit-config changes a leaf and get-config shows it")
    {
        // XML: the content of <data>, as the device sent it; the datastore holds netconfd's NACM container
        auto xml
            = call(f, "GET", deviceUrl("edge-1", "data?datastore=running"), {}, { { "Accept", "application/xml" } });
        INFO(xml.body);
        REQUIRE(xml.status == 200);
        CHECK_THAT(xml.header("content-type"), Catch::Contains("application/xml"));
        CHECK_THAT(xml.body, Catch::StartsWith("<data xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\">"));
        CHECK_THAT(xml.body, Catch::Contains("urn:ietf:params:xml:ns:yang:ietf-netconf-acm"));
        CHECK_THAT(xml.body, !Catch::Contains(kSystem));
        // JSON (the default)
        auto json0 = call(f, "GET", deviceUrl("edge-1", "data?datastore=running"));
        REQUIRE(json0.status == 200);
        CHECK_THAT(json0.header("content-type"), Catch::Contains("application/yang-data+json"));
        auto doc0 = bodyJson(json0);
        CHECK(doc0.is_object());
        CHECK_FALSE(doc0.contains("ietf-system:system")); // (the empty NACM container is not printed in JSON)

        auto r = editCandidate(f, "edge-1", systemLeaf("contact", "noc@example.net"));
        INFO(r.body);
        REQUIRE(r.status == 200);
        CHECK(bodyJson(r)["steps"] == json::array({ "edit-config", "commit" }));
        // the device addressed by its fingerprint this time
        CHECK(runningSystem(f, dev.device.hostKeyFingerprint())["contact"] == "noc@example.net");

        // JSON in (RFC 7951), and lock=true: lock, edit, commit, unlock
        r = call(f, "POST", deviceUrl("edge-1", "edit?target=candidate&commit=true&lock=true"),
            R"({"ietf-system:system": {"location": "rack 7"}})", { { "Content-Type", "application/yang-data+json" } });
        INFO(r.body);
        REQUIRE(r.status == 200);
        CHECK(bodyJson(r)["steps"] == json::array({ "lock", "edit-config", "commit", "unlock" }));
        auto after = runningSystem(f, "edge-1");
        CHECK(after["location"] == "rack 7");
        CHECK(after["contact"] == "noc@example.net");

        // the same through callhomectl: edit-config, then get-config shows it (XML and --json)
        auto file = tempFile(f, "edit.xml", systemLeaf("contact", "ops@example.net"));
        auto edit = ctl(f, { "edit-config", "edge-1", file, "--target", "candidate", "--commit", "--lock" });
        INFO(edit.err);
        CHECK(edit.status == 0);
        auto shown = ctl(f, { "get-config", "edge-1" });
        INFO(shown.err);
        CHECK(shown.status == 0);
        CHECK_THAT(shown.out, Catch::Contains("<contact>ops@example.net</contact>"));
        auto shownJson = ctl(f, { "--json", "get-config", "edge-1" });
        INFO(shownJson.err);
        REQUIRE(shownJson.status == 0);
        auto doc = json::parse(shownJson.out);
        CHECK(doc["ietf-system:system"]["contact"] == "ops@example.net");
        CHECK(doc["ietf-system:system"]["location"] == "rack 7");
        // the candidate the edits went through
        auto candidate = getJson(f, deviceUrl("edge-1", "data?datastore=candidate"));
        CHECK(candidate["ietf-system:system"]["contact"] == "ops@example.net");
    }

    SECTION("an invalid edit returns the device's <rpc-error> with its tag and path; callhomectl exits 3")
    {
        auto r = editCandidate(f, "edge-1", invalidEdit());
        INFO(r.body);
        CHECK(r.status == 400); // RFC 8040 section 7: invalid-value
        auto doc = bodyJson(r);
        CHECK(doc["error"] == "rpc-error");
        CHECK(doc["step"] == "edit-config");
        REQUIRE(!doc["rpc_errors"].empty());
        auto e = doc["rpc_errors"][0];
        CHECK(e["tag"] == "invalid-value");
        CHECK(e["type"] == "protocol"); // what netconfd says
        CHECK_THAT(e.value("path", ""), Catch::EndsWith("sys:system/sys:ntp/sys:enabled"));
        CHECK_THAT(e.value("info", ""), Catch::Contains("maybe")); // yuma's <bad-value>
        CHECK_THAT(doc["reply"].get<std::string>(), Catch::Contains("<rpc-error>"));
        CHECK_THAT(doc["message"].get<std::string>(), Catch::Contains("invalid-value"));
        // nothing was committed
        auto running = getJson(f, deviceUrl("edge-1", "data?datastore=running"));
        CHECK_FALSE(running.contains("ietf-system:system"));

        auto file = tempFile(f, "bad.xml", invalidEdit());
        auto cli = ctl(f, { "edit-config", "edge-1", file, "--target", "candidate", "--commit" });
        INFO(cli.err);
        CHECK(cli.status == 3);
        CHECK_THAT(cli.err,
            Catch::Contains("tag=invalid-value") && Catch::Contains("path=") && Catch::Contains("sys:ntp/sys:enabled"));
        auto cliJson = ctl(f, { "--json", "edit-config", "edge-1", file, "--target", "candidate", "--commit" });
        CHECK(cliJson.status == 3);
        CHECK(json::parse(cliJson.out)["rpc_errors"][0]["tag"] == "invalid-value");
        // with lock=true the lock is given back after the failure: a second locked edit gets the lock again
        auto locked = call(f, "POST", deviceUrl("edge-1", "edit?target=candidate&commit=true&lock=true"), invalidEdit(),
            { { "Content-Type", "application/xml" } });
        CHECK(locked.status == 400);
        CHECK(bodyJson(locked)["step"] == "edit-config");
        auto again = call(f, "POST", deviceUrl("edge-1", "edit?target=candidate&commit=true&lock=true"),
            systemLeaf("contact", "after-failure"), { { "Content-Type", "application/xml" } });
        INFO(again.body);
        CHECK(again.status == 200);

        // a malformed body never reaches the device
        auto bad = editCandidate(f, "edge-1", "<system xmlns=\"" + std::string(kSystem) + "\"><contact>");
        CHECK(bad.status == 400);
        // lib/api/README.md names this bad-request; callhomed says bad-xml (see the report)
        CHECK_THAT(bodyJson(bad)["error"].get<std::string>(), Catch::StartsWith("bad-"));
    }

    SECTION("a raw RPC: XML reply, JSON output; callhomectl rpc")
    {
        const std::string get = "<get><filter type=\"subtree\"><netconf-state "
                                "xmlns=\"urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring\"><sessions/>"
                                "</netconf-state></filter></get>";
        auto r = call(f, "POST", deviceUrl("edge-1", "rpc"), get, { { "Content-Type", "application/xml" } });
        INFO(r.body);
        REQUIRE(r.status == 200);
        CHECK_THAT(r.header("content-type"), Catch::Contains("application/xml"));
        CHECK_THAT(r.body, Catch::Contains("rpc-reply") && Catch::Contains("<session-id>"));
        auto j = call(f, "POST", deviceUrl("edge-1", "rpc"), get,
            { { "Content-Type", "application/xml" }, { "Accept", "application/yang-data+json" } });
        INFO(j.body);
        REQUIRE(j.status == 200);
        CHECK_THAT(j.body, Catch::Contains("ietf-netconf-monitoring:netconf-state"));

        auto file = tempFile(f, "get.xml", get);
        auto cli = ctl(f, { "rpc", "edge-1", file });
        INFO(cli.err);
        CHECK(cli.status == 0);
        CHECK_THAT(cli.out, Catch::Contains("<session-id>"));
        // an operation the device does not know: its rpc-error, exit 3
        auto unknown = tempFile(f, "unknown.xml", "<frobnicate xmlns=\"urn:example:nothing\"/>");
        auto refused = ctl(f, { "rpc", "edge-1", unknown });
        CHECK(refused.status == 3);
        CHECK_THAT(refused.err, Catch::Contains("tag="));
        CHECK(getJson(f, "/v1/sessions")["sessions"][0]["rpcs"].get<int>() >= 4);
    }

    SECTION("close ends the session: the device is then not connected (409, exit 4)")
    {
        auto cli = ctl(f, { "close", "edge-1" });
        INFO(cli.err);
        CHECK(cli.status == 0);
        f.waitForSessions(0);
        f.waitForEvent(EventKind::SessionClosed, dev.id);
        auto r = call(f, "GET", deviceUrl("edge-1", "data"));
        CHECK(r.status == 409);
        auto doc = bodyJson(r);
        CHECK(doc["error"] == "not-connected");
        CHECK(doc["device"]["name"] == "edge-1");
        CHECK(ctl(f, { "get-config", "edge-1" }).status == 4);
        auto unknown = call(f, "GET", deviceUrl("no-such-device", "data"));
        CHECK(unknown.status == 404);
        CHECK(bodyJson(unknown)["error"] == "unknown-device");
    }
}

TEST_CASE("control API, SSH + yuma123 netconfd: a notification after an edit reaches two followers")
{
    CallhomeFixture f;
    startWithApi(f);
    ConnectedSshd dev(f, "edge-2");

    // Two followers on the API; each stream's head arrives once the session is subscribed.
    HttpStream first(f.apiSocket(), HttpRequest { "GET", deviceUrl("edge-2", "notifications") });
    REQUIRE(first.status() == 200);
    CHECK_THAT(first.head().header("content-type"), Catch::Contains("application/x-ndjson"));
    HttpStream second(f.apiSocket(), HttpRequest { "GET", deviceUrl("edge-2", "notifications?format=xml") });
    REQUIRE(second.status() == 200);

    auto r = editCandidate(f, "edge-2", systemLeaf("contact", "noc@example.net"));
    INFO(r.body);
    REQUIRE(r.status == 200);

    // netconfd announces the commit (ietf-netconf-notifications); the JSON follower gets it parsed with the device's
    // schemas, the XML follower as the device sent it, on one line
    auto isChange = [](const std::string& line) { return line.find("netconf-config-change") != std::string::npos; };
    auto change = json::parse(lineMatching(first, isChange, 15s, "netconf-config-change on the JSON follower"));
    INFO(change.dump());
    CHECK(change["device"] == "edge-2");
    CHECK(change["device_id"] == dev.id);
    CHECK(change["event_time"].is_string());
    REQUIRE(change.contains("notification"));
    auto n = change["notification"]["ietf-netconf-notifications:netconf-config-change"];
    CHECK(n["changed-by"]["username"] == currentUserName());
    CHECK(n["edit"][0]["target"] == "/ietf-system:system"); // the instance-identifier in RFC 7951 form
    auto xml = lineMatching(second, isChange, 15s, "netconf-config-change on the XML follower");
    CHECK_THAT(xml, Catch::Contains("<notification") && Catch::Contains("<eventTime>"));
    CHECK(xml.find('\n') == std::string::npos);
    CHECK_THAT(xml, Catch::Contains("/sys:system"));

    // a follower that goes away does not take the others with it
    {
        HttpStream third(f.apiSocket(), HttpRequest { "GET", deviceUrl("edge-2", "notifications") });
        REQUIRE(third.status() == 200);
    }
    REQUIRE(editCandidate(f, "edge-2", systemLeaf("contact", "ops@example.net")).status == 200);
    lineMatching(first, isChange, 15s, "the second edit's notification on the JSON follower");
    lineMatching(second, isChange, 15s, "the second edit's notification on the XML follower");
}

TEST_CASE("control API: watch and events?follow=true see pending, approved, connected, disconnected")
{
    CallhomeFixture f;
    startWithApi(f);
    // A first event of no device (garbage instead of SSH): both followers start after it, so they are in place
    // before the device's first contact and can miss nothing of it.
    {
        UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in a {};
        a.sin_family = AF_INET;
        a.sin_port = htons(f.portV4());
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        std::string garbage = "GET / HTTP/1.1\r\n\r\n" + std::string(1024, 'x');
        REQUIRE(::write(fd.get(), garbage.data(), garbage.size()) > 0);
        f.waitForEvent(EventKind::HandshakeFailed);
    }
    auto start = getJson(f, "/v1/events")["events"];
    REQUIRE(start.size() == 1);
    auto after = std::to_string(start[0]["id"].get<int64_t>());
    HttpStream events(f.apiSocket(), HttpRequest { "GET", "/v1/events?follow=true&after=" + after });
    REQUIRE(events.status() == 200);
    Process watch({ { kCallhomectl, "--socket", f.apiSocket(), "--json", "watch", "--after", after },
        f.dir.file("watch.out"), f.dir.file("watch.err") });

    SshdDevice device(f.dir, KeyType::Ed25519, f.daemon->stationPublicKey());
    device.callHome("127.0.0.1", f.portV4()).waitExit(10s);
    auto id = f.waitForDevice(device.hostKeyFingerprint()).id;

    approve(f, device.hostKeyFingerprint(), "edge-3", device.user());
    device.callHome("127.0.0.1", f.portV4());
    f.waitForSessions(1);
    device.stopCallHomes();
    f.waitForSessions(0);
    f.waitForEvent(EventKind::SessionClosed, id);

    std::vector<std::string> kinds;
    lineMatching(
        events,
        [&](const std::string& line) {
            auto e = json::parse(line);
            if (e["device_id"] == id) {
                kinds.push_back(e["kind"]);
            }
            return e["kind"] == "session-closed";
        },
        15s, "session-closed on /v1/events?follow=true");
    auto in = [&](const std::vector<std::string>& seen, const std::string& kind) {
        return std::find(seen.begin(), seen.end(), kind) - seen.begin();
    };
    INFO(json(kinds).dump());
    REQUIRE(in(kinds, "pending") < static_cast<long>(kinds.size()));
    CHECK(in(kinds, "pending") < in(kinds, "approved"));
    CHECK(in(kinds, "approved") < in(kinds, "session-opened"));
    CHECK(in(kinds, "session-opened") < in(kinds, "session-closed"));
    CHECK(in(kinds, "session-closed") < static_cast<long>(kinds.size()));

    std::vector<std::string> watched;
    waitFor(
        [&] {
            REQUIRE(watch.running());
            watched.clear();
            for (const auto& e : jsonLines(readFileIfExists(f.dir.file("watch.out")))) {
                watched.push_back(e["kind"]);
            }
            return std::find(watched.begin(), watched.end(), "session-closed") != watched.end();
        },
        15s, "callhomectl watch to show session-closed");
    INFO(json(watched).dump());
    REQUIRE(in(watched, "pending") < static_cast<long>(watched.size()));
    CHECK(in(watched, "pending") < in(watched, "approved"));
    CHECK(in(watched, "approved") < in(watched, "session-opened"));
    CHECK(in(watched, "session-opened") < in(watched, "session-closed"));
    watch.stop();
}

TEST_CASE("control API, libnetconf2 server: operational data and get-config, its rpc-error, a refused subscription")
{
    CallhomeFixture f;
    startWithApi(f);
    Nc2Device device(f.dir, "127.0.0.1", f.portV4(),
        Nc2DeviceOptions { .hostKeyType = KeyType::Ecdsa,
            .user = "netconf",
            .authorizedKeyLine = f.daemon->stationPublicKey(),
            .retryMs = 200 });
    auto id = f.waitForDevice(device.hostKeyFingerprint()).id;
    approve(f, device.hostKeyFingerprint(), "nc2-1");
    f.waitForSessions(1);

    // the operational datastore (<get>): this device answers with its YANG library, in XML and in JSON
    auto xml
        = call(f, "GET", deviceUrl("nc2-1", "data?datastore=operational"), {}, { { "Accept", "application/xml" } });
    INFO(xml.body);
    REQUIRE(xml.status == 200);
    CHECK_THAT(xml.body, Catch::Contains("urn:ietf:params:xml:ns:yang:ietf-yang-library"));
    CHECK_THAT(xml.body, Catch::Contains("<name>ietf-netconf-monitoring</name>"));
    // This device lists its modules only in its YANG library (yang-library 1.1, no module capabilities), so the
    // station's context for it lacks ietf-yang-library: the JSON conversion says so instead of dropping the data.
    auto asJson = call(f, "GET", deviceUrl("nc2-1", "data?datastore=operational"));
    {
        INFO(asJson.body);
        CHECK(asJson.status == 502);
        auto doc = bodyJson(asJson);
        CHECK(doc["error"] == "unparseable-reply");
        CHECK_THAT(doc["message"].get<std::string>(), Catch::Contains("ietf-yang-library"));
        CHECK_THAT(doc["reply"].get<std::string>(), Catch::Contains("<name>ietf-netconf-monitoring</name>"));
    }
    // get-config: this device's running datastore is empty
    auto running = getJson(f, deviceUrl("nc2-1", "data?datastore=running"));
    CHECK(running == json::object());
    auto cli = ctl(f, { "get", "nc2-1" }); // XML: the device's answer as it is
    INFO(cli.err);
    CHECK(cli.status == 0);
    CHECK_THAT(cli.out, Catch::Contains("ietf-yang-library"));
    auto cliJson = ctl(f, { "--json", "get", "nc2-1" });
    CHECK(cliJson.status == 1);
    CHECK_THAT(cliJson.err, Catch::Contains("ietf-yang-library"));

    // edit-config is refused by this device (libnetconf2 checks it against ietf-netconf without :writable-running):
    // its rpc-error, exit 3
    auto r = call(f, "POST", deviceUrl("nc2-1", "edit?target=running"),
        "<netconf-state xmlns=\"urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring\"/>",
        { { "Content-Type", "application/xml" } });
    INFO(r.body);
    CHECK(r.status == 500); // RFC 8040 section 7: operation-failed
    auto doc = bodyJson(r);
    CHECK(doc["error"] == "rpc-error");
    CHECK(doc["rpc_errors"][0]["tag"] == "operation-failed");
    CHECK(doc["rpc_errors"][0]["type"] == "application");
    CHECK_THAT(doc["rpc_errors"][0]["message"].get<std::string>(), Catch::Contains("running"));
    auto file
        = tempFile(f, "nc2-edit.xml", "<netconf-state xmlns=\"urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring\"/>");
    auto edit = ctl(f, { "edit-config", "nc2-1", file });
    CHECK(edit.status == 3);
    CHECK_THAT(edit.err, Catch::Contains("tag=operation-failed"));

    // no RFC 5277 here: the subscription is refused with the device's answer, not a stream
    HttpStream follow(f.apiSocket(), HttpRequest { "GET", deviceUrl("nc2-1", "notifications") });
    CHECK(follow.status() == 409);
    auto refused = json::parse(follow.readAll(10s));
    INFO(refused.dump());
    CHECK(refused["error"] == "rpc-error");
    CHECK(!refused["rpc_errors"].empty());
    // and the session is still there
    CHECK(f.daemon->registry().size() == 1);
    CHECK(getJson(f, "/v1/sessions")["sessions"][0]["device_id"] == id);
}

TEST_CASE("control API with curl --unix-socket; a user not permitted on the socket is refused")
{
    CallhomeFixture f;
    startWithApi(f);
    ConnectedSshd dev(f, "edge-4");
    const auto sock = f.apiSocket();
    auto curl = [&](std::vector<std::string> args, bool asNobody = false) {
        std::vector<std::string> argv;
        if (asNobody) {
            argv = { "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups" };
        }
        argv.insert(argv.end(), { "curl", "--silent", "--show-error", "--max-time", "20", "--unix-socket", sock });
        argv.insert(argv.end(), args.begin(), args.end());
        return runCommand(f.dir, argv);
    };

    auto health = curl({ "--fail", "http://localhost/v1/health" });
    INFO(health.err);
    REQUIRE(health.status == 0);
    auto h = json::parse(health.out);
    CHECK(h["status"] == "ok");
    CHECK(h["sessions"] == 1);

    // the device by its fingerprint, percent-encoded ('/' as %2F, '+' as %2B)
    auto shown = curl({ "--fail", "http://localhost" + deviceUrl(dev.device.hostKeyFingerprint()) });
    INFO(shown.err);
    REQUIRE(shown.status == 0);
    CHECK(json::parse(shown.out)["name"] == "edge-4");
    CHECK(json::parse(shown.out)["connected"] == true);

    auto xml = curl({ "--fail", "-H", "Accept: application/xml",
        "http://localhost" + deviceUrl("edge-4", "data?datastore=running") });
    INFO(xml.err);
    REQUIRE(xml.status == 0);
    CHECK_THAT(xml.out, Catch::StartsWith("<data") && Catch::Contains("urn:ietf:params:xml:ns:yang:ietf-netconf-acm"));

    auto edit = curl(
        { "--fail", "-H", "Content-Type: application/xml", "--data-binary", systemLeaf("location", "curl was here"),
            "http://localhost" + deviceUrl("edge-4", "edit?target=candidate&commit=true") });
    INFO(edit.err);
    REQUIRE(edit.status == 0);
    CHECK(json::parse(edit.out)["ok"] == true);
    auto got = curl({ "--fail", "http://localhost" + deviceUrl("edge-4", "data?datastore=running") });
    REQUIRE(got.status == 0);
    CHECK(json::parse(got.out)["ietf-system:system"]["location"] == "curl was here");

    // an error status with its JSON body, as curl sees it
    auto bad = curl({ "--write-out", "\n%{http_code}", "-H", "Content-Type: application/xml", "--data-binary",
        invalidEdit(), "http://localhost" + deviceUrl("edge-4", "edit?target=candidate&commit=true") });
    REQUIRE(bad.status == 0);
    auto nl = bad.out.rfind('\n');
    CHECK(bad.out.substr(nl + 1) == "400");
    CHECK(json::parse(bad.out.substr(0, nl))["rpc_errors"][0]["tag"] == "invalid-value");

    // The socket is 0660 root:root. Let `nobody` reach it (every directory on the way traversable) so the refusal
    // is the socket's own permission check, then ask as nobody: refused; root, the owner, is served.
    struct stat st { };
    REQUIRE(::stat(sock.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0660);
    CHECK(st.st_uid == ::getuid());
    if (::getuid() != 0) {
        WARN("not root: the refusal of another user (setpriv to nobody) is not tested");
        return;
    }
    REQUIRE(::chmod(f.dir.path().c_str(), 0711) == 0);
    REQUIRE(::chmod(f.dir.file("state").c_str(), 0711) == 0);
    auto reachable
        = runCommand(f.dir, { "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "test", "-S", sock });
    REQUIRE(reachable.status == 0); // nobody sees the socket: what refuses it is the socket's mode
    auto refused = curl({ "http://localhost/v1/health" }, true);
    INFO(refused.out << refused.err);
    CHECK(refused.status == 7); // CURLE_COULDNT_CONNECT
    CHECK_THAT(refused.err, Catch::Contains("Permission denied") || Catch::Contains("Couldn't connect"));
    CHECK(refused.out.empty());
    auto fine = curl({ "--fail", "http://localhost/v1/health" });
    CHECK(fine.status == 0);
    // callhomectl as nobody is refused too, with exit 1
    auto ctlNobody = runCommand(f.dir,
        { "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", kCallhomectl, "--socket", sock,
            "sessions" });
    CHECK(ctlNobody.status == 1);
    CHECK_THAT(ctlNobody.err, Catch::Contains("ermission denied"));
}
