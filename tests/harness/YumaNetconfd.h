#pragma once
#include "harness/Process.h"
#include <chrono>
#include <memory>
#include <string>

namespace callhome::test {
/**
 * A private yuma123 netconfd listening on a UNIX socket in `dir`, plus an executable wrapper script that runs
 * yuma123's `netconf-subsystem` against it: what an SSH `Subsystem netconf` line or a stunnel `exec` runs for one
 * NETCONF session. Shared by SshdDevice and StunnelDevice. netconfd 2.13 crashes on the second <get-schema> of
 * ietf-netconf in its lifetime, so a client that fetches schemas can do so once per instance.
 */
class YumaNetconfd {
public:
    /** Writes its files into the existing directory `dir` and starts netconfd, waiting up to `startDeadline` for its
     * socket. Throws HarnessError. */
    YumaNetconfd(const std::string& dir, std::chrono::milliseconds startDeadline);
    YumaNetconfd(const YumaNetconfd&) = delete;
    YumaNetconfd& operator=(const YumaNetconfd&) = delete;
    ~YumaNetconfd();

    /** Executable that speaks NETCONF on stdin/stdout for one session (a shell wrapper around netconf-subsystem). */
    const std::string& subsystemCommand() const noexcept { return m_wrapper; }
    const std::string& logPath() const noexcept { return m_log; }
    const std::string& socketPath() const noexcept { return m_socket; }
    Process& process() noexcept { return *m_netconfd; }

private:
    std::string m_wrapper;
    std::string m_log;
    std::string m_socket;
    std::unique_ptr<Process> m_netconfd;
};
} // namespace callhome::test
