#pragma once
#include <memory>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <string>
#include <vector>

// Owners of OpenSSL handles; included from .cpp files and tests only.
namespace callhome::transport {
struct SslCtxFree {
    void operator()(SSL_CTX* p) const noexcept { SSL_CTX_free(p); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
struct SslFree {
    void operator()(SSL* p) const noexcept { SSL_free(p); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;
struct X509Free {
    void operator()(X509* p) const noexcept { X509_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
struct X509StoreFree {
    void operator()(X509_STORE* p) const noexcept { X509_STORE_free(p); }
};
using X509StorePtr = std::unique_ptr<X509_STORE, X509StoreFree>;
struct X509StoreCtxFree {
    void operator()(X509_STORE_CTX* p) const noexcept { X509_STORE_CTX_free(p); }
};
using X509StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, X509StoreCtxFree>;
struct X509StackFree {
    void operator()(STACK_OF(X509) * p) const noexcept { sk_X509_pop_free(p, X509_free); }
};
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackFree>;
struct X509CrlFree {
    void operator()(X509_CRL* p) const noexcept { X509_CRL_free(p); }
};
using X509CrlPtr = std::unique_ptr<X509_CRL, X509CrlFree>;

/** The oldest error on this thread's OpenSSL error queue as text (and clears the queue); `fallback` if none. */
std::string opensslError(const std::string& fallback = "unknown error");
/**
 * Every certificate in a PEM file; throws Error naming the file when it cannot be read, holds none, or holds a
 * malformed (e.g. truncated) PEM block. Text outside PEM blocks is ignored.
 */
std::vector<X509Ptr> loadCertificates(const std::string& path);
/** Every CRL in a PEM file, with the same rules as loadCertificates. */
std::vector<X509CrlPtr> loadCrls(const std::string& path);
} // namespace callhome::transport
