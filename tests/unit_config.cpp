#include "config/Config.h"
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sys/stat.h>

using namespace callhome::config;
namespace fs = std::filesystem;

namespace {
struct TempFile {
    fs::path path;
    explicit TempFile(const std::string& content, mode_t mode = 0600)
    {
        char tmpl[] = "/tmp/callhome-unit-config-XXXXXX";
        int fd = mkstemp(tmpl);
        REQUIRE(fd >= 0);
        ::close(fd);
        path = tmpl;
        std::ofstream(path) << content;
        ::chmod(path.c_str(), mode);
    }
    ~TempFile() { fs::remove(path); }
};
} // namespace

TEST_CASE("embedded defaults")
{
    auto c = load(std::nullopt, {});
    REQUIRE(c.listen.size() == 1);
    CHECK(c.listen[0].toString() == "ssh:[::]:4334");
    CHECK(c.stateDir == "state");
    CHECK(c.inventoryPath == "state/inventory.db");
    CHECK(c.sshKeyFile == "state/station-key");
    CHECK_FALSE(c.sshKeyFileExplicit);
    CHECK(c.sshUser == "netconf");
    CHECK_FALSE(c.sshPassword);
    CHECK(c.handshakeTimeout == std::chrono::seconds(15));
    CHECK(c.yangSearchDirs == std::vector<std::string> { "/usr/share/yuma/modules/ietf" });
}

TEST_CASE("a full file is read")
{
    TempFile f(R"({"callhome-config:callhome": {
        "listen": [{"name": "v4", "address": "127.0.0.1", "port": 14334},
                   {"name": "v6", "address": "::1", "port": 14335}],
        "state-dir": "/var/lib/callhome", "listener-id": "nms-1",
        "ssh": {"user": "admin", "key-file": "/etc/callhome/key", "password": "s3cret"},
        "timeouts": {"handshake": 5, "keepalive-interval": 0},
        "limits": {"event-loops": 4, "max-message": 1048576},
        "yang": {"search-dir": ["/a", "/b"]}}})");
    auto c = load(f.path.string(), {});
    REQUIRE(c.listen.size() == 2);
    CHECK(c.listen[0].toString() == "ssh:127.0.0.1:14334");
    CHECK(c.listen[1].toString() == "ssh:[::1]:14335");
    CHECK(c.inventoryPath == "/var/lib/callhome/inventory.db");
    CHECK(c.listenerId == "nms-1");
    CHECK(c.sshUser == "admin");
    CHECK(c.sshKeyFile == "/etc/callhome/key");
    CHECK(c.sshKeyFileExplicit);
    CHECK(c.sshPassword == "s3cret");
    CHECK(c.handshakeTimeout == std::chrono::seconds(5));
    CHECK(c.keepaliveInterval == std::chrono::seconds(0));
    CHECK(c.eventLoops == 4);
    CHECK(c.maxMessage == 1048576);
    CHECK(c.yangSearchDirs == std::vector<std::string> { "/a", "/b" });
}

TEST_CASE("command line overrides the file")
{
    TempFile f(R"({"callhome-config:callhome": {"listen": [{"name": "a", "port": 1}], "state-dir": "/x"}})");
    auto c = load(f.path.string(), Overrides { "/y", "/z/inv.db", { "ssh:[::1]:0" } });
    REQUIRE(c.listen.size() == 1);
    CHECK(c.listen[0].toString() == "ssh:[::1]:0");
    CHECK(c.stateDir == "/y");
    CHECK(c.inventoryPath == "/z/inv.db");
    CHECK(c.sshKeyFile == "/y/station-key");
}

