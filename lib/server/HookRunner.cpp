#include "server/HookRunner.h"
#include "common/Log.h"
#include "server/Metrics.h"
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fmt/format.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

namespace callhome::server {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
/// between SIGTERM (timeout) and SIGKILL; also how long stop() waits for killed hooks to be reaped
constexpr auto kKillGrace = std::chrono::seconds(2);
/// poll() wakes at least this often while hooks run, to reap the ones whose pipe stays open (a background child)
constexpr auto kReapTick = std::chrono::milliseconds(50);

const std::vector<std::string>& commandOf(const config::HookSettings& s, HookKind kind)
{
    switch (kind) {
    case HookKind::Pending:
        return s.onPending;
    case HookKind::Connect:
        return s.onConnect;
    case HookKind::Disconnect:
        return s.onDisconnect;
    case HookKind::Refused:
        break;
    }
    return s.onRefused;
}

std::string signalName(int sig)
{
    const char* abbrev = ::sigabbrev_np(sig);
    return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

std::string homeDirectory()
{
    if (const char* home = std::getenv("HOME"); home && *home) {
        return home;
    }
    passwd pw {};
    passwd* found = nullptr;
    char buf[4096];
    if (::getpwuid_r(::getuid(), &pw, buf, sizeof buf, &found) == 0 && found && found->pw_dir) {
        return found->pw_dir;
    }
    return "/";
}
} // namespace

std::string toString(HookKind kind)
{
    switch (kind) {
    case HookKind::Pending:
        return "pending";
    case HookKind::Connect:
        return "connect";
    case HookKind::Disconnect:
        return "disconnect";
    case HookKind::Refused:
        break;
    }
    return "refused";
}

/** One hook process, from spawn to reaping. */
struct HookRunner::Running {
    HookEvent event;
    std::string program;
    pid_t pid = -1; ///< also its process group
    UniqueFd output; ///< read end of its stdout+stderr pipe; closed at end of file
    std::string captured;
    size_t maxOutput = 0;
    bool truncated = false;
    std::string capabilitiesFile; ///< removed when the hook ends
    Clock::time_point startedAt;
    Clock::time_point termAt; ///< the timeout
    Clock::time_point killAt = Clock::time_point::max();
    std::chrono::seconds timeout { 0 };
    bool timedOut = false;
    int lastSignalSent = 0;
    /** Reads what the pipe has now, keeping at most maxOutput bytes. */
    void drain()
    {
        char buf[16384];
        while (output) {
            auto n = ::read(output.get(), buf, sizeof buf);
            if (n > 0) {
                auto keep = std::min(static_cast<size_t>(n), maxOutput - std::min(maxOutput, captured.size()));
                captured.append(buf, keep);
                truncated = truncated || keep < static_cast<size_t>(n);
            } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
                output.reset();
            } else if (errno == EAGAIN) {
                return;
            }
        }
    }
};

HookRunner::HookRunner(Options options)
    : m_options(std::move(options))
    , m_wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK))
{ }

HookRunner::~HookRunner()
{
    stop();
}

void HookRunner::start()
{
    m_thread = std::thread([this] {
        pthread_setname_np(pthread_self(), "ch-hook");
        run();
    });
}

void HookRunner::wake() noexcept
{
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(m_wake.get(), &one, sizeof one);
}

bool HookRunner::submit(HookEvent event) noexcept
{
    try {
        auto settings = m_options.settings();
        if (commandOf(settings, event.kind).empty()) {
            return false;
        }
        {
            std::lock_guard lock(m_mutex);
            if (m_stopping) {
                return false;
            }
            if (m_queue.size() >= settings.maxQueued) {
                ++m_dropped;
                if (m_options.metrics) {
                    m_options.metrics->hook("on-" + toString(event.kind), "dropped");
                }
                return false;
            }
            m_queue.push_back(std::move(event));
        }
        wake();
        return true;
    } catch (const std::exception&) {
        return false; // out of memory: the hook is not run, the caller goes on
    }
}

uint64_t HookRunner::takeDropped() noexcept
{
    std::lock_guard lock(m_mutex);
    return std::exchange(m_dropped, 0);
}

