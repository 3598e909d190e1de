#pragma once
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <memory>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <type_traits>

// Internal to callhome-simlib: owners of the libssh and OpenSSL handles of the device side. Included from .cpp only.
namespace callhome::sim {
struct SshKeyFree {
    void operator()(ssh_key k) const noexcept { ssh_key_free(k); }
};
using SshKeyPtr = std::unique_ptr<std::remove_pointer_t<ssh_key>, SshKeyFree>;

struct SshBindFree {
    void operator()(ssh_bind b) const noexcept { ssh_bind_free(b); }
};
using SshBindPtr = std::unique_ptr<std::remove_pointer_t<ssh_bind>, SshBindFree>;

/** ssh_free only: the simulator owns the socket and closes it itself (libssh 0.10.6 leaves an accepted fd open). */
struct SshSessionFree {
    void operator()(ssh_session s) const noexcept { ssh_free(s); }
};
using SshSessionPtr = std::unique_ptr<std::remove_pointer_t<ssh_session>, SshSessionFree>;

struct SshEventFree {
    void operator()(ssh_event e) const noexcept { ssh_event_free(e); }
};
using SshEventPtr = std::unique_ptr<std::remove_pointer_t<ssh_event>, SshEventFree>;

struct EvpPkeyFree {
    void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyFree>;

struct X509Free {
    void operator()(X509* p) const noexcept { X509_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

struct SslCtxFree {
    void operator()(SSL_CTX* p) const noexcept { SSL_CTX_free(p); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

struct SslFree {
    void operator()(SSL* p) const noexcept { SSL_free(p); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;
} // namespace callhome::sim