TEST_CASE("errors name the offending node")
{
    std::string fp = "SHA256:AB";
    for (int i = 1; i < 32; ++i) {
        fp += ":AB";
    }
    auto message = [](const std::string& json) {
        TempFile f(json);
        try {
            load(f.path.string(), {});
        } catch (const ConfigError& e) {
            return std::string(e.what());
        }
        FAIL("no error for " << json);
        return std::string();
    };
    CHECK_THAT(message(R"({"callhome-config:callhome": {"listen": [{"name": "a", "port": 99999}]}})"),
        Catch::Contains("port") && Catch::Contains("99999"));
    CHECK_THAT(
        message(R"({"callhome-config:callhome": {"timeouts": {"handshake": 0}}})"), Catch::Contains("handshake"));
    CHECK_THAT(message(R"({"callhome-config:callhome": {"listen": [{"name": "a", "address": "localhost"}]}})"),
        Catch::Contains("address"));
    CHECK_THAT(message(R"({"callhome-config:callhome": {"no-such-leaf": 1}})"), Catch::Contains("no-such-leaf"));
    CHECK_THAT(message(R"({"callhome-config:callhome": )"), Catch::Contains("callhome-unit-config"));
    CHECK_THAT(message(R"({"callhome-config:callhome": {"listen": [{"name": "a", "transport": "quic"}]}})"),
        Catch::Contains("transport"));
    CHECK_THAT(message(R"({"callhome-config:callhome": {"listen": [{"name": "a", "transport": "tls"}]}})"),
        Catch::Contains("trust store"));
    CHECK_THAT(
        message(
            R"({"callhome-config:callhome": {"tls": {"cert-to-name": [{"id": 1, "fingerprint": "SHA256:00", "map-type": "san-any"}]}}})"),
        Catch::Contains("fingerprint"));
    CHECK_THAT(message(R"({"callhome-config:callhome": {"tls": {"cert-to-name": [{"id": 1, "fingerprint": ")" + fp
                   + R"(", "map-type": "specified"}]}}})"),
        Catch::Contains("needs a name"));
}

TEST_CASE("TLS settings")
{
    std::string fp = "SHA256:";
    for (int i = 0; i < 32; ++i) {
        fp += (i ? ":" : "") + std::string("AB");
    }
    TempFile f(R"({"callhome-config:callhome": {
        "listen": [{"name": "t", "transport": "tls", "address": "::1"}, {"name": "s", "address": "::1"}],
        "tls": {"trust-store": "/etc/callhome/trust",
                "manufacturer": [{"name": "acme", "serial-source": "hardware-module-name", "ignore-lifetime": true}],
                "cert-to-name": [{"id": 20, "fingerprint": ")"
        + fp + R"(", "map-type": "san-dns-name"},
                                 {"id": 10, "fingerprint": ")"
        + fp + R"(", "map-type": "specified", "name": "core-1"}]}}})");
    auto c = load(f.path.string(), {});
    REQUIRE(c.listen.size() == 2);
    CHECK(c.listen[0].toString() == "tls:[::1]:4335");
    CHECK(c.listen[1].toString() == "ssh:[::1]:4334");
    CHECK(c.hasTls());
    CHECK(c.trustStore == "/etc/callhome/trust");
    REQUIRE(c.manufacturers.size() == 1);
    CHECK(c.manufacturers[0].serialSource == "hardware-module-name");
    CHECK(c.manufacturers[0].ignoreLifetime);
    REQUIRE(c.certToName.size() == 2);
    CHECK(c.certToName[0].id == 10);
    CHECK(c.certToName[0].name == "core-1");
    CHECK(c.certToName[1].mapType == "san-dns-name");

    auto o = load(std::nullopt, Overrides { std::nullopt, std::nullopt, { "tls:127.0.0.1:0" }, "/x" });
    CHECK(o.listen.at(0).transport == Transport::Tls);
    CHECK(o.trustStore == "/x");
    CHECK_THROWS_WITH(load(std::nullopt, Overrides { std::nullopt, std::nullopt, { "tls:127.0.0.1:0" } }),
        Catch::Contains("trust store"));
}

TEST_CASE("a password in a file readable by others is refused")
{
    TempFile f(R"({"callhome-config:callhome": {"ssh": {"password": "x"}}})", 0644);
    REQUIRE_THROWS_WITH(load(f.path.string(), {}), Catch::Contains("chmod 600"));
    ::chmod(f.path.c_str(), 0600);
    CHECK(load(f.path.string(), {}).sshPassword == "x");
}

TEST_CASE("missing file")
{
    REQUIRE_THROWS_WITH(load("/nonexistent/callhome.json", {}), Catch::Contains("/nonexistent/callhome.json"));
}

