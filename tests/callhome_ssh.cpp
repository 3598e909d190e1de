// The listener against real, independent device-side SSH servers calling home on loopback.
#include "Binaries.h"
#include "CallhomeFixture.h"
#include "harness/Nc2Device.h"
#include "harness/SshdDevice.h"
#include "harness/Util.h"
#include "netconf/Context.h"
#include "server/SessionRegistry.h"
#include <arpa/inet.h>
#include <catch2/catch.hpp>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace callhome;
using namespace callhome::test;
using namespace std::chrono_literals;
using inventory::DeviceState;
using inventory::EventKind;

namespace {
bool hasCapability(const inventory::Device& d, const std::string& prefix)
{
    return std::any_of(
        d.capabilities.begin(), d.capabilities.end(), [&](const auto& c) { return c.rfind(prefix, 0) == 0; });
}

UniqueFd rawConnect(uint16_t port)
{
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(fd);
    sockaddr_in a {};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    return fd;
}

/** Reads until the listener closes the connection (or 10 s pass); true when it closed. */
bool waitClosed(int fd)
{
    auto deadline = Clock::now() + 10s;
    char buf[4096];
    while (Clock::now() < deadline) {
        timeval tv { 0, 200000 };
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        auto n = ::read(fd, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            return true;
        }
    }
    return false;
}
} // namespace

TEST_CASE("OpenSSH device: first contact is pending with no authentication, approval gives a NETCONF session")
{
    CallhomeFixture f;
    auto keyType = GENERATE(KeyType::Ed25519, KeyType::Ecdsa, KeyType::Rsa);
    INFO("host key " << toString(keyType));
    SshdDevice device(f.dir, keyType, f.daemon->stationPublicKey());

    auto& first = device.callHome("127.0.0.1", f.portV4());
    auto pending = f.waitForDevice(device.hostKeyFingerprint());
    REQUIRE(first.waitExit(10s).has_value()); // we closed the connection right after key exchange
    CHECK(pending.state == DeviceState::Pending);
    CHECK(pending.fingerprint == device.hostKeyFingerprint()); // exactly ssh-keygen -l -E sha256
    CHECK(pending.keyType
        == (keyType == KeyType::Ed25519     ? "ssh-ed25519"
                : keyType == KeyType::Ecdsa ? "ecdsa-sha2-nistp256"
                                            : "ssh-rsa"));
    CHECK(pending.lastAddress == "127.0.0.1");
    CHECK(pending.attempts == 1);
    CHECK_FALSE(pending.name);
    CHECK(device.keyExchanges() >= 1);
    CHECK(device.authAttempts() == 0); // nothing of ours was sent
    CHECK(f.eventsOf(EventKind::Pending, pending.id).size() == 1);

    // a second attempt before approval: still pending, counted
    device.callHome("127.0.0.1", f.portV4()).waitExit(10s);
    waitFor([&] { return f.inventory().findById(pending.id)->attempts == 2; }, 10s, "second attempt counted");
    CHECK(device.authAttempts() == 0);

    f.inventory().approve(pending.id, "edge-7", device.user());
    device.callHome("127.0.0.1", f.portV4());
    f.waitForSessions(1);
    f.waitConnected(pending.id);
    auto approved = *f.inventory().findById(pending.id);
    CHECK(approved.state == DeviceState::Approved);
    CHECK(approved.connected);
    CHECK(approved.sessionStart.has_value());
    CHECK(hasCapability(approved, "urn:ietf:params:netconf:base:1."));
    CHECK(device.acceptedLogins() == 1);
    CHECK(device.netconfSessions() == 1);
    CHECK(f.eventsOf(EventKind::SessionOpened, pending.id).size() == 1);

    // revoking a connected device ends its session at once, and the key is refused before authentication after that
    f.inventory().revoke(pending.id);
    f.waitForSessions(0);
    f.waitForEvent(EventKind::SessionClosed, pending.id);
    CHECK_THAT(f.eventsOf(EventKind::SessionClosed, pending.id).back().detail, Catch::Contains("revoked"));
    CHECK_FALSE(f.inventory().findById(pending.id)->connected);
    int authsBefore = device.authAttempts();
    device.callHome("127.0.0.1", f.portV4()).waitExit(10s);
    f.waitForEvent(EventKind::Refused, pending.id);
    CHECK(device.authAttempts() == authsBefore);
    CHECK_THAT(f.eventsOf(EventKind::Refused, pending.id).back().detail, Catch::Contains("revoked"));
}

