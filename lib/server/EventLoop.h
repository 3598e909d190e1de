#pragma once
#include "common/UniqueFd.h"
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace callhome::server {
/** Something an event loop drives: one device connection (handshake state machine, then its transport pump). */
class Pollable {
public:
    virtual ~Pollable() = default;
    /** Its descriptor is ready (epoll events). */
    virtual void onEvents(uint32_t events) = 0;
    /** Its timer ran out. */
    virtual void onTimer() = 0;
};

/**
 * One thread, one epoll set, many connections: the model of Envoy's worker. Each connection is a Pollable with at
 * most one timer; a silent peer costs a descriptor, a timer entry and its object, never a thread. Everything but
 * post() and size() is for the loop's own thread (connections call it from their callbacks).
 */
class EventLoop {
public:
    using Clock = std::chrono::steady_clock;
    explicit EventLoop(std::string name);
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    void start();
    /** Destroys every connection (their destructors end them at once) and joins the thread. Idempotent. */
    void stop();
    /** Runs `task` on the loop thread soon; thread-safe. Tasks posted after stop() are dropped. */
    void post(std::function<void()> task);

    /** Takes a connection; returns its token (never reused). */
    uint64_t adopt(std::unique_ptr<Pollable> p);
    /** The connection, or nullptr once destroyed. */
    Pollable* find(uint64_t token) const;
    /** Destroys the connection after the current callback returns. */
    void destroy(uint64_t token);
    /** Adds or changes the events watched on `fd` for `token` (0 = only errors and hang-ups). */
    void watch(uint64_t token, int fd, uint32_t events);
    /** Stops watching `fd` if `token` is the one watching it. */
    void unwatch(uint64_t token, int fd);
    /** (Re)arms the connection's one timer; Clock::time_point::max() disarms it. */
    void setTimer(uint64_t token, Clock::time_point when);

    /** Connections on this loop (any thread). */
    size_t size() const noexcept { return m_count.load(); }
    const std::string& name() const noexcept { return m_name; }
    bool onLoopThread() const noexcept { return std::this_thread::get_id() == m_threadId.load(); }

private:
    void run();
    void runTasks();
    void runTimers();
    void reap();

    std::string m_name;
    UniqueFd m_epoll;
    UniqueFd m_wake;
    std::mutex m_taskMutex;
    std::vector<std::function<void()>> m_tasks;
    bool m_accepting = true;
    std::map<uint64_t, std::unique_ptr<Pollable>> m_items;
    std::map<int, uint64_t> m_watched; ///< fd → token
    std::set<std::pair<Clock::time_point, uint64_t>> m_timers;
    std::map<uint64_t, Clock::time_point> m_timerOf;
    std::vector<uint64_t> m_dead;
    uint64_t m_nextToken = 1;
    std::atomic<size_t> m_count { 0 };
    std::atomic<bool> m_stopping { false };
    std::atomic<std::thread::id> m_threadId {};
    std::thread m_thread;
};
} // namespace callhome::server
