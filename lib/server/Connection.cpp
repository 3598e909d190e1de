#include "server/Connection.h"
#include "common/Log.h"
#include "common/Secret.h"
#include "inventory/CredentialStore.h"
#include "netconf/Message.h"
#include "netconf/Session.h"
#include "server/HookRunner.h"
#include "server/Metrics.h"
#include "server/SessionRegistry.h"
#include "server/WorkerPool.h"
#include "transport/DeviceStream.h"
#include "transport/OpenSsl.h"
#include "transport/SshHandshake.h"
#include "transport/TlsHandshake.h"
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fmt/ranges.h>
#include <sys/epoll.h>
#include <sys/socket.h>

namespace callhome::server {
namespace {
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
constexpr size_t kReadBudget = 256 * 1024; ///< device bytes per wakeup: one device cannot starve the loop
constexpr size_t kChunk = 16384;
constexpr size_t kMaxToNc = 4 * 1024 * 1024; ///< beyond this, stop reading the device until libnetconf2 catches up
constexpr unsigned kMaxSchemaRounds = 8;
constexpr size_t kMaxSchemasPerRound = 256;
// yuma123 netconfd (2.13) never answers an RPC that reaches it in the same read as the end of our <hello>, so the
// first message after our <hello> waits this long, once.
constexpr auto kHelloSettle = 50ms;
const std::string kProbeBody = "<get-config><source><running/></source><filter type=\"subtree\">"
                               "<callhome-probe xmlns=\"urn:callhome:probe\"/></filter></get-config>";

constexpr size_t kRpcsInFlight = 8; ///< API RPCs pipelined into one session at a time
constexpr size_t kRpcsQueued = 4096; ///< beyond this a device's API requests are refused as busy
const std::string kApiIdPrefix = "callhome-api-";

std::atomic<uint64_t> g_waiterIds { 1 };

int64_t nowMs()
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(now().time_since_epoch()).count();
}

const char* phaseName(Connection::Phase p)
{
    switch (p) {
    case Connection::Phase::AwaitBanner:
        return "SSH version exchange";
    case Connection::Phase::SshKeyExchange:
        return "key exchange";
    case Connection::Phase::Identity:
        return "identity decision";
    case Connection::Phase::SshAuthenticate:
        return "authentication";
    case Connection::Phase::SshChannel:
        return "netconf channel setup";
    case Connection::Phase::TlsHandshake:
        return "TLS handshake";
    case Connection::Phase::Hello:
        return "waiting for the device's <hello>";
    case Connection::Phase::Context:
        return "waiting for the YANG context of its module set";
    case Connection::Phase::Schemas:
        return "<get-schema>";
    case Connection::Phase::Setup:
        return "NETCONF session setup";
    case Connection::Phase::Established:
        return "session";
    case Connection::Phase::Closing:
        return "<close-session>";
    case Connection::Phase::Done:
        return "done";
    }
    return "?";
}

bool announcesGetSchema(const std::vector<std::string>& capabilities)
{
    for (const auto& c : capabilities) {
        if (c.rfind("urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring", 0) == 0) {
            return true;
        }
    }
    return false;
}

std::string ourHello()
{
    return netconf::helloMessage(
        netconf::Hello { { "urn:ietf:params:netconf:base:1.0", std::string(netconf::kBase11) }, std::nullopt });
}

char* scratch()
{
    thread_local std::string buf(kChunk, '\0');
    return buf.data();
}

/** Posts `f(connection)` to the connection's loop; dropped when the connection is gone by then. */
template<typename F>
void onLoop(EventLoop* loop, uint64_t token, F&& f)
{
    loop->post([loop, token, f = std::forward<F>(f)]() mutable {
        if (auto* c = static_cast<Connection*>(loop->find(token))) {
            f(*c);
            c->rearm();
        }
    });
}
/** The control API's handle on the connection `token` of `loop`: every call posts to the loop. */
DeviceChannel channel(EventLoop* loop, uint64_t token)
{
    return DeviceChannel {
        .submit =
            [loop, token](std::shared_ptr<RpcCall> call) {
                loop->post([loop, token, call]() {
                    if (auto* c = static_cast<Connection*>(loop->find(token))) {
                        c->submitRpc(call);
                        c->rearm();
                    } else {
                        call->done({ .kind = RpcOutcome::Kind::TransportError, .detail = "the session ended" });
                    }
                });
            },
        .follow =
            [loop, token](std::shared_ptr<NotificationSink> sink, std::string stream) {
                loop->post([loop, token, sink, stream]() {
                    if (auto* c = static_cast<Connection*>(loop->find(token))) {
                        c->follow(sink, stream);
                        c->rearm();
                    } else {
                        sink->ended("the session ended", {});
                    }
                });
            },
        .unfollow =
            [loop, token](std::shared_ptr<NotificationSink> sink) {
                onLoop(loop, token, [sink](Connection& c) { c.unfollow(sink); });
            },
    };
}
} // namespace

Connection::Connection(EventLoop& loop, std::shared_ptr<Services> services, Accepted accepted, std::string id,
    TimePoint acceptedAt, Clock::time_point deadline)
    : m_loop(loop)
    , m_servicesHeld(std::move(services))
    , m_services(*m_servicesHeld)
    , m_id(std::move(id))
    , m_address(accepted.peerAddress)
    , m_port(accepted.peerPort)
    , m_tls(accepted.endpoint.transport == config::Transport::Tls)
    , m_acceptedAt(acceptedAt)
    , m_deadline(deadline)
    , m_socket(std::move(accepted.socket))
    , m_fromDevice(m_services.limits.maxMessage)
    , m_fromNc(m_services.limits.maxMessage)
{ }

Connection::~Connection()
{
    if (m_phase != Phase::Done) {
        finish("listener shutting down", false, true);
    }
}

std::string Connection::tag() const
{
    return "[" + m_id + " " + m_address + "]";
}

int Connection::deviceFd() const
{
    if (m_stream) {
        return m_stream->fd();
    }
    if (m_ssh) {
        return m_ssh->fd();
    }
    if (m_tlsHandshake) {
        return m_tlsHandshake->fd();
    }
    return m_socket.get();
}

