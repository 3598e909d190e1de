#pragma once
#include "common/Error.h"
#include "common/Time.h"
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

struct x509_st;

namespace callhome::identity {
/** A certificate cannot serve as a device identity (malformed, ambiguous, missing the serial). */
class CertificateError : public Error {
public:
    using Error::Error;
};

/** A subjectAltName entry we understand. */
struct SanEntry {
    enum class Type { Rfc822Name, DnsName, IpAddress, HardwareModuleName, OtherName };
    Type type;
    std::string value; ///< IP addresses in canonical text form; HardwareModuleName: the hwSerialNum as UTF-8
};

/** What callhome reads from a device's X.509 certificate. */
struct CertificateInfo {
    std::string subject; ///< one line, RFC 2253 (e.g. "CN=router-1,serialNumber=SN0001,O=Example")
    std::string issuer; ///< same format
    /** "SHA256:AB:CD:..." — SHA-256 of the DER, upper-case hex with colons as `openssl x509 -fingerprint -sha256` */
    std::string fingerprint;
    bool selfSigned = false; ///< subject == issuer and the signature verifies with its own key
    std::optional<std::string> subjectSerialNumber; ///< subject attribute serialNumber (2.5.4.5)
    std::optional<std::string>
        hardwareModuleSerial; ///< SAN otherName hardwareModuleName (1.3.6.1.5.5.7.8.4) hwSerialNum
    std::optional<std::string> commonName;
    std::vector<SanEntry> subjectAltNames;
    TimePoint notBefore;
    TimePoint notAfter; ///< 9999-12-31T23:59:59Z for 802.1AR "no well-defined expiration"
};

/**
 * Reads the fields above. Throws CertificateError for what a device must not get away with: two serialNumber
 * attributes, two hardwareModuleName entries with different serials, text fields that are not valid UTF-8 or are
 * longer than 1024 bytes, more than 64 subjectAltName entries.
 */
CertificateInfo inspect(x509_st* certificate);
/** The same from PEM text (first certificate); throws CertificateError when there is none. */
CertificateInfo inspectPem(const std::string& pem);

/** Where a manufacturer puts the device serial number (IEEE 802.1AR allows either of the first two). */
enum class SerialSource { SubjectSerialNumber, HardwareModuleName, CommonName };
/** Parses "subject-serial-number" | "hardware-module-name" | "common-name"; throws UsageError. */
SerialSource serialSourceFromString(const std::string& s);
std::string toString(SerialSource s);
/** The device serial from the chosen field; throws CertificateError when it is missing or empty. */
std::string deviceSerial(const CertificateInfo& leaf, SerialSource source);

/** RFC 7589 cert-to-name map types. */
enum class MapType { Specified, SanRfc822Name, SanDnsName, SanIpAddress, SanAny, CommonName };
/** Parses "specified", "san-rfc822-name", "san-dns-name", "san-ip-address", "san-any", "common-name". */
MapType mapTypeFromString(const std::string& s);
std::string toString(MapType t);

/** One cert-to-name entry (ietf-x509-cert-to-name): applies when `fingerprint` matches a certificate of the chain. */
struct CertToNameRule {
    uint32_t id = 0; ///< rules are tried in ascending id
    std::string fingerprint; ///< same format as CertificateInfo::fingerprint (case-insensitive compare)
    MapType mapType = MapType::CommonName;
    std::string name; ///< for Specified
};

/**
 * RFC 7589 section 7 / RFC 7407 cert-to-name: rules in ascending id; a rule applies when its fingerprint matches the
 * leaf or any certificate in `chain` (leaf first, up to the trust anchor); the map type then derives the name from
 * the leaf; when it yields nothing (e.g. no such SAN), the next rule is tried. san-any takes the first of
 * rfc822Name, dNSName, iPAddress in certificate order. nullopt when no rule yields a name.
 */
std::optional<std::string> certToName(
    const std::vector<CertToNameRule>& rules, const std::vector<CertificateInfo>& chain);
} // namespace callhome::identity