TEST_CASE("a rejected key is refused before authentication on every later attempt")
{
    CallhomeFixture f;
    SshdDevice device(f.dir, KeyType::Ed25519, f.daemon->stationPublicKey());
    device.callHome("127.0.0.1", f.portV4());
    auto d = f.waitForDevice(device.hostKeyFingerprint());
    f.inventory().reject(d.id);
    for (int i = 0; i < 2; ++i) {
        device.callHome("127.0.0.1", f.portV4()).waitExit(10s);
    }
    f.waitForEvent(EventKind::Refused, d.id, 2);
    CHECK(device.authAttempts() == 0);
    CHECK(f.inventory().findById(d.id)->state == DeviceState::Rejected);
    CHECK(f.daemon->registry().size() == 0);
}

TEST_CASE("libnetconf2 device: password and public-key authentication, IPv6")
{
    CallhomeFixture f;
    SECTION("password after the station key is refused")
    {
        f.config.sshPassword = "device-password";
        f.stop();
        f.start();
        Nc2Device device(f.dir, "::1", f.portV6(),
            Nc2DeviceOptions {
                .hostKeyType = KeyType::Ecdsa, .user = "admin", .password = "device-password", .retryMs = 200 });
        auto d = f.waitForDevice(device.hostKeyFingerprint());
        CHECK(d.keyType == "ecdsa-sha2-nistp256");
        CHECK(d.lastAddress == "::1");
        CHECK(device.authAttempts() == 0);
        f.inventory().approve(d.id, "nc2-password", std::string("admin"));
        // The fleet-wide password goes only to a device whose record allows it (tests/callhome_credentials.cpp).
        f.inventory().setCredentials(d.id, { .passwordFallback = true });
        f.waitForSessions(1);
        auto connected = *f.inventory().findById(d.id);
        CHECK(connected.connected);
        CHECK(hasCapability(connected, "urn:ietf:params:netconf:base:1.1"));
        auto log = readFile(device.authLogPath());
        CHECK_THAT(log, Catch::Contains("publickey admin rejected"));
        CHECK_THAT(log, Catch::Contains("password admin accepted"));
    }
    SECTION("station key")
    {
        Nc2Device device(f.dir, "127.0.0.1", f.portV4(),
            Nc2DeviceOptions { .hostKeyType = KeyType::Rsa,
                .user = "netconf",
                .authorizedKeyLine = f.daemon->stationPublicKey(),
                .retryMs = 200 });
        auto d = f.waitForDevice(device.hostKeyFingerprint());
        CHECK(d.keyType == "ssh-rsa");
        CHECK(device.authAttempts() == 0);
        f.inventory().approve(d.id, "nc2-key", std::nullopt); // the config's default user, "netconf"
        f.waitForSessions(1);
        CHECK_THAT(readFile(device.authLogPath()), Catch::Contains("publickey netconf accepted"));
        CHECK_THAT(readFile(device.authLogPath()), !Catch::Contains("password"));
        waitFor([&] { return device.sessionsEstablished() == 1; }, 10s, "device saw the session");
    }
}

TEST_CASE("a device whose key is refused by the device: authentication failure is logged, nothing is held")
{
    CallhomeFixture f;
    SshdDevice device(f.dir, KeyType::Ed25519, ""); // our key is not installed on the device
    device.callHome("127.0.0.1", f.portV4());
    auto d = f.waitForDevice(device.hostKeyFingerprint());
    f.inventory().approve(d.id, "no-key", device.user());
    device.callHome("127.0.0.1", f.portV4()).waitExit(15s);
    f.waitForEvent(EventKind::HandshakeFailed, d.id);
    CHECK_THAT(f.eventsOf(EventKind::HandshakeFailed, d.id).back().detail, Catch::Contains("refused the station key"));
    CHECK(f.daemon->registry().size() == 0);
    CHECK(device.authAttempts() >= 1);
    CHECK(device.acceptedLogins() == 0);
}

