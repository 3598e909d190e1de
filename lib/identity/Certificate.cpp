#include "identity/Certificate.h"
#include <algorithm>
#include <arpa/inet.h>
#include <array>
#include <climits>
#include <cstring>
#include <ctime>
#include <memory>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <string_view>

namespace callhome::identity {
namespace {
// Everything here parses what a device on the network sent us: every length is checked, every C handle is owned.
struct BioFree {
    void operator()(BIO* p) const noexcept { BIO_free(p); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
struct X509Free {
    void operator()(X509* p) const noexcept { X509_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
struct GeneralNamesFree {
    void operator()(GENERAL_NAMES* p) const noexcept { GENERAL_NAMES_free(p); }
};
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, GeneralNamesFree>;
struct Asn1SequenceAnyFree {
    void operator()(ASN1_SEQUENCE_ANY* p) const noexcept { sk_ASN1_TYPE_pop_free(p, ASN1_TYPE_free); }
};
using Asn1SequenceAnyPtr = std::unique_ptr<ASN1_SEQUENCE_ANY, Asn1SequenceAnyFree>;
struct OpensslFree {
    void operator()(unsigned char* p) const noexcept { OPENSSL_free(p); }
};
using OpensslBytesPtr = std::unique_ptr<unsigned char, OpensslFree>;

constexpr size_t maxTextBytes = 1024;
constexpr int maxSanEntries = 64;
// DER content of OID 1.3.6.1.5.5.7.8.4 (id-on-hardwareModuleName, RFC 4108); OpenSSL 3.0 has no NID for it.
constexpr std::array<unsigned char, 8> hardwareModuleNameOid { 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x04 };

/**
 * Drops the OpenSSL errors a rejected certificate leaves in the per-thread queue, but only those: a caller (e.g.
 * TLS code) may have its own errors queued from before.
 */
struct ErrorQueueGuard {
    ErrorQueueGuard() { ERR_set_mark(); }
    ErrorQueueGuard(const ErrorQueueGuard&) = delete;
    ErrorQueueGuard& operator=(const ErrorQueueGuard&) = delete;
    ~ErrorQueueGuard() { ERR_pop_to_mark(); }
};

/** Strict RFC 3629 UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF; NUL is refused as well. */
bool isValidUtf8(std::string_view s)
{
    size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == 0) {
            return false;
        }
        if (c < 0x80) {
            ++i;
            continue;
        }
        size_t len;
        uint32_t cp;
        uint32_t min;
        if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (s.size() - i < len) {
            return false;
        }
        for (size_t k = 1; k < len; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (cc & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += len;
    }
    return true;
}

std::string checkedText(std::string text, const char* what)
{
    if (text.size() > maxTextBytes) {
        throw CertificateError(std::string(what) + " is longer than " + std::to_string(maxTextBytes) + " bytes");
    }
    if (!isValidUtf8(text)) {
        throw CertificateError(std::string(what) + " is not valid UTF-8");
    }
    return text;
}

std::string bytesOf(const ASN1_STRING* s)
{
    const int len = ASN1_STRING_length(s);
    const unsigned char* data = ASN1_STRING_get0_data(s);
    if (len < 0 || (len > 0 && !data)) {
        throw CertificateError("malformed ASN.1 string");
    }
    return std::string(reinterpret_cast<const char*>(data), static_cast<size_t>(len));
}

/** A directory string (UTF8String, PrintableString, BMPString, ...) decoded to UTF-8. */
std::string stringToUtf8(const ASN1_STRING* s, const char* what)
{
    unsigned char* raw = nullptr;
    const int len = ASN1_STRING_to_UTF8(&raw, s);
    OpensslBytesPtr owned(raw);
    if (len < 0 || (len > 0 && !raw)) {
        throw CertificateError(std::string(what) + " cannot be decoded as text");
    }
    return checkedText(std::string(reinterpret_cast<const char*>(raw), static_cast<size_t>(len)), what);
}

/** IA5String SAN values (rfc822Name, dNSName) must be 7-bit ASCII. */
std::string ia5Text(const ASN1_IA5STRING* s, const char* what)
{
    auto text = bytesOf(s);
    if (std::any_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; })) {
        throw CertificateError(std::string(what) + " is not ASCII");
    }
    return checkedText(std::move(text), what);
}

std::string nameToString(const X509_NAME* name, const char* what)
{
    // Every string attribute must decode to valid UTF-8; non-string attributes are printed as #hex below.
    const int count = X509_NAME_entry_count(name);
    for (int i = 0; i < count; ++i) {
        const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
        if (!data) {
            throw CertificateError(std::string(what) + " has an empty attribute");
        }
        if (ASN1_tag2bit(ASN1_STRING_type(data)) != 0) {
            stringToUtf8(data, what);
        }
    }
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio) {
        throw CertificateError("out of memory");
    }
    // RFC 2253, but non-ASCII stays UTF-8 rather than \XX escapes so operators can read it.
    if (X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
        throw CertificateError(std::string(what) + " cannot be printed");
    }
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio.get(), &data);
    if (len < 0 || (len > 0 && !data)) {
        throw CertificateError(std::string(what) + " cannot be printed");
    }
    return checkedText(std::string(data, static_cast<size_t>(len)), what);
}

/** The single value of `nid` in `name`; `unique` makes a second occurrence an error, else the last one wins. */
std::optional<std::string> nameAttribute(const X509_NAME* name, int nid, const char* what, bool unique)
{
    std::optional<std::string> result;
    for (int i = X509_NAME_get_index_by_NID(name, nid, -1); i >= 0; i = X509_NAME_get_index_by_NID(name, nid, i)) {
        if (result && unique) {
            throw CertificateError(std::string("more than one ") + what + " in the subject");
        }
        const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
        if (!data) {
            throw CertificateError(std::string(what) + " is empty");
        }
        result = stringToUtf8(data, what);
    }
    return result;
}

TimePoint toTimePoint(const ASN1_TIME* t, const char* what)
{
    // ASN1_TIME_to_tm(nullptr, ...) would silently mean "now".
    if (!t) {
        throw CertificateError(std::string("certificate has no ") + what);
    }
    std::tm tm {};
    if (ASN1_TIME_to_tm(t, &tm) != 1) {
        throw CertificateError(std::string("certificate has a malformed ") + what);
    }
    const time_t seconds = timegm(&tm);
    if (seconds == static_cast<time_t>(-1)) {
        throw CertificateError(std::string("certificate ") + what + " is out of range");
    }
    return TimePoint(std::chrono::seconds(seconds));
}

std::string sha256Fingerprint(const X509* cert)
{
    std::array<unsigned char, EVP_MAX_MD_SIZE> md {};
    unsigned int len = 0;
    if (X509_digest(cert, EVP_sha256(), md.data(), &len) != 1 || len != 32) {
        throw CertificateError("cannot compute the certificate's SHA-256 fingerprint");
    }
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out = "SHA256:";
    for (unsigned i = 0; i < len; ++i) {
        if (i) {
            out += ':';
        }
        out += hex[md[i] >> 4];
        out += hex[md[i] & 0xf];
    }
    return out;
}

bool isHardwareModuleName(const ASN1_OBJECT* oid)
{
    const size_t len = OBJ_length(oid);
    const unsigned char* data = OBJ_get0_data(oid);
    return data && len == hardwareModuleNameOid.size()
        && std::memcmp(data, hardwareModuleNameOid.data(), hardwareModuleNameOid.size()) == 0;
}

std::string oidText(const ASN1_OBJECT* oid)
{
    std::array<char, 256> buf {};
    const int len = OBJ_obj2txt(buf.data(), static_cast<int>(buf.size()), oid, 1);
    if (len < 0 || static_cast<size_t>(len) >= buf.size()) {
        throw CertificateError("subjectAltName otherName has an overlong type identifier");
    }
    return std::string(buf.data(), static_cast<size_t>(len));
}

/** hwSerialNum of HardwareModuleName ::= SEQUENCE { hwType OBJECT IDENTIFIER, hwSerialNum OCTET STRING }. */
std::string hardwareModuleSerial(const ASN1_TYPE* value)
{
    if (!value || value->type != V_ASN1_SEQUENCE || !value->value.sequence) {
        throw CertificateError("subjectAltName hardwareModuleName is not a SEQUENCE");
    }
    // For ANY holding a SEQUENCE, OpenSSL keeps the whole DER encoding (tag and length included).
    const ASN1_STRING* der = value->value.sequence;
    const int derLen = ASN1_STRING_length(der);
    const unsigned char* begin = ASN1_STRING_get0_data(der);
    if (!begin || derLen <= 0) {
        throw CertificateError("subjectAltName hardwareModuleName is empty");
    }
    const unsigned char* p = begin;
    Asn1SequenceAnyPtr seq(d2i_ASN1_SEQUENCE_ANY(nullptr, &p, derLen));
    if (!seq || p != begin + derLen) {
        throw CertificateError("subjectAltName hardwareModuleName is malformed");
    }
    if (sk_ASN1_TYPE_num(seq.get()) != 2) {
        throw CertificateError("subjectAltName hardwareModuleName does not have exactly two fields");
    }
    const ASN1_TYPE* hwType = sk_ASN1_TYPE_value(seq.get(), 0);
    const ASN1_TYPE* hwSerial = sk_ASN1_TYPE_value(seq.get(), 1);
    if (!hwType || hwType->type != V_ASN1_OBJECT || !hwSerial || hwSerial->type != V_ASN1_OCTET_STRING
        || !hwSerial->value.octet_string) {
        throw CertificateError("subjectAltName hardwareModuleName is not { OBJECT IDENTIFIER, OCTET STRING }");
    }
    // RFC 4108 leaves the octets' meaning to the manufacturer; we need text for the inventory.
    return checkedText(bytesOf(hwSerial->value.octet_string), "hardwareModuleName hwSerialNum");
}

std::string ipText(const ASN1_OCTET_STRING* ip)
{
    const auto raw = bytesOf(ip);
    std::array<char, INET6_ADDRSTRLEN> buf {};
    int family;
    if (raw.size() == 4) {
        family = AF_INET;
    } else if (raw.size() == 16) {
        family = AF_INET6;
    } else {
        throw CertificateError("subjectAltName iPAddress is neither 4 nor 16 bytes");
    }
    if (!inet_ntop(family, raw.data(), buf.data(), buf.size())) {
        throw CertificateError("subjectAltName iPAddress cannot be printed");
    }
    return buf.data();
}

void readSubjectAltNames(X509* cert, CertificateInfo& info)
{
    int critical = 0;
    GeneralNamesPtr names(
        static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, &critical, nullptr)));
    if (!names) {
        if (critical == -1) {
            return; // no subjectAltName
        }
        throw CertificateError(critical == -2 ? "certificate has more than one subjectAltName extension"
                                              : "certificate has a malformed subjectAltName extension");
    }
    const int count = sk_GENERAL_NAME_num(names.get());
    if (count > maxSanEntries) {
        throw CertificateError(
            "certificate has more than " + std::to_string(maxSanEntries) + " subjectAltName entries");
    }
    for (int i = 0; i < count; ++i) {
        const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
        if (!gn) {
            throw CertificateError("certificate has a malformed subjectAltName entry");
        }
        switch (gn->type) {
        case GEN_EMAIL:
            info.subjectAltNames.push_back({ SanEntry::Type::Rfc822Name, ia5Text(gn->d.rfc822Name, "rfc822Name") });
            break;
        case GEN_DNS:
            info.subjectAltNames.push_back({ SanEntry::Type::DnsName, ia5Text(gn->d.dNSName, "dNSName") });
            break;
        case GEN_IPADD:
            info.subjectAltNames.push_back({ SanEntry::Type::IpAddress, ipText(gn->d.iPAddress) });
            break;
        case GEN_OTHERNAME: {
            const OTHERNAME* other = gn->d.otherName;
            if (!other || !other->type_id) {
                throw CertificateError("certificate has a malformed subjectAltName otherName");
            }
            if (!isHardwareModuleName(other->type_id)) {
                info.subjectAltNames.push_back({ SanEntry::Type::OtherName, oidText(other->type_id) });
                break;
            }
            auto serial = hardwareModuleSerial(other->value);
            if (info.hardwareModuleSerial && *info.hardwareModuleSerial != serial) {
                throw CertificateError("certificate has two hardwareModuleName entries with different serials");
            }
            info.hardwareModuleSerial = serial;
            info.subjectAltNames.push_back({ SanEntry::Type::HardwareModuleName, std::move(serial) });
            break;
        }
        default:
            break; // URI, directoryName, ...: no map type or serial source uses them
        }
    }
}

