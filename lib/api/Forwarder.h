#pragma once
#include "api/Http.h"
#include "config/Config.h"
#include <memory>
#include <string>

namespace boost::asio {
class io_context;
}

namespace callhome::api {
/** The request header that marks a request forwarded by another instance (its listener id): never forwarded again. */
inline constexpr const char* kForwardedByHeader = "X-Callhome-Forwarded-By";
/** Who asked the forwarding instance (Peer::describe()), for the receiving instance's log. */
inline constexpr const char* kForwardedForHeader = "X-Callhome-Forwarded-For";

/**
 * Several instances on one inventory (config control/forward): sends a control-API request for a device another
 * instance holds to that instance's control/tcp listener, over TLS with this instance's client certificate (the
 * other's server certificate must verify to control/forward/ca), and relays the answer as is: a whole response with
 * its status, or a stream (notifications) chunk by chunk until either side ends it. Asynchronous on the API's
 * io_context (a forwarded request costs a socket, never a thread); connect and TLS handshake within 5 s.
 */
class Forwarder {
public:
    Forwarder(boost::asio::io_context& io, const config::ControlSettings::Forward& settings, std::string listenerId);
    ~Forwarder();
    Forwarder(const Forwarder&) = delete;
    Forwarder& operator=(const Forwarder&) = delete;

    /** Forwards `request` to `endpoint` ("ADDRESS:PORT", "[V6]:PORT") of instance `holder`; answers `exchange`. */
    void forward(const std::shared_ptr<Request>& request, const std::shared_ptr<Exchange>& exchange,
        const std::string& endpoint, const std::string& holder);

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};
} // namespace callhome::api
