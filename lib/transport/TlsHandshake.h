#pragma once
#include "common/SocketRef.h"
#include "common/UniqueFd.h"
#include "transport/DeviceStream.h"
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
 * Our side of RFC 8071 over TLS: a non-blocking OpenSSL *client* on a socket the device connected to us, driven by an
 * event loop (step() never waits). The device's chain is returned for the identity step; nothing is verified here.
 */
class TlsHandshake {
public:
    TlsHandshake(const TlsClientContext& context, UniqueFd socket);
    ~TlsHandshake();
    TlsHandshake(const TlsHandshake&) = delete;
    TlsHandshake& operator=(const TlsHandshake&) = delete;

    int fd() const noexcept { return m_socket.fd; }
    bool wantsWritable() const noexcept { return m_wantsWrite; }
    /**
     * TLS 1.2/1.3 handshake: true when done, false while it waits for the socket; throws HandshakeError with OpenSSL's
     * reason (e.g. "unsupported protocol").
     */
    bool step();
    /** The negotiated protocol, e.g. "TLSv1.3". */
    std::string protocol() const;
    /** The device's certificates as presented, leaf first; borrowed, valid until stream() or destruction. */
    std::vector<x509_st*> peerChain() const;
    /**
     * The session as the device's NETCONF stream; this handshake is spent. With TLS 1.3 a device that refuses our
     * certificate says so only after the handshake: the stream's first read reports it.
     */
    std::unique_ptr<DeviceStream> stream();

private:
    ssl_st* m_ssl = nullptr;
    SocketRef m_socket;
    bool m_wantsWrite = false;
};
} // namespace callhome::transport
