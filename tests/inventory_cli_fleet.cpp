// callhomectl at fleet scale (issue 8): streamed listings equal to the old output, filters and paging, import,
// expect --fingerprint / --known-hosts (keys and files made by OpenSSH's ssh-keygen), bulk decisions, the prefix
// rule, escaped peer text, time range errors, check, --config. run() is called in-process.
#include "CliRun.h"
#include "ScratchDir.h"
#include "cli/Cli.h"
#include "cli/Json.h"
#include "cli/Table.h"
#include "common/Time.h"
#include "inventory/Inventory.h"
#include "transport/StationKey.h"
#include <array>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

namespace fs = std::filesystem;
using namespace callhome;
using callhome::test::ScratchDir;
using inventory::DeviceState;
using inventory::Transport;
using nlohmann::json;

using callhome::test::CliResult;
using callhome::test::ctl;
using callhome::test::lines;
using callhome::test::requireOneLineError;

namespace {

/** A well-formed SSH fingerprint, distinct per n. */
std::string fp(int n)
{
    auto digits = std::to_string(n);
    return "SHA256:" + std::string(43 - digits.size(), 'Q') + digits;
}

/** Runs a shell command; returns its stdout, requires exit status 0. */
std::string shell(const std::string& command)
{
    INFO(command);
    std::string out;
    FILE* p = ::popen(command.c_str(), "r");
    REQUIRE(p);
    std::array<char, 4096> buf {};
    while (auto n = std::fread(buf.data(), 1, buf.size(), p)) {
        out.append(buf.data(), n);
    }
    REQUIRE(::pclose(p) == 0);
    return out;
}

struct Fixture : callhome::test::CliInventory {

    /** A small realistic inventory: approved, pending (one flagged), rejected, TLS expected and called. */
    void populate()
    {
        auto a = inv->recordContact(Transport::Ssh, fp(1), "ssh-ed25519", "192.0.2.1", now()).device;
        inv->approve(a.id, std::string("edge-1"), std::string("admin"));
        inv->recordContact(Transport::Ssh, fp(2), "ecdsa-sha2-nistp256", "192.0.2.1", now()); // same address
        auto c = inv->recordContact(Transport::Ssh, fp(3), "ssh-rsa", "2001:db8::3", now()).device;
        inv->reject(c.id);
        inv->expect({ { .serial = "SN0001", .manufacturer = "example", .name = std::string("router-long-name-1") },
            { .serial = "SN0002", .manufacturer = "example" } });
        inv->recordTlsContact({ .manufacturer = "example",
                                  .serial = "SN0001",
                                  .fingerprint = "SHA256:AB:CD:EF",
                                  .subject = "CN=router,serialNumber=SN0001,O=Zürich \"AG\" \\, x\x1b",
                                  .issuer = "CN=ca" },
            "198.51.100.10", now());
        inv->listenerStarted("L1", now());
        inv->sessionOpened(a.id, "L1", now(), { "urn:ietf:params:netconf:base:1.1" });
        inv->addEvent({ .at = now(),
            .kind = inventory::EventKind::HandshakeFailed,
            .address = "192.0.2.9",
            .detail = "timeout" });
    }

    /** `devices` as callhomectl printed it before it streamed: every device in memory, then one Table. */
    std::string oldDevicesTable()
    {
        auto all = inv->devices();
        std::map<int64_t, const inventory::Device*> byId;
        for (const auto& d : all) {
            byId[d.id] = &d;
        }
        cli::Table table({ "ID", "NAME", "STATE", "CONN", "HELD-BY", "TRANSPORT", "IDENTITY", "FINGERPRINT", "KEY-TYPE",
            "ADDRESS", "FIRST-SEEN", "LAST-SEEN", "ATTEMPTS", "FLAGS" });
        for (const auto& d : all) {
            std::string flags;
            if (d.sameAddressAs) {
                auto other = byId.find(*d.sameAddressAs);
                flags = "same-address-as:"
                    + (other != byId.end() && other->second->name ? *other->second->name
                                                                  : "#" + std::to_string(*d.sameAddressAs));
            }
            auto seen = [&](TimePoint t) { return d.attempts > 0 ? toIso8601(t) : std::string {}; };
            std::string identity = d.transport != Transport::Tls ? ""
                : d.serial.empty()                               ? "self-signed"
                                                                 : d.manufacturer + "/" + d.serial;
            table.addRow(
                { std::to_string(d.id), d.name.value_or(""), inventory::toString(d.state), d.connected ? "yes" : "no",
                    d.listenerId.value_or(""), inventory::toString(d.transport), identity, d.fingerprint, d.keyType,
                    d.lastAddress, seen(d.firstSeen), seen(d.lastSeen), std::to_string(d.attempts), flags });
        }
        std::ostringstream out;
        table.print(out);
        return out.str();
    }