TEST_CASE("listen endpoints")
{
    CHECK(parseEndpoint("ssh:127.0.0.1:4334").port == 4334);
    CHECK(parseEndpoint("ssh:[::]:4334").address == "::");
    CHECK(parseEndpoint("ssh:[2001:db8::1]:830").toString() == "ssh:[2001:db8::1]:830");
    for (const char* bad : { "127.0.0.1:4334", "ssh:127.0.0.1", "ssh:::1:4334", "quic:127.0.0.1:1", "ssh:[::1]4334",
             "ssh:localhost:4334", "ssh:127.0.0.1:65536", "ssh:127.0.0.1:x", "ssh:[::1:1" }) {
        INFO(bad);
        CHECK_THROWS_AS(parseEndpoint(bad), ConfigError);
    }
}

TEST_CASE("admission settings")
{
    SECTION("defaults")
    {
        auto a = load(std::nullopt, {}).admission;
        CHECK(a.maxHandshakes == 0);
        CHECK(a.perSourceHandshakes == 64);
        CHECK(a.perSourceRate == 50.0);
        CHECK(a.perSourceBurst == 200);
        CHECK(a.blockAfterFailures == 50);
        CHECK(a.failureWindow == std::chrono::seconds(60));
        CHECK(a.blockDuration == std::chrono::seconds(600));
        CHECK(a.summaryInterval == std::chrono::seconds(10));
    }

    SECTION("a file sets them; the handshake deadline stays in timeouts")
    {
        TempFile f(R"({"callhome-config:callhome": {
            "timeouts": {"handshake": 7},
            "admission": {"max-handshakes": 500, "per-source-handshakes": 0, "per-source-rate": "0.5",
                          "per-source-burst": 3, "block-after-failures": 0, "failure-window": 30,
                          "block-duration": 3600, "summary-interval": 60}}})");
        auto c = load(f.path.string(), {});
        CHECK(c.handshakeTimeout == std::chrono::seconds(7));
        const auto& a = c.admission;
        CHECK(a.maxHandshakes == 500);
        CHECK(a.perSourceHandshakes == 0);
        CHECK(a.perSourceRate == 0.5);
        CHECK(a.perSourceBurst == 3);
        CHECK(a.blockAfterFailures == 0);
        CHECK(a.failureWindow == std::chrono::seconds(30));
        CHECK(a.blockDuration == std::chrono::seconds(3600));
        CHECK(a.summaryInterval == std::chrono::seconds(60));
    }

    SECTION("out-of-range values name the leaf")
    {
        for (const auto* body : { R"("per-source-burst": 0)", R"("failure-window": 0)", R"("summary-interval": 0)",
                 R"("per-source-rate": "-1")", R"("block-duration": 0)", R"("max-handshakes": 2000000)" }) {
            INFO(body);
            TempFile f(std::string(R"({"callhome-config:callhome": {"admission": {)") + body + "}}}");
            std::string leafName = std::string(body).substr(1, std::string(body).find('"', 1) - 1);
            CHECK_THROWS_WITH(load(f.path.string(), {}), Catch::Contains("admission") && Catch::Contains(leafName));
        }
    }
}

TEST_CASE("pending caps, event retention and the inventory group")
{
    SECTION("defaults")
    {
        auto c = load(std::nullopt, {});
        CHECK(c.admission.maxPending == 10'000);
        CHECK(c.admission.maxPendingPerSource == 100);
        CHECK(c.retention.eventMaxAge == std::chrono::days(90));
        CHECK(c.retention.eventMaxRows == 0);
        CHECK_FALSE(c.inventoryGroup);
    }

    SECTION("a file sets them")
    {
        TempFile f(R"({"callhome-config:callhome": {"inventory-group": "netops",
            "admission": {"max-pending": 0, "max-pending-per-source": 5},
            "retention": {"event-max-age": 0, "event-max-rows": "1000000"}}})");
        auto c = load(f.path.string(), {});
        CHECK(c.admission.maxPending == 0);
        CHECK(c.admission.maxPendingPerSource == 5);
        CHECK(c.retention.eventMaxAge == std::chrono::days(0));
        CHECK(c.retention.eventMaxRows == 1'000'000);
        CHECK(c.inventoryGroup == "netops");
    }

    SECTION("out of range")
    {
        TempFile f(R"({"callhome-config:callhome": {"retention": {"event-max-age": 40000}}})");
        CHECK_THROWS_WITH(load(f.path.string(), {}), Catch::Contains("event-max-age"));
    }
}

