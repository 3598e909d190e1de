#include "transport/SshHandshake.h"
#include "common/Error.h"
#include "transport/SshPtr.h"
#include <cerrno>
#include <cstring>
#include <poll.h>

namespace callhome::transport {
namespace {
// Modern algorithms only: no SHA-1 signatures (ssh-rsa), no DSA, no SHA-1 key exchange, no CBC, no MD5/SHA-1 MACs.
constexpr const char* kKex = "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,"
                             "ecdh-sha2-nistp521,diffie-hellman-group18-sha512,diffie-hellman-group16-sha512,"
                             "diffie-hellman-group14-sha256";
constexpr const char* kHostKeys = "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,"
                                  "rsa-sha2-512,rsa-sha2-256";
constexpr const char* kCiphers = "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,"
                                 "aes256-ctr,aes192-ctr,aes128-ctr";
constexpr const char* kMacs = "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha2-256,hmac-sha2-512";

void setOption(ssh_session s, ssh_options_e option, const void* value, const char* what)
{
    if (ssh_options_set(s, option, value) != SSH_OK) {
        throw HandshakeError(std::string("cannot set SSH option ") + what + ": " + ssh_get_error(s));
    }
}
} // namespace

struct SshHandshake::Impl {
    SocketRef socket;
    bool released = false;
    SshSessionPtr session;
    Deadline deadline;
    bool connected = false;
};

const char* SshHandshake::kexAlgorithms()
{
    return kKex;
}

const char* SshHandshake::hostKeyAlgorithms()
{
    return kHostKeys;
}

SshHandshake::SshHandshake(UniqueFd socket, const std::string& peerAddress, Deadline deadline)
    : m_impl(std::make_unique<Impl>())
{
    m_impl->deadline = deadline;
    m_impl->session.reset(ssh_new());
    if (!m_impl->session) {
        throw HandshakeError("ssh_new failed");
    }
    ssh_session s = m_impl->session.get();
    int noConfig = 0;
    // Never read ~/.ssh/config or /etc/ssh/ssh_config: what we offer must not depend on the daemon's environment.
    setOption(s, SSH_OPTIONS_PROCESS_CONFIG, &noConfig, "process-config");
    // nc_connect_libssh creates its own TCP socket unless a host is set, so the host must always be set.
    setOption(s, SSH_OPTIONS_HOST, peerAddress.c_str(), "host");
    setOption(s, SSH_OPTIONS_KEY_EXCHANGE, kKex, "kex");
    setOption(s, SSH_OPTIONS_HOSTKEYS, kHostKeys, "hostkeys");
    setOption(s, SSH_OPTIONS_CIPHERS_C_S, kCiphers, "ciphers");
    setOption(s, SSH_OPTIONS_CIPHERS_S_C, kCiphers, "ciphers");
    setOption(s, SSH_OPTIONS_HMAC_C_S, kMacs, "macs");
    setOption(s, SSH_OPTIONS_HMAC_S_C, kMacs, "macs");
    setOption(s, SSH_OPTIONS_PUBLICKEY_ACCEPTED_TYPES, kHostKeys, "pubkey types");
    int fd = socket.get();
    setOption(s, SSH_OPTIONS_FD, &fd, "fd");
    // Closed in ~SshHandshake, or after the NETCONF session when the session was released.
    m_impl->socket = SocketRef::of(socket.release());
    ssh_set_blocking(s, 0);
}

SshHandshake::~SshHandshake()
{
    if (m_impl) {
        m_impl->session.reset();
        if (!m_impl->released) {
            m_impl->socket.closeIfStillOurs();
        }
    }
}

SocketRef SshHandshake::socket() const noexcept
{
    return m_impl->socket;
}

void SshHandshake::waitIo(const char* step)
{
    ssh_session s = m_impl->session.get();
    auto left
        = std::chrono::duration_cast<std::chrono::milliseconds>(m_impl->deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
        throw HandshakeError(std::string("timed out during ") + step);
    }
    pollfd p { ssh_get_fd(s), POLLIN, 0 };
    if (ssh_get_poll_flags(s) & SSH_WRITE_PENDING) {
        p.events |= POLLOUT;
    }
    // Short slices: libssh may have buffered work that needs a call, not a readable socket.
    int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 100)));
    if (r < 0 && errno != EINTR) {
        throw HandshakeError(std::string("poll: ") + std::strerror(errno));
    }
}

HostKey SshHandshake::keyExchange()
{
    ssh_session s = m_impl->session.get();
    int rc;
    while ((rc = ssh_connect(s)) == SSH_AGAIN) {
        waitIo("key exchange");
    }
    if (rc != SSH_OK) {
        throw HandshakeError(std::string("key exchange failed: ") + ssh_get_error(s));
    }
    m_impl->connected = true;
    ssh_key raw = nullptr;
    if (ssh_get_server_publickey(s, &raw) != SSH_OK || !raw) {
        throw HandshakeError(std::string("no host key: ") + ssh_get_error(s));
    }
    SshKeyPtr key(raw);
    HostKey out;
    out.fingerprint = fingerprintOf(key.get());
    const char* type = ssh_key_type_to_char(ssh_key_type(key.get()));
    out.keyType = type ? type : "unknown";
    return out;
}

void SshHandshake::authenticate(const Credentials& credentials)
{
    ssh_session s = m_impl->session.get();
    setOption(s, SSH_OPTIONS_USER, credentials.user.c_str(), "user");

    ssh_key raw = nullptr;
    if (ssh_pki_import_privkey_file(credentials.privateKeyPath.c_str(), nullptr, nullptr, nullptr, &raw) != SSH_OK) {
        throw HandshakeError("cannot load the station key " + credentials.privateKeyPath);
    }
    SshKeyPtr key(raw);
    int rc;
    while ((rc = ssh_userauth_publickey(s, nullptr, key.get())) == SSH_AUTH_AGAIN) {
        waitIo("public key authentication");
    }
    if (rc == SSH_AUTH_SUCCESS) {
        return;
    }
    if (rc == SSH_AUTH_ERROR) {
        throw HandshakeError(std::string("public key authentication failed: ") + ssh_get_error(s));
    }
    if (!credentials.password) {
        throw HandshakeError("the device refused the station key for user '" + credentials.user
            + "' (install `callhomectl station-key` on it, or configure a password)");
    }
    while ((rc = ssh_userauth_password(s, nullptr, credentials.password->c_str())) == SSH_AUTH_AGAIN) {
        waitIo("password authentication");
    }
    if (rc == SSH_AUTH_SUCCESS) {
        return;
    }
    if (rc == SSH_AUTH_ERROR) {
        throw HandshakeError(std::string("password authentication failed: ") + ssh_get_error(s));
    }
    throw HandshakeError("the device refused the station key and the password for user '" + credentials.user + "'");
}

void SshHandshake::disconnect()
{
    // SshSessionFree sends SSH_MSG_DISCONNECT when connected; libssh leaves the socket to us.
    m_impl->session.reset();
    m_impl->socket.closeIfStillOurs();
    m_impl->socket = {};
}

ssh_session_struct* SshHandshake::release()
{
    m_impl->released = true;
    return m_impl->session.release();
}
} // namespace callhome::transport