    std::string oldDevicesJson()
    {
        auto list = json::array();
        for (const auto& d : inv->devices()) {
            list.push_back(cli::toJson(d));
        }
        return json { { "devices", list } }.dump(2) + "\n";
    }
};
} // namespace

TEST_CASE_METHOD(Fixture, "streamed listings print what the buffered ones did")
{
    SECTION("empty")
    {
        REQUIRE(run({ "devices" }).out == oldDevicesTable());
        REQUIRE(run({ "devices", "--json" }).out == oldDevicesJson());
        REQUIRE(run({ "events", "--json" }).out == "{\n  \"events\": []\n}\n");
    }
    SECTION("a small inventory")
    {
        populate();
        auto table = run({ "devices" });
        REQUIRE(table.code == 0);
        REQUIRE(table.out == oldDevicesTable());
        REQUIRE_THAT(table.out, Catch::Contains("same-address-as:edge-1"));
        auto j = run({ "devices", "--json" });
        REQUIRE(j.out == oldDevicesJson());

        auto events = inv->events({});
        auto list = json::array();
        for (const auto& e : events) {
            list.push_back(cli::toJson(e));
        }
        REQUIRE(run({ "events", "--json" }).out == json { { "events", list } }.dump(2) + "\n");
        cli::Table old({ "TIME", "KIND", "DEVICE", "CONN", "ADDRESS", "FINGERPRINT", "DETAIL" });
        for (const auto& e : events) {
            old.addRow({ toIso8601(e.at), inventory::toString(e.kind),
                !e.deviceName.empty() ? e.deviceName
                    : e.deviceId      ? "#" + std::to_string(*e.deviceId)
                                      : std::string {},
                e.connectionId, e.address, e.fingerprint, e.detail });
        }
        std::ostringstream oldText;
        old.print(oldText);
        REQUIRE(run({ "events" }).out == oldText.str());
    }
}

TEST_CASE("StreamingTable sizes its columns on the first rows, then streams")
{
    std::ostringstream out;
    cli::StreamingTable table({ "A", "B" }, out, 2);
    table.addRow({ "x", "1" });
    REQUIRE(out.str().empty()); // still sizing
    table.addRow({ "yy", "2" });
    REQUIRE(out.str() == "A   B\nx   1\nyy  2\n");
    table.addRow({ "zzzz", "" });
    table.addRow({ "\x1b[31m", "3" });
    table.finish();
    REQUIRE(out.str() == "A   B\nx   1\nyy  2\nzzzz  -\n\\x1B[31m  3\n");
}

