// Staged configuration end to end: the zero-touch flow (expect a TLS serial, stage edits, restart callhomed, then the
// stunnel + yuma123 netconfd device calls home and the edits are applied), and an edit the device rejects, which
// holds the queue until it is retried or unstaged; through callhomectl (on the inventory) and the control API.
#include "callhome_api_common.h"
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

/** callhomectl on the fixture's inventory (the inventory commands) and its control socket. */
CommandResult ctlDb(CallhomeFixture& f, std::vector<std::string> args)
{
    args.insert(args.begin(), { "--db", f.config.inventoryPath });
    return ctl(f, std::move(args));
}

inventory::StagedEdit item(CallhomeFixture& f, int64_t id)
{
    return f.inventory().stagedEdit(id);
}

void waitForState(CallhomeFixture& f, int64_t id, inventory::StagedState state, int64_t attempts = 1)
{
    waitFor(
        [&] {
            auto e = item(f, id);
            return e.state == state && e.attempts >= attempts;
        },
        30s, "staged edit #" + std::to_string(id) + " " + inventory::toString(state));
}
} // namespace

TEST_CASE("zero-touch: expect + stage, restart, then the TLS device calls home and the edits are applied")
{
    CallhomeFixture f(true);
    startWithApi(f);
    auto expected = ctlDb(f, { "expect", "--serial", "SN0001", "--manufacturer", "example", "--name", "edge-1" });
    INFO(expected.err);
    REQUIRE(expected.status == 0);

    // an XML edit of the candidate with commit, and RFC 7951 JSON (converted when the device's schemas are known)
    auto xmlFile = tempFile(f, "contact.xml", "<?xml version=\"1.0\"?>\n" + systemLeaf("contact", "zt@example.net"));
    auto first = ctlDb(f, { "--json", "stage", "edge-1", xmlFile, "--target", "candidate", "--commit" });
    INFO(first.err);
    REQUIRE(first.status == 0);
    auto firstId = json::parse(first.out)["id"].get<int64_t>();
    auto jsonFile = tempFile(f, "location.json", R"({"ietf-system:system": {"location": "rack 7"}})");
    auto second = call(f, "POST", deviceUrl("edge-1", "staged?target=candidate&commit=true"),
        "{\"ietf-system:system\": {\"location\": \"rack 7\"}}", { { "Content-Type", "application/yang-data+json" } });
    INFO(second.body);
    REQUIRE(second.status == 201);
    auto secondId = bodyJson(second)["id"].get<int64_t>();
    CHECK(bodyJson(second)["format"] == "json");
    CHECK(bodyJson(second)["state"] == "queued");
    (void)jsonFile;

    // bad input: refused with one clear line, nothing stored
    auto broken = tempFile(f, "broken.xml", "<system xmlns=\"urn:x\"><contact>");
    auto refused = ctlDb(f, { "stage", "edge-1", broken });
    CHECK(refused.status == 1);
    CHECK_THAT(refused.err, Catch::Contains("not well-formed XML"));
    CHECK(ctlDb(f, { "stage", "edge-1", xmlFile, "--commit" }).status == 2); // commit needs candidate
    auto badApi
        = call(f, "POST", deviceUrl("edge-1", "staged"), "{\"a\": ", { { "Content-Type", "application/json" } });
    CHECK(badApi.status == 400);
    CHECK(call(f, "POST", deviceUrl("no-such-device", "staged"), systemLeaf("contact", "x")).status == 404);

    // callhomed restarts between stage and the device's call: the queue stays
    f.stop();
    f.start();
    f.startApi();
    auto listed = ctlDb(f, { "--json", "staged", "edge-1" });
    INFO(listed.err);
    REQUIRE(listed.status == 0);
    auto items = json::parse(listed.out)["staged"];
    REQUIRE(items.size() == 2);
    CHECK(items[0]["state"] == "queued");
    CHECK(items[1]["state"] == "queued");
    CHECK(items[0]["created_by"].get<std::string>().rfind("uid ", 0) == 0);

    auto cred = f.pki->device("sn-0001");
    StunnelDevice device(f.dir, cred, StunnelDeviceOptions { .trustedCaPath = f.pki->stationCa() });
    device.callHome("127.0.0.1", f.portV4());
    f.waitForSessions(1);
    waitForState(f, firstId, inventory::StagedState::Applied);
    waitForState(f, secondId, inventory::StagedState::Applied);
    CHECK(item(f, firstId).detail.find("committed") != std::string::npos);
    CHECK_FALSE(item(f, secondId).messageId.empty());

    auto config = ctl(f, { "--json", "get-config", "edge-1" });
    INFO(config.err);
    REQUIRE(config.status == 0);
    auto doc = json::parse(config.out);
    CHECK(doc["ietf-system:system"]["contact"] == "zt@example.net");
    CHECK(doc["ietf-system:system"]["location"] == "rack 7");

    auto deviceId = f.inventory().resolve("edge-1").id;
    f.waitForEvent(inventory::EventKind::StagedApplied, deviceId, 2);
    // traced like the API's operations: source staged, who staged it; edit-config and commit for each item
    waitFor(
        [&] {
            auto trace = getJson(f, "/v1/trace?device=edge-1")["trace"];
            return std::count_if(trace.begin(), trace.end(), [](const json& r) {
                return r["source"] == "staged" && r["outcome"] == "ok";
            }) >= 4;
        },
        15s, "four staged operations traced");
    auto trace = getJson(f, "/v1/trace?device=edge-1")["trace"];
    bool sawCommit = false;
    for (const auto& r : trace) {
        if (r["source"] == "staged") {
            CHECK(r["client"].get<std::string>().find("uid ") != std::string::npos);
            sawCommit = sawCommit || r["operation"] == "commit";
        }
    }
    CHECK(sawCommit);
    auto table = ctlDb(f, { "staged" });
    CHECK(table.status == 0);
    CHECK_THAT(table.out, Catch::Contains("applied") && Catch::Contains("edge-1"));
}

