#include "api/Forwarder.h"
#include "common/Log.h"
#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace callhome::api {
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {
/** "ADDRESS:PORT" or "[V6]:PORT" → endpoint; throws Error. */
tcp::endpoint parseEndpoint(const std::string& text)
{
    auto colon = text.rfind(':');
    if (colon == std::string::npos || colon + 1 == text.size()) {
        throw Error("not ADDRESS:PORT: " + text);
    }
    auto host = text.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    boost::system::error_code ec;
    auto address = net::ip::make_address(host, ec);
    if (ec) {
        throw Error("not a numeric address: " + host);
    }
    return { address, static_cast<unsigned short>(std::stoul(text.substr(colon + 1))) };
}

/** One forwarded request: its own TLS connection, on its own strand. */
class Forwarding : public std::enable_shared_from_this<Forwarding> {
public:
    Forwarding(net::io_context& io, net::ssl::context& tls, std::shared_ptr<Request> request,
        std::shared_ptr<Exchange> exchange, std::string endpoint, std::string holder, std::string self)
        : m_strand(net::make_strand(io))
        , m_stream(m_strand, tls)
        , m_timer(m_strand)
        , m_request(std::move(request))
        , m_exchange(std::move(exchange))
        , m_endpoint(std::move(endpoint))
        , m_holder(std::move(holder))
        , m_self(std::move(self))
    { }

    /** Starts on its strand: every handler of this forwarding, and close() from onGone, run there one at a time. */
    void start()
    {
        net::dispatch(m_strand, [self = shared_from_this()] { self->begin(); });
    }

private:
    void begin()
    {
        tcp::endpoint ep;
        try {
            ep = parseEndpoint(m_endpoint);
        } catch (const std::exception& e) {
            fail(e.what());
            return;
        }
        auto self = shared_from_this();
        m_exchange->onGone([self] { net::post(self->m_strand, [self] { self->close(); }); });
        m_timer.expires_after(std::chrono::seconds(5));
        m_timer.async_wait([self](boost::system::error_code ec) {
            if (!ec && !self->m_connected) {
                self->fail("no TLS connection within 5 s");
            }
        });
        m_stream.next_layer().async_connect(ep, [self](boost::system::error_code ec) {
            if (ec) {
                return self->fail("connect: " + ec.message());
            }
            self->m_stream.async_handshake(net::ssl::stream_base::client, [self](boost::system::error_code ec) {
                if (ec) {
                    return self->fail("TLS handshake: " + ec.message());
                }
                self->m_connected = true;
                self->m_timer.cancel();
                self->send();
            });
        });
    }

    void send()
    {
        const auto& in = m_request->message;
        m_out.method(in.method());
        m_out.target(in.target());
        m_out.version(11);
        m_out.set(http::field::host, m_endpoint);
        m_out.set(http::field::connection, "close");
        for (auto field : { http::field::content_type, http::field::accept }) {
            if (auto v = in[field]; !v.empty()) {
                m_out.set(field, v);
            }
        }
        if (auto v = in[kTraceIdHeader]; !v.empty()) {
            m_out.set(kTraceIdHeader, v);
        }
        m_out.set(kForwardedByHeader, m_self);
        m_out.set(kForwardedForHeader, m_request->peer.describe());
        m_out.body() = in.body();
        m_out.prepare_payload();
        auto self = shared_from_this();
        http::async_write(m_stream, m_out, [self](boost::system::error_code ec, size_t) {
            if (ec) {
                return self->fail("sending the request: " + ec.message());
            }
            self->m_parser.body_limit(boost::none); // the holder applies limits/max-message; streams have no end
            http::async_read_header(
                self->m_stream, self->m_buffer, self->m_parser, [self](boost::system::error_code ec, size_t) {
                    if (ec) {
                        return self->fail("reading the answer: " + ec.message());
                    }
                    self->m_streaming = self->m_parser.chunked();
                    if (self->m_streaming) {
                        auto type = self->m_parser.get()[http::field::content_type];
                        self->m_exchange->startStream(std::string(type.empty() ? "application/json" : type));
                    }
                    self->readBody();
                });
        });
    }

    void readBody()
    {
        m_parser.get().body().data = m_chunk.data();
        m_parser.get().body().size = m_chunk.size();
        auto self = shared_from_this();
        http::async_read_some(m_stream, m_buffer, m_parser, [self](boost::system::error_code ec, size_t) {
            if (ec == http::error::need_buffer) {
                ec = {};
            }
            auto used = self->m_chunk.size() - self->m_parser.get().body().size;
            if (used > 0) {
                std::string data(self->m_chunk.data(), used);
                if (self->m_streaming) {
                    if (!self->m_exchange->write(std::move(data))) {
                        return self->close(); // our client is gone or too slow: the holder's stream ends with it
                    }
                } else {
                    self->m_body += data;
                }
            }
            if (ec) {
                if (self->m_streaming) {
                    self->m_exchange->endStream();
                    return self->close();
                }
                return self->fail("reading the answer: " + ec.message());
            }
            if (self->m_parser.is_done()) {
                self->finish();
                return;
            }
            self->readBody();
        });
    }

    void finish()
    {
        if (m_streaming) {
            m_exchange->endStream();
        } else {
            const auto& head = m_parser.get();
            Response response { head.result(), 11 };
            for (const auto& field : head) {
                auto name = field.name();
                if (name == http::field::content_length || name == http::field::transfer_encoding
                    || name == http::field::connection) {
                    continue;
                }
                response.set(field.name_string(), field.value());
            }
            response.body() = std::move(m_body);
            response.prepare_payload();
            m_exchange->respond(std::move(response));
        }
        close();
    }

    void fail(const std::string& what)
    {
        if (m_done) {
            return;
        }
        auto message = fmt::format("forwarding to instance {} at {}: {}", m_holder, m_endpoint, what);
        log::get(log::Main)->warn("control API: {}", message);
        if (m_streaming) {
            m_exchange->endStream();
        } else {
            m_exchange->respond(errorResponse(http::status::bad_gateway, "forward-failed", message));
        }
        close();
    }

    void close()
    {
        if (m_done) {
            return;
        }
        m_done = true;
        m_timer.cancel();
        boost::system::error_code ignored;
        m_stream.next_layer().shutdown(tcp::socket::shutdown_both, ignored);
        m_stream.next_layer().close(ignored);
    }

    net::strand<net::io_context::executor_type> m_strand;
    net::ssl::stream<tcp::socket> m_stream;
    net::steady_timer m_timer;
    std::shared_ptr<Request> m_request;
    std::shared_ptr<Exchange> m_exchange;
    std::string m_endpoint;
    std::string m_holder;
    std::string m_self;
    http::request<http::string_body> m_out;
    boost::beast::flat_buffer m_buffer;
    http::response_parser<http::buffer_body> m_parser;
    std::array<char, 16384> m_chunk {};
    std::string m_body;
    bool m_connected = false;
    bool m_streaming = false;
    bool m_done = false;
};
} // namespace

