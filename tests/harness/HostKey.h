#pragma once
#include <string>

namespace callhome::test {
enum class KeyType { Ed25519, Ecdsa, Rsa };

/** "ed25519", "ecdsa", "rsa": the ssh-keygen -t argument */
std::string toString(KeyType type);

/** A key pair made by ssh-keygen, and the fingerprint ssh-keygen itself reports: the ground truth for tests. */
struct KeyPair {
    KeyType type;
    std::string privateKeyPath;
    std::string publicKeyPath;
    std::string publicKeyLine; ///< authorized_keys format, without the trailing newline
    std::string fingerprint; ///< "SHA256:..." as printed by `ssh-keygen -l -E sha256 -f`
};

/**
 * Runs `ssh-keygen -q -N '' -t <type>` (ecdsa: -b 256, rsa: -b 3072) into `dir`/`name` (default: "<type>_key")
 * and reads back its fingerprint. Throws HarnessError.
 */
KeyPair generateHostKey(const std::string& dir, KeyType type, const std::string& name = {});
} // namespace callhome::test
