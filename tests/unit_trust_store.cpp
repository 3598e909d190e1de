// Device chain verification and live reload of the trust store, with real OpenSSL: every certificate, key and CRL
// is made here in memory (root CA -> intermediate CAs -> device certificates) and written to a temp trust store.
#include "ScratchDir.h"
#include "identity/TrustStore.h"
#include "identity/TrustStoreHolder.h"
#include "transport/OpenSsl.h"
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdexcept>
#include <thread>
#include <unistd.h>

using namespace callhome;
using namespace callhome::identity;
using callhome::transport::X509CrlPtr;
using callhome::transport::X509Ptr;
namespace fs = std::filesystem;

namespace {
struct PkeyFree {
    void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct BioFree {
    void operator()(BIO* p) const noexcept { BIO_free(p); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

void check(bool ok, const char* what)
{
    if (!ok) {
        throw std::runtime_error(std::string(what) + ": " + transport::opensslError());
    }
}

using callhome::test::ScratchDir;

PkeyPtr ecKey()
{
    PkeyPtr k(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    check(k != nullptr, "EC keygen");
    return k;
}

PkeyPtr rsaKey(size_t bits)
{
    PkeyPtr k(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits));
    check(k != nullptr, "RSA keygen");
    return k;
}

/** A certificate with its private key. */
struct Issued {
    X509Ptr cert;
    PkeyPtr key;
};

struct CertSpec {
    std::string cn;
    std::string serialNumber; ///< subject serialNumber (802.1AR); empty for none
    bool ca = false;
    std::string eku; ///< extendedKeyUsage value, e.g. "serverAuth,clientAuth"; empty for no extension
    const EVP_MD* md = EVP_sha256(); ///< signature digest
    long validFromDays = -1; ///< relative to now
    long validToDays = 3650;
};

void addExt(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value)
{
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str());
    check(ext != nullptr, "X509V3_EXT_conf_nid");
    const int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    check(ok == 1, "X509_add_ext");
}

/** Issues `spec` for `key`; signed by `issuer` or, when null, self-signed. */
Issued issue(const CertSpec& spec, PkeyPtr key, const Issued* issuer)
{
    static long serial = 1000;
    X509Ptr cert(X509_new());
    check(cert != nullptr, "X509_new");
    X509_set_version(cert.get(), X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), ++serial);
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("Acme"), -1, -1, 0);
    if (!spec.serialNumber.empty()) {
        X509_NAME_add_entry_by_txt(name, "serialNumber", MBSTRING_UTF8,
            reinterpret_cast<const unsigned char*>(spec.serialNumber.c_str()), -1, -1, 0);
    }
    X509_NAME_add_entry_by_txt(
        name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(spec.cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer->cert.get()) : name);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), spec.validFromDays * 86400);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), spec.validToDays * 86400);
    check(X509_set_pubkey(cert.get(), key.get()) == 1, "X509_set_pubkey");

    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer->cert.get() : cert.get(), cert.get(), nullptr, nullptr, 0);
    addExt(cert.get(), &ctx, NID_basic_constraints, spec.ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    addExt(cert.get(), &ctx, NID_key_usage, spec.ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
    addExt(cert.get(), &ctx, NID_subject_key_identifier, "hash");
    if (issuer) {
        addExt(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always");
    }
    if (!spec.eku.empty()) {
        addExt(cert.get(), &ctx, NID_ext_key_usage, spec.eku);
    }
    check(X509_sign(cert.get(), issuer ? issuer->key.get() : key.get(), spec.md) > 0, "X509_sign");
    return { std::move(cert), std::move(key) };
}

/** A CRL of `issuer` listing `revoked`; `nextUpdateDays` < 0 makes it expired. */
X509CrlPtr makeCrl(const Issued& issuer, const std::vector<const Issued*>& revoked, long nextUpdateDays = 30)
{
    static long number = 1;
    X509CrlPtr crl(X509_CRL_new());
    check(crl != nullptr, "X509_CRL_new");
    X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2);
    X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(issuer.cert.get()));
    std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> last(X509_gmtime_adj(nullptr, -2 * 86400), ASN1_TIME_free);
    std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> next(
        X509_gmtime_adj(nullptr, nextUpdateDays * 86400), ASN1_TIME_free);
    X509_CRL_set1_lastUpdate(crl.get(), last.get());
    X509_CRL_set1_nextUpdate(crl.get(), next.get());
    for (const auto* r : revoked) {
        X509_REVOKED* entry = X509_REVOKED_new();
        X509_REVOKED_set_serialNumber(entry, X509_get_serialNumber(r->cert.get()));
        X509_REVOKED_set_revocationDate(entry, last.get());
        X509_CRL_add0_revoked(crl.get(), entry); // the CRL owns it now
    }
    X509_CRL_sort(crl.get());
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer.cert.get(), nullptr, nullptr, crl.get(), 0);
    X509_EXTENSION* akid = X509V3_EXT_conf_nid(nullptr, &ctx, NID_authority_key_identifier, "keyid:always");
    check(akid != nullptr, "CRL authorityKeyIdentifier");
    X509_CRL_add_ext(crl.get(), akid, -1);
    X509_EXTENSION_free(akid);
    std::unique_ptr<ASN1_INTEGER, decltype(&ASN1_INTEGER_free)> n(ASN1_INTEGER_new(), ASN1_INTEGER_free);
    ASN1_INTEGER_set(n.get(), ++number);
    X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, n.get(), 0, 0);
    check(X509_CRL_sign(crl.get(), issuer.key.get(), EVP_sha256()) > 0, "X509_CRL_sign");
    return crl;
}