struct Forwarder::Impl {
    Impl(net::io_context& context, std::string id)
        : io(context)
        , listenerId(std::move(id))
    { }
    net::io_context& io;
    net::ssl::context tls { net::ssl::context::tls_client };
    std::string listenerId;
};

Forwarder::Forwarder(net::io_context& io, const config::ControlSettings::Forward& settings, std::string listenerId)
    : m_impl(std::make_unique<Impl>(io, std::move(listenerId)))
{
    auto& tls = m_impl->tls;
    tls.set_options(net::ssl::context::no_sslv2 | net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1
        | net::ssl::context::no_tlsv1_1 | net::ssl::context::default_workarounds);
    try {
        tls.use_certificate_chain_file(settings.certificate);
        tls.use_private_key_file(settings.key, net::ssl::context::pem);
        tls.load_verify_file(settings.ca);
    } catch (const std::exception& e) {
        throw UsageError("control/forward: loading the certificate, key or CA: " + std::string(e.what()));
    }
    tls.set_verify_mode(net::ssl::verify_peer);
}

Forwarder::~Forwarder() = default;

void Forwarder::forward(const std::shared_ptr<Request>& request, const std::shared_ptr<Exchange>& exchange,
    const std::string& endpoint, const std::string& holder)
{
    log::get(log::Main)->info("control API: {} {} from {} forwarded to instance {} at {}",
        std::string(request->message.method_string()), std::string(request->message.target()), request->peer.describe(),
        holder, endpoint);
    std::make_shared<Forwarding>(m_impl->io, m_impl->tls, request, exchange, endpoint, holder, m_impl->listenerId)
        ->start();
}
} // namespace callhome::api
