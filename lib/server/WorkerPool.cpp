#include "server/WorkerPool.h"
#include <pthread.h>

namespace callhome::server {
WorkerPool::WorkerPool(unsigned threads, size_t maxQueued, const std::string& name)
    : m_maxQueued(maxQueued)
{
    for (unsigned i = 0; i < threads; ++i) {
        m_threads.emplace_back([this, name] {
            pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
            run();
        });
    }
}

WorkerPool::~WorkerPool()
{
    stop();
}

bool WorkerPool::trySubmit(std::function<void()> task)
{
    {
        std::lock_guard lock(m_mutex);
        if (m_stopping || m_queue.size() >= m_maxQueued) {
            return false;
        }
        m_queue.push_back(std::move(task));
    }
    m_cv.notify_one();
    return true;
}

size_t WorkerPool::load() const
{
    std::lock_guard lock(m_mutex);
    return m_queue.size() + m_running;
}

void WorkerPool::stop()
{
    {
        std::lock_guard lock(m_mutex);
        m_stopping = true;
    }
    m_cv.notify_all();
    for (auto& t : m_threads) {
        if (t.joinable()) {
            t.join();
        }
    }
    m_threads.clear();
}

void WorkerPool::run()
{
    std::unique_lock lock(m_mutex);
    while (true) {
        m_cv.wait(lock, [this] { return m_stopping || !m_queue.empty(); });
        if (m_queue.empty()) {
            return;
        }
        auto task = std::move(m_queue.front());
        m_queue.pop_front();
        ++m_running;
        lock.unlock();
        task();
        lock.lock();
        --m_running;
    }
}
} // namespace callhome::server
