#pragma once
#include <chrono>
#include <string>

namespace callhome::test {
class TempDir;

/** PEM files of one TLS identity (a device's IDevID, or the station's client certificate). */
struct TlsCredentials {
    std::string cert; ///< the leaf alone
    std::string key; ///< its private key (unencrypted)
    std::string chain; ///< leaf followed by its issuing CA; the leaf alone for a self-signed certificate
};

/**
 * The test PKI made by `scripts/dev-pki` in `<TempDir>/pki`: a manufacturer IEEE 802.1AR IDevID CA and device
 * certificates for every identity case, an unrelated CA, the management station's CA and client certificate, and
 * the listener's trust store. Generated fresh per instance (about half a second).
 */
class DevPki {
public:
    /** Runs `${CALLHOME_SOURCE_DIR}/scripts/dev-pki <dir>/pki`; throws HarnessError if it fails or overruns. */
    explicit DevPki(const TempDir& dir, std::chrono::milliseconds deadline = std::chrono::seconds(60));

    /** The generated directory (`<TempDir>/pki`). */
    const std::string& root() const noexcept { return m_root; }
    /**
     * A device identity: sn-0001 (subject serialNumber), hwmn-0002 (SAN hardwareModuleName), expired-0003,
     * revoked-0004 (listed in manufacturerCrl()), unknown-0005, other-ca-0007 (signed by otherCa()), selfsigned.
     * Throws HarnessError for a name the PKI does not have.
     */
    TlsCredentials device(const std::string& name) const;
    std::string manufacturerCa() const;
    std::string manufacturerCrl() const;
    std::string otherCa() const;
    /** CA of the station's client certificate: what a device trusts to authenticate the listener. */
    std::string stationCa() const;
    /** The management station's client certificate (what the listener presents). */
    TlsCredentials station() const;
    /** The listener's trust store directory (layout in trust-store/README.md). */
    std::string trustStore() const;

private:
    std::string m_root;
};
} // namespace callhome::test