std::string pem(const X509* cert)
{
    BioPtr bio(BIO_new(BIO_s_mem()));
    check(PEM_write_bio_X509(bio.get(), cert) == 1, "PEM_write_bio_X509");
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(len));
}

std::string pem(const X509_CRL* crl)
{
    BioPtr bio(BIO_new(BIO_s_mem()));
    check(PEM_write_bio_X509_CRL(bio.get(), const_cast<X509_CRL*>(crl)) == 1, "PEM_write_bio_X509_CRL");
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(len));
}

std::string pem(const EVP_PKEY* key)
{
    BioPtr bio(BIO_new(BIO_s_mem()));
    check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1, "PEM key");
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(len));
}

/** Writes through a temporary file and rename(), as an operator's deployment tool would. */
void writeFile(const fs::path& p, const std::string& content)
{
    const auto tmp = p.string() + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary);
        out << content;
        if (!out) {
            throw std::runtime_error("cannot write " + tmp);
        }
    }
    fs::rename(tmp, p);
}

/**
 * root -> intermediate -> device certificates for every case, plus a second intermediate that the root revokes.
 * Made once per run (EC keys, one 1024-bit and one 2048-bit RSA key).
 */
struct Pki {
    Issued root = issue({ .cn = "Acme Root CA", .ca = true }, ecKey(), nullptr);
    Issued intermediate = issue({ .cn = "Acme IDevID CA", .ca = true }, ecKey(), &root);
    Issued revokedCa = issue({ .cn = "Acme Revoked CA", .ca = true }, ecKey(), &root);
    Issued good
        = issue({ .cn = "good", .serialNumber = "SN-GOOD", .eku = "serverAuth,clientAuth" }, ecKey(), &intermediate);
    Issued noEku = issue({ .cn = "no-eku", .serialNumber = "SN-NOEKU" }, ecKey(), &intermediate);
    Issued clientOnly
        = issue({ .cn = "client-only", .serialNumber = "SN-CLIENT", .eku = "clientAuth" }, ecKey(), &intermediate);
    Issued sha1 = issue({ .cn = "sha1", .serialNumber = "SN-SHA1", .md = EVP_sha1() }, ecKey(), &intermediate);
    Issued rsa1024 = issue({ .cn = "rsa1024", .serialNumber = "SN-RSA1024" }, rsaKey(1024), &intermediate);
    Issued rsa2048 = issue({ .cn = "rsa2048", .serialNumber = "SN-RSA2048" }, rsaKey(2048), &intermediate);
    Issued expired = issue({ .cn = "expired", .serialNumber = "SN-EXPIRED", .validFromDays = -20, .validToDays = -10 },
        ecKey(), &intermediate);
    Issued revokedLeaf = issue({ .cn = "revoked", .serialNumber = "SN-REVOKED" }, ecKey(), &intermediate);
    Issued underRevokedCa = issue({ .cn = "under-revoked-ca", .serialNumber = "SN-UNDER" }, ecKey(), &revokedCa);
    Issued station = issue({ .cn = "station", .eku = "clientAuth" }, ecKey(), nullptr);

