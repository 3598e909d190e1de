#pragma once
#include "common/Secret.h"
#include <string>

namespace callhome::transport {
/** The management station's own SSH key pair, used to authenticate to approved devices. */
struct StationKey {
    std::string privateKeyPath;
    std::string publicKeyLine; ///< "ssh-ed25519 AAAA... callhome@<host>", authorized_keys format
    std::string fingerprint; ///< "SHA256:..."
};

/** Default location of the station key inside a state directory. */
std::string defaultStationKeyPath(const std::string& stateDir);
/**
 * Loads the private key at `path`; when the file does not exist and `create` is true, generates an ed25519 key
 * there (mode 0600, parent directory created 0700). Refuses a key file readable or writable by group/others,
 * as OpenSSH does. Throws Error with the path and reason.
 */
StationKey loadStationKey(const std::string& path, bool create);
/** Throws UsageError when `path` is accessible by group or others (an OpenSSH-style permission check). */
void checkPrivateFilePermissions(const std::string& path);
/**
 * Throws UsageError (naming `source`, never quoting the text) unless `text` is an unencrypted SSH private key libssh
 * can use (OpenSSH or PEM format); returns its public key's fingerprint ("SHA256:...").
 */
std::string checkPrivateKeyText(const Secret& text, const std::string& source);
} // namespace callhome::transport