TEST_CASE_METHOD(Fixture, "devices and events: filters and paging")
{
    for (int n = 1; n <= 25; ++n) {
        auto d = inv->recordContact(Transport::Ssh, fp(n), "ssh-ed25519", "192.0.2.1",
                        TimePoint(std::chrono::milliseconds(1'000'000'000'000 + n * 1000)))
                     .device;
        if (n % 5 == 0) {
            inv->approve(d.id, "core-" + std::to_string(n), std::nullopt);
        }
    }
    auto idsOf = [](const std::string& jsonText) {
        std::vector<int64_t> out;
        const auto doc = json::parse(jsonText);
        for (const auto& d : doc["devices"]) {
            out.push_back(d["id"]);
        }
        return out;
    };
    REQUIRE(idsOf(run({ "devices", "--json", "--limit", "10" }).out).size() == 10);
    REQUIRE(idsOf(run({ "devices", "--json", "--limit", "10", "--after", "20" }).out)
        == std::vector<int64_t> { 21, 22, 23, 24, 25 });
    auto page = run({ "devices", "--limit", "3", "--after", "3" });
    REQUIRE(lines(page.out).size() == 4);
    REQUIRE(lines(page.out)[1].rfind("4 ", 0) == 0);
    REQUIRE(
        idsOf(run({ "devices", "--json", "--state", "approved" }).out) == std::vector<int64_t> { 5, 10, 15, 20, 25 });
    REQUIRE(idsOf(run({ "devices", "--json", "--name", "core-1*" }).out) == std::vector<int64_t> { 10, 15 });
    REQUIRE(idsOf(run({ "devices", "--json", "--seen-since", "2001-09-09T01:46:59Z" }).out)
        == std::vector<int64_t> { 19, 20, 21, 22, 23, 24, 25 });
    REQUIRE(idsOf(run({ "devices", "--json", "--connected" }).out).empty());
    REQUIRE(idsOf(run({ "devices", "--json", "--disconnected", "--transport", "ssh", "--limit", "2" }).out)
        == std::vector<int64_t> { 1, 2 });
    REQUIRE(run({ "devices", "--connected", "--disconnected" }).code == 2);
    REQUIRE(run({ "devices", "--limit", "0" }).code == 2);

    auto all = json::parse(run({ "events", "--json" }).out)["events"];
    REQUIRE(all.size() == 5); // recording a contact writes no event; the 5 approvals do
    auto firstId = all[0]["id"].get<int64_t>();
    auto next = json::parse(run({ "events", "--json", "--after", std::to_string(firstId), "--limit", "2" }).out);
    REQUIRE(next["events"].size() == 2);
    REQUIRE(next["events"][0]["id"] == all[1]["id"]);
    REQUIRE(next["events"][1]["id"] == all[2]["id"]);
}

TEST_CASE_METHOD(Fixture, "import --csv: 10,000 devices in one transaction")
{
    const auto csv = (dir.path / "fleet.csv").string();
    {
        std::ofstream f(csv);
        f << "identity,name,user\n";
        for (int n = 0; n < 9000; ++n) {
            f << fp(n) << ",ssh-" << n << (n % 2 ? ",admin" : "") << "\n";
        }
        for (int n = 0; n < 1000; ++n) {
            f << "example/SN" << n << ",tls-" << n << "\n";
        }
    }
    auto started = std::chrono::steady_clock::now();
    auto r = run({ "import", "--csv", csv });
    auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::cout << "import of 10,000 rows: " << elapsed << " s" << std::endl;
    INFO(r.err);
    REQUIRE(r.code == 0);
    REQUIRE(r.out
        == "imported 10000 devices from " + csv
            + ": 10000 new, 0 already expected; callhomed accepts them on their first call home\n");
    REQUIRE(inv->devices().size() == 10000);
    auto d = inv->resolve("ssh-4321");
    REQUIRE(d.fingerprint == fp(4321));
    REQUIRE(d.sshUser == "admin");
    REQUIRE(d.state == DeviceState::Approved);
    REQUIRE(d.decidedBy == "pre-provisioned");
    REQUIRE(inv->resolve("example/SN999").name == "tls-999");
    REQUIRE(!inv->resolve("ssh-4320").sshUser);

    // idempotent
    auto again = json::parse(run({ "--json", "import", "--csv", csv }).out);
    REQUIRE(again == json { { "file", csv }, { "devices", 10000 }, { "created", 0 }, { "unchanged", 10000 } });

    // all or nothing: a bad last line imports nothing of what comes before it
    const auto bad = (dir.path / "bad.csv").string();
    {
        std::ofstream f(bad);
        f << fp(20000) << ",new-1\n" << fp(20001) << ",new-2\n" << fp(1) << ",renamed\n";
    }
    requireOneLineError(run({ "import", "--csv", bad }), bad + ":3: " + fp(1) + " is already device");
    REQUIRE(!inv->findByFingerprint(fp(20000)));
    {
        std::ofstream f(bad);
        f << "example/SN1,tls-x,admin\n";
    }
    requireOneLineError(run({ "import", "--csv", bad }), "a user is for SSH devices only");
    {
        std::ofstream f(bad);
        f << "no-slash,x\n";
    }
    requireOneLineError(run({ "import", "--csv", bad }), bad + ":1:");
}

