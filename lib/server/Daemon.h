#pragma once
#include "config/Config.h"
#include "inventory/Types.h"
#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace callhome::inventory {
class Inventory;
}
namespace callhome::identity {
class IdentityPolicy;
class TrustStore;
} // namespace callhome::identity
namespace callhome::transport {
class TlsClientContext;
class TlsPump;
} // namespace callhome::transport
namespace callhome::netconf {
class ContextPool;
class Runtime;
class Session;
} // namespace callhome::netconf

namespace callhome::server {
class Listener;
class SessionRegistry;
class WorkerPool;
struct Accepted;

/** callhomed: listener → handshake workers → identity → authentication → NETCONF session → registry. */
class Daemon {
public:
    /** Opens the inventory (creating/migrating it), loads or creates the station key, binds every endpoint. */
    explicit Daemon(config::Config config);
    ~Daemon();
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    void start();
    /** Closes sessions with <close-session>, records devices disconnected, stops accepting. Idempotent. */
    void stop();
    /** Bound endpoints (real ports). */
    const std::vector<config::Endpoint>& endpoints() const;
    SessionRegistry& registry();
    netconf::ContextPool& contexts();
    inventory::Inventory& inventory();
    const std::string& stationPublicKey() const noexcept { return m_stationPublicKey; }

private:
    void onAccept(Accepted&& accepted);
    void handleSsh(const std::string& connectionId, Accepted& accepted);
    void handleTls(const std::string& connectionId, Accepted& accepted);
    void handshakeFailed(const std::string& connectionId, const std::string& address, const std::string& reason,
        const std::optional<inventory::Device>& device = std::nullopt, const std::string& fingerprint = "");
    void hold(const std::string& connectionId, const std::string& address, const inventory::Device& device,
        std::unique_ptr<netconf::Session> session);

    config::Config m_config;
    std::string m_stationPublicKey;
    std::unique_ptr<netconf::Runtime> m_runtime;
    std::unique_ptr<inventory::Inventory> m_inventory;
    std::unique_ptr<identity::TrustStore> m_trustStore;
    std::unique_ptr<transport::TlsClientContext> m_tlsContext;
    std::unique_ptr<transport::TlsPump> m_tlsPump;
    std::unique_ptr<identity::IdentityPolicy> m_identity;
    std::unique_ptr<netconf::ContextPool> m_contexts;
    std::unique_ptr<SessionRegistry> m_registry;
    std::unique_ptr<WorkerPool> m_workers;
    std::unique_ptr<Listener> m_listener;
    std::atomic<uint64_t> m_nextConnection { 1 };
    std::atomic<bool> m_stopped { false };
};
} // namespace callhome::server
