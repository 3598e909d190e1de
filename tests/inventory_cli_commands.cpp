#include "CliRun.h"
#include "ScratchDir.h"
#include "cli/Cli.h"
#include "common/Time.h"
#include "inventory/Inventory.h"
#include "transport/StationKey.h"
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <pwd.h>
#include <sstream>
#include <thread>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace callhome;
using inventory::DeviceState;
using inventory::Transport;
using nlohmann::json;

using callhome::test::ScratchDir;

using callhome::test::CliResult;
using callhome::test::ctl;
using callhome::test::lines;
using callhome::test::requireOneLineError;

namespace {
/** " (NAME)" of the user running the tests, as callhomectl's decided_by writes it; empty when the uid has none. */
std::string userSuffix()
{
    passwd pw {};
    passwd* found = nullptr;
    char buf[1024];
    return ::getpwuid_r(::getuid(), &pw, buf, sizeof buf, &found) == 0 && found
        ? std::string(" (") + found->pw_name + ")"
        : std::string();
}

const std::string FpEdge = "SHA256:edgeKey1aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z";
const std::string FpNew = "SHA256:newKey2aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA";
const std::string FpAmb1 = "SHA256:AAAAx3aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zB";
const std::string FpAmb2 = "SHA256:AAAAy4aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zC";

struct Fixture : callhome::test::CliInventory {

    /** edge-7 approved at 192.0.2.7, then a new key from the same address (pending, flagged). */
    std::pair<int64_t, int64_t> edgeAndReplacement()
    {
        auto edge = inv->recordContact(Transport::Ssh, FpEdge, "ssh-ed25519", "192.0.2.7", now()).device;
        inv->approve(edge.id, std::string("edge-7"), std::nullopt);
        auto fresh = inv->recordContact(Transport::Ssh, FpNew, "ecdsa-sha2-nistp256", "192.0.2.7", now()).device;
        return { edge.id, fresh.id };
    }
};
} // namespace

TEST_CASE_METHOD(Fixture, "devices: table and JSON")
{
    SECTION("empty inventory prints the header only")
    {
        auto r = run({ "devices" });
        REQUIRE(r.code == 0);
        REQUIRE(r.err.empty());
        REQUIRE(lines(r.out).size() == 1);
        REQUIRE(r.out.rfind("ID  NAME", 0) == 0);
        auto j = json::parse(run({ "devices", "--json" }).out);
        REQUIRE(j == json { { "devices", json::array() } });
    }

    SECTION("rows with full fingerprints and the same-address flag")
    {
        auto [edgeId, newId] = edgeAndReplacement();
        auto r = run({ "devices" });
        REQUIRE(r.code == 0);
        auto l = lines(r.out);
        REQUIRE(l.size() == 3);
        for (auto col : { "ID", "NAME", "STATE", "CONN", "FINGERPRINT", "KEY-TYPE", "ADDRESS", "FIRST-SEEN",
                 "LAST-SEEN", "ATTEMPTS", "FLAGS" }) {
            REQUIRE_THAT(l[0], Catch::Contains(col));
        }
        REQUIRE_THAT(l[1],
            Catch::Contains("edge-7") && Catch::Contains("approved") && Catch::Contains(FpEdge)
                && Catch::Contains("192.0.2.7") && Catch::Contains("ssh-ed25519"));
        REQUIRE_THAT(
            l[2], Catch::Contains("pending") && Catch::Contains(FpNew) && Catch::EndsWith("same-address-as:edge-7"));
        // columns are aligned: the fingerprint starts at the same offset in every row
        REQUIRE(l[1].find(FpEdge) == l[0].find("FINGERPRINT"));
        REQUIRE(l[2].find(FpNew) == l[0].find("FINGERPRINT"));

        auto pendingOnly = run({ "devices", "--state", "pending" });
        REQUIRE(lines(pendingOnly.out).size() == 2);
        REQUIRE_THAT(pendingOnly.out, !Catch::Contains("edge-7 "));
        REQUIRE(lines(run({ "devices", "--transport", "tls" }).out).size() == 1);
        REQUIRE(lines(run({ "devices", "--transport", "ssh" }).out).size() == 3);

        // global options after the subcommand (CLI11 fallthrough)
        auto js = ctl({ "devices", "--json", "--state-dir", state, "--db", db });
        REQUIRE(js.code == 0);
        auto j = json::parse(js.out);
        REQUIRE(j["devices"].size() == 2);
        auto& e = j["devices"][0];
        REQUIRE(e["id"] == edgeId);
        REQUIRE(e["name"] == "edge-7");
        REQUIRE(e["state"] == "approved");
        REQUIRE(e["transport"] == "ssh");
        REQUIRE(e["fingerprint"] == FpEdge);
        REQUIRE(e["key_type"] == "ssh-ed25519");
        REQUIRE(e["ssh_user"].is_null());
        REQUIRE(e["last_address"] == "192.0.2.7");
        REQUIRE(e["attempts"] == 1);
        REQUIRE(e["same_address_as"].is_null());
        REQUIRE(e["decided_at"].is_string());
        REQUIRE(e["decided_by"] == "operator"); // approved through the Inventory itself, which names no one
        REQUIRE(e["connected"] == false);
        REQUIRE(e["session_start"].is_null());
        REQUIRE(e["capabilities"] == json::array());
        REQUIRE(e["first_seen"].get<std::string>().back() == 'Z');
        // TLS fields are empty strings for SSH devices
        for (auto field : { "manufacturer", "serial", "cert_subject", "cert_issuer" }) {
            REQUIRE(e[field] == "");
        }
        auto& p = j["devices"][1];
        REQUIRE(p["id"] == newId);
        REQUIRE(p["name"].is_null());
        REQUIRE(p["same_address_as"] == edgeId);
        REQUIRE(p["decided_at"].is_null());

        auto filtered = json::parse(run({ "--json", "devices", "--state", "approved" }).out);
        REQUIRE(filtered["devices"].size() == 1);
    }

    SECTION("a bad --state value is a command-line error")
    {
        auto r = run({ "devices", "--state", "bogus" });
        requireOneLineError(r, "--state");
        REQUIRE(r.code == 2);
    }
}