void Connection::begin(uint64_t token)
{
    m_token = token;
    if (m_tls) {
        m_tlsHandshake = std::make_unique<transport::TlsHandshake>(*m_services.tls, std::move(m_socket));
        m_phase = Phase::TlsHandshake;
        handshakeStep();
    } else {
        // RFC 4253: the device sends its identification string at once. Until it does, a silent peer costs this
        // object, a descriptor and a timer: no libssh session.
        m_phase = Phase::AwaitBanner;
        updateInterest();
    }
    armTimer();
}

void Connection::onEvents(uint32_t)
{
    switch (m_phase) {
    case Phase::AwaitBanner:
        m_ssh = std::make_unique<transport::SshHandshake>(std::move(m_socket), m_address);
        m_phase = Phase::SshKeyExchange;
        handshakeStep();
        break;
    case Phase::SshKeyExchange:
    case Phase::SshAuthenticate:
    case Phase::SshChannel:
    case Phase::TlsHandshake:
        handshakeStep();
        break;
    case Phase::Identity:
    case Phase::Done:
        break;
    default:
        pump();
    }
    armTimer();
}

void Connection::handshakeStep()
{
    try {
        if (m_phase == Phase::SshKeyExchange) {
            if (!m_ssh->stepKeyExchange()) {
                updateInterest();
                return;
            }
            m_fingerprint = m_ssh->hostKey().fingerprint;
            m_phase = Phase::Identity;
            updateInterest();
            auto peer = identity::Peer { m_id, m_address };
            auto key = m_ssh->hostKey();
            auto* policy = m_services.identity;
            // A known identity is decided here from memory; only a new one waits for the inventory.
            if (auto d = policy->quickSsh(peer, key.fingerprint, key.keyType)) {
                decided(std::move(*d));
                return;
            }
            decide([=] { return policy->decideSsh(peer, key.fingerprint, key.keyType); });
            return;
        }
        if (m_phase == Phase::TlsHandshake) {
            if (!m_tlsHandshake->step()) {
                updateInterest();
                return;
            }
            m_phase = Phase::Identity;
            updateInterest();
            // The chain is up-referenced for the identity thread: this connection may end (deadline) meanwhile.
            auto chain = std::make_shared<std::vector<transport::X509Ptr>>();
            for (auto* cert : m_tlsHandshake->peerChain()) {
                X509_up_ref(cert);
                chain->emplace_back(cert);
            }
            auto store = m_services.trustStore();
            auto peer = identity::Peer { m_id, m_address };
            auto* policy = m_services.identity;
            if (auto d = policy->quickTls(peer, m_tlsHandshake->peerChain(), *store)) {
                decided(std::move(*d));
                return;
            }
            decide([=] {
                std::vector<x509_st*> presented;
                for (const auto& c : *chain) {
                    presented.push_back(c.get());
                }
                return policy->decideTls(peer, presented, *store);
            });
            return;
        }
        if (m_phase == Phase::SshAuthenticate) {
            if (!m_ssh->stepAuthenticate(*m_credentials)) {
                updateInterest();
                return;
            }
            log::get(log::Ssh)->info("{} authenticated to {} as {} with the {}", tag(), m_device->name.value_or(""),
                m_credentials->user, m_ssh->authenticatedWith());
            m_credentials.reset(); // the secrets are wiped (Secret) as soon as they are no longer needed
            m_phase = Phase::SshChannel;
        }
        if (m_phase == Phase::SshChannel) {
            if (!m_ssh->stepOpenNetconf()) {
                updateInterest();
                return;
            }
            m_stream = m_ssh->stream();
            m_ssh.reset();
            startPump();
        }
    } catch (const transport::HandshakeError& e) {
        m_credentials.reset();
        fail(e.what());
    }
}

void Connection::decide(std::function<identity::Decision()> decideOnInventoryThread)
{
    auto* loop = &m_loop;
    auto token = m_token;
    bool queued = m_services.inventory->trySubmit([=] {
        identity::Decision d;
        try {
            d = decideOnInventoryThread();
        } catch (const std::exception& e) {
            d.verdict = identity::Verdict::Reject;
            d.reason = std::string("inventory unavailable: ") + e.what();
        }
        onLoop(loop, token, [d = std::move(d)](Connection& c) mutable { c.decided(std::move(d)); });
    });
    if (!queued) {
        fail("station busy (identity queue full)");
    }
}

void Connection::decided(identity::Decision decision)
{
    if (m_phase != Phase::Identity) {
        return;
    }
    if (decision.verdict != identity::Verdict::Accept) {
        // Turned away before user authentication: the device never sees our user name, key or password. The identity
        // step has recorded the contact and the reason.
        if (m_ssh) {
            m_ssh->disconnect();
        }
        releaseAdmission(false);
        // Hooks: a pending identity, or an identified device refused (an invalid chain has no device to name).
        if (m_services.hooks && decision.device) {
            const auto& d = *decision.device;
            m_services.hooks->submit(HookEvent {
                .kind = decision.verdict == identity::Verdict::Pending ? HookKind::Pending : HookKind::Refused,
                .deviceId = d.id,
                .deviceName = d.name.value_or(""),
                .address = m_address,
                .transport = m_tls ? "tls" : "ssh",
                .fingerprint = d.fingerprint,
                .manufacturer = d.manufacturer,
                .serial = d.serial,
                .connectionId = m_id,
                .reason = decision.verdict == identity::Verdict::Pending ? std::string() : decision.reason });
        }
        finish(decision.reason, false);
        return;
    }
    m_device = decision.device;
    // sessions/duplicate refuse: a device that has a live session is turned away before user authentication, so a
    // cloned identity gets nothing of ours. The registry's lookup is a short lock, never I/O.
    if (m_services.registry && m_services.registry->duplicatePolicy() == config::DuplicateSessions::Refuse) {
        if (auto live = m_services.registry->find(m_device->id)) {
            m_services.registry->recordDuplicate(*live, m_id, m_address, true);
            if (m_ssh) {
                m_ssh->disconnect();
            }
            releaseAdmission(false);
            finish("duplicate session refused: " + live->connectionId + " is alive from " + live->address, false);
            return;
        }
    }
    if (!m_tls) {
        prepareCredentials();
    } else {
        log::get(log::Listener)
            ->info("{} {} session with {}", tag(), m_tlsHandshake->protocol(), m_device->name.value_or(""));
        m_stream = m_tlsHandshake->stream();
        m_tlsHandshake.reset();
        startPump();
    }
    armTimer();
}