TEST_CASE("log levels: a default and per-subsystem levels, defaults to info")
{
    auto defaults = load(std::nullopt, {});
    CHECK(defaults.logLevels.all == spdlog::level::info);
    CHECK(defaults.logLevels.subsystems.empty());

    TempFile f(R"({"callhome-config:callhome": {"log": {"level": "warning",
        "subsystem": [{"name": "inventory", "level": "debug"}, {"name": "netconf", "level": "trace"}]}}})");
    auto c = load(f.path.string(), {});
    CHECK(c.logLevels.all == spdlog::level::warn);
    CHECK(c.logLevels.of("inventory") == spdlog::level::debug);
    CHECK(c.logLevels.of("netconf") == spdlog::level::trace);
    CHECK(c.logLevels.of("ssh") == spdlog::level::warn);
    CHECK(c.logLevels.toString() == "warning,inventory=debug,netconf=trace");

    // the command line (--log-level) goes on top, item by item
    callhome::log::Levels cli;
    callhome::log::parseLevels("netconf=info", cli);
    auto merged = c.logLevels.overriddenBy(cli);
    CHECK(merged.toString() == "warning,inventory=debug,netconf=info");
}

TEST_CASE("log levels: an unknown subsystem or level names the node")
{
    TempFile unknownSubsystem(
        R"({"callhome-config:callhome": {"log": {"subsystem": [{"name": "database", "level": "debug"}]}}})");
    CHECK_THROWS_WITH(load(unknownSubsystem.path.string(), {}),
        Catch::Contains(unknownSubsystem.path.string()) && Catch::Contains("log/subsystem"));
    TempFile badLevel(R"({"callhome-config:callhome": {"log": {"level": "verbose"}}})");
    CHECK_THROWS_WITH(load(badLevel.path.string(), {}), Catch::Contains("log/level"));
    TempFile noLevel(R"({"callhome-config:callhome": {"log": {"subsystem": [{"name": "ssh"}]}}})");
    CHECK_THROWS_AS(load(noLevel.path.string(), {}), ConfigError);
}

TEST_CASE("restartNeeded: what a reload cannot apply")
{
    TempFile base(R"({"callhome-config:callhome": {"listen": [{"name": "a", "address": "127.0.0.1", "port": 14334}],
        "ssh": {"user": "admin"}, "limits": {"event-loops": 2}}})");
    auto running = load(base.path.string(), {});
    CHECK(restartNeeded(running, running).empty());

    // live: endpoints, credentials, timeouts, message size, admission rates, log levels
    TempFile live(R"({"callhome-config:callhome": {
        "listen": [{"name": "a", "address": "127.0.0.1", "port": 14334}, {"name": "b", "address": "::1", "port": 0}],
        "ssh": {"user": "root", "password": "x"}, "limits": {"event-loops": 2, "max-message": 1048576},
        "timeouts": {"handshake": 3}, "admission": {"per-source-rate": "5"}, "log": {"level": "debug"}}})");
    CHECK(restartNeeded(running, load(live.path.string(), {})).empty());

    TempFile restart(R"({"callhome-config:callhome": {"listen": [{"name": "a", "address": "127.0.0.1", "port": 14334}],
        "state-dir": "/elsewhere", "ssh": {"user": "admin"}, "limits": {"event-loops": 4},
        "control": {"socket": "/run/other.sock"}, "admission": {"max-handshakes": 10}}})");
    CHECK(restartNeeded(running, load(restart.path.string(), {}))
        == std::vector<std::string> { "state-dir", "inventory", "ssh/key-file", "ssh/credentials-file",
            "limits/event-loops", "control", "admission/max-handshakes" });

    // a first TLS endpoint needs the TLS context built at start
    TempFile tls(R"({"callhome-config:callhome": {"listen": [{"name": "a", "address": "127.0.0.1", "port": 14334},
        {"name": "t", "transport": "tls", "address": "127.0.0.1", "port": 0}],
        "ssh": {"user": "admin"}, "limits": {"event-loops": 2}, "tls": {"trust-store": "/tmp/ts"}}})");
    CHECK(restartNeeded(running, load(tls.path.string(), {}))
        == std::vector<std::string> { "listen (a first tls endpoint)", "tls/trust-store" });
}

