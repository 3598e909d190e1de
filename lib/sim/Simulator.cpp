#include "sim/Simulator.h"
#include "common/Log.h"
#include "common/UniqueFd.h"
#include "sim/Handles.h"
#include "sim/Identity.h"
#include "sim/Netconf.h"
#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <libssh/callbacks.h>
#include <mutex>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <queue>
#include <random>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace callhome::sim {
namespace {
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::shared_ptr<spdlog::logger> logger()
{
    return log::get("sim");
}

double msBetween(Clock::time_point a, Clock::time_point b)
{
    return std::chrono::duration<double, std::milli>(b - a).count();
}

std::string opensslError()
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e) {
        ERR_error_string_n(e, buf, sizeof buf);
    }
    ERR_clear_error();
    return buf;
}

/** Process-wide libssh state; ssh_init once. */
struct SshLibrary {
    SshLibrary() { ssh_init(); }
    ~SshLibrary() { ssh_finalize(); }
};

void raiseFileLimit()
{
    rlimit r {};
    if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &r);
    }
}
} // namespace

std::string toString(Mode m)
{
    switch (m) {
    case Mode::Hold:
        return "hold";
    case Mode::Once:
        return "once";
    case Mode::Silent:
        return "silent";
    case Mode::Junk:
        return "junk";
    }
    return "?";
}

std::string toString(Transport t)
{
    return t == Transport::Ssh ? "ssh" : "tls";
}

Mode modeFromString(const std::string& s)
{
    for (auto m : { Mode::Hold, Mode::Once, Mode::Silent, Mode::Junk }) {
        if (toString(m) == s) {
            return m;
        }
    }
    throw UsageError("unknown mode '" + s + "' (hold, once, silent, junk)");
}

Transport transportFromString(const std::string& s)
{
    if (s == "ssh") {
        return Transport::Ssh;
    }
    if (s == "tls") {
        return Transport::Tls;
    }
    throw UsageError("unknown transport '" + s + "' (ssh, tls)");
}

/** Per-loop counters; the mutex is only ever contended by a ready-file snapshot. */
struct Stats {
    std::mutex mutex;
    uint64_t attempts = 0, established = 0, failed = 0, dropped = 0, held = 0, silentOpened = 0, closedByStation = 0,
             junkSent = 0, rpcs = 0, notifications = 0;
    std::vector<double> latenciesMs;
    std::optional<Clock::time_point> firstStart, lastEstablished;
    std::map<std::string, uint64_t> failures;
};

struct Simulator::Shared {
    const Options& options;
    SshLibrary sshLibrary;
    DeviceModel model;
    std::unique_ptr<SshHostKeys> keys;
    std::vector<SshBindPtr> binds;
    SshKeyPtr authorizedKey;
    std::unique_ptr<DevicePki> pki;
    SslCtxPtr sslCtx;
    sockaddr_storage station {};
    socklen_t stationLen = 0;
    std::vector<sockaddr_storage> sources; ///< one per device; empty = no bind
    std::vector<std::string> fingerprints;
    Clock::time_point t0;
    std::atomic<uint64_t> firstOutcomes { 0 };
    std::atomic<uint32_t> nextSessionId { 1 };
    std::vector<Loop*> loops;
    std::once_flag ready;

    explicit Shared(const Options& o)
        : options(o)
    { }
};

namespace {
/** Parses IPv4/IPv6 numeric `address` + port into `out`; throws UsageError. */
socklen_t parseAddress(const std::string& address, uint16_t port, sockaddr_storage& out)
{
    std::memset(&out, 0, sizeof out);
    auto* v4 = reinterpret_cast<sockaddr_in*>(&out);
    if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        return sizeof(sockaddr_in);
    }
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&out);
    if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        return sizeof(sockaddr_in6);
    }
    throw UsageError("not a numeric IPv4 or IPv6 address: '" + address + "'");
}

/** `count` IPv4 source addresses from `base` on, skipping host parts .0 and .255. */
std::vector<sockaddr_storage> sourceAddresses(const std::string& base, size_t count, int family)
{
    sockaddr_storage first {};
    parseAddress(base, 0, first);
    if (first.ss_family != family) {
        throw UsageError("--source-base " + base + " is not of the station address's family");
    }
    std::vector<sockaddr_storage> out(count, first);
    if (family == AF_INET) {
        uint32_t a = ntohl(reinterpret_cast<sockaddr_in*>(&first)->sin_addr.s_addr);
        for (size_t i = 0; i < count; ++i) {
            while ((a & 0xff) == 0 || (a & 0xff) == 0xff) {
                ++a;
            }
            reinterpret_cast<sockaddr_in*>(&out[i])->sin_addr.s_addr = htonl(a++);
        }
    } else {
        // IPv6: increment the last 32 bits
        for (size_t i = 0; i < count; ++i) {
            auto* s = reinterpret_cast<sockaddr_in6*>(&out[i]);
            uint32_t last;
            std::memcpy(&last, &s->sin6_addr.s6_addr[12], 4);
            last = htonl(ntohl(last) + static_cast<uint32_t>(i));
            std::memcpy(&s->sin6_addr.s6_addr[12], &last, 4);
        }
    }
    return out;
}

