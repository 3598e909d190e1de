#include "transport/TlsPump.h"
#include "common/Error.h"
#include "common/Log.h"
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <string_view>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

namespace callhome::transport {
namespace {
constexpr size_t kChunk = 16384; // one TLS record of plaintext
// libnetconf2 writes at most its output buffer at once; a larger datagram would be truncated, which is refused.
constexpr size_t kMaxMessage = 256 * 1024;
// Token layout in epoll data: connection token << 2 | which descriptor; 0 = wake-up.
constexpr uint64_t kWakeToken = 0;
enum Which : uint64_t { TlsSocket = 0, ToNc = 1, FromNc = 2 };
// yuma123 netconfd (2.13) never answers an RPC that reaches it in the same read as the end of our <hello>. Over SSH
// the wait for the device's <hello> keeps them apart; over TLS that <hello> is already buffered and libnetconf2 sends
// its first RPC microseconds after its own <hello>. So the first message after our <hello> waits this long, once.
constexpr auto kHelloSettle = std::chrono::milliseconds(50);
constexpr std::string_view kEndOfMessage = "]]>]]>";
using Clock = std::chrono::steady_clock;
} // namespace

struct TlsPump::Connection {
    uint64_t token = 0;
    SSL* ssl = nullptr;
    SocketRef socket;
    UniqueFd local; ///< stream towards libnetconf2 (we write the device's bytes)
    UniqueFd fromLocal; ///< seqpacket from libnetconf2 (one datagram per write of libnetconf2)
    std::string toLocal; ///< decrypted, not yet written to the local end
    size_t toLocalOffset = 0;
    std::string toTls; ///< from the local end, not yet accepted by SSL_write
    size_t toTlsOffset = 0;
    bool readWantsWrite = false;
    bool writeWantsRead = false;
    bool writeWantsWrite = false;
    bool tlsEnded = false;
    bool localEnded = false;
    bool localShutdown = false;
    bool helloSent = false; ///< our <hello> (ends with "]]>]]>") went out
    Clock::time_point holdUntil {}; ///< no data from libnetconf2 is forwarded before then

    ~Connection()
    {
        if (ssl) {
            if (!tlsEnded) {
                SSL_shutdown(ssl); // best effort close_notify; non-blocking
            }
            SSL_free(ssl);
        }
        socket.closeIfStillOurs();
        ERR_clear_error();
    }
};

TlsPump::TlsPump()
{
    m_epoll.reset(::epoll_create1(EPOLL_CLOEXEC));
    m_wake.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!m_epoll || !m_wake) {
        throw Error(std::string("TLS pump: ") + std::strerror(errno));
    }
    epoll_event ev {};
    ev.events = EPOLLIN;
    ev.data.u64 = kWakeToken;
    ::epoll_ctl(m_epoll.get(), EPOLL_CTL_ADD, m_wake.get(), &ev);
    m_thread = std::thread([this] { run(); });
}

TlsPump::~TlsPump()
{
    stop();
}

TlsPump::Channel TlsPump::add(ssl_st* ssl, SocketRef socket)
{
    auto c = std::make_unique<Connection>();
    c->ssl = ssl;
    c->socket = socket;
    int down[2];
    int up[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, down) != 0) {
        throw Error(std::string("socketpair: ") + std::strerror(errno)); // ~Connection frees the SSL and socket
    }
    c->local.reset(down[0]);
    Channel theirs;
    theirs.in.reset(down[1]);
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, up) != 0) {
        throw Error(std::string("socketpair: ") + std::strerror(errno));
    }
    c->fromLocal.reset(up[0]);
    theirs.out.reset(up[1]);
    ::fcntl(c->local.get(), F_SETFL, ::fcntl(c->local.get(), F_GETFL) | O_NONBLOCK);
    ::fcntl(c->fromLocal.get(), F_SETFL, ::fcntl(c->fromLocal.get(), F_GETFL) | O_NONBLOCK);
    {
        std::lock_guard lock(m_mutex);
        if (m_stopping) {
            throw Error("TLS pump stopped");
        }
        m_incoming.push_back(std::move(c));
        ++m_count;
    }
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(m_wake.get(), &one, sizeof one);
    return theirs;
}

size_t TlsPump::size() const
{
    std::lock_guard lock(m_mutex);
    return m_count;
}

