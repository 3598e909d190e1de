#pragma once
#include <cstddef>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace callhome::cli {
/** One host key of an OpenSSH known_hosts file, as `callhomectl expect --known-hosts` pre-provisions it. */
struct KnownHostKey {
    std::size_t line = 0; ///< 1-based line in the file
    std::string name; ///< device name: the host name, or for a hashed entry a generated one (see parseKnownHosts)
    bool hashed = false; ///< the line's host field was hashed (|1|salt|hash, ssh-keygen -H)
    std::string keyType; ///< "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa", ...
    std::string fingerprint; ///< "SHA256:<base64 without padding>", as ssh-keygen -l -E sha256 prints it
};

/** SHA256 fingerprint of a key blob (the decoded base64 of a public key line), exactly as ssh-keygen computes it. */
std::string sshFingerprint(const std::string& blob);
/** Strict RFC 4648 base64 (padding optional); nullopt on anything else. */
std::optional<std::string> decodeBase64(const std::string& text);

/**
 * Reads an OpenSSH known_hosts file (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"): `hostnames keytype base64 [comment]`.
 * Blank lines and '#' comments are skipped, and so are `@cert-authority` (a CA, not a host key) and `@revoked`
 * lines (a key never to accept). For each key:
 * - the fingerprint is computed from the key blob, whose embedded type must match the key type field;
 * - a plain entry is named after its first host name (`[host]:port` → host; characters a device name cannot
 *   have, such as ':' of an IPv6 address, become '-'); a wildcard or negated pattern is an error, it names no
 *   single device;
 * - a hashed entry (`|1|...`, whose host name cannot be recovered) is named `hashedPrefix` + the first 12
 *   characters of its fingerprint, '+' and '/' written '-' and '_' (`host-w3QUYXeWI5zt`): the same name on every
 *   import of the same key;
 * - a host with several keys (ed25519 and rsa, say) gets its name on its first key in the file and
 *   `NAME-TYPE` on the others (`TYPE` the key type without "ssh-": `router1-rsa`, `router1-ecdsa-sha2-nistp256`);
 * - a key that appeared on an earlier line (under another host name or address) is listed once, under the first.
 * Throws UsageError "<fileName>:<line>: <problem>"; also when the file holds no key at all.
 */
std::vector<KnownHostKey> parseKnownHosts(
    std::istream& in, const std::string& fileName, const std::string& hashedPrefix);
} // namespace callhome::cli
