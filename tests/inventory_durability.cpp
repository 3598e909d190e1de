// Concurrency with readers and other writers, change notification, and crash safety under kill -9.
#include "RawSqlite.h"
#include "ScratchDir.h"
#include "inventory/Inventory.h"
#include "inventory/SqliteInventory.h"
#include <catch2/catch.hpp>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <set>
#include <sqlite3.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace callhome;
using namespace callhome::inventory;
using namespace std::chrono_literals;

using callhome::test::exec;
using callhome::test::raw;
using callhome::test::RawDb;
using callhome::test::ScratchDir;

namespace {

int64_t count(sqlite3* db, const std::string& sql)
{
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
    auto n = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return n;
}

std::string fingerprint(int n)
{
    return "SHA256:dev" + std::to_string(n) + "xAbCdEfGhIjKlMnOpQrStUvWxYz0123456789";
}

/** The name the crash child gives its n-th approved device. */
std::string nameOf(int n)
{
    return "dev-" + std::to_string(n);
}

/**
 * Child process body: approves devices one after another (with listener traffic in between) and writes each
 * committed approval's number to `fd`. Never returns.
 */
[[noreturn]] void crashChild(const std::string& path, int first, int fd)
{
    int status = 0;
    try {
        auto inv = openSqlite(path);
        inv->listenerStarted("crash-test", now());
        for (int n = first;; ++n) {
            auto contact = inv->recordContact(Transport::Ssh, fingerprint(n), "ssh-ed25519", "192.0.2.1", now());
            inv->addEvent({ .at = now(),
                .kind = EventKind::Pending,
                .deviceId = contact.device.id,
                .connectionId = "C" + std::to_string(n),
                .address = "192.0.2.1" });
            inv->approve(contact.device.id, nameOf(n), std::nullopt);
            inv->heartbeat("crash-test", now());
            // reported only once approve() has returned, i.e. committed
            auto line = std::to_string(n) + "\n";
            if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
                status = 3;
                break;
            }
        }
    } catch (...) {
        status = 2;
    }
    ::_exit(status);
}
} // namespace

TEST_CASE("writes continue while another connection holds a read transaction")
{
    ScratchDir dir;
    auto writer = openSqlite(dir.db());
    for (int i = 0; i < 5; ++i) {
        writer->recordContact(Transport::Ssh, fingerprint(i), "ssh-ed25519", "192.0.2.1", now());
    }

    auto reader = raw(dir.db());
    REQUIRE(exec(reader.get(), "BEGIN") == "");
    REQUIRE(count(reader.get(), "SELECT COUNT(*) FROM v_devices") == 5); // the read transaction now holds a snapshot

    auto start = std::chrono::steady_clock::now();
    for (int i = 5; i < 50; ++i) {
        auto d = writer->recordContact(Transport::Ssh, fingerprint(i), "ssh-ed25519", "192.0.2.1", now()).device;
        writer->approve(d.id, nameOf(i), std::nullopt);
        writer->addEvent({ .at = now(), .kind = EventKind::Accepted, .deviceId = d.id });
    }
    // no write waited for the reader (the busy timeout is seconds; this must take far less)
    REQUIRE(std::chrono::steady_clock::now() - start < BusyTimeout / 2);
    REQUIRE(writer->devices().size() == 50);
    REQUIRE(count(reader.get(), "SELECT COUNT(*) FROM devices") == 5); // still its snapshot

    REQUIRE(exec(reader.get(), "COMMIT") == "");
    REQUIRE(count(reader.get(), "SELECT COUNT(*) FROM devices") == 50);
    REQUIRE(count(reader.get(), "SELECT COUNT(*) FROM v_devices WHERE state = 'approved'") == 45);
}

TEST_CASE("changeCounter moves on own and other connections' commits")
{
    ScratchDir dir;
    auto daemon = openSqlite(dir.db());
    auto ctl = openSqliteExisting(dir.db());
    auto d = daemon->recordContact(Transport::Ssh, fingerprint(1), "ssh-ed25519", "192.0.2.1", now()).device;

    auto c0 = daemon->changeCounter();
    REQUIRE(daemon->changeCounter() == c0); // reading changes nothing
    daemon->devices();
    REQUIRE(daemon->changeCounter() == c0);

    ctl->approve(d.id, std::string("edge-1"), std::nullopt);
    auto c1 = daemon->changeCounter();
    REQUIRE(c1 != c0);
    REQUIRE(daemon->findById(d.id)->state == DeviceState::Approved);

    daemon->heartbeat("L1", now());
    auto c2 = daemon->changeCounter();
    REQUIRE(c2 != c1);

    auto ctlBefore = ctl->changeCounter();
    daemon->addEvent({ .at = now(), .kind = EventKind::Accepted, .deviceId = d.id });
    REQUIRE(ctl->changeCounter() != ctlBefore);

    // a failed operator action commits nothing
    auto c3 = daemon->changeCounter();
    REQUIRE_THROWS_AS(daemon->approve(d.id, std::nullopt, std::nullopt), UsageError);
    REQUIRE(daemon->changeCounter() == c3);
}

