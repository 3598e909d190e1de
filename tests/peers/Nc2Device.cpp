// callhome-test-nc2-device: a NETCONF device built on libnetconf2's server call-home API. It calls home over SSH
// (or over TLS with --tls, RFC 8071 section 4: the device is the TLS server) to --host/--port, keeps calling home
// until SIGTERM, and serves <get>, <get-schema> and <close-session>.
// Auth attempts and sessions are appended to log files (flushed per line) so that tests can assert on them.
#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <libyang/libyang.h>
#include <memory>
#include <mutex>
#include <nc_server.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <optional>
#include <pwd.h>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {
constexpr const char* kClient = "callhome";
constexpr const char* kEndpoint = "listener";
constexpr const char* kHostKeyName = "hostkey";
constexpr const char* kServerCertName = "device-cert";
constexpr const char* kTrustedListName = "station-ca";
// libnetconf2 ships no YANG files; Debian's libyuma-base has the IETF modules its server needs.
constexpr const char* kIetfModules = "/usr/share/yuma/modules/ietf";

std::atomic<bool> g_stop { false };

struct Config {
    std::string host = "127.0.0.1";
    uint16_t port = 0;
    std::string hostKey;
    std::string user;
    std::string password;
    std::string authorizedKeyFile;
    std::string authLog;
    std::string sessionsLog;
    unsigned retryMs = 0;
    std::string schemas;
    bool tls = false;
    std::string cert;
    std::string key;
    std::string chain;
    std::string trustedCa;
};

Config g_config;

struct LyCtxFree {
    void operator()(ly_ctx* c) const noexcept { ly_ctx_destroy(c); }
};
using LyCtxPtr = std::unique_ptr<ly_ctx, LyCtxFree>;

struct SshKeyFree {
    void operator()(ssh_key k) const noexcept { ssh_key_free(k); }
};
using SshKeyPtr = std::unique_ptr<std::remove_pointer_t<ssh_key>, SshKeyFree>;

struct PollSessionFree {
    void operator()(nc_pollsession* ps) const noexcept { nc_ps_free(ps); }
};
using PollSessionPtr = std::unique_ptr<nc_pollsession, PollSessionFree>;

struct CFree {
    void operator()(char* p) const noexcept { std::free(p); }
};
using CStringPtr = std::unique_ptr<char, CFree>;

