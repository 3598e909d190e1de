#pragma once
#include "common/UniqueFd.h"
#include "config/Config.h"
#include "inventory/Types.h"
#include "server/Connection.h"
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace callhome::inventory {
class Inventory;
class Writer;
} // namespace callhome::inventory
namespace callhome::identity {
class IdentityIndex;
class IdentityPolicy;
class TrustStoreHolder;
} // namespace callhome::identity
namespace callhome::transport {
class TlsClientContext;
} // namespace callhome::transport
namespace callhome::netconf {
class ContextPool;
class Runtime;
} // namespace callhome::netconf

namespace callhome::server {
class Admission;
class EventLoop;
class Listener;
class Heartbeat;
class HookRunner;
class Metrics;
class SessionRegistry;
class WorkerPool;
struct Accepted;

/**
 * callhomed: listener (admission) → event loops (handshake state machines, then each device's transport pump) →
 * identity (from memory on the loop for known identities; the inventory thread for new ones) → NETCONF session (setup
 * threads) → registry. Every record goes through one writer (ch-writer, batched). A fixed set of named threads
 * whatever the number of devices or peers: ch-accept, ch-loop-N (one per core by default), ch-inventory, ch-setup ×2,
 * ch-sessions, ch-registry, ch-admission, ch-writer, ch-hook (HookRunner: every hook process) (and the control
 * API's, lib/api, which is started beside it).
 */
class Daemon {
public:
    /**
     * Opens the inventory (creating/migrating it), loads or creates the station key, raises the open-file limit,
     * binds every endpoint.
     */
    explicit Daemon(config::Config config);
    ~Daemon();
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    void start();
    /** Closes sessions with <close-session>, records devices disconnected, stops accepting. Idempotent. */
    void stop();
    /** Bound endpoints (real ports). */
    std::vector<config::Endpoint> endpoints() const;
    SessionRegistry& registry();
    netconf::ContextPool& contexts();
    inventory::Inventory& inventory();
    /** The daemon's one inventory writer (its records: contacts, events, sessions, heartbeats). */
    inventory::Writer& writer();
    identity::IdentityIndex& identityIndex();
    Admission& admission();
    /** Counters and histograms to update (thread-safe). */
    Metrics& metrics();
    /** The metrics in Prometheus text format, gauges read now. */
    std::string metricsText();
    /** The configuration callhomed started with (reload() changes only what liveConfig() shows). */
    const config::Config& config() const noexcept { return m_config; }
    /** The configuration in force: the start's, with what reload() applied since. */
    config::Config liveConfig() const;
    const std::string& stationPublicKey() const noexcept { return m_stationPublicKey; }
    /** Per-device SSH secrets (ssh/credentials-file); thread-safe. */
    inventory::CredentialStore& credentialStore() noexcept { return *m_credentialStore; }
    /** Re-reads the trust store's anchors and CRLs now (SIGHUP); on error the old store stays in use. */
    void reloadTrustStore();
    /** Connections on the event loops (handshakes and sessions). */
    size_t connections() const;

    /** What reload() did. */
    struct ReloadReport {
        std::vector<std::string> applied; ///< config paths applied live ("listen (+tls:[::]:4335)", "ssh/password")
        std::vector<std::string> restart; ///< config paths that changed but need a restart (config::restartNeeded)
        bool trustStoreOk = true; ///< false: the trust store could not be re-read; the previous one stays
    };
    /**
     * Applies a re-read configuration without dropping sessions (SIGHUP): listen endpoints added and removed, SSH
     * user and password, timeouts, limits/max-message and admission limits for connections accepted from now on
     * (sessions keep the settings they started with), and re-reads the trust store's anchors and CRLs. What needs a
     * restart is reported and logged in one line, and left as it is. Throws Error when a new endpoint cannot be
     * bound; then nothing was changed. Log levels are the caller's (log::setLevels).
     */
    ReloadReport reload(const config::Config& next);
    /** Each event loop and the inventory thread, for the systemd watchdog (server/Watchdog.h). */
    std::unique_ptr<Heartbeat> heartbeat();
    /** "3 sessions held, 1 device pending, 0 handshakes in flight": systemd's STATUS=. Reads the inventory only when
     * it changed. */
    std::string statusLine();
    /** Tests only (callhomed --test-stall-loop-on-sigusr2): blocks event loop 0 in a task until stop(). */
    void stallEventLoopForTest();

private:
    void onAccept(Accepted&& accepted);
    void handshakeEnded(const std::string& address, bool failed);
    void recordFailure(const std::string& connectionId, const std::string& address, const std::string& reason,
        const std::optional<inventory::Device>& device, const std::string& fingerprint);
    void housekeeping();
    void syncBlocks();
    /** Event retention and change-log pruning (queued to the writer); `t` is the housekeeping tick. */
    void prune(std::chrono::steady_clock::time_point t);
    void postEvent(const inventory::Event& event);
    /** The hook runner, wired to the registry (on-connect, on-disconnect) and the connections (on-pending, -refused).
     */
    void setUpHooks();
    /** What onAccept() gives each new connection: reload() replaces it as a whole. */
    struct Live {
        std::shared_ptr<Services> services;
        config::Config config;
    };
    std::shared_ptr<const Live> live() const;

    config::Config m_config;
    std::string m_stationPublicKey;
    std::unique_ptr<netconf::Runtime> m_runtime;
    std::unique_ptr<inventory::Inventory> m_inventory;
    std::unique_ptr<inventory::Writer> m_writer;
    std::unique_ptr<inventory::CredentialStore> m_credentialStore; ///< outlives the inventory worker that reads it
    std::unique_ptr<identity::IdentityIndex> m_index;
    std::unique_ptr<identity::TrustStoreHolder> m_trustStore;
    std::unique_ptr<transport::TlsClientContext> m_tlsContext;
    std::unique_ptr<identity::IdentityPolicy> m_identity;
    std::unique_ptr<netconf::ContextPool> m_contexts;
    std::unique_ptr<SessionRegistry> m_registry;
    std::unique_ptr<Admission> m_admission;
    std::unique_ptr<Metrics> m_metrics;
    std::unique_ptr<HookRunner> m_hooks;
    std::unique_ptr<WorkerPool> m_inventoryWorker;
    std::unique_ptr<WorkerPool> m_setupWorkers;
    std::unique_ptr<WorkerPool> m_sessionWorker;
    Services m_services;
    std::vector<std::unique_ptr<EventLoop>> m_loops;
    std::unique_ptr<Listener> m_listener;
    std::atomic<uint64_t> m_nextConnection { 1 };
    std::atomic<size_t> m_nextLoop { 0 };
    std::atomic<bool> m_stopped { false };
    std::mutex m_failureMutex;
    double m_failureTokens = 50;
    std::chrono::steady_clock::time_point m_failureRefill = std::chrono::steady_clock::now();
    uint64_t m_failuresSuppressed = 0;
    std::mutex m_housekeepingMutex;
    std::condition_variable m_housekeepingWake;
    bool m_housekeepingStop = false;
    std::thread m_housekeeping;
    std::chrono::steady_clock::time_point m_nextRetention {};
    std::chrono::steady_clock::time_point m_nextChangePrune {};
    mutable std::mutex m_liveMutex; ///< guards m_live (the pointer; a Live is never changed once published)
    std::shared_ptr<const Live> m_live;
    std::mutex m_reloadMutex; ///< one reload at a time
    std::mutex m_stallMutex;
    std::condition_variable m_stallWake;
    bool m_stallReleased = false;
};
} // namespace callhome::server
