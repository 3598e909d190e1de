// sessions/duplicate and the cloned-identity alert: two real OpenSSH devices with the same host key, calling home
// from different loopback source addresses while one of them holds a session.
#include "CallhomeFixture.h"
#include "harness/SshdDevice.h"
#include "harness/Util.h"
#include "server/SessionRegistry.h"
#include <catch2/catch.hpp>

using namespace callhome;
using namespace callhome::test;
using namespace std::chrono_literals;
using inventory::EventKind;

namespace {
/** Two devices with one host key (a clone, or a vendor-default key), the identity approved, `first` connected. */
struct Clones {
    SshdDevice first;
    SshdDevice second;
    inventory::Device device;
    Process* firstCall = nullptr;
    std::string firstConnection;

    explicit Clones(CallhomeFixture& f)
        : first(f.dir, KeyType::Ed25519, f.daemon->stationPublicKey())
        , second(f.dir, KeyType::Ed25519, f.daemon->stationPublicKey())
    {
        second.copyHostKeyFrom(first);
        REQUIRE(second.hostKeyFingerprint() == first.hostKeyFingerprint());
        REQUIRE(first.callHome("127.0.0.1", f.portV4(), "127.1.0.1").waitExit(10s).has_value());
        device = f.waitForDevice(first.hostKeyFingerprint());
        device = f.inventory().approve(device.id, "edge-1", first.user());
        firstCall = &first.callHome("127.0.0.1", f.portV4(), "127.1.0.1");
        f.waitForSessions(1);
        auto live = f.daemon->registry().find(device.id);
        REQUIRE(live);
        CHECK(live->address == "127.1.0.1");
        firstConnection = live->connectionId;
    }
};
} // namespace

TEST_CASE("duplicate session, replace (the default): the older session is closed, the second address raises the alert")
{
    CallhomeFixture f;
    REQUIRE(f.config.duplicateSessions == config::DuplicateSessions::Replace);
    Clones c(f);

    c.second.callHome("127.0.0.1", f.portV4(), "127.1.0.2");
    waitFor(
        [&] {
            auto live = f.daemon->registry().find(c.device.id);
            return live && live->connectionId != c.firstConnection;
        },
        10s, "the second connection's session held");
    auto held = f.daemon->registry().find(c.device.id);
    CHECK(held->address == "127.1.0.2");
    REQUIRE(c.firstCall->waitExit(10s).has_value()); // the first device's session was closed
    f.waitForSessions(1);
    CHECK(c.second.acceptedLogins() == 1);

    f.waitForEvent(EventKind::DuplicateSession, c.device.id);
    auto duplicate = f.eventsOf(EventKind::DuplicateSession, c.device.id).at(0);
    CHECK(duplicate.detail == "replaced " + c.firstConnection + " from 127.1.0.1");
    CHECK(duplicate.connectionId == held->connectionId);
    CHECK(duplicate.address == "127.1.0.2");
    f.waitForEvent(EventKind::ClonedIdentity, c.device.id);
    auto alert = f.eventsOf(EventKind::ClonedIdentity, c.device.id).at(0);
    CHECK(alert.address == "127.1.0.2");
    CHECK(alert.fingerprint == c.first.hostKeyFingerprint());
    CHECK_THAT(alert.detail,
        Catch::Contains("127.1.0.1") && Catch::Contains("edge-1") && Catch::Contains("host key")
            && Catch::Contains("replaced"));
    f.waitForEvent(EventKind::SessionClosed, c.device.id);
    CHECK_THAT(f.eventsOf(EventKind::SessionClosed, c.device.id).at(0).detail, Catch::Contains("replaced"));
    CHECK(f.inventory().findById(c.device.id)->connected); // the new session is the device's session of record

    // the same device calling again from the address of its live session: a duplicate, no alert
    c.second.callHome("127.0.0.1", f.portV4(), "127.1.0.2");
    f.waitForEvent(EventKind::DuplicateSession, c.device.id, 2);
    CHECK(f.eventsOf(EventKind::ClonedIdentity, c.device.id).size() == 1);
}

TEST_CASE("duplicate session, refuse: the second connection is refused before authentication, the first stays up")
{
    CallhomeFixture f;
    f.config.duplicateSessions = config::DuplicateSessions::Refuse;
    f.stop();
    f.start();
    Clones c(f);
    const int firstLogins = c.first.acceptedLogins();

    auto& refused = c.second.callHome("127.0.0.1", f.portV4(), "127.1.0.2");
    REQUIRE(refused.waitExit(10s).has_value()); // sshd has finished writing its log
    CHECK(c.second.keyExchanges() >= 1);
    CHECK(c.second.authAttempts() == 0); // nothing of ours reached the clone
    f.waitForEvent(EventKind::DuplicateSession, c.device.id);
    auto duplicate = f.eventsOf(EventKind::DuplicateSession, c.device.id).at(0);
    CHECK(duplicate.detail == "refused, " + c.firstConnection + " is alive from 127.1.0.1");
    CHECK(duplicate.address == "127.1.0.2");
    f.waitForEvent(EventKind::ClonedIdentity, c.device.id);
    CHECK_THAT(f.eventsOf(EventKind::ClonedIdentity, c.device.id).at(0).detail,
        Catch::Contains("127.1.0.2") && Catch::Contains("127.1.0.1") && Catch::Contains("refused"));

    // the first session is untouched
    auto held = f.daemon->registry().find(c.device.id);
    REQUIRE(held);
    CHECK(held->connectionId == c.firstConnection);
    CHECK(f.daemon->registry().size() == 1);
    CHECK(c.firstCall->running());
    CHECK(c.first.acceptedLogins() == firstLogins);
    CHECK(f.eventsOf(EventKind::SessionClosed, c.device.id).empty());
    CHECK(f.inventory().findById(c.device.id)->connected);

    // from the live session's own address: refused too, no alert
    const int authsBefore = c.first.authAttempts();
    REQUIRE(c.first.callHome("127.0.0.1", f.portV4(), "127.1.0.1").waitExit(10s).has_value());
    f.waitForEvent(EventKind::DuplicateSession, c.device.id, 2);
    CHECK(c.first.authAttempts() == authsBefore);
    CHECK(f.eventsOf(EventKind::ClonedIdentity, c.device.id).size() == 1);
    CHECK(f.daemon->registry().find(c.device.id)->connectionId == c.firstConnection);

    // a reload back to replace applies to the next call at once
    auto next = f.daemon->liveConfig();
    next.duplicateSessions = config::DuplicateSessions::Replace;
    auto report = f.daemon->reload(next);
    CHECK(std::find(report.applied.begin(), report.applied.end(), "sessions/duplicate") != report.applied.end());
    c.second.callHome("127.0.0.1", f.portV4(), "127.1.0.2");
    waitFor(
        [&] {
            auto live = f.daemon->registry().find(c.device.id);
            return live && live->address == "127.1.0.2";
        },
        10s, "the clone's session replaced the first");
    REQUIRE(c.firstCall->waitExit(10s).has_value());
}