std::string defaultSourceBase(Mode m)
{
    switch (m) {
    case Mode::Silent:
        return "127.2.0.1";
    case Mode::Junk:
        return "127.3.0.1";
    default:
        return "127.1.0.1";
    }
}

SshKeyPtr readAuthorizedKey(const std::string& path)
{
    std::ifstream f(path);
    std::string type, b64;
    if (!(f >> type >> b64)) {
        throw UsageError("--authorized-key " + path + ": expected an authorized_keys line (TYPE BASE64 [comment])");
    }
    ssh_key key = nullptr;
    if (ssh_pki_import_pubkey_base64(b64.c_str(), ssh_key_type_from_name(type.c_str()), &key) != SSH_OK) {
        throw UsageError("--authorized-key " + path + ": not a public key this libssh can read");
    }
    return SshKeyPtr(key);
}
} // namespace

/** One event loop thread: owns its devices' connections (device i with i % threads == index). */
class Simulator::Loop {
public:
    Loop(Shared& shared, unsigned index, unsigned threads, std::atomic<bool>& stop);
    ~Loop();
    void run();
    Stats stats; ///< merged by the simulator; read under stats.mutex

private:
    enum class State { Connecting, SshKex, SshAuth, Tls, Netconf, Silent, Closing };
    struct Conn {
        Loop* loop = nullptr;
        uint32_t slot = 0, generation = 0;
        size_t device = 0;
        bool firstAttempt = true;
        bool dead = false; ///< finished; freed after the current batch of events
        State state = State::Connecting;
        Clock::time_point started, deadline;
        int fdNumber = -1; ///< the socket, for epoll; owned by `fd` or, once handed over, by the libssh session
        UniqueFd fd;
        uint32_t epollEvents = 0;
        // SSH (the callback structs live here: libssh keeps pointers to them)
        SshSessionPtr ssh;
        SshEventPtr event;
        ssh_channel channel = nullptr;
        ssh_server_callbacks_struct serverCb {};
        ssh_channel_callbacks_struct channelCb {};
        bool subsystemStarted = false, peerClosed = false;
        std::string inbox;
        // TLS
        SslPtr ssl;
        bool sslWantsWrite = false;
        // NETCONF
        std::unique_ptr<NetconfServer> netconf;
        std::string outbox;
        bool established = false;
        uint64_t notificationsSent = 0;
        Clock::time_point establishedAt;
        Clock::time_point closeAt; ///< once mode
    };

    void scheduleDue(Clock::time_point now);
    void start(size_t device, bool firstAttempt, Clock::time_point now);
    void onEvent(Conn& c, uint32_t events);
    void onConnected(Conn& c);
    void driveSsh(Conn& c);
    void driveTls(Conn& c);
    void serveNetconf(Conn& c, std::string_view bytes);
    bool flush(Conn& c); ///< false: transport broken
    void updateInterest(Conn& c);
    void checkTimers(Clock::time_point now);
    /** Ends an attempt; `reason` empty = our own close at the end of the run. */
    void finish(Conn& c, const std::string& reason, bool failure);
    void closeAll();
    void reap();
    void maybeReady();
    Conn* lookup(uint64_t key);

    static int onAuthPubkey(ssh_session, const char*, ssh_key_struct*, char, void*);
    static ssh_channel onChannelOpen(ssh_session, void*);
    static int onSubsystem(ssh_session, ssh_channel, const char*, void*);
    static int onChannelData(ssh_session, ssh_channel, void*, uint32_t, int, void*);
    static void onChannelEof(ssh_session, ssh_channel, void*);
    static void onChannelClose(ssh_session, ssh_channel, void*);

    Shared& m_shared;
    const Options& m_opt;
    unsigned m_index, m_threads;
    std::atomic<bool>& m_stop;
    UniqueFd m_epoll;
    std::vector<std::unique_ptr<Conn>> m_slots;
    std::vector<uint32_t> m_freeSlots;
    std::vector<uint32_t> m_generations;
    std::vector<uint32_t> m_graveyard; ///< slots of connections finished during this iteration
    size_t m_live = 0;
    uint64_t m_nextAttempt; ///< next scheduled attempt number (k ≡ m_index mod m_threads)
    /// reconnects: (when, device)
    std::priority_queue<std::pair<Clock::time_point, size_t>, std::vector<std::pair<Clock::time_point, size_t>>,
        std::greater<>>
        m_reconnects;
    Clock::time_point m_lastTimerScan;
    std::mt19937_64 m_random;
};

Simulator::Loop::Loop(Shared& shared, unsigned index, unsigned threads, std::atomic<bool>& stop)
    : m_shared(shared)
    , m_opt(shared.options)
    , m_index(index)
    , m_threads(threads)
    , m_stop(stop)
    , m_epoll(::epoll_create1(EPOLL_CLOEXEC))
    , m_nextAttempt(index)
    , m_random(index * 7919 + 1)
{
    if (!m_epoll) {
        throw Error(std::string("epoll_create1: ") + std::strerror(errno));
    }
}

Simulator::Loop::~Loop() = default;

