// Certificate identity extraction against real certificates: the dev-pki test PKI (scripts/dev-pki) and
// malformed certificates made here with the openssl command.
#include "ScratchDir.h"
#include "identity/Certificate.h"
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

using namespace callhome;
using namespace callhome::identity;
namespace fs = std::filesystem;

namespace {
struct X509Free {
    void operator()(X509* p) const noexcept { X509_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
struct PipeClose {
    void operator()(FILE* f) const noexcept { pclose(f); }
};

using callhome::test::ScratchDir;

std::string quote(const std::string& s)
{
    std::string out = "'";
    for (char c : s) {
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    return out + "'";
}

/** Runs a shell command; throws with its output when it fails. */
std::string sh(const std::string& command)
{
    std::unique_ptr<FILE, PipeClose> pipe(popen((command + " 2>&1").c_str(), "r"));
    if (!pipe) {
        throw std::runtime_error("popen failed: " + command);
    }
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, pipe.get())) > 0) {
        out.append(buf, n);
    }
    const int status = pclose(pipe.release());
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        throw std::runtime_error("command failed: " + command + "\n" + out);
    }
    return out;
}

std::string readFile(const fs::path& p)
{
    std::ifstream in(p, std::ios::binary);
    if (!in) {
        throw std::runtime_error("cannot read " + p.string());
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void writeFile(const fs::path& p, const std::string& content)
{
    std::ofstream out(p, std::ios::binary);
    out << content;
    if (!out) {
        throw std::runtime_error("cannot write " + p.string());
    }
}

/** The test PKI, made once per test run by the real script and removed at exit. */
const fs::path& pki()
{
    static const auto dir = [] {
        auto d = std::make_unique<ScratchDir>();
        sh(quote(std::string(CALLHOME_SOURCE_DIR) + "/scripts/dev-pki") + " " + quote((d->path / "pki").string()));
        return d;
    }();
    static const fs::path path = dir->path / "pki";
    return path;
}

CertificateInfo load(const std::string& relative)
{
    return inspectPem(readFile(pki() / relative));
}

std::string opensslFingerprint(const fs::path& pem)
{
    auto out = sh("openssl x509 -noout -fingerprint -sha256 -in " + quote(pem.string()));
    auto eq = out.find('=');
    REQUIRE(eq != std::string::npos);
    out = out.substr(eq + 1);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) {
        out.pop_back();
    }
    return out;
}

TimePoint utc(int64_t seconds)
{
    return TimePoint(std::chrono::seconds(seconds));
}
constexpr int64_t year9999End = 253402300799; // 9999-12-31T23:59:59Z
constexpr int64_t jan2024 = 1704067200;

/** Makes self-signed test certificates with openssl in a temp dir. */
class CertFactory {
public:
    CertFactory()
    {
        // Our own minimal config: utf8only makes every subject attribute a UTF8String.
        writeFile(m_dir.path / "req.cnf", "[ req ]\ndistinguished_name = dn\nstring_mask = utf8only\n[ dn ]\n");
    }
    /** Returns the PEM file of a new self-signed certificate; `extra` is appended to `openssl req`. */
    fs::path make(const std::string& name, const std::string& subject, const std::string& extra = "")
    {
        auto pem = m_dir.path / (name + ".pem");
        sh("openssl req -x509 -new -config " + quote((m_dir.path / "req.cnf").string())
            + " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "
            + quote((m_dir.path / (name + ".key")).string()) + " -out " + quote(pem.string()) + " -days 30 -subj "
            + quote(subject) + " " + extra);
        return pem;
    }
    /** As make(), with extensions from an extra config file holding section [ext] (and whatever it refers to). */
    fs::path makeWithExtensions(const std::string& name, const std::string& subject, const std::string& extConfig)
    {
        auto cnf = m_dir.path / (name + ".cnf");
        writeFile(cnf, "[ req ]\ndistinguished_name = dn\nstring_mask = utf8only\n[ dn ]\n" + extConfig);
        auto pem = m_dir.path / (name + ".pem");
        sh("openssl req -x509 -new -config " + quote(cnf.string()) + " -extensions ext"
            + " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "
            + quote((m_dir.path / (name + ".key")).string()) + " -out " + quote(pem.string()) + " -days 30 -subj "
            + quote(subject));
        return pem;
    }
    std::string der(const fs::path& pem)
    {
        auto out = pem;
        out.replace_extension(".der");
        sh("openssl x509 -in " + quote(pem.string()) + " -outform DER -out " + quote(out.string()));
        return readFile(out);
    }

private:
    ScratchDir m_dir;
};

/** DER to PEM text, so patched certificates go through inspectPem() like any caller's input. */
std::string toPem(const std::string& der)
{
    std::string b64(4 * ((der.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
        reinterpret_cast<const unsigned char*>(der.data()), static_cast<int>(der.size()));
    b64.resize(static_cast<size_t>(n));
    std::string pem = "-----BEGIN CERTIFICATE-----\n";
    for (size_t i = 0; i < b64.size(); i += 64) {
        pem += b64.substr(i, 64) + "\n";
    }
    return pem + "-----END CERTIFICATE-----\n";
}

/** Replaces every occurrence of `from` by the same-length `to`; returns how many. */
int patchAll(std::string& der, const std::string& from, const std::string& to)
{
    REQUIRE(from.size() == to.size());
    int count = 0;
    for (auto p = der.find(from); p != std::string::npos; p = der.find(from, p + to.size())) {
        der.replace(p, from.size(), to);
        ++count;
    }
    return count;
}
} // namespace

namespace callhome::identity {
// for comparing SAN lists in tests; found by ADL from std::vector's operator==
static bool operator==(const SanEntry& a, const SanEntry& b)
{
    return a.type == b.type && a.value == b.value;
}
} // namespace callhome::identity

namespace Catch {
template<>
struct StringMaker<SanEntry> {
    static std::string convert(const SanEntry& e) { return std::to_string(static_cast<int>(e.type)) + ":" + e.value; }
};
} // namespace Catch

TEST_CASE("dev-pki IDevIDs with the serial in the subject")
{
    struct Expected {
        std::string dir, serial, cn;
    };
    for (const auto& e :
        { Expected { "sn-0001", "SN0001", "router-sn0001" }, Expected { "revoked-0004", "SN0004", "router-revoked" },
            Expected { "unknown-0005", "SN0005", "router-unknown" } }) {
        INFO(e.dir);
        auto info = load("devices/" + e.dir + "/cert.pem");
        CHECK(info.subject == "CN=" + e.cn + ",serialNumber=" + e.serial + ",O=Example Networks");
        CHECK(info.issuer == "CN=Example Networks IDevID CA,O=Example Networks");
        CHECK(info.subjectSerialNumber == e.serial);
        CHECK(info.commonName == e.cn);
        CHECK_FALSE(info.hardwareModuleSerial);
        CHECK(info.subjectAltNames.empty());
        CHECK_FALSE(info.selfSigned);
        CHECK(info.notBefore == utc(jan2024));
        CHECK(info.notAfter == utc(year9999End));
        CHECK(toIso8601(info.notAfter).substr(0, 4) == "9999");
        CHECK(deviceSerial(info, SerialSource::SubjectSerialNumber) == e.serial);
        CHECK(deviceSerial(info, SerialSource::CommonName) == e.cn);
        CHECK_THROWS_AS(deviceSerial(info, SerialSource::HardwareModuleName), CertificateError);
        // chain.pem starts with the leaf
        CHECK(inspectPem(readFile(pki() / "devices" / e.dir / "chain.pem")).fingerprint == info.fingerprint);
    }
}

TEST_CASE("dev-pki IDevID with the serial in a hardwareModuleName SAN")
{
    auto info = load("devices/hwmn-0002/cert.pem");
    CHECK(info.subject == "CN=switch-hwmn,O=Example Networks");
    CHECK_FALSE(info.subjectSerialNumber);
    CHECK(info.hardwareModuleSerial == "SN0002");
    CHECK(info.commonName == "switch-hwmn");
    CHECK(info.subjectAltNames
        == std::vector<SanEntry> { { SanEntry::Type::HardwareModuleName, "SN0002" },
            { SanEntry::Type::DnsName, "switch-hwmn.example.net" },
            { SanEntry::Type::Rfc822Name, "ops@example.net" } });
    CHECK(info.notAfter == utc(year9999End));
    CHECK(deviceSerial(info, SerialSource::HardwareModuleName) == "SN0002");
    CHECK_THROWS_AS(deviceSerial(info, SerialSource::SubjectSerialNumber), CertificateError);
}

TEST_CASE("dev-pki other certificates")
{
    auto expired = load("devices/expired-0003/cert.pem");
    CHECK(expired.subjectSerialNumber == "SN0003");
    CHECK(expired.notBefore == utc(1577836800)); // 2020-01-01
    CHECK(expired.notAfter == utc(1609459200)); // 2021-01-01

    auto self = load("devices/selfsigned/cert.pem");
    CHECK(self.selfSigned);
    CHECK(self.subject == "CN=selfsigned-device,serialNumber=SN0006");
    CHECK(self.issuer == self.subject);
    CHECK(self.subjectSerialNumber == "SN0006");

    auto other = load("devices/other-ca-0007/cert.pem");
    CHECK(other.subjectSerialNumber == "SN0007");
    CHECK(other.issuer == "CN=Unrelated CA,O=Unrelated Corp");
    CHECK_FALSE(other.selfSigned);

    auto station = load("station/cert.pem");
    CHECK(station.commonName == "callhome-station");
    CHECK(station.issuer == "CN=callhome Station CA,O=Example Operator");
    CHECK_FALSE(station.selfSigned);
    CHECK(load("trust-store/station/cert.pem").fingerprint == station.fingerprint);

    for (const char* ca : { "manufacturer/ca.pem", "other-ca/ca.pem", "station-ca/ca.pem" }) {
        INFO(ca);
        auto info = load(ca);
        CHECK(info.selfSigned);
        CHECK(info.subject == info.issuer);
        CHECK_FALSE(info.subjectSerialNumber);
    }
    CHECK(load("manufacturer/ca.pem").subject == "CN=Example Networks IDevID CA,O=Example Networks");
    CHECK(load("trust-store/manufacturers/example/ca.pem").fingerprint == load("manufacturer/ca.pem").fingerprint);
}

TEST_CASE("fingerprints equal openssl's")
{
    for (const char* f : { "manufacturer/ca.pem", "devices/sn-0001/cert.pem", "devices/hwmn-0002/cert.pem",
             "devices/expired-0003/cert.pem", "devices/revoked-0004/cert.pem", "devices/unknown-0005/cert.pem",
             "devices/selfsigned/cert.pem", "devices/other-ca-0007/cert.pem", "other-ca/ca.pem", "station-ca/ca.pem",
             "station/cert.pem" }) {
        INFO(f);
        auto info = load(f);
        CHECK(info.fingerprint == "SHA256:" + opensslFingerprint(pki() / f));
        CHECK(info.fingerprint.size() == 7 + 32 * 3 - 1);
    }
    CHECK(load("devices/sn-0001/cert.pem").fingerprint != load("devices/unknown-0005/cert.pem").fingerprint);
}

TEST_CASE("malformed certificates")
{
    CertFactory f;

    SECTION("no serial anywhere")
    {
        auto info = inspectPem(readFile(f.make("noserial", "/O=Example/CN=noserial")));
        CHECK_FALSE(info.subjectSerialNumber);
        CHECK_THROWS_AS(deviceSerial(info, SerialSource::SubjectSerialNumber), CertificateError);
        CHECK_THROWS_AS(deviceSerial(info, SerialSource::HardwareModuleName), CertificateError);
        CHECK(deviceSerial(info, SerialSource::CommonName) == "noserial");
    }

    SECTION("no common name, empty serial")
    {
        auto info = inspectPem(readFile(f.make("nocn", "/serialNumber=SN1")));
        CHECK_FALSE(info.commonName);
        CHECK_THROWS_AS(deviceSerial(info, SerialSource::CommonName), CertificateError);
        // openssl skips empty -subj values, so an empty serial is checked on the parsed form
        info.subjectSerialNumber = "";
        CHECK_THROWS_AS(deviceSerial(info, SerialSource::SubjectSerialNumber), CertificateError);
    }

    SECTION("two serialNumber attributes")
    {
        auto pem = readFile(f.make("twoserials", "/serialNumber=SN1/serialNumber=SN2/CN=twice"));
        CHECK_THROWS_AS(inspectPem(pem), CertificateError);
        // the same serial twice is just as ambiguous about intent: refused too
        CHECK_THROWS_AS(
            inspectPem(readFile(f.make("sameserial", "/serialNumber=SN1/serialNumber=SN1"))), CertificateError);
    }

    SECTION("non-UTF-8 text in the subject")
    {
        // openssl validates -utf8 input and converts latin-1 input to valid UTF-8, so it cannot make a truly
        // invalid UTF8String. We make a certificate whose CN is the UTF8String "BADUTF8XX" and overwrite those
        // 9 bytes in the DER with invalid sequences (same length, so the DER stays well-formed; the signature
        // no longer verifies, which inspect() does not check for a CA-issued certificate).
        // Finding: OpenSSL 3 canonicalises names while parsing (d2i) and itself refuses every invalid UTF-8
        // sequence except NUL, which it accepts; inspect() refuses that one. Either way the caller gets
        // CertificateError.
        auto der = f.der(f.make("badutf8", "/serialNumber=SN9/CN=BADUTF8XX"));
        const std::string marker = "BADUTF8XX";
        REQUIRE(patchAll(der, marker, marker) == 2); // subject and issuer of the self-signed certificate
        const auto pos = der.find(marker);
        REQUIRE(pos >= 2);
        REQUIRE(static_cast<unsigned char>(der[pos - 2]) == 0x0c); // UTF8String tag
        REQUIRE(static_cast<unsigned char>(der[pos - 1]) == marker.size());
        CHECK(inspectPem(toPem(der)).commonName == marker); // the unpatched DER round-trips through our PEM
        for (std::string bad : { std::string("ab\xc3\x28"
                                             "cdefg"),
                 std::string("abc\xc0\xaf"
                             "defg"),
                 std::string("ab\xed\xa0\x80"
                             "defg"),
                 std::string("abcdefgh\xf0"),
                 std::string("abcd\xff\xfe"
                             "efg"),
                 std::string("abc\xf4\x90\x80\x80"
                             "de"),
                 std::string("abc\0defgh", 9) }) {
            REQUIRE(bad.size() == marker.size());
            auto patched = der;
            patchAll(patched, marker, bad);
            CHECK_THROWS_AS(inspectPem(toPem(patched)), CertificateError);
        }
        auto withNul = der;
        patchAll(withNul, marker, std::string("abc\0defgh", 9));
        auto p = reinterpret_cast<const unsigned char*>(withNul.data());
        X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(withNul.size())));
        REQUIRE(cert); // OpenSSL parses it ...
        CHECK_THROWS_AS(inspect(cert.get()), CertificateError); // ... we refuse it
    }

    SECTION("non-ASCII bytes in IA5String SANs")
    {
        // OpenSSL does not check IA5String contents while parsing; same DER patching as above.
        auto der = f.der(
            f.make("baddns", "/CN=x", "-addext subjectAltName=DNS:BADDNSXX.example.net,email:BADMAILX@example.net"));
        CHECK(inspectPem(toPem(der)).subjectAltNames.size() == 2);
        auto dns = der;
        REQUIRE(patchAll(dns, "BADDNSXX",
                    "bad\xc3\xa9"
                    "dns")
            == 1);
        CHECK_THROWS_AS(inspectPem(toPem(dns)), CertificateError);
        auto mail = der;
        REQUIRE(patchAll(mail, "BADMAILX", "bad\xffmail") == 1);
        CHECK_THROWS_AS(inspectPem(toPem(mail)), CertificateError);
    }

    SECTION("valid non-ASCII UTF-8 stays readable")
    {
        auto info = inspectPem(readFile(f.make("zurich", "/serialNumber=SN10/CN=Z\xc3\xbcrich", "-utf8")));
        CHECK(info.commonName == "Z\xc3\xbcrich");
        CHECK(info.subject == "CN=Z\xc3\xbcrich,serialNumber=SN10");
    }

    SECTION("too many subjectAltName entries")
    {
        std::string san = "subjectAltName=";
        for (int i = 0; i < 200; ++i) {
            san += (i ? ",DNS:host" : "DNS:host") + std::to_string(i) + ".example.net";
        }
        CHECK_THROWS_AS(
            inspectPem(readFile(f.make("hugesan", "/serialNumber=SN1", "-addext " + quote(san)))), CertificateError);

        san = "subjectAltName=DNS:h0.example.net";
        for (int i = 1; i < 64; ++i) {
            san += ",DNS:h" + std::to_string(i) + ".example.net";
        }
        CHECK(inspectPem(readFile(f.make("sixtyfour", "/serialNumber=SN1", "-addext " + quote(san))))
                  .subjectAltNames.size()
            == 64);
    }

    SECTION("text longer than 1024 bytes")
    {
        std::string label(60, 'a');
        std::string name = label;
        while (name.size() <= 1024) {
            name += "." + label;
        }
        CHECK_THROWS_AS(
            inspectPem(readFile(f.make("longdns", "/serialNumber=SN1", "-addext subjectAltName=DNS:" + name))),
            CertificateError);
    }

    SECTION("otherName of another type is not a hardware module name")
    {
        auto info = inspectPem(readFile(f.make("othername", "/CN=other",
            "-addext " + quote("subjectAltName=otherName:1.3.6.1.4.1.99999.9;UTF8:SN0009,DNS:other.example.net"))));
        CHECK_FALSE(info.hardwareModuleSerial);
        CHECK(info.subjectAltNames
            == std::vector<SanEntry> { { SanEntry::Type::OtherName, "1.3.6.1.4.1.99999.9" },
                { SanEntry::Type::DnsName, "other.example.net" } });
        CHECK_THROWS_AS(deviceSerial(info, SerialSource::HardwareModuleName), CertificateError);
    }

    SECTION("hardwareModuleName variants")
    {
        const std::string ext = "[ ext ]\nsubjectAltName = @alt\n";
        auto hmn = [](const std::string& section, const std::string& serial) {
            return "[ " + section + " ]\nhwType = OID:1.3.6.1.4.1.99999.1\nhwSerialNum = " + serial + "\n";
        };
        auto twoSame = f.makeWithExtensions("hmn-same", "/CN=x",
            ext + "[ alt ]\notherName.1 = 1.3.6.1.5.5.7.8.4;SEQUENCE:a\notherName.2 = 1.3.6.1.5.5.7.8.4;SEQUENCE:b\n"
                + hmn("a", "OCTETSTRING:SN7") + hmn("b", "OCTETSTRING:SN7"));
        CHECK(deviceSerial(inspectPem(readFile(twoSame)), SerialSource::HardwareModuleName) == "SN7");

        auto twoDifferent = f.makeWithExtensions("hmn-diff", "/CN=x",
            ext + "[ alt ]\notherName.1 = 1.3.6.1.5.5.7.8.4;SEQUENCE:a\notherName.2 = 1.3.6.1.5.5.7.8.4;SEQUENCE:b\n"
                + hmn("a", "OCTETSTRING:SN7") + hmn("b", "OCTETSTRING:SN8"));
        CHECK_THROWS_AS(inspectPem(readFile(twoDifferent)), CertificateError);

        auto wrongType = f.makeWithExtensions(
            "hmn-utf8", "/CN=x", ext + "[ alt ]\notherName.1 = 1.3.6.1.5.5.7.8.4;SEQUENCE:a\n" + hmn("a", "UTF8:SN7"));
        CHECK_THROWS_AS(inspectPem(readFile(wrongType)), CertificateError);

        auto extraField = f.makeWithExtensions("hmn-extra", "/CN=x",
            ext + "[ alt ]\notherName.1 = 1.3.6.1.5.5.7.8.4;SEQUENCE:a\n" + hmn("a", "OCTETSTRING:SN7")
                + "extra = INTEGER:1\n");
        CHECK_THROWS_AS(inspectPem(readFile(extraField)), CertificateError);

        auto notSequence
            = f.makeWithExtensions("hmn-notseq", "/CN=x", ext + "[ alt ]\notherName.1 = 1.3.6.1.5.5.7.8.4;UTF8:SN7\n");
        CHECK_THROWS_AS(inspectPem(readFile(notSequence)), CertificateError);

        auto binary = f.makeWithExtensions("hmn-binary", "/CN=x",
            ext + "[ alt ]\notherName.1 = 1.3.6.1.5.5.7.8.4;SEQUENCE:a\n" + hmn("a", "FORMAT:HEX,OCTETSTRING:53FF30"));
        CHECK_THROWS_AS(inspectPem(readFile(binary)), CertificateError);

        auto empty = f.makeWithExtensions("hmn-empty", "/CN=x",
            ext + "[ alt ]\notherName.1 = 1.3.6.1.5.5.7.8.4;SEQUENCE:a\n" + hmn("a", "OCTETSTRING:"));
        auto info = inspectPem(readFile(empty));
        CHECK(info.hardwareModuleSerial == "");
        CHECK_THROWS_AS(deviceSerial(info, SerialSource::HardwareModuleName), CertificateError);
    }

    SECTION("IP address SANs")
    {
        auto info = inspectPem(
            readFile(f.make("ips", "/CN=ips", "-addext subjectAltName=IP:192.0.2.7,IP:2001:DB8:0:0:0:0:0:1")));
        CHECK(info.subjectAltNames
            == std::vector<SanEntry> {
                { SanEntry::Type::IpAddress, "192.0.2.7" }, { SanEntry::Type::IpAddress, "2001:db8::1" } });
    }

    SECTION("not a certificate")
    {
        CHECK_THROWS_AS(inspectPem(""), CertificateError);
        CHECK_THROWS_AS(inspectPem("hello"), CertificateError);
        CHECK_THROWS_AS(inspectPem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), CertificateError);
        CHECK_THROWS_AS(
            inspectPem("-----BEGIN CERTIFICATE-----\nMIIBkTCB+w==\n-----END CERTIFICATE-----\n"), CertificateError);
        CHECK_THROWS_AS(inspectPem(readFile(pki() / "devices/sn-0001/key.pem")), CertificateError);
        CHECK_THROWS_AS(inspect(nullptr), CertificateError);
        // a truncated DER certificate
        auto der = f.der(pki() / "devices/sn-0001/cert.pem");
        auto p = reinterpret_cast<const unsigned char*>(der.data());
        CHECK_FALSE(X509Ptr(d2i_X509(nullptr, &p, static_cast<long>(der.size() / 2))));
    }
}

