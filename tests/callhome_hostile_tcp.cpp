// Isolation below SSH: silent sockets, connect/reset storms and garbage (tests/hostile/tcp_peers.py) against the real
// station in-process, with real OpenSSH sshd + netconfd devices using it at the same time; and the station's thread
// count against the number of hostile peers.
#include "callhome_hostile_scenario.h"
#include <catch2/catch.hpp>
#include <iostream>

using namespace callhome;
using namespace callhome::test;
using namespace callhome::test::hostile;

namespace {
constexpr int kSilent = 64;
}

TEST_CASE("the station's thread count does not grow with the number of hostile peers")
{
    CallhomeFixture f;
    // a few threads may come and go (a handshake loop waking, the writer): the same count give or take this
    constexpr size_t kSlack = 4;
    HostilePeer one(f.dir, HostileKind::Tcp, { .source = hostileSource(0) });
    auto& a = one.callHome("silent", "127.0.0.1", f.portV4(), { "--count", "1" });
    a.waitFor("all-connected", 10s);
    const auto withOne = maxThreadCount(1s);
    a.stop();

    HostilePeer many(f.dir, HostileKind::Tcp, { .source = hostileSource(10) });
    auto& b = many.callHome(
        "silent", "127.0.0.1", f.portV4(), { "--count", std::to_string(kSilent), "--spread", std::to_string(kSilent) });
    CHECK(b.waitFor("all-connected", 10s) == "all-connected " + std::to_string(kSilent));
    const auto withMany = maxThreadCount(1s);
    std::cerr << "threads: " << withOne << " with 1 silent peer, " << withMany << " with " << kSilent << "\n";
    CHECK(withMany <= withOne + kSlack);
}

TEST_CASE("silent sockets, a connect/reset storm and garbage do not hold up, disconnect or hide real devices")
{
    CallhomeFixture f;
    configureKeepalives(f);
    RealDevices real(f);
    std::vector<std::unique_ptr<HostilePeer>> peers;
    auto peer = [&](int source) -> HostilePeer& {
        return *peers.emplace_back(std::make_unique<HostilePeer>(
            f.dir, HostileKind::Tcp, HostilePeerOptions { .source = hostileSource(source) }));
    };
    SECTION("64 silent connections")
    {
        auto& a = peer(10).callHome("silent", "127.0.0.1", f.portV4(),
            { "--count", std::to_string(kSilent), "--spread", std::to_string(kSilent) });
        a.waitFor("all-connected", 10s);
        real.check(std::to_string(kSilent) + " silent");
    }
    SECTION("a connect/reset storm")
    {
        auto& a = peer(100).callHome(
            "reset-storm", "127.0.0.1", f.portV4(), { "--count", "0", "--rate", "500", "--spread", "16" });
        a.waitFor("resets 200", 10s);
        real.check("reset storm");
        CHECK(a.process().running()); // still storming throughout
    }
    SECTION("garbage from 8 peers")
    {
        std::vector<HostileAttempt*> attempts;
        for (int i = 0; i < 8; ++i) {
            attempts.push_back(&peer(200 + i).callHome("garbage", "127.0.0.1", f.portV4()));
        }
        for (auto* a : attempts) {
            a->waitFor("garbage-sent", 10s);
        }
        real.check("garbage");
    }
}
