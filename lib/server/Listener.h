#pragma once
#include "common/UniqueFd.h"
#include "config/Config.h"
#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace callhome::server {
/** A TCP connection a device opened to us. */
struct Accepted {
    UniqueFd socket;
    std::string peerAddress; ///< numeric; IPv4-mapped IPv6 shown as IPv4
    uint16_t peerPort = 0;
    config::Endpoint endpoint;
};

/**
 * Accepts on every endpoint from one thread with non-blocking sockets and hands each connection to `onAccept`
 * (which must not block: it queues the handshake). Binds in the constructor so errors surface at start.
 */
class Listener {
public:
    using Handler = std::function<void(Accepted&&)>;
    Listener(const std::vector<config::Endpoint>& endpoints, Handler onAccept);
    ~Listener();
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;

    /** The endpoints with the ports actually bound (port 0 in the config picks a free one). */
    const std::vector<config::Endpoint>& endpoints() const noexcept { return m_bound; }
    void start();
    void stop();

private:
    void run();
    std::vector<UniqueFd> m_sockets;
    std::vector<config::Endpoint> m_bound;
    Handler m_onAccept;
    UniqueFd m_epoll;
    UniqueFd m_wake;
    std::thread m_thread;
};

/** "::ffff:192.0.2.1" → "192.0.2.1"; other addresses unchanged. */
std::string normalizeAddress(const std::string& address);
} // namespace callhome::server
