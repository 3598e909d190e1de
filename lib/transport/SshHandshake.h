#pragma once
#include "common/SocketRef.h"
#include "common/UniqueFd.h"
#include <chrono>
#include <memory>
#include <optional>
#include <string>

struct ssh_session_struct;

namespace callhome::transport {
/** The handshake with a device failed (transport error, timeout, authentication refused). */
class HandshakeError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/** The device's SSH host key as seen after key exchange. */
struct HostKey {
    std::string fingerprint; ///< "SHA256:..." as ssh-keygen -l -E sha256
    std::string keyType; ///< "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"
};

/** What we authenticate to a device with. */
struct Credentials {
    std::string user;
    std::string privateKeyPath;
    std::optional<std::string> password;
};

/**
 * Our side of RFC 8071 over SSH: a libssh *client* on a socket the device connected to us. Split in two steps
 * so that the device's host key is checked before anything of ours (user name, key signature, password) is sent.
 * Every step is non-blocking under one deadline.
 */
class SshHandshake {
public:
    using Deadline = std::chrono::steady_clock::time_point;
    /** Takes the accepted socket; `peerAddress` is numeric. */
    SshHandshake(UniqueFd socket, const std::string& peerAddress, Deadline deadline);
    ~SshHandshake();
    SshHandshake(const SshHandshake&) = delete;
    SshHandshake& operator=(const SshHandshake&) = delete;

    /** Runs version exchange and key exchange (modern algorithms only) and returns the device's host key. */
    HostKey keyExchange();
    /** Public key (the station key) first, then the password if there is one. Throws HandshakeError when refused. */
    void authenticate(const Credentials& credentials);
    /** Sends SSH_MSG_DISCONNECT and closes; used to turn away a device before authentication. */
    void disconnect();
    /**
     * Hands the authenticated libssh session over (nc_connect_libssh takes ownership of it). The socket stays ours
     * to close once the session is freed (see SocketRef).
     */
    ssh_session_struct* release();
    SocketRef socket() const noexcept;
    /** The libssh algorithms we offer, for logs and tests. */
    static const char* kexAlgorithms();
    static const char* hostKeyAlgorithms();

private:
    void waitIo(const char* step);
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};
} // namespace callhome::transport
