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

namespace {
/**
 * Reads every PEM object of one kind from `path`. A PEM reader stops both at the end of the file ("no start line")
 * and at a malformed block; only the first is a clean end, or a half-written file would pass as a shorter one.
 */
template<typename T, typename Read>
std::vector<std::unique_ptr<T, typename Read::Deleter>> readPemFile(
    const std::string& path, const char* what, Read read)
{
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_file(path.c_str(), "r"), BIO_free);
    if (!bio) {
        ERR_clear_error();
        throw Error(path + ": cannot read");
    }
    std::vector<std::unique_ptr<T, typename Read::Deleter>> out;
    ERR_clear_error();
    while (T* x = read(bio.get())) {
        out.emplace_back(x);
    }
    const unsigned long last = ERR_peek_last_error();
    const bool cleanEnd
        = last == 0 || (ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE);
    if (!cleanEnd) {
        throw Error(path + ": malformed PEM " + what + " after " + std::to_string(out.size())
            + " good one(s): " + opensslError());
    }
    ERR_clear_error();
    if (out.empty()) {
        throw Error(path + ": no PEM " + what + " in it");
    }
    return out;
}

struct ReadCertificate {
    using Deleter = X509Free;
    X509* operator()(BIO* bio) const { return PEM_read_bio_X509(bio, nullptr, nullptr, nullptr); }
};
struct ReadCrl {
    using Deleter = X509CrlFree;
    X509_CRL* operator()(BIO* bio) const { return PEM_read_bio_X509_CRL(bio, nullptr, nullptr, nullptr); }
};
} // namespace

std::vector<X509Ptr> loadCertificates(const std::string& path)
{
    return readPemFile<X509>(path, "certificate", ReadCertificate {});
}

std::vector<X509CrlPtr> loadCrls(const std::string& path)
{
    return readPemFile<X509_CRL>(path, "CRL", ReadCrl {});
}
} // namespace callhome::transport