Simulator::Loop::Conn* Simulator::Loop::lookup(uint64_t key)
{
    auto slot = static_cast<uint32_t>(key >> 32);
    auto gen = static_cast<uint32_t>(key);
    if (slot >= m_slots.size() || !m_slots[slot] || m_slots[slot]->generation != gen || m_slots[slot]->dead) {
        return nullptr; // an event for a connection closed earlier in the same batch
    }
    return m_slots[slot].get();
}

void Simulator::Loop::run()
{
    std::vector<epoll_event> events(256);
    auto end = m_shared.t0 + m_opt.duration;
    while (!m_stop.load(std::memory_order_relaxed)) {
        auto now = Clock::now();
        if (now >= end) {
            break;
        }
        scheduleDue(now);
        // once/hold/silent without more attempts to make and nothing alive: this loop is done
        bool moreAttempts = (m_opt.mode == Mode::Junk && m_opt.rate > 0) || m_nextAttempt < m_opt.count;
        if (!moreAttempts && m_reconnects.empty() && m_live == 0) {
            break;
        }
        // wake for the next attempt, the next reconnect, the timer scan (100 ms) or the end of the run
        auto wake = std::min(end, now + 100ms);
        if (moreAttempts && m_opt.rate > 0) {
            auto next = m_shared.t0
                + std::chrono::duration_cast<Clock::duration>(
                    std::chrono::duration<double>(m_nextAttempt / m_opt.rate));
            wake = std::min(wake, next);
        }
        if (!m_reconnects.empty()) {
            wake = std::min(wake, m_reconnects.top().first);
        }
        int timeoutMs = static_cast<int>(
            std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(wake - now + 999us).count()));
        int n = ::epoll_wait(m_epoll.get(), events.data(), static_cast<int>(events.size()), timeoutMs);
        for (int i = 0; i < n; ++i) {
            if (auto* c = lookup(events[i].data.u64)) {
                onEvent(*c, events[i].events);
            }
        }
        now = Clock::now();
        if (now - m_lastTimerScan >= 100ms) {
            m_lastTimerScan = now;
            checkTimers(now);
        }
        reap();
    }
    closeAll();
    reap();
}

void Simulator::Loop::reap()
{
    for (auto slot : m_graveyard) {
        m_slots[slot].reset();
        m_freeSlots.push_back(slot);
    }
    m_graveyard.clear();
}

void Simulator::Loop::scheduleDue(Clock::time_point now)
{
    // new attempts: k-th attempt at t0 + k / rate (all at once when rate is 0), device k % count
    size_t started = 0;
    while (started < 512) {
        bool more = (m_opt.mode == Mode::Junk && m_opt.rate > 0) || m_nextAttempt < m_opt.count;
        if (!more) {
            break;
        }
        auto due = m_opt.rate > 0 ? m_shared.t0
                + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(m_nextAttempt / m_opt.rate))
                                  : m_shared.t0;
        if (due > now) {
            break;
        }
        auto k = m_nextAttempt;
        m_nextAttempt += m_threads;
        start(k % m_opt.count, k < m_opt.count, now);
        ++started;
    }
    while (!m_reconnects.empty() && m_reconnects.top().first <= now && started < 1024) {
        auto device = m_reconnects.top().second;
        m_reconnects.pop();
        start(device, false, now);
        ++started;
    }
}

