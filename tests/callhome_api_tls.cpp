// The control API against real devices over TLS: stunnel in front of yuma123 netconfd (identities from
// scripts/dev-pki), and libnetconf2's call-home server over TLS.
#include "callhome_api_common.h"
#include "harness/Nc2Device.h"
#include "harness/StunnelDevice.h"
#include "server/SessionRegistry.h"

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

HttpResponse editCandidate(CallhomeFixture& f, const std::string& device, const std::string& body)
{
    return call(f, "POST", deviceUrl(device, "edit?target=candidate&commit=true"), body,
        { { "Content-Type", "application/xml" } });
}

bool isChange(const std::string& line)
{
    return line.find("netconf-config-change") != std::string::npos;
}
} // namespace

TEST_CASE("control API, TLS + yuma123 netconfd: datastore, edit, rpc-error, notifications to two followers")
{
    CallhomeFixture f(true);
    startWithApi(f);
    auto cred = f.pki->device("sn-0001");
    StunnelDevice device(f.dir, cred, StunnelDeviceOptions { .trustedCaPath = f.pki->stationCa() });
    device.callHome("127.0.0.1", f.portV4()).waitExit(10s);
    waitFor([&] { return !f.inventory().devices().empty(); }, 10s, "the TLS device recorded pending");
    // approved by MANUFACTURER/SERIAL: the '/' goes percent-encoded in the path
    auto approved = call(f, "POST", deviceUrl("example/SN0001", "approve"), R"({"name": "router-1"})",
        { { "Content-Type", "application/json" } });
    INFO(approved.body);
    REQUIRE(approved.status == 200);
    CHECK(bodyJson(approved)["serial"] == "SN0001");
    device.callHome("127.0.0.1", f.portV4());
    f.waitForSessions(1);
    auto sessions = getJson(f, "/v1/sessions")["sessions"];
    REQUIRE(sessions.size() == 1);
    CHECK(sessions[0]["transport"] == "tls");
    CHECK(sessions[0]["device"] == "router-1");

    // get-config, XML and JSON
    auto xml = call(f, "GET", deviceUrl("router-1", "data"), {}, { { "Accept", "application/xml" } });
    INFO(xml.body);
    REQUIRE(xml.status == 200);
    CHECK_THAT(xml.body, Catch::Contains("urn:ietf:params:xml:ns:yang:ietf-netconf-acm"));
    auto before = getJson(f, deviceUrl("router-1", "data?datastore=running"));
    CHECK_FALSE(before.contains("ietf-system:system"));

    // two followers before the edit
    HttpStream first(f.apiSocket(), HttpRequest { "GET", deviceUrl("router-1", "notifications") });
    REQUIRE(first.status() == 200);
    HttpStream second(f.apiSocket(), HttpRequest { "GET", deviceUrl("SN0001", "notifications?format=xml") });
    REQUIRE(second.status() == 200);

    // edit-config, then get-config shows it (API and callhomectl)
    auto r = editCandidate(f, "router-1", systemLeaf("contact", "tls-noc@example.net"));
    INFO(r.body);
    REQUIRE(r.status == 200);
    auto after = getJson(f, deviceUrl("router-1", "data?datastore=running"));
    CHECK(after["ietf-system:system"]["contact"] == "tls-noc@example.net");
    auto cli = ctl(f, { "--json", "get-config", "router-1" });
    INFO(cli.err);
    REQUIRE(cli.status == 0);
    CHECK(json::parse(cli.out)["ietf-system:system"]["contact"] == "tls-noc@example.net");

    // the commit's notification reaches both followers
    auto change = json::parse(lineMatching(first, isChange, 15s, "netconf-config-change on the JSON follower"));
    INFO(change.dump());
    CHECK(change["device"] == "router-1");
    CHECK(change["notification"]["ietf-netconf-notifications:netconf-config-change"]["edit"][0]["target"]
        == "/ietf-system:system");
    CHECK_THAT(lineMatching(second, isChange, 15s, "netconf-config-change on the XML follower"),
        Catch::Contains("<eventTime>"));

    // an invalid edit: the device's rpc-error with its tag and path; callhomectl exits 3
    const std::string invalid
        = "<system xmlns=\"" + std::string(kSystem) + "\"><ntp><enabled>maybe</enabled></ntp></system>";
    auto bad = editCandidate(f, "router-1", invalid);
    INFO(bad.body);
    CHECK(bad.status == 400);
    auto doc = bodyJson(bad);
    CHECK(doc["error"] == "rpc-error");
    CHECK(doc["rpc_errors"][0]["tag"] == "invalid-value");
    CHECK_THAT(doc["rpc_errors"][0].value("path", ""), Catch::EndsWith("sys:ntp/sys:enabled"));
    auto file = tempFile(f, "bad.xml", invalid);
    auto refused = ctl(f, { "edit-config", "router-1", file, "--target", "candidate", "--commit" });
    CHECK(refused.status == 3);
    CHECK_THAT(refused.err, Catch::Contains("tag=invalid-value") && Catch::Contains("path="));
    CHECK(getJson(f, deviceUrl("router-1", "data"))["ietf-system:system"]["contact"] == "tls-noc@example.net");
}

TEST_CASE("control API, TLS + libnetconf2 server: operational data through callhomectl and the API")
{
    CallhomeFixture f(true);
    f.config.manufacturers = { { "example", "hardware-module-name", false } }; // where this IDevID has its serial
    startWithApi(f);
    f.inventory().expect({ { "SN0002", "example", "nc2-tls" } });
    auto cred = f.pki->device("hwmn-0002");
    Nc2Device device(f.dir, "127.0.0.1", f.portV4(),
        Nc2DeviceOptions { .user = "netconf",
            .tls = true,
            .certPath = cred.cert,
            .keyPath = cred.key,
            .chainPath = cred.chain,
            .trustedCaPath = f.pki->stationCa() });
    f.waitForSessions(1);
    auto xml
        = call(f, "GET", deviceUrl("nc2-tls", "data?datastore=operational"), {}, { { "Accept", "application/xml" } });
    INFO(xml.body);
    REQUIRE(xml.status == 200);
    CHECK_THAT(xml.body, Catch::Contains("<name>ietf-netconf-monitoring</name>"));
    auto cli = ctl(f, { "get", "nc2-tls" });
    INFO(cli.err);
    CHECK(cli.status == 0);
    CHECK_THAT(cli.out, Catch::Contains("ietf-yang-library"));
    auto running = call(f, "GET", deviceUrl("nc2-tls", "data?datastore=running"));
    CHECK(running.status == 200);
    CHECK(bodyJson(running) == json::object());
    CHECK(getJson(f, "/v1/sessions")["sessions"][0]["transport"] == "tls");
}
