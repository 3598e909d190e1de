#include "sim/Identity.h"
#include "sim/Handles.h"
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

namespace fs = std::filesystem;

namespace callhome::sim {
namespace {
std::string opensslError(const std::string& what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown error";
    if (e) {
        ERR_error_string_n(e, buf, sizeof buf);
    }
    ERR_clear_error();
    return what + ": " + buf;
}

std::string sshFingerprint(ssh_key key)
{
    unsigned char* hash = nullptr;
    size_t len = 0;
    if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &len) != SSH_OK) {
        throw Error("cannot hash an SSH host key");
    }
    char* fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, len);
    ssh_clean_pubkey_hash(&hash);
    if (!fp) {
        throw Error("cannot format an SSH fingerprint");
    }
    std::string out(fp);
    ssh_string_free_char(fp);
    return out;
}

void writeFileAtomically(const fs::path& path, const std::string& content)
{
    auto tmp = path;
    tmp += ".tmp";
    {
        std::ofstream f(tmp, std::ios::trunc);
        f << content;
        if (!f.flush()) {
            throw Error("cannot write " + tmp.string());
        }
    }
    fs::rename(tmp, path);
}

struct BioFree {
    void operator()(BIO* b) const noexcept { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

X509Ptr readCert(const fs::path& path)
{
    BioPtr bio(BIO_new_file(path.c_str(), "r"));
    if (!bio) {
        throw Error(opensslError("cannot open " + path.string()));
    }
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) {
        throw Error(opensslError("cannot read a certificate from " + path.string()));
    }
    return cert;
}

EvpPkeyPtr readKey(const fs::path& path)
{
    BioPtr bio(BIO_new_file(path.c_str(), "r"));
    if (!bio) {
        throw Error(opensslError("cannot open " + path.string()));
    }
    EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    if (!key) {
        throw Error(opensslError("cannot read a private key from " + path.string()));
    }
    return key;
}

void writeCert(const fs::path& path, X509* cert)
{
    BioPtr bio(BIO_new_file(path.c_str(), "w"));
    if (!bio || !PEM_write_bio_X509(bio.get(), cert)) {
        throw Error(opensslError("cannot write " + path.string()));
    }
}

void writeKey(const fs::path& path, EVP_PKEY* key)
{
    // created unreadable to others from the start
    auto old = ::umask(077);
    BioPtr bio(BIO_new_file(path.c_str(), "w"));
    ::umask(old);
    if (!bio || !PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr)) {
        throw Error(opensslError("cannot write " + path.string()));
    }
}

EvpPkeyPtr newEcKey()
{
    EvpPkeyPtr key(EVP_EC_gen("P-256"));
    if (!key) {
        throw Error(opensslError("EVP_EC_gen"));
    }
    return key;
}

void addExtension(X509* cert, X509* issuer, int nid, const char* value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (!ext) {
        throw Error(opensslError(std::string("certificate extension ") + OBJ_nid2sn(nid)));
    }
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

/** Signs a certificate for `key` with subject `subject` (name, value pairs); self-signed when issuer is null. */
X509Ptr makeCert(EVP_PKEY* key, const std::vector<std::pair<const char*, std::string>>& subject, X509* issuer,
    EVP_PKEY* issuerKey, bool ca)
{
    X509Ptr cert(X509_new());
    X509_set_version(cert.get(), X509_VERSION_3);
    unsigned char serial[16];
    RAND_bytes(serial, sizeof serial);
    serial[0] &= 0x7f; // positive
    BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -86400);
    // IEEE 802.1AR: an IDevID never expires
    ASN1_TIME_set_string(X509_getm_notAfter(cert.get()), "99991231235959Z");
    X509_NAME* name = X509_get_subject_name(cert.get());
    for (const auto& [field, value] : subject) {
        X509_NAME_add_entry_by_txt(
            name, field, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1, 0);
    }
    X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
    X509_set_pubkey(cert.get(), key);
    X509* iss = issuer ? issuer : cert.get();
    if (ca) {
        addExtension(cert.get(), iss, NID_basic_constraints, "critical,CA:TRUE");
        addExtension(cert.get(), iss, NID_key_usage, "critical,keyCertSign,cRLSign");
        addExtension(cert.get(), iss, NID_subject_key_identifier, "hash");
    } else {
        addExtension(cert.get(), iss, NID_basic_constraints, "critical,CA:FALSE");
        addExtension(cert.get(), iss, NID_key_usage, "critical,digitalSignature");
        addExtension(cert.get(), iss, NID_ext_key_usage, "serverAuth,clientAuth");
        addExtension(cert.get(), iss, NID_subject_key_identifier, "hash");
        addExtension(cert.get(), iss, NID_authority_key_identifier, "keyid");
    }
    if (!X509_sign(cert.get(), issuerKey ? issuerKey : key, EVP_sha256())) {
        throw Error(opensslError("X509_sign"));
    }
    return cert;
}
} // namespace

