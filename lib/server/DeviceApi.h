#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace callhome::server {
/** How one control-API request to a device ended. */
struct RpcOutcome {
    enum class Kind {
        Reply, ///< the device answered (<ok/>, data or <rpc-error>: the caller reads `reply`)
        Timeout, ///< no reply by the deadline; the session stays up and a late reply is dropped
        TransportError, ///< the session ended before the reply
        TooLarge, ///< the reply exceeded limits/max-message (the session is closed: the stream cannot skip it)
        Busy, ///< too many requests queued for this device
    };
    Kind kind = Kind::Reply;
    std::string reply; ///< the whole <rpc-reply> (Kind::Reply)
    std::string detail; ///< why, for the others
    std::string messageId; ///< the message-id it was sent with; empty when it was never sent
    /** The client went away first (RpcCall::cancelled): `done` is called for the trace only, nobody is answered. */
    bool cancelled = false;
};

/**
 * One RPC from the control API to a device. Made on an API thread and shared with the device's connection, which
 * frames it into the session (pipelined behind others to the same device) and answers `done` exactly once, on its
 * event loop, also when the client went away (RpcOutcome::cancelled, so that the operation is traced): `done` must
 * not block.
 */
struct RpcCall {
    std::string operation; ///< what goes inside <rpc>: one well-formed XML element
    std::chrono::steady_clock::time_point deadline;
    std::function<void(RpcOutcome)> done;
    std::atomic<bool> cancelled { false }; ///< the client went away: not sent if still queued, its reply dropped
    std::string messageId; ///< set by the connection (on its loop) when it sends the call
};

/** One follower of a device's notifications (an API stream). Called on the connection's loop: never blocks. */
class NotificationSink {
public:
    virtual ~NotificationSink() = default;
    /** The session is subscribed to the stream (now, or it already was). */
    virtual void subscribed() = 0;
    /** A <notification>; false when the follower is gone or too slow: it is then dropped. */
    virtual bool deliver(const std::string& xml) = 0;
    /** No more notifications: the device refused the subscription (`reply` is its <rpc-reply>), or the session ended.
     */
    virtual void ended(const std::string& reason, const std::string& reply) = 0;
};

/** What the API shows of a held session's traffic; written on the connection's loop, read anywhere. */
struct SessionStats {
    std::atomic<uint64_t> rpcs { 0 }; ///< API requests sent to the device
    std::atomic<int64_t> lastActivityMs { 0 }; ///< system clock, ms since the epoch: last message either way
};

/** The control API's handle on a held session; thread-safe: each call posts to the device's event loop. */
struct DeviceChannel {
    /** Queues the RPC; if the connection is already gone, `done` gets TransportError. */
    std::function<void(std::shared_ptr<RpcCall>)> submit;
    /** Adds a follower; the first one subscribes the session to `stream` (RFC 5277 <create-subscription>). */
    std::function<void(std::shared_ptr<NotificationSink>, std::string stream)> follow;
    /** Removes a follower (the client went away). */
    std::function<void(std::shared_ptr<NotificationSink>)> unfollow;
};
} // namespace callhome::server
