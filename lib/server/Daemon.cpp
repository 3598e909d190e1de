#include "server/Daemon.h"
#include "common/Log.h"
#include "identity/Identity.h"
#include "identity/TrustStore.h"
#include "inventory/Inventory.h"
#include "netconf/Context.h"
#include "netconf/Session.h"
#include "server/Listener.h"
#include "server/SessionRegistry.h"
#include "server/WorkerPool.h"
#include "transport/SshHandshake.h"
#include "transport/StationKey.h"
#include "transport/TlsHandshake.h"
#include "transport/TlsPump.h"
#include <filesystem>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace callhome::server {
namespace {
namespace fs = std::filesystem;

void tuneSocket(int fd, const config::Config& c)
{
    // The kernel notices dead peers for us; no timer per session in user space.
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    int idle = std::max<int>(10, static_cast<int>(c.keepaliveInterval.count()));
    int interval = 10;
    int count = std::max<int>(1, static_cast<int>((c.deadPeer.count() - idle) / interval));
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
    unsigned userTimeout = static_cast<unsigned>(c.deadPeer.count()) * 1000;
    ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &userTimeout, sizeof userTimeout);
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}
} // namespace

Daemon::Daemon(config::Config config)
    : m_config(std::move(config))
{
    auto logger = log::get(log::Main);
    if (!fs::exists(m_config.stateDir)) {
        fs::create_directories(m_config.stateDir);
        fs::permissions(m_config.stateDir, fs::perms::owner_all);
    }
    auto key = transport::loadStationKey(m_config.sshKeyFile, !m_config.sshKeyFileExplicit);
    m_stationPublicKey = key.publicKeyLine;
    logger->info("station key {} ({})", key.fingerprint, key.privateKeyPath);

    m_runtime = std::make_unique<netconf::Runtime>();
    m_inventory = inventory::openSqlite(m_config.inventoryPath);
    logger->info("inventory {}", m_config.inventoryPath);
    std::vector<identity::CertToNameRule> rules;
    if (m_config.hasTls()) {
        m_trustStore = std::make_unique<identity::TrustStore>(
            identity::TrustStore::load(*m_config.trustStore, m_config.manufacturers));
        m_tlsContext = std::make_unique<transport::TlsClientContext>(
            m_trustStore->stationCertificate(), m_trustStore->stationKey(), m_trustStore->stationChain());
        m_tlsPump = std::make_unique<transport::TlsPump>();
        for (const auto& r : m_config.certToName) {
            rules.push_back({ r.id, r.fingerprint, identity::mapTypeFromString(r.mapType), r.name });
        }
        logger->info("trust store {}: {} manufacturer(s)", *m_config.trustStore, m_trustStore->manufacturers().size());
    }
    m_identity = std::make_unique<identity::IdentityPolicy>(*m_inventory, std::move(rules));
    m_contexts = std::make_unique<netconf::ContextPool>(m_config.yangSearchDirs);
    m_registry = std::make_unique<SessionRegistry>(*m_inventory,
        SessionRegistry::Options {
            .listenerId = m_config.listenerId, .keepaliveInterval = m_config.keepaliveInterval });
    m_listener = std::make_unique<Listener>(m_config.listen, [this](Accepted&& a) { onAccept(std::move(a)); });
}

Daemon::~Daemon()
{
    stop();
}

const std::vector<config::Endpoint>& Daemon::endpoints() const
{
    return m_listener->endpoints();
}

netconf::ContextPool& Daemon::contexts()
{
    return *m_contexts;
}

SessionRegistry& Daemon::registry()
{
    return *m_registry;
}

inventory::Inventory& Daemon::inventory()
{
    return *m_inventory;
}

void Daemon::start()
{
    // After a crash or kill -9, sessions this listener recorded are gone: nobody is connected until they call again.
    m_inventory->listenerStarted(m_config.listenerId, now());
    m_registry->start();
    m_workers = std::make_unique<WorkerPool>(m_config.handshakeWorkers, m_config.maxPendingHandshakes);
    m_listener->start();
}

void Daemon::stop()
{
    if (m_stopped.exchange(true)) {
        return;
    }
    auto logger = log::get(log::Main);
    if (m_listener) {
        m_listener->stop();
    }
    if (m_workers) {
        m_workers->stop();
    }
    if (m_registry) {
        m_registry->stop("listener shutting down");
    }
    if (m_tlsPump) {
        // After the registry: the <close-session> of TLS sessions travels through the pump.
        m_tlsPump->stop();
    }
    if (m_inventory) {
        try {
            m_inventory->listenerStopped(m_config.listenerId);
        } catch (const std::exception& e) {
            logger->error("recording shutdown: {}", e.what());
        }
    }
    logger->info("stopped");
}