void TlsPump::stop()
{
    if (!m_stopping.exchange(true)) {
        uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(m_wake.get(), &one, sizeof one);
    }
    if (m_thread.joinable()) {
        m_thread.join();
    }
    std::lock_guard lock(m_mutex);
    m_incoming.clear();
    m_connections.clear();
    m_count = 0;
}

void TlsPump::updateInterest(Connection& c)
{
    epoll_event tls {};
    tls.data.u64 = c.token << 2 | TlsSocket;
    if ((!c.tlsEnded && c.toLocal.empty()) || c.writeWantsRead) {
        tls.events |= EPOLLIN;
    }
    if (c.readWantsWrite || c.writeWantsWrite) {
        tls.events |= EPOLLOUT;
    }
    ::epoll_ctl(m_epoll.get(), EPOLL_CTL_MOD, c.socket.fd, &tls);

    epoll_event toNc {};
    toNc.data.u64 = c.token << 2 | ToNc;
    if (!c.toLocal.empty()) {
        toNc.events |= EPOLLOUT;
    }
    ::epoll_ctl(m_epoll.get(), EPOLL_CTL_MOD, c.local.get(), &toNc);

    epoll_event fromNc {};
    fromNc.data.u64 = c.token << 2 | FromNc;
    if (!c.localEnded && c.toTls.empty() && Clock::now() >= c.holdUntil) {
        fromNc.events |= EPOLLIN;
    }
    ::epoll_ctl(m_epoll.get(), EPOLL_CTL_MOD, c.fromLocal.get(), &fromNc);
}

void TlsPump::service(Connection& c)
{
    static thread_local std::string message(kMaxMessage, '\0');
    char buf[kChunk];
    bool progress = true;
    while (progress) {
        progress = false;
        ERR_clear_error();
        // device → local
        if (!c.tlsEnded && c.toLocal.empty()) {
            c.readWantsWrite = false;
            int n = SSL_read(c.ssl, buf, sizeof buf);
            if (n > 0) {
                c.toLocal.assign(buf, static_cast<size_t>(n));
                c.toLocalOffset = 0;
                progress = true;
            } else {
                int err = SSL_get_error(c.ssl, n);
                if (err == SSL_ERROR_WANT_WRITE) {
                    c.readWantsWrite = true;
                } else if (err != SSL_ERROR_WANT_READ) {
                    c.tlsEnded = true; // close_notify, reset, alert: the device is gone
                    progress = true;
                    log::get(log::Listener)
                        ->debug("TLS pump: device side ended (SSL error {}, errno {}, {})", err, errno,
                            ERR_peek_error() ? ERR_reason_error_string(ERR_peek_error()) : "-");
                }
            }
        }
        if (!c.toLocal.empty() && !c.localEnded) {
            auto w = ::send(
                c.local.get(), c.toLocal.data() + c.toLocalOffset, c.toLocal.size() - c.toLocalOffset, MSG_NOSIGNAL);
            if (w > 0) {
                c.toLocalOffset += static_cast<size_t>(w);
                if (c.toLocalOffset == c.toLocal.size()) {
                    c.toLocal.clear();
                }
                progress = true;
            } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                c.localEnded = true;
                c.toLocal.clear();
            }
        } else if (c.localEnded) {
            c.toLocal.clear();
        }
        if (c.tlsEnded && c.toLocal.empty() && !c.localShutdown) {
            ::shutdown(c.local.get(), SHUT_WR); // libnetconf2 reads end of stream
            c.localShutdown = true;
        }

        // local → device
        if (!c.localEnded && c.toTls.empty() && Clock::now() >= c.holdUntil) {
            auto r = ::recv(c.fromLocal.get(), message.data(), message.size(), MSG_TRUNC);
            if (r > static_cast<ssize_t>(message.size())) {
                log::get(log::Listener)->error("TLS pump: a {} byte write from libnetconf2 is too large", r);
                c.localEnded = true;
                progress = true;
            } else if (r > 0) {
                c.toTls.assign(message.data(), static_cast<size_t>(r));
                c.toTlsOffset = 0;
                progress = true;
                if (!c.helloSent && c.toTls.find(kEndOfMessage) != std::string::npos) {
                    c.helloSent = true;
                    c.holdUntil = Clock::now() + kHelloSettle;
                }
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                c.localEnded = true;
                progress = true;
                log::get(log::Listener)->debug("TLS pump: local side ended (read {}, errno {})", r, errno);
            }
        }
        if (!c.toTls.empty() && !c.tlsEnded) {
            c.writeWantsRead = c.writeWantsWrite = false;
            int n = SSL_write(c.ssl, c.toTls.data() + c.toTlsOffset, static_cast<int>(c.toTls.size() - c.toTlsOffset));
            if (n > 0) {
                c.toTlsOffset += static_cast<size_t>(n);
                if (c.toTlsOffset == c.toTls.size()) {
                    c.toTls.clear();
                }
                progress = true;
            } else {
                int err = SSL_get_error(c.ssl, n);
                if (err == SSL_ERROR_WANT_READ) {
                    c.writeWantsRead = true;
                } else if (err == SSL_ERROR_WANT_WRITE) {
                    c.writeWantsWrite = true;
                } else {
                    c.tlsEnded = true;
                    progress = true;
                }
            }
        } else if (c.tlsEnded) {
            c.toTls.clear();
        }
    }
}

