#pragma once
#include "harness/DevPki.h"
#include "harness/Process.h"
#include "harness/YumaNetconfd.h"
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace callhome::test {
class TempDir;

/** How a StunnelDevice runs its TLS server side. */
struct StunnelDeviceOptions {
    /** CA file that must have signed the station's client certificate (`verifyChain`); empty: no client certificate
     * is requested at all. */
    std::string trustedCaPath = {};
    /**
     * Speak TLS 1.0 only (`sslVersion = TLSv1` plus `ciphers = DEFAULT:@SECLEVEL=0`): OpenSSL 3 refuses TLS 1.0 at
     * its default security level, so a station with default settings cannot connect to such a device.
     */
    bool tls10Only = false;
    std::chrono::milliseconds startDeadline = std::chrono::seconds(10);
};

/**
 * A device made of stunnel (inetd mode, TLS server) in front of its own yuma123 netconfd: RFC 8071 over TLS, where
 * the device dials and then acts as TLS server with its IDevID, and the station is the TLS client. Each callHome()
 * dials the listener with socat and runs stunnel on that connection; once the handshake is done stunnel execs
 * netconf-subsystem (one NETCONF session) against this device's netconfd.
 */
class StunnelDevice {
public:
    /** Files go to a fresh subdirectory of `dir`; `identity.chain` (leaf + CA) is what the device presents. */
    StunnelDevice(const TempDir& dir, const TlsCredentials& identity, StunnelDeviceOptions options = {});
    StunnelDevice(const StunnelDevice&) = delete;
    StunnelDevice& operator=(const StunnelDevice&) = delete;
    ~StunnelDevice();

    /** One call-home attempt: `socat TCP:host:port EXEC:"stunnel <config>"`; the process is owned by the device. */
    Process& callHome(const std::string& host, uint16_t port);
    /** Stops every call-home process started so far (the netconfd keeps running). */
    void stopCallHomes();

    const TlsCredentials& identity() const noexcept { return m_identity; }
    /** stunnel's log (debug = 7), shared by all call-home attempts of this device. */
    const std::string& logPath() const noexcept { return m_log; }
    const std::string& configPath() const noexcept { return m_config; }
    const std::string& netconfdLogPath() const noexcept { return m_netconfd->logPath(); }
    const std::string& directory() const noexcept { return m_dir; }

    /** Completed TLS handshakes ("TLS accepted:", new or resumed session). */
    int tlsHandshakes() const;
    /** Handshakes that failed on the device's side for any reason ("SSL_accept: "). */
    int handshakeFailures() const;
    /** Client certificates presented but rejected by chain verification ("Rejected by CERT at depth="). */
    int rejectedPeerCertificates() const;
    /** Handshakes failed because the station presented no certificate ("peer did not return a certificate"). */
    int missingPeerCertificates() const;
    /** rejectedPeerCertificates() + missingPeerCertificates(). */
    int peerVerificationFailures() const;
    /** NETCONF sessions handed to netconf-subsystem after a handshake ("Local mode child started"). */
    int netconfSessions() const;

private:
    std::string m_dir;
    TlsCredentials m_identity;
    std::string m_config;
    std::string m_log;
    std::string m_stunnel;
    std::unique_ptr<YumaNetconfd> m_netconfd;
    std::vector<std::unique_ptr<Process>> m_callHomes;
};
} // namespace callhome::test
