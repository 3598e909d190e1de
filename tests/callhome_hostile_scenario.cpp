#include "callhome_hostile_scenario.h"
#include "harness/Util.h"
#include "identity/Certificate.h"
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <iostream>
#include <thread>

namespace callhome::test::hostile {
namespace {
std::string tlsFingerprint(const std::string& certPath)
{
    return identity::inspectPem(readFile(certPath)).fingerprint;
}

} // namespace

bool within(std::chrono::milliseconds deadline, const std::function<bool()>& condition)
{
    const auto until = Clock::now() + deadline;
    while (!condition()) {
        if (Clock::now() >= until) {
            return false;
        }
        std::this_thread::sleep_for(20ms);
    }
    return true;
}

long msSince(Clock::time_point start)
{
    return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
}

std::string hostileSource(int n)
{
    return "127.3." + std::to_string(n / 250) + "." + std::to_string(1 + n % 250);
}

size_t threadCount()
{
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
        ++n;
    }
    return n;
}

size_t maxThreadCount(std::chrono::milliseconds window)
{
    size_t most = threadCount();
    const auto until = Clock::now() + window;
    while (Clock::now() < until) {
        std::this_thread::sleep_for(20ms);
        most = std::max(most, threadCount());
    }
    return most;
}

void configureKeepalives(CallhomeFixture& f)
{
    f.config.keepaliveInterval = kKeepaliveInterval;
    f.config.keepaliveCountMax = kKeepaliveCountMax;
    f.stop();
    f.start();
}

bool connected(CallhomeFixture& f, int64_t id)
{
    auto d = f.inventory().findById(id);
    return d && d->connected;
}

RealDevices::RealDevices(CallhomeFixture& f)
    : m_f(f)
{
    const bool tls = f.pki != nullptr;
    auto prepare = [&](RealDevice& d, const std::string& name, const std::string& pkiName) {
        d.name = name;
        if (!tls) {
            auto& dev = *m_sshd.emplace_back(
                std::make_unique<SshdDevice>(f.dir, KeyType::Ed25519, f.daemon->stationPublicKey()));
            d.callHome = [&dev, &f]() -> Process& { return dev.callHome("127.0.0.1", f.portV4()); };
            d.logs = { dev.logPath(), dev.netconfdLogPath() };
            REQUIRE(d.callHome().waitExit(10s).has_value()); // first contact: pending, closed after key exchange
            d.id = f.waitForDevice(dev.hostKeyFingerprint()).id;
            f.inventory().approve(d.id, name, dev.user());
            return;
        }
        auto cred = f.pki->device(pkiName);
        auto& dev = *m_stunnel.emplace_back(
            std::make_unique<StunnelDevice>(f.dir, cred, StunnelDeviceOptions { .trustedCaPath = f.pki->stationCa() }));
        d.callHome = [&dev, &f]() -> Process& { return dev.callHome("127.0.0.1", f.portV4()); };
        d.logs = { dev.logPath(), dev.netconfdLogPath() };
        if (pkiName == "sn-0001") {
            f.inventory().expect({ { "SN0001", "example", name } }); // zero touch: approved before it ever calls
            d.id = f.inventory().resolve(name).id;
            return;
        }
        REQUIRE(d.callHome().waitExit(10s).has_value());
        d.id = f.waitForDevice(tlsFingerprint(cred.cert)).id;
        f.inventory().approve(d.id, name, std::nullopt);
    };
    prepare(steady, "steady", "sn-0001");
    prepare(victim, "victim", "unknown-0005");
    prepare(late, "late", "selfsigned");

    m_steadyAttempt = &steady.callHome();
    m_victimAttempt = &victim.callHome();
    waitFor([&] { return connected(f, steady.id) && connected(f, victim.id); }, kSetupDeadline,
        "steady and victim connected before any hostile peer");
}

RealDevices::~RealDevices() = default;

void RealDevices::checkSteady(const std::string& where)
{
    INFO("steady device " << where);
    bool up = connected(m_f, steady.id);
    if (!up) { // what the device side saw: its own log says whether our keepalives reached it and were answered
        for (const auto& l : steady.logs) {
            auto text = readFileIfExists(l);
            std::cerr << "---- " << l << " (last 6000 bytes)\n"
                      << text.substr(text.size() > 6000 ? text.size() - 6000 : 0);
        }
    }
    CHECK(up);
}

void RealDevices::check(const std::string& what)
{
    INFO("hostile peer: " << what);
    checkSteady("before the late device calls");

    auto start = Clock::now();
    late.callHome();
    bool lateUp = within(kDeadline, [&] { return connected(m_f, late.id); });
    std::cerr << "[" << what << "] late device session " << (lateUp ? "up in " : "NOT up after ") << msSince(start)
              << " ms\n";
    CHECK(lateUp);
    checkSteady("after the late device called");

    start = Clock::now();
    m_f.inventory().revoke(victim.id);
    bool victimGone = within(kDeadline, [&] { return !connected(m_f, victim.id); });
    bool victimSawIt
        = victimGone && m_victimAttempt->waitExit(kDeadline - std::chrono::milliseconds(msSince(start))).has_value();
    std::cerr << "[" << what << "] revoked device " << (victimGone ? "disconnected in " : "STILL connected after ")
              << msSince(start) << " ms" << (victimGone && !victimSawIt ? " (but its connection is still open)" : "")
              << "\n";
    CHECK(victimGone);
    CHECK(victimSawIt); // the device's side ended too (sshd / stunnel exited)

    checkSteady("at the end");
    CHECK(m_steadyAttempt->running());
    CHECK(m_f.eventsOf(inventory::EventKind::SessionClosed, steady.id).empty());
}