bool verifiesWithOwnKey(X509* cert)
{
    EVP_PKEY* key = X509_get0_pubkey(cert); // borrowed from the certificate
    return key && X509_verify(cert, key) == 1;
}

std::string lower(std::string s)
{
    std::transform(s.begin(), s.end(), s.begin(),
        [](unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c); });
    return s;
}

bool equalsIgnoreCase(const std::string& a, const std::string& b)
{
    return a.size() == b.size() && lower(a) == lower(b);
}

// RFC 7407's mappings: rfc822Name with its host part in lower case, dNSName in lower case, IPv4 dotted quad,
// IPv6 as 32 lower-case hex digits without colons.
std::string mapSan(const SanEntry& san)
{
    switch (san.type) {
    case SanEntry::Type::Rfc822Name: {
        const auto at = san.value.rfind('@');
        if (at == std::string::npos) {
            return san.value;
        }
        return san.value.substr(0, at + 1) + lower(san.value.substr(at + 1));
    }
    case SanEntry::Type::DnsName:
        return lower(san.value);
    case SanEntry::Type::IpAddress: {
        std::array<unsigned char, 16> raw {};
        if (inet_pton(AF_INET6, san.value.c_str(), raw.data()) != 1) {
            return san.value;
        }
        static constexpr char hex[] = "0123456789abcdef";
        std::string out;
        for (auto b : raw) {
            out += hex[b >> 4];
            out += hex[b & 0xf];
        }
        return out;
    }
    default:
        return san.value;
    }
}

