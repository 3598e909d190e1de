#pragma once
#include "harness/HostKey.h"
#include "harness/Process.h"
#include "harness/YumaNetconfd.h"
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace callhome::test {
class TempDir;

/**
 * A device made of OpenSSH's sshd (inetd mode) in front of its own yuma123 netconfd. Each callHome() dials the
 * listener with socat and runs `sshd -i` on that connection; the `netconf` subsystem reaches this device's
 * netconfd through a private UNIX socket. One netconfd per device: netconfd 2.13 crashes on the second
 * <get-schema> of ietf-netconf in its lifetime, so keep one device per test that fetches schemas.
 */
class SshdDevice {
public:
    /**
     * Creates the device's files in a fresh subdirectory of `dir`, generates its host key and starts netconfd
     * (waiting up to `startDeadline` for its socket). `authorizedKeys` is the authorized_keys content (may be empty).
     */
    SshdDevice(const TempDir& dir, KeyType hostKeyType, const std::string& authorizedKeys,
        std::chrono::milliseconds startDeadline = std::chrono::seconds(10));
    SshdDevice(const SshdDevice&) = delete;
    SshdDevice& operator=(const SshdDevice&) = delete;
    ~SshdDevice();

    /** One call-home attempt: `socat TCP:host:port EXEC:"sshd -i ..."`; the process is owned by the device. */
    Process& callHome(const std::string& host, uint16_t port);
    /** The same from the local address `source` (e.g. "127.1.0.2": all of 127.0.0.0/8 is loopback on Linux). */
    Process& callHome(const std::string& host, uint16_t port, const std::string& source);
    /** Gives this device `other`'s host key (copied): a cloned device, or one with a vendor-default key. */
    void copyHostKeyFrom(const SshdDevice& other);
    /** Stops every call-home process started so far (the netconfd keeps running). */
    void stopCallHomes();
    /** Replaces the authorized_keys content; sshd reads it on every authentication. */
    void setAuthorizedKeys(const std::string& authorizedKeys);

    const KeyPair& hostKey() const noexcept { return m_hostKey; }
    const std::string& hostKeyFingerprint() const noexcept { return m_hostKey.fingerprint; }
    /** The host's public key, "TYPE BASE64 [COMMENT]" (what a known_hosts line holds after the host name). */
    const std::string& hostPublicKeyLine() const noexcept { return m_hostKey.publicKeyLine; }
    /** The SSH user that may log in: the current user (getpwuid(getuid())). */
    const std::string& user() const noexcept { return m_user; }
    /** sshd's log (LogLevel DEBUG1), shared by all call-home attempts of this device. */
    const std::string& logPath() const noexcept { return m_sshdLog; }
    const std::string& netconfdLogPath() const noexcept { return m_netconfd->logPath(); }
    const std::string& directory() const noexcept { return m_dir; }

    /** SSH user-authentication requests sshd received, of any method incl. "none" ("userauth-request for user"). */
    int authAttempts() const;
    /** Successful logins ("Accepted publickey for ..."). */
    int acceptedLogins() const;
    /** NETCONF subsystem sessions sshd started ("Starting session: subsystem 'netconf'"). */
    int netconfSessions() const;
    /** Completed key exchanges ("SSH2_MSG_NEWKEYS received"), one per connection that got that far. */
    int keyExchanges() const;

private:
    std::string m_dir;
    std::string m_user;
    KeyPair m_hostKey;
    std::string m_sshdConfig;
    std::string m_authorizedKeys;
    std::string m_sshdLog;
    std::unique_ptr<YumaNetconfd> m_netconfd;
    std::vector<std::unique_ptr<Process>> m_callHomes;
};
} // namespace callhome::test
