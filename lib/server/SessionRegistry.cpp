#include "server/SessionRegistry.h"
#include "common/Error.h"
#include "common/Log.h"
#include "inventory/Inventory.h"
#include "netconf/Session.h"
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace callhome::server {
using Clock = std::chrono::steady_clock;

SessionRegistry::SessionRegistry(inventory::Inventory& inventory, Options options)
    : m_inventory(inventory)
    , m_options(std::move(options))
{
    m_epoll.reset(::epoll_create1(EPOLL_CLOEXEC));
    m_wake.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!m_epoll || !m_wake) {
        throw Error(std::string("session registry: ") + std::strerror(errno));
    }
    epoll_event ev {};
    ev.events = EPOLLIN;
    ev.data.u64 = 0;
    ::epoll_ctl(m_epoll.get(), EPOLL_CTL_ADD, m_wake.get(), &ev);
}

SessionRegistry::~SessionRegistry()
{
    stop("listener shutting down");
}

void SessionRegistry::start()
{
    m_thread = std::thread([this] { run(); });
}

void SessionRegistry::add(LiveSession&& session)
{
    auto live = std::make_shared<LiveSession>(std::move(session));
    std::optional<uint64_t> previous;
    uint64_t token;
    {
        std::lock_guard lock(m_mutex);
        if (auto it = m_byDevice.find(live->deviceId); it != m_byDevice.end()) {
            previous = it->second;
        }
        token = m_nextToken++;
        m_sessions[token] = live;
        m_byDevice[live->deviceId] = token;
    }
    if (previous) {
        closeByToken(*previous, "replaced by a new call home from the device");
    }
    m_inventory.sessionOpened(live->deviceId, m_options.listenerId, live->start, live->session->capabilities());
    m_inventory.addEvent(inventory::Event { .at = now(),
        .kind = inventory::EventKind::SessionOpened,
        .deviceId = live->deviceId,
        .deviceName = live->deviceName,
        .connectionId = live->connectionId,
        .address = live->address,
        .fingerprint = live->fingerprint,
        .detail = "NETCONF " + live->session->version() + " session " + std::to_string(live->session->sessionId())
            + ", " + std::to_string(live->session->capabilities().size()) + " capabilities" });
    epoll_event ev {};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = token;
    if (::epoll_ctl(m_epoll.get(), EPOLL_CTL_ADD, live->session->fd(), &ev) != 0) {
        closeByToken(token, std::string("cannot watch the session: ") + std::strerror(errno));
        return;
    }
    if (m_stopping) {
        // Raced with shutdown: the monitor may already have closed everything else.
        closeByToken(token, "listener shutting down");
    }
}

std::shared_ptr<LiveSession> SessionRegistry::take(uint64_t token)
{
    std::lock_guard lock(m_mutex);
    auto it = m_sessions.find(token);
    if (it == m_sessions.end()) {
        return nullptr;
    }
    auto live = it->second;
    m_sessions.erase(it);
    if (auto d = m_byDevice.find(live->deviceId); d != m_byDevice.end() && d->second == token) {
        m_byDevice.erase(d);
    }
    return live;
}

void SessionRegistry::closeByToken(uint64_t token, const std::string& reason)
{
    auto live = take(token);
    if (!live) {
        return;
    }
    // Unwatch before libnetconf2 closes the descriptor, which may then be reused by a new connection.
    ::epoll_ctl(m_epoll.get(), EPOLL_CTL_DEL, live->session->fd(), nullptr);
    live->session->close();
    log::get(log::Netconf)
        ->info("[{} {}] session with {} closed: {}", live->connectionId, live->address, live->deviceName, reason);
    try {
        m_inventory.sessionClosed(live->deviceId, m_options.listenerId);
        m_inventory.addEvent(inventory::Event { .at = now(),
            .kind = inventory::EventKind::SessionClosed,
            .deviceId = live->deviceId,
            .deviceName = live->deviceName,
            .connectionId = live->connectionId,
            .address = live->address,
            .fingerprint = live->fingerprint,
            .detail = reason });
    } catch (const std::exception& e) {
        log::get(log::Inventory)->error("recording the end of {}'s session: {}", live->deviceName, e.what());
    }
}

void SessionRegistry::reconcile()
{
    std::vector<std::pair<uint64_t, int64_t>> held;
    {
        std::lock_guard lock(m_mutex);
        for (const auto& [token, live] : m_sessions) {
            held.emplace_back(token, live->deviceId);
        }
    }
    if (held.empty()) {
        return;
    }
    // One query for all: every call-home attempt changes the inventory, so this runs often under load.
    std::map<int64_t, inventory::Device> devices;
    for (auto& d : m_inventory.devices()) {
        devices.emplace(d.id, std::move(d));
    }
    std::vector<std::pair<uint64_t, std::string>> closing;
    for (const auto& [token, deviceId] : held) {
        auto it = devices.find(deviceId);
        if (it == devices.end()) {
            closing.emplace_back(token, "device forgotten by operator");
        } else if (it->second.state == inventory::DeviceState::Revoked) {
            closing.emplace_back(token, "identity revoked by operator");
        } else if (it->second.state != inventory::DeviceState::Approved) {
            closing.emplace_back(token, "device " + inventory::toString(it->second.state) + " by operator");
        }
    }
    closeMany(closing);
}

