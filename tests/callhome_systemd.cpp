// The real callhomed under a stand-in for systemd: NOTIFY_SOCKET is an AF_UNIX datagram socket this test reads.
// Readiness (READY=1 only once the inventory is writable, every endpoint accepts and the control API answers),
// STATUS=, the watchdog (WATCHDOG=1 fed by the event loops' heartbeat, and stopped by a stalled loop), and SIGHUP
// (RELOADING=1 / READY=1, log levels and a new manufacturer CA applied live while a real OpenSSH device keeps its
// session, a broken config file refused while the old one keeps running).
#include "Binaries.h"
#include "RawSqlite.h"
#include "common/UniqueFd.h"
#include "harness/DevPki.h"
#include "harness/SshdDevice.h"
#include "harness/StunnelDevice.h"
#include <arpa/inet.h>
#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <regex>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

using namespace callhome;
using namespace callhome::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {
/** The service manager's end of sd_notify: a bound AF_UNIX datagram socket. */
class NotifySocket {
public:
    explicit NotifySocket(std::string path)
        : m_path(std::move(path))
    {
        m_fd.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        REQUIRE(m_fd);
        sockaddr_un sa {};
        sa.sun_family = AF_UNIX;
        REQUIRE(m_path.size() < sizeof sa.sun_path);
        std::copy(m_path.begin(), m_path.end(), sa.sun_path);
        REQUIRE(::bind(m_fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    }
    const std::string& path() const noexcept { return m_path; }

    /** The next datagram, or nullopt when none arrives within `within`. */
    std::optional<std::string> receive(std::chrono::milliseconds within)
    {
        pollfd p { m_fd.get(), POLLIN, 0 };
        if (::poll(&p, 1, static_cast<int>(within.count())) <= 0) {
            return std::nullopt;
        }
        char buf[4096];
        auto n = ::recv(m_fd.get(), buf, sizeof buf, 0);
        REQUIRE(n >= 0);
        std::string message(buf, static_cast<size_t>(n));
        m_seen.push_back(message);
        return message;
    }

    /**
     * Reads datagrams until one has the line `assignment` ("READY=1"), failing after `deadline`; `each` sees every
     * datagram first (the matching one included).
     */
    std::string waitFor(const std::string& assignment, std::chrono::milliseconds deadline,
        const std::function<void(const std::string&)>& each = {})
    {
        auto end = Clock::now() + deadline;
        while (Clock::now() < end) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
            auto m = receive(std::max(left, 1ms));
            if (!m) {
                continue;
            }
            if (each) {
                each(*m);
            }
            if (hasLine(*m, assignment)) {
                return *m;
            }
        }
        FAIL("no " << assignment << " within " << deadline.count() << " ms; seen: " << seenText());
        return {};
    }

    /** Every datagram received so far, for failure messages. */
    std::string seenText() const
    {
        std::string out;
        for (const auto& s : m_seen) {
            out += "[" + s + "] ";
        }
        return out;
    }

    static bool hasLine(const std::string& message, const std::string& line)
    {
        size_t start = 0;
        while (start <= message.size()) {
            auto nl = message.find('\n', start);
            if (message.substr(start, nl == std::string::npos ? std::string::npos : nl - start) == line) {
                return true;
            }
            if (nl == std::string::npos) {
                return false;
            }
            start = nl + 1;
        }
        return false;
    }
    static bool hasPrefix(const std::string& message, const std::string& prefix)
    {
        return message.rfind(prefix, 0) == 0 || message.find("\n" + prefix) != std::string::npos;
    }

private:
    std::string m_path;
    UniqueFd m_fd;
    std::vector<std::string> m_seen;
};

/** True when a TCP connection to 127.0.0.1:port is accepted (the kernel completes it once the socket listens). */
bool accepts(uint16_t port, const std::string& address = "127.0.0.1")
{
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa {};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    REQUIRE(::inet_pton(AF_INET, address.c_str(), &sa.sin_addr) == 1);
    return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
}

/** The port of the "listening for call home on TRANSPORT:127.0.0.1:PORT" line in the log; 0 when absent. */
uint16_t listeningPort(const std::string& log, const std::string& transport, const std::string& address = "127.0.0.1")
{
    std::regex re("listening for call home on " + transport + ":"
        + std::regex_replace(address, std::regex(R"(\.)"), R"(\.)") + R"(:(\d+))");
    std::smatch m;
    auto text = readFileIfExists(log);
    std::string last;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it) {
        last = (*it)[1];
    }
    return last.empty() ? 0 : static_cast<uint16_t>(std::stoi(last));
}

CommandResult ctl(const TempDir& dir, std::vector<std::string> args)
{
    std::vector<std::string> argv { kCallhomectl, "--state-dir", dir.file("state") };
    argv.insert(argv.end(), args.begin(), args.end());
    return runCommand(dir, std::move(argv));
}

json show(const TempDir& dir, const std::string& device)
{
    auto r = ctl(dir, { "--json", "show", device });
    return r.status == 0 ? json::parse(r.out) : json::object();
}

/** callhomed as systemd runs it: NOTIFY_SOCKET (and WATCHDOG_USEC when given), logs in a file. */
std::unique_ptr<Process> startDaemon(const TempDir& dir, const NotifySocket& notify, std::vector<std::string> args,
    const std::string& log, std::optional<std::string> watchdogUsec = std::nullopt)
{
    std::vector<std::string> argv { kCallhomed, "--state-dir", dir.file("state") };
    argv.insert(argv.end(), args.begin(), args.end());
    std::map<std::string, std::string> env { { "NOTIFY_SOCKET", notify.path() } };
    if (watchdogUsec) {
        env["WATCHDOG_USEC"] = *watchdogUsec;
    }
    return std::make_unique<Process>(
        ProcessSpec { .argv = argv, .stdoutPath = log + ".out", .stderrPath = log, .env = env });
}
} // namespace

