#include "transport/SshPtr.h"
#include "common/Error.h"

namespace callhome::transport {
std::string fingerprintOf(ssh_key key)
{
    unsigned char* hash = nullptr;
    size_t len = 0;
    if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &len) != SSH_OK) {
        throw LibraryError("ssh_get_publickey_hash", "cannot hash the key");
    }
    char* fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, len);
    ssh_clean_pubkey_hash(&hash);
    if (!fp) {
        throw LibraryError("ssh_get_fingerprint_hash", "cannot format the fingerprint");
    }
    std::string out(fp);
    ssh_string_free_char(fp);
    return out;
}
} // namespace callhome::transport
