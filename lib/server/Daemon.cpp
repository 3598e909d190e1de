#include "server/Daemon.h"
#include "common/Error.h"
#include "common/Log.h"
#include "identity/Identity.h"
#include "identity/IdentityIndex.h"
#include "identity/TrustStore.h"
#include "identity/TrustStoreHolder.h"
#include "inventory/CredentialStore.h"
#include "inventory/Inventory.h"
#include "inventory/Open.h"
#include "inventory/Writer.h"
#include "netconf/Context.h"
#include "netconf/Session.h"
#include "server/Admission.h"
#include "server/EventLoop.h"
#include "server/HookRunner.h"
#include "server/Listener.h"
#include "server/Metrics.h"
#include "server/SessionRegistry.h"
#include "server/Watchdog.h"
#include "server/WorkerPool.h"
#include "transport/StationKey.h"
#include "transport/TlsHandshake.h"
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

namespace callhome::server {
namespace {
namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

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

/** Raises the soft open-file limit to the hard one; returns the limit in force. */
rlim_t raiseFileLimit()
{
    rlimit rl {};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return 1024;
    }
    auto before = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            rl.rlim_cur = before;
        }
    }
    if (rl.rlim_cur != before) {
        log::get(log::Main)->debug("open-file limit raised from {} to {}", before, rl.rlim_cur);
    }
    return rl.rlim_cur;
}

TimePoint toSystem(SteadyClock::time_point t)
{
    return now() + std::chrono::duration_cast<TimePoint::duration>(t - SteadyClock::now());
}