TEST_CASE("systemd readiness: READY=1 only once the inventory is writable, the port accepts and the API answers")
{
    TempDir dir("callhome-systemd-ready");
    NotifySocket notify(dir.file("notify"));
    const auto log = dir.file("callhomed.log");
    {
        auto daemon = startDaemon(dir, notify, { "--listen", "ssh:127.0.0.1:0" }, log);
        auto ready = notify.waitFor("READY=1", 20s, [&](const std::string& m) {
            if (NotifySocket::hasLine(m, "READY=1")) {
                // what READY promises, checked the moment it is read
                auto port = listeningPort(log, "ssh");
                REQUIRE(port != 0);
                CHECK(accepts(port));
                CHECK(std::filesystem::exists(dir.file("state/control.sock")));
            }
        });
        CHECK_THAT(ready, Catch::Contains("STATUS=0 sessions held, 0 devices pending, 0 handshakes in flight"));
        auto sessions = ctl(dir, { "sessions" }); // the control API answers
        INFO(sessions.err);
        CHECK(sessions.status == 0);
        // no watchdog asked for: no pings
        for (auto until = Clock::now() + 500ms; Clock::now() < until;) {
            if (auto m = notify.receive(50ms)) {
                CHECK_FALSE(NotifySocket::hasLine(*m, "WATCHDOG=1"));
            }
        }

        ::kill(daemon->pid(), SIGTERM);
        notify.waitFor("STOPPING=1", 10s);
        auto status = daemon->waitExit(10s);
        REQUIRE(status);
        CHECK(*status == 0);
    }

    // The inventory exists now. With a write lock held on it (as a long transaction of a script would), callhomed
    // cannot record its start: no READY=1 until the lock is gone.
    auto db = raw(dir.file("state/inventory.db"));
    REQUIRE(exec(db.get(), "BEGIN EXCLUSIVE") == "");
    auto daemon = startDaemon(dir, notify, { "--listen", "ssh:127.0.0.1:0" }, log + ".2");
    auto until = Clock::now() + 1500ms;
    while (Clock::now() < until) {
        auto m = notify.receive(100ms);
        REQUIRE(daemon->running());
        if (m) {
            INFO(*m);
            CHECK_FALSE(NotifySocket::hasLine(*m, "READY=1"));
        }
    }
    REQUIRE(exec(db.get(), "COMMIT") == "");
    notify.waitFor("READY=1", 10s, [&](const std::string& m) {
        if (NotifySocket::hasLine(m, "READY=1")) {
            auto port = listeningPort(log + ".2", "ssh");
            REQUIRE(port != 0);
            CHECK(accepts(port));
        }
    });
    CHECK(daemon->stop(10s) == 0);
}