TEST_CASE("a staged edit the device rejects is recorded failed and holds the queue until retried or unstaged")
{
    CallhomeFixture f(true);
    startWithApi(f);
    f.inventory().expect({ { "SN0001", "example", "edge-2" } });
    auto cred = f.pki->device("sn-0001");
    StunnelDevice device(f.dir, cred, StunnelDeviceOptions { .trustedCaPath = f.pki->stationCa() });
    device.callHome("127.0.0.1", f.portV4());
    f.waitForSessions(1);

    // staged while connected (through the API): applied at once, in order
    const auto invalid = "<system xmlns=\"" + std::string(kSystem) + "\"><ntp><enabled>maybe</enabled></ntp></system>";
    auto bad = call(f, "POST", deviceUrl("edge-2", "staged?target=candidate&commit=true"), invalid,
        { { "Content-Type", "application/xml" } });
    INFO(bad.body);
    REQUIRE(bad.status == 201);
    auto badId = bodyJson(bad)["id"].get<int64_t>();
    auto goodFile = tempFile(f, "good.xml", systemLeaf("contact", "after-the-failure@example.net"));
    auto good = ctlDb(f, { "--json", "stage", "edge-2", goodFile, "--target", "candidate", "--commit" });
    INFO(good.err);
    REQUIRE(good.status == 0);
    auto goodId = json::parse(good.out)["id"].get<int64_t>();

    waitForState(f, badId, inventory::StagedState::Failed);
    auto failed = item(f, badId);
    CHECK(failed.errorTag == "invalid-value");
    CHECK_THAT(failed.detail, Catch::Contains("rpc-error") && Catch::Contains("enabled"));
    auto deviceId = f.inventory().resolve("edge-2").id;
    f.waitForEvent(inventory::EventKind::StagedFailed, deviceId);
    CHECK(item(f, goodId).state == inventory::StagedState::Queued); // held behind the failed one
    auto shown = getJson(f, "/v1/staged/" + std::to_string(badId));
    CHECK(shown["state"] == "failed");
    CHECK(shown["error_tag"] == "invalid-value");

    // retried (API): sent again, fails again; the good edit still waits
    auto retried = call(f, "POST", "/v1/staged/" + std::to_string(badId) + "/retry");
    INFO(retried.body);
    REQUIRE(retried.status == 200);
    waitForState(f, badId, inventory::StagedState::Failed, 2);
    CHECK(item(f, goodId).state == inventory::StagedState::Queued);
    CHECK(call(f, "POST", "/v1/staged/" + std::to_string(goodId) + "/retry").status == 409); // not failed

    // unstaged (callhomectl, on the inventory): the running callhomed moves on to the next edit
    auto dropped = ctlDb(f, { "unstage", std::to_string(badId) });
    INFO(dropped.err);
    REQUIRE(dropped.status == 0);
    waitForState(f, goodId, inventory::StagedState::Applied);
    auto running = getJson(f, deviceUrl("edge-2", "data?datastore=running"));
    CHECK(running["ietf-system:system"]["contact"] == "after-the-failure@example.net");
    CHECK(item(f, badId).state == inventory::StagedState::Dropped);
    CHECK(getJson(f, deviceUrl("edge-2", "staged"))["staged"].size() == 1); // dropped ones are not listed
    CHECK(call(f, "DELETE", "/v1/staged/" + std::to_string(goodId)).status == 409); // applied: cannot be unstaged
    CHECK(ctlDb(f, { "retry", std::to_string(goodId) }).status == 1);
    CHECK(call(f, "DELETE", "/v1/staged/999999").status == 404);
}