std::string HookRunner::describe(HookKind kind, const HookOutcome& o)
{
    auto seconds = std::chrono::duration<double>(o.duration).count();
    std::string text = "on-" + toString(kind) + ": ";
    switch (o.kind) {
    case HookOutcome::Kind::Exited:
        text += fmt::format("exit {} after {:.2f} s", o.code, seconds);
        break;
    case HookOutcome::Kind::Signalled:
        text += fmt::format("killed by {} after {:.2f} s", signalName(o.code), seconds);
        break;
    case HookOutcome::Kind::TimedOut:
        text += fmt::format("timed out after {:.2f} s, killed with {}", seconds, signalName(o.code));
        break;
    case HookOutcome::Kind::NotStarted:
        text += "not started: " + o.error;
        break;
    }
    if (!o.output.empty()) {
        text += o.truncated ? fmt::format("; output (first {} bytes): ", o.output.size()) : "; output: ";
        text += o.output;
    } else if (o.truncated) {
        text += "; output discarded (hooks/max-output is 0)";
    }
    return text;
}

void HookRunner::startOne(HookEvent event, const config::HookSettings& settings)
{
    const auto& argv = commandOf(settings, event.kind);
    if (argv.empty()) {
        return; // removed by a reload while it was queued
    }
    Running r;
    r.event = std::move(event);
    r.program = argv.front();
    r.maxOutput = settings.maxOutput;
    r.timeout = settings.timeout;
    r.startedAt = Clock::now();
    const auto& e = r.event;
    auto notStarted = [&](const std::string& why) {
        report(r.event,
            HookOutcome { .kind = HookOutcome::Kind::NotStarted,
                .duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - r.startedAt),
                .error = r.program + ": " + why });
    };

    if (e.kind == HookKind::Connect) {
        auto dir = fs::path(m_options.stateDir) / "hooks";
        std::error_code ec;
        fs::create_directories(dir, ec);
        fs::permissions(dir, fs::perms::owner_all, ec);
        auto pattern = (dir / ("capabilities-" + e.connectionId + "-XXXXXX")).string();
        int fd = ::mkostemp(pattern.data(), O_CLOEXEC);
        if (fd < 0) {
            return notStarted("cannot create the capabilities file in " + dir.string() + ": " + std::strerror(errno));
        }
        UniqueFd file(fd);
        std::string text;
        for (const auto& c : e.capabilities) {
            text += c + "\n";
        }
        size_t done = 0;
        while (done < text.size()) {
            auto n = ::write(fd, text.data() + done, text.size() - done);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                ::unlink(pattern.c_str());
                return notStarted("cannot write the capabilities file " + pattern + ": " + std::strerror(errno));
            }
            done += static_cast<size_t>(n);
        }
        r.capabilitiesFile = pattern;
    }

    std::vector<std::string> env {
        "CALLHOME_EVENT=" + toString(e.kind),
        "CALLHOME_DEVICE_ID=" + (e.deviceId ? std::to_string(*e.deviceId) : std::string()),
        "CALLHOME_DEVICE_NAME=" + e.deviceName,
        "CALLHOME_ADDRESS=" + e.address,
        "CALLHOME_TRANSPORT=" + e.transport,
        "CALLHOME_FINGERPRINT=" + e.fingerprint,
        "CALLHOME_MANUFACTURER=" + e.manufacturer,
        "CALLHOME_SERIAL=" + e.serial,
        "CALLHOME_CONNECTION_ID=" + e.connectionId,
        "CALLHOME_REASON=" + e.reason,
        "CALLHOME_CAPABILITIES_FILE=" + r.capabilitiesFile,
        "CALLHOME_CONTROL_SOCKET=" + m_options.controlSocket,
        "CALLHOME_STATE_DIR=" + m_options.stateDir,
        // callhomectl sends it as X-Callhome-Trace-Id: the trace shows which hook made a request
        "CALLHOME_TRACE_ID=hook-on-" + toString(e.kind) + "-" + (e.connectionId.empty() ? "none" : e.connectionId),
        std::string("PATH=") + (std::getenv("PATH") ? std::getenv("PATH") : "/usr/local/bin:/usr/bin:/bin"),
        "HOME=" + homeDirectory(),
    };
    for (const char* pass : { "LANG", "LC_ALL", "TZ" }) {
        if (const char* v = std::getenv(pass)) {
            env.push_back(std::string(pass) + "=" + v);
        }
    }
    for (auto& v : env) {
        // A value cannot carry a NUL; an escaped one from the inventory never does, but cut it rather than fail.
        v.resize(std::strlen(v.c_str()));
    }
    std::vector<char*> envp;
    for (auto& v : env) {
        envp.push_back(v.data());
    }
    envp.push_back(nullptr);
    std::vector<std::string> args = argv;
    std::vector<char*> argp;
    for (auto& a : args) {
        argp.push_back(a.data());
    }
    argp.push_back(nullptr);

    int pipeFds[2];
    if (::pipe2(pipeFds, O_CLOEXEC) != 0) {
        return notStarted(std::string("pipe: ") + std::strerror(errno));
    }
    UniqueFd readEnd(pipeFds[0]);
    UniqueFd writeEnd(pipeFds[1]);
    ::fcntl(readEnd.get(), F_SETFL, O_NONBLOCK);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, writeEnd.get(), 1);
    posix_spawn_file_actions_adddup2(&actions, writeEnd.get(), 2);
    // Nothing of the daemon's (device sockets, the inventory, the API socket) reaches the hook.
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // Its own process group (a timeout kills the hook and what it started); callhomed blocks SIGTERM, SIGINT and
    // SIGHUP in every thread and ignores SIGPIPE: the hook gets an empty mask and default dispositions.
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);
    sigset_t mask;
    sigemptyset(&mask);
    posix_spawnattr_setsigmask(&attr, &mask);
    sigset_t defaults;
    sigemptyset(&defaults);
    for (int sig : { SIGPIPE, SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD }) {
        sigaddset(&defaults, sig);
    }
    posix_spawnattr_setsigdefault(&attr, &defaults);
    pid_t pid = -1;
    int rc = ::posix_spawnp(&pid, argp[0], &actions, &attr, argp.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        if (!r.capabilitiesFile.empty()) {
            ::unlink(r.capabilitiesFile.c_str());
        }
        return notStarted(std::strerror(rc));
    }
    writeEnd.reset(); // the hook holds it now: end of file when it (and what it started) closed it
    r.pid = pid;
    r.output = std::move(readEnd);
    r.termAt = r.startedAt + settings.timeout;
    log::get(log::Main)->debug(
        "[{} {}] hook on-{} started: {} (pid {})", e.connectionId, e.address, toString(e.kind), r.program, pid);
    m_running.push_back(std::move(r));
}

