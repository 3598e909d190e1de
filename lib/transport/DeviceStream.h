#pragma once
#include <cstddef>
#include <string>

namespace callhome::transport {
/** The result of one non-blocking read or write on a device's transport. */
struct IoResult {
    size_t bytes = 0; ///< 0 with !ended: nothing possible now (wait for the socket)
    bool ended = false; ///< the transport is gone; `error` says why in operator words
    std::string error;
};

/**
 * The NETCONF byte stream to one device after authentication: the `netconf` channel of an SSH session, or a TLS
 * session. SSH and TLS are two implementations; the connection pipeline above is written once. Every call is
 * non-blocking and does a bounded amount of work, so one device can never hold the thread that serves it.
 */
class DeviceStream {
public:
    virtual ~DeviceStream() = default;
    /** The device's socket, to wait on. */
    virtual int fd() const noexcept = 0;
    /** Up to `n` bytes the device sent, without waiting. */
    virtual IoResult read(char* buf, size_t n) = 0;
    /** As much of `n` bytes as the transport accepts now (SSH: never more than the device's channel window). */
    virtual IoResult write(const char* buf, size_t n) = 0;
    /** True when the library holds output that needs the socket to become writable. */
    virtual bool wantsWritable() const = 0;
    /** Called when the socket is writable: pushes buffered output. */
    virtual void flush() = 0;
    /** Whether the transport has its own liveness probe (SSH: a request that wants a reply). */
    virtual bool hasProbe() const noexcept = 0;
    /** Sends a probe; false when one is still unanswered. */
    virtual bool sendProbe() = 0;
    /** True once the last probe got any answer. */
    virtual bool probeAnswered() = 0;
    /** Best-effort orderly end (SSH channel close and disconnect, TLS close_notify); never waits. */
    virtual void shutdown() noexcept = 0;
    /** "SSH" or "TLSv1.3", for logs. */
    virtual std::string protocol() const = 0;
};
} // namespace callhome::transport
