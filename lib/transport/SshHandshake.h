#pragma once
#include "common/Secret.h"
#include "common/UniqueFd.h"
#include "transport/DeviceStream.h"
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

struct ssh_session_struct;

namespace callhome::transport {
/** The handshake with a device failed (transport error, authentication refused, protocol error). */
class HandshakeError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/** The device's SSH host key as seen after key exchange. */
struct HostKey {
    std::string fingerprint; ///< "SHA256:..." as ssh-keygen -l -E sha256
    std::string keyType; ///< "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"
};

/**
 * What we authenticate to a device with, tried in this order: one public key (the device's own `privateKey` when it
 * has one, else the station key at `privateKeyPath`), then `password` (the device's own), then `fleetPassword` (the
 * config's ssh/password, set here only for a device whose record allows password fallback). Wiped when dropped.
 */
struct Credentials {
    std::string user;
    std::string privateKeyPath; ///< the station key
    std::optional<Secret> privateKey; ///< the device's own key (OpenSSH/PEM text), instead of the station key
    std::optional<Secret> password; ///< the device's own password
    std::optional<Secret> fleetPassword; ///< the fleet-wide password: only with the device's password fallback
};

/**
 * Our side of RFC 8071 over SSH: a non-blocking libssh *client* on a socket the device connected to us, driven as a
 * state machine by an event loop. Each step() returns true when its phase is done and false when it waits for the
 * socket (wantsWritable() says whether for writing too); none ever waits itself. The device's host key is checked
 * between key exchange and authentication, so nothing of ours (user name, key signature, password) is sent before.
 */
class SshHandshake {
public:
    /** Takes the accepted socket; `peerAddress` is numeric. */
    SshHandshake(UniqueFd socket, const std::string& peerAddress);
    ~SshHandshake();
    SshHandshake(const SshHandshake&) = delete;
    SshHandshake& operator=(const SshHandshake&) = delete;

    int fd() const noexcept;
    bool wantsWritable() const;
    /** Version exchange and key exchange (modern algorithms only); then hostKey() is set. */
    bool stepKeyExchange();
    const HostKey& hostKey() const noexcept;
    /**
     * Public key first, then the passwords there are, in the order of Credentials. `credentials` must stay the same
     * between the calls of one handshake. Throws HandshakeError when all are refused.
     */
    bool stepAuthenticate(const Credentials& credentials);
    /** After stepAuthenticate: what the device accepted ("device key", "station key", "device password", "fleet
     * password"); never the secret. */
    const char* authenticatedWith() const noexcept;
    /** Opens a session channel and the `netconf` subsystem on it. */
    bool stepOpenNetconf();
    /** The `netconf` channel as the device's stream (after stepOpenNetconf); this handshake is spent. */
    std::unique_ptr<DeviceStream> stream();
    /** Sends SSH_MSG_DISCONNECT and closes; used to turn away a device before authentication. */
    void disconnect();
    /** The libssh algorithms we offer, for logs and tests. */
    static const char* kexAlgorithms();
    static const char* hostKeyAlgorithms();

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};
} // namespace callhome::transport
