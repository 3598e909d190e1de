#include "server/Watchdog.h"
#include "common/Log.h"
#include "common/Systemd.h"
#include <pthread.h>

namespace callhome::server {
Heartbeat::Heartbeat(std::vector<Part> parts)
    : m_parts(std::move(parts))
    , m_posted(m_parts.size(), false)
{
    for (size_t i = 0; i < m_parts.size(); ++i) {
        m_states.push_back(std::make_shared<State>());
    }
}

std::optional<std::string> Heartbeat::beat()
{
    std::optional<std::string> late;
    for (size_t i = 0; i < m_parts.size(); ++i) {
        if (m_beat > 0 && (!m_posted[i] || m_states[i]->ran.load() < m_beat)) {
            late = m_parts[i].name;
            break;
        }
    }
    ++m_beat;
    for (size_t i = 0; i < m_parts.size(); ++i) {
        m_posted[i] = m_parts[i].post([state = m_states[i], beat = m_beat] {
            auto seen = state->ran.load();
            while (seen < beat && !state->ran.compare_exchange_weak(seen, beat)) { }
        });
    }
    return late;
}

ServiceNotifier::ServiceNotifier(
    Options options, std::unique_ptr<Heartbeat> heartbeat, std::function<std::string()> status)
    : m_options(options)
    , m_heartbeat(std::move(heartbeat))
    , m_status(std::move(status))
{
    m_thread = std::thread([this] {
        pthread_setname_np(pthread_self(), "ch-watchdog");
        run();
    });
}

ServiceNotifier::~ServiceNotifier()
{
    stop();
}

void ServiceNotifier::refresh()
{
    {
        std::lock_guard lock(m_mutex);
        m_refresh = true;
    }
    m_wake.notify_all();
}

void ServiceNotifier::stop()
{
    {
        std::lock_guard lock(m_mutex);
        m_stop = true;
    }
    m_wake.notify_all();
    if (m_thread.joinable()) {
        m_thread.join();
    }
}

void ServiceNotifier::run()
{
    using Clock = std::chrono::steady_clock;
    auto logger = log::get(log::Main);
    // Half the interval, as sd_watchdog_enabled(3) advises: one late ping does not get us killed.
    const auto ping = m_options.watchdog
        ? std::max<Clock::duration>(std::chrono::milliseconds(1), *m_options.watchdog / 2)
        : Clock::duration::max();
    auto nextPing = Clock::now();
    auto nextStatus = Clock::now();
    std::string lastStatus;
    bool wasLate = false;
    std::unique_lock lock(m_mutex);
    while (!m_stop) {
        lock.unlock();
        auto t = Clock::now();
        if (m_options.watchdog && t >= nextPing) {
            nextPing = t + ping;
            if (auto late = m_heartbeat->beat()) {
                if (!wasLate) {
                    logger->error("{} did not run its heartbeat within {} ms: not feeding the systemd watchdog", *late,
                        std::chrono::duration_cast<std::chrono::milliseconds>(ping).count());
                }
                wasLate = true;
            } else {
                if (wasLate) {
                    logger->warn("every engine thread runs its heartbeat again: feeding the systemd watchdog");
                }
                wasLate = false;
                systemd::notify("WATCHDOG=1");
            }
        }
        bool refresh = false;
        {
            std::lock_guard guard(m_mutex);
            std::swap(refresh, m_refresh);
        }
        if (refresh || t >= nextStatus) {
            nextStatus = t + m_options.statusInterval;
            try {
                auto text = m_status();
                if (text != lastStatus) {
                    lastStatus = text;
                    systemd::notify("STATUS=" + text);
                }
            } catch (const std::exception& e) {
                logger->warn("service status: {}", e.what());
            }
        }
        lock.lock();
        auto wakeAt = std::min(nextStatus, m_options.watchdog ? nextPing : Clock::time_point::max());
        m_wake.wait_until(lock, wakeAt, [this] { return m_stop || m_refresh; });
    }
}
} // namespace callhome::server