TEST_CASE("a writer blocked beyond the busy timeout gets a clear error")
{
    ScratchDir dir;
    auto inv = openSqlite(dir.db());
    auto d = inv->recordContact(Transport::Ssh, fingerprint(1), "ssh-ed25519", "192.0.2.1", now()).device;

    auto other = raw(dir.db());
    REQUIRE(exec(other.get(), "BEGIN IMMEDIATE") == "");
    auto start = std::chrono::steady_clock::now();
    REQUIRE_THROWS_WITH(inv->approve(d.id, std::string("edge-1"), std::nullopt),
        Catch::Contains("inventory is locked by another writer") && Catch::Contains("approving a device"));
    REQUIRE(std::chrono::steady_clock::now() - start >= BusyTimeout - 100ms);
    // reads still work meanwhile
    REQUIRE(inv->findById(d.id)->state == DeviceState::Pending);
    REQUIRE(exec(other.get(), "ROLLBACK") == "");
    // and the connection recovers once the lock is gone
    REQUIRE(inv->approve(d.id, std::string("edge-1"), std::nullopt).state == DeviceState::Approved);
}

TEST_CASE("kill -9 loses no reported approval and leaves a clean database")
{
    ScratchDir dir;
    const auto path = dir.db();
    std::set<int> reported;
    int next = 0;

    // Kill at different depths into the child's loop; each round adds to the same file.
    for (int round = 0; round < 10; ++round) {
        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        const int first = next;
        pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::close(fds[0]);
            crashChild(path, first, fds[1]);
        }
        ::close(fds[1]);

        // Wait (reading the pipe, which blocks until the child reports) for a round-dependent number of approvals,
        // then kill at once, so the child is somewhere inside its next iteration.
        const int killAfter = 1 + round * 7;
        int seen = 0;
        std::string buffer;
        bool killed = false;
        char chunk[256];
        for (;;) {
            auto n = ::read(fds[0], chunk, sizeof chunk);
            if (n <= 0) {
                break; // EOF: the child is dead (killed by us, or it failed)
            }
            buffer.append(chunk, static_cast<size_t>(n));
            for (auto pos = buffer.find('\n'); pos != std::string::npos; pos = buffer.find('\n')) {
                reported.insert(std::stoi(buffer.substr(0, pos)));
                buffer.erase(0, pos + 1);
                ++seen;
            }
            if (!killed && seen >= killAfter) {
                // Vary the moment within the iteration a little: spin for a round-dependent number of µs.
                auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(round * 100);
                while (std::chrono::steady_clock::now() < until) { }
                REQUIRE(::kill(pid, SIGKILL) == 0);
                killed = true;
            }
        }
        ::close(fds[0]);
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        INFO("round " << round << ": child status " << status);
        REQUIRE(WIFSIGNALED(status));
        REQUIRE(WTERMSIG(status) == SIGKILL);
        REQUIRE(seen >= killAfter);

        // Reopen as the restarted daemon would: open() runs quick_check and refuses a damaged file.
        auto inv = openSqlite(path);
        {
            auto db = raw(path);
            sqlite3_stmt* stmt = nullptr;
            REQUIRE(sqlite3_prepare_v2(db.get(), "PRAGMA integrity_check", -1, &stmt, nullptr) == SQLITE_OK);
            REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
            REQUIRE(std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0))) == "ok");
            sqlite3_finalize(stmt);
        }
        for (int n : reported) {
            INFO("approval " << n);
            auto d = inv->findByFingerprint(fingerprint(n));
            REQUIRE(d);
            REQUIRE(d->state == DeviceState::Approved);
            REQUIRE(d->name == nameOf(n));
        }
        // the next child starts after everything this one may have created, committed or not
        next = (reported.empty() ? 0 : *reported.rbegin()) + 10;
    }
    REQUIRE(reported.size() >= 10);
}