TEST_CASE_METHOD(Fixture, "expect --fingerprint and --known-hosts with keys and files from ssh-keygen")
{
    const auto keys = dir.path / "keys";
    fs::create_directories(keys);
    auto keygen = [&](const std::string& name, const std::string& type) {
        auto path = (keys / name).string();
        shell("ssh-keygen -q -N '' -t " + type + " -f " + path + " </dev/null >/dev/null");
        std::ifstream in(path + ".pub");
        std::string pub;
        std::getline(in, pub);
        // the fingerprint exactly as OpenSSH computes it
        auto printed = shell("ssh-keygen -l -E sha256 -f " + path + ".pub");
        std::istringstream words(printed);
        std::string bits, fingerprint;
        words >> bits >> fingerprint;
        return std::pair { pub, fingerprint };
    };
    auto [r1Ed, r1EdFp] = keygen("r1-ed25519", "ed25519");
    auto [r1Ec, r1EcFp] = keygen("r1-ecdsa", "ecdsa");
    auto [r2Rsa, r2RsaFp] = keygen("r2-rsa", "rsa");
    auto [hidden, hiddenFp] = keygen("hidden", "ed25519");
    auto [v6, v6Fp] = keygen("v6", "ed25519");

    SECTION("one key by fingerprint")
    {
        auto r = run({ "expect", "--fingerprint", r1EdFp, "--name", "router-1", "--user", "admin" });
        INFO(r.err);
        REQUIRE(r.code == 0);
        REQUIRE_THAT(r.out, Catch::Contains("router-1") && Catch::Contains(r1EdFp));
        auto d = inv->resolve("router-1");
        REQUIRE(d.state == DeviceState::Approved);
        REQUIRE(d.sshUser == "admin");
        REQUIRE(d.decidedBy == "pre-provisioned");
        REQUIRE(run({ "expect", "--fingerprint", r1EdFp, "--name", "router-1" }).code == 0); // idempotent
        REQUIRE(run({ "expect", "--fingerprint", r1EdFp }).code == 2);
        requireOneLineError(run({ "expect", "--fingerprint", "SHA256:abc", "--name", "x" }), "not an SSH host key");
        // the device calls home with that key: accepted as it is
        auto contact = inv->recordContact(Transport::Ssh, r1EdFp, "ssh-ed25519", "192.0.2.1", now());
        REQUIRE(contact.device.state == DeviceState::Approved);
        REQUIRE(!contact.created);
    }

    SECTION("a known_hosts file, plain and hashed entries")
    {
        const auto plainFile = (dir.path / "known_hosts").string();
        {
            std::ofstream f(plainFile);
            f << "# written for the test, then partly hashed by ssh-keygen -H\n";
            f << "router1.example.net,192.0.2.1 " << r1Ed << "\n";
            f << "router1.example.net " << r1Ec << "\n";
            f << "[router2]:830 " << r2Rsa << "\n";
            f << "192.0.2.2 " << r2Rsa << "\n"; // the same key under its address: listed once
            f << "@cert-authority *.example.net " << v6 << "\n";
            f << "2001:db8::7 " << v6 << "\n";
        }
        const auto hashedFile = (dir.path / "hashed_hosts").string();
        {
            std::ofstream f(hashedFile);
            f << "secret-host " << hidden << "\n";
        }
        shell("ssh-keygen -H -f " + hashedFile + " >/dev/null 2>&1");
        std::string hashedLine;
        {
            std::ifstream f(hashedFile);
            std::getline(f, hashedLine);
        }
        REQUIRE(hashedLine.rfind("|1|", 0) == 0);
        REQUIRE(shell("ssh-keygen -F secret-host -f " + hashedFile).find("secret-host") != std::string::npos);
        {
            std::ofstream f(plainFile, std::ios::app);
            f << hashedLine << "\n";
        }

        auto r = run({ "--json", "expect", "--known-hosts", plainFile, "--user", "netconf", "--name-prefix", "lab-" });
        INFO(r.err);
        REQUIRE(r.code == 0);
        std::map<std::string, json> byName;
        const auto listed = json::parse(r.out);
        for (const auto& d : listed["devices"]) {
            byName[d["name"]] = d;
        }
        std::string hiddenName = "lab-" + hiddenFp.substr(7, 12);
        std::replace(hiddenName.begin(), hiddenName.end(), '+', '-');
        std::replace(hiddenName.begin(), hiddenName.end(), '/', '_');
        REQUIRE(byName.size() == 5);
        REQUIRE(byName.at("router1.example.net")["fingerprint"] == r1EdFp);
        REQUIRE(byName.at("router1.example.net")["key_type"] == "ssh-ed25519");
        REQUIRE(byName.at("router1.example.net-ecdsa-sha2-nistp256")["fingerprint"] == r1EcFp);
        REQUIRE(byName.at("router2")["fingerprint"] == r2RsaFp);
        REQUIRE(byName.at("router2")["key_type"] == "ssh-rsa");
        REQUIRE(byName.at("2001-db8--7")["fingerprint"] == v6Fp);
        REQUIRE(byName.at(hiddenName)["fingerprint"] == hiddenFp);
        for (const auto& [name, d] : byName) {
            INFO(name);
            REQUIRE(d["state"] == "approved");
            REQUIRE(d["decided_by"] == "pre-provisioned");
            REQUIRE(d["ssh_user"] == "netconf");
            REQUIRE(d["attempts"] == 0);
        }
        // importing the same file again changes nothing
        auto eventsBefore = inv->events({}).size();
        REQUIRE(run({ "expect", "--known-hosts", plainFile, "--user", "netconf", "--name-prefix", "lab-" }).code == 0);
        REQUIRE(inv->events({}).size() == eventsBefore);
        // without --name-prefix the hashed entry gets the default prefix: a new name for an expected key, refused
        requireOneLineError(
            run({ "expect", "--known-hosts", plainFile, "--user", "netconf" }), plainFile + ":8: " + hiddenFp);

        // the device with the hashed entry calls home: accepted with no step
        auto contact = inv->recordContact(Transport::Ssh, hiddenFp, "ssh-ed25519", "192.0.2.50", now());
        REQUIRE(contact.device.state == DeviceState::Approved);
        REQUIRE(contact.device.attempts == 1);
    }

    SECTION("a broken known_hosts line names the file and line; nothing is imported")
    {
        const auto file = (dir.path / "broken_hosts").string();
        {
            std::ofstream f(file);
            f << "good " << r1Ed << "\n";
            f << "*.example.net " << r1Ec << "\n";
        }
        requireOneLineError(run({ "expect", "--known-hosts", file }), file + ":2: \"*.example.net\" is a pattern");
        {
            std::ofstream f(file);
            f << "liar ssh-rsa " << r1Ed.substr(r1Ed.find(' ') + 1) << "\n";
        }
        requireOneLineError(run({ "expect", "--known-hosts", file }), file + ":1: the key is not a ssh-rsa key");
        REQUIRE(inv->devices().empty());
    }
}