TEST_CASE("a new key from a known device's address is flagged and can be re-keyed onto it")
{
    CallhomeFixture f;
    SshdDevice original(f.dir, KeyType::Ed25519, f.daemon->stationPublicKey());
    original.callHome("127.0.0.1", f.portV4()).waitExit(10s);
    auto known = f.waitForDevice(original.hostKeyFingerprint());
    f.inventory().approve(known.id, "edge-7", original.user());

    SshdDevice replacement(f.dir, KeyType::Ecdsa, f.daemon->stationPublicKey());
    replacement.callHome("127.0.0.1", f.portV4()).waitExit(10s);
    auto fresh = f.waitForDevice(replacement.hostKeyFingerprint());
    CHECK(fresh.state == DeviceState::Pending);
    REQUIRE(fresh.sameAddressAs == known.id);
    CHECK_THAT(f.eventsOf(EventKind::Pending, fresh.id).back().detail, Catch::Contains("edge-7"));
    CHECK(replacement.authAttempts() == 0);

    auto rekeyed = f.inventory().rekey(known.id, fresh.id);
    CHECK(rekeyed.fingerprint == replacement.hostKeyFingerprint());
    replacement.callHome("127.0.0.1", f.portV4());
    f.waitForSessions(1);
    CHECK(f.daemon->registry().sessions().at(0)->deviceName == "edge-7");

    // the old key now arrives as an unknown, pending key: it is not trusted any more
    original.callHome("127.0.0.1", f.portV4()).waitExit(10s);
    waitFor([&] { return f.inventory().findByFingerprint(original.hostKeyFingerprint()).has_value(); }, 10s,
        "old key recorded");
    CHECK(f.inventory().findByFingerprint(original.hostKeyFingerprint())->state == DeviceState::Pending);
    CHECK(original.acceptedLogins() == 0);
}

TEST_CASE("misbehaving peers are cut off and never take the listener down")
{
    CallhomeFixture f;
    SECTION("garbage instead of an SSH banner")
    {
        auto fd = rawConnect(f.portV4());
        std::string garbage = "GET / HTTP/1.1\r\nHost: x\r\n\r\n" + std::string(4096, '\x7f');
        [[maybe_unused]] auto n = ::write(fd.get(), garbage.data(), garbage.size());
        CHECK(waitClosed(fd.get()));
        f.waitForEvent(EventKind::HandshakeFailed);
    }
    SECTION("connects and says nothing: cut off at the handshake deadline")
    {
        auto fd = rawConnect(f.portV4());
        auto start = Clock::now();
        CHECK(waitClosed(fd.get()));
        auto took = Clock::now() - start;
        CHECK(took >= 2500ms);
        CHECK(took < 8s);
        f.waitForEvent(EventKind::HandshakeFailed);
        CHECK_THAT(f.eventsOf(EventKind::HandshakeFailed).back().detail, Catch::Contains("timed out"));
    }
    SECTION("drops in the middle of key exchange")
    {
        auto fd = rawConnect(f.portV4());
        std::string banner = "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n";
        [[maybe_unused]] auto n = ::write(fd.get(), banner.data(), banner.size());
        // a KEXINIT packet header announcing more bytes than ever arrive
        const unsigned char partial[] = { 0x00, 0x00, 0x01, 0x00, 0x08, 0x14, 0x01, 0x02 };
        n = ::write(fd.get(), partial, sizeof partial);
        fd.reset();
        f.waitForEvent(EventKind::HandshakeFailed);
    }
    // whatever happened above, a real device still gets served
    SshdDevice device(f.dir, KeyType::Ed25519, f.daemon->stationPublicKey());
    device.callHome("127.0.0.1", f.portV4());
    CHECK(f.waitForDevice(device.hostKeyFingerprint()).state == DeviceState::Pending);
}

TEST_CASE("two devices calling at once both get sessions; a restart keeps the inventory and shows them disconnected")
{
    CallhomeFixture f;
    SshdDevice a(f.dir, KeyType::Ed25519, f.daemon->stationPublicKey());
    SshdDevice b(f.dir, KeyType::Rsa, f.daemon->stationPublicKey());
    a.callHome("127.0.0.1", f.portV4());
    b.callHome("::1", f.portV6());
    auto da = f.waitForDevice(a.hostKeyFingerprint());
    auto db = f.waitForDevice(b.hostKeyFingerprint());
    f.inventory().approve(da.id, "a", a.user());
    f.inventory().approve(db.id, "b", b.user());
    a.callHome("127.0.0.1", f.portV4());
    b.callHome("::1", f.portV6());
    f.waitForSessions(2);
    f.waitConnected(da.id);
    CHECK(f.inventory().findById(db.id)->connected);

    f.stop(); // clean stop: <close-session> to both
    waitFor([&] { return a.netconfSessions() == 1 && b.netconfSessions() == 1; }, 5s, "sessions seen by sshd");
    f.start();
    CHECK(f.inventory().findById(da.id)->state == DeviceState::Approved);
    CHECK(f.inventory().findById(db.id)->name == "b");
    CHECK_FALSE(f.inventory().findById(da.id)->connected);
    CHECK_FALSE(f.inventory().findById(db.id)->connected);
    CHECK(f.eventsOf(EventKind::SessionClosed).size() == 2);

    a.callHome("127.0.0.1", f.portV4());
    f.waitForSessions(1);
    f.waitConnected(da.id);
}

