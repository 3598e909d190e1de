#include "server/EventLoop.h"
#include "common/Error.h"
#include "common/Log.h"
#include <cerrno>
#include <cstring>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace callhome::server {
namespace {
constexpr uint64_t kWake = 0;
constexpr int kEventsPerWait = 256;
} // namespace

EventLoop::EventLoop(std::string name)
    : m_name(std::move(name))
{
    m_epoll.reset(::epoll_create1(EPOLL_CLOEXEC));
    m_wake.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!m_epoll || !m_wake) {
        throw Error("event loop: " + std::string(std::strerror(errno)));
    }
    epoll_event ev {};
    ev.events = EPOLLIN;
    ev.data.u64 = kWake;
    ::epoll_ctl(m_epoll.get(), EPOLL_CTL_ADD, m_wake.get(), &ev);
}

EventLoop::~EventLoop()
{
    stop();
}

void EventLoop::start()
{
    m_thread = std::thread([this] {
        m_threadId = std::this_thread::get_id();
        pthread_setname_np(pthread_self(), m_name.substr(0, 15).c_str());
        run();
    });
}

void EventLoop::stop()
{
    if (!m_stopping.exchange(true)) {
        uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(m_wake.get(), &one, sizeof one);
    }
    if (m_thread.joinable()) {
        m_thread.join();
    }
    {
        std::lock_guard lock(m_taskMutex);
        m_accepting = false;
        m_tasks.clear();
    }
    // Destroyed here, after the thread: a connection's destructor ends its device session at once.
    m_timers.clear();
    m_timerOf.clear();
    m_watched.clear();
    m_items.clear();
    m_count = 0;
}

void EventLoop::post(std::function<void()> task)
{
    {
        std::lock_guard lock(m_taskMutex);
        if (!m_accepting) {
            return;
        }
        m_tasks.push_back(std::move(task));
    }
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(m_wake.get(), &one, sizeof one);
}

uint64_t EventLoop::adopt(std::unique_ptr<Pollable> p)
{
    auto token = m_nextToken++;
    m_items.emplace(token, std::move(p));
    ++m_count;
    return token;
}

Pollable* EventLoop::find(uint64_t token) const
{
    auto it = m_items.find(token);
    return it == m_items.end() ? nullptr : it->second.get();
}

void EventLoop::destroy(uint64_t token)
{
    m_dead.push_back(token);
    setTimer(token, Clock::time_point::max());
}

void EventLoop::watch(uint64_t token, int fd, uint32_t events)
{
    epoll_event ev {};
    ev.events = events;
    ev.data.u64 = token;
    auto it = m_watched.find(fd);
    if (it == m_watched.end()) {
        if (::epoll_ctl(m_epoll.get(), EPOLL_CTL_ADD, fd, &ev) == 0) {
            m_watched.emplace(fd, token);
        }
    } else {
        it->second = token;
        // A descriptor closed without unwatch() left the set by itself; its number may now be a new socket.
        if (::epoll_ctl(m_epoll.get(), EPOLL_CTL_MOD, fd, &ev) != 0 && errno == ENOENT) {
            ::epoll_ctl(m_epoll.get(), EPOLL_CTL_ADD, fd, &ev);
        }
    }
}

void EventLoop::unwatch(uint64_t token, int fd)
{
    // Only our own registration: the number may have been closed and reused by another connection since.
    if (auto it = m_watched.find(fd); it != m_watched.end() && it->second == token) {
        m_watched.erase(it);
        ::epoll_ctl(m_epoll.get(), EPOLL_CTL_DEL, fd, nullptr);
    }
}

void EventLoop::setTimer(uint64_t token, Clock::time_point when)
{
    if (auto it = m_timerOf.find(token); it != m_timerOf.end()) {
        m_timers.erase({ it->second, token });
        m_timerOf.erase(it);
    }
    if (when != Clock::time_point::max()) {
        m_timers.insert({ when, token });
        m_timerOf.emplace(token, when);
    }
}

void EventLoop::runTasks()
{
    std::vector<std::function<void()>> tasks;
    {
        std::lock_guard lock(m_taskMutex);
        tasks.swap(m_tasks);
    }
    for (auto& t : tasks) {
        try {
            t();
        } catch (const std::exception& e) {
            log::get(log::Listener)->error("{}: task failed: {}", m_name, e.what());
        }
    }
}

void EventLoop::runTimers()
{
    auto now = Clock::now();
    // Bounded per pass, so a burst of expiring timers cannot keep the loop from its sockets.
    for (int i = 0; i < 1024 && !m_timers.empty() && m_timers.begin()->first <= now; ++i) {
        auto token = m_timers.begin()->second;
        setTimer(token, Clock::time_point::max());
        if (auto* p = find(token)) {
            try {
                p->onTimer();
            } catch (const std::exception& e) {
                log::get(log::Listener)->error("{}: timer: {}", m_name, e.what());
                destroy(token);
            }
        }
    }
}

void EventLoop::reap()
{
    while (!m_dead.empty()) {
        auto dead = std::move(m_dead);
        m_dead.clear();
        for (auto token : dead) {
            if (m_items.erase(token)) { // the destructor may call destroy()/unwatch() again: harmless
                --m_count;
            }
        }
    }
}

void EventLoop::run()
{
    epoll_event events[kEventsPerWait];
    while (!m_stopping) {
        int timeout = -1;
        if (!m_timers.empty()) {
            auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(m_timers.begin()->first - Clock::now());
            timeout = static_cast<int>(std::max<long long>(0, ms.count() + 1));
        }
        int n = ::epoll_wait(m_epoll.get(), events, kEventsPerWait, timeout);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            log::get(log::Listener)->critical("{}: epoll_wait: {}", m_name, std::strerror(errno));
            return;
        }
        for (int i = 0; i < n; ++i) {
            auto token = events[i].data.u64;
            if (token == kWake) {
                uint64_t value;
                [[maybe_unused]] auto r = ::read(m_wake.get(), &value, sizeof value);
                continue;
            }
            if (auto* p = find(token)) {
                try {
                    p->onEvents(events[i].events);
                } catch (const std::exception& e) {
                    // The one exception boundary per connection: nothing a device does gets past it.
                    log::get(log::Listener)->error("{}: connection dropped: {}", m_name, e.what());
                    destroy(token);
                }
            }
        }
        reap();
        runTasks();
        reap();
        runTimers();
        reap();
    }
}
} // namespace callhome::server