TEST_CASE("serial sources and map types as text")
{
    for (auto s : { SerialSource::SubjectSerialNumber, SerialSource::HardwareModuleName, SerialSource::CommonName }) {
        CHECK(serialSourceFromString(toString(s)) == s);
    }
    CHECK(toString(SerialSource::HardwareModuleName) == "hardware-module-name");
    CHECK_THROWS_AS(serialSourceFromString("serial"), UsageError);
    for (auto t : { MapType::Specified, MapType::SanRfc822Name, MapType::SanDnsName, MapType::SanIpAddress,
             MapType::SanAny, MapType::CommonName }) {
        CHECK(mapTypeFromString(toString(t)) == t);
    }
    CHECK(toString(MapType::SanIpAddress) == "san-ip-address");
    CHECK_THROWS_AS(mapTypeFromString("SAN-ANY"), UsageError);
}

TEST_CASE("cert-to-name")
{
    const std::vector<CertificateInfo> hwmnChain { load("devices/hwmn-0002/cert.pem"), load("manufacturer/ca.pem") };
    const std::vector<CertificateInfo> snChain { load("devices/sn-0001/cert.pem"), load("manufacturer/ca.pem") };
    const auto& leaf = hwmnChain[0].fingerprint;
    const auto& ca = hwmnChain[1].fingerprint;
    const auto otherCa = load("other-ca/ca.pem").fingerprint;

    SECTION("each map type")
    {
        std::map<MapType, std::optional<std::string>> expected {
            { MapType::Specified, "given-name" },
            { MapType::SanRfc822Name, "ops@example.net" },
            { MapType::SanDnsName, "switch-hwmn.example.net" },
            { MapType::SanIpAddress, std::nullopt },
            { MapType::SanAny, "switch-hwmn.example.net" }, // the DNS name comes before the email in the certificate
            { MapType::CommonName, "switch-hwmn" },
        };
        for (const auto& [type, name] : expected) {
            INFO(toString(type));
            CHECK(certToName({ { 1, ca, type, "given-name" } }, hwmnChain) == name);
        }
    }

    SECTION("rules in ascending id, whatever their order in the list")
    {
        CHECK(
            certToName({ { 20, leaf, MapType::Specified, "twenty" }, { 10, leaf, MapType::CommonName, "" } }, hwmnChain)
            == "switch-hwmn");
        CHECK(certToName({ { 10, leaf, MapType::Specified, "ten" }, { 20, leaf, MapType::CommonName, "" } }, hwmnChain)
            == "ten");
    }

    SECTION("a rule that yields nothing falls through")
    {
        std::vector<CertToNameRule> rules { { 1, ca, MapType::SanDnsName, "" }, { 2, ca, MapType::SanIpAddress, "" },
            { 3, ca, MapType::Specified, "" }, { 4, ca, MapType::CommonName, "" } };
        CHECK(certToName(rules, snChain) == "router-sn0001");
        CHECK(certToName(rules, hwmnChain) == "switch-hwmn.example.net");
    }

    SECTION("fingerprint of the leaf or of a CA in the chain")
    {
        CHECK(certToName({ { 1, leaf, MapType::Specified, "by-leaf" } }, hwmnChain) == "by-leaf");
        CHECK_FALSE(certToName({ { 1, leaf, MapType::Specified, "by-leaf" } }, snChain)); // another device's leaf
        CHECK(certToName({ { 1, ca, MapType::Specified, "by-ca" } }, snChain) == "by-ca");
        CHECK_FALSE(certToName({ { 1, otherCa, MapType::CommonName, "" } }, snChain));
        // the CA rule applies to every device it issued; a leaf rule with a lower id wins for that one device
        std::vector<CertToNameRule> rules { { 5, ca, MapType::CommonName, "" },
            { 1, leaf, MapType::Specified, "pinned" } };
        CHECK(certToName(rules, hwmnChain) == "pinned");
        CHECK(certToName(rules, snChain) == "router-sn0001");
    }

    SECTION("fingerprints compare case-insensitively")
    {
        std::string lowerCa = ca;
        std::transform(
            lowerCa.begin(), lowerCa.end(), lowerCa.begin(), [](unsigned char c) { return std::tolower(c); });
        CHECK(certToName({ { 1, lowerCa, MapType::CommonName, "" } }, snChain) == "router-sn0001");
        CHECK_FALSE(certToName({ { 1, ca.substr(0, ca.size() - 3), MapType::CommonName, "" } }, snChain));
    }

    SECTION("no match")
    {
        CHECK_FALSE(certToName({}, snChain));
        CHECK_FALSE(certToName({ { 1, ca, MapType::CommonName, "" } }, {}));
        CHECK_FALSE(certToName({ { 1, ca, MapType::SanDnsName, "" } }, snChain));
    }

    SECTION("RFC 7407 value formats")
    {
        CertificateInfo synthetic;
        synthetic.fingerprint = "SHA256:01";
        synthetic.subjectAltNames
            = { { SanEntry::Type::OtherName, "1.2.3" }, { SanEntry::Type::HardwareModuleName, "SN1" },
                  { SanEntry::Type::IpAddress, "2001:db8::1" }, { SanEntry::Type::Rfc822Name, "Ops@Example.NET" },
                  { SanEntry::Type::DnsName, "Switch.Example.NET" }, { SanEntry::Type::IpAddress, "192.0.2.7" } };
        const std::vector<CertificateInfo> chain { synthetic };
        CHECK(certToName({ { 1, "sha256:01", MapType::SanRfc822Name, "" } }, chain) == "Ops@example.net");
        CHECK(certToName({ { 1, "SHA256:01", MapType::SanDnsName, "" } }, chain) == "switch.example.net");
        CHECK(
            certToName({ { 1, "SHA256:01", MapType::SanIpAddress, "" } }, chain) == "20010db8000000000000000000000001");
        CHECK(certToName({ { 1, "SHA256:01", MapType::SanAny, "" } }, chain) == "20010db8000000000000000000000001");
        synthetic.subjectAltNames.erase(synthetic.subjectAltNames.begin() + 2);
        CHECK(certToName({ { 1, "SHA256:01", MapType::SanAny, "" } }, { synthetic }) == "Ops@example.net");
        synthetic.subjectAltNames = { { SanEntry::Type::IpAddress, "192.0.2.7" } };
        CHECK(certToName({ { 1, "SHA256:01", MapType::SanIpAddress, "" } }, { synthetic }) == "192.0.2.7");
    }
}

TEST_CASE("a rejected certificate leaves the caller's OpenSSL error queue as it was")
{
    ERR_clear_error();
    ERR_raise(ERR_LIB_USER, 42);
    CHECK_THROWS_AS(inspectPem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), CertificateError);
    CHECK_THROWS_AS(inspectPem(readFile(pki() / "devices/sn-0001/key.pem")), CertificateError);
    CHECK(ERR_GET_REASON(ERR_peek_last_error()) == 42);
    CHECK(ERR_GET_REASON(ERR_get_error()) == 42);
    CHECK(ERR_get_error() == 0);
}
