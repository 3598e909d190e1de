#include "identity/TrustStore.h"
#include "common/Error.h"
#include "transport/OpenSsl.h"
#include <algorithm>
#include <ctime>
#include <filesystem>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

namespace callhome::identity {
namespace fs = std::filesystem;
using transport::X509StoreCtxPtr;

namespace {
// OpenSSL security level 2 (112-bit security): no SHA-1 or MD5 signatures, RSA/DSA/DH keys of at least 2048 bits,
// EC keys of at least 224 bits. The TLS context uses the same level (transport/TlsHandshake.cpp).
constexpr int kSecurityLevel = 2;

struct BioFree {
    void operator()(BIO* p) const noexcept { BIO_free(p); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

std::optional<TimePoint> toTimePoint(const ASN1_TIME* t)
{
    std::tm tm {};
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1) {
        return std::nullopt;
    }
    const time_t seconds = timegm(&tm);
    if (seconds == static_cast<time_t>(-1)) {
        return std::nullopt;
    }
    return TimePoint(std::chrono::seconds(seconds));
}

/** A name from the operator's own files (a CRL issuer), RFC 2253 like CertificateInfo. */
std::string nameText(const X509_NAME* name)
{
    BioPtr bio(BIO_new(BIO_s_mem()));
    char* data = nullptr;
    long len = 0;
    if (!bio || !name || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0
        || (len = BIO_get_mem_data(bio.get(), &data)) <= 0 || !data) {
        ERR_clear_error();
        return "(unprintable name)";
    }
    return std::string(data, static_cast<size_t>(std::min(len, 1024L)));
}

/** A name from a device's certificate: only what inspect() accepts (valid UTF-8, bounded) reaches a log line. */
std::string subjectOf(X509* cert)
{
    try {
        return inspect(cert).subject;
    } catch (const CertificateError&) {
        return "(unreadable subject)";
    }
}

std::string issuerOf(X509* cert)
{
    try {
        return inspect(cert).issuer;
    } catch (const CertificateError&) {
        return "(unreadable issuer)";
    }
}

std::string crlText(const X509_CRL* crl)
{
    if (!crl) {
        return "a CRL";
    }
    std::string out = "the CRL from " + nameText(X509_CRL_get_issuer(crl));
    if (auto next = toTimePoint(X509_CRL_get0_nextUpdate(crl))) {
        out += " (nextUpdate " + toIso8601(*next) + ")";
    }
    return out;
}

/**
 * Shared with verifyCallback for one X509_verify_cert call. The callback runs inside OpenSSL: it only reads and
 * stores pointers (the CRLs are owned by the manufacturer's X509_STORE, which outlives the call) and never throws.
 */
struct VerifyState {
    bool ignoreLifetime = false;
    bool ignoreExpiredCrl = false;
    const X509_CRL* expiredCrl = nullptr; ///< the first expired CRL met, whether it was let pass or not
    const X509_CRL* failedCrl = nullptr; ///< the CRL being checked at the last refused error, if any
};

int verifyCallback(int ok, X509_STORE_CTX* ctx) noexcept
{
    if (ok == 1) {
        return 1;
    }
    auto* state = static_cast<VerifyState*>(X509_STORE_CTX_get_app_data(ctx));
    if (!state) {
        return 0;
    }
    const X509_CRL* crl = X509_STORE_CTX_get0_current_crl(ctx);
    switch (X509_STORE_CTX_get_error(ctx)) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        // ignore-lifetime concerns certificates only (unlike X509_V_FLAG_NO_CHECK_TIME, which would also let any
        // stale CRL pass and so defeat tls/crl-expired).
        if (state->ignoreLifetime) {
            return 1;
        }
        break;
    case X509_V_ERR_CRL_HAS_EXPIRED:
        if (!state->expiredCrl) {
            state->expiredCrl = crl;
        }
        if (state->ignoreExpiredCrl) {
            return 1; // the stale CRL is still used: a certificate it lists is refused as revoked
        }
        break;
    default:
        break;
    }
    state->failedCrl = crl;
    return 0;
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

/** Why X509_verify_cert refused, naming the certificate (leaf or which CA) and the rule, in operator words. */
std::string reasonFor(X509_STORE_CTX* ctx, const VerifyState& state)
{
    const int error = X509_STORE_CTX_get_error(ctx);
    const int depth = X509_STORE_CTX_get_error_depth(ctx);
    X509* cert = X509_STORE_CTX_get_current_cert(ctx);
    const std::string which
        = depth <= 0 ? "the device certificate" : "CA certificate \"" + (cert ? subjectOf(cert) : "?") + "\"";
    switch (error) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return which + ": certificate has expired";
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return which + ": certificate is not yet valid";
    case X509_V_ERR_CERT_REVOKED:
        return which + ": certificate revoked by its manufacturer's CRL";
    case X509_V_ERR_INVALID_PURPOSE: {
        if (depth > 0) {
            return which + " may not issue TLS server certificates: its extendedKeyUsage lacks serverAuth";
        }
        const uint32_t eku = cert ? X509_get_extended_key_usage(cert) : UINT32_MAX; // UINT32_MAX: no such extension
        if (eku != UINT32_MAX && !(eku & XKU_SSL_SERVER)) {
            return which
                + " is not for TLS servers: its extendedKeyUsage lacks serverAuth (a device certificate needs "
                  "serverAuth, or no extendedKeyUsage at all)";
        }
        return which
            + " is not for TLS servers: its keyUsage allows neither digitalSignature, keyEncipherment nor "
              "keyAgreement";
    }
    case X509_V_ERR_CA_MD_TOO_WEAK: {
        int mdNid = NID_undef;
        std::string digest = "a weak digest";
        if (cert && X509_get_signature_info(cert, &mdNid, nullptr, nullptr, nullptr) == 1 && mdNid != NID_undef) {
            digest = OBJ_nid2sn(mdNid);
        }
        return which + " is signed with " + digest + ", refused at security level " + std::to_string(kSecurityLevel)
            + " (signatures need at least 112-bit security, e.g. SHA-256)";
    }
    case X509_V_ERR_EE_KEY_TOO_SMALL:
    case X509_V_ERR_CA_KEY_TOO_SMALL: {
        std::string key = "key";
        if (EVP_PKEY* k = cert ? X509_get0_pubkey(cert) : nullptr) { // borrowed from the certificate
            const char* type = EVP_PKEY_get0_type_name(k);
            key = std::to_string(EVP_PKEY_get_bits(k)) + "-bit " + (type ? type : "") + " key";
        }
        return which + " has a " + key + ", refused at security level " + std::to_string(kSecurityLevel)
            + " (RSA, DSA and DH keys need at least 2048 bits, EC keys at least 224)";
    }
    case X509_V_ERR_CRL_HAS_EXPIRED:
        return crlText(state.expiredCrl ? state.expiredCrl : state.failedCrl)
            + " has expired; refused because tls/crl-expired is fail-closed";
    case X509_V_ERR_CRL_NOT_YET_VALID:
        return crlText(state.failedCrl) + " is not yet valid (check the station's clock)";
    case X509_V_ERR_UNABLE_TO_GET_CRL:
        return "no CRL from \"" + (cert ? issuerOf(cert) : "?") + "\", the issuer of " + which
            + ", in the manufacturer's crl.pem (with a crl.pem every CA of the chain needs a CRL there)";
    case X509_V_ERR_CRL_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
        return crlText(state.failedCrl) + " has a bad signature";
    default:
        return depth <= 0 ? std::string(X509_verify_cert_error_string(error))
                          : std::string(X509_verify_cert_error_string(error)) + " (" + which + ")";
    }
}
} // namespace

std::string describe(const Manufacturer& m)
{
    std::string out = "manufacturer " + m.name + ": " + std::to_string(m.anchorFingerprints.size()) + " anchor(s)";
    if (m.ignoreLifetime) {
        out += ", ignore-lifetime";
    }
    if (!m.hasCrl) {
        return out + "; no crl.pem, revocation is not checked";
    }
    out += "; revocation checked for the whole chain against " + std::to_string(m.crls.size()) + " CRL(s):";
    const auto t = now();
    for (size_t i = 0; i < m.crls.size(); ++i) {
        const auto& c = m.crls[i];
        out += (i ? "; " : " ") + c.issuer;
        if (!c.nextUpdate) {
            out += " (no nextUpdate)";
        } else {
            out += (*c.nextUpdate < t ? " (EXPIRED since " : " (next update ") + toIso8601(*c.nextUpdate) + ")";
        }
    }
    return out;
}

TrustStore TrustStore::load(const std::string& directory, const std::vector<config::ManufacturerOptions>& options,
    config::CrlExpired crlExpired)
{
    TrustStore t;
    t.m_directory = directory;
    t.m_crlExpired = crlExpired;
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
        if (!store) {
            throw LibraryError("X509_STORE_new", transport::opensslError());
        }
        for (auto& ca : transport::loadCertificates(caFile)) {
            try {
                m.anchorFingerprints.push_back(inspect(ca.get()).fingerprint);
            } catch (const CertificateError& e) {
                throw Error(caFile + ": " + e.what());
            }
            if (X509_STORE_add_cert(store.get(), ca.get()) != 1) { // takes its own reference
                throw Error(caFile + ": " + transport::opensslError());
            }
        }
        if (auto crlFile = path / "crl.pem"; fs::exists(crlFile)) {
            for (auto& crl : transport::loadCrls(crlFile.string())) {
                m.crls.push_back(
                    { nameText(X509_CRL_get_issuer(crl.get())), toTimePoint(X509_CRL_get0_nextUpdate(crl.get())) });
                if (X509_STORE_add_crl(store.get(), crl.get()) != 1) { // takes its own reference
                    throw Error(crlFile.string() + ": " + transport::opensslError());
                }
            }
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
            // The whole chain: a revoked intermediate CA must not keep its devices trusted.
            flags |= X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL;
        }
        X509_STORE_CTX_set_flags(ctx.get(), flags);
        X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get()); // owned by ctx
        X509_VERIFY_PARAM_set_auth_level(param, kSecurityLevel);
        // The device is the TLS server of the connection. OpenSSL checks the purpose only where the certificate
        // restricts it: a leaf without extendedKeyUsage (common for 802.1AR IDevIDs) passes.
        if (X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER) != 1) {
            throw LibraryError("X509_VERIFY_PARAM_set_purpose", transport::opensslError());
        }
        VerifyState state { .ignoreLifetime = m.ignoreLifetime,
            .ignoreExpiredCrl = m_crlExpired == config::CrlExpired::Ignore };
        X509_STORE_CTX_set_app_data(ctx.get(), &state); // outlives the call below
        X509_STORE_CTX_set_verify_cb(ctx.get(), verifyCallback);
        int ok = X509_verify_cert(ctx.get());
        ERR_clear_error();
        if (ok == 1) {
            v.kind = ChainVerdict::Kind::Verified;
            v.manufacturer = &m;
            STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx.get());
            for (int i = 0; i < sk_X509_num(chain); ++i) {
                v.chain.push_back(inspect(sk_X509_value(chain, i)));
            }
            if (state.expiredCrl) {
                v.warning = crlText(state.expiredCrl) + " has expired; used anyway because tls/crl-expired is ignore";
            }
            return v;
        }
        int error = X509_STORE_CTX_get_error(ctx.get());
        if (!isIssuerProblem(error) && !specific) {
            specific = reasonFor(ctx.get(), state) + " (manufacturer " + m.name + ")";
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