void Connection::prepareCredentials()
{
    m_credentials = std::make_unique<transport::Credentials>();
    m_credentials->user = m_device->sshUser.value_or(m_services.sshUser);
    m_credentials->privateKeyPath = m_services.sshKeyFile;
    // The fleet-wide password goes only to a device whose record allows it: a cloned or compromised identity of any
    // other device never learns it.
    if (m_device->passwordFallback && m_services.sshPassword) {
        m_credentials->fleetPassword = Secret(*m_services.sshPassword);
    }
    if (!(m_device->passwordSet || m_device->keySet) || !m_services.credentials) {
        m_phase = Phase::SshAuthenticate;
        handshakeStep();
        return;
    }
    // The device's own secrets: one SQLite read, on the inventory thread (FIFO, bounded queue), never on the loop.
    // Still Phase::Identity meanwhile: part of the accept, under the same deadline.
    m_loadingCredentials = true;
    auto* loop = &m_loop;
    auto token = m_token;
    auto* store = m_services.credentials;
    auto deviceId = m_device->id;
    bool queued = m_services.inventory->trySubmit([=] {
        std::optional<inventory::DeviceSecrets> secrets;
        std::string error;
        try {
            secrets = store->get(deviceId);
        } catch (const std::exception& e) {
            error = e.what();
        }
        onLoop(loop, token, [secrets = std::move(secrets), error](Connection& c) mutable {
            c.credentialsLoaded(std::move(secrets), error);
        });
    });
    if (!queued) {
        m_credentials.reset();
        fail("station busy (identity queue full)");
    }
}

void Connection::credentialsLoaded(std::optional<inventory::DeviceSecrets> secrets, const std::string& error)
{
    if (m_phase != Phase::Identity || !m_loadingCredentials || !m_credentials) {
        return;
    }
    m_loadingCredentials = false;
    if (!error.empty()) {
        m_credentials.reset();
        m_ssh->disconnect();
        releaseAdmission(false); // our store failed, not the device: no mark against its source
        fail("cannot read the device's credentials: " + error);
        return;
    }
    if (secrets && m_device->keySet) {
        m_credentials->privateKey = std::move(secrets->privateKey);
    }
    if (secrets && m_device->passwordSet) {
        m_credentials->password = std::move(secrets->password);
    }
    if (m_device->keySet && !m_credentials->privateKey) {
        log::get(log::Ssh)->warn("{} {} should have a private key of its own but the credentials store has none; "
                                 "using the station key",
            tag(), m_device->name.value_or(""));
    }
    if (m_device->passwordSet && !m_credentials->password) {
        log::get(log::Ssh)->warn("{} {} should have a password of its own but the credentials store has none", tag(),
            m_device->name.value_or(""));
    }
    m_phase = Phase::SshAuthenticate;
    handshakeStep();
}

void Connection::startPump()
{
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) {
        fail(std::string("socketpair: ") + std::strerror(errno));
        return;
    }
    m_local.reset(pair[0]);
    m_ncEnd.reset(pair[1]);
    m_phase = Phase::Hello;
    m_fromDevice.setMaxMessage(m_services.limits.maxHello); // until the <hello> is in
    // Our <hello> goes out at once (RFC 6241 §8.1: both sides send it when the session opens), so <get-schema> can
    // follow before libnetconf2 starts; libnetconf2's own <hello> is swallowed later.
    m_toDevice = transport::frame(transport::Framing::EndOfMessage, ourHello());
    m_toDeviceOffset = 0;
    m_ourHelloEnd = m_toDevice.size();
    m_lastHeard = m_lastWriteProgress = Clock::now();
    pump();
}

void Connection::pump()
{
    if (m_inPump) {
        return; // called back from inside (a reply let another RPC out): the running pass writes it
    }
    m_inPump = true;
    struct Reset {
        bool& flag;
        ~Reset() { flag = false; }
    } reset { m_inPump };
    size_t budget = kReadBudget;
    bool progress = true;
    int round = 0;
    for (; progress && round < 8 && m_phase != Phase::Done; ++round) {
        progress = false;
        if (m_sshProbeOutstanding && m_stream->probeAnswered()) {
            m_sshProbeOutstanding = false;
            m_unanswered = 0;
        }
        progress |= writeDevice();
        if (m_phase == Phase::Done) {
            return;
        }
        if (budget > 0 && m_toNc.size() - m_toNcOffset < kMaxToNc) {
            size_t got = 0;
            while (m_phase != Phase::Done && got < budget) {
                auto r = m_stream->read(scratch(), kChunk);
                if (r.ended) {
                    if (m_phase == Phase::Closing) {
                        finish(m_closeReason, false);
                    } else {
                        fail(r.error);
                    }
                    return;
                }
                if (r.bytes == 0) {
                    break;
                }
                got += r.bytes;
                m_lastHeard = Clock::now();
                try {
                    m_fromDevice.append(std::string_view(scratch(), r.bytes));
                    while (m_phase != Phase::Done) {
                        auto message = m_fromDevice.next();
                        if (!message) {
                            break;
                        }
                        onDeviceMessage(std::move(*message));
                    }
                } catch (const transport::MessageTooLarge& e) {
                    // The oldest outstanding API call is the one whose reply this is (replies come in order).
                    if (!m_rpcOutstanding.empty()) {
                        auto call = m_rpcOutstanding.begin()->second;
                        m_rpcOutstanding.erase(m_rpcOutstanding.begin());
                        complete(call, { .kind = RpcOutcome::Kind::TooLarge, .detail = e.what() });
                    }
                    fail(std::string("the device sent a ") + e.what());
                    return;
                } catch (const transport::FramingError& e) {
                    fail(std::string("the device broke NETCONF framing: ") + e.what());
                    return;
                }
            }
            budget -= std::min(budget, got);
            progress |= got > 0;
        }
        if (m_phase == Phase::Done) {
            return;
        }
        progress |= readLibnetconf2();
        if (m_phase == Phase::Done) {
            return;
        }
        progress |= writeLibnetconf2();
    }
    if (m_phase == Phase::Done) {
        return;
    }
    updateInterest();
    // Out of budget with work left: the rest may sit in libssh's or OpenSSL's buffers, which no epoll event will
    // announce, so come back after the loop has served the others.
    if (budget == 0 || (progress && round == 8)) {
        schedulePump();
    }
}

