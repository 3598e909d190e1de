#include "api/Http.h"
#include "common/Error.h"
#include "common/Log.h"
#include <algorithm>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fmt/format.h>
#include <grp.h>
#include <mutex>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <pwd.h>
#include <sstream>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace callhome::api {
namespace {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace fs = std::filesystem;
using local = net::local::stream_protocol;
using tcp = net::ip::tcp;
using TlsStream = net::ssl::stream<tcp::socket>;

int hexDigit(char h)
{
    if (h >= '0' && h <= '9') {
        return h - '0';
    }
    if (h >= 'a' && h <= 'f') {
        return h - 'a' + 10;
    }
    if (h >= 'A' && h <= 'F') {
        return h - 'A' + 10;
    }
    return -1;
}

std::string percentDecode(std::string_view in, bool plusIsSpace)
{
    std::string out;
    out.reserve(in.size());
    for (size_t i = 0; i < in.size(); ++i) {
        char c = in[i];
        if (c == '%' && i + 2 < in.size()) {
            int hi = hexDigit(in[i + 1]);
            int lo = hexDigit(in[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out += static_cast<char>(hi * 16 + lo);
                i += 2;
                continue;
            }
        }
        out += (plusIsSpace && c == '+') ? ' ' : c;
    }
    return out;
}

/** Splits the request target into its decoded path and query parameters. */
void splitTarget(std::string_view target, Request& r)
{
    auto q = target.find('?');
    r.path = std::string(target.substr(0, q));
    // Split before decoding: a fingerprint in a path segment has its '/' as %2F.
    auto path = target.substr(0, q);
    size_t i = 0;
    while (i < path.size()) {
        auto j = path.find('/', i);
        if (j == std::string_view::npos) {
            j = path.size();
        }
        if (j > i) {
            r.segments.push_back(percentDecode(path.substr(i, j - i), false));
        }
        i = j + 1;
    }
    if (q == std::string_view::npos) {
        return;
    }
    auto query = target.substr(q + 1);
    while (!query.empty()) {
        auto amp = query.find('&');
        auto pair = query.substr(0, amp);
        if (!pair.empty()) {
            auto eq = pair.find('=');
            r.query[percentDecode(pair.substr(0, eq), true)]
                = eq == std::string_view::npos ? std::string() : percentDecode(pair.substr(eq + 1), true);
        }
        if (amp == std::string_view::npos) {
            break;
        }
        query = query.substr(amp + 1);
    }
}

void closeStream(local::socket& s)
{
    beast::error_code ec;
    s.shutdown(local::socket::shutdown_both, ec);
    s.close(ec);
}

void closeStream(TlsStream& s)
{
    beast::error_code ec;
    s.lowest_layer().shutdown(tcp::socket::shutdown_both, ec);
    s.lowest_layer().close(ec);
}

std::string headOf(const Response& r)
{
    std::ostringstream out;
    out << r.base();
    return out.str();
}

std::string serialize(Response& r)
{
    r.prepare_payload();
    std::ostringstream out;
    out << r;
    return out.str();
}

/** What stop() needs of a connection. */
class Closable {
public:
    virtual ~Closable() = default;
    /** Ends an open stream with its last chunk, then closes; closes an idle connection at once. */
    virtual void shutdown() = 0;
    virtual bool closed() const = 0;
};

/** One client connection: reads requests, hands each to the handler, writes answers and stream chunks in order. */
template<typename Stream>
class HttpConnection : public Exchange, public Closable, public std::enable_shared_from_this<HttpConnection<Stream>> {
public:
    HttpConnection(Stream stream, const HttpServer::Options& options, const Handler& handler, Peer peer)
        : m_stream(std::move(stream))
        , m_options(options)
        , m_handler(handler)
        , m_peer(std::move(peer))
    { }

    void run() { readRequest(); }

    // Exchange; every entry point hops onto this connection's strand.
    void respond(Response response) override
    {
        net::post(executor(), [self = this->shared_from_this(), r = std::move(response)]() mutable {
            if (self->m_state != State::Waiting) {
                return;
            }
            r.version(11);
            r.keep_alive(self->m_keepAlive);
            if (!self->m_traceId.empty()) {
                r.set(kTraceIdHeader, self->m_traceId);
            }
            self->m_state = State::Idle;
            self->queue(serialize(r));
            self->afterExchange();
        });
    }

    void startStream(const std::string& contentType) override
    {
        net::post(executor(), [self = this->shared_from_this(), contentType]() {
            if (self->m_state != State::Waiting) {
                return;
            }
            Response head { http::status::ok, 11 };
            head.set(http::field::content_type, contentType);
            head.set(http::field::cache_control, "no-store");
            head.chunked(true);
            head.keep_alive(self->m_keepAlive);
            if (!self->m_traceId.empty()) {
                head.set(kTraceIdHeader, self->m_traceId);
            }
            self->m_state = State::Streaming;
            self->queue(headOf(head));
        });
    }

    bool write(std::string data) override
    {
        if (m_gone.load() || data.empty()) {
            return !m_gone.load();
        }
        // Counted here (any thread) so that a producer learns at once that the client has fallen behind.
        if (m_buffered.fetch_add(data.size()) + data.size() > m_options.streamBuffer) {
            net::post(executor(), [self = this->shared_from_this()]() {
                log::get(log::Main)->info(
                    "control API: dropping a stream client that fell behind ({})", self->m_peer.describe());
                self->disconnect();
            });
            m_gone = true;
            return false;
        }
        net::post(executor(), [self = this->shared_from_this(), d = std::move(data)]() mutable {
            if (self->m_state != State::Streaming) {
                self->m_buffered -= d.size();
                return;
            }
            auto size = d.size();
            self->queue(fmt::format("{:x}\r\n", size) + d + "\r\n", size);
        });
        return true;
    }

    void endStream() override
    {
        net::post(executor(), [self = this->shared_from_this()]() {
            if (self->m_state != State::Streaming) {
                return;
            }
            self->m_state = State::Idle;
            self->queue("0\r\n\r\n");
            self->afterExchange();
        });
    }

    void onGone(std::function<void()> f) override
    {
        net::post(executor(), [self = this->shared_from_this(), f = std::move(f)]() mutable {
            if (self->m_gone) {
                f();
            } else {
                self->m_goneCallbacks.push_back(std::move(f));
            }
        });
    }

    bool gone() const override { return m_gone.load(); }

    void shutdown() override
    {
        net::post(executor(), [self = this->shared_from_this()]() {
            self->m_keepAlive = false;
            if (self->m_state == State::Streaming) {
                self->m_state = State::Idle;
                self->queue("0\r\n\r\n");
                self->m_closeAfterWrite = true;
                self->flush();
            } else if (self->m_state == State::Idle && !self->m_writing) {
                self->disconnect();
            } else {
                self->m_closeAfterWrite = true;
            }
        });
    }

    bool closed() const override { return m_closedFlag.load(); }

    bool waitWritable(std::chrono::milliseconds timeout) override
    {
        std::unique_lock lock(m_drainMutex);
        return m_drained.wait_for(lock, timeout, [this] {
            return m_gone.load() || m_buffered.load() < m_options.streamBuffer / 2;
        }) && !m_gone.load();
    }

private:
    enum class State { Idle, Waiting, Streaming };

    auto executor() { return m_stream.get_executor(); }

    void readRequest()
    {
        m_parser.emplace();
        m_parser->body_limit(m_options.maxBody);
        m_parser->header_limit(64 * 1024);
        http::async_read(m_stream, m_buffer, *m_parser,
            [self = this->shared_from_this()](beast::error_code ec, size_t) { self->onRead(ec); });
    }

    void onRead(beast::error_code ec)
    {
        if (ec) {
            if (ec == http::error::body_limit && m_state == State::Idle) {
                m_keepAlive = false;
                m_state = State::Waiting;
                respond(errorResponse(http::status::payload_too_large, "too-large",
                    "the request body is larger than control/max-request (" + std::to_string(m_options.maxBody)
                        + " bytes)"));
                return;
            }
            if (m_state == State::Idle && ec != http::error::end_of_stream && ec != net::error::eof
                && ec != net::error::operation_aborted && ec != net::error::connection_reset && m_buffer.size() > 0) {
                m_keepAlive = false;
                m_state = State::Waiting;
                respond(errorResponse(http::status::bad_request, "bad-request", "malformed HTTP: " + ec.message()));
                return;
            }
            clientGone();
            return;
        }
        auto request = std::make_shared<Request>();
        request->message = m_parser->release();
        request->peer = m_peer;
        request->receivedAt = now();
        if (m_state != State::Idle) {
            // Pipelined behind a request still in progress: answered after it (one is kept, then reading pauses).
            m_next = std::move(request);
            return;
        }
        dispatch(std::move(request));
    }

    void dispatch(std::shared_ptr<Request> request)
    {
        m_keepAlive = request->message.keep_alive();
        // Echoed in this request's answer (answers go out in order: one request at a time per connection).
        auto traceId = request->message[kTraceIdHeader];
        m_traceId = validTraceId(traceId) ? std::string(traceId) : std::string();
        splitTarget(std::string_view(request->message.target().data(), request->message.target().size()), *request);
        m_state = State::Waiting;
        // Keep reading while the request is served: an end of stream now means the client went away.
        readRequest();
        try {
            m_handler(std::move(request), this->shared_from_this());
        } catch (const std::exception& e) {
            respond(errorResponse(http::status::internal_server_error, "internal", e.what()));
        }
    }

    void afterExchange()
    {
        if (!m_keepAlive) {
            m_closeAfterWrite = true;
            flush();
            return;
        }
        if (m_next) {
            auto next = std::move(m_next);
            m_next.reset();
            dispatch(std::move(next));
        }
    }

    void queue(std::string bytes, size_t counted = 0)
    {
        m_out.push_back({ std::move(bytes), counted });
        flush();
    }

    void flush()
    {
        if (m_writing || m_gone) {
            return;
        }
        if (m_out.empty()) {
            if (m_closeAfterWrite) {
                disconnect();
            }
            return;
        }
        m_writing = true;
        net::async_write(m_stream, net::buffer(m_out.front().bytes),
            [self = this->shared_from_this()](beast::error_code ec, size_t) {
                self->m_writing = false;
                if (self->m_out.front().counted) {
                    std::lock_guard lock(self->m_drainMutex);
                    self->m_buffered -= self->m_out.front().counted;
                }
                self->m_drained.notify_all();
                self->m_out.pop_front();
                if (ec) {
                    self->clientGone();
                    return;
                }
                self->flush();
            });
    }

    void clientGone() { disconnect(); }

    void disconnect()
    {
        {
            std::lock_guard lock(m_drainMutex);
            m_gone = true;
        }
        m_drained.notify_all();
        if (!m_closed) {
            m_closed = true;
            closeStream(m_stream);
            m_closedFlag = true;
        }
        auto callbacks = std::move(m_goneCallbacks);
        m_goneCallbacks.clear();
        for (auto& f : callbacks) {
            f();
        }
    }

    struct Pending {
        std::string bytes;
        size_t counted; ///< stream payload bytes it carries (m_buffered)
    };

    Stream m_stream;
    const HttpServer::Options& m_options;
    const Handler& m_handler;
    Peer m_peer;
    beast::flat_buffer m_buffer;
    std::optional<http::request_parser<http::string_body>> m_parser;
    std::shared_ptr<Request> m_next;
    State m_state = State::Idle;
    bool m_keepAlive = true;
    std::string m_traceId; ///< the current request's X-Callhome-Trace-Id, when valid (echoed in its answer)
    bool m_closeAfterWrite = false;
    bool m_writing = false;
    bool m_closed = false;
    std::deque<Pending> m_out;
    std::atomic<size_t> m_buffered { 0 };
    std::atomic<bool> m_gone { false };
    std::atomic<bool> m_closedFlag { false };
    std::vector<std::function<void()>> m_goneCallbacks;
    std::mutex m_drainMutex;
    std::condition_variable m_drained;
};

Peer unixPeer(int fd)
{
    Peer p;
    ucred cred {};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        p.uid = cred.uid;
        p.gid = cred.gid;
        p.pid = cred.pid;
    }
    return p;
}

Peer tlsPeer(TlsStream& s)
{
    Peer p;
    X509* cert = SSL_get1_peer_certificate(s.native_handle());
    if (!cert) {
        return p;
    }
    char* subject = X509_NAME_oneline(X509_get_subject_name(cert), nullptr, 0);
    if (subject) {
        p.certSubject = subject;
        OPENSSL_free(subject);
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (X509_digest(cert, EVP_sha256(), md, &n) == 1) {
        std::string hex = "SHA256";
        for (unsigned i = 0; i < n; ++i) {
            hex += fmt::format(":{:02X}", md[i]);
        }
        p.certFingerprint = hex;
    }
    X509_free(cert);
    return p;
}
} // namespace

std::string Peer::userName() const
{
    if (!uid) {
        return {};
    }
    // getpwuid_r: API threads describe peers concurrently.
    passwd pw {};
    passwd* found = nullptr;
    char buf[1024];
    if (::getpwuid_r(*uid, &pw, buf, sizeof buf, &found) == 0 && found) {
        return found->pw_name;
    }
    return {};
}

std::string Peer::actor() const
{
    if (!certSubject.empty() || !certFingerprint.empty()) {
        return "cert " + (certSubject.empty() ? certFingerprint : certSubject);
    }
    if (!uid) {
        return "unknown peer";
    }
    std::string out = "uid " + std::to_string(*uid);
    if (auto name = userName(); !name.empty()) {
        out += " (" + name + ")";
    }
    return out;
}

bool validTraceId(std::string_view id)
{
    return !id.empty() && id.size() <= 128 && id.front() != ' ' && id.back() != ' '
        && std::all_of(id.begin(), id.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

std::string Peer::describe() const
{
    if (!certSubject.empty() || !certFingerprint.empty()) {
        return "cert " + certSubject + " " + certFingerprint;
    }
    if (!uid) {
        return "unknown peer";
    }
    std::string out = actor();
    if (pid) {
        out += " pid " + std::to_string(*pid);
    }
    return out;
}

std::optional<std::string> Request::param(const std::string& name) const
{
    auto it = query.find(name);
    return it == query.end() ? std::nullopt : std::optional<std::string>(it->second);
}

bool Request::accepts(std::string_view type) const
{
    auto accept = message[http::field::accept];
    return std::string_view(accept.data(), accept.size()).find(type) != std::string_view::npos;
}

Response errorResponse(http::status status, const std::string& code, const std::string& message)
{
    Response r { status, 11 };
    r.set(http::field::content_type, "application/json");
    r.body() = nlohmann::json { { "error", code }, { "message", message } }.dump() + "\n";
    return r;
}

Response okResponse(std::string body, const std::string& contentType)
{
    Response r { http::status::ok, 11 };
    r.set(http::field::content_type, contentType);
    r.body() = std::move(body);
    return r;
}

struct HttpServer::Impl {
    Options options;
    Handler handler;
    net::io_context io;
    std::optional<local::acceptor> unixAcceptor;
    std::optional<tcp::acceptor> tcpAcceptor;
    std::optional<net::ssl::context> tls;
    std::vector<std::thread> threads;
    std::mutex mutex;
    bool stopped = false;
    std::vector<std::weak_ptr<Closable>> live; ///< for a clean end of streams at stop()

    void track(const std::shared_ptr<Closable>& c)
    {
        std::lock_guard lock(mutex);
        if (live.size() > 64 && live.size() % 64 == 0) {
            std::erase_if(live, [](const auto& w) { return w.expired(); });
        }
        live.push_back(c);
    }

    Impl(Options o, Handler h)
        : options(std::move(o))
        , handler(std::move(h))
    { }

    void bindUnix()
    {
        const auto& path = options.socketPath;
        std::error_code fec;
        if (fs::exists(fs::symlink_status(path, fec))) {
            // A socket file left by a crash is replaced; one a running callhomed answers on is not.
            local::socket probe(io);
            beast::error_code ec;
            probe.connect(local::endpoint(path), ec);
            if (!ec) {
                throw UsageError("control socket " + path + " is in use by another process (another callhomed?)");
            }
            if (!fs::is_socket(fs::symlink_status(path, fec))) {
                throw UsageError("control socket path " + path + " exists and is not a socket");
            }
            fs::remove(path, fec);
        }
        if (auto parent = fs::path(path).parent_path(); !parent.empty()) {
            fs::create_directories(parent, fec);
        }
        unixAcceptor.emplace(io);
        beast::error_code ec;
        unixAcceptor->open(local(), ec);
        // Created 0600 (no window in which others could connect), then opened to the group.
        auto old = ::umask(0177);
        unixAcceptor->bind(local::endpoint(path), ec);
        ::umask(old);
        if (ec) {
            throw UsageError("control socket " + path + ": " + ec.message());
        }
        if (options.group) {
            auto* g = ::getgrnam(options.group->c_str());
            if (!g) {
                throw UsageError("control/group: no group named " + *options.group);
            }
            if (::chown(path.c_str(), static_cast<uid_t>(-1), g->gr_gid) != 0) {
                throw UsageError(
                    "control socket " + path + ": chown to group " + *options.group + ": " + std::strerror(errno));
            }
        }
        ::chmod(path.c_str(), 0660);
        unixAcceptor->listen(net::socket_base::max_listen_connections, ec);
        if (ec) {
            throw UsageError("control socket " + path + ": listen: " + ec.message());
        }
    }

    void bindTcp(const config::ControlSettings::Tcp& t)
    {
        tls.emplace(net::ssl::context::tls_server);
        tls->set_options(net::ssl::context::no_sslv2 | net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1
            | net::ssl::context::no_tlsv1_1 | net::ssl::context::default_workarounds);
        try {
            tls->use_certificate_chain_file(t.certificate);
            tls->use_private_key_file(t.key, net::ssl::context::pem);
            tls->load_verify_file(t.clientCa);
        } catch (const std::exception& e) {
            throw UsageError("control/tcp: loading the certificate, key or client CA: " + std::string(e.what()));
        }
        tls->set_verify_mode(net::ssl::verify_peer | net::ssl::verify_fail_if_no_peer_cert);
        beast::error_code ec;
        auto address = net::ip::make_address(t.address, ec);
        if (ec) {
            throw UsageError("control/tcp/address: not a numeric address: " + t.address);
        }
        tcpAcceptor.emplace(io);
        tcp::endpoint ep(address, t.port);
        tcpAcceptor->open(ep.protocol(), ec);
        tcpAcceptor->set_option(net::socket_base::reuse_address(true), ec);
        tcpAcceptor->bind(ep, ec);
        if (ec) {
            throw UsageError(
                "control/tcp: binding " + t.address + " port " + std::to_string(t.port) + ": " + ec.message());
        }
        tcpAcceptor->listen(net::socket_base::max_listen_connections, ec);
    }

    void acceptUnix()
    {
        unixAcceptor->async_accept(net::make_strand(io), [this](beast::error_code ec, local::socket s) {
            if (ec == net::error::operation_aborted) {
                return;
            }
            if (!ec) {
                auto peer = unixPeer(s.native_handle());
                auto c = std::make_shared<HttpConnection<local::socket>>(std::move(s), options, handler, peer);
                track(c);
                c->run();
            } else if (ec == net::error::no_descriptors) {
                log::get(log::Main)->warn("control API: accept: {}", ec.message());
            }
            acceptUnix();
        });
    }

    void acceptTcp()
    {
        tcpAcceptor->async_accept(net::make_strand(io), [this](beast::error_code ec, tcp::socket s) {
            if (ec == net::error::operation_aborted) {
                return;
            }
            if (!ec) {
                auto stream = std::make_shared<TlsStream>(std::move(s), *tls);
                stream->async_handshake(net::ssl::stream_base::server, [this, stream](beast::error_code hec) {
                    if (hec) {
                        log::get(log::Main)->info("control API: TLS client refused: {}", hec.message());
                        closeStream(*stream);
                        return;
                    }
                    auto peer = tlsPeer(*stream);
                    auto c = std::make_shared<HttpConnection<TlsStream>>(std::move(*stream), options, handler, peer);
                    track(c);
                    c->run();
                });
            }
            acceptTcp();
        });
    }
};

HttpServer::HttpServer(Options options, Handler handler)
    : m_impl(std::make_unique<Impl>(std::move(options), std::move(handler)))
{
    if (!m_impl->options.socketPath.empty()) {
        m_impl->bindUnix();
    }
    if (m_impl->options.tcp) {
        m_impl->bindTcp(*m_impl->options.tcp);
    }
}

HttpServer::~HttpServer()
{
    stop();
}

void HttpServer::start()
{
    if (m_impl->unixAcceptor) {
        m_impl->acceptUnix();
    }
    if (m_impl->tcpAcceptor) {
        m_impl->acceptTcp();
    }
    for (unsigned i = 0; i < std::max(1u, m_impl->options.threads); ++i) {
        m_impl->threads.emplace_back([this, i] {
            auto name = "ch-api-" + std::to_string(i);
            pthread_setname_np(pthread_self(), name.c_str());
            m_impl->io.run();
        });
    }
}

void HttpServer::stop()
{
    {
        std::lock_guard lock(m_impl->mutex);
        if (m_impl->stopped) {
            return;
        }
        m_impl->stopped = true;
    }
    net::post(m_impl->io, [impl = m_impl.get()] {
        beast::error_code ec;
        if (impl->unixAcceptor) {
            impl->unixAcceptor->close(ec);
        }
        if (impl->tcpAcceptor) {
            impl->tcpAcceptor->close(ec);
        }
    });
    // Streams get their last chunk (a follower sees a clean end, not a broken connection), idle connections close;
    // up to a second for that, then whatever is left is cut when the io_context goes.
    std::vector<std::shared_ptr<Closable>> open;
    {
        std::lock_guard lock(m_impl->mutex);
        for (auto& w : m_impl->live) {
            if (auto c = w.lock()) {
                open.push_back(std::move(c));
            }
        }
        m_impl->live.clear();
    }
    for (auto& c : open) {
        c->shutdown();
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (!m_impl->threads.empty() && std::chrono::steady_clock::now() < deadline
        && std::any_of(open.begin(), open.end(), [](const auto& c) { return !c->closed(); })) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    open.clear();
    m_impl->io.stop();
    for (auto& t : m_impl->threads) {
        if (t.joinable()) {
            t.join();
        }
    }
    if (!m_impl->options.socketPath.empty()) {
        std::error_code ec;
        fs::remove(m_impl->options.socketPath, ec);
    }
}

uint16_t HttpServer::tcpPort() const
{
    beast::error_code ec;
    return m_impl->tcpAcceptor ? m_impl->tcpAcceptor->local_endpoint(ec).port() : 0;
}

boost::asio::io_context& HttpServer::context()
{
    return m_impl->io;
}
} // namespace callhome::api
