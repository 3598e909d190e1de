#include "harness/Loopback.h"
#include "harness/Util.h"
#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <libssh/libssh.h>
#include <memory>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace callhome::test {
namespace {
struct SshSessionFree {
    void operator()(ssh_session s) const noexcept
    {
        ssh_disconnect(s);
        ssh_free(s);
    }
};
using SshSessionPtr = std::unique_ptr<std::remove_pointer_t<ssh_session>, SshSessionFree>;

struct SshKeyFree {
    void operator()(ssh_key k) const noexcept { ssh_key_free(k); }
};
using SshKeyPtr = std::unique_ptr<std::remove_pointer_t<ssh_key>, SshKeyFree>;

std::string errnoText(const std::string& what)
{
    return what + ": " + std::strerror(errno);
}
} // namespace

TcpListener::TcpListener(const std::string& address)
    : m_address(address)
{
    sockaddr_storage ss {};
    socklen_t len = 0;
    const bool v6 = address.find(':') != std::string::npos;
    if (v6) {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
        sin6->sin6_family = AF_INET6;
        if (::inet_pton(AF_INET6, address.c_str(), &sin6->sin6_addr) != 1) {
            throw HarnessError("not an IPv6 address: " + address);
        }
        len = sizeof(sockaddr_in6);
    } else {
        auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
        sin->sin_family = AF_INET;
        if (::inet_pton(AF_INET, address.c_str(), &sin->sin_addr) != 1) {
            throw HarnessError("not an IPv4 address: " + address);
        }
        len = sizeof(sockaddr_in);
    }
    m_fd.reset(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!m_fd) {
        throw HarnessError(errnoText("socket"));
    }
    if (::bind(m_fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        throw HarnessError(errnoText("bind " + address));
    }
    if (::listen(m_fd.get(), 64) != 0) {
        throw HarnessError(errnoText("listen"));
    }
    len = sizeof(ss);
    if (::getsockname(m_fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
        throw HarnessError(errnoText("getsockname"));
    }
    m_port
        = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

UniqueFd TcpListener::accept(std::chrono::milliseconds deadline)
{
    pollfd p { m_fd.get(), POLLIN, 0 };
    int r;
    do {
        r = ::poll(&p, 1, static_cast<int>(deadline.count()));
    } while (r < 0 && errno == EINTR);
    if (r == 0) {
        throw HarnessError("no connection to " + m_address + " port " + std::to_string(m_port) + " within "
            + std::to_string(deadline.count()) + " ms");
    }
    if (r < 0) {
        throw HarnessError(errnoText("poll"));
    }
    UniqueFd fd(::accept4(m_fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd) {
        throw HarnessError(errnoText("accept"));
    }
    return fd;
}

std::string sshFingerprint(void* sshKey)
{
    unsigned char* hash = nullptr;
    size_t len = 0;
    if (ssh_get_publickey_hash(static_cast<ssh_key>(sshKey), SSH_PUBLICKEY_HASH_SHA256, &hash, &len) != SSH_OK) {
        throw HarnessError("ssh_get_publickey_hash failed");
    }
    char* fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, len);
    ssh_clean_pubkey_hash(&hash);
    if (!fp) {
        throw HarnessError("ssh_get_fingerprint_hash failed");
    }
    std::string out(fp);
    ssh_string_free_char(fp);
    return out;
}

std::string sshKeyExchangeOnly(UniqueFd socket, std::chrono::milliseconds deadline)
{
    // libssh 0.10.6 neither sends SSH_MSG_DISCONNECT on nor closes a socket given with SSH_OPTIONS_FD (measured):
    // `socket` stays ours and is closed after the session is freed, which is what ends the device's sshd.
    SshSessionPtr session(ssh_new());
    if (!session) {
        throw HarnessError("ssh_new failed");
    }
    ssh_session s = session.get();
    int noConfig = 0;
    long timeoutSeconds = std::max<long>(1, static_cast<long>((deadline.count() + 999) / 1000));
    int fd = socket.get();
    // Do not read ~/.ssh/config: the probe must behave the same on every machine.
    if (ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &noConfig) != SSH_OK
        || ssh_options_set(s, SSH_OPTIONS_HOST, "127.0.0.1") != SSH_OK
        || ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &timeoutSeconds) != SSH_OK
        || ssh_options_set(s, SSH_OPTIONS_FD, &fd) != SSH_OK) {
        throw HarnessError(std::string("ssh_options_set: ") + ssh_get_error(s));
    }
    if (ssh_connect(s) != SSH_OK) {
        throw HarnessError(std::string("SSH key exchange failed: ") + ssh_get_error(s));
    }
    ssh_key raw = nullptr;
    if (ssh_get_server_publickey(s, &raw) != SSH_OK || !raw) {
        throw HarnessError(std::string("no server host key: ") + ssh_get_error(s));
    }
    SshKeyPtr key(raw);
    auto fingerprint = sshFingerprint(key.get());
    session.reset();
    socket.reset();
    return fingerprint;
}
} // namespace callhome::test