void Simulator::Loop::start(size_t device, bool firstAttempt, Clock::time_point now)
{
    uint32_t slot;
    if (!m_freeSlots.empty()) {
        slot = m_freeSlots.back();
        m_freeSlots.pop_back();
    } else {
        slot = static_cast<uint32_t>(m_slots.size());
        m_slots.emplace_back();
        m_generations.push_back(0);
    }
    auto c = std::make_unique<Conn>();
    c->loop = this;
    c->slot = slot;
    c->generation = ++m_generations[slot];
    c->device = device;
    c->firstAttempt = firstAttempt;
    c->started = now;
    c->deadline = now + m_opt.timeout;
    {
        std::lock_guard lock(stats.mutex);
        ++stats.attempts;
        if (!stats.firstStart) {
            stats.firstStart = now;
        }
    }
    Conn& conn = *c;
    m_slots[slot] = std::move(c);
    ++m_live;

    const auto& station = m_shared.station;
    conn.fd.reset(::socket(station.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    conn.fdNumber = conn.fd.get();
    if (!conn.fd) {
        finish(conn, std::string("socket: ") + std::strerror(errno), true);
        return;
    }
    int one = 1;
    ::setsockopt(conn.fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!m_shared.sources.empty()) {
        // the port is picked at connect(), so many devices per address never exhaust ephemeral ports early
        ::setsockopt(conn.fd.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        const auto& src = m_shared.sources[device];
        socklen_t len = src.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
        if (::bind(conn.fd.get(), reinterpret_cast<const sockaddr*>(&src), len) != 0) {
            finish(conn, std::string("bind source address: ") + std::strerror(errno), true);
            return;
        }
    }
    if (::connect(conn.fd.get(), reinterpret_cast<const sockaddr*>(&station), m_shared.stationLen) != 0
        && errno != EINPROGRESS) {
        finish(conn, std::string("connect: ") + std::strerror(errno), true);
        return;
    }
    epoll_event ev {};
    ev.events = EPOLLOUT;
    ev.data.u64 = (static_cast<uint64_t>(conn.slot) << 32) | conn.generation;
    conn.epollEvents = EPOLLOUT;
    ::epoll_ctl(m_epoll.get(), EPOLL_CTL_ADD, conn.fdNumber, &ev);
}

void Simulator::Loop::onEvent(Conn& c, uint32_t events)
{
    if (c.state == State::Connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            finish(c, std::string("connect: ") + std::strerror(err), true);
            return;
        }
        if (!(events & EPOLLOUT)) {
            return;
        }
        onConnected(c);
        return;
    }
    if (c.state == State::Silent) {
        char buf[4096];
        while (true) {
            auto n = ::read(c.fd.get(), buf, sizeof buf);
            if (n > 0) {
                continue; // whatever the station says (an SSH banner, a TLS ClientHello) is ignored
            }
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                return;
            }
            {
                std::lock_guard lock(stats.mutex);
                ++stats.closedByStation;
            }
            finish(c, "", false);
            return;
        }
    }
    if (c.ssh) {
        driveSsh(c);
    } else if (c.ssl) {
        driveTls(c);
    }
}

void Simulator::Loop::onConnected(Conn& c)
{
    switch (m_opt.mode) {
    case Mode::Silent: {
        c.state = State::Silent;
        {
            std::lock_guard lock(stats.mutex);
            ++stats.silentOpened;
        }
        if (c.firstAttempt) {
            // a silent device's first attempt is over once its connection is open
            c.firstAttempt = false;
            m_shared.firstOutcomes.fetch_add(1);
            maybeReady();
        }
        updateInterest(c);
        return;
    }
    case Mode::Junk: {
        std::string junk(m_opt.junkBytes, '\0');
        for (auto& ch : junk) {
            ch = static_cast<char>(m_random());
        }
        auto n = ::send(c.fdNumber, junk.data(), junk.size(), MSG_NOSIGNAL);
        {
            std::lock_guard lock(stats.mutex);
            if (n > 0) {
                ++stats.junkSent;
            }
        }
        finish(c, "", false);
        return;
    }
    default:
        break;
    }
    if (m_opt.transport == Transport::Ssh) {
        c.ssh.reset(ssh_new());
        bool accepted = c.ssh && ssh_bind_accept_fd(m_shared.binds[c.device].get(), c.ssh.get(), c.fd.get()) == SSH_OK;
        if (c.ssh && ssh_get_fd(c.ssh.get()) == c.fd.get()) {
            // ssh_bind_accept_fd hands the socket to the session: ssh_disconnect / ssh_free close it
            c.fd.release();
        }
        if (!accepted) {
            finish(c, "ssh_bind_accept_fd failed", true);
            return;
        }
        ssh_set_blocking(c.ssh.get(), 0);
        c.serverCb.userdata = &c;
        c.serverCb.auth_pubkey_function = &Loop::onAuthPubkey;
        c.serverCb.channel_open_request_session_function = &Loop::onChannelOpen;
        ssh_callbacks_init(&c.serverCb);
        ssh_set_server_callbacks(c.ssh.get(), &c.serverCb);
        ssh_set_auth_methods(c.ssh.get(), SSH_AUTH_METHOD_PUBLICKEY);
        c.channelCb.userdata = &c;
        c.channelCb.channel_subsystem_request_function = &Loop::onSubsystem;
        c.channelCb.channel_data_function = &Loop::onChannelData;
        c.channelCb.channel_eof_function = &Loop::onChannelEof;
        c.channelCb.channel_close_function = &Loop::onChannelClose;
        ssh_callbacks_init(&c.channelCb);
        c.state = State::SshKex;
        int rc = ssh_handle_key_exchange(c.ssh.get()); // sends our banner; SSH_AGAIN from here on
        if (rc == SSH_ERROR) {
            finish(c, std::string("ssh key exchange: ") + ssh_get_error(c.ssh.get()), true);
            return;
        }
        // One ssh_event per session, polled only when epoll says its socket is ready: libssh's own poll then
        // looks at one descriptor instead of every session of the loop.
        c.event.reset(ssh_event_new());
        if (!c.event || ssh_event_add_session(c.event.get(), c.ssh.get()) != SSH_OK) {
            finish(c, "ssh_event_add_session failed", true);
            return;
        }
        if (rc == SSH_OK) {
            c.state = State::SshAuth;
        }
        updateInterest(c);
    } else {
        c.ssl.reset(SSL_new(m_shared.sslCtx.get()));
        if (!c.ssl || SSL_use_certificate(c.ssl.get(), m_shared.pki->certificate(c.device)) != 1
            || SSL_use_PrivateKey(c.ssl.get(), m_shared.pki->privateKey(c.device)) != 1
            || SSL_add1_chain_cert(c.ssl.get(), m_shared.pki->caCertificate()) != 1
            || SSL_set_fd(c.ssl.get(), c.fd.get()) != 1) {
            finish(c, "TLS setup: " + opensslError(), true);
            return;
        }
        SSL_set_accept_state(c.ssl.get());
        c.state = State::Tls;
        driveTls(c);
    }
}

int Simulator::Loop::onAuthPubkey(ssh_session, const char*, ssh_key_struct* pubkey, char signatureState, void* userdata)
{
    auto* c = static_cast<Conn*>(userdata);
    const auto& authorized = c->loop->m_shared.authorizedKey;
    if (authorized && ssh_key_cmp(pubkey, authorized.get(), SSH_KEY_CMP_PUBLIC) != 0) {
        return SSH_AUTH_DENIED;
    }
    // NONE: the station asks whether the key would do (we say yes); VALID: libssh checked the signature
    return signatureState == SSH_PUBLICKEY_STATE_NONE || signatureState == SSH_PUBLICKEY_STATE_VALID ? SSH_AUTH_SUCCESS
                                                                                                     : SSH_AUTH_DENIED;
}

ssh_channel Simulator::Loop::onChannelOpen(ssh_session session, void* userdata)
{
    auto* c = static_cast<Conn*>(userdata);
    if (c->channel) {
        return nullptr; // one channel per session
    }
    c->channel = ssh_channel_new(session);
    if (c->channel) {
        ssh_set_channel_callbacks(c->channel, &c->channelCb);
    }
    return c->channel;
}

int Simulator::Loop::onSubsystem(ssh_session, ssh_channel, const char* subsystem, void* userdata)
{
    auto* c = static_cast<Conn*>(userdata);
    if (std::strcmp(subsystem, "netconf") != 0 || c->subsystemStarted) {
        return SSH_ERROR;
    }
    c->subsystemStarted = true;
    return SSH_OK;
}

int Simulator::Loop::onChannelData(ssh_session, ssh_channel, void* data, uint32_t len, int isStderr, void* userdata)
{
    auto* c = static_cast<Conn*>(userdata);
    if (!isStderr) {
        c->inbox.append(static_cast<const char*>(data), len);
    }
    return static_cast<int>(len);
}

void Simulator::Loop::onChannelEof(ssh_session, ssh_channel, void* userdata)
{
    static_cast<Conn*>(userdata)->peerClosed = true;
}

void Simulator::Loop::onChannelClose(ssh_session, ssh_channel, void* userdata)
{
    static_cast<Conn*>(userdata)->peerClosed = true;
}

void Simulator::Loop::driveSsh(Conn& c)
{
    auto* s = c.ssh.get();
    if (c.state == State::SshKex) {
        int rc = ssh_handle_key_exchange(s);
        if (rc == SSH_ERROR) {
            finish(c, std::string("ssh key exchange: ") + ssh_get_error(s), true);
            return;
        }
        if (rc == SSH_AGAIN) {
            updateInterest(c);
            return;
        }
        c.state = State::SshAuth;
    } else if (ssh_event_dopoll(c.event.get(), 0) == SSH_ERROR && !(ssh_get_status(s) & SSH_CLOSED)) {
        finish(c, std::string("ssh: ") + ssh_get_error(s), !c.established);
        return;
    }
    // everything below runs outside libssh's callbacks
    if (c.subsystemStarted && !c.netconf) {
        c.netconf = std::make_unique<NetconfServer>(m_shared.model,
            m_shared.nextSessionId.fetch_add(1, std::memory_order_relaxed), static_cast<uint32_t>(c.device),
            deviceSerial(c.device));
        c.outbox += c.netconf->hello();
        c.state = State::Netconf;
    }
    if (!c.inbox.empty()) {
        std::string in;
        in.swap(c.inbox);
        if (c.netconf) {
            serveNetconf(c, in);
            if (c.dead) {
                return;
            }
        }
    }
    if (!flush(c)) {
        return;
    }
    int status = ssh_get_status(s);
    if (c.peerClosed || (status & (SSH_CLOSED | SSH_CLOSED_ERROR))) {
        if (c.established) {
            finish(c, "station closed the session", false);
        } else {
            finish(c,
                c.state == State::SshAuth ? "closed by the station after key exchange (not approved?)"
                                          : "closed by the station before <hello>",
                true);
        }
        return;
    }
    updateInterest(c);
}

void Simulator::Loop::driveTls(Conn& c)
{
    auto* ssl = c.ssl.get();
    if (c.state == State::Tls) {
        int rc = SSL_do_handshake(ssl);
        if (rc != 1) {
            int err = SSL_get_error(ssl, rc);
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
                c.sslWantsWrite = err == SSL_ERROR_WANT_WRITE;
                updateInterest(c);
                return;
            }
            auto why = opensslError();
            finish(c, "TLS handshake: " + (why.empty() ? std::string("connection closed") : why), true);
            return;
        }
        c.state = State::Netconf;
        c.netconf = std::make_unique<NetconfServer>(m_shared.model,
            m_shared.nextSessionId.fetch_add(1, std::memory_order_relaxed), static_cast<uint32_t>(c.device),
            deviceSerial(c.device));
        c.outbox += c.netconf->hello();
    }
    char buf[16384];
    while (true) {
        int n = SSL_read(ssl, buf, sizeof buf);
        if (n > 0) {
            serveNetconf(c, std::string_view(buf, static_cast<size_t>(n)));
            if (c.dead) {
                return;
            }
            continue;
        }
        int err = SSL_get_error(ssl, n);
        if (err == SSL_ERROR_WANT_READ) {
            break;
        }
        if (err == SSL_ERROR_WANT_WRITE) {
            c.sslWantsWrite = true;
            break;
        }
        auto why = opensslError();
        if (c.established) {
            finish(c, "station closed the session", false);
        } else {
            finish(c, "closed by the station before <hello>" + (why.empty() ? "" : ": " + why), true);
        }
        return;
    }
    if (flush(c)) {
        updateInterest(c);
    }
}