TEST_CASE_METHOD(Fixture, "show: every field, live session and capabilities")
{
    auto [edgeId, newId] = edgeAndReplacement();
    SECTION("disconnected, default user")
    {
        auto r = run({ "show", "edge-7" });
        REQUIRE(r.code == 0);
        REQUIRE_THAT(r.out,
            Catch::Contains("SSH user:        (default)") && Catch::Contains("disconnected") && Catch::Contains(FpEdge)
                && Catch::Contains("Decided by:      operator") && Catch::Contains("Capabilities:    (none)"));
        auto pending = run({ "show", FpNew });
        REQUIRE_THAT(pending.out, Catch::Contains("Same address as: #" + std::to_string(edgeId) + " edge-7"));
    }
    SECTION("connected with capabilities")
    {
        inv->listenerStarted("L1", now());
        inv->heartbeat("L1", now());
        std::vector<std::string> caps { "urn:ietf:params:netconf:base:1.1",
            "urn:ietf:params:netconf:capability:candidate:1.0" };
        inv->sessionOpened(edgeId, "L1", now(), caps);
        auto r = run({ "show", std::to_string(edgeId) });
        REQUIRE(r.code == 0);
        REQUIRE_THAT(r.out, Catch::Contains("Connection:      connected"));
        REQUIRE_THAT(r.out, Catch::Contains("\n  urn:ietf:params:netconf:base:1.1\n"));
        REQUIRE_THAT(r.out, Catch::Contains("\n  urn:ietf:params:netconf:capability:candidate:1.0\n"));
        auto j = json::parse(run({ "show", "edge-7", "--json" }).out);
        REQUIRE(j["connected"] == true);
        REQUIRE(j["session_start"].is_string());
        REQUIRE(j["capabilities"] == json(caps));
        REQUIRE(j["id"] == edgeId);
    }
}