void TlsPump::remove(uint64_t token)
{
    auto it = m_connections.find(token);
    if (it == m_connections.end()) {
        return;
    }
    ::epoll_ctl(m_epoll.get(), EPOLL_CTL_DEL, it->second->socket.fd, nullptr);
    ::epoll_ctl(m_epoll.get(), EPOLL_CTL_DEL, it->second->local.get(), nullptr);
    ::epoll_ctl(m_epoll.get(), EPOLL_CTL_DEL, it->second->fromLocal.get(), nullptr);
    m_connections.erase(it);
    std::lock_guard lock(m_mutex);
    --m_count;
}

void TlsPump::afterService(uint64_t token)
{
    auto& c = *m_connections.at(token);
    // Done when libnetconf2 closed its end and everything it wrote went out (or the device is gone too).
    if ((c.tlsEnded && c.localEnded) || (c.localEnded && c.toTls.empty())) {
        remove(token);
    } else {
        updateInterest(c);
    }
}

void TlsPump::run()
{
    epoll_event events[64];
    while (!m_stopping) {
        int timeout = -1;
        auto t = Clock::now();
        for (const auto& [token, c] : m_connections) {
            if (c->holdUntil != Clock::time_point {}) {
                auto ms = std::max<long long>(
                    0, std::chrono::duration_cast<std::chrono::milliseconds>(c->holdUntil - t).count() + 1);
                timeout = timeout < 0 ? static_cast<int>(ms) : std::min(timeout, static_cast<int>(ms));
            }
        }
        int n = ::epoll_wait(m_epoll.get(), events, 64, timeout);
        // Settle times that ran out: forward what libnetconf2 wrote meanwhile.
        std::vector<uint64_t> due;
        for (const auto& [token, c] : m_connections) {
            if (c->holdUntil != Clock::time_point {} && c->holdUntil <= Clock::now()) {
                c->holdUntil = {};
                due.push_back(token);
            }
        }
        for (auto token : due) {
            service(*m_connections.at(token));
            afterService(token);
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            log::get(log::Listener)->critical("TLS pump: epoll_wait: {}", std::strerror(errno));
            return;
        }
        for (int i = 0; i < n; ++i) {
            if (events[i].data.u64 == kWakeToken) {
                uint64_t value;
                [[maybe_unused]] auto r = ::read(m_wake.get(), &value, sizeof value);
                std::vector<std::unique_ptr<Connection>> incoming;
                {
                    std::lock_guard lock(m_mutex);
                    incoming.swap(m_incoming);
                }
                for (auto& c : incoming) {
                    c->token = m_nextToken++;
                    epoll_event ev {};
                    ev.data.u64 = c->token << 2 | TlsSocket;
                    ::epoll_ctl(m_epoll.get(), EPOLL_CTL_ADD, c->socket.fd, &ev);
                    ev.data.u64 = c->token << 2 | ToNc;
                    ::epoll_ctl(m_epoll.get(), EPOLL_CTL_ADD, c->local.get(), &ev);
                    ev.data.u64 = c->token << 2 | FromNc;
                    ::epoll_ctl(m_epoll.get(), EPOLL_CTL_ADD, c->fromLocal.get(), &ev);
                    auto token = c->token;
                    auto& ref = *c;
                    m_connections.emplace(token, std::move(c));
                    // Data may already sit in the SSL buffers (the peeked <hello>): serve it before waiting.
                    service(ref);
                    afterService(token);
                }
                continue;
            }
            auto token = events[i].data.u64 >> 2;
            auto it = m_connections.find(token);
            if (it == m_connections.end()) {
                continue;
            }
            service(*it->second);
            afterService(token);
        }
    }
}
} // namespace callhome::transport