void Connection::schedulePump()
{
    if (m_repumpPosted) {
        return;
    }
    m_repumpPosted = true;
    onLoop(&m_loop, m_token, [](Connection& c) {
        c.m_repumpPosted = false;
        if (c.m_stream && c.m_phase != Phase::Done) {
            c.pump();
        }
    });
}

bool Connection::writeDevice()
{
    auto now = Clock::now();
    if (!m_held.empty() && m_ourHelloFlushed && now >= m_holdUntil) {
        for (const auto& m : m_held) {
            m_toDevice += transport::frame(m_deviceFraming, m);
        }
        m_held.clear();
    }
    if (m_stream->wantsWritable()) {
        m_stream->flush();
    }
    bool progress = false;
    while (m_toDeviceOffset < m_toDevice.size()) {
        auto r = m_stream->write(m_toDevice.data() + m_toDeviceOffset, m_toDevice.size() - m_toDeviceOffset);
        if (r.ended) {
            if (m_phase == Phase::Closing) {
                finish(m_closeReason, false);
            } else {
                fail(r.error);
            }
            return false;
        }
        if (r.bytes == 0) {
            break;
        }
        progress = true;
        m_toDeviceOffset += r.bytes;
        m_lastWriteProgress = now;
        if (!m_ourHelloFlushed && m_toDeviceOffset >= m_ourHelloEnd) {
            m_ourHelloFlushed = true;
            m_holdUntil = now + kHelloSettle;
            maybeEstablished();
        }
    }
    if (m_toDeviceOffset == m_toDevice.size() && m_toDeviceOffset > 0) {
        m_toDevice.clear();
        m_toDeviceOffset = 0;
        if (m_toDevice.capacity() > 65536) {
            std::string().swap(m_toDevice);
        }
    }
    return progress;
}

bool Connection::readLibnetconf2()
{
    if (!m_local) {
        return false;
    }
    bool progress = false;
    for (size_t got = 0; got < kReadBudget && m_phase != Phase::Done;) {
        auto n = ::recv(m_local.get(), scratch(), kChunk, 0);
        if (n > 0) {
            got += static_cast<size_t>(n);
            progress = true;
            try {
                m_fromNc.append(std::string_view(scratch(), static_cast<size_t>(n)));
                while (m_phase != Phase::Done) {
                    auto message = m_fromNc.next();
                    if (!message) {
                        break;
                    }
                    onLibnetconf2Message(std::move(*message));
                }
            } catch (const transport::FramingError& e) {
                fail(std::string("libnetconf2 framing: ") + e.what()); // a bug of ours, but only this device's
            }
            continue;
        }
        if (n == 0) {
            if (m_phase != Phase::Setup) { // during setup the setup thread reports its own failure
                finish("libnetconf2 ended the session", !pastHandshake());
            }
            return progress;
        }
        if (errno != EAGAIN && errno != EINTR) {
            fail(std::string("local channel: ") + std::strerror(errno));
        }
        break;
    }
    return progress;
}

bool Connection::writeLibnetconf2()
{
    bool progress = false;
    while (m_local && m_toNcOffset < m_toNc.size()) {
        auto w = ::send(m_local.get(), m_toNc.data() + m_toNcOffset, m_toNc.size() - m_toNcOffset, MSG_NOSIGNAL);
        if (w > 0) {
            m_toNcOffset += static_cast<size_t>(w);
            progress = true;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            break;
        }
        fail(std::string("local channel: ") + std::strerror(errno));
        return false;
    }
    if (m_toNcOffset == m_toNc.size() && m_toNcOffset > 0) {
        m_toNc.clear();
        m_toNcOffset = 0;
        if (m_toNc.capacity() > 65536) {
            std::string().swap(m_toNc);
        }
    }
    return progress;
}

void Connection::onDeviceMessage(std::string message)
{
    if (m_phase == Phase::Hello) {
        onHello(message);
        return;
    }
    auto head = netconf::messageHead(message);
    if (head && head->name == "rpc-reply") {
        const auto& id = head->messageId;
        if (!m_closeId.empty() && id == m_closeId) {
            finish(m_closeReason, false);
            return;
        }
        if (!m_probeId.empty() && id == m_probeId) {
            m_probeId.clear();
            m_unanswered = 0;
            return;
        }
        if (m_pendingSchemas.count(id)) {
            onSchemaReply(id, message);
            return;
        }
        if (id.rfind(kApiIdPrefix, 0) == 0) {
            uint64_t seq = 0;
            auto digits = std::string_view(id).substr(kApiIdPrefix.size());
            std::from_chars(digits.data(), digits.data() + digits.size(), seq);
            if (auto it = m_rpcOutstanding.find(seq); it != m_rpcOutstanding.end()) {
                auto call = std::move(it->second);
                m_rpcOutstanding.erase(it);
                touched();
                complete(call, { .kind = RpcOutcome::Kind::Reply, .reply = std::move(message) });
                sendRpcs();
                return;
            }
        }
        if (!m_subscriptionId.empty() && id == m_subscriptionId) {
            onSubscriptionReply(message);
            return;
        }
        if (m_ncOutstanding.erase(id)) {
            m_toNc += transport::frame(m_deviceFraming, message);
            return;
        }
    } else if (head && head->name == "notification" && (m_subscribed || m_subscription == Subscription::Active)) {
        touched();
        if (m_subscription == Subscription::Active) {
            onNotification(message);
        }
        if (m_subscribed) {
            m_toNc += transport::frame(m_deviceFraming, message);
        }
        return;
    }
    // Nobody asked for it: an unsolicited reply, a notification without a subscription, or not XML at all.
    if (m_dropped++ % 1000 == 0) {
        log::get(log::Netconf)
            ->debug("{} dropped an unexpected message from the device ({} so far): <{}>", tag(), m_dropped,
                head ? head->name : "not XML");
    }
}