TEST_CASE_METHOD(Fixture, "operator actions")
{
    auto pending = inv->recordContact(Transport::Ssh, FpAmb1, "ssh-ed25519", "198.51.100.1", now()).device;

    SECTION("approve by fingerprint prefix with name and user")
    {
        auto r = run({ "approve", FpAmb1.substr(7, 16), "--name", "core-1", "--user", "netconf" });
        REQUIRE(r.code == 0);
        REQUIRE(lines(r.out).size() == 1);
        REQUIRE_THAT(
            r.out, Catch::StartsWith("approved #") && Catch::Contains("core-1") && Catch::Contains("next call home"));
        auto d = inv->findById(pending.id);
        REQUIRE(d->state == DeviceState::Approved);
        REQUIRE(d->name == "core-1");
        REQUIRE(d->sshUser == "netconf");
        REQUIRE_THAT(run({ "show", "core-1" }).out, Catch::Contains("SSH user:        netconf"));

        auto rej = json::parse(run({ "reject", "core-1", "--json" }).out);
        REQUIRE(rej["state"] == "rejected");
        REQUIRE(inv->findById(pending.id)->state == DeviceState::Rejected);

        REQUIRE(run({ "approve", "core-1" }).code == 0);
        auto rev = run({ "revoke", "core-1" });
        REQUIRE(rev.code == 0);
        REQUIRE_THAT(rev.out, Catch::StartsWith("revoked #"));
        REQUIRE(inv->findById(pending.id)->state == DeviceState::Revoked);
    }

    SECTION("approve --json returns the device")
    {
        auto r = run({ "--json", "approve", std::to_string(pending.id), "--name", "core-2" });
        REQUIRE(r.code == 0);
        auto j = json::parse(r.out);
        REQUIRE(j["state"] == "approved");
        REQUIRE(j["name"] == "core-2");
        REQUIRE(j["fingerprint"] == FpAmb1);
    }

    SECTION("reject a pending device")
    {
        auto r = run({ "reject", FpAmb1 });
        REQUIRE(r.code == 0);
        REQUIRE_THAT(r.out, Catch::StartsWith("rejected #"));
        REQUIRE(inv->findById(pending.id)->state == DeviceState::Rejected);
    }

    SECTION("revoking a pending device is an invalid transition")
    {
        requireOneLineError(run({ "revoke", FpAmb1 }), "pending");
        REQUIRE(inv->findById(pending.id)->state == DeviceState::Pending);
    }

    SECTION("forget prints what was forgotten, with or without --yes")
    {
        auto r = run({ "forget", FpAmb1 });
        REQUIRE(r.code == 0);
        REQUIRE_THAT(r.out, Catch::StartsWith("forgot #" + std::to_string(pending.id)) && Catch::Contains(FpAmb1));
        REQUIRE(!inv->findById(pending.id));
        auto other = inv->recordContact(Transport::Ssh, FpAmb2, "ssh-ed25519", "198.51.100.2", now()).device;
        auto j = json::parse(run({ "forget", FpAmb2, "--yes", "--json" }).out);
        REQUIRE(j["id"] == other.id);
        REQUIRE(!inv->findById(other.id));
    }

    SECTION("rename")
    {
        inv->approve(pending.id, std::string("old-name"), std::nullopt);
        auto r = run({ "rename", "old-name", "new-name" });
        REQUIRE(r.code == 0);
        REQUIRE(r.out == "renamed #" + std::to_string(pending.id) + " from old-name to new-name\n");
        REQUIRE(inv->findById(pending.id)->name == "new-name");
    }
}

TEST_CASE_METHOD(Fixture, "rekey moves a known device to the new pending key")
{
    auto [edgeId, newId] = edgeAndReplacement();
    auto r = run({ "rekey", "edge-7", FpNew.substr(7, 16) });
    INFO(r.err);
    REQUIRE(r.code == 0);
    REQUIRE_THAT(
        r.out, Catch::StartsWith("rekeyed #" + std::to_string(edgeId) + " edge-7 from " + FpEdge + " to " + FpNew));
    auto d = inv->findById(edgeId);
    REQUIRE(d->fingerprint == FpNew);
    REQUIRE(d->state == DeviceState::Approved);
    REQUIRE(!inv->findById(newId));
}

