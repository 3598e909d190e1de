#pragma once
#include "harness/Process.h"
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace callhome::test {
class TempDir;

/** One server behind the balancer. */
struct HaProxyServer {
    std::string name; ///< HAProxy's server name ("a", "b")
    std::string address; ///< numeric, e.g. "127.0.0.1"
    uint16_t port = 0; ///< where connections go (the instance's call-home port)
    /// where the health check connects (TCP connect only); 0: `port`. A check on the call-home port itself would be a
    /// failed handshake from HAProxy's address every interval, which admission control ends up blocking.
    uint16_t checkPort = 0;
    bool backup = false; ///< used only while no non-backup server is up
};

struct HaProxyOptions {
    std::chrono::milliseconds checkInterval { 200 }; ///< `inter`; one failed check marks a server down, one good up
    std::chrono::milliseconds startDeadline { 10000 };
};

/**
 * HAProxy (Debian's haproxy, /usr/sbin/haproxy) in TCP mode in front of `servers`, in the foreground (`-db`) as a
 * Process of this test (stopped by its pid): its config and stats socket live in a fresh subdirectory of `dir`, its
 * frontend port is picked at run time. `option redispatch` with retries: a connection refused by a dead server is
 * retried on another before the health check has noticed.
 */
class HaProxy {
public:
    HaProxy(const TempDir& dir, std::vector<HaProxyServer> servers, HaProxyOptions options = {});
    HaProxy(const HaProxy&) = delete;
    HaProxy& operator=(const HaProxy&) = delete;
    ~HaProxy();

    /** The frontend's port on 127.0.0.1: where devices call. */
    uint16_t port() const noexcept { return m_port; }
    pid_t pid() const noexcept { return m_process ? m_process->pid() : -1; }
    const std::string& configPath() const noexcept { return m_config; }
    const std::string& logPath() const noexcept { return m_log; }
    /** The server's status as HAProxy's health checks see it ("UP", "DOWN", ...), read from its stats socket. */
    std::string status(const std::string& server) const;
    /** Waits until the server's status starts with "UP" (up) or "DOWN" (!up); HarnessError after `deadline`. */
    void waitStatus(const std::string& server, bool up, std::chrono::milliseconds deadline) const;
    /** The stats socket's answer to one command (`show stat`, ...). */
    std::string command(const std::string& line) const;
    void stop();

private:
    std::string m_dir;
    std::string m_config;
    std::string m_stats;
    std::string m_log;
    uint16_t m_port = 0;
    std::unique_ptr<Process> m_process;
};
} // namespace callhome::test
