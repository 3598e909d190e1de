#include "transport/TlsHandshake.h"
#include "common/Error.h"
#include "transport/OpenSsl.h"
#include "transport/StationKey.h"
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <openssl/err.h>

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
    // Level 2 whatever the system openssl.cnf says: no SHA-1 signatures, RSA/DH >= 2048 and EC >= 224 bits for the
    // key exchange and our own certificate. The device's chain is judged at the same level by the identity step.
    SSL_CTX_set_security_level(ctx.get(), 2);
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

namespace {
std::string sslFailure(SSL* ssl, int rc, const char* what)
{
    int err = SSL_get_error(ssl, rc);
    if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
        ERR_clear_error();
        return std::string(what) + ": connection closed by the device";
    }
    return std::string(what) + ": " + opensslError("protocol error");
}

// At most this much plaintext per read or write call: one TLS record.
constexpr size_t kRecord = 16384;

/** A TLS session with a device as its NETCONF stream; non-blocking, no renegotiation. */
class TlsStream : public DeviceStream {
public:
    TlsStream(SslPtr ssl, SocketRef socket)
        : m_ssl(std::move(ssl))
        , m_socket(socket)
    { }
    ~TlsStream() override { shutdown(); }

    int fd() const noexcept override { return m_socket.fd; }

    IoResult read(char* buf, size_t n) override
    {
        if (!m_ssl) {
            return { 0, true, "closed" };
        }
        ERR_clear_error();
        m_readWantsWrite = false;
        int r = SSL_read(m_ssl.get(), buf, static_cast<int>(std::min(n, kRecord)));
        if (r > 0) {
            return { static_cast<size_t>(r), false, {} };
        }
        int err = SSL_get_error(m_ssl.get(), r);
        if (err == SSL_ERROR_WANT_READ) {
            return {};
        }
        if (err == SSL_ERROR_WANT_WRITE) {
            m_readWantsWrite = true;
            return {};
        }
        if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
            ERR_clear_error();
            return { 0, true, "device closed the connection" };
        }
        // e.g. TLS 1.3 "tlsv13 alert certificate required" / "sslv3 alert bad certificate": our certificate refused
        return { 0, true, "the device ended the TLS session: " + opensslError("protocol error") };
    }

    IoResult write(const char* buf, size_t n) override
    {
        if (!m_ssl) {
            return { 0, true, "closed" };
        }
        ERR_clear_error();
        m_writeWantsWrite = false;
        int w = SSL_write(m_ssl.get(), buf, static_cast<int>(std::min(n, kRecord)));
        if (w > 0) {
            return { static_cast<size_t>(w), false, {} };
        }
        int err = SSL_get_error(m_ssl.get(), w);
        if (err == SSL_ERROR_WANT_WRITE) {
            m_writeWantsWrite = true;
            return {};
        }
        if (err == SSL_ERROR_WANT_READ) {
            return {};
        }
        return { 0, true, sslFailure(m_ssl.get(), w, "TLS write") };
    }

    bool wantsWritable() const override { return m_readWantsWrite || m_writeWantsWrite; }
    void flush() override { }
    bool hasProbe() const noexcept override { return false; }
    bool sendProbe() override { return false; }
    bool probeAnswered() override { return true; }

    void shutdown() noexcept override
    {
        if (m_ssl) {
            SSL_shutdown(m_ssl.get()); // best effort close_notify; non-blocking
            m_ssl.reset();
            ERR_clear_error();
        }
        m_socket.closeIfStillOurs();
        m_socket = {};
    }

    std::string protocol() const override { return m_ssl ? SSL_get_version(m_ssl.get()) : "TLS"; }

private:
    SslPtr m_ssl;
    SocketRef m_socket;
    bool m_readWantsWrite = false;
    bool m_writeWantsWrite = false;
};
} // namespace

TlsHandshake::TlsHandshake(const TlsClientContext& context, UniqueFd socket)
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
    if (m_ssl) {
        SSL_free(m_ssl);
    }
    m_socket.closeIfStillOurs();
}

bool TlsHandshake::step()
{
    ERR_clear_error();
    m_wantsWrite = false;
    int rc = SSL_connect(m_ssl);
    if (rc == 1) {
        return true;
    }
    int err = SSL_get_error(m_ssl, rc);
    if (err == SSL_ERROR_WANT_READ) {
        return false;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
        m_wantsWrite = true;
        return false;
    }
    if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        throw HandshakeError("TLS handshake failed: connection closed by the device");
    }
    throw HandshakeError("TLS handshake failed: " + opensslError("protocol error"));
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

std::unique_ptr<DeviceStream> TlsHandshake::stream()
{
    SslPtr ssl(m_ssl);
    m_ssl = nullptr;
    auto socket = m_socket;
    m_socket = {};
    return std::make_unique<TlsStream>(std::move(ssl), socket);
}
} // namespace callhome::transport