void Connection::onHello(const std::string& message)
{
    if (message.size() > m_services.limits.maxHello) {
        fail("the device's <hello> is larger than " + std::to_string(m_services.limits.maxHello) + " bytes");
        return;
    }
    auto hello = netconf::parseHello(message);
    if (!hello) {
        fail("the device sent something other than a NETCONF <hello>");
        return;
    }
    m_capabilities = hello->capabilities;
    m_deviceSessionId = hello->sessionId;
    m_fromDevice.setMaxMessage(m_services.limits.maxMessage);
    if (hello->supports11()) {
        // RFC 6242 §4.1: both sides announced base:1.1, so chunked framing from the next message on.
        m_deviceFraming = transport::Framing::Chunked;
        m_fromDevice.setFraming(m_deviceFraming);
    }
    m_phase = Phase::Context;
    m_contextKey = netconf::ContextPool::keyOf(m_capabilities);
    m_waiterId = g_waiterIds++;
    auto* loop = &m_loop;
    auto token = m_token;
    auto* pool = m_services.contexts;
    auto key = m_contextKey;
    auto claim = pool->claim(m_contextKey, m_waiterId, [loop, token, pool, key](auto context, bool build) {
        // Called from the builder's thread; the waiter may be gone by the time its loop runs this.
        loop->post([loop, token, pool, key, context, build] {
            auto* c = static_cast<Connection*>(loop->find(token));
            if (!c || c->m_phase != Phase::Context) {
                if (build) {
                    pool->abandon(key);
                }
                return;
            }
            c->m_waitingContext = false;
            if (build) {
                c->buildContext();
            } else {
                c->haveContext(context);
            }
            c->rearm();
        });
    });
    if (claim.ready) {
        haveContext(claim.ready);
    } else if (claim.build) {
        buildContext();
    } else {
        m_waitingContext = true;
        log::get(log::Netconf)->debug("{} waiting for the YANG context another device of its model is building", tag());
    }
}

void Connection::buildContext()
{
    m_building = true;
    m_phase = Phase::Context;
    auto* loop = &m_loop;
    auto token = m_token;
    auto* pool = m_services.contexts;
    auto key = m_contextKey;
    auto caps = m_capabilities;
    bool canFetch = announcesGetSchema(m_capabilities) && m_schemaRounds < kMaxSchemaRounds;
    auto fetched = m_fetched;
    auto texts = std::move(m_schemaTexts);
    m_schemaTexts.clear();
    bool queued = m_services.setup->trySubmit([=] {
        std::shared_ptr<netconf::Context> context;
        std::set<netconf::SchemaRequest> fetch;
        try {
            for (const auto& [request, text] : texts) {
                if (!pool->storeSchema(request, text)) {
                    log::get(log::Netconf)
                        ->warn("[{}] ignored the schema served for {}: not a YANG module of that name", token,
                            request.identifier);
                }
            }
            auto outcome = pool->build(caps, canFetch, fetched);
            context = std::move(outcome.context);
            fetch = std::move(outcome.fetch);
        } catch (const std::exception& e) {
            log::get(log::Netconf)->error("building a YANG context: {}", e.what());
        }
        loop->post([loop, token, pool, key, context, fetch] {
            auto* c = static_cast<Connection*>(loop->find(token));
            if (!c || c->m_phase == Phase::Done) {
                // Whoever waits for this module set gets it anyway, or builds it themselves.
                if (context) {
                    pool->publish(key, context);
                } else {
                    pool->abandon(key);
                }
                return;
            }
            c->built(context, fetch);
            c->rearm();
        });
    });
    if (!queued) {
        fail("station busy (setup queue full)");
    }
}

void Connection::built(std::shared_ptr<netconf::Context> context, std::set<netconf::SchemaRequest> fetch)
{
    if (context) {
        m_building = false;
        m_services.contexts->publish(m_contextKey, context);
        if (!context->unavailable().empty()) {
            log::get(log::Netconf)
                ->warn("{} YANG modules unavailable locally and from the device, data of them is ignored: {}", tag(),
                    fmt::join(context->unavailable(), ", "));
        }
        haveContext(context);
        return;
    }
    if (fetch.empty()) {
        fail("cannot build a YANG context for the device's modules");
        return;
    }
    fetchSchemas(fetch);
}

void Connection::fetchSchemas(const std::set<netconf::SchemaRequest>& fetch)
{
    m_phase = Phase::Schemas;
    ++m_schemaRounds;
    // The first device of a model may need many round trips; give it the time, once.
    m_deadline = std::max(m_deadline, Clock::now() + m_services.limits.schemaFetch);
    std::vector<std::string> names;
    for (const auto& r : fetch) {
        names.push_back(r.identifier + (r.revision.empty() ? "" : "@" + r.revision));
    }
    log::get(log::Netconf)
        ->info("{} fetching {} YANG schema(s) from the device: {}", tag(), fetch.size(), fmt::join(names, ", "));
    size_t n = 0;
    for (const auto& r : fetch) {
        m_fetched.insert(r);
        if (n++ >= kMaxSchemasPerRound) {
            continue;
        }
        auto id = "callhome-schema-" + std::to_string(++m_ownSequence);
        std::string body = "<get-schema xmlns=\"urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring\"><identifier>"
            + netconf::xmlEscape(r.identifier) + "</identifier>";
        if (!r.revision.empty()) {
            body += "<version>" + netconf::xmlEscape(r.revision) + "</version>";
        }
        body += "<format>yang</format></get-schema>";
        m_pendingSchemas.emplace(id, r);
        sendOwn(id, body);
    }
}

void Connection::onSchemaReply(const std::string& messageId, const std::string& message)
{
    auto it = m_pendingSchemas.find(messageId);
    auto request = it->second;
    m_pendingSchemas.erase(it);
    auto reply = netconf::parseReply(message);
    if (reply && reply->ok && reply->dataText) {
        m_schemaTexts.emplace_back(request, *reply->dataText);
    } else {
        log::get(log::Netconf)
            ->info("{} the device did not serve {}{}: {}", tag(), request.identifier,
                request.revision.empty() ? "" : "@" + request.revision, reply ? reply->error : "not an <rpc-reply>");
    }
    if (m_pendingSchemas.empty()) {
        buildContext();
    }
}

