#include "transport/TlsHandshake.h"
#include "common/Error.h"
#include "transport/OpenSsl.h"
#include "transport/StationKey.h"
#include <cerrno>
#include <cstring>
#include <openssl/err.h>
#include <poll.h>

namespace callhome::transport {
namespace {
// RFC 7525 recommended TLS 1.2 suites (AEAD with forward secrecy); TLS 1.3 keeps OpenSSL's default (all AEAD).
constexpr const char* kTls12Ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                      "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                                      "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384";

// The chain is judged by the identity step after the handshake, against the manufacturer trust anchors; the
// handshake itself must not fail on an unknown issuer, or a pending device could never be recorded.
int acceptAnyChain(int, X509_STORE_CTX*)
{
    return 1;
}
} // namespace

TlsClientContext::TlsClientContext(
    const std::string& certPath, const std::string& keyPath, const std::string& chainPath)
{
    SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
    if (!ctx) {
        throw LibraryError("SSL_CTX_new", opensslError());
    }
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION);
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
    if (SSL_CTX_set_cipher_list(ctx.get(), kTls12Ciphers) != 1) {
        throw LibraryError("SSL_CTX_set_cipher_list", opensslError());
    }
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, acceptAnyChain);
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);

    checkPrivateFilePermissions(keyPath);
    if (SSL_CTX_use_certificate_file(ctx.get(), certPath.c_str(), SSL_FILETYPE_PEM) != 1) {
        throw Error(certPath + ": cannot use as the station certificate: " + opensslError());
    }
    if (!chainPath.empty()) {
        for (auto& cert : loadCertificates(chainPath)) {
            // The chain file may start with the leaf; sending it twice is harmless but untidy.
            if (X509_cmp(cert.get(), SSL_CTX_get0_certificate(ctx.get())) == 0) {
                continue;
            }
            if (SSL_CTX_add1_chain_cert(ctx.get(), cert.get()) != 1) {
                throw Error(chainPath + ": " + opensslError());
            }
        }
    }
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), keyPath.c_str(), SSL_FILETYPE_PEM) != 1) {
        throw Error(keyPath + ": cannot use as the station key: " + opensslError());
    }
    if (SSL_CTX_check_private_key(ctx.get()) != 1) {
        throw Error(keyPath + ": does not match " + certPath);
    }
    m_ctx = ctx.release();
}

TlsClientContext::~TlsClientContext()
{
    SSL_CTX_free(m_ctx);
}

TlsHandshake::TlsHandshake(const TlsClientContext& context, UniqueFd socket, Deadline deadline)
    : m_deadline(deadline)
{
    SslPtr ssl(SSL_new(context.get()));
    if (!ssl) {
        throw HandshakeError("SSL_new: " + opensslError());
    }
    // SSL_set_fd leaves the descriptor open on SSL_free (BIO_NOCLOSE); SocketRef closes it.
    if (SSL_set_fd(ssl.get(), socket.get()) != 1) {
        throw HandshakeError("SSL_set_fd: " + opensslError());
    }
    SSL_set_connect_state(ssl.get());
    m_socket = SocketRef::of(socket.release());
    m_ssl = ssl.release();
}

TlsHandshake::~TlsHandshake()
{
    if (!m_released) {
        SSL_free(m_ssl);
        m_socket.closeIfStillOurs();
    }
}

void TlsHandshake::waitIo(int sslError, const char* step)
{
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(m_deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
        throw HandshakeError(std::string("timed out during ") + step);
    }
    pollfd p { m_socket.fd, static_cast<short>(sslError == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN), 0 };
    if (::poll(&p, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) {
        throw HandshakeError(std::string("poll: ") + std::strerror(errno));
    }
}

void TlsHandshake::connect()
{
    ERR_clear_error();
    while (true) {
        int rc = SSL_connect(m_ssl);
        if (rc == 1) {
            return;
        }
        int err = SSL_get_error(m_ssl, rc);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            waitIo(err, "TLS handshake");
            continue;
        }
        if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
            throw HandshakeError("TLS handshake failed: connection closed by the device");
        }
        throw HandshakeError("TLS handshake failed: " + opensslError("protocol error"));
    }
}

std::string TlsHandshake::protocol() const
{
    return SSL_get_version(m_ssl);
}

std::vector<x509_st*> TlsHandshake::peerChain() const
{
    std::vector<x509_st*> out;
    // For a client, SSL_get_peer_cert_chain includes the leaf first.
    if (STACK_OF(X509)* chain = SSL_get_peer_cert_chain(m_ssl)) {
        for (int i = 0; i < sk_X509_num(chain); ++i) {
            out.push_back(sk_X509_value(chain, i));
        }
    }
    return out;
}

std::string TlsHandshake::awaitHello(size_t maxBytes)
{
    // SSL_peek shows the first application-data record without consuming it, so libnetconf2 still reads the whole
    // <hello> itself. Records after the first cannot be peeked, so only the start is checked here.
    std::string buf(maxBytes, '\0');
    ERR_clear_error();
    while (true) {
        int n = SSL_peek(m_ssl, buf.data(), static_cast<int>(buf.size()));
        if (n > 0) {
            buf.resize(static_cast<size_t>(n));
            auto start = buf.find_first_not_of(" \t\r\n");
            if (start == std::string::npos || buf[start] != '<') {
                throw HandshakeError("the device sent something other than a NETCONF <hello> after the TLS handshake");
            }
            return buf;
        }
        int err = SSL_get_error(m_ssl, n);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            waitIo(err, "waiting for the device's <hello>");
            continue;
        }
        if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
            throw HandshakeError("the device closed the TLS session before its <hello>");
        }
        // e.g. TLS 1.3 "tlsv13 alert certificate required" / "sslv3 alert bad certificate": our certificate refused
        throw HandshakeError("the device ended the TLS session after the handshake: " + opensslError("protocol error"));
    }
}

ssl_st* TlsHandshake::release()
{
    m_released = true;
    return m_ssl;
}
} // namespace callhome::transport