std::optional<std::string> firstSan(const CertificateInfo& leaf, std::initializer_list<SanEntry::Type> types)
{
    for (const auto& san : leaf.subjectAltNames) {
        if (std::find(types.begin(), types.end(), san.type) != types.end()) {
            return mapSan(san);
        }
    }
    return std::nullopt;
}

std::optional<std::string> mapName(const CertToNameRule& rule, const CertificateInfo& leaf)
{
    switch (rule.mapType) {
    case MapType::Specified:
        return rule.name;
    case MapType::SanRfc822Name:
        return firstSan(leaf, { SanEntry::Type::Rfc822Name });
    case MapType::SanDnsName:
        return firstSan(leaf, { SanEntry::Type::DnsName });
    case MapType::SanIpAddress:
        return firstSan(leaf, { SanEntry::Type::IpAddress });
    case MapType::SanAny:
        return firstSan(leaf, { SanEntry::Type::Rfc822Name, SanEntry::Type::DnsName, SanEntry::Type::IpAddress });
    case MapType::CommonName:
        return leaf.commonName;
    }
    return std::nullopt;
}
} // namespace

CertificateInfo inspect(x509_st* certificate)
{
    if (!certificate) {
        throw CertificateError("no certificate");
    }
    ErrorQueueGuard clearErrors;
    CertificateInfo info;
    const X509_NAME* subject = X509_get_subject_name(certificate);
    const X509_NAME* issuer = X509_get_issuer_name(certificate);
    if (!subject || !issuer) {
        throw CertificateError("certificate has no subject or issuer");
    }
    info.subject = nameToString(subject, "subject");
    info.issuer = nameToString(issuer, "issuer");
    info.fingerprint = sha256Fingerprint(certificate);
    info.subjectSerialNumber = nameAttribute(subject, NID_serialNumber, "serialNumber", true);
    // Several CNs are legal; like RFC 6125 we take the most specific (last) one.
    info.commonName = nameAttribute(subject, NID_commonName, "commonName", false);
    readSubjectAltNames(certificate, info);
    info.notBefore = toTimePoint(X509_get0_notBefore(certificate), "notBefore");
    info.notAfter = toTimePoint(X509_get0_notAfter(certificate), "notAfter");
    info.selfSigned = X509_NAME_cmp(subject, issuer) == 0 && verifiesWithOwnKey(certificate);
    return info;
}