struct X509Free {
    void operator()(X509* x) const noexcept { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

struct BioFree {
    void operator()(BIO* b) const noexcept { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

/** One certificate as libnetconf2's *_data callbacks want it: base64 DER without the PEM armour. */
struct PemCert {
    X509Ptr cert;
    std::string base64Der;
};

/** Appends whole lines to a file, flushed per line, from any thread. */
class LineLog {
public:
    void open(const std::string& path)
    {
        if (!path.empty()) {
            m_out.open(path, std::ios::app);
            if (!m_out) {
                throw std::runtime_error("cannot open " + path);
            }
        }
    }
    void write(const std::string& line) noexcept
    {
        try {
            std::lock_guard lock(m_mutex);
            if (m_out.is_open()) {
                m_out << line << std::endl;
            }
        } catch (...) { // called from C callbacks: never throw
        }
    }

private:
    std::mutex m_mutex;
    std::ofstream m_out;
};

LineLog g_authLog;
LineLog g_sessionsLog;
SshKeyPtr g_authorizedKey;
ly_ctx* g_ctx = nullptr;
// TLS: certificates sent after the leaf, and the CA certificates that may sign the station's client certificate.
std::vector<std::string> g_chainCerts;
std::vector<std::string> g_trustedCerts;

// New sessions arrive on libnetconf2's call-home thread; the main loop owns the poll session.
std::mutex g_newSessionsMutex;
std::vector<nc_session*> g_newSessions;

std::string userOf(const nc_session* session)
{
    const char* user = session ? nc_session_get_username(session) : nullptr;
    return user ? user : "-";
}

void onSignal(int)
{
    g_stop = true;
}

void printClb(const nc_session* session, NC_VERB_LEVEL level, const char* msg)
{
    static const char* names[] = { "ERR", "WRN", "VRB", "DBG", "DBL" };
    std::fprintf(stderr, "[%s] %s\n", names[level < 5 ? level : 4], msg);
    // Only "none" and exotic methods have no callback of their own; publickey, password and keyboard-interactive
    // are logged by their callbacks. libnetconf2 reports every SSH auth request at verbose level.
    static const std::string prefix = "Received an SSH message \"request-auth\" of subtype \"";
    std::string text(msg);
    // libnetconf2's TLS accept runs on its call-home thread and reports a failed handshake only here.
    if (text.rfind("SSL_accept failed", 0) == 0 || text.rfind("SSL_accept timeout", 0) == 0) {
        g_sessionsLog.write("tls-failed " + text);
    }
    if (text.rfind(prefix, 0) == 0) {
        auto method = text.substr(prefix.size(), text.find('"', prefix.size()) - prefix.size());
        if (method != "publickey" && method != "password" && method != "interactive") {
            g_authLog.write(method + " " + userOf(session) + " rejected");
        }
    }
}

int passwordClb(const nc_session* session, const char* password, void*)
{
    const bool ok
        = !g_config.password.empty() && userOf(session) == g_config.user && password && g_config.password == password;
    g_authLog.write("password " + userOf(session) + (ok ? " accepted" : " rejected"));
    return ok ? 0 : 1;
}

int pubkeyClb(const nc_session* session, ssh_key key, void*)
{
    // Called both for the key probe and for the signed request; the signature itself is checked by libnetconf2.
    const bool ok = g_authorizedKey && userOf(session) == g_config.user
        && ssh_key_cmp(key, g_authorizedKey.get(), SSH_KEY_CMP_PUBLIC) == 0;
    g_authLog.write("publickey " + userOf(session) + (ok ? " accepted" : " rejected"));
    return ok ? 0 : 1;
}

int interactiveClb(const nc_session* session, const ssh_message, void*)
{
    // Without this libnetconf2 would check the system password database.
    g_authLog.write("keyboard-interactive " + userOf(session) + " rejected");
    return 1;
}

int hostkeyClb(const char* name, void*, char** privkeyPath, char** privkeyData, NC_SSH_KEY_TYPE* privkeyType)
{
    if (std::strcmp(name, kHostKeyName) != 0) {
        return 1;
    }
    *privkeyPath = strdup(g_config.hostKey.c_str());
    *privkeyData = nullptr;
    *privkeyType = NC_SSH_KEY_UNKNOWN;
    return *privkeyPath ? 0 : 1;
}

/** strdup() for libnetconf2, which frees what the callbacks return; nullptr when out of memory. */
char* cCopy(const std::string& s) noexcept
{
    return strdup(s.c_str());
}

int serverCertClb(const char* name, void*, char** certPath, char** certData, char** privkeyPath, char** privkeyData,
    NC_SSH_KEY_TYPE* privkeyType)
{
    if (std::strcmp(name, kServerCertName) != 0) {
        return 1;
    }
    *certPath = cCopy(g_config.cert);
    *certData = nullptr;
    *privkeyPath = cCopy(g_config.key);
    *privkeyData = nullptr;
    *privkeyType = NC_SSH_KEY_UNKNOWN;
    return *certPath && *privkeyPath ? 0 : 1;
}

/** Hands libnetconf2 a malloc'ed array of malloc'ed base64 strings (it frees them deeply). */
int certDataList(const std::vector<std::string>& certs, char*** data, int* count) noexcept
{
    *data = nullptr;
    *count = 0;
    if (certs.empty()) {
        return 0;
    }
    auto** out = static_cast<char**>(std::calloc(certs.size(), sizeof(char*)));
    if (!out) {
        return 1;
    }
    for (const auto& cert : certs) {
        if (!(out[*count] = cCopy(cert))) {
            for (int i = 0; i < *count; ++i) {
                std::free(out[i]);
            }
            std::free(out);
            *count = 0;
            return 1;
        }
        ++*count;
    }
    *data = out;
    return 0;
}

int serverChainClb(const char* name, void*, char*** certPaths, int* certPathCount, char*** certData, int* certDataCount)
{
    *certPaths = nullptr;
    *certPathCount = 0;
    if (std::strcmp(name, kServerCertName) != 0) {
        return 1;
    }
    return certDataList(g_chainCerts, certData, certDataCount);
}

int trustedCertListClb(
    const char* name, void*, char*** certPaths, int* certPathCount, char*** certData, int* certDataCount)
{
    *certPaths = nullptr;
    *certPathCount = 0;
    if (std::strcmp(name, kTrustedListName) != 0) {
        return 1;
    }
    return certDataList(g_trustedCerts, certData, certDataCount);
}

int sessionClb(const char*, nc_session* session)
{
    try {
        std::lock_guard lock(g_newSessionsMutex);
        g_newSessions.push_back(session);
        return 0;
    } catch (...) {
        return 1; // libnetconf2 frees the session
    }
}

nc_server_reply* errorReply(NC_ERR tag, const char* message)
{
    lyd_node* err = nc_err(g_ctx, tag, NC_ERR_TYPE_APP);
    if (message) {
        nc_err_set_msg(err, message, "en");
    }
    return nc_server_reply_err(err);
}

const char* childValue(const lyd_node* rpc, const char* name)
{
    for (auto* child = lyd_child(rpc); child; child = child->next) {
        if (!std::strcmp(child->schema->name, name)) {
            return lyd_get_value(child);
        }
    }
    return nullptr;
}

// libnetconf2 2.0.24's own <get-schema> hands a dictionary string to lyd_new_any() as owned and the text arrives
// corrupted with libyang 2.1.30; this one lets libyang copy the text.
nc_server_reply* getSchemaClb(lyd_node* rpc, nc_session*)
{
    const char* identifier = childValue(rpc, "identifier");
    const char* version = childValue(rpc, "version");
    const char* format = childValue(rpc, "format");
    if (version && !*version) {
        version = nullptr;
    }
    if (!identifier) {
        return errorReply(NC_ERR_MISSING_ELEM, "identifier is required");
    }
    LYS_OUTFORMAT outFormat = LYS_OUT_YANG;
    if (format && !std::strcmp(format, "ietf-netconf-monitoring:yin")) {
        outFormat = LYS_OUT_YIN;
    } else if (format && std::strcmp(format, "ietf-netconf-monitoring:yang")) {
        return errorReply(NC_ERR_INVALID_VALUE, "The requested format is not supported.");
    }

    const lys_module* module = nullptr;
    const lysp_submodule* submodule = nullptr;
    if (version) {
        module = ly_ctx_get_module(g_ctx, identifier, version);
        if (!module) {
            submodule = ly_ctx_get_submodule(g_ctx, identifier, version);
        }
    } else {
        module = ly_ctx_get_module_implemented(g_ctx, identifier);
        if (!module) {
            module = ly_ctx_get_module_latest(g_ctx, identifier);
        }
        if (!module) {
            submodule = ly_ctx_get_submodule_latest(g_ctx, identifier);
        }
    }
    if (!module && !submodule) {
        return errorReply(NC_ERR_INVALID_VALUE, "The requested schema was not found.");
    }

    char* raw = nullptr;
    ly_out* out = nullptr;
    LY_ERR printed = ly_out_new_memory(&raw, 0, &out);
    if (printed == LY_SUCCESS) {
        printed = module ? lys_print_module(out, module, outFormat, 0, 0)
                         : lys_print_submodule(out, submodule, outFormat, 0, 0);
        ly_out_free(out, nullptr, 0); // keeps the printed text in `raw`
    }
    CStringPtr text(raw);
    if (printed != LY_SUCCESS || !text) {
        return errorReply(NC_ERR_OP_FAILED, "Printing the schema failed.");
    }
    const lys_module* monitoring = ly_ctx_get_module_implemented(g_ctx, "ietf-netconf-monitoring");
    lyd_node* reply = nullptr;
    if (lyd_new_inner(nullptr, monitoring, "get-schema", 0, &reply) != LY_SUCCESS) {
        return errorReply(NC_ERR_OP_FAILED, "Building the reply failed.");
    }
    if (lyd_new_any(reply, nullptr, "data", text.get(), 0, LYD_ANYDATA_STRING, 1, nullptr) != LY_SUCCESS) {
        lyd_free_tree(reply);
        return errorReply(NC_ERR_OP_FAILED, "Building the reply failed.");
    }
    return nc_server_reply_data(reply, NC_WD_EXPLICIT, NC_PARAMTYPE_FREE);
}

/** <get> returns the YANG library of the served context; every other operation is refused. */
nc_server_reply* globalRpcClb(lyd_node* rpc, nc_session*)
{
    const std::string name = rpc->schema->name;
    if (name == "get" || name == "get-config") {
        lyd_node* reply = nullptr;
        if (lyd_new_inner(nullptr, rpc->schema->module, name.c_str(), 0, &reply) != LY_SUCCESS) {
            return errorReply(NC_ERR_OP_FAILED, "Building the reply failed.");
        }
        lyd_node* data = nullptr;
        if (name == "get"
            && ly_ctx_get_yanglib_data(g_ctx, &data, "%u", ly_ctx_get_change_count(g_ctx)) != LY_SUCCESS) {
            lyd_free_tree(reply);
            return errorReply(NC_ERR_OP_FAILED, "No YANG library data.");
        }
        // use_value = 1: the reply takes the data tree.
        if (lyd_new_any(reply, nullptr, "data", data, 1, LYD_ANYDATA_DATATREE, 1, nullptr) != LY_SUCCESS) {
            lyd_free_all(data);
            lyd_free_tree(reply);
            return errorReply(NC_ERR_OP_FAILED, "Building the reply failed.");
        }
        return nc_server_reply_data(reply, NC_WD_EXPLICIT, NC_PARAMTYPE_FREE);
    }
    return errorReply(NC_ERR_OP_NOT_SUPPORTED, "This test device serves get, get-schema and close-session only.");
}

LyCtxPtr buildContext()
{
    ly_ctx* raw = nullptr;
    if (ly_ctx_new(kIetfModules, 0, &raw) != LY_SUCCESS) {
        throw std::runtime_error("ly_ctx_new failed");
    }
    LyCtxPtr ctx(raw);
    for (const char* name : { "ietf-netconf", "ietf-netconf-monitoring", "ietf-netconf-with-defaults" }) {
        if (!ly_ctx_load_module(ctx.get(), name, nullptr, nullptr)) {
            throw std::runtime_error(std::string("cannot load ") + name + " from " + kIetfModules);
        }
    }
    if (!g_config.schemas.empty()) {
        ly_ctx_set_searchdir(ctx.get(), g_config.schemas.c_str());
        for (const auto& entry : std::filesystem::directory_iterator(g_config.schemas)) {
            auto file = entry.path().filename().string();
            if (entry.path().extension() != ".yang") {
                continue;
            }
            auto module = file.substr(0, file.find_first_of("@."));
            if (!ly_ctx_load_module(ctx.get(), module.c_str(), nullptr, nullptr)) {
                throw std::runtime_error("cannot load " + entry.path().string());
            }
        }
    }
    return ctx;
}

SshKeyPtr loadAuthorizedKey(const std::string& path)
{
    std::ifstream in(path);
    std::string type, base64;
    if (!(in >> type >> base64)) {
        throw std::runtime_error("cannot read a public key line from " + path);
    }
    ssh_key key = nullptr;
    if (ssh_pki_import_pubkey_base64(base64.c_str(), ssh_key_type_from_name(type.c_str()), &key) != SSH_OK) {
        throw std::runtime_error("cannot parse the public key in " + path);
    }
    return SshKeyPtr(key);
}

/** Every certificate in a PEM file, in order. libnetconf2 reads only the first certificate of a file it is given. */
std::vector<PemCert> readPemCerts(const std::string& path)
{
    BioPtr in(BIO_new_file(path.c_str(), "r"));
    if (!in) {
        throw std::runtime_error("cannot open " + path);
    }
    std::vector<PemCert> out;
    while (X509* raw = PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr)) {
        X509Ptr cert(raw);
        unsigned char* der = nullptr;
        const int derLen = i2d_X509(cert.get(), &der);
        if (derLen <= 0) {
            throw std::runtime_error("cannot encode a certificate of " + path);
        }
        std::string base64(4 * ((derLen + 2) / 3) + 1, '\0');
        const int written
            = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(base64.data()), der, derLen); // one line, no newlines
        OPENSSL_free(der);
        base64.resize(written);
        out.push_back({ std::move(cert), std::move(base64) });
    }
    if (out.empty()) {
        throw std::runtime_error("no PEM certificate in " + path);
    }
    return out;
}

/** libnetconf2 2.0.24 cert-to-name fingerprint: "04" (SHA-256) then the digest bytes, all ':'-separated hex. */
std::string ctnFingerprint(X509* cert)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (X509_digest(cert, EVP_sha256(), digest, &len) != 1) {
        throw std::runtime_error("X509_digest failed");
    }
    std::string out = "04";
    char byte[4];
    for (unsigned int i = 0; i < len; ++i) {
        std::snprintf(byte, sizeof(byte), ":%02x", digest[i]);
        out += byte;
    }
    return out;
}

void check(int rc, const char* call)
{
    if (rc != 0) {
        throw std::runtime_error(std::string(call) + " failed");
    }
}

/** TLS: our IDevID as server certificate, the station CA as the only trust anchor for client certificates. */
void startTlsEndpoint()
{
    check(nc_server_tls_ch_client_endpt_set_server_cert(kClient, kEndpoint, kServerCertName),
        "nc_server_tls_ch_client_endpt_set_server_cert");
    check(nc_server_tls_ch_client_endpt_add_trusted_cert_list(kClient, kEndpoint, kTrustedListName),
        "nc_server_tls_ch_client_endpt_add_trusted_cert_list");
    // libnetconf2 admits a verified client only when a cert-to-name entry matches a certificate of its chain and
    // yields a username; the station CA's fingerprint mapped to a fixed user matches every station it signed.
    uint32_t id = 1;
    for (const auto& ca : readPemCerts(g_config.trustedCa)) {
        check(nc_server_tls_ch_client_endpt_add_ctn(kClient, kEndpoint, id++, ctnFingerprint(ca.cert.get()).c_str(),
                  NC_TLS_CTN_SPECIFIED, g_config.user.c_str()),
            "nc_server_tls_ch_client_endpt_add_ctn");
    }
}

void startSshEndpoint()
{
    check(nc_server_ssh_ch_client_endpt_add_hostkey(kClient, kEndpoint, kHostKeyName, -1),
        "nc_server_ssh_ch_client_endpt_add_hostkey");
    int methods = 0;
    if (g_authorizedKey) {
        methods |= NC_SSH_AUTH_PUBLICKEY;
    }
    if (!g_config.password.empty()) {
        methods |= NC_SSH_AUTH_PASSWORD;
    }
    check(nc_server_ssh_ch_client_endpt_set_auth_methods(kClient, kEndpoint, methods ? methods : NC_SSH_AUTH_PUBLICKEY),
        "nc_server_ssh_ch_client_endpt_set_auth_methods");
    check(nc_server_ssh_ch_client_endpt_set_auth_timeout(kClient, kEndpoint, 10),
        "nc_server_ssh_ch_client_endpt_set_auth_timeout");
}

/** Registers the call-home client and starts libnetconf2's dispatch thread, which keeps calling home. */
void startCallHome()
{
    check(nc_server_ch_add_client(kClient), "nc_server_ch_add_client");
    check(nc_server_ch_client_add_endpt(kClient, kEndpoint, g_config.tls ? NC_TI_OPENSSL : NC_TI_LIBSSH),
        "nc_server_ch_client_add_endpt");
    check(nc_server_ch_client_endpt_set_address(kClient, kEndpoint, g_config.host.c_str()),
        "nc_server_ch_client_endpt_set_address");
    check(nc_server_ch_client_endpt_set_port(kClient, kEndpoint, g_config.port), "nc_server_ch_client_endpt_set_port");
    if (g_config.tls) {
        startTlsEndpoint();
    } else {
        startSshEndpoint();
    }
    check(nc_server_ch_client_set_conn_type(kClient, NC_CH_PERSIST), "nc_server_ch_client_set_conn_type");
    check(nc_connect_ch_client_dispatch(kClient, sessionClb), "nc_connect_ch_client_dispatch");
}

/** Reads --chain and --trusted-ca once, before libnetconf2's threads call back for them. */
void loadTlsCertificates()
{
    const auto leaf = readPemCerts(g_config.cert);
    if (!g_config.chain.empty()) {
        // The chain file usually starts with the leaf itself; libnetconf2 wants only the certificates after it.
        for (auto& cert : readPemCerts(g_config.chain)) {
            if (X509_cmp(cert.cert.get(), leaf.front().cert.get()) != 0) {
                g_chainCerts.push_back(std::move(cert.base64Der));
            }
        }
    }
    for (auto& cert : readPemCerts(g_config.trustedCa)) {
        g_trustedCerts.push_back(std::move(cert.base64Der));
    }
}

std::string currentUser()
{
    const auto* pw = getpwuid(getuid());
    return pw ? pw->pw_name : "root";
}

int run()
{
    if (!g_config.authorizedKeyFile.empty()) {
        g_authorizedKey = loadAuthorizedKey(g_config.authorizedKeyFile);
    }
    if (g_config.tls) {
        loadTlsCertificates();
    }
    g_authLog.open(g_config.authLog);
    g_sessionsLog.open(g_config.sessionsLog);

    auto ctx = buildContext();
    g_ctx = ctx.get();
    // nc_server_init() installs its own <get-schema> only where none is set yet.
    auto* getSchema = const_cast<lysc_node*>(lys_find_path(g_ctx, nullptr, "/ietf-netconf-monitoring:get-schema", 0));
    if (!getSchema) {
        throw std::runtime_error("no get-schema RPC in the context");
    }
    getSchema->priv = reinterpret_cast<void*>(getSchemaClb);
    check(nc_server_init(g_ctx), "nc_server_init");
    nc_set_global_rpc_clb(globalRpcClb);
    nc_server_set_hello_timeout(10);
    nc_server_ssh_set_hostkey_clb(hostkeyClb, nullptr, nullptr);
    nc_server_ssh_set_passwd_auth_clb(passwordClb, nullptr, nullptr);
    nc_server_ssh_set_pubkey_auth_clb(pubkeyClb, nullptr, nullptr);
    nc_server_ssh_set_interactive_auth_clb(interactiveClb, nullptr, nullptr);
    nc_server_tls_set_server_cert_clb(serverCertClb, nullptr, nullptr);
    nc_server_tls_set_server_cert_chain_clb(serverChainClb, nullptr, nullptr);
    nc_server_tls_set_trusted_cert_list_clb(trustedCertListClb, nullptr, nullptr);

    PollSessionPtr ps(nc_ps_new());
    startCallHome();
    std::optional<std::chrono::steady_clock::time_point> redialAt;

    while (!g_stop) {
        {
            std::lock_guard lock(g_newSessionsMutex);
            for (auto* session : g_newSessions) {
                nc_ps_add_session(ps.get(), session);
                g_sessionsLog.write(
                    "established " + std::to_string(nc_session_get_id(session)) + " " + userOf(session));
            }
            g_newSessions.clear();
        }
        if (redialAt && std::chrono::steady_clock::now() >= *redialAt) {
            redialAt.reset();
            startCallHome();
        }
        if (nc_ps_session_count(ps.get()) == 0) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            continue;
        }
        nc_session* session = nullptr;
        int rc = nc_ps_poll(ps.get(), 100, &session);
        if ((rc & (NC_PSPOLL_SESSION_TERM | NC_PSPOLL_SESSION_ERROR)) && session) {
            g_sessionsLog.write("ended " + std::to_string(nc_session_get_id(session)) + " " + userOf(session)
                + " reason " + std::to_string(nc_session_get_term_reason(session)));
            nc_ps_del_session(ps.get(), session);
            if (g_config.retryMs > 0 && !redialAt) {
                // Removing the client ends libnetconf2's dispatch thread, which would otherwise redial at once.
                nc_server_ch_del_client(kClient);
                redialAt = std::chrono::steady_clock::now() + std::chrono::milliseconds(g_config.retryMs);
            }
            nc_session_free(session, nullptr);
        }
    }

