#include "transport/SshHandshake.h"
#include "common/Error.h"
#include "common/SocketRef.h"
#include "transport/SshPtr.h"
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <libssh/callbacks.h>
#include <map>

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
// One write never takes more than this, so a fast device cannot keep the loop on itself.
constexpr size_t kMaxWrite = 32768;

void setOption(ssh_session s, ssh_options_e option, const void* value, const char* what)
{
    if (ssh_options_set(s, option, value) != SSH_OK) {
        throw HandshakeError(std::string("cannot set SSH option ") + what + ": " + ssh_get_error(s));
    }
}

/** The station key, parsed once per thread (every handshake of a loop signs with it). */
ssh_key stationKey(const std::string& path)
{
    thread_local std::map<std::string, SshKeyPtr> cache;
    if (auto it = cache.find(path); it != cache.end()) {
        return it->second.get();
    }
    ssh_key raw = nullptr;
    if (ssh_pki_import_privkey_file(path.c_str(), nullptr, nullptr, nullptr, &raw) != SSH_OK) {
        throw HandshakeError("cannot load the station key " + path);
    }
    return cache.emplace(path, SshKeyPtr(raw)).first->second.get();
}

struct SshChannelFree {
    void operator()(ssh_channel c) const noexcept { ssh_channel_free(c); }
};
using SshChannelPtr = std::unique_ptr<std::remove_pointer_t<ssh_channel>, SshChannelFree>;

class SshChannelStream : public DeviceStream {
public:
    SshChannelStream(SshSessionPtr session, SshChannelPtr channel, SocketRef socket)
        : m_session(std::move(session))
        , m_channel(std::move(channel))
        , m_socket(socket)
    { }
    ~SshChannelStream() override { shutdown(); }

    /** -1 once libssh closed the socket itself (it does on a transport error). */
    int fd() const noexcept override { return m_session ? ssh_get_fd(m_session.get()) : -1; }

    IoResult read(char* buf, size_t n) override
    {
        if (!m_channel) {
            return { 0, true, "closed" };
        }
        int r = ssh_channel_read_nonblocking(m_channel.get(), buf, static_cast<uint32_t>(n), 0);
        if (r > 0) {
            return { static_cast<size_t>(r), false, {} };
        }
        if (r == SSH_EOF || ssh_channel_is_eof(m_channel.get()) || ssh_channel_is_closed(m_channel.get())) {
            return { 0, true, "device closed the connection" };
        }
        if (r == SSH_ERROR || !ssh_is_connected(m_session.get())) {
            return { 0, true, std::string("SSH: ") + ssh_get_error(m_session.get()) };
        }
        return {};
    }

    IoResult write(const char* buf, size_t n) override
    {
        if (!m_channel) {
            return { 0, true, "closed" };
        }
        // libssh's own write waits for a window adjust when the window is short; never let it: write what fits.
        uint32_t window = ssh_channel_window_size(m_channel.get());
        size_t now = std::min({ n, static_cast<size_t>(window), kMaxWrite });
        if (now == 0) {
            return {};
        }
        int w = ssh_channel_write(m_channel.get(), buf, static_cast<uint32_t>(now));
        if (w == SSH_ERROR) {
            return { 0, true, std::string("SSH: ") + ssh_get_error(m_session.get()) };
        }
        return { static_cast<size_t>(std::max(w, 0)), false, {} };
    }

    bool wantsWritable() const override
    {
        return m_session && (ssh_get_poll_flags(m_session.get()) & SSH_WRITE_PENDING);
    }

    void flush() override
    {
        if (m_session) {
            ssh_blocking_flush(m_session.get(), 0); // timeout 0: push what the socket takes, return
        }
    }

    bool hasProbe() const noexcept override { return true; }

    bool sendProbe() override
    {
        if (m_probePending) {
            return false;
        }
        // libssh 0.10's ssh_send_keepalive asks for no reply, so a hung device would look alive for ever. A channel
        // request with want-reply does get one (OpenSSH, libssh and paramiko servers answer "failure" to an env
        // request on a running subsystem channel); any answer proves the device's SSH is alive.
        int rc = ssh_channel_request_env(m_channel.get(), "CALLHOME_KEEPALIVE", "1");
        m_probePending = rc == SSH_AGAIN;
        return true;
    }

    bool probeAnswered() override
    {
        if (m_probePending) {
            // Still pending: polls the request state (and processes whatever the device sent, for read()).
            m_probePending = ssh_channel_request_env(m_channel.get(), "CALLHOME_KEEPALIVE", "1") == SSH_AGAIN;
        }
        return !m_probePending;
    }

    void shutdown() noexcept override
    {
        if (m_channel) {
            ssh_channel_close(m_channel.get());
            m_channel.reset();
        }
        // libssh closes the socket itself on a transport error; then the number may already be someone else's.
        bool libsshClosed = m_session && ssh_get_fd(m_session.get()) == SSH_INVALID_SOCKET;
        if (m_session) {
            m_session.reset(); // SSH_MSG_DISCONNECT, best effort on the non-blocking socket
        }
        if (!libsshClosed) {
            m_socket.closeIfStillOurs();
        }
        m_socket = {};
    }

