#include "transport/OpenSsl.h"
#include "common/Error.h"
#include <openssl/err.h>
#include <openssl/pem.h>

namespace callhome::transport {
std::string opensslError(const std::string& fallback)
{
    unsigned long e = ERR_get_error();
    if (!e) {
        return fallback;
    }
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    // "error:0A000086:SSL routines::certificate verify failed" → keep the reason after the last "::" or ':'
    std::string s(buf);
    if (auto pos = s.rfind(':'); pos != std::string::npos && pos + 1 < s.size()) {
        return s.substr(pos + 1);
    }
    return s;
}

std::vector<X509Ptr> loadCertificates(const std::string& path)
{
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_file(path.c_str(), "r"), BIO_free);
    if (!bio) {
        ERR_clear_error();
        throw Error(path + ": cannot read");
    }
    std::vector<X509Ptr> out;
    while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
        out.emplace_back(x);
    }
    ERR_clear_error(); // the loop ends on "no start line"
    if (out.empty()) {
        throw Error(path + ": no PEM certificate in it");
    }
    return out;
}
} // namespace callhome::transport
