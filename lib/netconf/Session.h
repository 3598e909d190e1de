#pragma once
#include "common/Error.h"
#include "common/SocketRef.h"
#include "common/UniqueFd.h"
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

struct nc_session;
struct ly_ctx;
struct ssh_session_struct;

namespace callhome::netconf {
class Context;
class ContextPool;

/** Setting up the NETCONF session (channel, subsystem, <hello>, schemas) failed. */
class SessionError : public Error {
public:
    using Error::Error;
};

/** Process-wide libnetconf2 client state and log routing; exactly one lives in a process using sessions. */
class Runtime {
public:
    Runtime();
    ~Runtime();
    Runtime(const Runtime&) = delete;
    Runtime& operator=(const Runtime&) = delete;
};

/** A NETCONF client session to a device, over an SSH session we authenticated. Thread-safe. */
class Session {
public:
    /**
     * Opens the `netconf` subsystem and runs the <hello> exchange. Takes ownership of `ssh` in all cases
     * (nc_connect_libssh frees it on failure too) and of `socket`, which it closes after libnetconf2 is done with it.
     * Throws SessionError.
     */
    static std::unique_ptr<Session> connectSsh(ssh_session_struct* ssh, SocketRef socket, ContextPool& pool,
        const std::vector<std::string>& knownCapabilities);
    /**
     * NETCONF over the plaintext end of a TLS session carried by the TlsPump (never over the SSL itself: see
     * TlsPump): the device's bytes are read from `in`, ours written to `out`. Takes both in all cases. Throws
     * SessionError.
     */
    static std::unique_ptr<Session> connectTls(
        UniqueFd in, UniqueFd out, ContextPool& pool, const std::vector<std::string>& knownCapabilities);
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    const std::vector<std::string>& capabilities() const noexcept { return m_capabilities; }
    uint32_t sessionId() const noexcept { return m_sessionId; }
    /** NETCONF 1.0 or 1.1 as negotiated. */
    std::string version() const;
    /** The transport socket, for the registry's poller. */
    int fd() const noexcept { return m_fd; }
    /** Consumes whatever the device sent without blocking; false when the session is gone. */
    bool processIncoming();
    /** Sends an SSH keepalive; false when the transport is broken. */
    bool sendKeepalive();
    /** Ends the session: <close-session> (bounded wait for the reply), then closes the transport. Idempotent. */
    void close();
    bool isOpen() const;

private:
    Session() = default;
    /** Runs `connectWith` on a context for the device's module set; nullptr when libnetconf2 failed. */
    static std::unique_ptr<Session> connect(ContextPool& pool, const std::vector<std::string>& knownCapabilities,
        const std::function<nc_session*(ly_ctx*)>& connectWith);
    // Destroyed after m_session: the session borrows the context.
    std::shared_ptr<Context> m_context;
    mutable std::mutex m_io;
    nc_session* m_session = nullptr;
    ssh_session_struct* m_ssh = nullptr; ///< borrowed from m_session, for keepalives; null for TLS
    int m_fd = -1;
    SocketRef m_socket;
    SocketRef m_socketOut; ///< TLS only: the second descriptor of the plaintext channel
    uint32_t m_sessionId = 0;
    std::vector<std::string> m_capabilities;
};
} // namespace callhome::netconf
