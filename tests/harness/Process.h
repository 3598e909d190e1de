#pragma once
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace callhome::test {
/** What to start: argv (argv[0] is looked up in PATH), extra environment, working directory, output files. */
struct ProcessSpec {
    std::vector<std::string> argv;
    std::string stdoutPath; ///< required: stdout is appended here
    std::string stderrPath; ///< required: stderr is appended here
    std::map<std::string, std::string> env = {}; ///< set on top of this process's environment
    std::string cwd = {}; ///< empty: inherit
};

/**
 * A child process in its own process group (stdin /dev/null). stop() signals the whole group, so helper chains
 * (socat → sshd) do not outlive it; the destructor stops it.
 */
class Process {
public:
    explicit Process(ProcessSpec spec);
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;
    ~Process();

    pid_t pid() const noexcept { return m_pid; }
    const ProcessSpec& spec() const noexcept { return m_spec; }
    /** False once the child has exited (it is then reaped). */
    bool running();
    /** Waits up to `deadline` for the child to exit by itself: its exit code, 128+signal if killed, nullopt on timeout.
     */
    std::optional<int> waitExit(std::chrono::milliseconds deadline);
    /** SIGTERM to the group, SIGKILL after `deadline`; always reaped. Returns the exit status as waitExit does. */
    int stop(std::chrono::milliseconds deadline = std::chrono::seconds(5));
    /** The exit status once the child is reaped. */
    std::optional<int> exitStatus() const noexcept { return m_status; }

private:
    bool reap(bool block);
    void killStragglers() noexcept;

    ProcessSpec m_spec;
    pid_t m_pid = -1;
    std::optional<int> m_status;
};
} // namespace callhome::test