TEST_CASE_METHOD(Fixture, "events: table, JSON and filters")
{
    auto [edgeId, newId] = edgeAndReplacement();
    inventory::Event e;
    e.at = now();
    e.kind = inventory::EventKind::Pending;
    e.deviceId = newId;
    e.connectionId = "C42";
    e.address = "192.0.2.7";
    e.fingerprint = FpNew;
    e.detail = "first contact";
    inv->addEvent(e);

    auto all = json::parse(run({ "events", "--json" }).out)["events"];
    REQUIRE(all.size() >= 2); // the approval and our pending event
    auto mine = std::find_if(all.begin(), all.end(), [](const json& x) { return x["connection_id"] == "C42"; });
    REQUIRE(mine != all.end());
    REQUIRE((*mine)["kind"] == "pending");
    REQUIRE((*mine)["device_id"] == newId);
    REQUIRE((*mine)["address"] == "192.0.2.7");
    REQUIRE((*mine)["fingerprint"] == FpNew);
    REQUIRE((*mine)["detail"] == "first contact");
    REQUIRE((*mine)["at"].is_string());
    REQUIRE((*mine)["id"].is_number_integer());
    REQUIRE(mine->contains("device_name"));

    auto table = run({ "events" });
    REQUIRE(table.code == 0);
    auto l = lines(table.out);
    REQUIRE(l.size() == all.size() + 1);
    REQUIRE_THAT(l[0],
        Catch::StartsWith("TIME") && Catch::Contains("KIND") && Catch::Contains("DEVICE") && Catch::Contains("CONN")
            && Catch::Contains("ADDRESS") && Catch::Contains("FINGERPRINT") && Catch::EndsWith("DETAIL"));
    REQUIRE_THAT(table.out, Catch::Contains("C42") && Catch::Contains("first contact"));

    auto forNew = json::parse(run({ "events", "--json", "--device", FpNew }).out)["events"];
    REQUIRE(forNew.size() >= 1);
    for (const auto& x : forNew) {
        REQUIRE(x["device_id"] == newId);
    }
    auto forEdge = json::parse(run({ "events", "--json", "--device", "edge-7" }).out)["events"];
    REQUIRE(!forEdge.empty());
    for (const auto& x : forEdge) {
        REQUIRE(x["device_id"] == edgeId);
    }

    REQUIRE(json::parse(run({ "events", "--json", "--limit", "1" }).out)["events"].size() == 1);
    auto future = run({ "events", "--since", "2999-01-01" });
    REQUIRE(future.code == 0);
    REQUIRE(lines(future.out).size() == 1);
    REQUIRE(json::parse(run({ "events", "--json", "--since", "1h" }).out)["events"].size() == all.size());

    auto bad = run({ "events", "--since", "yesterday" });
    requireOneLineError(bad, "yesterday");
    REQUIRE(bad.code == 2);
    requireOneLineError(run({ "events", "--limit", "0" }), "--limit");
}

TEST_CASE_METHOD(Fixture, "errors are one line on stderr and nothing on stdout")
{
    inv->recordContact(Transport::Ssh, FpAmb1, "ssh-ed25519", "198.51.100.1", now());
    inv->recordContact(Transport::Ssh, FpAmb2, "ssh-ed25519", "198.51.100.2", now());

    SECTION("unknown device")
    {
        auto r = run({ "show", "no-such-device" });
        requireOneLineError(r, "no-such-device");
        REQUIRE(r.code == 1);
        requireOneLineError(run({ "approve", "no-such-device", "--name", "x" }), "no-such-device");
        requireOneLineError(run({ "events", "--device", "no-such-device" }), "no-such-device");
    }
    SECTION("a 4-character prefix is refused, even where it would be unique")
    {
        for (auto prefix : { "AAAA", "AAAAx", "SHA256:AAAAx3aB3dE5fG7" }) {
            INFO(prefix);
            auto r = run({ "approve", prefix, "--name", "x" });
            requireOneLineError(r, "at least 16 base64 characters");
            REQUIRE(r.code == 1);
            requireOneLineError(run({ "rekey", prefix, FpAmb2 }), "at least 16 base64 characters");
        }
        REQUIRE(inv->findByFingerprint(FpAmb1)->state == DeviceState::Pending);
        REQUIRE(run({ "approve", "SHA256:AAAAx3aB3dE5fG7h", "--name", "x" }).code == 0);
    }
    SECTION("missing inventory is reported and not created")
    {
        auto elsewhere = (dir.path / "typo").string();
        for (auto args : std::vector<std::vector<std::string>> {
                 { "devices" }, { "approve", "AAAAx", "--name", "x" }, { "forget", "AAAAx" }, { "events" } }) {
            args.insert(args.begin(), { "--state-dir", elsewhere });
            requireOneLineError(ctl(args), "no inventory");
        }
        REQUIRE(!fs::exists(elsewhere));
        auto missingDb = (dir.path / "nope.db").string();
        requireOneLineError(ctl({ "devices", "--db", missingDb }), missingDb);
        REQUIRE(!fs::exists(missingDb));
    }
    SECTION("a file that is not an inventory is refused")
    {
        auto garbage = (dir.path / "garbage.db").string();
        std::ofstream(garbage) << "this is not a database, just some text that is long enough to look like one\n";
        requireOneLineError(ctl({ "devices", "--db", garbage }), "not a callhome inventory");
    }
    SECTION("command-line errors")
    {
        requireOneLineError(run({}), "subcommand");
        requireOneLineError(run({ "frobnicate" }), "frobnicate");
        requireOneLineError(run({ "show" }), "DEVICE");
        requireOneLineError(run({ "devices", "--bogus" }), "--bogus");
    }
}

