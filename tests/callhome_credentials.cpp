// Per-device SSH credentials against real libnetconf2 devices calling home on loopback: a device's own password and
// key are used for it, the fleet-wide password reaches only devices whose record allows the fallback (checked in the
// devices' own auth logs), and no secret appears in callhomectl's output, the event log, the inventory file or
// callhomed's log.
#include "Binaries.h"
#include "CallhomeFixture.h"
#include "CliRun.h"
#include "common/Log.h"
#include "harness/HostKey.h"
#include "harness/Nc2Device.h"
#include "harness/UnixHttp.h"
#include "harness/Util.h"
#include "inventory/CredentialStore.h"
#include "server/SessionRegistry.h"
#include <catch2/catch.hpp>
#include <fstream>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <sys/stat.h>

using namespace callhome;
using namespace callhome::test;
using namespace std::chrono_literals;
using inventory::EventKind;

namespace {
const std::string kFleetPassword = "fleet-Secret-0b9c1e"; // test-only values, searched for in every output
const std::string kOwnPassword = "own-Secret-7f3a2d";

/** Every line callhomed's loggers write while it lives, in memory (the test looks for secrets in it). */
struct LogCapture {
    std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink
        = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(100000);
    LogCapture()
    {
        for (const char* name : log::Subsystems) {
            auto logger = log::get(name);
            logger->sinks().push_back(sink);
            logger->set_level(spdlog::level::debug);
        }
    }
    ~LogCapture()
    {
        for (const char* name : log::Subsystems) {
            auto& sinks = log::get(name)->sinks();
            sinks.erase(std::remove(sinks.begin(), sinks.end(), sink), sinks.end());
        }
    }
    std::string text() const
    {
        std::string out;
        for (const auto& line : sink->last_formatted()) {
            out += line;
        }
        return out;
    }
};

std::string writeSecretFile(const TempDir& dir, const std::string& name, const std::string& text, mode_t mode)
{
    auto path = dir.path() + "/" + name;
    {
        std::ofstream out(path);
        out << text;
    }
    REQUIRE(::chmod(path.c_str(), mode) == 0);
    return path;
}

mode_t modeOf(const std::string& path)
{
    struct stat st { };
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

int passwordAttempts(const Nc2Device& device)
{
    return countLinesContaining(device.authLogPath(), "password ");
}

void checkNoSecret(const std::string& where, const std::string& text)
{
    INFO(where);
    CHECK_THAT(text, !Catch::Contains(kFleetPassword));
    CHECK_THAT(text, !Catch::Contains(kOwnPassword));
    CHECK_THAT(text, !Catch::Contains("PRIVATE KEY"));
}
} // namespace

TEST_CASE("per-device password used; the fleet-wide password only for a device that allows the fallback")
{
    LogCapture logs;
    CallhomeFixture f;
    f.config.sshPassword = kFleetPassword;
    f.stop();
    f.start();
    const auto state = f.config.stateDir;
    const auto credentialsDb = f.config.credentialsPath;
    CHECK(modeOf(credentialsDb) == 0600);

    // A accepts only its own password; B only the fleet-wide one. Neither accepts the station key.
    Nc2Device a(f.dir, "127.0.0.1", f.portV4(),
        Nc2DeviceOptions {
            .hostKeyType = KeyType::Ed25519, .user = "admin", .password = kOwnPassword, .retryMs = 200 });
    Nc2Device b(f.dir, "127.0.0.1", f.portV4(),
        Nc2DeviceOptions {
            .hostKeyType = KeyType::Ecdsa, .user = "admin", .password = kFleetPassword, .retryMs = 200 });
    auto da = f.waitForDevice(a.hostKeyFingerprint());
    auto db = f.waitForDevice(b.hostKeyFingerprint());

    // A password file others can read is refused, and nothing changes.
    auto loose = writeSecretFile(f.dir, "loose-password", kOwnPassword + "\n", 0644);
    auto refused = ctl({ "--state-dir", state, "approve", std::to_string(da.id), "--name", "dev-a", "--user", "admin",
        "--password-file", loose });
    requireOneLineError(refused, "permissions 0644");
    CHECK(f.inventory().findById(da.id)->state == inventory::DeviceState::Pending);

    auto passwordFile = writeSecretFile(f.dir, "a-password", kOwnPassword + "\n", 0600);
    auto approvedA = ctl({ "--state-dir", state, "approve", std::to_string(da.id), "--name", "dev-a", "--user", "admin",
        "--password-file", passwordFile });
    INFO(approvedA.err);
    REQUIRE(approvedA.code == 0);
    CHECK_THAT(approvedA.out, Catch::Contains("password set"));
    auto approvedB
        = ctl({ "--state-dir", state, "approve", std::to_string(db.id), "--name", "dev-b", "--user", "admin" });
    REQUIRE(approvedB.code == 0);

    f.waitForSessions(1);
    f.waitConnected(da.id);
    CHECK_THAT(readFile(a.authLogPath()), Catch::Contains("password admin accepted"));
    // Its own password went first and worked: the fleet-wide one was never needed, nor sent.
    CHECK(passwordAttempts(a) == 1);
    waitFor([&] { return logs.text().find("with the device password") != std::string::npos; }, 10s,
        "the log says which credential worked");

    // B refuses the station key twice (two call homes); it was never offered a password: no fallback.
    f.waitForEvent(EventKind::HandshakeFailed, db.id, 2);
    CHECK(passwordAttempts(b) == 0);
    CHECK_THAT(readFile(b.authLogPath()), Catch::Contains("publickey admin rejected"));
    CHECK_FALSE(f.inventory().findById(db.id)->connected);
    auto failures = f.eventsOf(EventKind::HandshakeFailed, db.id);
    CHECK_THAT(failures.back().detail, Catch::Contains("--password-fallback yes"));

    // With the fallback allowed, the same device gets in with the fleet-wide password.
    auto fallback = ctl({ "--state-dir", state, "credentials", "dev-b", "--password-fallback", "yes" });
    INFO(fallback.err);
    REQUIRE(fallback.code == 0);
    CHECK_THAT(fallback.out, Catch::Contains("password fallback yes"));
    f.waitForSessions(2);
    CHECK_THAT(readFile(b.authLogPath()), Catch::Contains("password admin accepted"));
    CHECK(f.eventsOf(EventKind::CredentialsChanged, db.id).size() == 1);

    // What callhomectl shows says "set", never the secret.
    auto shown = ctl({ "--state-dir", state, "show", "dev-a", "--json" });
    REQUIRE(shown.code == 0);
    CHECK_THAT(shown.out, Catch::Contains("\"ssh_password\": \"set\""));
    CHECK_THAT(shown.out, Catch::Contains("\"password_fallback\": false"));
    checkNoSecret("show --json", shown.out);
    auto table = ctl({ "--state-dir", state, "show", "dev-a" });
    REQUIRE(table.code == 0);
    CHECK_THAT(table.out, Catch::Contains("SSH password:    set"));
    checkNoSecret("show", table.out);
    auto listing = ctl({ "--state-dir", state, "devices", "--json" });
    REQUIRE(listing.code == 0);
    checkNoSecret("devices --json", listing.out);
    auto events = ctl({ "--state-dir", state, "events", "--json" });
    REQUIRE(events.code == 0);
    CHECK_THAT(events.out, Catch::Contains("credentials-changed"));
    checkNoSecret("events --json", events.out);
    // Nor in the inventory file (which may be shared with a group), nor in callhomed's log.
    checkNoSecret("inventory.db", readFile(f.config.inventoryPath));
    checkNoSecret("callhomed's log", logs.text());
    // The secret is in the credentials store, which stays 0600.
    CHECK(modeOf(credentialsDb) == 0600);
    CHECK_THAT(readFile(credentialsDb), Catch::Contains(kOwnPassword));
    f.stop();
    CHECK(modeOf(credentialsDb) == 0600);
}

TEST_CASE("a device's own private key replaces the station key; a wrong own password never leads to the fleet's")
{
    LogCapture logs;
    CallhomeFixture f;
    f.config.sshPassword = kFleetPassword;
    f.stop();
    f.start();
    const auto state = f.config.stateDir;
    auto clientKey = generateHostKey(f.dir.path(), KeyType::Ed25519, "device-a-client-key");
    REQUIRE(::chmod(clientKey.privateKeyPath.c_str(), 0600) == 0);

    SECTION("own key")
    {
        Nc2Device device(f.dir, "127.0.0.1", f.portV4(),
            Nc2DeviceOptions { .hostKeyType = KeyType::Ed25519,
                .user = "admin",
                .authorizedKeyLine = clientKey.publicKeyLine,
                .retryMs = 200 });
        auto d = f.waitForDevice(device.hostKeyFingerprint());
        // Not a key: refused before anything changes.
        auto notKey = writeSecretFile(f.dir, "not-a-key", "hello\n", 0600);
        requireOneLineError(ctl({ "--state-dir", state, "credentials", std::to_string(d.id), "--key-file", notKey }),
            "not a usable unencrypted SSH private key");
        auto set = ctl({ "--state-dir", state, "credentials", std::to_string(d.id), "--user", "admin", "--key-file",
            clientKey.privateKeyPath });
        INFO(set.err);
        REQUIRE(set.code == 0);
        CHECK_THAT(set.out, Catch::Contains("key its own"));
        checkNoSecret("credentials", set.out);
        REQUIRE(ctl({ "--state-dir", state, "approve", std::to_string(d.id), "--name", "dev-key" }).code == 0);
        f.waitForSessions(1);
        CHECK_THAT(readFile(device.authLogPath()), Catch::Contains("publickey admin accepted"));
        CHECK(passwordAttempts(device) == 0);
        waitFor([&] { return logs.text().find("with the device key") != std::string::npos; }, 10s,
            "the log says the device key worked");
        checkNoSecret("callhomed's log", logs.text());

        // Cleared: the station key again (which this device refuses).
        auto cleared = ctl({ "--state-dir", state, "credentials", "dev-key", "--clear-key", "--json" });
        REQUIRE(cleared.code == 0);
        CHECK_THAT(cleared.out, Catch::Contains("\"ssh_key\": \"none\""));
        inventory::CredentialStore store(f.config.credentialsPath, inventory::CredentialStore::Mode::ExistingOnly);
        CHECK_FALSE(store.get(d.id));
    }
    SECTION("wrong own password, no fallback")
    {
        Nc2Device device(f.dir, "127.0.0.1", f.portV4(),
            Nc2DeviceOptions {
                .hostKeyType = KeyType::Ecdsa, .user = "admin", .password = kFleetPassword, .retryMs = 200 });
        auto d = f.waitForDevice(device.hostKeyFingerprint());
        // The real callhomectl, the password on its stdin (a pipe); an empty one is refused and nothing approved.
        auto approveWithStdin = [&](const std::string& password, const std::string& name) {
            Process p({ .argv = { "/bin/sh", "-c",
                            "printf '%s' \"$PW\" | exec \"$CTL\" --state-dir \"$STATE\" approve " + std::to_string(d.id)
                                + " --name " + name + " --user admin --password-stdin" },
                .stdoutPath = f.dir.path() + "/approve-" + name + ".out",
                .stderrPath = f.dir.path() + "/approve-" + name + ".err",
                .env = { { "PW", password }, { "CTL", kCallhomectl }, { "STATE", state } } });
            auto status = p.waitExit(30s);
            REQUIRE(status);
            return std::make_pair(*status, readFile(f.dir.path() + "/approve-" + name + ".err"));
        };
        auto [emptyStatus, emptyErr] = approveWithStdin("", "dev-empty");
        CHECK(emptyStatus != 0);
        CHECK_THAT(emptyErr, Catch::Contains("the password is empty"));
        CHECK(f.inventory().findById(d.id)->state == inventory::DeviceState::Pending);
        auto [status, err] = approveWithStdin(kOwnPassword, "dev-wrong");
        INFO(err);
        REQUIRE(status == 0);
        CHECK(f.inventory().findById(d.id)->passwordSet);
        f.waitForEvent(EventKind::HandshakeFailed, d.id, 2);
        // One password per call home, its own (rejected); the fleet-wide one, which it would accept, never.
        CHECK(passwordAttempts(device) >= 2);
        CHECK(countLinesContaining(device.authLogPath(), "password admin accepted") == 0);
        CHECK(f.daemon->registry().size() == 0);
    }
}

TEST_CASE("credentials through the control API")
{
    CallhomeFixture f;
    f.startApi();
    Nc2Device device(f.dir, "127.0.0.1", f.portV4(),
        Nc2DeviceOptions {
            .hostKeyType = KeyType::Ed25519, .user = "admin", .password = kOwnPassword, .retryMs = 200 });
    auto d = f.waitForDevice(device.hostKeyFingerprint());
    f.inventory().approve(d.id, "dev-api", std::nullopt);

    auto post = [&](const std::string& body) {
        return httpRequest(
            f.apiSocket(), { .method = "POST", .target = "/v1/devices/dev-api/credentials", .body = body });
    };
    CHECK(post(R"({"password": 7})").status == 400);
    CHECK(post(R"({"pasword": "x"})").status == 400);
    auto r = post(R"({"user": "admin", "password": ")" + kOwnPassword + R"(", "password_fallback": false})");
    INFO(r.body);
    REQUIRE(r.status == 200);
    CHECK_THAT(r.body, Catch::Contains("\"ssh_password\":\"set\""));
    checkNoSecret("API answer", r.body);
    f.waitForSessions(1);
    CHECK_THAT(readFile(device.authLogPath()), Catch::Contains("password admin accepted"));
    auto shown = httpRequest(f.apiSocket(), { .target = "/v1/devices/dev-api" });
    checkNoSecret("GET device", shown.body);

    // Forgotten through the API: callhomed deletes the device's secrets at its next start.
    REQUIRE(
        inventory::CredentialStore(f.config.credentialsPath, inventory::CredentialStore::Mode::ExistingOnly).get(d.id));
    auto forgot = httpRequest(f.apiSocket(), { .method = "POST", .target = "/v1/devices/dev-api/forget" });
    REQUIRE(forgot.status == 200);
    device.stop();
    f.stop();
    f.start();
    CHECK_FALSE(
        inventory::CredentialStore(f.config.credentialsPath, inventory::CredentialStore::Mode::ExistingOnly).get(d.id));
}
