#pragma once
#include "common/Time.h"
#include "config/Config.h"
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>
#include <thread>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace callhome::api {
namespace http = boost::beast::http;

/** Who sent a request: the UNIX socket peer's credentials (SO_PEERCRED), or the TLS client's certificate. */
struct Peer {
    std::optional<uid_t> uid;
    std::optional<gid_t> gid;
    std::optional<pid_t> pid;
    std::string certSubject;
    std::string certFingerprint;
    /** "uid 1000 (alice) pid 4242" or "cert CN=nms SHA256:..." for logs and events. */
    std::string describe() const;
    /** The uid's user name (getpwuid_r); empty when it has none or the peer came over TLS. */
    std::string userName() const;
    /** Who decisions are attributed to: "uid 1000 (alice)" or "cert CN=nms" (no pid: the person, not the process). */
    std::string actor() const;
};

/** The request header carrying a client's opaque secondary id into the trace; echoed in the response. */
inline constexpr const char* kTraceIdHeader = "X-Callhome-Trace-Id";
/** At most 128 printable ASCII characters (no control characters, no spaces at either end). */
bool validTraceId(std::string_view id);

/** One parsed request. */
struct Request {
    http::request<http::string_body> message;
    std::string path; ///< the target without the query, as sent
    std::vector<std::string> segments; ///< the path's segments, each percent-decoded (%2F is a '/' inside one)
    std::map<std::string, std::string> query; ///< percent-decoded
    Peer peer;
    TimePoint receivedAt; ///< when its head was read
    std::optional<std::string> param(const std::string& name) const;
    /** The Accept header asks for this media type (a plain substring match of the type). */
    bool accepts(std::string_view type) const;
};

using Response = http::response<http::string_body>;

/**
 * The server's side of one request: answer it once with respond(), or open a stream and write chunks. Thread-safe:
 * device connections answer from their event loops. After the client went away every call is a no-op.
 */
class Exchange {
public:
    virtual ~Exchange() = default;
    virtual void respond(Response response) = 0;
    /** Sends the head of a chunked response (200, `contentType`). */
    virtual void startStream(const std::string& contentType) = 0;
    /** Queues one chunk; false when the client is gone or has fallen behind by more than the stream buffer (it is
     * then disconnected). */
    virtual bool write(std::string data) = 0;
    virtual void endStream() = 0;
    /** Waits (up to `timeout`) until less than half the stream buffer is waiting for the client: a producer that
     * lists a whole table paces itself on the client. False when the client is gone or the time ran out. */
    virtual bool waitWritable(std::chrono::milliseconds timeout) = 0;
    /** `f` runs once (on an API thread) when the client goes away before the exchange ended; at once if it has. */
    virtual void onGone(std::function<void()> f) = 0;
    virtual bool gone() const = 0;
};

using Handler = std::function<void(std::shared_ptr<Request>, std::shared_ptr<Exchange>)>;

/**
 * HTTP/1.1 on a UNIX socket (and optionally TCP + TLS with client certificates) with Boost.Beast: a fixed set of
 * threads (ch-api-N), every connection asynchronous on its own strand, so a request waiting on a device or a stream
 * that lasts for hours costs a socket and a small object, never a thread. While a request waits, the connection
 * keeps reading: a client that hangs up is noticed at once and its request cancelled.
 */
class HttpServer {
public:
    struct Options {
        std::string socketPath; ///< empty: no UNIX socket
        std::optional<std::string> group;
        size_t maxBody = 16 * 1024 * 1024;
        size_t streamBuffer = 4 * 1024 * 1024;
        unsigned threads = 2;
        std::optional<config::ControlSettings::Tcp> tcp;
    };
    /** Binds every endpoint (a stale socket file is replaced; one a live process answers on is an error). */
    HttpServer(Options options, Handler handler);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    void start();
    /** Stops accepting, closes every connection, joins the threads. Idempotent. */
    void stop();
    /** The TCP port bound (when tcp is configured; useful with port 0). */
    uint16_t tcpPort() const;
    boost::asio::io_context& context();

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

/** A JSON error body `{"error": code, "message": message}` with `status`. */
Response errorResponse(http::status status, const std::string& code, const std::string& message);
/** A 200 response with `body` of `contentType`. */
Response okResponse(std::string body, const std::string& contentType = "application/json");
} // namespace callhome::api