void Simulator::Loop::serveNetconf(Conn& c, std::string_view bytes)
{
    bool was = c.netconf->established();
    auto rpcsBefore = c.netconf->rpcs();
    if (!c.netconf->receive(bytes, c.outbox)) {
        finish(c, "NETCONF framing error from the station", !c.established);
        return;
    }
    auto now = Clock::now();
    if (!was && c.netconf->established()) {
        c.established = true;
        c.establishedAt = now;
        {
            std::lock_guard lock(stats.mutex);
            ++stats.established;
            stats.latenciesMs.push_back(msBetween(c.started, now));
            stats.lastEstablished = now;
        }
        if (c.firstAttempt) {
            c.firstAttempt = false;
            m_shared.firstOutcomes.fetch_add(1);
            maybeReady();
        }
        // once: the station gets `linger` to finish its own setup (schemas, first RPCs) before we hang up
        c.closeAt = now + m_opt.linger;
    }
    if (auto d = c.netconf->rpcs() - rpcsBefore) {
        std::lock_guard lock(stats.mutex);
        stats.rpcs += d;
    }
}

bool Simulator::Loop::flush(Conn& c)
{
    size_t off = 0;
    while (off < c.outbox.size()) {
        if (c.ssh) {
            if (!c.channel) {
                break;
            }
            // never more than the window: libssh would otherwise wait for a window adjust
            auto window = ssh_channel_window_size(c.channel);
            if (window == 0) {
                break;
            }
            auto len = std::min<size_t>(c.outbox.size() - off, window);
            int n = ssh_channel_write(c.channel, c.outbox.data() + off, static_cast<uint32_t>(len));
            if (n == SSH_ERROR) {
                finish(c, std::string("ssh write: ") + ssh_get_error(c.ssh.get()), !c.established);
                return false;
            }
            if (n <= 0) {
                break;
            }
            off += static_cast<size_t>(n);
        } else {
            size_t written = 0;
            int rc = SSL_write_ex(c.ssl.get(), c.outbox.data() + off, c.outbox.size() - off, &written);
            if (rc != 1) {
                int err = SSL_get_error(c.ssl.get(), rc);
                if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
                    c.sslWantsWrite = err == SSL_ERROR_WANT_WRITE;
                    break;
                }
                finish(c, "TLS write: " + opensslError(), !c.established);
                return false;
            }
            c.sslWantsWrite = false;
            off += written;
        }
    }
    c.outbox.erase(0, off);
    bool done = c.outbox.empty();
    if (done && c.netconf && (c.netconf->closing() || c.state == State::Closing)) {
        finish(c, c.netconf->closing() ? "<close-session>" : "", false);
        return false;
    }
    return true;
}

