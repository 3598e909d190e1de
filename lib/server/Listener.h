#pragma once
#include "common/UniqueFd.h"
#include "config/Config.h"
#include <atomic>
#include <functional>
#include <map>
#include <mutex>
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

    /** The endpoints with the ports actually bound (port 0 in the config picks a free one); any thread. */
    std::vector<config::Endpoint> endpoints() const;
    void start();
    void stop();

    /** What update() changed, as bound. */
    struct Update {
        std::vector<config::Endpoint> added;
        std::vector<config::Endpoint> removed;
    };
    /**
     * Makes the endpoints `wanted` (config reload), without touching the sockets of endpoints in both lists: new ones
     * are bound first (throws Error naming the first that cannot be bound, and then nothing changed), then those no
     * longer wanted stop accepting (connections they accepted go on). Endpoints are the same when transport,
     * address and configured port are. Any thread, also while running.
     */
    Update update(const std::vector<config::Endpoint>& wanted);

private:
    struct Slot {
        config::Endpoint configured; ///< as asked for (port 0: any)
        config::Endpoint bound; ///< with the real port
        UniqueFd socket;
    };
    void add(config::Endpoint configured, config::Endpoint bound, UniqueFd socket);
    void run();
    mutable std::mutex m_mutex; ///< guards m_slots; held by the accept thread while it handles events
    std::map<uint64_t, Slot> m_slots; ///< by id (epoll data), in the order added
    uint64_t m_nextSlot = 0;
    Handler m_onAccept;
    UniqueFd m_epoll;
    UniqueFd m_wake;
    std::thread m_thread;
};

/** "::ffff:192.0.2.1" → "192.0.2.1"; other addresses unchanged. */
std::string normalizeAddress(const std::string& address);
} // namespace callhome::server