std::string activeMarker(const std::string& mode)
{
    if (mode == "half-message") {
        return "partial-sent";
    }
    if (mode == "zero-window") {
        return "window-zero";
    }
    if (mode == "never-read") {
        return "never-reading";
    }
    if (mode == "notification-flood") {
        return "flooding";
    }
    if (mode == "huge-message") {
        return "huge-started";
    }
    return "hello-received"; // no-close-reply, no-keepalive-reply, normal
}

HostileAttempt& approvedHostileAttempt(CallhomeFixture& f, HostilePeer& peer, const std::string& mode,
    const std::string& name, const std::string& marker, const std::vector<std::string>& extraArgs)
{
    auto& first = peer.callHome(mode, "127.0.0.1", f.portV4(), extraArgs);
    INFO(first.describe());
    REQUIRE(first.waitExit(10s).has_value()); // pending: closed after key exchange / the TLS handshake
    int64_t id = 0;
    if (peer.kind() == HostileKind::Ssh) {
        id = f.waitForDevice(peer.hostKeyFingerprint()).id;
    } else {
        id = f.waitForDevice(tlsFingerprint(peer.options().tlsIdentity.cert)).id;
    }
    f.inventory().approve(
        id, name, peer.kind() == HostileKind::Ssh ? std::optional<std::string>("netconf") : std::nullopt);
    auto& attempt = peer.callHome(mode, "127.0.0.1", f.portV4(), extraArgs);
    attempt.waitFor(marker, 15s);
    return attempt;
}

HostileSwarm::HostileSwarm(
    CallhomeFixture& f, HostileKind kind, const std::string& mode, int count, const std::vector<std::string>& extraArgs)
    : m_f(f)
{
    for (int i = 0; i < count; ++i) {
        HostilePeerOptions options { .source = hostileSource(i) };
        if (kind == HostileKind::Tls) {
            options.tlsIdentity = selfSignedTlsIdentity(f.dir.path(), "hostile-" + std::to_string(i + 1));
            options.trustedCaPath = f.pki->stationCa();
        }
        peers.push_back(std::make_unique<HostilePeer>(f.dir, kind, options));
    }
    // first contact, all at once: pending, closed after key exchange / the TLS handshake
    std::vector<HostileAttempt*> first;
    for (auto& p : peers) {
        first.push_back(&p->callHome(mode, "127.0.0.1", f.portV4(), extraArgs));
    }
    for (size_t i = 0; i < peers.size(); ++i) {
        INFO(first[i]->describe());
        REQUIRE(first[i]->waitExit(kSetupDeadline).has_value());
        const auto fingerprint = kind == HostileKind::Ssh ? peers[i]->hostKeyFingerprint()
                                                          : tlsFingerprint(peers[i]->options().tlsIdentity.cert);
        ids.push_back(f.waitForDevice(fingerprint).id);
        f.inventory().approve(ids.back(), "hostile-" + std::to_string(i + 1),
            kind == HostileKind::Ssh ? std::optional<std::string>("netconf") : std::nullopt);
    }
    for (auto& p : peers) {
        attempts.push_back(&p->callHome(mode, "127.0.0.1", f.portV4(), extraArgs));
    }
    // Not fatal: a station that cannot even serve them all (its workers stuck on the first few) must still serve
    // the real devices, which is what the checks after this are about.
    const auto marker = activeMarker(mode);
    const auto start = Clock::now();
    within(kHostileStartDeadline,
        [&] { return std::all_of(attempts.begin(), attempts.end(), [&](auto* a) { return a->has(marker); }); });
    const auto active = std::count_if(attempts.begin(), attempts.end(), [&](auto* a) { return a->has(marker); });
    std::cerr << "[" << mode << "] " << active << " of " << attempts.size() << " hostile peers reached '" << marker
              << "' in " << msSince(start) << " ms\n";
    for (auto* a : attempts) {
        INFO("a hostile device the station approved did not get as far as '" << marker << "'\n" << a->describe());
        CHECK(a->has(marker));
    }
}

void HostileSwarm::checkRevoked(const std::string& what)
{
    const auto start = Clock::now();
    for (auto id : ids) {
        m_f.inventory().revoke(id);
    }
    bool allClosed = within(kDeadline, [&] {
        return std::all_of(ids.begin(), ids.end(), [&](auto id) { return !connected(m_f, id); })
            && std::none_of(attempts.begin(), attempts.end(), [](auto* a) { return a->process().running(); });
    });
    size_t open = std::count_if(attempts.begin(), attempts.end(), [](auto* a) { return a->process().running(); });
    std::cerr << "[" << what << "] revoked hostile devices " << (allClosed ? "all closed in " : "NOT all closed after ")
              << msSince(start) << " ms (" << open << " of " << attempts.size() << " connections still open)\n";
    INFO("hostile peer: " << what << "\n" << attempts.front()->describe());
    CHECK(allClosed);
}
} // namespace callhome::test::hostile
