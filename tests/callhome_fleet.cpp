// The station under inventory pressure (issue 8): another process holding the inventory's write lock does not stop
// approved devices from getting their sessions (their records follow once it lets go), and a kill -9 while the
// daemon's writer is busy loses no operator decision. Devices are callhome-sim's (real SSH + NETCONF); the lock is
// held by the real `sqlite3` shell; decisions are made by the real callhomectl.
#include "Binaries.h"
#include "CallhomeFixture.h"
#include "harness/Util.h"
#include "identity/IdentityIndex.h"
#include "inventory/Writer.h"
#include "server/SessionRegistry.h"
#include "sim/Simulator.h"
#include <catch2/catch.hpp>
#include <csignal>
#include <fcntl.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace callhome;
using namespace callhome::test;
using namespace std::chrono_literals;
using inventory::DeviceState;

namespace {
sim::Options simOptions(uint16_t port, size_t count, const std::string& keys, const std::string& sourceBase)
{
    sim::Options o;
    o.stationAddress = "127.0.0.1";
    o.stationPort = port;
    o.count = count;
    o.threads = 2;
    o.timeout = 10s;
    o.sshKeysDir = keys;
    o.sourceBase = sourceBase;
    return o;
}

std::vector<std::string> fingerprintsIn(const std::string& keysDir)
{
    std::ifstream list(keysDir + "/fingerprints.txt");
    std::vector<std::string> out;
    for (std::string fp, name; list >> fp >> name;) {
        out.push_back(fp);
    }
    return out;
}

/** Devices of `fingerprints` shown connected, read as callhomectl reads them: a connection of its own. */
size_t shownConnected(const std::string& db, const std::vector<std::string>& fingerprints)
{
    auto reader = inventory::openSqliteExisting(db);
    std::set<std::string> wanted(fingerprints.begin(), fingerprints.end());
    size_t n = 0;
    reader->forEachDevice(
        { .connected = true }, [&](const inventory::Device& d) { n += wanted.contains(d.fingerprint); });
    return n;
}

/** `sqlite3 DB` holding BEGIN IMMEDIATE until release(): another process with the write lock. */
class ForeignLock {
public:
    ForeignLock(const TempDir& dir, const std::string& db)
    {
        int in[2];
        REQUIRE(::pipe2(in, O_CLOEXEC) == 0);
        m_stdin = in[1];
        m_out = dir.file("sqlite3.out");
        // stdin is the pipe: the shell runs what we write and waits for more
        pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::dup2(in[0], 0);
            int out = ::open(m_out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            ::dup2(out, 1);
            ::dup2(out, 2);
            ::execlp("sqlite3", "sqlite3", "-batch", db.c_str(), static_cast<char*>(nullptr));
            _exit(127);
        }
        ::close(in[0]);
        m_pid = pid;
        send("PRAGMA busy_timeout = 10000;\nBEGIN IMMEDIATE;\nSELECT 'locked';\n");
        waitFor([&] { return readFileIfExists(m_out).find("locked") != std::string::npos; }, 10s,
            "sqlite3 holding the write lock");
        m_since = std::chrono::steady_clock::now();
    }
    ~ForeignLock() { release(); }
    std::chrono::steady_clock::duration held() const { return std::chrono::steady_clock::now() - m_since; }
    void release()
    {
        if (m_pid < 0) {
            return;
        }
        send("ROLLBACK;\n.quit\n");
        ::close(m_stdin);
        int status = 0;
        waitFor([&] { return ::waitpid(m_pid, &status, WNOHANG) == m_pid; }, 10s, "sqlite3 to exit");
        m_pid = -1;
    }

private:
    void send(const std::string& text)
    {
        REQUIRE(::write(m_stdin, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    }
    pid_t m_pid = -1;
    int m_stdin = -1;
    std::string m_out;
    std::chrono::steady_clock::time_point m_since;
};
} // namespace

TEST_CASE("a foreign write lock does not stop approved devices; their records follow when it is released")
{
    CallhomeFixture f;
    constexpr size_t n = 10;
    const auto keysA = f.dir.file("keys-a"), keysB = f.dir.file("keys-b");
    // First contacts (pending), then approved, as an operator would.
    for (const auto& [keys, base] : { std::pair(keysA, "127.3.0.1"), std::pair(keysB, "127.4.0.1") }) {
        auto o = simOptions(f.portV4(), n, keys, base);
        o.mode = sim::Mode::Once;
        o.duration = 15s;
        sim::Simulator(o).run();
    }
    auto a = fingerprintsIn(keysA), b = fingerprintsIn(keysB);
    REQUIRE(a.size() == n);
    REQUIRE(b.size() == n);
    int named = 0;
    for (const auto* list : { &a, &b }) {
        for (const auto& fp : *list) {
            f.inventory().approve(f.waitForDevice(fp).id, "fleet-" + std::to_string(++named), std::nullopt);
        }
    }
    // The daemon's index has followed the approvals (the change log).
    waitFor(
        [&] {
            for (const auto* list : { &a, &b }) {
                for (const auto& fp : *list) {
                    auto d = f.daemon->identityIndex().byFingerprint(fp);
                    if (!d || d->state != DeviceState::Approved) {
                        return false;
                    }
                }
            }
            return true;
        },
        10s, "the approvals in the daemon's index");

    // Group A holds sessions before the lock; their records are written.
    auto oa = simOptions(f.portV4(), n, keysA, "127.3.0.1");
    oa.mode = sim::Mode::Hold;
    oa.duration = 60s;
    sim::Simulator simA(oa);
    std::thread runA([&] { simA.run(); });
    f.waitForSessions(n);
    waitFor([&] { return shownConnected(f.config.inventoryPath, a) == n; }, 10s, "group A shown connected");

    {
        ForeignLock lock(f.dir, f.config.inventoryPath);
        // Group B calls while the lock is held: admitted from memory, sessions up, nothing written yet.
        auto ob = simOptions(f.portV4(), n, keysB, "127.4.0.1");
        ob.mode = sim::Mode::Hold;
        ob.duration = 60s;
        sim::Simulator simB(ob);
        std::thread runB([&] { simB.run(); });
        f.waitForSessions(2 * n, false); // the lock holds their records back: the registry only
        CHECK(shownConnected(f.config.inventoryPath, b) == 0); // their records wait in the writer's queue
        CHECK(f.daemon->writer().stats().queued + (f.daemon->writer().stats().waiting ? 1 : 0) > 0);
        // Held well beyond the writer's busy timeout (5 s), within the heartbeat window (15 s): group A, whose
        // heartbeat cannot be written meanwhile, is still shown connected.
        while (lock.held() < 12s) {
            std::this_thread::sleep_for(100ms); // the lock's duration is the point of the test, not a wait for a state
        }
        CHECK(shownConnected(f.config.inventoryPath, a) == n);
        CHECK(f.daemon->registry().size() == 2 * n); // nobody dropped
        lock.release();
        waitFor([&] { return shownConnected(f.config.inventoryPath, b) == n; }, 15s, "group B shown connected");
        CHECK(shownConnected(f.config.inventoryPath, a) == n);
        CHECK(f.daemon->writer().stats().dropped == 0);
        simB.stop();
        runB.join();
    }
    simA.stop();
    runA.join();
    REQUIRE(f.daemon->writer().flush(10s));
    CHECK(f.eventsOf(inventory::EventKind::SessionOpened).size() >= 2 * n);
}

TEST_CASE("kill -9 while the writer is busy keeps every approval callhomectl reported")
{
    TempDir dir("callhome-kill9");
    const auto state = dir.file("state");
    auto log = dir.file("callhomed.log");
    Process daemon(
        ProcessSpec { { kCallhomed, "--state-dir", state, "--listen", "ssh:127.0.0.1:0", "--log-level", "info" },
            dir.file("callhomed.out"), log });
    const uint16_t port = waitListening(daemon, log);

    // Devices keep calling (new keys: a contact, a pending device and an event each) while an operator approves.
    constexpr size_t n = 60;
    auto o = simOptions(port, n, dir.file("keys"), "127.5.0.1");
    o.mode = sim::Mode::Once;
    o.duration = 30s;
    sim::Simulator(o).run();
    auto fps = fingerprintsIn(dir.file("keys"));
    REQUIRE(fps.size() == n);
    sim::Options churn = simOptions(port, 200, dir.file("churn"), "127.6.0.1");
    churn.mode = sim::Mode::Once;
    churn.duration = 30s;
    sim::Simulator churner(churn);
    std::thread churnRun([&] { churner.run(); });

    std::vector<std::string> approved;
    for (size_t i = 0; i < fps.size() && approved.size() < 40; ++i) {
        auto r = runCommand(
            dir, { kCallhomectl, "--state-dir", state, "approve", fps[i], "--name", "k9-" + std::to_string(i) });
        if (r.status == 0) {
            approved.push_back(fps[i]);
        }
        if (approved.size() == 20) {
            ::kill(daemon.pid(), SIGKILL); // mid-stream: the writer has records queued and batches in flight
        }
    }
    churner.stop();
    churnRun.join();
    daemon.waitExit(10s);
    REQUIRE(approved.size() >= 30); // callhomectl needs no daemon: approvals go on after the kill
    auto inv = inventory::openSqlite(state + "/inventory.db"); // as the restarted daemon opens it: integrity checked
    for (const auto& fp : approved) {
        auto d = inv->findByFingerprint(fp);
        REQUIRE(d);
        CHECK(d->state == DeviceState::Approved);
    }
    CHECK(inv->checkIntegrity().empty());
}
