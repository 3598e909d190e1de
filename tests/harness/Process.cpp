#include "harness/Process.h"
#include "harness/Util.h"
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace callhome::test {
namespace {
// Every test binary that starts peers links this file: ignore SIGPIPE from the start, so that a device dropping
// its connection cannot kill the test.
const bool g_sigpipeIgnored = [] {
    ignoreSigpipe();
    return true;
}();

struct SpawnFileActions {
    posix_spawn_file_actions_t actions;
    SpawnFileActions() { ::posix_spawn_file_actions_init(&actions); }
    ~SpawnFileActions() { ::posix_spawn_file_actions_destroy(&actions); }
};

struct SpawnAttr {
    posix_spawnattr_t attr;
    SpawnAttr() { ::posix_spawnattr_init(&attr); }
    ~SpawnAttr() { ::posix_spawnattr_destroy(&attr); }
};

std::vector<std::string> mergedEnvironment(const std::map<std::string, std::string>& overrides)
{
    std::vector<std::string> out;
    for (char** e = environ; e && *e; ++e) {
        std::string entry(*e);
        auto name = entry.substr(0, entry.find('='));
        if (!overrides.count(name)) {
            out.push_back(entry);
        }
    }
    for (const auto& [name, value] : overrides) {
        out.push_back(name + "=" + value);
    }
    return out;
}

std::vector<char*> cStrings(std::vector<std::string>& strings)
{
    std::vector<char*> out;
    for (auto& s : strings) {
        out.push_back(s.data());
    }
    out.push_back(nullptr);
    return out;
}

int decodeStatus(int status)
{
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    if (WIFSIGNALED(status)) {
        return 128 + WTERMSIG(status);
    }
    return -1;
}
} // namespace

Process::Process(ProcessSpec spec)
    : m_spec(std::move(spec))
{
    (void)g_sigpipeIgnored;
    if (m_spec.argv.empty() || m_spec.stdoutPath.empty() || m_spec.stderrPath.empty()) {
        throw HarnessError("Process: argv, stdoutPath and stderrPath are required");
    }
    SpawnFileActions fa;
    ::posix_spawn_file_actions_addopen(&fa.actions, 0, "/dev/null", O_RDONLY, 0);
    ::posix_spawn_file_actions_addopen(&fa.actions, 1, m_spec.stdoutPath.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::posix_spawn_file_actions_addopen(&fa.actions, 2, m_spec.stderrPath.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (!m_spec.cwd.empty()) {
        ::posix_spawn_file_actions_addchdir_np(&fa.actions, m_spec.cwd.c_str());
    }

    SpawnAttr sa;
    // Own process group: stop() kills the group. Signal dispositions and mask back to defaults: an ignored SIGPIPE
    // or a blocked SIGTERM in the test must not leak into sshd or netconfd.
    sigset_t defaults;
    ::sigemptyset(&defaults);
    ::sigaddset(&defaults, SIGPIPE);
    ::sigaddset(&defaults, SIGTERM);
    ::sigaddset(&defaults, SIGINT);
    ::sigaddset(&defaults, SIGCHLD);
    sigset_t emptyMask;
    ::sigemptyset(&emptyMask);
    ::posix_spawnattr_setpgroup(&sa.attr, 0);
    ::posix_spawnattr_setsigdefault(&sa.attr, &defaults);
    ::posix_spawnattr_setsigmask(&sa.attr, &emptyMask);
    ::posix_spawnattr_setflags(&sa.attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

    auto argvStrings = m_spec.argv;
    auto argv = cStrings(argvStrings);
    auto envStrings = mergedEnvironment(m_spec.env);
    auto envp = cStrings(envStrings);
    int rc = ::posix_spawnp(&m_pid, argv[0], &fa.actions, &sa.attr, argv.data(), envp.data());
    if (rc != 0) {
        throw HarnessError("cannot start " + m_spec.argv[0] + ": " + std::strerror(rc));
    }
}

Process::~Process()
{
    try {
        stop();
    } catch (...) { // a destructor must not throw; stop() only throws on impossible waitpid errors
    }
}

bool Process::reap(bool block)
{
    if (m_status) {
        return true;
    }
    int status = 0;
    pid_t r;
    do {
        r = ::waitpid(m_pid, &status, block ? 0 : WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == m_pid) {
        m_status = decodeStatus(status);
        return true;
    }
    if (r < 0) {
        throw HarnessError("waitpid(" + std::to_string(m_pid) + "): " + std::strerror(errno));
    }
    return false;
}

bool Process::running()
{
    return !reap(false);
}

std::optional<int> Process::waitExit(std::chrono::milliseconds deadline)
{
    const auto until = Clock::now() + deadline;
    while (!reap(false)) {
        if (Clock::now() >= until) {
            return std::nullopt;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return m_status;
}

void Process::killStragglers() noexcept
{
    // The group outlives its leader while members remain, so its id cannot have been reused by then.
    if (::kill(-m_pid, 0) == 0) {
        ::kill(-m_pid, SIGKILL);
    }
}

int Process::stop(std::chrono::milliseconds deadline)
{
    if (!m_status) {
        ::kill(-m_pid, SIGTERM);
        if (!waitExit(deadline)) {
            ::kill(-m_pid, SIGKILL);
            reap(true);
        }
    }
    killStragglers();
    return *m_status;
}
} // namespace callhome::test
