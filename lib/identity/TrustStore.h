#pragma once
#include "common/Time.h"
#include "config/Config.h"
#include "identity/Certificate.h"
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct x509_st;
struct x509_store_st;

namespace callhome::identity {
/** One CRL of a manufacturer's crl.pem, as the operator should see it in the log. */
struct CrlInfo {
    std::string issuer; ///< RFC 2253 one-line name of the CA that signed it
    std::optional<TimePoint> nextUpdate; ///< none: the CRL carries no nextUpdate
};

/** One manufacturer's IDevID trust anchors, CRL and options. */
struct Manufacturer {
    std::string name;
    SerialSource serialSource = SerialSource::SubjectSerialNumber;
    bool ignoreLifetime = false;
    bool hasCrl = false; ///< crl.pem exists: every certificate of a chain is checked against it
    std::vector<std::string> anchorFingerprints;
    std::vector<CrlInfo> crls; ///< in file order
    std::shared_ptr<x509_store_st> store;
};

/** How a device's presented chain relates to the trust store. */
struct ChainVerdict {
    enum class Kind { Verified, SelfSigned, Invalid };
    Kind kind = Kind::Invalid;
    const Manufacturer* manufacturer = nullptr; ///< for Verified; points into the TrustStore that answered
    std::string reason; ///< for Invalid, in operator words
    std::vector<CertificateInfo> chain; ///< leaf first; for Verified up to and including the anchor
    /** For Verified: what policy let pass (an expired CRL under tls/crl-expired ignore); empty when nothing. */
    std::string warning;
};

/**
 * The trust-store directory (trust-store/README.md): the station's own TLS identity and the manufacturers' IDevID
 * anchors and CRLs. Immutable once loaded, so any number of threads may verify against it; a live daemon swaps in a
 * freshly loaded one through TrustStoreHolder. A malformed store is refused with a message naming the file.
 */
class TrustStore {
public:
    static TrustStore load(const std::string& directory, const std::vector<config::ManufacturerOptions>& options,
        config::CrlExpired crlExpired = config::CrlExpired::FailClosed);

    const std::string& directory() const noexcept { return m_directory; }
    const std::string& stationCertificate() const noexcept { return m_stationCert; }
    const std::string& stationKey() const noexcept { return m_stationKey; }
    const std::string& stationChain() const noexcept { return m_stationChain; } ///< empty when absent
    const std::vector<Manufacturer>& manufacturers() const noexcept { return m_manufacturers; }
    config::CrlExpired crlExpired() const noexcept { return m_crlExpired; }

    /**
     * Verifies `presented` (leaf first, as the device sent it) against each manufacturer in turn: the first whose
     * anchor the chain verifies to wins. Checked on the way, at OpenSSL security level 2: signatures (no SHA-1),
     * key sizes (RSA >= 2048, EC >= 224 bits), the leaf's extendedKeyUsage (when it has one it must allow
     * serverAuth), lifetimes (unless that manufacturer ignores them) and, when the manufacturer has a crl.pem,
     * revocation of every certificate of the chain (a CA without a CRL there, or an expired CRL under
     * tls/crl-expired fail-closed, refuses the chain). A chain that reaches an anchor but fails one of these is
     * Invalid with that reason; a self-signed leaf that no anchor covers is SelfSigned (the operator may pin it);
     * anything else is Invalid.
     */
    ChainVerdict verify(const std::vector<x509_st*>& presented) const;

private:
    std::string m_directory;
    std::string m_stationCert;
    std::string m_stationKey;
    std::string m_stationChain;
    std::vector<Manufacturer> m_manufacturers;
    config::CrlExpired m_crlExpired = config::CrlExpired::FailClosed;
};

/** One line about a manufacturer for the log: its anchors, whether revocation is checked, its CRLs' next updates. */
std::string describe(const Manufacturer& manufacturer);
} // namespace callhome::identity