TEST_CASE("--help describes the program and every subcommand")
{
    auto r = ctl({ "--help" });
    REQUIRE(r.code == 0);
    REQUIRE(r.err.empty());
    for (auto sub : { "devices", "show", "approve", "reject", "revoke", "forget", "rename", "rekey", "expect", "events",
             "station-key", "blocked", "unblock", "--state-dir", "--db", "--json" }) {
        REQUIRE_THAT(r.out, Catch::Contains(sub));
    }
    for (auto sub : { "devices", "show", "approve", "reject", "revoke", "forget", "rename", "rekey", "expect", "events",
             "station-key", "blocked", "unblock" }) {
        auto h = ctl({ sub, "--help" });
        INFO(sub);
        REQUIRE(h.code == 0);
        REQUIRE_THAT(h.out, Catch::Contains(sub));
    }
    REQUIRE_THAT(ctl({ "approve", "--help" }).out, Catch::Contains("next call home") && Catch::Contains("--name"));
    REQUIRE_THAT(ctl({ "expect", "--help" }).out,
        Catch::Contains("--serial") && Catch::Contains("--manufacturer") && Catch::Contains("--name")
            && Catch::Contains("--csv") && Catch::Contains("first call home") && Catch::Contains("All or nothing"));
}

TEST_CASE("station-key prints the public key line, never creates the key")
{
    ScratchDir dir;
    auto state = (dir.path / "state").string();
    auto keyPath = transport::defaultStationKeyPath(state);

    auto missing = ctl({ "station-key", "--state-dir", state });
    requireOneLineError(missing, "start callhomed");
    REQUIRE(!fs::exists(keyPath));

    auto key = transport::loadStationKey(keyPath, true);
    auto r = ctl({ "--state-dir", state, "station-key" });
    REQUIRE(r.code == 0);
    REQUIRE(r.err.empty());
    REQUIRE(r.out == key.publicKeyLine + "\n");

    auto j = json::parse(ctl({ "--state-dir", state, "station-key", "--json" }).out);
    REQUIRE(j["public_key"] == key.publicKeyLine);
    REQUIRE(j["fingerprint"] == key.fingerprint);
    REQUIRE(j["path"] == keyPath);

    auto explicitKey = ctl({ "station-key", "--key", keyPath });
    REQUIRE(explicitKey.out == key.publicKeyLine + "\n");
}

// --- TLS devices: pre-provisioning (expect), table/JSON/show output, references by serial ---
namespace {
const std::string FpTls1 = "SHA256:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:"
                           "01:23:45:67:89";
const std::string FpTls2 = "SHA256:12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0:12:34:56:"
                           "78:9A:BC:DE:F0";

inventory::TlsIdentity tlsIdentity(const std::string& serial, const std::string& fingerprint)
{
    return { .manufacturer = "example",
        .serial = serial,
        .fingerprint = fingerprint,
        .subject = "CN=router,serialNumber=" + serial + ",O=Example",
        .issuer = "CN=Example IDevID CA,O=Example" };
}

std::string writeFile(const fs::path& path, const std::string& text)
{
    std::ofstream(path) << text;
    return path.string();
}
} // namespace

TEST_CASE_METHOD(Fixture, "expect: one device from the command line")
{
    auto r = run({ "expect", "--serial", "SN0001", "--manufacturer", "example", "--name", "router-1" });
    INFO(r.err);
    REQUIRE(r.code == 0);
    REQUIRE(r.err.empty());
    auto l = lines(r.out);
    REQUIRE(l.size() == 2);
    REQUIRE_THAT(l[1],
        Catch::Contains("router-1") && Catch::Contains("approved") && Catch::Contains("tls")
            && Catch::Contains("example/SN0001"));
    auto d = inv->resolve("SN0001");
    REQUIRE(d.state == DeviceState::Approved);
    REQUIRE(d.decidedBy == "pre-provisioned");
    REQUIRE(d.name == "router-1");

    // without a name, as JSON
    auto j = json::parse(run({ "expect", "--serial", "SN0002", "--manufacturer", "example", "--json" }).out);
    REQUIRE(j["devices"].size() == 1);
    auto& e = j["devices"][0];
    REQUIRE(e["serial"] == "SN0002");
    REQUIRE(e["manufacturer"] == "example");
    REQUIRE(e["name"].is_null());
    REQUIRE(e["transport"] == "tls");
    REQUIRE(e["state"] == "approved");
    REQUIRE(e["decided_by"] == "pre-provisioned");
    REQUIRE(e["fingerprint"] == "");
    REQUIRE(e["first_seen"].is_null());
    REQUIRE(e["last_seen"].is_null());
    REQUIRE(e["attempts"] == 0);

    // again: idempotent; with another name: refused
    REQUIRE(run({ "expect", "--serial", "SN0001", "--manufacturer", "example", "--name", "router-1" }).code == 0);
    auto clash = run({ "expect", "--serial", "SN0001", "--manufacturer", "example", "--name", "other" });
    requireOneLineError(clash, "example/SN0001 is already device");
    REQUIRE(clash.code == 1);
    REQUIRE(inv->devices().size() == 2);

    SECTION("command-line errors")
    {
        auto none = run({ "expect" });
        requireOneLineError(none, "--serial and --manufacturer, --csv FILE");
        REQUIRE(none.code == 2);
        REQUIRE(run({ "expect", "--serial", "SN9" }).code == 2);
        auto both = run({ "expect", "--csv", "x.csv", "--serial", "SN9" });
        requireOneLineError(both, "--csv");
        REQUIRE(both.code == 2);
        requireOneLineError(run({ "expect", "--serial", "SN9", "--manufacturer", "example", "--name", "no spaces" }),
            "may contain only");
    }
}