TEST_CASE("sessions/duplicate: replace by default, refuse when set; a reload applies it")
{
    auto defaults = load(std::nullopt, {});
    CHECK(defaults.duplicateSessions == DuplicateSessions::Replace);
    CHECK(defaults.autoApprove.empty()); // auto-approval is off by default
    TempFile f(R"({"callhome-config:callhome": {"sessions": {"duplicate": "refuse"}}})");
    auto c = load(f.path.string(), {});
    CHECK(c.duplicateSessions == DuplicateSessions::Refuse);
    CHECK(restartNeeded(defaults, c).empty());
    TempFile bad(R"({"callhome-config:callhome": {"sessions": {"duplicate": "both"}}})");
    CHECK_THROWS_WITH(load(bad.path.string(), {}), Catch::Contains("duplicate"));
}

TEST_CASE("admission/auto-approve rules are read in the file's order")
{
    TempFile f(R"({"callhome-config:callhome": {"admission": {"auto-approve": {"rule": [
        {"name": "lab", "source": ["10.1.0.0/16", "2001:db8:7::/48", "192.0.2.9"], "transport": "ssh",
         "name-prefix": "lab-", "ssh-user": "admin"},
        {"name": "acme", "manufacturer": "acme", "name-prefix": "acme-"},
        {"name": "any-tls-here", "source": ["127.0.0.0/8"], "transport": "tls", "name-prefix": "t-"}]}}}})");
    auto c = load(f.path.string(), {});
    REQUIRE(c.autoApprove.size() == 3);
    const auto& lab = c.autoApprove[0];
    CHECK(lab.name == "lab");
    REQUIRE(lab.sources.size() == 3);
    CHECK(lab.sources[0].text == "10.1.0.0/16");
    CHECK(lab.sources[1].text == "2001:db8:7::/48");
    CHECK(lab.sources[2].text == "192.0.2.9/32");
    CHECK(lab.transport == Transport::Ssh);
    CHECK_FALSE(lab.manufacturer);
    CHECK(lab.namePrefix == "lab-");
    CHECK(lab.sshUser == "admin");
    CHECK(c.autoApprove[1].name == "acme");
    CHECK(c.autoApprove[1].manufacturer == "acme");
    CHECK(c.autoApprove[1].sources.empty());
    CHECK_FALSE(c.autoApprove[1].transport);
    CHECK(c.autoApprove[2].transport == Transport::Tls);
    // live on SIGHUP
    CHECK(restartNeeded(load(std::nullopt, {}), c).empty());
}