    g_sessionsLog.write("stopping");
    nc_ps_clear(ps.get(), 1, nullptr);
    // No nc_server_ch_del_client()/nc_server_destroy(): libnetconf2's detached call-home thread holds the client
    // lock through a whole connect attempt (a listener that never answers keeps it for the SSH timeout), and
    // would touch freed server state. Exiting the process is the clean end here.
    std::fflush(nullptr);
    std::_Exit(0);
}
} // namespace

int main(int argc, char** argv)
{
    CLI::App app { "NETCONF test device on libnetconf2: calls home over SSH (or TLS) until SIGTERM" };
    app.add_option("--host", g_config.host, "Listener address to call home to")->capture_default_str();
    app.add_option("--port", g_config.port, "Listener port")->required();
    app.add_option("--hostkey", g_config.hostKey, "SSH host private key (from ssh-keygen); required without --tls")
        ->check(CLI::ExistingFile);
    app.add_flag("--tls", g_config.tls, "Call home over TLS (the device is the TLS server) instead of SSH");
    app.add_option("--cert", g_config.cert, "TLS: the device's certificate (PEM)")->check(CLI::ExistingFile);
    app.add_option("--key", g_config.key, "TLS: its private key (PEM)")->check(CLI::ExistingFile);
    app.add_option("--chain", g_config.chain, "TLS: PEM chain to present (the leaf, if first, is skipped)")
        ->check(CLI::ExistingFile);
    app.add_option("--trusted-ca", g_config.trustedCa,
           "TLS: CA certificate(s) that must have signed the station's client certificate (PEM). libnetconf2 "
           "2.0.24 always demands a client certificate, so this is required with --tls")
        ->check(CLI::ExistingFile);
    g_config.user = currentUser();
    app.add_option("--user", g_config.user, "The user allowed to log in (TLS: the user a verified station maps to)")
        ->capture_default_str();
    app.add_option("--password", g_config.password, "Accept password authentication with this password");
    app.add_option("--authorized-key", g_config.authorizedKeyFile, "Public key line allowed for --user")
        ->check(CLI::ExistingFile);
    app.add_option("--auth-log", g_config.authLog, "Append '<method> <user> accepted|rejected' per auth request");
    app.add_option("--sessions-log", g_config.sessionsLog, "Append a line per NETCONF session established/ended");
    app.add_option("--retry-ms", g_config.retryMs,
        "Pause before calling home again after a session ended (0: at once). A failed attempt is "
        "retried after libnetconf2's fixed 1 s.");
    app.add_option("--schemas", g_config.schemas, "Directory of extra YANG modules to serve")
        ->check(CLI::ExistingDirectory);
    CLI11_PARSE(app, argc, argv);
    if (g_config.tls && (g_config.cert.empty() || g_config.key.empty() || g_config.trustedCa.empty())) {
        std::fprintf(stderr, "callhome-test-nc2-device: --tls needs --cert, --key and --trusted-ca\n");
        return 2;
    }
    if (!g_config.tls && g_config.hostKey.empty()) {
        std::fprintf(stderr, "callhome-test-nc2-device: --hostkey is required (or use --tls)\n");
        return 2;
    }

    struct sigaction sa { };
    sa.sa_handler = onSignal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    // A listener that drops the connection must not kill the device.
    signal(SIGPIPE, SIG_IGN);

    nc_verbosity(NC_VERB_VERBOSE);
    nc_set_print_clb_session(printClb);
    try {
        return run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "callhome-test-nc2-device: %s\n", e.what());
        return 1;
    }
}