TEST_CASE("staged for a pending device: applied after approval and its next session; a retried edit then applies")
{
    CallhomeFixture f(true);
    startWithApi(f);
    auto cred = f.pki->device("sn-0001");
    StunnelDevice device(f.dir, cred, StunnelDeviceOptions { .trustedCaPath = f.pki->stationCa() });
    device.callHome("127.0.0.1", f.portV4()).waitExit(10s);
    waitFor([&] { return !f.inventory().devices().empty(); }, 10s, "the TLS device recorded pending");
    REQUIRE(f.inventory().resolve("SN0001").state == inventory::DeviceState::Pending);

    // deleting a leaf the device does not have yet fails (data-missing); the location waits behind it
    const std::string del = "<system xmlns=\"" + std::string(kSystem)
        + "\"><contact xmlns:nc=\"urn:ietf:params:xml:ns:netconf:base:1.0\" nc:operation=\"delete\"/></system>";
    auto first = ctlDb(
        f, { "--json", "stage", "SN0001", tempFile(f, "delete.xml", del), "--target", "candidate", "--commit" });
    INFO(first.err);
    REQUIRE(first.status == 0);
    auto deleteId = json::parse(first.out)["id"].get<int64_t>();
    auto second = ctlDb(f,
        { "--json", "stage", "SN0001", tempFile(f, "location.xml", systemLeaf("location", "rack 9")), "--target",
            "candidate", "--commit" });
    REQUIRE(second.status == 0);
    auto locationId = json::parse(second.out)["id"].get<int64_t>();
    auto all = getJson(f, "/v1/staged")["staged"];
    REQUIRE(all.size() == 2);
    CHECK(all[0]["id"] == deleteId);

    approve(f, "SN0001", "edge-3");
    device.callHome("127.0.0.1", f.portV4());
    f.waitForSessions(1);
    waitForState(f, deleteId, inventory::StagedState::Failed);
    CHECK(item(f, deleteId).errorTag == "data-missing");
    CHECK(item(f, locationId).state == inventory::StagedState::Queued);

    // the operator fixes the device, then retries: the failed edit and the one behind it are applied in order
    auto fixed = call(f, "POST", deviceUrl("edge-3", "edit?target=candidate&commit=true"),
        systemLeaf("contact", "to-be-deleted@example.net"), { { "Content-Type", "application/xml" } });
    INFO(fixed.body);
    REQUIRE(fixed.status == 200);
    auto retried = ctlDb(f, { "retry", std::to_string(deleteId) });
    INFO(retried.err);
    REQUIRE(retried.status == 0);
    waitForState(f, deleteId, inventory::StagedState::Applied, 2);
    waitForState(f, locationId, inventory::StagedState::Applied);
    auto running = getJson(f, deviceUrl("edge-3", "data?datastore=running"));
    CHECK(running["ietf-system:system"]["location"] == "rack 9");
    CHECK_FALSE(running["ietf-system:system"].contains("contact"));
}