TEST_CASE("admission/auto-approve: errors name the rule and the leaf")
{
    auto message = [](const std::string& rules) {
        TempFile f(R"({"callhome-config:callhome": {"admission": {"auto-approve": {"rule": [)" + rules + "]}}}}");
        try {
            load(f.path.string(), {});
        } catch (const ConfigError& e) {
            return std::string(e.what());
        }
        FAIL("no error for " << rules);
        return std::string();
    };
    const std::string path = "/callhome-config:callhome/admission/auto-approve/rule[name='r']";
    CHECK_THAT(message(R"({"name": "r", "source": ["10.0.0.0/33"], "name-prefix": "x-"})"),
        Catch::Contains(path + "/source") && Catch::Contains("10.0.0.0/33") && Catch::Contains("at most /32"));
    CHECK_THAT(message(R"({"name": "r", "source": ["10.1.2.3/8"], "name-prefix": "x-"})"),
        Catch::Contains(path + "/source") && Catch::Contains("host bits"));
    CHECK_THAT(message(R"({"name": "r", "source": ["lab.example.com/24"], "name-prefix": "x-"})"),
        Catch::Contains(path + "/source") && Catch::Contains("not a numeric"));
    CHECK_THAT(message(R"({"name": "r", "source": ["10.0.0.0/"], "name-prefix": "x-"})"),
        Catch::Contains(path + "/source") && Catch::Contains("number of bits"));
    CHECK_THAT(message(R"({"name": "r", "source": ["2001:db8::/129"], "name-prefix": "x-"})"),
        Catch::Contains(path + "/source") && Catch::Contains("at most /128"));
    CHECK_THAT(message(R"({"name": "r", "transport": "ssh", "name-prefix": "x-"})"),
        Catch::Contains(path) && Catch::Contains("needs a source or a manufacturer"));
    CHECK_THAT(message(R"({"name": "r", "manufacturer": "acme", "transport": "ssh", "name-prefix": "x-"})"),
        Catch::Contains(path + "/manufacturer"));
    CHECK_THAT(message(R"({"name": "r", "manufacturer": "acme", "name-prefix": "x-", "ssh-user": "u"})"),
        Catch::Contains(path + "/ssh-user"));
    CHECK_THAT(message(R"({"name": "r", "source": ["10.0.0.0/8"], "name-prefix": "42"})"),
        Catch::Contains(path + "/name-prefix"));
    CHECK_THAT(message(R"({"name": "r", "source": ["10.0.0.0/8"]})"), Catch::Contains("name-prefix"));
    CHECK_THAT(
        message(R"({"name": "r", "source": ["10.0.0.0/8"], "name-prefix": "a b"})"), Catch::Contains("name-prefix"));
}

TEST_CASE("hooks: commands as argv, limits, defaults, live on reload")
{
    auto defaults = load(std::nullopt, {});
    CHECK(defaults.hooks.onPending.empty());
    CHECK(defaults.hooks.onConnect.empty());
    CHECK(defaults.hooks.onDisconnect.empty());
    CHECK(defaults.hooks.onRefused.empty());
    CHECK(defaults.hooks.maxConcurrent == 4);
    CHECK(defaults.hooks.maxQueued == 1024);
    CHECK(defaults.hooks.timeout == std::chrono::seconds(30));
    CHECK(defaults.hooks.maxOutput == 4096);

    TempFile file(R"({"callhome-config:callhome": {"hooks": {
        "on-pending": {"command": ["/usr/local/bin/notify", "--new", "pending device"]},
        "on-connect": {"command": ["provision"]},
        "on-disconnect": {"command": ["logger", "-t", "callhome"]},
        "on-refused": {"command": ["/bin/alert"]},
        "max-concurrent": 2, "max-queued": 10, "timeout": 5, "max-output": 0}}})");
    auto c = load(file.path.string(), {});
    CHECK(c.hooks.onPending == std::vector<std::string> { "/usr/local/bin/notify", "--new", "pending device" });
    CHECK(c.hooks.onConnect == std::vector<std::string> { "provision" });
    CHECK(c.hooks.onDisconnect == std::vector<std::string> { "logger", "-t", "callhome" });
    CHECK(c.hooks.onRefused == std::vector<std::string> { "/bin/alert" });
    CHECK(c.hooks.maxConcurrent == 2);
    CHECK(c.hooks.maxQueued == 10);
    CHECK(c.hooks.timeout == std::chrono::seconds(5));
    CHECK(c.hooks.maxOutput == 0);
    // hooks read the live configuration at each run: a reload applies them
    CHECK(restartNeeded(defaults, c).empty());

    TempFile zero(R"({"callhome-config:callhome": {"hooks": {"max-concurrent": 0}}})");
    CHECK_THROWS_WITH(load(zero.path.string(), {}), Catch::Contains("hooks/max-concurrent"));
    TempFile empty(R"({"callhome-config:callhome": {"hooks": {"on-connect": {"command": [""]}}}})");
    CHECK_THROWS_WITH(load(empty.path.string(), {}), Catch::Contains("hooks/on-connect/command"));
    TempFile shell(R"({"callhome-config:callhome": {"hooks": {"on-connect": "/bin/sh -c x"}}})");
    CHECK_THROWS_AS(load(shell.path.string(), {}), ConfigError);
}