CertificateInfo inspectPem(const std::string& pem)
{
    if (pem.size() > static_cast<size_t>(INT_MAX)) {
        throw CertificateError("PEM text is too large");
    }
    ErrorQueueGuard clearErrors;
    BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio) {
        throw CertificateError("out of memory");
    }
    // A certificate is never encrypted; the callback keeps OpenSSL from prompting on a terminal.
    X509Ptr cert(PEM_read_bio_X509(
        bio.get(), nullptr, [](char*, int, int, void*) noexcept { return 0; }, nullptr));
    if (!cert) {
        throw CertificateError("no PEM certificate found");
    }
    return inspect(cert.get());
}

SerialSource serialSourceFromString(const std::string& s)
{
    if (s == "subject-serial-number") {
        return SerialSource::SubjectSerialNumber;
    }
    if (s == "hardware-module-name") {
        return SerialSource::HardwareModuleName;
    }
    if (s == "common-name") {
        return SerialSource::CommonName;
    }
    throw UsageError(
        "unknown serial source \"" + s + "\" (expected subject-serial-number, hardware-module-name or common-name)");
}

std::string toString(SerialSource s)
{
    switch (s) {
    case SerialSource::SubjectSerialNumber:
        return "subject-serial-number";
    case SerialSource::HardwareModuleName:
        return "hardware-module-name";
    case SerialSource::CommonName:
        return "common-name";
    }
    return "?";
}