void Connection::haveContext(std::shared_ptr<netconf::Context> context)
{
    m_context = std::move(context);
    m_phase = Phase::Setup;
    netconf::Hello forLibnetconf2 { m_context->libnetconf2Capabilities(), m_deviceSessionId };
    m_toNc += transport::frame(transport::Framing::EndOfMessage, netconf::helloMessage(forLibnetconf2));
    writeLibnetconf2();
    auto* loop = &m_loop;
    auto token = m_token;
    int fd = m_ncEnd.release();
    auto context2 = m_context;
    auto caps = m_capabilities;
    bool queued = m_services.setup->trySubmit([=] {
        std::shared_ptr<netconf::Session> session;
        std::string error;
        try {
            session = netconf::Session::connect(UniqueFd(fd), context2, caps);
        } catch (const std::exception& e) {
            error = e.what();
        }
        loop->post([loop, token, session, error]() mutable {
            auto* c = static_cast<Connection*>(loop->find(token));
            if (!c || c->m_phase != Phase::Setup) {
                return; // the pump's end is closed: freeing the session here is quick
            }
            if (!session) {
                c->fail(error);
                return;
            }
            c->sessionReady(std::move(session));
            c->rearm();
        });
    });
    if (!queued) {
        ::close(fd);
        fail("station busy (setup queue full)");
    }
}

void Connection::sessionReady(std::shared_ptr<netconf::Session> session)
{
    m_session = std::move(session);
    maybeEstablished();
}

void Connection::maybeEstablished()
{
    // Up when libnetconf2 has its session and the device has taken our <hello> (a device that never opens its window
    // never gets there: the deadline ends it).
    if (m_phase != Phase::Setup || !m_session || !m_ourHelloFlushed) {
        return;
    }
    m_phase = Phase::Established;
    m_deadline = Clock::time_point::max();
    m_lastHeard = Clock::now();
    touched();
    if (m_services.limits.keepaliveInterval.count() > 0) {
        m_nextKeepalive = m_lastHeard + m_services.limits.keepaliveInterval;
    }
    const auto name = m_device->name.value_or("");
    log::get(log::Netconf)
        ->info("{} NETCONF {} session {} with {} ({} capabilities)", tag(), m_session->version(),
            m_session->sessionId(), name, m_capabilities.size());
    releaseAdmission(false);
    if (m_services.metrics) {
        m_services.metrics->handshake(
            m_tls ? "tls" : "ssh", "session", std::chrono::duration<double>(now() - m_acceptedAt).count());
    }
    m_registryToken = m_services.registry->reserveToken();
    m_registered = true;
    auto* loop = &m_loop;
    auto token = m_token;
    auto live = std::make_shared<LiveSession>(LiveSession { .deviceId = m_device->id,
        .deviceName = name,
        .connectionId = m_id,
        .address = m_address,
        .fingerprint = m_device->fingerprint,
        .transport = m_tls ? "tls" : "ssh",
        .start = now(),
        .session = std::move(m_session),
        .close
        = [loop, token](
              const std::string& reason) { onLoop(loop, token, [reason](Connection& c) { c.requestClose(reason); }); },
        .stats = m_stats,
        .channel = channel(loop, token) });
    auto* registry = m_services.registry;
    auto registryToken = m_registryToken;
    // One thread keeps add and ended in order; the registry queues the records to the writer, never waits on them.
    m_services.sessions->trySubmit([registry, registryToken, live] { registry->add(registryToken, std::move(*live)); });
}

void Connection::submitRpc(std::shared_ptr<RpcCall> call)
{
    if (m_phase != Phase::Established) {
        call->done({ .kind = RpcOutcome::Kind::TransportError, .detail = "the session is closing" });
        return;
    }
    if (m_rpcQueue.size() >= kRpcsQueued) {
        call->done({ .kind = RpcOutcome::Kind::Busy,
            .detail = std::to_string(m_rpcQueue.size()) + " requests already queued for this device" });
        return;
    }
    m_rpcDeadlines.emplace(call->deadline, call.get());
    m_rpcQueue.push_back(std::move(call));
    sendRpcs();
}

void Connection::sendRpcs()
{
    bool sent = false;
    while (m_phase == Phase::Established && !m_rpcQueue.empty() && m_rpcOutstanding.size() < kRpcsInFlight) {
        auto call = std::move(m_rpcQueue.front());
        m_rpcQueue.pop_front();
        if (call->cancelled) {
            complete(call, { .kind = RpcOutcome::Kind::TransportError, .detail = "not sent: the client went away" });
            continue;
        }
        auto seq = ++m_rpcSequence;
        call->messageId = kApiIdPrefix + std::to_string(seq);
        sendOwn(call->messageId, call->operation);
        m_rpcOutstanding.emplace(seq, std::move(call));
        m_stats->rpcs.fetch_add(1, std::memory_order_relaxed);
        sent = true;
    }
    if (sent) {
        touched();
        pump();
    }
}

void Connection::complete(const std::shared_ptr<RpcCall>& call, RpcOutcome outcome)
{
    m_rpcDeadlines.erase({ call->deadline, call.get() });
    outcome.messageId = call->messageId;
    outcome.cancelled = call->cancelled;
    call->done(std::move(outcome));
}

void Connection::expireRpcs(Clock::time_point now)
{
    while (!m_rpcDeadlines.empty() && m_rpcDeadlines.begin()->first <= now) {
        auto* expired = m_rpcDeadlines.begin()->second;
        std::shared_ptr<RpcCall> call;
        if (auto it = std::find_if(m_rpcQueue.begin(), m_rpcQueue.end(), [&](auto& c) { return c.get() == expired; });
            it != m_rpcQueue.end()) {
            call = std::move(*it);
            m_rpcQueue.erase(it);
        } else {
            for (auto it = m_rpcOutstanding.begin(); it != m_rpcOutstanding.end(); ++it) {
                if (it->second.get() == expired) {
                    call = std::move(it->second);
                    m_rpcOutstanding.erase(it);
                    break;
                }
            }
        }
        if (!call) { // cannot happen: every deadline belongs to a call held here
            m_rpcDeadlines.erase(m_rpcDeadlines.begin());
            continue;
        }
        // NETCONF cannot cancel an RPC: its late reply is dropped as unsolicited, the session stays up (the
        // keepalives tell a dead device from a slow operation).
        complete(call, { .kind = RpcOutcome::Kind::Timeout, .detail = "no reply from the device in time" });
    }
    sendRpcs();
}

