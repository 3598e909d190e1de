#pragma once
#include <cstdlib>
#include <libssh/libssh.h>
#include <memory>
#include <string>

// Internal to callhome-transport: owns libssh handles. Included only from .cpp files and tests.
namespace callhome::transport {
struct SshKeyFree {
    void operator()(ssh_key k) const noexcept { ssh_key_free(k); }
};
using SshKeyPtr = std::unique_ptr<std::remove_pointer_t<ssh_key>, SshKeyFree>;

struct SshSessionFree {
    void operator()(ssh_session s) const noexcept
    {
        ssh_disconnect(s);
        ssh_free(s);
    }
};
using SshSessionPtr = std::unique_ptr<std::remove_pointer_t<ssh_session>, SshSessionFree>;

struct SshStringFree {
    void operator()(char* p) const noexcept { ssh_string_free_char(p); }
};
using SshStringPtr = std::unique_ptr<char, SshStringFree>;

/** "SHA256:<base64 without padding>" of the key blob: exactly what `ssh-keygen -l -E sha256` prints. */
std::string fingerprintOf(ssh_key key);
} // namespace callhome::transport
