#pragma once
#include "common/UniqueFd.h"
#include "config/Config.h"
#include "inventory/Types.h"
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <sys/types.h>
#include <thread>
#include <vector>

namespace callhome::server {
class Metrics;

/** Which hook (config hooks/on-*). */
enum class HookKind { Pending, Connect, Disconnect, Refused };
/** "pending", "connect", "disconnect", "refused" (CALLHOME_EVENT). */
std::string toString(HookKind kind);

/** What happened, as a hook's environment describes it. */
struct HookEvent {
    HookKind kind = HookKind::Pending;
    std::optional<int64_t> deviceId;
    std::string deviceName;
    std::string address;
    std::string transport; ///< "ssh" or "tls"
    std::string fingerprint;
    std::string manufacturer;
    std::string serial;
    std::string connectionId;
    std::string reason; ///< refused, disconnect
    std::vector<std::string> capabilities; ///< connect: the device's <hello> capabilities
};

/** How one hook ended (also what the event log's detail says). */
struct HookOutcome {
    enum class Kind { Exited, Signalled, TimedOut, NotStarted } kind = Kind::Exited;
    int code = 0; ///< exit status, or signal number
    std::chrono::milliseconds duration { 0 };
    std::string output; ///< stdout+stderr, at most hooks/max-output bytes
    bool truncated = false;
    std::string error; ///< NotStarted: why
    bool ok() const noexcept { return kind == Kind::Exited && code == 0; }
};

/**
 * Runs the configured hook commands (config hooks/...) on one thread of its own, ch-hook, however many devices and
 * hooks there are: it starts each command with posix_spawn (argv, no shell, its own process group, stdin /dev/null,
 * stdout and stderr into one pipe, a clean signal mask and an environment describing the event), then polls every
 * running hook's pipe and reaps each by its pid. At most hooks/max-concurrent run at once; the rest wait in a queue
 * of hooks/max-queued, beyond which submit() drops and counts. A hook past hooks/timeout gets SIGTERM to its group,
 * SIGKILL 2 s later. submit() never waits (callers are event loops and ch-sessions); stop() kills what runs and waits
 * at most 2 s for it. The settings are read at each submit and start (a reload applies to the next hook).
 */
class HookRunner {
public:
    struct Options {
        std::function<config::HookSettings()> settings; ///< the live hooks container
        std::function<void(const inventory::Event&)> record; ///< an event for the log (queued, never waits)
        Metrics* metrics = nullptr;
        std::string controlSocket; ///< CALLHOME_CONTROL_SOCKET
        std::string stateDir; ///< CALLHOME_STATE_DIR; capabilities files go to STATE-DIR/hooks/
    };
    explicit HookRunner(Options options);
    ~HookRunner();
    HookRunner(const HookRunner&) = delete;
    HookRunner& operator=(const HookRunner&) = delete;

    void start();
    /** Queues the hook of `event.kind` if one is configured; false when none is or it was dropped. Never waits. */
    bool submit(HookEvent event) noexcept;
    /** No hook starts from now on; running ones are killed (SIGKILL to their groups) and reaped, within 2 s. */
    void stop();
    /** Hooks dropped (queue full) since the previous call. */
    uint64_t takeDropped() noexcept;
    /** The event log's detail for a hook's outcome ("on-connect: exit 3 after 0.02 s; output: ..."). */
    static std::string describe(HookKind kind, const HookOutcome& outcome);

private:
    using Clock = std::chrono::steady_clock;
    struct Running;
    void run();
    void startOne(HookEvent event, const config::HookSettings& settings);
    /** Checks one running hook: reaped (true) when it has exited; SIGTERM / SIGKILL when past its deadlines. */
    bool poll(Running& r, Clock::time_point t);
    /** Logs the outcome, counts it and records it in the event log. */
    void report(const HookEvent& event, const HookOutcome& outcome);
    void wake() noexcept;

    Options m_options;
    std::mutex m_mutex;
    std::deque<HookEvent> m_queue;
    bool m_stopping = false;
    uint64_t m_dropped = 0;
    UniqueFd m_wake; ///< eventfd: a new hook or stop()
    std::vector<Running> m_running; ///< ch-hook only
    std::thread m_thread;
};
} // namespace callhome::server