SteadyClock::time_point toSteady(TimePoint t)
{
    return SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(t - now());
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
    const auto inventoryName = inventory::redactSpec(m_config.inventoryPath); // never log a password
    m_inventory = inventory::openInventory(m_config.inventoryPath, inventory::OpenMode::CreateAndMigrate);
    if (m_config.inventoryGroup) { // a SQLite file's mode and group: config::load refuses it with PostgreSQL
        inventory::shareWithGroup(m_config.inventoryPath, *m_config.inventoryGroup);
    }
    // One callhomed per listener id and inventory, held by the inventory for the daemon's life.
    m_inventory->lockListener(m_config.listenerId);
    // The writer's own connection: while another process holds the write lock only ch-writer waits for it.
    m_writer = std::make_unique<inventory::Writer>(
        inventory::openInventory(m_config.inventoryPath, inventory::OpenMode::ExistingOnly));
    // Per-device secrets: their own file, 0600 whatever inventory-group does to the inventory. A secret the inventory
    // does not say its device has is deleted: the device was forgotten meanwhile (callhomectl forget without access to
    // this file, a script), or its id now belongs to a device that called after that.
    m_credentialStore = std::make_unique<inventory::CredentialStore>(
        m_config.credentialsPath, inventory::CredentialStore::Mode::Create);
    if (auto pruned = m_credentialStore->prune([this](int64_t id) {
            auto d = m_inventory->findById(id);
            return inventory::CredentialStore::Wanted { .password = d && d->passwordSet, .privateKey = d && d->keySet };
        })) {
        logger->info("credentials store {}: deleted the secrets of {} devices that no longer have them (forgotten or "
                     "cleared)",
            m_config.credentialsPath, pruned);
    }
    m_index = std::make_unique<identity::IdentityIndex>();
    {
        auto t = SteadyClock::now();
        m_index->load(*m_inventory);
        logger->info("inventory {}: {} devices ({} pending) indexed in {} ms", inventoryName, m_index->size(),
            m_index->pending(), std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - t).count());
    }
    std::vector<identity::CertToNameRule> rules;
    if (m_config.hasTls()) {
        m_trustStore = std::make_unique<identity::TrustStoreHolder>(
            *m_config.trustStore, m_config.manufacturers, m_config.crlExpired);
        auto store = m_trustStore->current();
        m_tlsContext = std::make_unique<transport::TlsClientContext>(
            store->stationCertificate(), store->stationKey(), store->stationChain());
        for (const auto& r : m_config.certToName) {
            rules.push_back({ r.id, r.fingerprint, identity::mapTypeFromString(r.mapType), r.name });
        }
    }
    m_identity = std::make_unique<identity::IdentityPolicy>(*m_inventory, *m_index, *m_writer,
        identity::PendingCaps { m_config.admission.maxPending, m_config.admission.maxPendingPerSource },
        std::move(rules));
    m_contexts = std::make_unique<netconf::ContextPool>(
        m_config.yangSearchDirs, (fs::path(m_config.stateDir) / "yang-cache").string(), m_config.maxContexts);
    m_registry = std::make_unique<SessionRegistry>(
        *m_inventory, *m_writer, *m_index, SessionRegistry::Options { .listenerId = m_config.listenerId });
    m_registry->setDuplicatePolicy(m_config.duplicateSessions);
    m_identity->setAutoApprove(m_config.autoApprove);
    if (!m_config.autoApprove.empty()) {
        logger->info("auto-approval on: {} rule(s)", m_config.autoApprove.size());
    }

    auto nofile = raiseFileLimit();
    auto limits = admissionLimits(m_config.admission, nofile);
    m_admission = std::make_unique<Admission>(limits);
    m_metrics = std::make_unique<Metrics>();
    unsigned loops = m_config.eventLoops ? m_config.eventLoops : std::max(1u, std::thread::hardware_concurrency());
    logger->info(
        "open files: {}; up to {} handshakes in flight; {} event loop(s)", nofile, limits.maxHandshakes, loops);

    m_inventoryWorker = std::make_unique<WorkerPool>(1, limits.maxHandshakes * 4 + 4096, "ch-inventory");
    m_setupWorkers = std::make_unique<WorkerPool>(2, limits.maxHandshakes * 2 + 1024, "ch-setup");
    m_sessionWorker = std::make_unique<WorkerPool>(1, limits.maxHandshakes * 4 + 65536, "ch-sessions");
    m_services.limits = ConnectionLimits {
        .schemaFetch = m_config.schemaFetchTimeout,
        .close = m_config.closeTimeout,
        .keepaliveInterval = m_config.keepaliveInterval,
        .keepaliveCountMax = m_config.keepaliveCountMax,
        .maxMessage = m_config.maxMessage,
    };
    m_services.sshUser = m_config.sshUser;
    m_services.sshKeyFile = m_config.sshKeyFile;
    m_services.sshPassword = m_config.sshPassword;
    m_services.credentials = m_credentialStore.get();
    m_services.identity = m_identity.get();
    m_services.trustStore = [this] { return m_trustStore->current(); }; // a snapshot per connection
    m_services.tls = m_tlsContext.get();
    m_services.contexts = m_contexts.get();
    m_services.inventory = m_inventoryWorker.get();
    m_services.setup = m_setupWorkers.get();
    m_services.sessions = m_sessionWorker.get();
    m_services.registry = m_registry.get();
    m_services.metrics = m_metrics.get();
    m_services.handshakeEnded = [this](const std::string& address, bool failed) { handshakeEnded(address, failed); };
    m_services.recordFailure = [this](const std::string& id, const std::string& address, const std::string& reason,
                                   const std::optional<inventory::Device>& device, const std::string& fingerprint) {
        recordFailure(id, address, reason, device, fingerprint);
    };
    setUpHooks();
    for (unsigned i = 0; i < loops; ++i) {
        m_loops.push_back(std::make_unique<EventLoop>("ch-loop-" + std::to_string(i)));
    }
    m_listener = std::make_unique<Listener>(m_config.listen, [this](Accepted&& a) { onAccept(std::move(a)); });
}

Daemon::~Daemon()
{
    stop();
}

std::vector<config::Endpoint> Daemon::endpoints() const
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

inventory::Writer& Daemon::writer()
{
    return *m_writer;
}

identity::IdentityIndex& Daemon::identityIndex()
{
    return *m_index;
}

Admission& Daemon::admission()
{
    return *m_admission;
}

Metrics& Daemon::metrics()
{
    return *m_metrics;
}

