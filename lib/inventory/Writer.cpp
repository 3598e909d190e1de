#include "inventory/Writer.h"
#include "common/Log.h"
#include <pthread.h>

namespace callhome::inventory {
using Clock = std::chrono::steady_clock;

Writer::Writer(std::unique_ptr<Inventory> connection, Options options)
    : m_inventory(std::move(connection))
    , m_options(options)
{
    m_options.maxBatch = std::max<size_t>(m_options.maxBatch, 1);
}

Writer::~Writer()
{
    stop(std::chrono::milliseconds(0));
}

void Writer::start()
{
    std::lock_guard lock(m_mutex);
    if (m_started) {
        return;
    }
    m_started = true;
    m_thread = std::thread([this] {
        pthread_setname_np(pthread_self(), "ch-writer");
        run();
    });
}

bool Writer::post(const std::string& what, Op op)
{
    {
        std::lock_guard lock(m_mutex);
        if (m_stopping || m_queue.size() >= m_options.maxQueued) {
            ++m_stats.dropped;
            ++m_droppedSinceTaken;
            return false;
        }
        m_queue.push_back({ what, std::move(op), {} });
    }
    m_wake.notify_one();
    return true;
}

void Writer::enqueueCall(const std::string& what, Op op, std::function<void(const std::string&)> dropped)
{
    {
        std::lock_guard lock(m_mutex);
        if (!m_stopping && m_queue.size() < m_options.maxQueued) {
            m_queue.push_back({ what, std::move(op), std::move(dropped) });
            m_wake.notify_one();
            return;
        }
    }
    dropped(what + ": the inventory writer is " + (m_stopping ? "stopped" : "overloaded (queue full)"));
}

void Writer::heartbeat(const std::string& listenerId, TimePoint at)
{
    {
        std::lock_guard lock(m_mutex);
        m_heartbeat = std::pair(listenerId, at);
    }
    m_wake.notify_one();
}

bool Writer::writeOnce(std::deque<Item>& batch, const std::optional<std::pair<std::string, TimePoint>>& beat)
{
    std::vector<std::function<void()>> after;
    uint64_t failed = 0;
    std::deque<Item> done;
    try {
        m_inventory->writeBatch([&] {
            if (beat) {
                m_inventory->heartbeat(beat->first, beat->second);
            }
            for (auto& item : batch) {
                try {
                    if (auto then = item.op(*m_inventory)) {
                        after.push_back(std::move(then));
                    }
                } catch (const std::exception& e) {
                    // Its savepoint is undone; the others stand. Not retried: the same write would fail again.
                    ++failed;
                    log::get(log::Inventory)->error("{}: {}", item.what, e.what());
                    item.op = nullptr;
                }
            }
        });
    } catch (const std::exception& e) {
        // Nothing of the batch is written: all of it is tried again (an op that failed alone stays dropped).
        std::erase_if(batch, [](const Item& i) { return !i.op; });
        std::lock_guard lock(m_mutex);
        m_stats.failed += failed;
        m_stats.waiting = true;
        throw;
    }
    for (auto& then : after) {
        then();
    }
    std::lock_guard lock(m_mutex);
    m_stats.written += batch.size() - failed;
    m_stats.failed += failed;
    ++m_stats.batches;
    m_stats.waiting = false;
    batch.clear();
    return true;
}

void Writer::run()
{
    auto logger = log::get(log::Inventory);
    std::deque<Item> batch;
    std::optional<std::pair<std::string, TimePoint>> beat;
    auto pause = m_options.retryMin;
    bool waiting = false;
    Clock::time_point waitingSince {};
    auto nextWarning = Clock::now();
    std::unique_lock lock(m_mutex);
    for (;;) {
        if (batch.empty() && !beat) {
            m_busy = false;
            m_idle.notify_all();
            m_wake.wait(lock, [this] { return m_stopping || !m_queue.empty() || m_heartbeat; });
            if (m_queue.empty() && !m_heartbeat) {
                break; // stopping with nothing left
            }
            while (!m_queue.empty() && batch.size() < m_options.maxBatch) {
                batch.push_back(std::move(m_queue.front()));
                m_queue.pop_front();
            }
            beat = std::exchange(m_heartbeat, std::nullopt);
            m_busy = true;
        }
        lock.unlock();
        bool ok = false;
        std::string error;
        try {
            ok = writeOnce(batch, beat);
        } catch (const std::exception& e) {
            error = e.what();
        }
        lock.lock();
        if (ok) {
            beat.reset();
            pause = m_options.retryMin;
            if (waiting) {
                logger->info("inventory writes resumed after {} ms",
                    std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - waitingSince).count());
                waiting = false;
            }
            continue;
        }
        // The lock is held elsewhere (or the disk refuses): keep the batch, pause, try again. A newer heartbeat
        // replaces the one we hold.
        if (m_heartbeat) {
            beat = std::exchange(m_heartbeat, std::nullopt);
        }
        const auto t = Clock::now();
        if (!waiting) {
            waiting = true;
            waitingSince = t;
        }
        if (m_stopping && t >= m_drainUntil) {
            break;
        }
        if (t >= nextWarning) {
            nextWarning = t + std::chrono::seconds(10);
            logger->warn("inventory writes waiting ({} queued): {}", batch.size() + m_queue.size(), error);
        }
        m_wake.wait_for(lock, pause, [this] { return m_stopping && Clock::now() >= m_drainUntil; });
        if (m_stopping && Clock::now() >= m_drainUntil) {
            break;
        }
        pause = std::min(pause * 2, m_options.retryMax);
    }
    // Stopped with records that could not be written: they are lost, and said so.
    std::deque<Item> left = std::move(batch);
    for (auto& item : m_queue) {
        left.push_back(std::move(item));
    }
    m_queue.clear();
    m_stats.dropped += left.size();
    m_busy = false;
    m_idle.notify_all();
    lock.unlock();
    if (!left.empty()) {
        logger->error("stopping: {} inventory records could not be written", left.size());
    }
    for (auto& item : left) {
        if (item.dropped) {
            item.dropped(item.what + ": not written (the inventory writer stopped)");
        }
    }
}

void Writer::stop(std::chrono::milliseconds drain)
{
    {
        std::lock_guard lock(m_mutex);
        if (!m_stopping) {
            m_stopping = true;
            m_drainUntil = Clock::now() + drain;
        }
    }
    m_wake.notify_all();
    if (m_thread.joinable()) {
        m_thread.join();
    }
    std::deque<Item> left;
    {
        std::lock_guard lock(m_mutex);
        left.swap(m_queue); // never started
        m_stats.dropped += left.size();
    }
    for (auto& item : left) {
        if (item.dropped) {
            item.dropped(item.what + ": not written (the inventory writer stopped)");
        }
    }
}

Writer::Stats Writer::stats() const
{
    std::lock_guard lock(m_mutex);
    auto s = m_stats;
    s.queued = m_queue.size();
    return s;
}

uint64_t Writer::takeDropped()
{
    std::lock_guard lock(m_mutex);
    return std::exchange(m_droppedSinceTaken, 0);
}

bool Writer::flush(std::chrono::milliseconds timeout)
{
    std::unique_lock lock(m_mutex);
    return m_idle.wait_for(lock, timeout, [this] { return m_queue.empty() && !m_busy && !m_heartbeat; });
}
} // namespace callhome::inventory