    /** What a device sends: its leaf and the CA that issued it. */
    std::vector<x509_st*> chainOf(const Issued& leaf) const
    {
        X509* issuerCa = X509_check_issued(revokedCa.cert.get(), leaf.cert.get()) == X509_V_OK
            ? revokedCa.cert.get()
            : intermediate.cert.get();
        return { leaf.cert.get(), issuerCa };
    }
};

const Pki& pki()
{
    static const Pki p;
    return p;
}

/** A trust store directory with manufacturer "acme" (anchor: the root), optionally with a crl.pem. */
struct Store {
    ScratchDir dir;
    fs::path root = dir.path / "trust-store";
    fs::path acme = root / "manufacturers" / "acme";

    Store()
    {
        fs::create_directories(root / "station");
        fs::create_directories(acme);
        writeFile(root / "station" / "cert.pem", pem(pki().station.cert.get()));
        writeFile(root / "station" / "key.pem", pem(pki().station.key.get()));
        fs::permissions(root / "station" / "key.pem", fs::perms::owner_read | fs::perms::owner_write);
        writeFile(acme / "ca.pem", pem(pki().root.cert.get()));
    }
    void crls(const std::vector<const X509_CRL*>& list)
    {
        std::string text;
        for (const auto* c : list) {
            text += pem(c);
        }
        writeFile(acme / "crl.pem", text);
    }
    /** CRLs of the root (revoking revokedCa), the intermediate (revoking revokedLeaf) and revokedCa (empty). */
    void fullCrls(long nextUpdateDays = 30)
    {
        const auto& p = pki();
        auto r = makeCrl(p.root, { &p.revokedCa }, nextUpdateDays);
        auto i = makeCrl(p.intermediate, { &p.revokedLeaf }, nextUpdateDays);
        auto c = makeCrl(p.revokedCa, {}, nextUpdateDays);
        crls({ r.get(), i.get(), c.get() });
    }
    TrustStore load(config::CrlExpired policy = config::CrlExpired::FailClosed,
        const std::vector<config::ManufacturerOptions>& options = {}) const
    {
        return TrustStore::load(root.string(), options, policy);
    }
};

ChainVerdict verify(const TrustStore& store, const Issued& leaf)
{
    return store.verify(pki().chainOf(leaf));
}

using Kind = ChainVerdict::Kind;
} // namespace