void Connection::follow(std::shared_ptr<NotificationSink> sink, const std::string& stream)
{
    if (m_phase != Phase::Established) {
        sink->ended("the session is closing", {});
        return;
    }
    const auto& wanted = stream.empty() ? std::string("NETCONF") : stream;
    if (m_subscription != Subscription::None && wanted != m_subscriptionStream) {
        sink->ended("the session is subscribed to stream " + m_subscriptionStream
                + " (NETCONF allows one subscription per session)",
            {});
        return;
    }
    m_followers.push_back(sink);
    if (m_subscription == Subscription::Active) {
        sink->subscribed();
        return;
    }
    if (m_subscription == Subscription::None) {
        m_subscription = Subscription::Requested;
        m_subscriptionStream = wanted;
        m_subscriptionId = "callhome-subscribe-" + std::to_string(++m_ownSequence);
        std::string body = "<create-subscription xmlns=\"urn:ietf:params:xml:ns:netconf:notification:1.0\">";
        if (wanted != "NETCONF") {
            body += "<stream>" + netconf::xmlEscape(wanted) + "</stream>";
        }
        body += "</create-subscription>";
        sendOwn(m_subscriptionId, body);
        pump();
    }
}

void Connection::unfollow(const std::shared_ptr<NotificationSink>& sink)
{
    std::erase(m_followers, sink);
}

void Connection::onSubscriptionReply(const std::string& message)
{
    m_subscriptionId.clear();
    auto reply = netconf::parseReply(message);
    auto followers = m_followers;
    if (reply && reply->ok) {
        m_subscription = Subscription::Active;
        for (const auto& f : followers) {
            f->subscribed();
        }
        return;
    }
    m_subscription = Subscription::None;
    m_followers.clear();
    for (const auto& f : followers) {
        f->ended("the device refused <create-subscription> to stream " + m_subscriptionStream, message);
    }
}

void Connection::onNotification(const std::string& message)
{
    std::vector<std::shared_ptr<NotificationSink>> slow;
    for (const auto& f : m_followers) {
        if (!f->deliver(message)) {
            slow.push_back(f);
        }
    }
    for (const auto& f : slow) {
        std::erase(m_followers, f);
        f->ended("the follower did not keep up (its buffer is full)", {});
    }
}

void Connection::endApi(RpcOutcome::Kind kind, const std::string& detail)
{
    auto queued = std::move(m_rpcQueue);
    auto outstanding = std::move(m_rpcOutstanding);
    m_rpcQueue.clear();
    m_rpcOutstanding.clear();
    for (const auto& call : queued) {
        complete(call, { .kind = kind, .detail = detail });
    }
    for (const auto& [seq, call] : outstanding) {
        complete(call, { .kind = kind, .detail = detail });
    }
    m_rpcDeadlines.clear();
    auto followers = std::move(m_followers);
    m_followers.clear();
    for (const auto& f : followers) {
        f->ended(detail, {});
    }
}

void Connection::touched()
{
    m_stats->lastActivityMs.store(nowMs(), std::memory_order_relaxed);
}

void Connection::sendOwn(const std::string& messageId, const std::string& body)
{
    queueToDevice(
        "<rpc xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\" message-id=\"" + messageId + "\">" + body + "</rpc>");
}

void Connection::queueToDevice(const std::string& message)
{
    if (!m_ourHelloFlushed || Clock::now() < m_holdUntil || !m_held.empty()) {
        m_held.push_back(message); // the timer at m_holdUntil pumps them
    } else {
        m_toDevice += transport::frame(m_deviceFraming, message);
        // Queued from outside the pump (a posted result, a timer, an API request): nothing else would write it
        // until the device says something, and a device waiting for our request says nothing.
        if (!m_inPump) {
            schedulePump();
        }
    }
    size_t pending = m_toDevice.size() - m_toDeviceOffset;
    for (const auto& m : m_held) {
        pending += m.size();
    }
    if (pending > m_services.limits.maxMessage + 1024 * 1024) {
        fail("the device does not read what we send (" + std::to_string(pending) + " bytes waiting)");
    }
}

void Connection::onLibnetconf2Message(std::string message)
{
    if (!m_ncHelloSeen) {
        // libnetconf2's <hello> (base:1.0 and base:1.1, like ours, which the device already has): not sent again.
        m_ncHelloSeen = true;
        m_fromNc.setFraming(m_deviceFraming);
        return;
    }
    auto head = netconf::messageHead(message);
    if (head && head->name == "rpc" && !head->messageId.empty()) {
        m_ncOutstanding.insert(head->messageId);
        if (head->firstChild == "create-subscription") {
            m_subscribed = true;
        }
    }
    queueToDevice(message);
}

void Connection::keepalive()
{
    auto interval = m_services.limits.keepaliveInterval;
    auto now = Clock::now();
    if (interval.count() <= 0) {
        m_nextKeepalive = Clock::time_point::max();
        return;
    }
    // A device that cannot take our data for interval × count is as dead as one that does not answer.
    if (m_toDeviceOffset < m_toDevice.size()
        && now - m_lastWriteProgress > interval * m_services.limits.keepaliveCountMax) {
        finish("the device stopped reading (no progress for "
                + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - m_lastWriteProgress).count())
                + " s)",
            false);
        return;
    }
    bool outstanding = m_sshProbeOutstanding || !m_probeId.empty();
    if (!outstanding && now - m_lastHeard < interval) {
        m_unanswered = 0;
        m_nextKeepalive = m_lastHeard + interval; // heard from it lately: no probe needed
        return;
    }
    if (m_unanswered >= m_services.limits.keepaliveCountMax) {
        // Before giving up, take in what has arrived: when the station itself was starved of CPU (a loaded box), its
        // timers can fire before it read the answers already waiting in the socket.
        pump();
        if (m_phase == Phase::Done) {
            return;
        }
        if (m_unanswered < m_services.limits.keepaliveCountMax) {
            m_nextKeepalive = now + interval;
            return;
        }
        finish("no answer to " + std::to_string(m_unanswered) + " keepalives", false);
        return;
    }
    log::get(log::Netconf)->debug("{} keepalive: {} unanswered", tag(), m_unanswered);
    if (!outstanding) {
        if (m_stream->hasProbe()) {
            // false: the transport still waits for the answer to an earlier probe, which then stands for this one
            m_stream->sendProbe();
            m_sshProbeOutstanding = true;
            if (m_stream->probeAnswered()) {
                // Answered within the call itself: on loopback, or with a loaded station, a device's SSH layer can
                // answer before libssh's non-blocking poll returns. That is an answer like any other; counting it
                // as unanswered took healthy devices down after three such keepalives in a row.
                m_sshProbeOutstanding = false;
                m_unanswered = 0;
                m_nextKeepalive = now + interval;
                pump();
                return;
            }
        } else {
            m_probeId = "callhome-probe-" + std::to_string(++m_ownSequence);
            sendOwn(m_probeId, kProbeBody);
        }
    }
    ++m_unanswered;
    m_nextKeepalive = now + interval;
    pump();
}