TEST_CASE_METHOD(Fixture, "bulk decisions need --all and --yes and print a count")
{
    for (int n = 1; n <= 4; ++n) {
        inv->recordContact(Transport::Ssh, fp(n), "ssh-ed25519", "192.0.2." + std::to_string(n), now());
    }
    auto dry = run({ "approve", "--all", "--state", "pending", "--name-prefix", "edge-" });
    requireOneLineError(dry, "this would approve 4 devices (state pending)");
    REQUIRE(inv->findById(1)->state == DeviceState::Pending);
    requireOneLineError(run({ "approve", "--all", "--state", "pending", "--yes" }), "has no name");
    auto done = run({ "approve", "--all", "--state", "pending", "--name-prefix", "edge-", "--user", "op", "--yes" });
    INFO(done.err);
    REQUIRE(done.code == 0);
    REQUIRE(done.out == "approved 4 devices (state pending)\n");
    REQUIRE(inv->findById(3)->name == "edge-3");
    REQUIRE(inv->findById(3)->sshUser == "op");
    REQUIRE(json::parse(run({ "--json", "revoke", "--all", "--yes" }).out)
        == json { { "action", "revoke" }, { "count", 4 } });
    REQUIRE(run({ "reject", "--all", "--yes" }).out == "rejected 0 devices\n");
    REQUIRE(run({ "forget", "--all", "--transport", "ssh", "--yes" }).out == "forgot 4 devices (transport ssh)\n");
    REQUIRE(inv->devices().empty());

    // command-line mistakes
    REQUIRE(run({ "approve" }).code == 2);
    REQUIRE(run({ "approve", "x", "--all" }).code == 2);
    REQUIRE(run({ "approve", "--all", "--name", "x" }).code == 2);
    REQUIRE(run({ "reject", "--state", "pending" }).code == 2); // a filter without --all
}