TEST_CASE("a device that goes away is recorded disconnected")
{
    CallhomeFixture f;
    SshdDevice device(f.dir, KeyType::Ed25519, f.daemon->stationPublicKey());
    device.callHome("127.0.0.1", f.portV4()).waitExit(10s);
    auto d = f.waitForDevice(device.hostKeyFingerprint());
    f.inventory().approve(d.id, "leaver", device.user());
    device.callHome("127.0.0.1", f.portV4());
    f.waitForSessions(1);
    device.stopCallHomes(); // kills socat and sshd: the TCP connection closes
    f.waitForSessions(0);
    f.waitForEvent(EventKind::SessionClosed, d.id);
    CHECK_FALSE(f.inventory().findById(d.id)->connected);
    CHECK_THAT(f.eventsOf(EventKind::SessionClosed, d.id).back().detail, Catch::Contains("closed the connection"));
}

TEST_CASE("devices advertising the same module set share one YANG context")
{
    CallhomeFixture f;
    auto options = Nc2DeviceOptions { .hostKeyType = KeyType::Ed25519,
        .user = "netconf",
        .authorizedKeyLine = f.daemon->stationPublicKey(),
        .retryMs = 200 };
    Nc2Device a(f.dir, "127.0.0.1", f.portV4(), options);
    Nc2Device b(f.dir, "127.0.0.1", f.portV4(), options);
    auto da = f.waitForDevice(a.hostKeyFingerprint());
    auto db = f.waitForDevice(b.hostKeyFingerprint());
    f.inventory().approve(da.id, "same-a", std::nullopt);
    f.inventory().approve(db.id, "same-b", std::nullopt);
    f.waitForSessions(2);
    // first sessions: nothing was known about the devices' modules, yet one built the context and the other used it
    CHECK(f.daemon->contexts().created() == 1);
    CHECK(f.daemon->contexts().size() == 1);

    // both call again (revoke ends the sessions, approve lets them back): now their module set is known
    f.inventory().revoke(da.id);
    f.inventory().revoke(db.id);
    f.waitForSessions(0);
    f.inventory().approve(da.id, std::nullopt, std::nullopt);
    f.inventory().approve(db.id, std::nullopt, std::nullopt);
    f.waitForSessions(2);
    CHECK(f.daemon->contexts().created() == 1); // no new context: both use the pooled one
    CHECK(f.daemon->contexts().size() == 1);
    CHECK(hasCapability(*f.inventory().findById(db.id), "urn:ietf:params:netconf:base:1.1"));
}

TEST_CASE("an SSH key pre-provisioned from an OpenSSH known_hosts file is accepted on its first call home")
{
    CallhomeFixture f;
    SshdDevice device(f.dir, KeyType::Ed25519, f.daemon->stationPublicKey());
    // the line OpenSSH's ssh writes when it meets a host: "NAME TYPE BASE64"
    writeFile(f.dir.file("known_hosts"), "edge-kh " + device.hostPublicKeyLine() + "\n");
    auto r = runCommand(f.dir,
        { kCallhomectl, "--db", f.config.inventoryPath, "expect", "--known-hosts", f.dir.file("known_hosts"), "--user",
            device.user() });
    INFO(r.err);
    REQUIRE(r.status == 0);

    device.callHome("127.0.0.1", f.portV4()); // its first call home: no approve step
    f.waitForSessions(1);
    auto d = *f.inventory().findByFingerprint(device.hostKeyFingerprint());
    CHECK(d.name == "edge-kh");
    CHECK(d.state == DeviceState::Approved);
    CHECK(d.decidedBy == "pre-provisioned");
    CHECK(d.attempts == 1);
    CHECK(d.sshUser == device.user());
    CHECK(f.eventsOf(EventKind::Pending, d.id).empty());
    CHECK(device.netconfSessions() == 1);
}