TEST_CASE("systemd watchdog: WATCHDOG=1 while every event loop runs its heartbeat, none once one is stalled")
{
    TempDir dir("callhome-systemd-watchdog");
    NotifySocket notify(dir.file("notify"));
    const auto log = dir.file("callhomed.log");
    writeFile(dir.file("callhomed.json"), R"({"callhome-config:callhome": {"limits": {"event-loops": 2}}})", 0600);
    // 400 ms: a ping every 200 ms
    auto daemon = startDaemon(dir, notify,
        { "--config", dir.file("callhomed.json"), "--listen", "ssh:127.0.0.1:0", "--test-stall-loop-on-sigusr2" }, log,
        "400000");
    notify.waitFor("READY=1", 20s);
    for (int i = 0; i < 3; ++i) {
        notify.waitFor("WATCHDOG=1", 2s);
    }

    ::kill(daemon->pid(), SIGUSR2); // loop 0 blocks in a task from now on
    waitFor([&] { return readFileIfExists(log).find("ch-loop-0 did not run its heartbeat") != std::string::npos; }, 5s,
        "the watchdog noticing the stalled loop");
    while (notify.receive(0ms)) { } // pings sent before it noticed
    auto until = Clock::now() + 1200ms; // six ping intervals
    while (Clock::now() < until) {
        if (auto m = notify.receive(100ms)) {
            INFO(*m);
            CHECK_FALSE(NotifySocket::hasLine(*m, "WATCHDOG=1"));
        }
    }
    REQUIRE(daemon->running());
    ::kill(daemon->pid(), SIGTERM); // stop() releases the stalled loop
    auto status = daemon->waitExit(15s);
    REQUIRE(status);
    CHECK(*status == 0);
}

