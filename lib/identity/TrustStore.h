#pragma once
#include "config/Config.h"
#include "identity/Certificate.h"
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct x509_st;
struct x509_store_st;

namespace callhome::identity {
/** One manufacturer's IDevID trust anchors, CRL and options. */
struct Manufacturer {
    std::string name;
    SerialSource serialSource = SerialSource::SubjectSerialNumber;
    bool ignoreLifetime = false;
    bool hasCrl = false;
    std::vector<std::string> anchorFingerprints;
    std::shared_ptr<x509_store_st> store;
};

/** How a device's presented chain relates to the trust store. */
struct ChainVerdict {
    enum class Kind { Verified, SelfSigned, Invalid };
    Kind kind = Kind::Invalid;
    const Manufacturer* manufacturer = nullptr; ///< for Verified
    std::string reason; ///< for Invalid, in operator words
    std::vector<CertificateInfo> chain; ///< leaf first; for Verified up to and including the anchor
};

/**
 * The trust-store directory (trust-store/README.md): the station's own TLS identity and the manufacturers' IDevID
 * anchors. Loaded once at start; a malformed store is refused with a message naming the file.
 */
class TrustStore {
public:
    static TrustStore load(const std::string& directory, const std::vector<config::ManufacturerOptions>& options);

    const std::string& stationCertificate() const noexcept { return m_stationCert; }
    const std::string& stationKey() const noexcept { return m_stationKey; }
    const std::string& stationChain() const noexcept { return m_stationChain; } ///< empty when absent
    const std::vector<Manufacturer>& manufacturers() const noexcept { return m_manufacturers; }

    /**
     * Verifies `presented` (leaf first, as the device sent it) against each manufacturer in turn: the first whose
     * anchor the chain verifies to wins. A chain that reaches an anchor but is expired (unless that manufacturer
     * ignores lifetimes), revoked by its CRL, or badly signed is Invalid with that reason; a self-signed leaf that no
     * anchor covers is SelfSigned (the operator may pin it); anything else is Invalid.
     */
    ChainVerdict verify(const std::vector<x509_st*>& presented) const;

private:
    std::string m_stationCert;
    std::string m_stationKey;
    std::string m_stationChain;
    std::vector<Manufacturer> m_manufacturers;
};
} // namespace callhome::identity