TEST_CASE("chain policy: purpose, security level 2, lifetimes")
{
    Store s;
    auto store = s.load();

    SECTION("a leaf with serverAuth is accepted, and the chain runs up to the anchor")
    {
        auto v = verify(store, pki().good);
        REQUIRE(v.kind == Kind::Verified);
        CHECK(v.manufacturer->name == "acme");
        REQUIRE(v.chain.size() == 3);
        CHECK_THAT(v.chain.back().subject, Catch::Contains("Acme Root CA"));
        CHECK(v.warning.empty());
    }
    SECTION("a leaf without extendedKeyUsage is accepted (802.1AR IDevIDs often carry none)")
    {
        CHECK(verify(store, pki().noEku).kind == Kind::Verified);
    }
    SECTION("a leaf whose extendedKeyUsage is clientAuth only is refused")
    {
        auto v = verify(store, pki().clientOnly);
        REQUIRE(v.kind == Kind::Invalid);
        CHECK_THAT(v.reason, Catch::Contains("device certificate") && Catch::Contains("lacks serverAuth"));
        CHECK_THAT(v.reason, Catch::Contains("manufacturer acme"));
    }
    SECTION("a SHA-1 signed leaf is refused")
    {
        auto v = verify(store, pki().sha1);
        REQUIRE(v.kind == Kind::Invalid);
        CHECK_THAT(v.reason, Catch::Contains("signed with SHA1") && Catch::Contains("security level 2"));
    }
    SECTION("a 1024-bit RSA leaf is refused, a 2048-bit one accepted")
    {
        auto v = verify(store, pki().rsa1024);
        REQUIRE(v.kind == Kind::Invalid);
        CHECK_THAT(v.reason, Catch::Contains("1024-bit RSA key") && Catch::Contains("security level 2"));
        CHECK(verify(store, pki().rsa2048).kind == Kind::Verified);
    }
    SECTION("an expired leaf is refused unless the manufacturer ignores lifetimes")
    {
        auto v = verify(store, pki().expired);
        REQUIRE(v.kind == Kind::Invalid);
        CHECK_THAT(v.reason, Catch::Contains("certificate has expired"));
        auto lenient = s.load(config::CrlExpired::FailClosed, { { "acme", "subject-serial-number", true } });
        CHECK(verify(lenient, pki().expired).kind == Kind::Verified);
    }
    SECTION("without crl.pem revocation is not checked")
    {
        CHECK_FALSE(store.manufacturers().at(0).hasCrl);
        CHECK(verify(store, pki().revokedLeaf).kind == Kind::Verified);
        CHECK(verify(store, pki().underRevokedCa).kind == Kind::Verified);
        CHECK_THAT(describe(store.manufacturers().at(0)), Catch::Contains("revocation is not checked"));
    }
    SECTION("a chain to another anchor is still told apart")
    {
        auto other = issue({ .cn = "Other Root", .ca = true }, ecKey(), nullptr);
        auto leaf = issue({ .cn = "x", .serialNumber = "SN-X" }, ecKey(), &other);
        auto v = store.verify({ leaf.cert.get() });
        REQUIRE(v.kind == Kind::Invalid);
        CHECK_THAT(v.reason, Catch::Contains("does not lead to any configured manufacturer CA"));
    }
}

