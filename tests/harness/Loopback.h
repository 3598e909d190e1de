#pragma once
#include "common/UniqueFd.h"
#include <chrono>
#include <cstdint>
#include <string>

namespace callhome::test {
/** A listening TCP socket on a loopback address ("127.0.0.1" or "::1") with a port the kernel picked. */
class TcpListener {
public:
    explicit TcpListener(const std::string& address = "127.0.0.1");
    uint16_t port() const noexcept { return m_port; }
    const std::string& address() const noexcept { return m_address; }
    int fd() const noexcept { return m_fd.get(); }
    /** One accepted connection; throws HarnessError when none arrives within `deadline`. */
    UniqueFd accept(std::chrono::milliseconds deadline);

private:
    std::string m_address;
    UniqueFd m_fd;
    uint16_t m_port = 0;
};

/**
 * Acts as SSH client on an accepted socket (libssh, SSH_OPTIONS_FD), runs the key exchange only, then disconnects
 * without any user authentication. Returns the server host key fingerprint ("SHA256:..."). Throws HarnessError.
 * With SshdDevice::authAttempts() this checks the "close right after key exchange" rule from the device's side.
 */
std::string sshKeyExchangeOnly(UniqueFd socket, std::chrono::milliseconds deadline);

/** "SHA256:<base64>" of an SSH key, computed with libssh (as the listener should). `sshKey` is an ssh_key. */
std::string sshFingerprint(void* sshKey);
} // namespace callhome::test