TEST_CASE_METHOD(Fixture, "expect --csv: shipping data, all or nothing")
{
    SECTION("a good file")
    {
        auto csv = writeFile(dir.path / "ship.csv",
            "# shipment 42\n"
            "serial,manufacturer,name\n"
            "\n"
            "SN0101,example,router-101\n"
            "SN0102,\"Example, Inc.\",\n"
            "\"SN,0103\",example,router-103\n");
        auto r = run({ "expect", "--csv", csv, "--json" });
        INFO(r.err);
        REQUIRE(r.code == 0);
        auto j = json::parse(r.out);
        REQUIRE(j["devices"].size() == 3);
        REQUIRE(j["devices"][0]["name"] == "router-101");
        REQUIRE(j["devices"][1]["manufacturer"] == "Example, Inc.");
        REQUIRE(j["devices"][1]["name"].is_null());
        REQUIRE(j["devices"][2]["serial"] == "SN,0103");
        REQUIRE(inv->devices().size() == 3);
        // the table lists each device once, even when imported again
        auto again = run({ "expect", "--csv", csv });
        REQUIRE(again.code == 0);
        REQUIRE(lines(again.out).size() == 4);
        REQUIRE(inv->devices().size() == 3);
    }
    SECTION("a malformed line: file and line named, nothing imported")
    {
        auto csv = writeFile(dir.path / "bad.csv", "SN0201,example,r-201\n# comment\nSN0202,example,r-202,extra\n");
        auto r = run({ "expect", "--csv", csv });
        requireOneLineError(r, csv + ":3: expected 2 or 3 fields");
        REQUIRE(inv->devices().empty());
    }
    SECTION("a line the inventory refuses: its line named, nothing imported")
    {
        inv->recordTlsContact(tlsIdentity("SN0303", FpTls1), "192.0.2.3", now());
        auto csv = writeFile(dir.path / "conflict.csv",
            "serial,manufacturer,name\nSN0301,example,r-301\n\nSN0302,example,r-302\nSN0303,example,r-303\n");
        auto r = run({ "expect", "--csv", csv });
        requireOneLineError(r, csv + ":5: example/SN0303 is already device");
        REQUIRE_THAT(r.err, Catch::Contains("pending") && Catch::Contains("nothing was imported"));
        REQUIRE(inv->devices().size() == 1);

        auto badName = writeFile(dir.path / "names.csv", "SN0301,example,r-301\nSN0302,example,r 302\n");
        requireOneLineError(run({ "expect", "--csv", badName }), badName + ":2: example/SN0302: device name");
        REQUIRE(inv->devices().size() == 1);
    }
    SECTION("a missing file")
    {
        requireOneLineError(run({ "expect", "--csv", (dir.path / "nope.csv").string() }), "cannot read");
    }
}