TEST_CASE("CRLs are checked for the whole chain")
{
    Store s;
    const auto& p = pki();

    SECTION("current CRLs of every CA")
    {
        s.fullCrls();
        auto store = s.load();
        CHECK(store.manufacturers().at(0).crls.size() == 3);
        CHECK_THAT(
            describe(store.manufacturers().at(0)), Catch::Contains("3 CRL(s)") && Catch::Contains("Acme Root CA"));
        CHECK(verify(store, p.good).kind == Kind::Verified);

        auto leaf = verify(store, p.revokedLeaf);
        REQUIRE(leaf.kind == Kind::Invalid);
        CHECK_THAT(leaf.reason, Catch::Contains("the device certificate") && Catch::Contains("revoked"));

        auto ca = verify(store, p.underRevokedCa);
        REQUIRE(ca.kind == Kind::Invalid);
        CHECK_THAT(ca.reason, Catch::Contains("CA certificate") && Catch::Contains("Acme Revoked CA"));
        CHECK_THAT(ca.reason, Catch::Contains("revoked"));
    }
    SECTION("a CA of the chain without a CRL in crl.pem refuses the chain")
    {
        auto r = makeCrl(p.root, {});
        s.crls({ r.get() });
        auto v = verify(s.load(), p.good);
        REQUIRE(v.kind == Kind::Invalid);
        CHECK_THAT(v.reason, Catch::Contains("no CRL from") && Catch::Contains("Acme IDevID CA"));
    }
    SECTION("an expired CRL refuses by default (fail-closed)")
    {
        s.fullCrls(-1);
        auto store = s.load();
        CHECK_THAT(describe(store.manufacturers().at(0)), Catch::Contains("EXPIRED since"));
        auto v = verify(store, p.good);
        REQUIRE(v.kind == Kind::Invalid);
        CHECK_THAT(v.reason, Catch::Contains("CRL from") && Catch::Contains("has expired"));
        CHECK_THAT(v.reason, Catch::Contains("fail-closed"));
    }
    SECTION("an expired CRL refuses an ignore-lifetime manufacturer too")
    {
        s.fullCrls(-1);
        auto v = verify(s.load(config::CrlExpired::FailClosed, { { "acme", "subject-serial-number", true } }), p.good);
        REQUIRE(v.kind == Kind::Invalid);
        CHECK_THAT(v.reason, Catch::Contains("has expired"));
    }
    SECTION("tls/crl-expired ignore: accepted with a warning, and a stale CRL still revokes")
    {
        s.fullCrls(-1);
        auto store = s.load(config::CrlExpired::Ignore);
        auto v = verify(store, p.good);
        REQUIRE(v.kind == Kind::Verified);
        CHECK_THAT(v.warning, Catch::Contains("has expired") && Catch::Contains("tls/crl-expired is ignore"));
        auto revoked = verify(store, p.revokedLeaf);
        REQUIRE(revoked.kind == Kind::Invalid);
        CHECK_THAT(revoked.reason, Catch::Contains("revoked"));
    }
    SECTION("a CRL signed by someone else is refused")
    {
        auto impostor = issue({ .cn = "Acme Root CA", .ca = true }, ecKey(), nullptr); // same name, other key
        auto r = makeCrl(impostor, {});
        auto i = makeCrl(p.intermediate, {});
        s.crls({ r.get(), i.get() });
        auto v = verify(s.load(), p.good);
        REQUIRE(v.kind == Kind::Invalid);
        CHECK_THAT(v.reason, Catch::Contains("CRL"));
    }
}

TEST_CASE("malformed trust store files are refused with the file named")
{
    Store s;
    SECTION("garbage CRL file")
    {
        writeFile(s.acme / "crl.pem", "not a CRL\n");
        CHECK_THROWS_WITH(s.load(), Catch::Contains("crl.pem") && Catch::Contains("no PEM CRL"));
    }
    SECTION("truncated CRL after a good one")
    {
        auto r = makeCrl(pki().root, {});
        auto text = pem(r.get());
        writeFile(s.acme / "crl.pem", text + text.substr(0, text.size() / 2));
        CHECK_THROWS_WITH(s.load(), Catch::Contains("crl.pem") && Catch::Contains("malformed PEM CRL"));
    }
    SECTION("truncated anchor")
    {
        auto text = pem(pki().root.cert.get());
        writeFile(s.acme / "ca.pem", text.substr(0, text.size() - 40));
        CHECK_THROWS_WITH(s.load(), Catch::Contains("ca.pem") && Catch::Contains("malformed PEM certificate"));
    }
}

