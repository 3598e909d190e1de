// The real binary: SIGTERM makes callhomed exit 0 within 5 s while hostile peers are connected (a device that never
// answers <close-session>, one with a zero channel window, one sending half a message, one reading nothing, silent
// sockets) and a real OpenSSH device holds a session. Operators approve with callhomectl, as in callhome_e2e.
#include "Binaries.h"
#include "harness/HostilePeer.h"
#include "harness/Process.h"
#include "harness/SshdDevice.h"
#include "harness/TempDir.h"
#include "harness/Util.h"
#include <catch2/catch.hpp>
#include <csignal>
#include <iostream>
#include <nlohmann/json.hpp>
#include <regex>

using namespace callhome::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {
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

/** Waits for the device with this fingerprint to be listed (pending), then approves it. */
void approve(const TempDir& dir, const std::string& fingerprint, const std::string& name, const std::string& user)
{
    waitFor([&] { return show(dir, fingerprint).value("state", "") == "pending"; }, 10s, name + " pending");
    auto r = ctl(dir, { "approve", fingerprint, "--name", name, "--user", user });
    INFO(r.err);
    REQUIRE(r.status == 0);
}
} // namespace

TEST_CASE("SIGTERM: callhomed exits 0 within 5 s while hostile peers are connected")
{
    ignoreSigpipe();
    TempDir dir("callhome-hostile-sigterm");
    const auto log = dir.file("callhomed.log");
    Process daemon({ .argv
        = { kCallhomed, "--state-dir", dir.file("state"), "--listen", "ssh:127.0.0.1:0", "--log-level", "debug" },
        .stdoutPath = dir.file("callhomed.out"),
        .stderrPath = log });
    const uint16_t port = waitListening(daemon, log);

    auto key = ctl(dir, { "station-key" });
    REQUIRE(key.status == 0);
    SshdDevice real(dir, KeyType::Ed25519, key.out);
    real.callHome("127.0.0.1", port).waitExit(10s);
    approve(dir, real.hostKeyFingerprint(), "real", real.user());
    real.callHome("127.0.0.1", port);
    waitFor([&] { return show(dir, "real").value("connected", false); }, 30s, "real device connected");

    struct Hostile {
        std::string mode;
        std::string marker;
    };
    const std::vector<Hostile> modes { { "no-close-reply", "hello-received" }, { "zero-window", "window-zero" },
        { "half-message", "partial-sent" }, { "never-read", "never-reading" } };
    std::vector<std::unique_ptr<HostilePeer>> peers;
    std::vector<HostileAttempt*> attempts;
    for (size_t i = 0; i < modes.size(); ++i) {
        auto& peer = *peers.emplace_back(std::make_unique<HostilePeer>(
            dir, HostileKind::Ssh, HostilePeerOptions { .source = "127.3.0." + std::to_string(i + 1) }));
        peer.callHome(modes[i].mode, "127.0.0.1", port).waitExit(10s);
        approve(dir, peer.hostKeyFingerprint(), "hostile-" + modes[i].mode, "netconf");
        attempts.push_back(&peer.callHome(modes[i].mode, "127.0.0.1", port));
    }
    for (size_t i = 0; i < modes.size(); ++i) {
        attempts[i]->waitFor(modes[i].marker, 15s);
    }
    HostilePeer silent(dir, HostileKind::Tcp, { .source = "127.3.1.1" });
    silent.callHome("silent", "127.0.0.1", port, { "--count", "16", "--spread", "16" }).waitFor("all-connected", 10s);

    const auto start = Clock::now();
    ::kill(daemon.pid(), SIGTERM);
    auto status = daemon.waitExit(5s);
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
    std::cerr << "callhomed after SIGTERM: " << (status ? "exited " + std::to_string(*status) : "STILL running")
              << " after " << took << " ms\n";
    REQUIRE(status.has_value());
    CHECK(*status == 0);
    CHECK(show(dir, "real")["connected"] == false); // recorded disconnected on the way out
}
