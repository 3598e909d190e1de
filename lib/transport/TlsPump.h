#pragma once
#include "common/SocketRef.h"
#include "common/UniqueFd.h"
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

struct ssl_st;

namespace callhome::transport {
/**
 * Carries the plaintext of every TLS call-home session between its SSL and a local socketpair, from one thread.
 * libnetconf2 then runs each NETCONF session over its end of the socketpair (nc_connect_inout) instead of over the
 * SSL itself: libnetconf2 2.0.24's nc_connect_libssl dereferences a NULL SSL* on every failure path, so a device
 * that disconnects during <hello> or schema retrieval would crash the process. A device going away here only
 * closes the socketpair, which libnetconf2 sees as an ordinary end of stream.
 */
class TlsPump {
public:
    TlsPump();
    ~TlsPump();
    TlsPump(const TlsPump&) = delete;
    TlsPump& operator=(const TlsPump&) = delete;

    /** The caller's ends of a carried session: read the device's bytes from `in`, write to the device on `out`. */
    struct Channel {
        UniqueFd in; ///< stream
        UniqueFd out; ///< SOCK_SEQPACKET: each write becomes one TLS record, as each write is one SSH packet over SSH
    };
    /**
     * Takes over a TLS session whose handshake is complete, and its socket (closed when the session ends). Closing
     * the returned channel ends the TLS session (close_notify, then close).
     */
    Channel add(ssl_st* ssl, SocketRef socket);
    /** Sessions being carried. */
    size_t size() const;
    /** Ends every session and joins the thread. Idempotent. */
    void stop();

private:
    struct Connection;
    void run();
    void service(Connection& c);
    void updateInterest(Connection& c);
    void remove(uint64_t token);
    void afterService(uint64_t token);

    UniqueFd m_epoll;
    UniqueFd m_wake;
    mutable std::mutex m_mutex; ///< guards m_incoming and m_count; m_connections is the pump thread's alone
    std::vector<std::unique_ptr<Connection>> m_incoming;
    std::map<uint64_t, std::unique_ptr<Connection>> m_connections;
    uint64_t m_nextToken = 1;
    size_t m_count = 0;
    std::atomic<bool> m_stopping { false };
    std::thread m_thread;
};
} // namespace callhome::transport