std::string deviceSerial(const CertificateInfo& leaf, SerialSource source)
{
    const std::optional<std::string>* field = nullptr;
    switch (source) {
    case SerialSource::SubjectSerialNumber:
        field = &leaf.subjectSerialNumber;
        break;
    case SerialSource::HardwareModuleName:
        field = &leaf.hardwareModuleSerial;
        break;
    case SerialSource::CommonName:
        field = &leaf.commonName;
        break;
    }
    if (!field || !*field || (*field)->empty()) {
        throw CertificateError("certificate has no serial number in " + toString(source) + " (" + leaf.subject + ")");
    }
    return **field;
}

MapType mapTypeFromString(const std::string& s)
{
    for (auto t : { MapType::Specified, MapType::SanRfc822Name, MapType::SanDnsName, MapType::SanIpAddress,
             MapType::SanAny, MapType::CommonName }) {
        if (toString(t) == s) {
            return t;
        }
    }
    throw UsageError("unknown cert-to-name map type \"" + s
        + "\" (expected specified, san-rfc822-name, san-dns-name, san-ip-address, san-any or "
          "common-name)");
}

std::string toString(MapType t)
{
    switch (t) {
    case MapType::Specified:
        return "specified";
    case MapType::SanRfc822Name:
        return "san-rfc822-name";
    case MapType::SanDnsName:
        return "san-dns-name";
    case MapType::SanIpAddress:
        return "san-ip-address";
    case MapType::SanAny:
        return "san-any";
    case MapType::CommonName:
        return "common-name";
    }
    return "?";
}

std::optional<std::string> certToName(
    const std::vector<CertToNameRule>& rules, const std::vector<CertificateInfo>& chain)
{
    if (chain.empty()) {
        return std::nullopt;
    }
    std::vector<const CertToNameRule*> ordered;
    ordered.reserve(rules.size());
    for (const auto& r : rules) {
        ordered.push_back(&r);
    }
    std::stable_sort(ordered.begin(), ordered.end(), [](auto* a, auto* b) { return a->id < b->id; });
    for (const auto* rule : ordered) {
        const bool applies = std::any_of(chain.begin(), chain.end(),
            [&](const CertificateInfo& c) { return equalsIgnoreCase(c.fingerprint, rule->fingerprint); });
        if (!applies) {
            continue;
        }
        if (auto name = mapName(*rule, chain.front()); name && !name->empty()) {
            return name;
        }
    }
    return std::nullopt;
}
} // namespace callhome::identity
