#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace callhome::server {
/**
 * Proof that the engine's threads still run: each beat() posts a small task to every part (each event loop, the
 * inventory thread) and the next beat() asks whether all of them ran it. A loop stuck in a callback, or a thread
 * blocked on a lock, never runs its task, so the beats stop succeeding until it recovers. No clock, no cost per
 * connection: one task per part per beat.
 */
class Heartbeat {
public:
    /** Queues `task` on the part's thread; false when it could not be queued (a full queue counts as not alive). */
    using Post = std::function<bool(std::function<void()> task)>;
    struct Part {
        std::string name; ///< "ch-loop-0", for the log
        Post post;
    };
    explicit Heartbeat(std::vector<Part> parts);

    /**
     * nullopt when every part ran the previous beat's task (or there was none), else the name of the first one that
     * did not. Then posts the next beat's tasks (to the late ones too: they run them when they recover).
     */
    std::optional<std::string> beat();

private:
    struct State {
        std::atomic<uint64_t> ran { 0 }; ///< the last beat this part ran
    };
    std::vector<Part> m_parts;
    std::vector<std::shared_ptr<State>> m_states; ///< shared with queued tasks, which may outlive this object
    uint64_t m_beat = 0;
    std::vector<bool> m_posted; ///< per part: the previous beat was queued
};

/**
 * Talks to the service manager (sd_notify) while callhomed runs, from its own thread (ch-watchdog): STATUS= when the
 * status text changes (polled every `statusInterval`), and with a watchdog (WATCHDOG_USEC) WATCHDOG=1 every half
 * interval, but only when the Heartbeat says every engine thread is alive.
 */
class ServiceNotifier {
public:
    struct Options {
        std::optional<std::chrono::microseconds> watchdog; ///< WATCHDOG_USEC; nullopt: no pings
        std::chrono::milliseconds statusInterval { 2000 };
    };
    ServiceNotifier(Options options, std::unique_ptr<Heartbeat> heartbeat, std::function<std::string()> status);
    ~ServiceNotifier();
    ServiceNotifier(const ServiceNotifier&) = delete;
    ServiceNotifier& operator=(const ServiceNotifier&) = delete;

    /** Re-reads the status now (after a reload, say) instead of at the next interval. */
    void refresh();
    void stop();

private:
    void run();
    Options m_options;
    std::unique_ptr<Heartbeat> m_heartbeat;
    std::function<std::string()> m_status;
    std::mutex m_mutex;
    std::condition_variable m_wake;
    bool m_stop = false;
    bool m_refresh = false;
    std::thread m_thread;
};
} // namespace callhome::server
