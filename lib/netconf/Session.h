#pragma once
#include "common/Error.h"
#include "common/UniqueFd.h"
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

struct nc_session;

namespace callhome::netconf {
class Context;

/**
 * libnetconf2 prints whole messages at its debug level ("Received message:" and the XML): their content is
 * configuration, possibly secrets, and is never logged. Its log lines keep their text up to the first newline or '<'
 * and say how much was left out.
 */
std::string withoutMessageBodies(std::string_view msg);

/** Setting up the NETCONF session (<hello>, YANG modules) failed. */
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

/**
 * libnetconf2's client session to a device. libnetconf2 never touches the device's network: it sits on one end of
 * a local socketpair whose other end is the device's transport pump (server/Connection), which hands it only whole
 * messages and takes whatever it writes at once. Thread-safe.
 */
class Session {
public:
    /**
     * nc_connect_inout on `fd` with `context`, which must be complete for this device (the pump has already put the
     * device's <hello>, as rewritten for libnetconf2, into the socketpair): CPU work only, no wait on a device.
     * `deviceCapabilities` are the capabilities as the device announced them. Takes `fd`. Throws SessionError.
     */
    static std::unique_ptr<Session> connect(
        UniqueFd fd, std::shared_ptr<Context> context, std::vector<std::string> deviceCapabilities);
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    const std::vector<std::string>& capabilities() const noexcept { return m_capabilities; }
    uint32_t sessionId() const noexcept { return m_sessionId; }
    /** NETCONF 1.0 or 1.1 as negotiated. */
    std::string version() const noexcept { return m_version; }
    const std::shared_ptr<Context>& context() const noexcept { return m_context; }
    /**
     * Frees libnetconf2's session and closes its end. The pump closes its end first, so libnetconf2 finds the
     * transport gone at once and sends nothing. Idempotent.
     */
    void close();

private:
    Session() = default;
    // Destroyed after m_session: the session borrows the context.
    std::shared_ptr<Context> m_context;
    mutable std::mutex m_io;
    nc_session* m_session = nullptr;
    UniqueFd m_fd;
    uint32_t m_sessionId = 0;
    std::string m_version;
    std::vector<std::string> m_capabilities;
};
} // namespace callhome::netconf