void SessionRegistry::closeMany(const std::vector<std::pair<uint64_t, std::string>>& closing)
{
    // Each close waits up to libnetconf2's <close-session> reply timeout (200 ms in 2.0.24) for a silent peer, so a
    // batch (mass revocation, shutdown) is closed by several threads, started only for the batch.
    constexpr size_t kMaxClosers = 16;
    std::atomic<size_t> next { 0 };
    auto worker = [&] {
        for (size_t i; (i = next++) < closing.size();) {
            closeByToken(closing[i].first, closing[i].second);
        }
    };
    std::vector<std::thread> helpers;
    for (size_t i = 1; i < std::min(kMaxClosers, closing.size()); ++i) {
        helpers.emplace_back(worker);
    }
    worker();
    for (auto& t : helpers) {
        t.join();
    }
}

void SessionRegistry::keepalives()
{
    std::vector<std::pair<uint64_t, std::shared_ptr<LiveSession>>> held;
    {
        std::lock_guard lock(m_mutex);
        held.assign(m_sessions.begin(), m_sessions.end());
    }
    for (const auto& [token, live] : held) {
        if (!live->session->sendKeepalive()) {
            closeByToken(token, "keepalive failed: connection lost");
        }
    }
}

void SessionRegistry::run()
{
    auto logger = log::get(log::Netconf);
    uint64_t lastChange = m_inventory.changeCounter();
    auto nextHeartbeat = Clock::now();
    auto nextPoll = Clock::now() + m_options.inventoryPoll;
    auto nextKeepalive = Clock::now() + m_options.keepaliveInterval;
    epoll_event events[64];
    while (!m_stopping) {
        auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::min({ nextHeartbeat, nextPoll, nextKeepalive }) - Clock::now());
        int n = ::epoll_wait(m_epoll.get(), events, 64, std::max<int>(0, static_cast<int>(wait.count())));
        if (n < 0 && errno != EINTR) {
            logger->critical("epoll_wait: {}", std::strerror(errno));
            return;
        }
        for (int i = 0; i < n; ++i) {
            uint64_t token = events[i].data.u64;
            if (token == 0) {
                continue; // woken for shutdown
            }
            std::shared_ptr<LiveSession> live;
            {
                std::lock_guard lock(m_mutex);
                if (auto it = m_sessions.find(token); it != m_sessions.end()) {
                    live = it->second;
                }
            }
            if (!live) {
                continue;
            }
            if (!live->session->processIncoming()) {
                closeByToken(token, "device closed the connection");
            }
        }
        auto t = Clock::now();
        try {
            if (t >= nextPoll) {
                nextPoll = t + m_options.inventoryPoll;
                if (auto c = m_inventory.changeCounter(); c != lastChange) {
                    lastChange = c;
                    reconcile();
                }
            }
            if (t >= nextHeartbeat) {
                nextHeartbeat = t + m_options.heartbeatInterval;
                m_inventory.heartbeat(m_options.listenerId, now());
            }
            if (m_options.keepaliveInterval.count() > 0 && t >= nextKeepalive) {
                nextKeepalive = t + m_options.keepaliveInterval;
                keepalives();
            }
        } catch (const std::exception& e) {
            // An unavailable inventory must not take held sessions down; try again on the next tick.
            logger->error("session monitor: {}", e.what());
        }
    }
}

void SessionRegistry::stop(const std::string& reason)
{
    if (!m_stopping.exchange(true)) {
        uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(m_wake.get(), &one, sizeof one);
    }
    if (m_thread.joinable()) {
        m_thread.join();
    }
    std::vector<std::pair<uint64_t, std::string>> closing;
    {
        std::lock_guard lock(m_mutex);
        for (const auto& [token, live] : m_sessions) {
            closing.emplace_back(token, reason);
        }
    }
    closeMany(closing);
}

std::vector<SessionInfo> SessionRegistry::sessions() const
{
    std::lock_guard lock(m_mutex);
    std::vector<SessionInfo> out;
    for (const auto& [token, live] : m_sessions) {
        out.push_back({ live->deviceId, live->deviceName, live->connectionId, live->address, live->start });
    }
    return out;
}

size_t SessionRegistry::size() const
{
    std::lock_guard lock(m_mutex);
    return m_sessions.size();
}
} // namespace callhome::server
