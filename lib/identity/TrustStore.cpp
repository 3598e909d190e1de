#include "identity/TrustStore.h"
#include "common/Error.h"
#include "transport/OpenSsl.h"
#include <algorithm>
#include <filesystem>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

namespace callhome::identity {
namespace fs = std::filesystem;
using transport::X509Ptr;
using transport::X509StoreCtxPtr;

namespace {
void loadCrls(const std::string& path, X509_STORE* store)
{
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_file(path.c_str(), "r"), BIO_free);
    if (!bio) {
        throw Error(path + ": cannot read");
    }
    int n = 0;
    while (X509_CRL* crl = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr)) {
        X509_STORE_add_crl(store, crl);
        X509_CRL_free(crl);
        ++n;
    }
    ERR_clear_error();
    if (n == 0) {
        throw Error(path + ": no PEM CRL in it");
    }
}

bool isIssuerProblem(int error)
{
    switch (error) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        return true;
    default:
        return false;
    }
}

std::string reasonFor(int error)
{
    switch (error) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return "certificate has expired";
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return "certificate is not yet valid";
    case X509_V_ERR_CERT_REVOKED:
        return "certificate revoked by its manufacturer's CRL";
    default:
        return X509_verify_cert_error_string(error);
    }
}
} // namespace

TrustStore TrustStore::load(const std::string& directory, const std::vector<config::ManufacturerOptions>& options)
{
    TrustStore t;
    auto dir = fs::path(directory);
    if (!fs::is_directory(dir)) {
        throw Error(directory + ": trust store is not a directory");
    }
    t.m_stationCert = (dir / "station" / "cert.pem").string();
    t.m_stationKey = (dir / "station" / "key.pem").string();
    if (!fs::exists(t.m_stationCert) || !fs::exists(t.m_stationKey)) {
        throw Error(directory + ": needs station/cert.pem and station/key.pem (the station's TLS client identity)");
    }
    if (auto chain = dir / "station" / "chain.pem"; fs::exists(chain)) {
        t.m_stationChain = chain.string();
    }

    auto mdir = dir / "manufacturers";
    std::vector<fs::path> entries;
    if (fs::is_directory(mdir)) {
        for (const auto& e : fs::directory_iterator(mdir)) {
            if (e.is_directory()) {
                entries.push_back(e.path());
            }
        }
    }
    std::sort(entries.begin(), entries.end());
    for (const auto& o : options) {
        if (std::none_of(entries.begin(), entries.end(), [&](const auto& p) { return p.filename() == o.name; })) {
            throw Error(
                "manufacturer '" + o.name + "' is configured but " + (mdir / o.name).string() + " does not exist");
        }
    }
    for (const auto& path : entries) {
        Manufacturer m;
        m.name = path.filename().string();
        if (auto o = std::find_if(options.begin(), options.end(), [&](const auto& x) { return x.name == m.name; });
            o != options.end()) {
            m.serialSource = serialSourceFromString(o->serialSource);
            m.ignoreLifetime = o->ignoreLifetime;
        }
        auto caFile = (path / "ca.pem").string();
        std::shared_ptr<X509_STORE> store(X509_STORE_new(), X509_STORE_free);
        for (auto& ca : transport::loadCertificates(caFile)) {
            m.anchorFingerprints.push_back(inspect(ca.get()).fingerprint);
            X509_STORE_add_cert(store.get(), ca.get());
        }
        if (auto crl = path / "crl.pem"; fs::exists(crl)) {
            loadCrls(crl.string(), store.get());
            m.hasCrl = true;
        }
        m.store = std::move(store);
        t.m_manufacturers.push_back(std::move(m));
    }
    return t;
}

ChainVerdict TrustStore::verify(const std::vector<x509_st*>& presented) const
{
    ChainVerdict v;
    if (presented.empty()) {
        v.reason = "the device presented no certificate";
        return v;
    }
    X509* leaf = presented.front();
    // The stack only borrows the caller's certificates: free the stack, not its elements.
    struct BorrowedStackFree {
        void operator()(STACK_OF(X509) * p) const noexcept { sk_X509_free(p); }
    };
    std::unique_ptr<STACK_OF(X509), BorrowedStackFree> untrusted(sk_X509_new_null());
    for (size_t i = 1; i < presented.size(); ++i) {
        sk_X509_push(untrusted.get(), presented[i]); // borrowed; the stack is freed without freeing these
    }
    std::optional<std::string> specific;
    for (const auto& m : m_manufacturers) {
        X509StoreCtxPtr ctx(X509_STORE_CTX_new());
        if (!ctx || X509_STORE_CTX_init(ctx.get(), m.store.get(), leaf, untrusted.get()) != 1) {
            throw LibraryError("X509_STORE_CTX_init", transport::opensslError());
        }
        unsigned long flags = X509_V_FLAG_X509_STRICT;
        if (m.hasCrl) {
            flags |= X509_V_FLAG_CRL_CHECK;
        }
        if (m.ignoreLifetime) {
            flags |= X509_V_FLAG_NO_CHECK_TIME;
        }
        X509_STORE_CTX_set_flags(ctx.get(), flags);
        int ok = X509_verify_cert(ctx.get());
        ERR_clear_error();
        if (ok == 1) {
            v.kind = ChainVerdict::Kind::Verified;
            v.manufacturer = &m;
            STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx.get());
            for (int i = 0; i < sk_X509_num(chain); ++i) {
                v.chain.push_back(inspect(sk_X509_value(chain, i)));
            }
            return v;
        }
        int error = X509_STORE_CTX_get_error(ctx.get());
        if (!isIssuerProblem(error) && !specific) {
            specific = reasonFor(error) + " (manufacturer " + m.name + ")";
        }
    }
    if (specific) {
        v.reason = *specific;
    } else if (auto info = inspect(leaf); info.selfSigned) {
        // Issuer equals subject and it verifies with its own key (X509_check_issued would also demand keyCertSign,
        // which a device certificate rightly lacks).
        v.kind = ChainVerdict::Kind::SelfSigned;
        v.chain.push_back(std::move(info));
    } else {
        v.reason = "certificate chain does not lead to any configured manufacturer CA";
    }
    ERR_clear_error();
    return v;
}
} // namespace callhome::identity
