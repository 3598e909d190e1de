#pragma once
#include "harness/DevPki.h"
#include "harness/HostKey.h"
#include "harness/Process.h"
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace callhome::test {
class TempDir;

/** Which program of tests/hostile/ plays the device. */
enum class HostileKind {
    Ssh, ///< hostile_ssh.py: paramiko SSH server on the outbound socket, `netconf` subsystem
    Tls, ///< hostile_tls.py: Python ssl TLS server on the outbound socket
    Tcp, ///< tcp_peers.py: silent sockets, garbage, connect/reset storms (no identity)
};

/** How a HostilePeer identifies itself; every field has a usable default. */
struct HostilePeerOptions {
    KeyType hostKeyType = KeyType::Ed25519; ///< Ssh: generated with ssh-keygen in the peer's directory
    std::string authorizedKeyLine = {}; ///< Ssh: accept only this station key; empty: any key
    TlsCredentials tlsIdentity = {}; ///< Tls: required; `chain` (or `cert`) is presented, with `key`
    std::string trustedCaPath = {}; ///< Tls: demand a station certificate signed by this CA; empty: request none
    std::string source = {}; ///< bind this local address before connecting (e.g. "127.3.0.1")
    bool base11 = true; ///< false: advertise base:1.0 only (end-of-message framing throughout)
};

/**
 * One run of a hostile peer program: one call-home attempt (Ssh, Tls), or K sockets / a storm (Tcp). The program
 * appends progress markers to its status file, one per line: a word, then optional details ("hello-received
 * base:1.1"). The process is stopped (SIGTERM to its group, then SIGKILL) on destruction.
 */
class HostileAttempt {
public:
    HostileAttempt(ProcessSpec spec, std::string statusPath);

    Process& process() noexcept { return m_process; }
    const std::string& statusPath() const noexcept { return m_statusPath; }
    const std::string& stderrPath() const noexcept { return m_process.spec().stderrPath; }
    /** Every marker line written so far. */
    std::vector<std::string> markers() const;
    /** The first line that is `marker` or starts with `marker + " "`. */
    std::optional<std::string> find(const std::string& marker) const;
    bool has(const std::string& marker) const { return find(marker).has_value(); }
    /** Lines that are `marker` or start with `marker + " "`. */
    int count(const std::string& marker) const;
    /**
     * Waits until `marker` is written; returns its line. Throws HarnessError (with the markers so far and the tail
     * of the peer's stderr) when `deadline` passes, or when the program exits without writing it.
     */
    std::string waitFor(const std::string& marker, std::chrono::milliseconds deadline);
    std::optional<int> waitExit(std::chrono::milliseconds deadline) { return m_process.waitExit(deadline); }
    int stop(std::chrono::milliseconds deadline = std::chrono::seconds(5)) { return m_process.stop(deadline); }
    /** Markers and stderr tail, for failure messages. */
    std::string describe() const;

private:
    std::string m_statusPath;
    Process m_process;
};

/**
 * A hostile device-side peer of tests/hostile/ (run with /usr/bin/python3: Debian's python3-paramiko). It owns its
 * identity (an SSH host key made here by ssh-keygen, or a TLS identity) across attempts, so a test can let it call
 * once (pending), approve its fingerprint, and let it call again in a hostile mode. Files live in a fresh
 * subdirectory of the TempDir.
 */
class HostilePeer {
public:
    HostilePeer(const TempDir& dir, HostileKind kind, HostilePeerOptions options = {});
    HostilePeer(const HostilePeer&) = delete;
    HostilePeer& operator=(const HostilePeer&) = delete;
    ~HostilePeer();

    /**
     * Starts one run in `mode` (see tests/hostile/README.md) towards host:port; `extraArgs` go to the program as they
     * are (e.g. {"--count", "64"}). The attempt is owned by the peer.
     */
    HostileAttempt& callHome(const std::string& mode, const std::string& host, uint16_t port,
        const std::vector<std::string>& extraArgs = {});
    /** Stops every run started so far. */
    void stopAll();

    HostileKind kind() const noexcept { return m_kind; }
    const HostilePeerOptions& options() const noexcept { return m_options; }
    /** Ssh: the host key; its fingerprint is `ssh-keygen -l -E sha256` output, as the station records it. */
    const KeyPair& hostKey() const noexcept { return m_hostKey; }
    const std::string& hostKeyFingerprint() const noexcept { return m_hostKey.fingerprint; }
    const std::string& directory() const noexcept { return m_dir; }

private:
    std::string m_dir;
    HostileKind m_kind;
    HostilePeerOptions m_options;
    KeyPair m_hostKey;
    std::vector<std::unique_ptr<HostileAttempt>> m_attempts;
};

/**
 * A fresh self-signed device certificate (EC P-256, CN `commonName`) made with openssl in `dir`: a TLS identity no
 * DevPki device shares (the station records it pending and pins it by fingerprint once approved). Throws
 * HarnessError.
 */
TlsCredentials selfSignedTlsIdentity(const std::string& dir, const std::string& commonName);

/** The program a HostileKind runs (absolute path into the source tree). */
std::string hostilePeerScript(HostileKind kind);
} // namespace callhome::test