std::string Daemon::metricsText()
{
    // The gauges are read when scraped, not kept current on every change.
    m_metrics->setGauges(static_cast<double>(m_admission->inFlight()), static_cast<double>(m_registry->size()),
        static_cast<double>(connections()));
    return m_metrics->scrape();
}

void Daemon::reloadTrustStore()
{
    if (m_trustStore) {
        m_trustStore->reload();
    }
}

size_t Daemon::connections() const
{
    size_t n = 0;
    for (const auto& l : m_loops) {
        n += l->size();
    }
    return n;
}

void Daemon::start()
{
    {
        std::lock_guard lock(m_liveMutex);
        m_live = std::make_shared<const Live>(Live { std::make_shared<Services>(m_services), m_config });
    }
    // After a crash or kill -9, sessions this listener recorded are gone: nobody is connected until they call again.
    m_inventory->listenerStarted(m_config.listenerId, now());
    m_writer->start();
    syncBlocks();
    m_hooks->start();
    m_registry->start();
    for (auto& l : m_loops) {
        l->start();
    }
    m_housekeeping = std::thread([this] {
        pthread_setname_np(pthread_self(), "ch-admission");
        housekeeping();
    });
    m_listener->start();
}

void Daemon::stop()
{
    if (m_stopped.exchange(true)) {
        return;
    }
    {
        std::lock_guard lock(m_stallMutex); // a loop stalled by a test must come back to be stopped
        m_stallReleased = true;
    }
    m_stallWake.notify_all();
    auto logger = log::get(log::Main);
    if (m_listener) {
        m_listener->stop();
    }
    if (m_hooks) {
        m_hooks->stop(); // no hook delays the shutdown: none starts from here, running ones are killed
    }
    {
        std::lock_guard lock(m_housekeepingMutex);
        m_housekeepingStop = true;
    }
    m_housekeepingWake.notify_all();
    if (m_housekeeping.joinable()) {
        m_housekeeping.join();
    }
    if (m_registry) {
        // Every session gets <close-session>; each waits for its reply at most timeouts/close, all in parallel.
        m_registry->closeAll("listener shutting down");
        m_registry->waitEmpty(liveConfig().closeTimeout + std::chrono::seconds(1)); // as reloaded
    }
    for (auto& l : m_loops) {
        l->stop(); // what is left (handshakes, sessions that did not answer) ends here
    }
    if (m_inventoryWorker) {
        m_inventoryWorker->stop();
    }
    if (m_setupWorkers) {
        m_setupWorkers->stop();
    }
    if (m_sessionWorker) {
        m_sessionWorker->stop();
    }
    if (m_registry) {
        m_registry->stop("listener shutting down");
        m_registry->setHookObservers({}, {}); // ch-sessions has stopped; m_hooks may go before the registry
    }
    if (m_writer) {
        // What is queued gets written, waiting up to one busy timeout for a lock held elsewhere.
        m_writer->stop(std::chrono::seconds(5));
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
    auto t = SteadyClock::now();
    auto verdict = m_admission->admit(accepted.peerAddress, t);
    if (!verdict.admitted()) {
        m_metrics->refused(toString(*verdict.refusal));
        return; // counted; closed by ~UniqueFd; summarised by housekeeping()
    }
    m_metrics->accepted();
    std::string id = "C";
    id += std::to_string(m_nextConnection++); // not "C" + ...: GCC 12 -O3 warns falsely (-Wrestrict)
    auto settings = live(); // as of this accept: a reload applies to later connections
    tuneSocket(accepted.socket.get(), settings->config);
    log::get(log::Listener)
        ->debug("[{} {}] accepted on {} from port {}", id, accepted.peerAddress, accepted.endpoint.toString(),
            accepted.peerPort);
    // The deadline starts now, at accept, not when a loop first looks at the connection.
    auto deadline = t + settings->config.handshakeTimeout;
    auto acceptedAt = now();
    auto* loop = m_loops[m_nextLoop++ % m_loops.size()].get();
    auto shared = std::make_shared<Accepted>(std::move(accepted));
    loop->post([loop, shared, id, deadline, acceptedAt, services = settings->services] {
        auto address = shared->peerAddress;
        auto c = std::make_unique<Connection>(*loop, services, std::move(*shared), id, acceptedAt, deadline);
        auto* raw = c.get();
        raw->begin(loop->adopt(std::move(c)));
    });
}

void Daemon::handshakeEnded(const std::string& address, bool failed)
{
    auto block = m_admission->finished(address, failed, SteadyClock::now());
    if (!block) {
        return;
    }
    log::get(log::Listener)->warn("blocking {} for {} s: {}", block->key, block->duration.count(), block->reason);
    auto until = toSystem(block->until);
    m_writer->post("recording the block of " + block->key, [block = *block, until, at = now()](auto& inv) {
        inv.blockSource(block.key, at, until, block.reason, block.failures);
        return std::function<void()> {};
    });
}

void Daemon::recordFailure(const std::string& connectionId, const std::string& address, const std::string& reason,
    const std::optional<inventory::Device>& device, const std::string& fingerprint)
{
    // A flood of junk must not become a flood of log lines and inventory writes: beyond kFailureBurst per second
    // failures are only counted (admission's summary has them all).
    constexpr double kFailureRate = 20;
    constexpr double kFailureBurst = 50;
    {
        std::lock_guard lock(m_failureMutex);
        auto t = SteadyClock::now();
        m_failureTokens = std::min(
            kFailureBurst, m_failureTokens + kFailureRate * std::chrono::duration<double>(t - m_failureRefill).count());
        m_failureRefill = t;
        if (m_failureTokens < 1) {
            ++m_failuresSuppressed;
            return;
        }
        m_failureTokens -= 1;
    }
    log::get(log::Listener)->warn("[{} {}] handshake failed: {}", connectionId, address, reason);
    inventory::Event event { .at = now(),
        .kind = inventory::EventKind::HandshakeFailed,
        .deviceId = device ? std::optional(device->id) : std::nullopt,
        .deviceName = device ? device->name.value_or("") : "",
        .connectionId = connectionId,
        .address = address,
        .fingerprint = device ? device->fingerprint : fingerprint,
        .detail = reason };
    postEvent(event);
}

void Daemon::postEvent(const inventory::Event& event)
{
    m_writer->post("recording a " + inventory::toString(event.kind) + " event", [event](inventory::Inventory& inv) {
        inv.addEvent(event);
        return std::function<void()> {};
    });
}

void Daemon::prune(SteadyClock::time_point t)
{
    if (t >= m_nextChangePrune) {
        m_nextChangePrune = t + std::chrono::minutes(1);
        // The change log only has to outlive the registry's poll (250 ms); ten minutes covers any stall.
        m_writer->post("pruning the change log", [](inventory::Inventory& inv) {
            inv.pruneChanges(now() - std::chrono::minutes(10));
            return std::function<void()> {};
        });
    }
    const auto r = live()->config.retention;
    if (t < m_nextRetention || (r.eventMaxAge.count() == 0 && r.eventMaxRows == 0)) {
        return;
    }
    m_nextRetention = t + std::chrono::hours(1);
    m_writer->post("event retention", [r](inventory::Inventory& inv) {
        const auto at = now();
        std::optional<TimePoint> cutoff;
        if (r.eventMaxAge.count() > 0) {
            cutoff = at - std::chrono::duration_cast<TimePoint::duration>(r.eventMaxAge);
        }
        if (r.eventMaxRows > 0) {
            if (auto keepFrom = inv.eventTimeKeeping(static_cast<int64_t>(r.eventMaxRows))) {
                cutoff = std::max(cutoff.value_or(*keepFrom), *keepFrom);
            }
        }
        // The schema refuses to delete the last hour; so does this.
        const auto newest = at - std::chrono::hours(1);
        if (cutoff && *cutoff > newest) {
            cutoff = newest;
        }
        if (cutoff) {
            if (auto n = inv.pruneEvents(*cutoff); n > 0) {
                log::get(log::Inventory)->info("retention: deleted {} events older than {}", n, toIso8601(*cutoff));
            }
            // The operation trace follows the same policy (issue 12).
            if (auto n = inv.pruneTrace(*cutoff); n > 0) {
                log::get(log::Inventory)
                    ->info("retention: deleted {} trace records older than {}", n, toIso8601(*cutoff));
            }
        }
        return std::function<void()> {};
    });
}

void Daemon::syncBlocks()
{
    std::vector<PersistedBlock> persisted;
    for (const auto& b : m_inventory->blockedSources(now())) {
        persisted.push_back({ b.source, toSteady(b.until), b.reason });
    }
    for (const auto& key : m_admission->reconcile(persisted, SteadyClock::now())) {
        log::get(log::Listener)->info("{} unblocked by operator", key);
    }
}

void Daemon::housekeeping()
{
    // Refusals are counted in memory on the accept path; here they become one log line and one event per interval,
    // and operator unblocks (callhomectl unblock writes the inventory) reach the admission table.
    auto interval = std::max(m_config.admission.summaryInterval, std::chrono::seconds(1));
    auto nextSummary = SteadyClock::now() + interval;
    uint64_t lastChange = 0;
    std::unique_lock lock(m_housekeepingMutex);
    while (!m_housekeepingStop) {
        m_housekeepingWake.wait_for(lock, std::chrono::milliseconds(500), [this] { return m_housekeepingStop; });
        if (m_housekeepingStop) {
            break;
        }
        lock.unlock();
        try {
            if (auto c = m_inventory->changeCounter(); c != lastChange) {
                lastChange = c;
                syncBlocks();
            }
            if (m_trustStore) {
                m_trustStore->reloadIfChanged(); // a few stat() calls; CRLs and anchors replaced on disk apply live
            }
            prune(SteadyClock::now());
            if (SteadyClock::now() >= nextSummary) {
                nextSummary = SteadyClock::now() + interval;
                auto summary = m_admission->takeSummary();
                uint64_t suppressed = 0;
                {
                    std::lock_guard failures(m_failureMutex);
                    std::swap(suppressed, m_failuresSuppressed);
                }
                if (!summary.quiet()) {
                    auto text = summary.describe();
                    if (suppressed) {
                        text += "; " + std::to_string(suppressed) + " failed handshakes not logged one by one";
                    }
                    log::get(log::Listener)->warn("admission: {}", text);
                    postEvent({ .at = now(), .kind = inventory::EventKind::RefusedSummary, .detail = text });
                }
                if (auto capped = m_identity->takeCapped(); capped.total() > 0) {
                    auto text = capped.describe(m_identity->caps());
                    log::get(log::Identity)->warn("{}", text);
                    postEvent({ .at = now(), .kind = inventory::EventKind::PendingCapped, .detail = text });
                }
                if (auto dropped = m_writer->takeDropped(); dropped > 0) {
                    auto text = std::to_string(dropped) + " inventory records not written: the write queue was full ("
                        + std::to_string(m_writer->stats().queued) + " waiting)";
                    log::get(log::Inventory)->error("{}", text);
                    postEvent({ .at = now(), .kind = inventory::EventKind::WritesDropped, .detail = text });
                }
                if (auto dropped = m_hooks->takeDropped(); dropped > 0) {
                    auto text = std::to_string(dropped) + " hooks not run: hooks/max-queued were waiting";
                    log::get(log::Main)->error("{}", text);
                    postEvent({ .at = now(), .kind = inventory::EventKind::Hook, .detail = text });
                }
            }
        } catch (const std::exception& e) {
            log::get(log::Listener)->error("admission housekeeping: {}", e.what());
        }
        lock.lock();
    }
}

// ---- Hooks (config hooks/...: server/HookRunner.h) ----

void Daemon::setUpHooks()
{
    m_hooks = std::make_unique<HookRunner>(HookRunner::Options {
        .settings =
            [this] {
                auto l = live();
                return l ? l->config.hooks : m_config.hooks;
            },
        .record = [this](const inventory::Event& event) { postEvent(event); },
        .metrics = m_metrics.get(),
        .controlSocket = m_config.control.socket,
        .stateDir = m_config.stateDir,
    });
    m_services.hooks = m_hooks.get();
    auto describe = [this](HookKind kind, const LiveSession& live) {
        HookEvent e { .kind = kind,
            .deviceId = live.deviceId,
            .deviceName = live.deviceName,
            .address = live.address,
            .transport = live.transport,
            .fingerprint = live.fingerprint,
            .connectionId = live.connectionId };
        if (auto device = m_index->byId(live.deviceId)) { // from memory: ch-sessions never waits on SQLite
            e.manufacturer = device->manufacturer;
            e.serial = device->serial;
        }
        return e;
    };
    m_registry->setHookObservers(
        [this, describe](const LiveSession& live) {
            auto e = describe(HookKind::Connect, live);
            e.capabilities = live.session->capabilities();
            m_hooks->submit(std::move(e));
        },
        [this, describe](const LiveSession& live, const std::string& reason) {
            auto e = describe(HookKind::Disconnect, live);
            e.reason = reason;
            m_hooks->submit(std::move(e));
        });
}

// ---- Live reconfiguration, service status and the watchdog's heartbeat (SIGHUP, sd_notify) ----

std::shared_ptr<const Daemon::Live> Daemon::live() const
{
    std::lock_guard lock(m_liveMutex);
    return m_live;
}

config::Config Daemon::liveConfig() const
{
    auto l = live();
    return l ? l->config : m_config;
}

Daemon::ReloadReport Daemon::reload(const config::Config& next)
{
    std::lock_guard reloading(m_reloadMutex);
    auto current = live();
    if (!current) {
        throw Error("reload before start");
    }
    auto logger = log::get(log::Main);
    ReloadReport report;
    report.restart = config::restartNeeded(current->config, next);
    config::Config applied = current->config;

    // Endpoints first: a port that cannot be bound refuses the whole reload before anything else changed.
    auto wanted = next.listen;
    if (!m_tlsContext) {
        // No TLS context without a TLS endpoint at start; restartNeeded() reported "listen (a first tls endpoint)".
        std::erase_if(wanted, [](const config::Endpoint& e) { return e.transport == config::Transport::Tls; });
    }
    auto endpoints = m_listener->update(wanted);
    applied.listen = wanted;
    if (!endpoints.added.empty() || !endpoints.removed.empty()) {
        std::string what = "listen (";
        for (const auto& e : endpoints.added) {
            what += (what.back() == '(' ? "+" : " +") + e.toString();
        }
        for (const auto& e : endpoints.removed) {
            what += (what.back() == '(' ? "-" : " -") + e.toString();
        }
        report.applied.push_back(what + ")");
    }

    auto services = std::make_shared<Services>(*current->services);
    auto change = [&](bool differs, const char* path) {
        if (differs) {
            report.applied.emplace_back(path);
        }
    };
    change(applied.sshUser != next.sshUser, "ssh/user");
    change(applied.sshPassword != next.sshPassword, "ssh/password");
    change(applied.handshakeTimeout != next.handshakeTimeout || applied.keepaliveInterval != next.keepaliveInterval
            || applied.keepaliveCountMax != next.keepaliveCountMax || applied.deadPeer != next.deadPeer
            || applied.closeTimeout != next.closeTimeout || applied.schemaFetchTimeout != next.schemaFetchTimeout,
        "timeouts");
    change(applied.maxMessage != next.maxMessage, "limits/max-message");
    applied.sshUser = next.sshUser;
    applied.sshPassword = next.sshPassword;
    applied.handshakeTimeout = next.handshakeTimeout;
    applied.keepaliveInterval = next.keepaliveInterval;
    applied.keepaliveCountMax = next.keepaliveCountMax;
    applied.deadPeer = next.deadPeer;
    applied.closeTimeout = next.closeTimeout;
    applied.schemaFetchTimeout = next.schemaFetchTimeout;
    applied.maxMessage = next.maxMessage;
    applied.logLevels = next.logLevels;
    services->sshUser = applied.sshUser;
    services->sshPassword = applied.sshPassword;
    services->limits.schemaFetch = applied.schemaFetchTimeout;
    services->limits.close = applied.closeTimeout;
    services->limits.keepaliveInterval = applied.keepaliveInterval;
    services->limits.keepaliveCountMax = applied.keepaliveCountMax;
    services->limits.maxMessage = applied.maxMessage;

    // Admission: everything but the global cap (the worker queues were sized from it) and the summary interval.
    auto admission = next.admission;
    admission.maxHandshakes = applied.admission.maxHandshakes;
    admission.summaryInterval = applied.admission.summaryInterval;
    // The pending caps are the identity policy's, fixed at start (restartNeeded() says so).
    admission.maxPending = applied.admission.maxPending;
    admission.maxPendingPerSource = applied.admission.maxPendingPerSource;
    change(applied.duplicateSessions != next.duplicateSessions, "sessions/duplicate");
    applied.duplicateSessions = next.duplicateSessions;
    m_registry->setDuplicatePolicy(applied.duplicateSessions);
    change(applied.autoApprove != next.autoApprove, "admission/auto-approve");
    applied.autoApprove = next.autoApprove;
    m_identity->setAutoApprove(applied.autoApprove);
    change(applied.hooks != next.hooks, "hooks");
    applied.hooks = next.hooks; // read by the hook runner at each hook
    change(applied.retention != next.retention, "retention");
    applied.retention = next.retention; // read by the next retention run
    if (admission != applied.admission) {
        auto limits = admissionLimits(admission, RLIM_INFINITY);
        auto running = m_admission->limits();
        limits.maxHandshakes = running.maxHandshakes;
        limits.maxSources = running.maxSources;
        m_admission->setLimits(limits);
        applied.admission = admission;
        report.applied.emplace_back("admission");
    }

    {
        std::lock_guard lock(m_liveMutex);
        m_live = std::make_shared<const Live>(Live { std::move(services), std::move(applied) });
    }
    if (m_trustStore) {
        report.trustStoreOk = m_trustStore->reload().ok; // logged by the holder, with the reason when it failed
    }
    std::string text;
    for (const auto& a : report.applied) {
        text += (text.empty() ? "" : ", ") + a;
    }
    logger->info("configuration reloaded: {}", text.empty() ? "no live setting changed" : "applied " + text);
    if (!report.restart.empty()) {
        std::string paths;
        for (const auto& r : report.restart) {
            paths += (paths.empty() ? "" : ", ") + r;
        }
        logger->warn("configuration reloaded: changed but needs a restart, still running the old value: {}", paths);
    }
    return report;
}

std::unique_ptr<Heartbeat> Daemon::heartbeat()
{
    std::vector<Heartbeat::Part> parts;
    for (auto& l : m_loops) {
        auto* loop = l.get();
        parts.push_back({ loop->name(), [loop](std::function<void()> task) {
                             loop->post(std::move(task));
                             return true;
                         } });
    }
    // Not ch-inventory or ch-writer: they may wait, alive, for a write lock another process holds.
    auto* sessions = m_sessionWorker.get();
    parts.push_back(
        { "ch-sessions", [sessions](std::function<void()> task) { return sessions->trySubmit(std::move(task)); } });
    return std::make_unique<Heartbeat>(std::move(parts));
}

std::string Daemon::statusLine()
{
    const auto pending = m_index->pending(); // from memory: no inventory query however large it is
    auto sessions = m_registry->size();
    auto handshakes = m_admission->inFlight();
    return std::to_string(sessions) + (sessions == 1 ? " session" : " sessions") + " held, " + std::to_string(pending)
        + (pending == 1 ? " device" : " devices") + " pending, " + std::to_string(handshakes)
        + (handshakes == 1 ? " handshake" : " handshakes") + " in flight";
}

void Daemon::stallEventLoopForTest()
{
    auto* loop = m_loops.front().get();
    log::get(log::Main)->warn("stalling {} until callhomed stops (test hook)", loop->name());
    loop->post([this] {
        std::unique_lock lock(m_stallMutex);
        m_stallWake.wait(lock, [this] { return m_stallReleased; }); // released by stop()
    });
}
} // namespace callhome::server