void Daemon::onAccept(Accepted&& accepted)
{
    auto id = "C" + std::to_string(m_nextConnection++);
    tuneSocket(accepted.socket.get(), m_config);
    log::get(log::Listener)
        ->debug("[{} {}] accepted on {} from port {}", id, accepted.peerAddress, accepted.endpoint.toString(),
            accepted.peerPort);
    auto shared = std::make_shared<Accepted>(std::move(accepted));
    bool queued = m_workers && m_workers->trySubmit([this, id, shared] {
        // The one exception boundary per connection: nothing a device does gets past it.
        try {
            if (shared->endpoint.transport == config::Transport::Tls) {
                handleTls(id, *shared);
            } else {
                handleSsh(id, *shared);
            }
        } catch (const std::exception& e) {
            log::get(log::Listener)->error("[{} {}] dropped: {}", id, shared->peerAddress, e.what());
        }
    });
    if (!queued) {
        log::get(log::Listener)
            ->warn("[{} {}] refused: {} handshakes already waiting", id, shared->peerAddress,
                m_config.maxPendingHandshakes);
        try {
            m_inventory->addEvent(inventory::Event { .at = now(),
                .kind = inventory::EventKind::Refused,
                .connectionId = id,
                .address = shared->peerAddress,
                .detail = "too many handshakes in progress" });
        } catch (const std::exception&) { }
    }
}

void Daemon::handshakeFailed(const std::string& connectionId, const std::string& address, const std::string& reason,
    const std::optional<inventory::Device>& device, const std::string& fingerprint)
{
    log::get(log::Listener)->warn("[{} {}] handshake failed: {}", connectionId, address, reason);
    m_inventory->addEvent(inventory::Event { .at = now(),
        .kind = inventory::EventKind::HandshakeFailed,
        .deviceId = device ? std::optional(device->id) : std::nullopt,
        .deviceName = device ? device->name.value_or("") : "",
        .connectionId = connectionId,
        .address = address,
        .fingerprint = device ? device->fingerprint : fingerprint,
        .detail = reason });
}

void Daemon::hold(const std::string& connectionId, const std::string& address, const inventory::Device& device,
    std::unique_ptr<netconf::Session> session)
{
    const std::string name = device.name.value_or("");
    log::get(log::Netconf)
        ->info("[{} {}] NETCONF {} session {} with {} ({} capabilities)", connectionId, address, session->version(),
            session->sessionId(), name, session->capabilities().size());
    m_registry->add(LiveSession { .deviceId = device.id,
        .deviceName = name,
        .connectionId = connectionId,
        .address = address,
        .fingerprint = device.fingerprint,
        .start = now(),
        .session = std::move(session) });
}

void Daemon::handleSsh(const std::string& connectionId, Accepted& accepted)
{
    const auto& address = accepted.peerAddress;
    auto deadline = std::chrono::steady_clock::now() + m_config.handshakeTimeout;
    transport::SshHandshake ssh(std::move(accepted.socket), address, deadline);
    transport::HostKey hostKey;
    try {
        hostKey = ssh.keyExchange();
    } catch (const transport::HandshakeError& e) {
        handshakeFailed(connectionId, address, e.what());
        return;
    }

    auto decision = m_identity->decideSsh({ connectionId, address }, hostKey.fingerprint, hostKey.keyType);
    if (decision.verdict != identity::Verdict::Accept) {
        // Turned away before user authentication: the device never sees our user name, key or password.
        ssh.disconnect();
        return;
    }
    const auto& device = *decision.device;
    transport::Credentials credentials { device.sshUser.value_or(m_config.sshUser), m_config.sshKeyFile,
        m_config.sshPassword };
    try {
        ssh.authenticate(credentials);
    } catch (const transport::HandshakeError& e) {
        handshakeFailed(connectionId, address, e.what(), device);
        return;
    }
    log::get(log::Ssh)->info(
        "[{} {}] authenticated to {} as {}", connectionId, address, device.name.value_or(""), credentials.user);
    try {
        auto socket = ssh.socket();
        // nc_connect_libssh takes the libssh session, on failure too.
        hold(connectionId, address, device,
            netconf::Session::connectSsh(ssh.release(), socket, *m_contexts, device.capabilities));
    } catch (const netconf::SessionError& e) {
        handshakeFailed(connectionId, address, e.what(), device);
    }
}

void Daemon::handleTls(const std::string& connectionId, Accepted& accepted)
{
    const auto& address = accepted.peerAddress;
    auto deadline = std::chrono::steady_clock::now() + m_config.handshakeTimeout;
    transport::TlsHandshake tls(*m_tlsContext, std::move(accepted.socket), deadline);
    try {
        tls.connect();
    } catch (const transport::HandshakeError& e) {
        handshakeFailed(connectionId, address, e.what());
        return;
    }
    auto decision = m_identity->decideTls({ connectionId, address }, tls.peerChain(), *m_trustStore);
    if (decision.verdict != identity::Verdict::Accept) {
        return; // ~TlsHandshake closes the connection; nothing but our (public) certificate was sent
    }
    const auto& device = *decision.device;
    try {
        // A device that refuses our certificate says so only after a TLS 1.3 handshake: find out here, with the
        // device's own reason, before a NETCONF session is started.
        tls.awaitHello();
    } catch (const transport::HandshakeError& e) {
        handshakeFailed(connectionId, address, e.what(), device);
        return;
    }
    log::get(log::Listener)
        ->info("[{} {}] {} session with {}", connectionId, address, tls.protocol(), device.name.value_or(""));
    try {
        auto socket = tls.socket();
        auto channel = m_tlsPump->add(tls.release(), socket);
        hold(connectionId, address, device,
            netconf::Session::connectTls(
                std::move(channel.in), std::move(channel.out), *m_contexts, device.capabilities));
    } catch (const netconf::SessionError& e) {
        handshakeFailed(connectionId, address, e.what(), device);
    }
}
} // namespace callhome::server