bool HookRunner::poll(Running& r, Clock::time_point t)
{
    siginfo_t info {};
    // WNOWAIT: the zombie keeps its pid, and with it the process group id, until the group is killed below.
    if (::waitid(P_PID, static_cast<id_t>(r.pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == r.pid) {
        // What the hook left running in its group goes with it (a hook that means to leave a process behind starts
        // it in a session of its own, setsid); then its pipe reaches end of file.
        ::killpg(r.pid, SIGKILL);
        int status = 0;
        while (::waitpid(r.pid, &status, 0) < 0 && errno == EINTR) { }
        r.drain();
        HookOutcome o;
        o.duration = std::chrono::duration_cast<std::chrono::milliseconds>(t - r.startedAt);
        if (r.timedOut) {
            o.kind = HookOutcome::Kind::TimedOut;
            o.code = r.lastSignalSent;
            o.duration = std::chrono::duration_cast<std::chrono::milliseconds>(r.timeout);
        } else if (WIFEXITED(status)) {
            o.kind = HookOutcome::Kind::Exited;
            o.code = WEXITSTATUS(status);
        } else {
            o.kind = HookOutcome::Kind::Signalled;
            o.code = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
        }
        o.output = std::move(r.captured);
        o.truncated = r.truncated;
        if (!r.capabilitiesFile.empty()) {
            ::unlink(r.capabilitiesFile.c_str());
        }
        report(r.event, o);
        return true;
    }
    if (!r.timedOut && t >= r.termAt) {
        r.timedOut = true;
        r.lastSignalSent = SIGTERM;
        r.killAt = t + kKillGrace;
        ::killpg(r.pid, SIGTERM);
    } else if (r.timedOut && r.lastSignalSent == SIGTERM && t >= r.killAt) {
        r.lastSignalSent = SIGKILL;
        ::killpg(r.pid, SIGKILL);
    }
    return false;
}

void HookRunner::report(const HookEvent& e, const HookOutcome& o)
{
    const auto hook = "on-" + toString(e.kind);
    auto detail = describe(e.kind, o);
    auto logger = log::get(log::Main);
    // The output stays out of the log (the event log has it): a hook may print what a log must not show.
    auto status = detail.substr(0, detail.find("; output"));
    if (o.ok()) {
        logger->info("[{} {}] hook {}", e.connectionId, e.address, status);
    } else {
        logger->warn("[{} {}] hook {}", e.connectionId, e.address, status);
    }
    if (m_options.metrics) {
        m_options.metrics->hook(hook,
            o.ok()                                        ? "ok"
                : o.kind == HookOutcome::Kind::TimedOut   ? "timed-out"
                : o.kind == HookOutcome::Kind::NotStarted ? "not-started"
                                                          : "failed");
    }
    if (m_options.record) {
        m_options.record(inventory::Event { .at = now(),
            .kind = inventory::EventKind::Hook,
            .deviceId = e.deviceId,
            .deviceName = e.deviceName,
            .connectionId = e.connectionId,
            .address = e.address,
            .fingerprint = e.fingerprint,
            .detail = detail });
    }
}

void HookRunner::run()
{
    auto logger = log::get(log::Main);
    std::vector<pollfd> fds;
    for (;;) {
        auto settings = m_options.settings();
        for (;;) {
            std::optional<HookEvent> next;
            {
                std::lock_guard lock(m_mutex);
                if (m_stopping) {
                    return; // stop() kills and reaps what runs
                }
                if (m_running.size() >= std::max(1u, settings.maxConcurrent) || m_queue.empty()) {
                    break;
                }
                next = std::move(m_queue.front());
                m_queue.pop_front();
            }
            try {
                startOne(std::move(*next), settings);
            } catch (const std::exception& ex) {
                logger->error("starting a hook: {}", ex.what());
            }
        }

        fds.clear();
        fds.push_back({ m_wake.get(), POLLIN, 0 });
        auto t = Clock::now();
        auto until = Clock::time_point::max();
        for (const auto& r : m_running) {
            if (r.output) {
                fds.push_back({ r.output.get(), POLLIN, 0 });
            }
            until = std::min({ until, t + kReapTick, r.timedOut ? r.killAt : r.termAt });
        }
        int timeout = until == Clock::time_point::max()
            ? -1
            : static_cast<int>(
                std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(until - t).count() + 1));
        if (::poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) {
            logger->error("hooks: poll: {}", std::strerror(errno));
        }
        if (fds[0].revents & POLLIN) {
            uint64_t n;
            [[maybe_unused]] auto got = ::read(m_wake.get(), &n, sizeof n);
        }
        t = Clock::now();
        for (auto it = m_running.begin(); it != m_running.end();) {
            it->drain();
            if (poll(*it, t)) {
                it = m_running.erase(it);
            } else {
                ++it;
            }
        }
    }
}

void HookRunner::stop()
{
    {
        std::lock_guard lock(m_mutex);
        if (m_stopping && !m_thread.joinable()) {
            return;
        }
        m_stopping = true;
        m_queue.clear();
    }
    wake();
    if (m_thread.joinable()) {
        m_thread.join();
    }
    // The thread has left its loop: what still runs is killed, reaped within kKillGrace and recorded as killed.
    for (auto& r : m_running) {
        r.timedOut = false;
        ::killpg(r.pid, SIGKILL);
    }
    auto deadline = Clock::now() + kKillGrace;
    while (!m_running.empty() && Clock::now() < deadline) {
        auto t = Clock::now();
        std::erase_if(m_running, [&](Running& r) {
            r.drain();
            return poll(r, t);
        });
        if (!m_running.empty()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }
    for (auto& r : m_running) {
        log::get(log::Main)->error("hook on-{} (pid {}) did not end after SIGKILL", toString(r.event.kind), r.pid);
    }
    m_running.clear();
}
} // namespace callhome::server
