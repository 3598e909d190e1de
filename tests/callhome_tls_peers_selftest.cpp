// Proves the TLS test peers are real RFC 8071 call-home devices (the device dials, then is the TLS server with its
// IDevID and demands the station's client certificate). The reference station is libnetconf2's own client-side
// call-home accept, not our listener; raw OpenSSL clients check what libnetconf2's client cannot do or show
// (present no certificate, read the peer chain, speak TLS 1.0).
#include "ReferenceClient.h"
#include "harness/DevPki.h"
#include "harness/Loopback.h"
#include "harness/Nc2Device.h"
#include "harness/StunnelDevice.h"
#include "harness/TempDir.h"
#include "harness/Util.h"
#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <libyang/libyang.h>
#include <memory>
#include <nc_client.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <optional>
#include <sys/socket.h>
#include <sys/time.h>

using namespace callhome::test;
using namespace std::chrono_literals;
using namespace callhome::test::reference;

namespace {
constexpr const char* kIetfModules = "/usr/share/yuma/modules/ietf";

struct SslCtxFree {
    void operator()(SSL_CTX* c) const noexcept { SSL_CTX_free(c); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

struct SslFree {
    void operator()(SSL* s) const noexcept { SSL_free(s); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;

struct X509Free {
    void operator()(X509* x) const noexcept { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

/**
 * The reference station: libnetconf2's TLS call-home listener on 127.0.0.1 (port picked at run time), presenting
 * the station's client certificate and trusting only `deviceCa` for the device's certificate.
 */
class ReferenceTlsClient {
public:
    ReferenceTlsClient(const TlsCredentials& station, const std::string& deviceCa)
    {
        static NcClientLibrary library;
        nc_client_set_schema_searchpath(kIetfModules);
        REQUIRE(nc_client_tls_ch_set_cert_key_paths(station.cert.c_str(), station.key.c_str()) == 0);
        REQUIRE(nc_client_tls_ch_set_trusted_ca_paths(deviceCa.c_str(), nullptr) == 0);
        // libnetconf2 cannot listen on port 0 and report it: take a port the kernel just handed out.
        for (int attempt = 0; attempt < 5 && !m_port; ++attempt) {
            uint16_t candidate = TcpListener("127.0.0.1").port();
            if (nc_client_tls_ch_add_bind_listen("127.0.0.1", candidate) == 0) {
                m_port = candidate;
            }
        }
        REQUIRE(m_port != 0);
    }
    ReferenceTlsClient(const ReferenceTlsClient&) = delete;
    ReferenceTlsClient& operator=(const ReferenceTlsClient&) = delete;
    ~ReferenceTlsClient() { nc_client_tls_ch_del_bind("127.0.0.1", m_port); }

    uint16_t port() const { return m_port; }

    NcSessionPtr accept(std::chrono::milliseconds deadline)
    {
        nc_session* raw = nullptr;
        int rc = nc_accept_callhome(static_cast<int>(deadline.count()), nullptr, &raw);
        INFO("nc_accept_callhome returned " << rc);
        REQUIRE(rc == 1);
        return NcSessionPtr(raw);
    }

private:
    uint16_t m_port = 0;
};

void checkTlsSession(nc_session* session)
{
    REQUIRE(nc_session_get_ti(session) == NC_TI_OPENSSL);
    checkSession(session);
}

X509Ptr loadCert(const std::string& path)
{
    FILE* f = std::fopen(path.c_str(), "r");
    REQUIRE(f);
    X509Ptr cert(PEM_read_X509(f, nullptr, nullptr, nullptr));
    std::fclose(f);
    REQUIRE(cert);
    return cert;
}

std::string opensslErrors()
{
    std::string out;
    while (unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof(buf));
        out += std::string(out.empty() ? "" : "; ") + buf;
    }
    return out;
}

/** A raw OpenSSL TLS client context (what the listener will be): verifies the device against `deviceCa`. */
struct RawClientOptions {
    std::string deviceCa;
    std::optional<TlsCredentials> clientCert = {}; ///< none: present no certificate
    bool allowTls10 = false; ///< TLS 1.0 at security level 0; otherwise OpenSSL's defaults
};

SslCtxPtr rawClientContext(const RawClientOptions& options)
{
    SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
    REQUIRE(ctx);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    REQUIRE(SSL_CTX_load_verify_locations(ctx.get(), options.deviceCa.c_str(), nullptr) == 1);
    if (options.clientCert) {
        REQUIRE(SSL_CTX_use_certificate_file(ctx.get(), options.clientCert->cert.c_str(), SSL_FILETYPE_PEM) == 1);
        REQUIRE(SSL_CTX_use_PrivateKey_file(ctx.get(), options.clientCert->key.c_str(), SSL_FILETYPE_PEM) == 1);
    }
    if (options.allowTls10) {
        REQUIRE(SSL_CTX_set_min_proto_version(ctx.get(), TLS1_VERSION) == 1);
        REQUIRE(SSL_CTX_set_cipher_list(ctx.get(), "DEFAULT:@SECLEVEL=0") == 1);
    }
    return ctx;
}

/** Outcome of a raw client handshake plus one read: what a station sees of the device. */
struct RawHandshake {
    SslPtr ssl; ///< kept for inspecting the peer chain
    bool connected = false; ///< SSL_connect succeeded
    bool readOk = false; ///< the device then sent application data (its NETCONF <hello>)
    std::string error; ///< OpenSSL's errors when either failed
};

/**
 * SSL_connect on an accepted call-home socket, then one SSL_read. In TLS 1.3 the server checks the client
 * certificate after the client's SSL_connect has returned, so a refusal shows up as an alert on that read.
 */
RawHandshake rawHandshake(SSL_CTX* ctx, int fd, std::chrono::milliseconds deadline)
{
    timeval tv { static_cast<time_t>(deadline.count() / 1000),
        static_cast<suseconds_t>(deadline.count() % 1000) * 1000 };
    REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0);
    REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0);
    RawHandshake out;
    ERR_clear_error();
    out.ssl.reset(SSL_new(ctx));
    REQUIRE(out.ssl);
    REQUIRE(SSL_set_fd(out.ssl.get(), fd) == 1); // a BIO_NOCLOSE socket BIO: the caller's UniqueFd closes it
    out.connected = SSL_connect(out.ssl.get()) == 1;
    if (out.connected) {
        char buf[256];
        out.readOk = SSL_read(out.ssl.get(), buf, sizeof(buf)) > 0;
    }
    out.error = opensslErrors();
    return out;
}

enum class DeviceKind { Stunnel, Nc2 };

/** Either kind of TLS device, calling home to `port` with `identity` and demanding a station CA client cert. */
struct AnyTlsDevice {
    std::unique_ptr<StunnelDevice> stunnel;
    std::unique_ptr<Nc2Device> nc2;
    Process* callHome = nullptr; ///< stunnel: the single attempt

    AnyTlsDevice(DeviceKind kind, const TempDir& dir, const DevPki& pki, const std::string& name, uint16_t port)
    {
        const auto identity = pki.device(name);
        if (kind == DeviceKind::Stunnel) {
            stunnel = std::make_unique<StunnelDevice>(dir, identity, StunnelDeviceOptions { pki.stationCa() });
            callHome = &stunnel->callHome("127.0.0.1", port);
        } else {
            nc2 = std::make_unique<Nc2Device>(dir, "127.0.0.1", port,
                Nc2DeviceOptions { .tls = true,
                    .certPath = identity.cert,
                    .keyPath = identity.key,
                    .chainPath = identity.chain,
                    .trustedCaPath = pki.stationCa() });
        }
    }
};
} // namespace

TEST_CASE("stunnel + netconfd device (sn-0001) calls home over TLS and serves NETCONF")
{
    TempDir dir("callhome-tls-peers");
    DevPki pki(dir);
    StunnelDevice device(dir, pki.device("sn-0001"), { .trustedCaPath = pki.stationCa() });
    ReferenceTlsClient client(pki.station(), pki.manufacturerCa());

    auto& attempt = device.callHome("127.0.0.1", client.port());
    auto session = client.accept(30s);
    checkTlsSession(session.get());
    REQUIRE(device.tlsHandshakes() == 1);
    REQUIRE(device.netconfSessions() == 1);
    REQUIRE(device.peerVerificationFailures() == 0);
    // The device verified our client certificate (debug 7 logs each accepted depth).
    REQUIRE(countLinesContaining(device.logPath(), "Certificate accepted at depth=0") == 1);

    session.reset(); // <close-session>, then the TLS close ends stunnel and socat
    REQUIRE(attempt.waitExit(10s).has_value());
    REQUIRE(device.handshakeFailures() == 0);
}

TEST_CASE("libnetconf2 device (hwmn-0002) calls home over TLS and serves NETCONF")
{
    TempDir dir("callhome-tls-peers");
    DevPki pki(dir);
    ReferenceTlsClient client(pki.station(), pki.manufacturerCa());
    const auto identity = pki.device("hwmn-0002");
    Nc2Device device(dir, "127.0.0.1", client.port(),
        { .tls = true,
            .certPath = identity.cert,
            .keyPath = identity.key,
            .chainPath = identity.chain,
            .trustedCaPath = pki.stationCa() });
    REQUIRE(device.hostKeyFingerprint().empty());

    auto session = client.accept(30s);
    checkTlsSession(session.get());

    NcRpcPtr getSchema(nc_rpc_getschema("ietf-netconf-monitoring", nullptr, "yang", NC_PARAMTYPE_CONST));
    REQUIRE(call(session.get(), getSchema.get()).find("module ietf-netconf-monitoring") != std::string::npos);

    // The station certificate mapped (cert-to-name, station CA fingerprint) to the device's user.
    waitFor([&] { return device.sessionsEstablished() == 1; }, 5s, "the device to log its session");
    REQUIRE(countLinesContaining(device.sessionsLogPath(), " " + device.user()) == 1);
    REQUIRE(device.tlsHandshakeFailures() == 0);

    session.reset();
    waitFor([&] { return device.sessionsEnded() == 1; }, 10s, "the device to log the session end");
    REQUIRE(device.stop() == 0);
}

TEST_CASE("a TLS device refuses a station without a client certificate, or with one from another CA")
{
    const auto kind = GENERATE(DeviceKind::Stunnel, DeviceKind::Nc2);
    const bool withForeignCert = GENERATE(false, true);
    CAPTURE(kind == DeviceKind::Stunnel ? "stunnel" : "libnetconf2", withForeignCert);
    TempDir dir("callhome-tls-peers");
    DevPki pki(dir);
    TcpListener listener("127.0.0.1");
    AnyTlsDevice device(kind, dir, pki, "sn-0001", listener.port());

    RawClientOptions options { .deviceCa = pki.manufacturerCa() };
    if (withForeignCert) {
        // A valid certificate, but not signed by the station CA the device trusts.
        options.clientCert = pki.device("other-ca-0007");
    }
    auto ctx = rawClientContext(options);
    auto socket = listener.accept(10s);
    auto result = rawHandshake(ctx.get(), socket.get(), 10s);
    INFO("client side: " << result.error);
    REQUIRE_FALSE(result.readOk);
    // TLS 1.3: the device's refusal arrives as an alert right after our SSL_connect.
    REQUIRE(result.error.find(withForeignCert ? "unknown ca" : "certificate required") != std::string::npos);

    if (device.stunnel) {
        REQUIRE(device.callHome->waitExit(10s).has_value()); // stunnel has finished writing its log
        REQUIRE(device.stunnel->tlsHandshakes() == 0);
        REQUIRE(device.stunnel->handshakeFailures() == 1);
        REQUIRE(device.stunnel->missingPeerCertificates() == (withForeignCert ? 0 : 1));
        REQUIRE(device.stunnel->rejectedPeerCertificates() == (withForeignCert ? 1 : 0));
        REQUIRE(device.stunnel->netconfSessions() == 0);
    } else {
        waitFor([&] { return device.nc2->tlsHandshakeFailures() >= 1; }, 10s, "the device to log the failure");
        REQUIRE(countLinesContaining(device.nc2->sessionsLogPath(),
                    withForeignCert ? "certificate verify failed" : "peer did not return a certificate")
            >= 1);
        REQUIRE(device.nc2->sessionsEstablished() == 0);
        REQUIRE(device.nc2->stop() == 0);
    }
}

TEST_CASE("a TLS device presents its chain: IDevID leaf + manufacturer CA")
{
    const auto kind = GENERATE(DeviceKind::Stunnel, DeviceKind::Nc2);
    CAPTURE(kind == DeviceKind::Stunnel ? "stunnel" : "libnetconf2");
    TempDir dir("callhome-tls-peers");
    DevPki pki(dir);
    TcpListener listener("127.0.0.1");
    AnyTlsDevice device(kind, dir, pki, "sn-0001", listener.port());

    auto ctx = rawClientContext({ .deviceCa = pki.manufacturerCa(), .clientCert = pki.station() });
    auto socket = listener.accept(10s);
    auto result = rawHandshake(ctx.get(), socket.get(), 10s);
    INFO("client side: " << result.error);
    REQUIRE(result.connected);
    REQUIRE(result.readOk); // the device accepted our certificate and started NETCONF
    REQUIRE(SSL_get_verify_result(result.ssl.get()) == X509_V_OK);

    STACK_OF(X509)* chain = SSL_get_peer_cert_chain(result.ssl.get()); // as sent, leaf first; owned by the SSL
    REQUIRE(chain);
    REQUIRE(sk_X509_num(chain) == 2);
    auto leaf = loadCert(pki.device("sn-0001").cert);
    auto ca = loadCert(pki.manufacturerCa());
    REQUIRE(X509_cmp(sk_X509_value(chain, 0), leaf.get()) == 0);
    REQUIRE(X509_cmp(sk_X509_value(chain, 1), ca.get()) == 0);
}

TEST_CASE("a TLS 1.0-only stunnel device needs a station that allows TLS 1.0")
{
    const bool stationAllowsTls10 = GENERATE(false, true);
    CAPTURE(stationAllowsTls10);
    TempDir dir("callhome-tls-peers");
    DevPki pki(dir);
    TcpListener listener("127.0.0.1");
    StunnelDevice device(dir, pki.device("sn-0001"), { .trustedCaPath = pki.stationCa(), .tls10Only = true });
    auto& attempt = device.callHome(listener.address(), listener.port());

    auto ctx = rawClientContext(
        { .deviceCa = pki.manufacturerCa(), .clientCert = pki.station(), .allowTls10 = stationAllowsTls10 });
    auto socket = listener.accept(10s);
    auto result = rawHandshake(ctx.get(), socket.get(), 10s);
    INFO("client side: " << result.error);
    REQUIRE(result.connected == stationAllowsTls10);
    if (stationAllowsTls10) {
        REQUIRE(SSL_version(result.ssl.get()) == TLS1_VERSION);
        REQUIRE(result.readOk);
    }
    result.ssl.reset();
    socket.reset();
    REQUIRE(attempt.waitExit(10s).has_value());
    REQUIRE(device.tlsHandshakes() == (stationAllowsTls10 ? 1 : 0));
    REQUIRE(device.handshakeFailures() == (stationAllowsTls10 ? 0 : 1));
}

TEST_CASE("a stunnel device without a trusted CA serves a station that presents no certificate")
{
    TempDir dir("callhome-tls-peers");
    DevPki pki(dir);
    TcpListener listener("::1");
    StunnelDevice device(dir, pki.device("selfsigned"));
    auto& attempt = device.callHome(listener.address(), listener.port());

    // A self-signed device certificate is its own trust anchor (what pinning it after approval amounts to).
    auto ctx = rawClientContext({ .deviceCa = pki.device("selfsigned").cert });
    auto socket = listener.accept(10s);
    auto result = rawHandshake(ctx.get(), socket.get(), 10s);
    INFO("client side: " << result.error);
    REQUIRE(result.connected);
    REQUIRE(result.readOk);
    STACK_OF(X509)* chain = SSL_get_peer_cert_chain(result.ssl.get());
    REQUIRE(chain);
    REQUIRE(sk_X509_num(chain) == 1);
    result.ssl.reset();
    socket.reset();
    REQUIRE(attempt.waitExit(10s).has_value());
    REQUIRE(device.tlsHandshakes() == 1);
    REQUIRE(device.peerVerificationFailures() == 0);
    REQUIRE(device.netconfSessions() == 1);
}