void Simulator::Loop::updateInterest(Conn& c)
{
    if (c.ssh && ssh_get_fd(c.ssh.get()) != c.fdNumber) {
        return; // libssh has closed the socket; the status check ends this connection
    }
    uint32_t want = EPOLLIN;
    if (c.ssh) {
        if (ssh_get_poll_flags(c.ssh.get()) & SSH_WRITE_PENDING) {
            want |= EPOLLOUT;
        }
    } else if (c.ssl && c.sslWantsWrite) {
        want |= EPOLLOUT;
    }
    if (want == c.epollEvents) {
        return;
    }
    epoll_event ev {};
    ev.events = want;
    ev.data.u64 = (static_cast<uint64_t>(c.slot) << 32) | c.generation;
    ::epoll_ctl(m_epoll.get(), EPOLL_CTL_MOD, c.fdNumber, &ev);
    c.epollEvents = want;
}

void Simulator::Loop::checkTimers(Clock::time_point now)
{
    for (auto& slot : m_slots) {
        if (!slot) {
            continue;
        }
        Conn& c = *slot;
        if (!c.established && c.state != State::Silent && now >= c.deadline) {
            std::string where = c.state == State::Connecting ? "TCP connect"
                : c.state == State::SshKex                   ? "SSH key exchange"
                : c.state == State::SshAuth                  ? "SSH authentication / netconf subsystem"
                : c.state == State::Tls                      ? "TLS handshake"
                                                             : "waiting for the station's <hello>";
            finish(c, "timeout in " + where, true);
            continue;
        }
        if (c.established && m_opt.mode == Mode::Once && now >= c.closeAt && c.state != State::Closing) {
            c.state = State::Closing;
            if (flush(c)) {
                updateInterest(c);
            }
            continue;
        }
        if (c.established && m_opt.notifyRate > 0 && c.netconf && c.netconf->subscribed()) {
            auto due = static_cast<uint64_t>(
                std::chrono::duration<double>(now - c.establishedAt).count() * m_opt.notifyRate);
            uint64_t sent = 0;
            while (c.notificationsSent < due && sent < 100) {
                c.outbox += c.netconf->notification(++c.notificationsSent);
                ++sent;
            }
            if (sent) {
                {
                    std::lock_guard lock(stats.mutex);
                    stats.notifications += sent;
                }
                if (flush(c)) {
                    updateInterest(c);
                }
            }
        }
    }
}