TEST_CASE("SIGHUP: RELOADING=1/READY=1; log levels and a new manufacturer apply live, a live session stays; a broken "
          "file is refused")
{
    ignoreSigpipe();
    TempDir dir("callhome-systemd-reload");
    DevPki pki(dir);
    NotifySocket notify(dir.file("notify"));
    const auto log = dir.file("callhomed.log");
    const auto configPath = dir.file("callhomed.json");
    auto writeConfig = [&](const std::string& logSection, const std::string& extraListen = "") {
        writeFile(configPath,
            R"({"callhome-config:callhome": {"listen": [
                {"name": "ssh", "address": "127.0.0.1", "port": 0},
                {"name": "tls", "transport": "tls", "address": "127.0.0.1", "port": 0})"
                + extraListen + R"(],
              "tls": {"trust-store": ")"
                + pki.trustStore() + R"("}, "log": )" + logSection + "}}",
            0600);
    };
    writeConfig(R"({"level": "info"})");
    auto daemon = startDaemon(dir, notify, { "--config", configPath }, log);
    notify.waitFor("READY=1", 20s);
    const auto sshPort = listeningPort(log, "ssh");
    const auto tlsPort = listeningPort(log, "tls");
    REQUIRE(sshPort != 0);
    REQUIRE(tlsPort != 0);

    // A real OpenSSH device holds a session across every reload below.
    auto key = ctl(dir, { "station-key" });
    REQUIRE(key.status == 0);
    SshdDevice ssh(dir, KeyType::Ed25519, key.out);
    ssh.callHome("127.0.0.1", sshPort).waitExit(10s);
    waitFor([&] { return show(dir, ssh.hostKeyFingerprint()).value("state", "") == "pending"; }, 10s, "ssh pending");
    REQUIRE(ctl(dir, { "approve", ssh.hostKeyFingerprint(), "--name", "live", "--user", ssh.user() }).status == 0);
    auto& session = ssh.callHome("127.0.0.1", sshPort);
    waitFor([&] { return show(dir, "live").value("connected", false); }, 30s, "the ssh device connected");
    notify.waitFor("STATUS=1 session held, 0 devices pending, 0 handshakes in flight", 10s);

    // A TLS device of a manufacturer the trust store does not have yet: refused, even though it is expected.
    auto cred = pki.device("other-ca-0007");
    REQUIRE(ctl(dir, { "expect", "--serial", "SN0007", "--manufacturer", "other", "--name", "r7" }).status == 0);
    StunnelDevice tls(dir, cred, StunnelDeviceOptions { .trustedCaPath = pki.stationCa() });
    tls.callHome("127.0.0.1", tlsPort).waitExit(10s);
    waitFor(
        [&] {
            return ctl(dir, { "events" }).out.find("does not lead to any configured manufacturer") != std::string::npos;
        },
        10s, "the TLS device refused");
    CHECK_FALSE(show(dir, "r7").value("connected", false));
    CHECK(readFileIfExists(log).find("accepted on") == std::string::npos); // per-connection debug lines are off

    // The manufacturer's CA, a debug level for the listener and one more endpoint; then SIGHUP.
    std::filesystem::create_directories(pki.trustStore() + "/manufacturers/other");
    std::filesystem::copy_file(pki.otherCa(), pki.trustStore() + "/manufacturers/other/ca.pem");
    writeConfig(R"({"level": "info", "subsystem": [{"name": "listener", "level": "debug"}]})",
        R"(, {"name": "extra", "address": "127.0.0.2", "port": 0})");
    ::kill(daemon->pid(), SIGHUP);
    auto reloading = notify.waitFor("RELOADING=1", 10s);
    CHECK(NotifySocket::hasPrefix(reloading, "MONOTONIC_USEC="));
    notify.waitFor("READY=1", 10s);
    auto text = readFileIfExists(log);
    CHECK_THAT(text, Catch::Contains("log levels now info,listener=debug"));
    CHECK_THAT(text, Catch::Contains("configuration reloaded: applied listen (+ssh:127.0.0.2:"));
    const auto extraPort = listeningPort(log, "ssh", "127.0.0.2");
    REQUIRE(extraPort != 0);

    tls.callHome("127.0.0.1", tlsPort);
    waitFor([&] { return show(dir, "r7").value("connected", false); }, 30s, "the TLS device of the new manufacturer");
    text = readFileIfExists(log);
    CHECK_THAT(text, Catch::Contains("listener: [C") && Catch::Contains("accepted on tls:127.0.0.1:")); // debug now
    // the SSH session was never dropped: still connected, opened once, its sshd still running
    CHECK(show(dir, "live").value("connected", false));
    CHECK(session.running());
    auto events = ctl(dir, { "--json", "events", "--device", "live" });
    REQUIRE(events.status == 0);
    INFO(events.out);
    auto opened = 0;
    const auto listed = json::parse(events.out);
    for (const auto& e : listed.at("events")) {
        opened += e.value("kind", "") == "session-opened";
        CHECK(e.value("kind", "") != "session-closed");
    }
    CHECK(opened == 1);

    // A broken file: refused in one line, the running configuration (levels, endpoints) stays.
    writeFile(configPath, R"({"callhome-config:callhome": {"listen": [{"name": "x", "port": "not a port"}]}})", 0600);
    ::kill(daemon->pid(), SIGHUP);
    notify.waitFor("RELOADING=1", 10s);
    notify.waitFor("READY=1", 10s);
    text = readFileIfExists(log);
    CHECK(countLinesContaining(log, "reload refused, the running configuration stays") == 1);
    CHECK_THAT(text, Catch::Contains("reload refused, the running configuration stays: " + configPath));
    CHECK(accepts(extraPort, "127.0.0.2"));
    // new devices still get in: a first-contact SSH device is recorded pending through the endpoint added above
    SshdDevice newcomer(dir, KeyType::Ecdsa, key.out);
    newcomer.callHome("127.0.0.2", extraPort).waitExit(10s);
    waitFor([&] { return show(dir, newcomer.hostKeyFingerprint()).value("state", "") == "pending"; }, 10s,
        "the new device pending");
    CHECK(countLinesContaining(log, "accepted on ssh:127.0.0.2:") >= 1); // listener=debug still in force
    CHECK(show(dir, "live").value("connected", false));

    // Removing the endpoint again closes it; the others stay.
    writeConfig(R"({"level": "info"})");
    ::kill(daemon->pid(), SIGHUP);
    notify.waitFor("READY=1", 10s);
    CHECK_FALSE(accepts(extraPort, "127.0.0.2"));
    CHECK(accepts(sshPort));
    CHECK(show(dir, "live").value("connected", false));

    ::kill(daemon->pid(), SIGTERM);
    auto status = daemon->waitExit(15s);
    REQUIRE(status);
    CHECK(*status == 0);
}
