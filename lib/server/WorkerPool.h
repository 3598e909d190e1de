#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace callhome::server {
/** Fixed threads running queued tasks; the queue is bounded so a connection flood cannot grow memory. */
class WorkerPool {
public:
    /** `name` names the threads (ps -T, top -H). */
    WorkerPool(unsigned threads, size_t maxQueued, const std::string& name = "ch-worker");
    ~WorkerPool();
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    /** Queues the task unless the queue is full; a task must not throw (it is the caller's exception boundary). */
    bool trySubmit(std::function<void()> task);
    /** Tasks queued or running. */
    size_t load() const;
    /** Stops taking tasks, runs the queued ones, joins. */
    void stop();

private:
    void run();
    mutable std::mutex m_mutex;
    std::condition_variable m_cv;
    std::deque<std::function<void()>> m_queue;
    size_t m_running = 0;
    size_t m_maxQueued;
    bool m_stopping = false;
    std::vector<std::thread> m_threads;
};
} // namespace callhome::server
