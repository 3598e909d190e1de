#pragma once
#include "common/SocketRef.h"
#include "common/UniqueFd.h"
#include "transport/SshHandshake.h"
#include <chrono>
#include <memory>
#include <string>
#include <vector>

struct ssl_st;
struct ssl_ctx_st;
struct x509_st;

namespace callhome::transport {
/** Our TLS client identity and settings, shared by all TLS handshakes (RFC 7589 mutual X.509, RFC 7525 suites). */
class TlsClientContext {
public:
    /** Station certificate (+ optional chain file) and key; the key file must be mode 0600. Throws Error. */
    TlsClientContext(const std::string& certPath, const std::string& keyPath, const std::string& chainPath);
    ~TlsClientContext();
    TlsClientContext(const TlsClientContext&) = delete;
    TlsClientContext& operator=(const TlsClientContext&) = delete;
    ssl_ctx_st* get() const noexcept { return m_ctx; }

private:
    ssl_ctx_st* m_ctx = nullptr;
};

/**
 * Our side of RFC 8071 over TLS: an OpenSSL *client* on a socket the device connected to us, non-blocking under one
 * deadline. The device's chain is returned for the identity step; nothing is verified here.
 */
class TlsHandshake {
public:
    using Deadline = std::chrono::steady_clock::time_point;
    TlsHandshake(const TlsClientContext& context, UniqueFd socket, Deadline deadline);
    ~TlsHandshake();
    TlsHandshake(const TlsHandshake&) = delete;
    TlsHandshake& operator=(const TlsHandshake&) = delete;

    /** TLS 1.2/1.3 handshake; throws HandshakeError with OpenSSL's reason (e.g. "unsupported protocol"). */
    void connect();
    /** The negotiated protocol, e.g. "TLSv1.3". */
    std::string protocol() const;
    /** The device's certificates as presented, leaf first; borrowed, valid until release() or destruction. */
    std::vector<x509_st*> peerChain() const;
    /**
     * Waits (without consuming) until the device's complete NETCONF <hello> has arrived and returns its text. With
     * TLS 1.3 a device that refuses our certificate says so only after the handshake: that alert, a close, garbage or a
     * deadline are HandshakeErrors here, before libnetconf2 ever sees the session.
     */
    std::string awaitHello(size_t maxBytes = 256 * 1024);
    /** Hands the SSL over (nc_connect_libssl takes it on success); the socket stays ours to close (SocketRef). */
    ssl_st* release();
    SocketRef socket() const noexcept { return m_socket; }

private:
    void waitIo(int sslError, const char* step);
    ssl_st* m_ssl = nullptr;
    SocketRef m_socket;
    bool m_released = false;
    Deadline m_deadline;
};
} // namespace callhome::transport