TEST_CASE("control/forward: several instances forward to the holder; needs control/tcp; a restart applies it")
{
    auto defaults = load(std::nullopt, {});
    CHECK(!defaults.control.forward);
    TempFile f(R"({"callhome-config:callhome": {"control": {
        "tcp": {"address": "10.0.0.11", "certificate": "/c.pem", "key": "/k.pem", "client-ca": "/ca.pem"},
        "forward": {"certificate": "/fc.pem", "key": "/fk.pem", "ca": "/fca.pem"}}}})");
    auto c = load(f.path.string(), {});
    REQUIRE(c.control.forward);
    CHECK(c.control.forward->advertise == "10.0.0.11"); // default: control/tcp/address
    CHECK(c.control.forward->certificate == "/fc.pem");
    CHECK(c.control.forward->key == "/fk.pem");
    CHECK(c.control.forward->ca == "/fca.pem");
    CHECK(restartNeeded(defaults, c) == std::vector<std::string> { "control" });
    TempFile advertised(R"({"callhome-config:callhome": {"control": {
        "tcp": {"address": "::", "certificate": "/c.pem", "key": "/k.pem", "client-ca": "/ca.pem"},
        "forward": {"advertise": "2001:db8::11", "certificate": "/fc.pem", "key": "/fk.pem", "ca": "/fca.pem"}}}})");
    CHECK(load(advertised.path.string(), {}).control.forward->advertise == "2001:db8::11");

    TempFile noTcp(R"({"callhome-config:callhome": {"control": {
        "forward": {"certificate": "/fc.pem", "key": "/fk.pem", "ca": "/fca.pem"}}}})");
    CHECK_THROWS_WITH(load(noTcp.path.string(), {}), Catch::Contains("control/forward needs control/tcp"));
    TempFile noCa(R"({"callhome-config:callhome": {"control": {
        "tcp": {"certificate": "/c.pem", "key": "/k.pem", "client-ca": "/ca.pem"},
        "forward": {"certificate": "/fc.pem", "key": "/fk.pem"}}}})");
    CHECK_THROWS_WITH(load(noCa.path.string(), {}), Catch::Contains("ca"));
}

TEST_CASE("a PostgreSQL inventory: URL or libpq string, never with inventory-group, password never in messages")
{
    TempFile url(R"({"callhome-config:callhome": {"inventory": "postgresql://ch:hunter2@db.example.net/callhome"}})");
    CHECK(load(url.path.string(), {}).inventoryPath == "postgresql://ch:hunter2@db.example.net/callhome");
    TempFile keywords(R"({"callhome-config:callhome": {"inventory": "host=/run/postgresql dbname=callhome"}})");
    CHECK(load(keywords.path.string(), {}).inventoryPath == "host=/run/postgresql dbname=callhome");
    // --db wins over the file, as for a SQLite path
    CHECK(load(url.path.string(), Overrides { .inventoryPath = "dbname=other" }).inventoryPath == "dbname=other");

    TempFile grouped(R"({"callhome-config:callhome": {"inventory-group": "callhome-read",
        "inventory": "postgresql://ch:hunter2@db.example.net/callhome"}})");
    REQUIRE_THROWS_AS(load(grouped.path.string(), {}), ConfigError);
    REQUIRE_THROWS_WITH(load(grouped.path.string(), {}),
        Catch::Contains("inventory-group applies to a SQLite inventory file")
            && Catch::Contains("postgresql://ch:***@db.example.net/callhome") && !Catch::Contains("hunter2"));
    // the same group with --db naming a PostgreSQL database
    TempFile groupOnly(R"({"callhome-config:callhome": {"inventory-group": "callhome-read"}})");
    REQUIRE_THROWS_WITH(
        load(groupOnly.path.string(), Overrides { .inventoryPath = "host=/run/postgresql password=pw" }),
        Catch::Contains("inventory-group") && Catch::Contains("password=***") && !Catch::Contains("=pw"));
    // a SQLite file keeps its group
    CHECK(load(groupOnly.path.string(), {}).inventoryGroup == "callhome-read");
}