TEST_CASE("TrustStoreHolder reloads anchors and CRLs without a restart")
{
    Store s;
    const auto& p = pki();
    TrustStoreHolder holder(s.root.string(), {});
    auto before = holder.current();
    REQUIRE(before);
    CHECK(verify(*before, p.revokedLeaf).kind == Kind::Verified);

    SECTION("nothing changed: no reload")
    {
        CHECK_FALSE(holder.reloadIfChanged());
        CHECK(holder.current() == before);
    }
    SECTION("a CRL added, then changed, is picked up by reloadIfChanged")
    {
        auto r = makeCrl(p.root, {});
        auto i = makeCrl(p.intermediate, {});
        s.crls({ r.get(), i.get() });
        CHECK(holder.reloadIfChanged());
        auto withCrl = holder.current();
        CHECK(withCrl != before);
        CHECK(verify(*withCrl, p.revokedLeaf).kind == Kind::Verified);
        CHECK_FALSE(holder.reloadIfChanged());

        auto i2 = makeCrl(p.intermediate, { &p.revokedLeaf });
        s.crls({ r.get(), i2.get() });
        CHECK(holder.reloadIfChanged());
        auto v = verify(*holder.current(), p.revokedLeaf);
        REQUIRE(v.kind == Kind::Invalid);
        CHECK_THAT(v.reason, Catch::Contains("revoked"));
        CHECK(verify(*holder.current(), p.good).kind == Kind::Verified);
        // A snapshot taken before (a handshake in progress) keeps its store.
        CHECK(verify(*before, p.revokedLeaf).kind == Kind::Verified);
        CHECK(verify(*withCrl, p.revokedLeaf).kind == Kind::Verified);
    }
    SECTION("a CRL changed in place (same inode) is picked up")
    {
        auto r = makeCrl(p.root, {});
        auto i = makeCrl(p.intermediate, {});
        s.crls({ r.get(), i.get() });
        REQUIRE(holder.reloadIfChanged());
        auto i2 = makeCrl(p.intermediate, { &p.revokedLeaf });
        {
            std::ofstream out(s.acme / "crl.pem", std::ios::binary | std::ios::trunc);
            out << pem(r.get()) << pem(i2.get());
        }
        CHECK(holder.reloadIfChanged());
        CHECK(verify(*holder.current(), p.revokedLeaf).kind == Kind::Invalid);
    }
    SECTION("a new anchor and manufacturer folder are picked up")
    {
        auto other = issue({ .cn = "Other Root", .ca = true }, ecKey(), nullptr);
        auto leaf = issue({ .cn = "o", .serialNumber = "SN-O" }, ecKey(), &other);
        CHECK(holder.current()->verify({ leaf.cert.get() }).kind == Kind::Invalid);
        fs::create_directories(s.root / "manufacturers" / "other");
        writeFile(s.root / "manufacturers" / "other" / "ca.pem", pem(other.cert.get()));
        CHECK(holder.reloadIfChanged());
        CHECK(holder.current()->manufacturers().size() == 2);
        auto v = holder.current()->verify({ leaf.cert.get() });
        REQUIRE(v.kind == Kind::Verified);
        CHECK(v.manufacturer->name == "other");
    }
    SECTION("a broken file keeps the old store, is reported once, and is retried after it changes")
    {
        writeFile(s.acme / "crl.pem", "-----BEGIN X509 CRL-----\nMIIB\n");
        CHECK_FALSE(holder.reloadIfChanged());
        CHECK(holder.current() == before);
        CHECK_FALSE(holder.reloadIfChanged()); // unchanged since the failed attempt: not read again

        auto r = holder.reload(); // SIGHUP: always reads
        CHECK_FALSE(r.ok);
        CHECK_THAT(r.message, Catch::Contains("crl.pem") && Catch::Contains("keeping the previous"));
        CHECK(holder.current() == before);
        CHECK(verify(*holder.current(), p.good).kind == Kind::Verified);

        auto rc = makeCrl(p.root, {});
        auto ic = makeCrl(p.intermediate, { &p.revokedLeaf });
        s.crls({ rc.get(), ic.get() });
        CHECK(holder.reloadIfChanged());
        CHECK(verify(*holder.current(), p.revokedLeaf).kind == Kind::Invalid);
    }
    SECTION("a broken or removed anchor keeps the old store")
    {
        writeFile(s.acme / "ca.pem", "garbage\n");
        CHECK_FALSE(holder.reloadIfChanged());
        CHECK(holder.current() == before);
        fs::remove(s.acme / "ca.pem");
        CHECK_FALSE(holder.reloadIfChanged());
        CHECK(holder.current() == before);
        CHECK(verify(*holder.current(), p.good).kind == Kind::Verified);
    }
    SECTION("reload() reads even when nothing changed")
    {
        auto r = holder.reload();
        CHECK(r.ok);
        CHECK_THAT(r.message, Catch::Contains("1 manufacturer(s)"));
        CHECK(holder.current() != before);
    }
}