void Simulator::Loop::finish(Conn& c, const std::string& reason, bool failure)
{
    if (c.dead) {
        return;
    }
    c.dead = true;
    bool endOfRun = m_stop.load() || Clock::now() >= m_shared.t0 + m_opt.duration;
    {
        std::lock_guard lock(stats.mutex);
        if (failure) {
            ++stats.failed;
            ++stats.failures[reason];
        } else if (c.established && reason == "station closed the session") {
            ++stats.dropped;
        }
    }
    if (failure && c.firstAttempt) {
        c.firstAttempt = false;
        m_shared.firstOutcomes.fetch_add(1);
        maybeReady();
    }
    // libssh closes the socket itself on a socket error; its number may already belong to a new connection of
    // this loop, whose registration must stay (a closed descriptor has left the epoll set by itself)
    bool stillOurs = !c.ssh || ssh_get_fd(c.ssh.get()) == c.fdNumber;
    if (c.fdNumber >= 0 && stillOurs) {
        ::epoll_ctl(m_epoll.get(), EPOLL_CTL_DEL, c.fdNumber, nullptr);
    }
    if (c.ssh) {
        if (c.event) {
            ssh_event_remove_session(c.event.get(), c.ssh.get());
        }
        c.event.reset();
        ssh_disconnect(c.ssh.get()); // best-effort SSH_MSG_DISCONNECT; closes the socket it was given
        c.channel = nullptr;
        c.ssh.reset();
    }
    if (c.ssl) {
        if (c.established) {
            SSL_shutdown(c.ssl.get());
        }
        c.ssl.reset();
    }
    c.fd.reset();
    c.fdNumber = -1;
    bool again = m_opt.reconnect && !endOfRun && m_opt.mode != Mode::Junk;
    if (again) {
        m_reconnects.emplace(Clock::now() + m_opt.reconnectDelay, c.device);
    }
    m_graveyard.push_back(c.slot);
    --m_live;
}

void Simulator::Loop::closeAll()
{
    for (auto& slot : m_slots) {
        if (slot) {
            if (slot->established) {
                std::lock_guard lock(stats.mutex);
                ++stats.held;
            }
            finish(*slot, "", false);
        }
    }
}

void Simulator::Loop::maybeReady()
{
    if (!m_opt.readyFile || m_shared.firstOutcomes.load() < m_opt.count) {
        return;
    }
    std::call_once(m_shared.ready, [this] {
        // a snapshot of every loop's counters; other loops only ever hold their stats mutex briefly
        Report r;
        r.devices = m_opt.count;
        uint64_t est = 0, failed = 0;
        for (auto* l : m_shared.loops) {
            std::lock_guard lock(l->stats.mutex);
            est += l->stats.established;
            failed += l->stats.failed;
        }
        std::ofstream f(*m_opt.readyFile + ".tmp");
        f << "{\"established\": " << est << ", \"failed\": " << failed << "}\n";
        f.close();
        std::rename((*m_opt.readyFile + ".tmp").c_str(), m_opt.readyFile->c_str());
    });
}