std::string deviceName(size_t index)
{
    return fmt::format("sim-{:06}", index + 1);
}

std::string deviceSerial(size_t index)
{
    return fmt::format("SIM-{:06}", index + 1);
}

struct SshHostKeys::Entry {
    SshKeyPtr key;
};

SshHostKeys::SshHostKeys(const std::optional<std::string>& dir, size_t count)
{
    if (dir) {
        fs::create_directories(*dir);
    }
    std::string list;
    for (size_t i = 0; i < count; ++i) {
        auto entry = std::make_unique<Entry>();
        ssh_key raw = nullptr;
        fs::path file = dir ? fs::path(*dir) / (deviceName(i) + ".key") : fs::path();
        if (dir && fs::exists(file)) {
            if (ssh_pki_import_privkey_file(file.c_str(), nullptr, nullptr, nullptr, &raw) != SSH_OK) {
                throw Error("cannot read the SSH host key " + file.string());
            }
            entry->key.reset(raw);
        } else {
            if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &raw) != SSH_OK) {
                throw Error("cannot generate an ed25519 host key");
            }
            entry->key.reset(raw);
            if (dir) {
                auto old = ::umask(077);
                int rc = ssh_pki_export_privkey_file(raw, nullptr, nullptr, nullptr, file.c_str());
                ::umask(old);
                if (rc != SSH_OK) {
                    throw Error("cannot write the SSH host key " + file.string());
                }
            }
        }
        m_fingerprints.push_back(sshFingerprint(entry->key.get()));
        list += m_fingerprints.back() + " " + deviceName(i) + "\n";
        m_keys.push_back(std::move(entry));
    }
    if (dir) {
        // a run with fewer devices keeps the lines of the others: the file always lists every key in DIR
        std::ifstream old(fs::path(*dir) / "fingerprints.txt");
        size_t line = 0;
        for (std::string l; std::getline(old, l); ++line) {
            if (line >= count) {
                list += l + "\n";
            }
        }
        old.close();
        writeFileAtomically(fs::path(*dir) / "fingerprints.txt", list);
    }
}

SshHostKeys::~SshHostKeys() = default;

ssh_key_struct* SshHostKeys::key(size_t index) const
{
    return m_keys.at(index)->key.get();
}

struct DevicePki::Ca {
    X509Ptr cert;
    EvpPkeyPtr key;
};

struct DevicePki::Device {
    X509Ptr cert;
    EvpPkeyPtr key;
};

DevicePki::DevicePki(const std::string& dir, size_t count, const std::string& manufacturer)
    : m_ca(std::make_unique<Ca>())
{
    fs::path root(dir);
    fs::create_directories(root / "manufacturer");
    fs::create_directories(root / "devices");
    auto caCert = root / "manufacturer" / "ca.pem";
    auto caKey = root / "manufacturer" / "ca.key";
    if (fs::exists(caCert) && fs::exists(caKey)) {
        m_ca->cert = readCert(caCert);
        m_ca->key = readKey(caKey);
    } else {
        m_ca->key = newEcKey();
        m_ca->cert = makeCert(
            m_ca->key.get(), { { "O", "callhome-sim" }, { "CN", "callhome-sim IDevID CA" } }, nullptr, nullptr, true);
        writeKey(caKey, m_ca->key.get());
        writeCert(caCert, m_ca->cert.get());
    }
    std::string csv;
    for (size_t i = 0; i < count; ++i) {
        auto d = std::make_unique<Device>();
        auto serial = deviceSerial(i);
        auto crt = root / "devices" / (serial + ".crt");
        auto key = root / "devices" / (serial + ".key");
        if (fs::exists(crt) && fs::exists(key)) {
            d->cert = readCert(crt);
            d->key = readKey(key);
        }
        // a certificate from an earlier CA of this directory is replaced
        if (!d->cert || X509_check_issued(m_ca->cert.get(), d->cert.get()) != X509_V_OK) {
            d->key = newEcKey();
            d->cert = makeCert(d->key.get(),
                { { "O", "callhome-sim" }, { "serialNumber", serial }, { "CN", deviceName(i) } }, m_ca->cert.get(),
                m_ca->key.get(), false);
            writeKey(key, d->key.get());
            writeCert(crt, d->cert.get());
        }
        // named apart from SSH devices of the same index, so one inventory can hold both
        csv += serial + "," + manufacturer + ",sim-tls-" + serial.substr(4) + "\n";
        m_devices.push_back(std::move(d));
    }
    writeFileAtomically(root / "serials.csv", csv);
}

DevicePki::~DevicePki() = default;

x509_st* DevicePki::caCertificate() const
{
    return m_ca->cert.get();
}

x509_st* DevicePki::certificate(size_t index) const
{
    return m_devices.at(index)->cert.get();
}

evp_pkey_st* DevicePki::privateKey(size_t index) const
{
    return m_devices.at(index)->key.get();
}
} // namespace callhome::sim