TEST_CASE("TrustStoreHolder refuses a broken store at start")
{
    Store s;
    writeFile(s.acme / "crl.pem", "garbage\n");
    CHECK_THROWS_WITH(TrustStoreHolder(s.root.string(), {}), Catch::Contains("crl.pem"));
}

TEST_CASE("tls/crl-expired in the configuration")
{
    ScratchDir dir;
    auto configWith = [&](const std::string& tls) {
        const auto path = dir.path / "config.json";
        writeFile(path, R"({"callhome-config:callhome": {"tls": {)" + tls + "}}}");
        return config::load(path.string(), {});
    };
    CHECK(config::load(std::nullopt, {}).crlExpired == config::CrlExpired::FailClosed);
    CHECK(configWith(R"("trust-store": "/x")").crlExpired == config::CrlExpired::FailClosed);
    CHECK(configWith(R"("crl-expired": "fail-closed")").crlExpired == config::CrlExpired::FailClosed);
    CHECK(configWith(R"("crl-expired": "ignore")").crlExpired == config::CrlExpired::Ignore);
    CHECK_THROWS_WITH(configWith(R"("crl-expired": "sometimes")"), Catch::Contains("crl-expired"));
}

TEST_CASE("the scripts/dev-pki trust store passes the chain policy as the callhome_tls tests expect")
{
    ScratchDir dir;
    const auto out = dir.path / "pki";
    const auto command = std::string("'") + CALLHOME_SOURCE_DIR + "/scripts/dev-pki' '" + out.string() + "' >/dev/null";
    REQUIRE(std::system(command.c_str()) == 0);
    auto store = TrustStore::load((out / "trust-store").string(), {});
    auto certsOf = [&](const std::string& device) {
        return transport::loadCertificates((out / "devices" / device / "cert.pem").string());
    };
    const auto ca = transport::loadCertificates((out / "manufacturer" / "ca.pem").string());
    auto verdict = [&](const std::string& device) {
        auto certs = certsOf(device);
        return store.verify({ certs.at(0).get(), ca.at(0).get() });
    };
    CHECK(verdict("sn-0001").kind == Kind::Verified);
    CHECK(verdict("hwmn-0002").kind == Kind::Verified);
    CHECK(verdict("unknown-0005").kind == Kind::Verified);
    CHECK_THAT(verdict("expired-0003").reason, Catch::Contains("expired"));
    CHECK_THAT(verdict("revoked-0004").reason, Catch::Contains("revoked"));
    CHECK_THAT(verdict("other-ca-0007").reason, Catch::Contains("does not lead to any configured manufacturer"));
    auto self = certsOf("selfsigned");
    CHECK(store.verify({ self.at(0).get() }).kind == Kind::SelfSigned);
    auto lenient = TrustStore::load((out / "trust-store").string(), { { "example", "subject-serial-number", true } });
    auto expired = certsOf("expired-0003");
    CHECK(lenient.verify({ expired.at(0).get(), ca.at(0).get() }).kind == Kind::Verified);
}

TEST_CASE("TrustStoreHolder: verifying on snapshots while another thread reloads")
{
    Store s;
    const auto& p = pki();
    auto r = makeCrl(p.root, {});
    auto i = makeCrl(p.intermediate, {});
    s.crls({ r.get(), i.get() });
    TrustStoreHolder holder(s.root.string(), {});
    std::atomic<bool> stop { false };
    std::atomic<int> verified { 0 }, failed { 0 };
    std::vector<std::thread> verifiers;
    for (int t = 0; t < 2; ++t) {
        verifiers.emplace_back([&] {
            while (!stop) {
                auto snapshot = holder.current();
                (verify(*snapshot, p.good).kind == Kind::Verified ? verified : failed)++;
            }
        });
    }
    for (int n = 0; n < 30; ++n) {
        CHECK(holder.reload().ok);
    }
    stop = true;
    for (auto& t : verifiers) {
        t.join();
    }
    CHECK(verified > 0);
    CHECK(failed == 0);
}