void Connection::updateInterest()
{
    if (m_phase == Phase::Done) {
        return;
    }
    int fd = deviceFd();
    uint32_t device = 0;
    if (m_phase == Phase::Identity) {
        device = 0; // nothing to do until the decision: not even hang-ups (level-triggered, they would spin)
    } else if (m_phase == Phase::AwaitBanner) {
        device = uint32_t(EPOLLIN);
    } else if (m_ssh) {
        device = EPOLLIN | (m_ssh->wantsWritable() ? uint32_t(EPOLLOUT) : 0u);
    } else if (m_tlsHandshake) {
        device = EPOLLIN | (m_tlsHandshake->wantsWritable() ? uint32_t(EPOLLOUT) : 0u);
    } else if (m_stream) {
        bool backpressure = m_toNc.size() - m_toNcOffset >= kMaxToNc;
        device = (backpressure ? 0u : uint32_t(EPOLLIN)) | (m_stream->wantsWritable() ? uint32_t(EPOLLOUT) : 0u);
        if (backpressure && !m_stream->wantsWritable()) {
            device = 0;
        }
    }
    if (fd >= 0 && (device != m_watchedDevice || fd != m_watchedDeviceFd)) {
        if (device == 0) {
            m_loop.unwatch(m_token, fd);
        } else {
            m_loop.watch(m_token, fd, device);
        }
        m_watchedDevice = device;
        m_watchedDeviceFd = fd;
    }
    if (m_local) {
        uint32_t local = EPOLLIN | (m_toNcOffset < m_toNc.size() ? uint32_t(EPOLLOUT) : 0u);
        if (local != m_watchedLocal) {
            m_loop.watch(m_token, m_local.get(), local);
            m_watchedLocal = local;
        }
    }
}

void Connection::armTimer()
{
    if (m_phase == Phase::Done) {
        return;
    }
    auto when = Clock::time_point::max();
    if (!pastHandshake()) {
        when = m_deadline;
    }
    if (m_phase == Phase::Established) {
        when = std::min(when, m_nextKeepalive);
    }
    if (!m_rpcDeadlines.empty()) {
        when = std::min(when, m_rpcDeadlines.begin()->first);
    }
    if (m_phase == Phase::Closing) {
        when = std::min(when, m_closeDeadline);
    }
    if (!m_held.empty() && m_ourHelloFlushed) {
        when = std::min(when, m_holdUntil);
    }
    m_loop.setTimer(m_token, when);
}

void Connection::onTimer()
{
    auto now = Clock::now();
    if (!pastHandshake() && now >= m_deadline) {
        fail(std::string("timed out during ") + phaseName(m_phase));
        return;
    }
    if (m_phase == Phase::Closing && now >= m_closeDeadline) {
        finish(m_closeReason, false);
        return;
    }
    if (!m_rpcDeadlines.empty() && now >= m_rpcDeadlines.begin()->first) {
        expireRpcs(now);
    }
    if (m_phase == Phase::Established && now >= m_nextKeepalive) {
        keepalive();
    }
    if (m_phase != Phase::Done && m_stream && !m_held.empty() && now >= m_holdUntil) {
        pump();
    }
    armTimer();
}

void Connection::requestClose(const std::string& reason)
{
    if (m_phase == Phase::Established) {
        m_phase = Phase::Closing;
        m_closeReason = reason;
        m_closeId = "callhome-close-" + std::to_string(++m_ownSequence);
        m_closeDeadline = Clock::now() + m_services.limits.close;
        sendOwn(m_closeId, "<close-session/>");
        pump();
        armTimer();
    } else if (m_phase != Phase::Closing && m_phase != Phase::Done) {
        finish(reason, false);
    }
}

void Connection::fail(const std::string& reason)
{
    finish(reason, !pastHandshake());
}

void Connection::releaseAdmission(bool failed)
{
    if (!m_admissionReleased) {
        m_admissionReleased = true;
        if (m_services.handshakeEnded) {
            m_services.handshakeEnded(m_address, failed);
        }
    }
}

void Connection::finish(const std::string& reason, bool failure, bool destructing)
{
    if (m_phase == Phase::Done) {
        return;
    }
    auto phase = m_phase;
    m_phase = Phase::Done;
    endApi(RpcOutcome::Kind::TransportError, "the session ended: " + reason);
    if (!destructing) {
        // deviceFd() is -1 when libssh already closed the socket (the kernel dropped it from epoll then)
        if (int fd = deviceFd(); fd >= 0 && fd == m_watchedDeviceFd) {
            m_loop.unwatch(m_token, fd);
        }
        if (m_local) {
            m_loop.unwatch(m_token, m_local.get());
        }
    }
    if (m_stream) {
        m_stream->shutdown();
    }
    m_ssh.reset();
    m_tlsHandshake.reset();
    m_socket.reset();
    m_local.reset(); // libnetconf2 reads end of stream: a setup in progress fails at once, a free finds it closed
    m_ncEnd.reset();
    m_session.reset();
    if (m_building) {
        m_services.contexts->abandon(m_contextKey);
        m_building = false;
    }
    if (m_waitingContext) {
        m_services.contexts->cancel(m_contextKey, m_waiterId);
    }
    if (m_registered) {
        auto* registry = m_services.registry;
        auto token = m_registryToken;
        if (!m_services.sessions->trySubmit([registry, token, reason] { registry->ended(token, reason); })) {
            registry->ended(token, reason);
        }
    } else {
        releaseAdmission(failure);
        if (failure && m_services.metrics) {
            m_services.metrics->handshake(m_tls ? "tls" : "ssh", "failed", 0);
        }
        if (failure && m_services.recordFailure) {
            auto record = m_services.recordFailure;
            auto id = m_id;
            auto address = m_address;
            auto device = m_device;
            auto fingerprint = m_fingerprint;
            auto what = phase == Phase::AwaitBanner && reason.rfind("timed out", 0) == 0
                ? reason + " (the peer sent nothing)"
                : reason;
            record(id, address, what, device, fingerprint);
        }
    }
    if (!destructing) {
        m_loop.destroy(m_token);
    }
}
} // namespace callhome::server