    std::string protocol() const override { return "SSH"; }

private:
    SshSessionPtr m_session;
    SshChannelPtr m_channel; ///< declared after the session: freed first
    SocketRef m_socket;
    bool m_probePending = false;
};
} // namespace

struct SshHandshake::Impl {
    SocketRef socket;
    SshSessionPtr session;
    SshChannelPtr channel;
    HostKey hostKey;
    enum class Auth { Start, PublicKey, DevicePassword, FleetPassword, Done } auth = Auth::Start;
    SshKeyPtr deviceKey; ///< the device's own private key, parsed for this handshake only
    const char* method = "";
    bool channelOpen = false;

    ~Impl() { close(); }
    void close()
    {
        // libssh closes the socket itself on a transport error; then the number may already be someone else's.
        bool libsshClosed = session && ssh_get_fd(session.get()) == SSH_INVALID_SOCKET;
        channel.reset();
        session.reset();
        if (!libsshClosed) {
            socket.closeIfStillOurs();
        }
        socket = {};
    }
};

const char* SshHandshake::kexAlgorithms()
{
    return kKex;
}

const char* SshHandshake::hostKeyAlgorithms()
{
    return kHostKeys;
}

SshHandshake::SshHandshake(UniqueFd socket, const std::string& peerAddress)
    : m_impl(std::make_unique<Impl>())
{
    m_impl->socket = SocketRef::of(socket.release()); // closed in ~Impl, or by the stream after hand-over
    m_impl->session.reset(ssh_new());
    if (!m_impl->session) {
        throw HandshakeError("ssh_new failed");
    }
    ssh_session s = m_impl->session.get();
    int noConfig = 0;
    // Never read ~/.ssh/config or /etc/ssh/ssh_config: what we offer must not depend on the daemon's environment.
    setOption(s, SSH_OPTIONS_PROCESS_CONFIG, &noConfig, "process-config");
    // Nor known_hosts files: libssh reads them to order host-key algorithms; the inventory is our known_hosts.
    setOption(s, SSH_OPTIONS_KNOWNHOSTS, "/dev/null", "known-hosts");
    setOption(s, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null", "global-known-hosts");
    setOption(s, SSH_OPTIONS_HOST, peerAddress.c_str(), "host");
    setOption(s, SSH_OPTIONS_KEY_EXCHANGE, kKex, "kex");
    setOption(s, SSH_OPTIONS_HOSTKEYS, kHostKeys, "hostkeys");
    setOption(s, SSH_OPTIONS_CIPHERS_C_S, kCiphers, "ciphers");
    setOption(s, SSH_OPTIONS_CIPHERS_S_C, kCiphers, "ciphers");
    setOption(s, SSH_OPTIONS_HMAC_C_S, kMacs, "macs");
    setOption(s, SSH_OPTIONS_HMAC_S_C, kMacs, "macs");
    setOption(s, SSH_OPTIONS_PUBLICKEY_ACCEPTED_TYPES, kHostKeys, "pubkey types");
    int fd = m_impl->socket.fd;
    setOption(s, SSH_OPTIONS_FD, &fd, "fd");
    ssh_set_blocking(s, 0);
}

SshHandshake::~SshHandshake() = default;

int SshHandshake::fd() const noexcept
{
    return m_impl->session ? ssh_get_fd(m_impl->session.get()) : -1; // -1 once libssh closed it
}

bool SshHandshake::wantsWritable() const
{
    return m_impl->session && (ssh_get_poll_flags(m_impl->session.get()) & SSH_WRITE_PENDING);
}

const HostKey& SshHandshake::hostKey() const noexcept
{
    return m_impl->hostKey;
}

bool SshHandshake::stepKeyExchange()
{
    ssh_session s = m_impl->session.get();
    int rc = ssh_connect(s);
    if (rc == SSH_AGAIN) {
        return false;
    }
    if (rc != SSH_OK) {
        throw HandshakeError(std::string("key exchange failed: ") + ssh_get_error(s));
    }
    ssh_key raw = nullptr;
    if (ssh_get_server_publickey(s, &raw) != SSH_OK || !raw) {
        throw HandshakeError(std::string("no host key: ") + ssh_get_error(s));
    }
    SshKeyPtr key(raw);
    m_impl->hostKey.fingerprint = fingerprintOf(key.get());
    const char* type = ssh_key_type_to_char(ssh_key_type(key.get()));
    m_impl->hostKey.keyType = type ? type : "unknown";
    return true;
}

bool SshHandshake::stepAuthenticate(const Credentials& credentials)
{
    ssh_session s = m_impl->session.get();
    using Auth = Impl::Auth;
    if (m_impl->auth == Auth::Start) {
        setOption(s, SSH_OPTIONS_USER, credentials.user.c_str(), "user");
        if (credentials.privateKey) {
            ssh_key raw = nullptr;
            if (ssh_pki_import_privkey_base64(credentials.privateKey->reveal().c_str(), nullptr, nullptr, nullptr, &raw)
                    != SSH_OK
                || !raw) {
                throw HandshakeError("the device's own private key cannot be loaded (set it again with callhomectl "
                                     "credentials --key-file)");
            }
            m_impl->deviceKey.reset(raw);
        }
        m_impl->auth = Auth::PublicKey;
    }
    if (m_impl->auth == Auth::PublicKey) {
        const bool own = static_cast<bool>(m_impl->deviceKey);
        int rc = ssh_userauth_publickey(
            s, nullptr, own ? m_impl->deviceKey.get() : stationKey(credentials.privateKeyPath));
        if (rc == SSH_AUTH_AGAIN) {
            return false;
        }
        m_impl->deviceKey.reset(); // tried: not kept for the rest of the session
        if (rc == SSH_AUTH_SUCCESS) {
            m_impl->method = own ? "device key" : "station key";
            m_impl->auth = Auth::Done;
            return true;
        }
        if (rc == SSH_AUTH_ERROR) {
            throw HandshakeError(std::string("public key authentication failed: ") + ssh_get_error(s));
        }
        m_impl->auth = Auth::DevicePassword;
    }
    // The device's own password, then the fleet-wide one (present only when the device allows the fallback).
    while (m_impl->auth == Auth::DevicePassword || m_impl->auth == Auth::FleetPassword) {
        const bool fleet = m_impl->auth == Auth::FleetPassword;
        const auto& password = fleet ? credentials.fleetPassword : credentials.password;
        if (!password) {
            if (fleet) {
                break;
            }
            m_impl->auth = Auth::FleetPassword;
            continue;
        }
        int rc = ssh_userauth_password(s, nullptr, password->reveal().c_str());
        if (rc == SSH_AUTH_AGAIN) {
            return false;
        }
        if (rc == SSH_AUTH_SUCCESS) {
            m_impl->method = fleet ? "fleet password" : "device password";
            m_impl->auth = Auth::Done;
            return true;
        }
        if (rc == SSH_AUTH_ERROR) {
            throw HandshakeError(std::string("password authentication failed: ") + ssh_get_error(s));
        }
        if (fleet) {
            break;
        }
        m_impl->auth = Auth::FleetPassword;
    }
    m_impl->auth = Auth::Done;
    const std::string key = credentials.privateKey ? "its own key" : "the station key";
    if (!credentials.password && !credentials.fleetPassword) {
        throw HandshakeError("the device refused " + key + " for user '" + credentials.user
            + "' and has no password to try (install `callhomectl station-key` on it, or give it a password: "
              "callhomectl credentials DEVICE --password-file F; the fleet-wide ssh/password is offered only to "
              "devices with --password-fallback yes)");
    }
    std::string tried = credentials.password && credentials.fleetPassword ? "its own and the fleet-wide password"
        : credentials.password                                            ? "its own password"
                                                                          : "the fleet-wide password";
    throw HandshakeError("the device refused " + key + " and " + tried + " for user '" + credentials.user + "'");
}

const char* SshHandshake::authenticatedWith() const noexcept
{
    return m_impl->method;
}

bool SshHandshake::stepOpenNetconf()
{
    ssh_session s = m_impl->session.get();
    if (!m_impl->channel) {
        m_impl->channel.reset(ssh_channel_new(s));
        if (!m_impl->channel) {
            throw HandshakeError(std::string("cannot create an SSH channel: ") + ssh_get_error(s));
        }
    }
    if (!m_impl->channelOpen) {
        int rc = ssh_channel_open_session(m_impl->channel.get());
        if (rc == SSH_AGAIN) {
            return false;
        }
        if (rc != SSH_OK) {
            throw HandshakeError(std::string("the device refused a session channel: ") + ssh_get_error(s));
        }
        m_impl->channelOpen = true;
    }
    int rc = ssh_channel_request_subsystem(m_impl->channel.get(), "netconf");
    if (rc == SSH_AGAIN) {
        return false;
    }
    if (rc != SSH_OK) {
        throw HandshakeError(std::string("the device refused the netconf subsystem: ") + ssh_get_error(s));
    }
    return true;
}

std::unique_ptr<DeviceStream> SshHandshake::stream()
{
    auto socket = m_impl->socket;
    m_impl->socket = {};
    return std::make_unique<SshChannelStream>(std::move(m_impl->session), std::move(m_impl->channel), socket);
}

void SshHandshake::disconnect()
{
    // SshSessionFree sends SSH_MSG_DISCONNECT when connected; libssh leaves the socket to us.
    m_impl->close();
}
} // namespace callhome::transport