Simulator::Simulator(Options options)
    : m_options(std::move(options))
    , m_shared(std::make_unique<Shared>(m_options))
{
    auto& o = m_options;
    if (o.count == 0) {
        throw UsageError("--count must be at least 1");
    }
    if (o.threads == 0) {
        o.threads = std::max(1u, std::thread::hardware_concurrency());
    }
    o.threads = static_cast<unsigned>(std::min<size_t>(o.threads, o.count));
    if (o.mode == Mode::Junk && o.rate == 0) {
        // all at once: `count` junk connections, once each
    }
    raiseFileLimit();
    auto& s = *m_shared;
    s.stationLen = parseAddress(o.stationAddress, o.stationPort, s.station);
    std::string base = o.sourceBase.value_or("");
    if (!o.sourceBase) {
        // own loopback source addresses by default, when the station is on IPv4 loopback
        bool loopback = s.station.ss_family == AF_INET
            && (ntohl(reinterpret_cast<sockaddr_in*>(&s.station)->sin_addr.s_addr) >> 24) == 127;
        base = loopback ? defaultSourceBase(o.mode) : "none";
    }
    if (base != "none") {
        s.sources = sourceAddresses(base, o.count, s.station.ss_family);
    }
    s.model.notifications = true;
    bool needsIdentity = o.mode == Mode::Hold || o.mode == Mode::Once;
    if (needsIdentity && o.transport == Transport::Ssh) {
        s.keys = std::make_unique<SshHostKeys>(o.sshKeysDir, o.count);
        for (size_t i = 0; i < o.count; ++i) {
            SshBindPtr bind(ssh_bind_new());
            // the bind takes the duplicate; ssh_bind_accept_fd duplicates it again into each session
            if (!bind
                || ssh_bind_options_set(bind.get(), SSH_BIND_OPTIONS_IMPORT_KEY, ssh_key_dup(s.keys->key(i))) != 0) {
                throw Error("cannot set up the SSH server side of device " + deviceName(i));
            }
            s.binds.push_back(std::move(bind));
            s.fingerprints.push_back(s.keys->fingerprint(i));
        }
        if (o.authorizedKey) {
            s.authorizedKey = readAuthorizedKey(*o.authorizedKey);
        }
    }
    if (needsIdentity && o.transport == Transport::Tls) {
        if (!o.caDir) {
            throw UsageError("TLS devices need --make-ca DIR (their CA and certificates are created or reused there)");
        }
        s.pki = std::make_unique<DevicePki>(*o.caDir, o.count, o.manufacturer);
        s.sslCtx.reset(SSL_CTX_new(TLS_server_method()));
        if (!s.sslCtx) {
            throw Error("SSL_CTX_new: " + opensslError());
        }
        SSL_CTX_set_min_proto_version(s.sslCtx.get(), TLS1_2_VERSION);
        SSL_CTX_set_mode(s.sslCtx.get(),
            SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
        SSL_CTX_set_options(s.sslCtx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
        SSL_CTX_set_session_cache_mode(s.sslCtx.get(), SSL_SESS_CACHE_OFF);
        SSL_CTX_set_num_tickets(s.sslCtx.get(), 0);
        if (o.stationCa) {
            if (SSL_CTX_load_verify_locations(s.sslCtx.get(), o.stationCa->c_str(), nullptr) != 1) {
                throw UsageError("--station-ca " + *o.stationCa + ": " + opensslError());
            }
            // RFC 7589: the device demands and verifies the station's certificate
            SSL_CTX_set_verify(s.sslCtx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
        } else {
            // asked for, not checked
            SSL_CTX_set_verify(s.sslCtx.get(), SSL_VERIFY_PEER, [](int, X509_STORE_CTX*) { return 1; });
        }
    }
}

Simulator::~Simulator() = default;

const std::vector<std::string>& Simulator::fingerprints() const
{
    return m_shared->fingerprints;
}

Report Simulator::run()
{
    auto& s = *m_shared;
    std::vector<std::unique_ptr<Loop>> loops;
    for (unsigned i = 0; i < m_options.threads; ++i) {
        loops.push_back(std::make_unique<Loop>(s, i, m_options.threads, m_stop));
        s.loops.push_back(loops.back().get());
    }
    s.t0 = Clock::now();
    std::vector<std::thread> threads;
    for (auto& l : loops) {
        threads.emplace_back([&l, this] {
            try {
                l->run();
            } catch (const std::exception& e) {
                logger()->error("event loop failed: {}", e.what());
                m_stop.store(true);
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    auto end = Clock::now();

    Report r;
    r.mode = toString(m_options.mode);
    r.transport = toString(m_options.transport);
    r.station = m_options.stationAddress + ":" + std::to_string(m_options.stationPort);
    r.devices = m_options.count;
    r.threads = m_options.threads;
    std::vector<double> lat;
    std::optional<Clock::time_point> first, last;
    for (auto& l : loops) {
        auto& st = l->stats;
        r.attempts += st.attempts;
        r.established += st.established;
        r.failed += st.failed;
        r.dropped += st.dropped;
        r.heldAtEnd += st.held;
        r.silentOpened += st.silentOpened;
        r.closedByStation += st.closedByStation;
        r.junkSent += st.junkSent;
        r.rpcs += st.rpcs;
        r.notifications += st.notifications;
        lat.insert(lat.end(), st.latenciesMs.begin(), st.latenciesMs.end());
        for (const auto& [k, v] : st.failures) {
            r.failures[k] += v;
        }
        if (st.firstStart && (!first || *st.firstStart < *first)) {
            first = st.firstStart;
        }
        if (st.lastEstablished && (!last || *st.lastEstablished > *last)) {
            last = st.lastEstablished;
        }
    }
    r.elapsedSeconds = std::chrono::duration<double>(end - s.t0).count();
    if (first && last && *last > *first) {
        r.sessionsPerSecond
            = static_cast<double>(r.established) / std::chrono::duration<double>(*last - *first).count();
    }
    std::sort(lat.begin(), lat.end());
    auto pct = [&](double p) {
        if (lat.empty()) {
            return 0.0;
        }
        // nearest rank
        auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(lat.size())));
        return lat[std::min(lat.size() - 1, rank == 0 ? 0 : rank - 1)];
    };
    r.p50Ms = pct(50);
    r.p90Ms = pct(90);
    r.p99Ms = pct(99);
    r.maxMs = lat.empty() ? 0 : lat.back();
    return r;
}
} // namespace callhome::sim