TEST_CASE_METHOD(Fixture, "TLS devices in devices, show and references")
{
    edgeAndReplacement();
    inv->expect({ { .serial = "SN0001", .manufacturer = "example", .name = "router-1" },
        { .serial = "SN0002", .manufacturer = "example", .name = "router-2" } });
    inv->recordTlsContact(tlsIdentity("SN0001", FpTls1), "198.51.100.1", now());
    auto selfSigned = inv->recordTlsContact({ .fingerprint = FpTls2, .subject = "CN=lab-box", .issuer = "CN=lab-box" },
                             "198.51.100.9", now())
                          .device;

    auto r = run({ "devices" });
    REQUIRE(r.code == 0);
    auto l = lines(r.out);
    REQUIRE(l.size() == 6);
    for (auto col : { "TRANSPORT", "IDENTITY", "FINGERPRINT" }) {
        REQUIRE_THAT(l[0], Catch::Contains(col));
    }
    const auto fpColumn = l[0].find("FINGERPRINT");
    const auto addressColumn = l[0].find("ADDRESS");
    const auto seenColumn = l[0].find("FIRST-SEEN");
    REQUIRE(l[1].find(FpEdge) == fpColumn); // SSH rows keep their fingerprints
    // called home: identity and fingerprint
    REQUIRE_THAT(l[3], Catch::Contains("router-1") && Catch::Contains("tls") && Catch::Contains("example/SN0001"));
    REQUIRE(l[3].find(FpTls1) == fpColumn);
    REQUIRE(l[3].find("198.51.100.1") == addressColumn);
    // expected, never called: "-" for fingerprint, address and seen
    REQUIRE_THAT(l[4], Catch::Contains("router-2") && Catch::Contains("example/SN0002"));
    REQUIRE(l[4].substr(fpColumn, 2) == "- ");
    REQUIRE(l[4].substr(addressColumn, 2) == "- ");
    REQUIRE(l[4].substr(seenColumn, 2) == "- ");
    REQUIRE(l[4].find(" 0 ") != std::string::npos); // attempts
    // self-signed, pending
    REQUIRE_THAT(l[5], Catch::Contains("pending") && Catch::Contains("self-signed"));
    REQUIRE(l[5].find(FpTls2) == fpColumn);

    // --transport filters
    auto tlsOnly = lines(run({ "devices", "--transport", "tls" }).out);
    REQUIRE(tlsOnly.size() == 4);
    REQUIRE_THAT(run({ "devices", "--transport", "tls" }).out, !Catch::Contains("edge-7"));
    auto sshOnly = json::parse(run({ "devices", "--transport", "ssh", "--json" }).out);
    REQUIRE(sshOnly["devices"].size() == 2);
    auto tlsJson = json::parse(run({ "devices", "--transport", "tls", "--json" }).out)["devices"];
    REQUIRE(tlsJson.size() == 3);
    REQUIRE(tlsJson[0]["serial"] == "SN0001");
    REQUIRE(tlsJson[0]["cert_subject"] == "CN=router,serialNumber=SN0001,O=Example");
    REQUIRE(tlsJson[0]["cert_issuer"] == "CN=Example IDevID CA,O=Example");
    REQUIRE(tlsJson[0]["fingerprint"] == FpTls1);
    REQUIRE(tlsJson[0]["first_seen"].is_string());
    REQUIRE(tlsJson[1]["first_seen"].is_null());
    REQUIRE(tlsJson[2]["manufacturer"] == "");
    REQUIRE(tlsJson[2]["cert_subject"] == "CN=lab-box");

    // show, by serial and by MANUFACTURER/SERIAL
    auto show = run({ "show", "SN0001" });
    REQUIRE(show.code == 0);
    REQUIRE_THAT(show.out,
        Catch::Contains("Manufacturer:    example\n") && Catch::Contains("Serial:          SN0001\n")
            && Catch::Contains("Cert subject:    CN=router,serialNumber=SN0001,O=Example\n")
            && Catch::Contains("Cert issuer:     CN=Example IDevID CA,O=Example\n")
            && Catch::Contains("Fingerprint:     " + FpTls1 + "\n")
            && Catch::Contains("Decided by:      pre-provisioned"));
    auto waiting = run({ "show", "example/SN0002" });
    REQUIRE(waiting.code == 0);
    REQUIRE_THAT(waiting.out,
        Catch::Contains("Fingerprint:     (not called home yet)") && Catch::Contains("First seen:      -\n")
            && Catch::Contains("Last address:    -\n"));
    REQUIRE(json::parse(run({ "show", "example/SN0002", "--json" }).out)["serial"] == "SN0002");

    // approve the self-signed device by a TLS fingerprint prefix (pins it)
    auto approved = run({ "approve", "12:34:56:78:9a:bc:de:f0:12:34:56:78", "--name", "lab-box" });
    INFO(approved.err);
    REQUIRE(approved.code == 0);
    REQUIRE(inv->findById(selfSigned.id)->state == DeviceState::Approved);
    REQUIRE(inv->findById(selfSigned.id)->decidedBy == "uid " + std::to_string(::getuid()) + userSuffix());
    REQUIRE(run({ "show", "SHA256:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01" }).code == 0);
    requireOneLineError(run({ "show", "SHA256:AB:CD:EF" }), "at least 24 hex digits");

    // rekey stays SSH-only
    auto rekey = run({ "rekey", "router-1", "lab-box" });
    requireOneLineError(rekey, "rekey is for SSH host keys");
}

