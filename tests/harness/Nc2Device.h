#pragma once
#include "harness/HostKey.h"
#include "harness/Process.h"
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace callhome::test {
class TempDir;

/**
 * How a libnetconf2 device calls home and authenticates the listener. SSH (default): empty password / key means
 * that method is refused. TLS (`tls = true`): the device is the TLS server with certPath/keyPath (+ chainPath) and
 * demands a client certificate signed by trustedCaPath.
 */
struct Nc2DeviceOptions {
    KeyType hostKeyType = KeyType::Ecdsa;
    std::string user = {}; ///< empty: the current user
    std::string password = {}; ///< accept password authentication with this password
    std::string authorizedKeyLine = {}; ///< accept this public key (authorized_keys line) for `user`
    unsigned retryMs = 0; ///< pause before calling home again after a session ended
    std::string schemasDir = {}; ///< extra YANG modules to serve
    bool tls = false; ///< call home over TLS instead of SSH (no SSH host key is generated then)
    std::string certPath = {}; ///< TLS: the device certificate (leaf, PEM)
    std::string keyPath = {}; ///< TLS: its private key
    std::string chainPath = {}; ///< TLS: leaf + CA(s) to present; empty: the leaf alone
    /**
     * TLS: CA certificate(s) that must have signed the station's client certificate; a verified station logs in
     * as `user`. Required: libnetconf2 2.0.24's TLS server always demands a client certificate
     * (SSL_VERIFY_FAIL_IF_NO_PEER_CERT), so "no client certificate wanted" cannot be modelled with it.
     */
    std::string trustedCaPath = {};
};

/**
 * A running `callhome-test-nc2-device` that calls home to host:port over SSH (or TLS) until stopped (libnetconf2
 * server call-home; a failed attempt is retried after 1 s). Files live in a fresh subdirectory of the TempDir.
 */
class Nc2Device {
public:
    Nc2Device(const TempDir& dir, const std::string& host, uint16_t port, Nc2DeviceOptions options = {});
    Nc2Device(const Nc2Device&) = delete;
    Nc2Device& operator=(const Nc2Device&) = delete;
    ~Nc2Device();

    /** SSH only; empty in TLS mode. */
    const KeyPair& hostKey() const noexcept { return m_hostKey; }
    const std::string& hostKeyFingerprint() const noexcept { return m_hostKey.fingerprint; }
    const std::string& user() const noexcept { return m_user; }
    Process& process() noexcept { return *m_process; }
    /** Stops the device (SIGTERM, then SIGKILL); returns its exit status. */
    int stop(std::chrono::milliseconds deadline = std::chrono::seconds(5));

    /** One line per SSH auth request: "<method> <user> accepted|rejected" (method: none, publickey, password, ...). */
    const std::string& authLogPath() const noexcept { return m_authLog; }
    /** "established <id> <user>" / "ended <id> <user> reason <n>" lines; TLS also "tls-failed <libnetconf2 error>". */
    const std::string& sessionsLogPath() const noexcept { return m_sessionsLog; }
    /** The device's own diagnostics (libnetconf2 verbose log). */
    const std::string& stderrPath() const noexcept { return m_process->spec().stderrPath; }

    int authAttempts() const;
    int acceptedAuths() const;
    int sessionsEstablished() const;
    int sessionsEnded() const;
    /** TLS handshakes the device saw fail (no, or an untrusted, client certificate; a dropped connection). */
    int tlsHandshakeFailures() const;

private:
    std::string m_dir;
    std::string m_user;
    KeyPair m_hostKey;
    std::string m_authLog;
    std::string m_sessionsLog;
    std::unique_ptr<Process> m_process;
};
} // namespace callhome::test
