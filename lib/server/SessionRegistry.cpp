#include "server/SessionRegistry.h"
#include "common/Log.h"
#include "identity/IdentityIndex.h"
#include "inventory/Inventory.h"
#include "inventory/Writer.h"
#include "netconf/Session.h"
#include <fmt/format.h>
#include <pthread.h>

namespace callhome::server {
using Clock = std::chrono::steady_clock;

SessionRegistry::SessionRegistry(
    inventory::Inventory& inventory, inventory::Writer& writer, identity::IdentityIndex& index, Options options)
    : m_inventory(inventory)
    , m_writer(writer)
    , m_index(index)
    , m_options(std::move(options))
{ }

SessionRegistry::~SessionRegistry()
{
    stop("listener shutting down");
}

void SessionRegistry::start()
{
    m_thread = std::thread([this] {
        pthread_setname_np(pthread_self(), "ch-registry");
        run();
    });
}

void SessionRegistry::add(uint64_t token, LiveSession&& session)
{
    auto live = std::make_shared<LiveSession>(std::move(session));
    std::shared_ptr<LiveSession> previous;
    const bool refuse = m_duplicate == config::DuplicateSessions::Refuse;
    {
        std::lock_guard lock(m_mutex);
        if (auto it = m_byDevice.find(live->deviceId); it != m_byDevice.end()) {
            if (auto p = m_sessions.find(it->second); p != m_sessions.end()) {
                previous = p->second;
            }
        }
        // A refused duplicate is held only until its connection ends (ended() frees it): the device's session of
        // record, its name and its inventory rows stay the older session's.
        live->duplicateRefused = previous && refuse;
        m_sessions[token] = live;
        if (!live->duplicateRefused) {
            m_byDevice[live->deviceId] = token;
            if (!live->deviceName.empty()) {
                m_byName[live->deviceName] = token;
            }
        }
    }
    if (previous) {
        recordDuplicate(*previous, live->connectionId, live->address, live->duplicateRefused);
        if (live->duplicateRefused) {
            live->close("duplicate session refused: " + previous->connectionId + " is alive from " + previous->address);
            m_changed.notify_all();
            return;
        }
        previous->close(
            "replaced by a new call home from the device (" + live->connectionId + " from " + live->address + ")");
    }
    // An operator's decision that reached the index after this device was admitted: the monitor may have looked at
    // the held sessions before this one was added, so look here too. The index may also be behind the other way (a
    // device approved a moment ago, admitted by the inventory itself): only the inventory's own record can close it.
    if (auto indexed = m_index.byId(live->deviceId); !indexed || indexed->state != inventory::DeviceState::Approved) {
        try {
            enforce(*live, m_inventory.findById(live->deviceId));
        } catch (const std::exception& e) {
            log::get(log::Inventory)->error("checking {}'s state: {}", live->deviceName, e.what());
        }
    }
    inventory::Event opened { .at = now(),
        .kind = inventory::EventKind::SessionOpened,
        .deviceId = live->deviceId,
        .deviceName = live->deviceName,
        .connectionId = live->connectionId,
        .address = live->address,
        .fingerprint = live->fingerprint,
        .detail = "NETCONF " + live->session->version() + " session " + std::to_string(live->session->sessionId())
            + ", " + std::to_string(live->session->capabilities().size()) + " capabilities" };
    m_writer.post("recording " + live->deviceName + "'s session",
        [deviceId = live->deviceId, listener = m_options.listenerId, start = live->start,
            capabilities = live->session->capabilities(), opened](inventory::Inventory& inv) {
            try {
                inv.sessionOpened(deviceId, listener, start, capabilities);
            } catch (const inventory::NotFound&) {
                // forgotten since: the session is being closed; its event is still history
            }
            inv.addEvent(opened);
            return std::function<void()> {};
        });
    m_changed.notify_all();
    if (m_hookUp) {
        m_hookUp(*live); // on-connect: after the session is findable
    }
    // Staged configuration: the applier looks at the device's queue on its own thread.
    {
        std::lock_guard lock(m_stagedMutex);
        if (m_stagedTrigger) {
            m_stagedTrigger(live->deviceId);
        }
    }
}

void SessionRegistry::setStagedTrigger(std::function<void(int64_t deviceId)> trigger)
{
    std::lock_guard lock(m_stagedMutex);
    m_stagedTrigger = std::move(trigger);
}

void SessionRegistry::ended(uint64_t token, const std::string& reason)
{
    std::shared_ptr<LiveSession> live;
    bool deviceHasNewer = false;
    {
        std::lock_guard lock(m_mutex);
        auto it = m_sessions.find(token);
        if (it == m_sessions.end()) {
            return;
        }
        live = it->second;
        m_sessions.erase(it);
        if (auto d = m_byDevice.find(live->deviceId); d != m_byDevice.end()) {
            if (d->second == token) {
                m_byDevice.erase(d);
            } else {
                deviceHasNewer = true;
            }
        }
        if (auto n = m_byName.find(live->deviceName); n != m_byName.end() && n->second == token) {
            m_byName.erase(n);
        }
    }
    live->session->close(); // the pump has closed its end: libnetconf2 finds the transport gone at once
    if (live->duplicateRefused) {
        // never recorded as opened: the duplicate-session event is its record
        log::get(log::Netconf)
            ->info("[{} {}] duplicate session with {} closed: {}", live->connectionId, live->address, live->deviceName,
                reason);
        m_changed.notify_all();
        return;
    }
    log::get(log::Netconf)
        ->info("[{} {}] session with {} closed: {}", live->connectionId, live->address, live->deviceName, reason);
    inventory::Event closed { .at = now(),
        .kind = inventory::EventKind::SessionClosed,
        .deviceId = live->deviceId,
        .deviceName = live->deviceName,
        .connectionId = live->connectionId,
        .address = live->address,
        .fingerprint = live->fingerprint,
        .detail = reason };
    m_writer.post("recording the end of " + live->deviceName + "'s session",
        [deviceId = live->deviceId, listener = m_options.listenerId, deviceHasNewer, closed](
            inventory::Inventory& inv) {
            if (!deviceHasNewer) {
                inv.sessionClosed(deviceId, listener);
            }
            inv.addEvent(closed);
            return std::function<void()> {};
        });
    m_changed.notify_all();
    if (m_hookDown) {
        m_hookDown(*live, reason); // on-disconnect
    }
}

void SessionRegistry::recordDuplicate(
    const LiveSession& live, const std::string& connectionId, const std::string& address, bool refused)
{
    const auto name = live.deviceName.empty() ? "#" + std::to_string(live.deviceId) : live.deviceName;
    inventory::Event duplicate { .at = now(),
        .kind = inventory::EventKind::DuplicateSession,
        .deviceId = live.deviceId,
        .deviceName = live.deviceName,
        .connectionId = connectionId,
        .address = address,
        .fingerprint = live.fingerprint,
        .detail = refused ? "refused, " + live.connectionId + " is alive from " + live.address
                          : "replaced " + live.connectionId + " from " + live.address };
    log::get(log::Netconf)
        ->info("[{} {}] {} called again while its session is up: {}", connectionId, address, name, duplicate.detail);
    std::optional<inventory::Event> cloned;
    if (address != live.address) {
        const auto identity = live.transport == "tls" ? "certificate" : "host key";
        cloned = inventory::Event { .at = duplicate.at,
            .kind = inventory::EventKind::ClonedIdentity,
            .deviceId = live.deviceId,
            .deviceName = live.deviceName,
            .connectionId = connectionId,
            .address = address,
            .fingerprint = live.fingerprint,
            .detail = fmt::format("{} from {} presented the {} of {} while its session {} from {} is alive: a "
                                  "cloned or vendor-default {}? ({})",
                connectionId, address, identity, name, live.connectionId, live.address, identity,
                refused ? "the new connection was refused" : "the older session was replaced") };
        log::get(log::Identity)->warn("[{} {}] {}", connectionId, address, cloned->detail);
    }
    m_writer.post("recording a duplicate session of " + name, [duplicate, cloned](inventory::Inventory& inv) {
        inv.addEvent(duplicate);
        if (cloned) {
            inv.addEvent(*cloned);
        }
        return std::function<void()> {};
    });
}

void SessionRegistry::closeAll(const std::string& reason)
{
    std::vector<std::shared_ptr<LiveSession>> all;
    {
        std::lock_guard lock(m_mutex);
        for (const auto& [token, live] : m_sessions) {
            all.push_back(live);
        }
    }
    for (const auto& live : all) {
        live->close(reason);
    }
}

bool SessionRegistry::waitEmpty(std::chrono::milliseconds timeout)
{
    std::unique_lock lock(m_mutex);
    return m_changed.wait_for(lock, timeout, [this] { return m_sessions.empty(); });
}

void SessionRegistry::enforce(const LiveSession& live, const std::optional<inventory::Device>& device)
{
    if (!device) {
        live.close("device forgotten by operator");
    } else if (device->state == inventory::DeviceState::Revoked) {
        live.close("identity revoked by operator");
    } else if (device->state != inventory::DeviceState::Approved) {
        live.close("device " + inventory::toString(device->state) + " by operator");
    }
}

void SessionRegistry::followChanges()
{
    for (const auto& [deviceId, device] : m_index.follow(m_inventory)) {
        if (auto live = find(deviceId)) {
            enforce(*live, device);
            // Several instances on one inventory: the device's newest live session is another instance's (it called
            // that one, e.g. through a load balancer, while ours may be a dead connection not noticed yet).
            if (device && device->listenerId && *device->listenerId != m_options.listenerId) {
                live->close("taken over by instance " + *device->listenerId + " (the device called it)");
            }
        }
    }
}

void SessionRegistry::run()
{
    auto logger = log::get(log::Netconf);
    uint64_t lastChange = 0;
    try {
        lastChange = m_inventory.changeCounter();
    } catch (const std::exception& e) {
        logger->error("session monitor: {}", e.what());
    }
    auto nextHeartbeat = Clock::now();
    auto nextPoll = Clock::now() + m_options.inventoryPoll;
    std::unique_lock lock(m_mutex);
    while (!m_stopping) {
        m_wake.wait_until(lock, std::min(nextHeartbeat, nextPoll), [this] { return m_stopping; });
        if (m_stopping) {
            break;
        }
        lock.unlock();
        auto t = Clock::now();
        try {
            if (t >= nextPoll) {
                nextPoll = t + m_options.inventoryPoll;
                if (auto c = m_inventory.changeCounter(); c != lastChange) {
                    followChanges();
                    lastChange = c;
                }
            }
            if (t >= nextHeartbeat) {
                nextHeartbeat = t + m_options.heartbeatInterval;
                m_writer.heartbeat(m_options.listenerId, now());
            }
        } catch (const std::exception& e) {
            // An unavailable inventory must not take held sessions down; try again on the next tick.
            logger->error("session monitor: {}", e.what());
        }
        lock.lock();
    }
}

void SessionRegistry::stop(const std::string& reason)
{
    {
        std::lock_guard lock(m_mutex);
        m_stopping = true;
    }
    m_wake.notify_all();
    if (m_thread.joinable()) {
        m_thread.join();
    }
    std::vector<uint64_t> left;
    {
        std::lock_guard lock(m_mutex);
        for (const auto& [token, live] : m_sessions) {
            left.push_back(token);
        }
    }
    for (auto token : left) {
        ended(token, reason);
    }
}

std::vector<std::shared_ptr<const LiveSession>> SessionRegistry::sessions() const
{
    std::lock_guard lock(m_mutex);
    std::vector<std::shared_ptr<const LiveSession>> out;
    out.reserve(m_sessions.size());
    for (const auto& [token, live] : m_sessions) {
        if (!live->duplicateRefused) {
            out.push_back(live);
        }
    }
    return out;
}

std::shared_ptr<const LiveSession> SessionRegistry::find(int64_t deviceId) const
{
    std::lock_guard lock(m_mutex);
    auto it = m_byDevice.find(deviceId);
    if (it == m_byDevice.end()) {
        return nullptr;
    }
    auto s = m_sessions.find(it->second);
    return s == m_sessions.end() ? nullptr : s->second;
}

std::shared_ptr<const LiveSession> SessionRegistry::findByName(const std::string& name) const
{
    std::lock_guard lock(m_mutex);
    auto it = m_byName.find(name);
    if (it == m_byName.end()) {
        return nullptr;
    }
    auto s = m_sessions.find(it->second);
    return s == m_sessions.end() ? nullptr : s->second;
}

void SessionRegistry::setHookObservers(
    std::function<void(const LiveSession&)> up, std::function<void(const LiveSession&, const std::string& reason)> down)
{
    m_hookUp = std::move(up);
    m_hookDown = std::move(down);
}

size_t SessionRegistry::size() const
{
    std::lock_guard lock(m_mutex);
    return m_sessions.size();
}
} // namespace callhome::server