TEST_CASE_METHOD(Fixture, "blocked lists blocked sources, unblock lifts one")
{
    using namespace std::chrono_literals;
    const auto t0 = now();
    SECTION("nothing blocked")
    {
        auto r = run({ "blocked" });
        REQUIRE(r.code == 0);
        REQUIRE(lines(r.out) == std::vector<std::string> { "SOURCE  SINCE  UNTIL  FAILURES  REASON" });
        REQUIRE(json::parse(run({ "blocked", "--json" }).out) == json { { "blocked", json::array() } });
    }

    inv->blockSource("192.0.2.9", t0 - 1min, t0 + 10min, "50 failed handshakes within 60 s", 50);
    inv->blockSource("2001:db8:1:2::/64", t0 - 2min, t0 + 5min, "3 failed handshakes within 60 s", 3);
    inv->blockSource("198.51.100.1", t0 - 1h, t0 - 50min, "ended", 50);

    SECTION("table and JSON, ended blocks left out")
    {
        auto r = run({ "blocked" });
        REQUIRE(r.code == 0);
        auto l = lines(r.out);
        REQUIRE(l.size() == 3);
        for (auto col : { "SOURCE", "SINCE", "UNTIL", "FAILURES", "REASON" }) {
            REQUIRE_THAT(l[0], Catch::Contains(col));
        }
        REQUIRE_THAT(l[1],
            Catch::StartsWith("192.0.2.9 ") && Catch::Contains(toIso8601(t0 + 10min)) && Catch::Contains("50")
                && Catch::EndsWith("50 failed handshakes within 60 s"));
        REQUIRE_THAT(l[2], Catch::StartsWith("2001:db8:1:2::/64 "));

        auto j = json::parse(run({ "blocked", "--json" }).out);
        REQUIRE(j["blocked"].size() == 2);
        REQUIRE(j["blocked"][0]
            == json { { "source", "192.0.2.9" }, { "since", toIso8601(t0 - 1min) }, { "until", toIso8601(t0 + 10min) },
                { "reason", "50 failed handshakes within 60 s" }, { "failures", 50 } });
        REQUIRE(j["blocked"][1]["source"] == "2001:db8:1:2::/64");
    }

    SECTION("unblock an IPv4 source")
    {
        auto before = inv->changeCounter();
        auto r = run({ "unblock", "192.0.2.9" });
        REQUIRE(r.code == 0);
        REQUIRE(r.err.empty());
        REQUIRE_THAT(r.out, Catch::StartsWith("unblocked 192.0.2.9 (was blocked until"));
        REQUIRE(lines(r.out).size() == 1);
        // the running daemon notices (at once on SQLite; PostgreSQL's notification may take a moment)
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (inv->changeCounter() == before && std::chrono::steady_clock::now() < until) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        REQUIRE(inv->changeCounter() != before);
        auto list = inv->blockedSources(now());
        REQUIRE(list.size() == 1);
        REQUIRE(list[0].source == "2001:db8:1:2::/64");
        auto log = inv->events({});
        REQUIRE(log.back().kind == inventory::EventKind::Unblocked);
        REQUIRE(log.back().address == "192.0.2.9");
        REQUIRE_THAT(run({ "events" }).out, Catch::Contains("unblocked") && Catch::Contains("blocked"));
        // a second time: not blocked any more
        requireOneLineError(run({ "unblock", "192.0.2.9" }), "192.0.2.9 is not blocked");
    }

    SECTION("unblock an IPv6 /64 by any address in it, or an IPv4-mapped address; JSON")
    {
        auto r = run({ "unblock", "2001:db8:1:2:abcd::7", "--json" });
        REQUIRE(r.code == 0);
        auto j = json::parse(r.out);
        REQUIRE(j["source"] == "2001:db8:1:2::/64");
        REQUIRE(j["failures"] == 3);
        REQUIRE(j["until"] == toIso8601(t0 + 5min));
        REQUIRE(run({ "unblock", "::ffff:192.0.2.9" }).code == 0);
        REQUIRE(inv->blockedSources(now()).empty());
    }

    SECTION("errors")
    {
        requireOneLineError(run({ "unblock", "198.51.100.1" }), "198.51.100.1 is not blocked");
        requireOneLineError(run({ "unblock", "203.0.113.5" }), "not blocked");
        auto bad = run({ "unblock", "not-an-address" });
        requireOneLineError(bad, "not a source address");
        REQUIRE(bad.code == 2);
        REQUIRE(run({ "unblock", "2001:db8::/48" }).code == 2);
        REQUIRE(run({ "unblock" }).code == 2);
        REQUIRE(inv->blockedSources(now()).size() == 2);
    }
}