TEST_CASE_METHOD(Fixture, "hostile certificate and event text is shown escaped")
{
    inventory::TlsIdentity hostile { .manufacturer = "example",
        .serial = "SN1",
        .fingerprint = "SHA256:AB:CD:EF",
        .subject = "CN=\x1b]2;pwned\x07\x1b[2J,O=\xc2\x9b"
                   "1m",
        .issuer = "CN=ca\nFAKE: line" };
    auto d = inv->recordTlsContact(hostile, "192.0.2.66", now()).device;
    inv->addEvent({ .at = now(),
        .kind = inventory::EventKind::HandshakeFailed,
        .deviceId = d.id,
        .detail = "ssh disconnect: \x1b[31mred\x1b[0m" });
    auto isClean = [](const std::string& text) {
        return std::none_of(text.begin(), text.end(), [](char c) {
            auto u = static_cast<unsigned char>(c);
            return (u < 0x20 && c != '\n') || u == 0x7f;
        }) && text.find("\xc2\x9b") == std::string::npos;
    };
    for (auto args : std::vector<std::vector<std::string>> { { "show", "SN1" }, { "devices" }, { "devices", "--json" },
             { "show", "SN1", "--json" }, { "events" }, { "events", "--json" } }) {
        auto r = run(args);
        INFO(args[0] << " " << r.out);
        REQUIRE(r.code == 0);
        REQUIRE(isClean(r.out));
    }
    REQUIRE_THAT(run({ "show", "SN1" }).out,
        Catch::Contains("Cert subject:    CN=\\x1B]2;pwned\\x07\\x1B[2J,O=\\u009B1m\n")
            && Catch::Contains("Cert issuer:     CN=ca\\x0AFAKE: line\n"));
    REQUIRE_THAT(run({ "events" }).out, Catch::Contains("ssh disconnect: \\x1B[31mred\\x1B[0m"));
    // an error message quoting the operator's (or a script's) text is escaped too
    auto r = run({ "show", "no\x1b[2Jsuch" });
    requireOneLineError(r, "no\\x1B[2Jsuch");
}

TEST_CASE_METHOD(Fixture, "time arguments out of range are usage errors")
{
    for (auto t : { "99999999999999999999m", "36526d", "2026-02-30", "1969-12-31", "-1h" }) {
        INFO(t);
        auto r = run({ "events", "--since", t });
        requireOneLineError(r, "invalid time");
        REQUIRE(r.code == 2);
        REQUIRE(run({ "devices", "--seen-since", t }).code == 2);
    }
    REQUIRE(run({ "events", "--since", "36525d" }).code == 0);
}

TEST_CASE_METHOD(Fixture, "check runs the integrity check; --config finds the configured station key", "[sqlite]")
{
    populate();
    auto r = run({ "check" });
    REQUIRE(r.code == 0);
    REQUIRE(r.out == "inventory " + db + ": ok (quick_check and foreign keys)\n");
    REQUIRE(json::parse(run({ "--json", "check" }).out) == json { { "path", db }, { "ok", true } });

    // a configuration that puts the key elsewhere: station-key follows it, as callhomed would
    const auto keyFile = (dir.path / "keys" / "station").string();
    auto key = transport::loadStationKey(keyFile, true);
    const auto config = (dir.path / "callhomed.json").string();
    std::ofstream(config) << json {
        { "callhome-config:callhome", { { "state-dir", state }, { "ssh", { { "key-file", keyFile } } } } }
    }.dump();
    requireOneLineError(run({ "station-key" }), "no station key");
    auto shown = ctl({ "--config", config, "station-key" });
    INFO(shown.err);
    REQUIRE(shown.code == 0);
    REQUIRE(shown.out == key.publicKeyLine + "\n");
    // the inventory comes from the configuration's state directory too
    REQUIRE(ctl({ "--config", config, "devices", "--json" }).out == run({ "devices", "--json" }).out);
    // an explicit --state-dir still wins
    requireOneLineError(
        ctl({ "--config", config, "--state-dir", (dir.path / "nowhere").string(), "devices" }), "no inventory");
    requireOneLineError(ctl({ "--config", (dir.path / "missing.json").string(), "devices" }), "missing.json");
}
