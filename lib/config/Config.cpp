#include "config/Config.h"
#include "inventory/Open.h"
#include <algorithm>
#include <arpa/inet.h>
#include <filesystem>
#include <fstream>
#include <libyang/libyang.h>
#include <locale>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>

namespace callhome::config::embedded {
extern const std::vector<std::pair<std::string_view, std::string_view>> yang;
}

namespace callhome::config {
namespace {
namespace fs = std::filesystem;

struct LyCtxFree {
    void operator()(ly_ctx* c) const noexcept { ly_ctx_destroy(c); }
};
using LyCtxPtr = std::unique_ptr<ly_ctx, LyCtxFree>;
struct LydFree {
    void operator()(lyd_node* n) const noexcept { lyd_free_all(n); }
};
using LydPtr = std::unique_ptr<lyd_node, LydFree>;

std::string lastError(const ly_ctx* ctx)
{
    const ly_err_item* e = ly_err_last(ctx);
    if (!e) {
        return "invalid data";
    }
    std::string msg = e->msg ? e->msg : "invalid data";
    if (e->path && *e->path) {
        return std::string(e->path) + ": " + msg;
    }
    return msg;
}

std::optional<std::string> leaf(const lyd_node* tree, const char* path)
{
    lyd_node* node = nullptr;
    if (!tree || lyd_find_path(tree, path, 0, &node) != LY_SUCCESS || !node) {
        return std::nullopt;
    }
    return std::string(lyd_get_value(node));
}

std::string hostName()
{
    char buf[256] = {};
    return ::gethostname(buf, sizeof buf - 1) == 0 && buf[0] ? buf : "localhost";
}

bool isIpAddress(const std::string& a)
{
    unsigned char buf[sizeof(in6_addr)];
    return inet_pton(AF_INET, a.c_str(), buf) == 1 || inet_pton(AF_INET6, a.c_str(), buf) == 1;
}

std::string readFile(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw ConfigError(path + ": cannot read the configuration file");
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}
} // namespace

std::string Endpoint::toString() const
{
    bool v6 = address.find(':') != std::string::npos;
    return std::string(transport == Transport::Tls ? "tls:" : "ssh:") + (v6 ? "[" + address + "]" : address) + ":"
        + std::to_string(port);
}

bool Config::hasTls() const
{
    return std::any_of(listen.begin(), listen.end(), [](const Endpoint& e) { return e.transport == Transport::Tls; });
}

std::string_view yangModule()
{
    return embedded::yang.at(0).second;
}

std::vector<std::string> restartNeeded(const Config& running, const Config& next)
{
    std::vector<std::string> out;
    auto check = [&](bool differs, const char* path) {
        if (differs) {
            out.emplace_back(path);
        }
    };
    // A first tls endpoint needs the TLS client context and trust store that are built only at start.
    check(!running.hasTls() && next.hasTls(), "listen (a first tls endpoint)");
    check(running.stateDir != next.stateDir, "state-dir");
    check(running.inventoryPath != next.inventoryPath, "inventory");
    check(running.listenerId != next.listenerId, "listener-id");
    check(running.sshKeyFile != next.sshKeyFile, "ssh/key-file");
    check(running.credentialsPath != next.credentialsPath, "ssh/credentials-file");
    check(running.trustStore != next.trustStore, "tls/trust-store");
    check(running.crlExpired != next.crlExpired, "tls/crl-expired");
    check(running.manufacturers != next.manufacturers, "tls/manufacturer");
    check(running.certToName != next.certToName, "tls/cert-to-name");
    check(running.eventLoops != next.eventLoops, "limits/event-loops");
    check(running.maxContexts != next.maxContexts, "limits/max-contexts");
    check(running.control != next.control, "control");
    // The inventory and setup queues are sized from it at start.
    check(running.admission.maxHandshakes != next.admission.maxHandshakes, "admission/max-handshakes");
    check(running.admission.summaryInterval != next.admission.summaryInterval, "admission/summary-interval");
    check(running.yangSearchDirs != next.yangSearchDirs, "yang/search-dir");
    check(running.admission.maxPending != next.admission.maxPending, "admission/max-pending");
    check(running.admission.maxPendingPerSource != next.admission.maxPendingPerSource,
        "admission/max-pending-per-source");
    check(running.inventoryGroup != next.inventoryGroup, "inventory-group");
    return out;
}

Endpoint parseEndpoint(const std::string& text)
{
    auto bad = [&](const std::string& why) {
        return ConfigError("--listen " + text + ": " + why
            + " (expected ssh:ADDRESS:PORT or tls:ADDRESS:PORT, e.g. ssh:127.0.0.1:4334 or tls:[::1]:4335)");
    };
    auto colon = text.find(':');
    if (colon == std::string::npos) {
        throw bad("missing transport");
    }
    std::string transport = text.substr(0, colon);
    if (transport != "ssh" && transport != "tls") {
        throw bad("unknown transport '" + transport + "'");
    }
    std::string rest = text.substr(colon + 1);
    std::string address, port;
    if (!rest.empty() && rest[0] == '[') {
        auto close = rest.find(']');
        if (close == std::string::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
            throw bad("malformed [IPv6]:PORT");
        }
        address = rest.substr(1, close - 1);
        port = rest.substr(close + 2);
    } else {
        auto last = rest.rfind(':');
        if (last == std::string::npos) {
            throw bad("missing port");
        }
        address = rest.substr(0, last);
        port = rest.substr(last + 1);
        if (address.find(':') != std::string::npos) {
            throw bad("IPv6 addresses go in brackets");
        }
    }
    if (!isIpAddress(address)) {
        throw bad("'" + address + "' is not a numeric IP address");
    }
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos
        || std::stoul(port) > 65535) {
        throw bad("'" + port + "' is not a port number");
    }
    Endpoint e;
    e.name = text;
    e.transport = transport == "tls" ? Transport::Tls : Transport::Ssh;
    e.address = address;
    e.port = static_cast<uint16_t>(std::stoul(port));
    return e;
}

Config load(const std::optional<std::string>& file, const Overrides& overrides)
{
    // Errors are read back from the context; libyang must not print them on its own.
    ly_log_options(LY_LOSTORE_LAST);
    ly_ctx* raw = nullptr;
    if (ly_ctx_new(nullptr, LY_CTX_NO_YANGLIBRARY, &raw) != LY_SUCCESS) {
        throw ConfigError("cannot create a libyang context");
    }
    LyCtxPtr ctx(raw);
    const std::string module(yangModule());
    if (lys_parse_mem(ctx.get(), module.c_str(), LYS_IN_YANG, nullptr) != LY_SUCCESS) {
        throw ConfigError("embedded callhome-config module: " + lastError(ctx.get()));
    }

    std::string where = file ? *file : "embedded defaults";
    std::string text = "{}";
    if (file) {
        text = readFile(*file);
        // libyang 2.1.30 accepts some truncated JSON documents (e.g. a file cut off after a member name) as empty.
        try {
            [[maybe_unused]] auto parsed = nlohmann::json::parse(text);
        } catch (const nlohmann::json::parse_error& e) {
            throw ConfigError(where + ": not valid JSON: " + e.what());
        }
    }
    lyd_node* treeRaw = nullptr;
    if (lyd_parse_data_mem(ctx.get(), text.c_str(), LYD_JSON, LYD_PARSE_STRICT, LYD_VALIDATE_PRESENT, &treeRaw)
        != LY_SUCCESS) {
        throw ConfigError(where + ": " + lastError(ctx.get()));
    }
    LydPtr tree(treeRaw);
    // Defaults of the non-presence containers are only instantiated when some data of the module exists.
    if (lyd_new_implicit_all(&treeRaw, ctx.get(), 0, nullptr) != LY_SUCCESS) {
        throw ConfigError(where + ": " + lastError(ctx.get()));
    }
    tree.release();
    tree.reset(treeRaw);

    Config c;
    const char* root = "/callhome-config:callhome";
    auto get = [&](const std::string& rel) { return leaf(tree.get(), (std::string(root) + "/" + rel).c_str()); };

    if (auto v = get("state-dir")) {
        c.stateDir = *v;
    }
    if (overrides.stateDir) {
        c.stateDir = *overrides.stateDir;
    }
    c.inventoryPath = overrides.inventoryPath
        ? *overrides.inventoryPath
        : get("inventory").value_or((fs::path(c.stateDir) / "inventory.db").string());
    c.inventoryGroup = get("inventory-group");
    if (c.inventoryGroup && inventory::isPostgresSpec(c.inventoryPath)) {
        throw ConfigError(where + ": inventory-group applies to a SQLite inventory file; the inventory "
            + inventory::redactSpec(c.inventoryPath)
            + " is PostgreSQL (grant its readers access in PostgreSQL instead)");
    }
    c.listenerId = get("listener-id").value_or(hostName());
    c.sshUser = get("ssh/user").value_or("netconf");
    if (auto k = get("ssh/key-file")) {
        c.sshKeyFile = *k;
        c.sshKeyFileExplicit = true;
    } else {
        c.sshKeyFile = (fs::path(c.stateDir) / "station-key").string();
    }
    c.sshPassword = get("ssh/password");
    c.credentialsPath = get("ssh/credentials-file").value_or((fs::path(c.stateDir) / "credentials.db").string());
    c.handshakeTimeout = std::chrono::seconds(std::stoul(get("timeouts/handshake").value_or("15")));
    c.keepaliveInterval = std::chrono::seconds(std::stoul(get("timeouts/keepalive-interval").value_or("30")));
    c.deadPeer = std::chrono::seconds(std::stoul(get("timeouts/dead-peer").value_or("120")));
    c.keepaliveCountMax = std::stoul(get("timeouts/keepalive-count-max").value_or("3"));
    c.closeTimeout = std::chrono::seconds(std::stoul(get("timeouts/close").value_or("2")));
    c.schemaFetchTimeout = std::chrono::seconds(std::stoul(get("timeouts/schema-fetch").value_or("60")));
    c.eventLoops = std::stoul(get("limits/event-loops").value_or("0"));
    c.maxMessage = std::stoul(get("limits/max-message").value_or("67108864"));
    c.maxContexts = std::stoul(get("limits/max-contexts").value_or("64"));
    {
        auto& a = c.admission;
        auto number = [&](const char* rel, uint32_t fallback) {
            auto v = get(std::string("admission/") + rel);
            return v ? static_cast<uint32_t>(std::stoul(*v)) : fallback;
        };
        a.maxHandshakes = number("max-handshakes", a.maxHandshakes);
        a.perSourceHandshakes = number("per-source-handshakes", a.perSourceHandshakes);
        // decimal64 in canonical form ("50.0"): locale-independent digits and a '.'
        if (auto rate = get("admission/per-source-rate")) {
            std::istringstream in(*rate);
            in.imbue(std::locale::classic());
            in >> a.perSourceRate;
        }
        a.perSourceBurst = number("per-source-burst", a.perSourceBurst);
        a.blockAfterFailures = number("block-after-failures", a.blockAfterFailures);
        a.failureWindow = std::chrono::seconds(number("failure-window", 60));
        a.blockDuration = std::chrono::seconds(number("block-duration", 600));
        a.summaryInterval = std::chrono::seconds(number("summary-interval", 10));
        a.maxPending = number("max-pending", a.maxPending);
        a.maxPendingPerSource = number("max-pending-per-source", a.maxPendingPerSource);
    }
    c.retention.eventMaxAge = std::chrono::days(std::stoul(get("retention/event-max-age").value_or("90")));
    c.retention.eventMaxRows = std::stoull(get("retention/event-max-rows").value_or("0"));

    {
        auto& k = c.control;
        k.socket = overrides.controlSocket
            ? *overrides.controlSocket
            : get("control/socket").value_or((fs::path(c.stateDir) / "control.sock").string());
        k.group = get("control/group");
        k.rpcTimeout = std::chrono::seconds(std::stoul(get("control/rpc-timeout").value_or("60")));
        k.maxRequest = std::stoul(get("control/max-request").value_or("16777216"));
        k.maxStreams = std::stoul(get("control/max-streams").value_or("1024"));
        k.streamBuffer = std::stoul(get("control/stream-buffer").value_or("4194304"));
        k.threads = std::stoul(get("control/threads").value_or("2"));
        if (lyd_node* tcp = nullptr;
            lyd_find_path(tree.get(), "/callhome-config:callhome/control/tcp", 0, &tcp) == LY_SUCCESS) {
            ControlSettings::Tcp t;
            t.address = leaf(tcp, "address").value_or("::1");
            t.port = static_cast<uint16_t>(std::stoul(leaf(tcp, "port").value_or("4336")));
            t.certificate = leaf(tcp, "certificate").value_or("");
            t.key = leaf(tcp, "key").value_or("");
            t.clientCa = leaf(tcp, "client-ca").value_or("");
            k.tcp = t;
        }
        if (lyd_node* fwd = nullptr;
            lyd_find_path(tree.get(), "/callhome-config:callhome/control/forward", 0, &fwd) == LY_SUCCESS) {
            ControlSettings::Forward f;
            f.advertise = leaf(fwd, "advertise").value_or(k.tcp ? k.tcp->address : std::string {});
            f.certificate = leaf(fwd, "certificate").value_or("");
            f.key = leaf(fwd, "key").value_or("");
            f.ca = leaf(fwd, "ca").value_or("");
            k.forward = f;
        }
    }

    {
        auto& h = c.hooks;
        auto argv = [&](const char* hook) {
            std::vector<std::string> out;
            ly_set* found = nullptr;
            auto path = std::string(root) + "/hooks/" + hook + "/command";
            if (lyd_find_xpath(tree.get(), path.c_str(), &found) == LY_SUCCESS) {
                for (uint32_t i = 0; i < found->count; ++i) {
                    out.emplace_back(lyd_get_value(found->dnodes[i]));
                }
                ly_set_free(found, nullptr);
            }
            return out;
        };
        h.onPending = argv("on-pending");
        h.onConnect = argv("on-connect");
        h.onDisconnect = argv("on-disconnect");
        h.onRefused = argv("on-refused");
        h.maxConcurrent = std::stoul(get("hooks/max-concurrent").value_or("4"));
        h.maxQueued = std::stoul(get("hooks/max-queued").value_or("1024"));
        h.timeout = std::chrono::seconds(std::stoul(get("hooks/timeout").value_or("30")));
        h.maxOutput = std::stoul(get("hooks/max-output").value_or("4096"));
    }

    if (file && c.sshPassword) {
        struct stat st { };
        if (::stat(file->c_str(), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO))) {
            throw ConfigError(*file + ": contains ssh/password but is accessible by group or others (chmod 600)");
        }
    }

    ly_set* set = nullptr;
    if (lyd_find_xpath(tree.get(), "/callhome-config:callhome/yang/search-dir", &set) == LY_SUCCESS) {
        for (uint32_t i = 0; i < set->count; ++i) {
            c.yangSearchDirs.emplace_back(lyd_get_value(set->dnodes[i]));
        }
        ly_set_free(set, nullptr);
    }
    if (c.yangSearchDirs.empty()) {
        c.yangSearchDirs.emplace_back("/usr/share/yuma/modules/ietf");
    }

    if (!overrides.listen.empty()) {
        for (const auto& l : overrides.listen) {
            c.listen.push_back(parseEndpoint(l));
        }
    } else if (lyd_find_xpath(tree.get(), "/callhome-config:callhome/listen", &set) == LY_SUCCESS) {
        for (uint32_t i = 0; i < set->count; ++i) {
            Endpoint e;
            auto sub = [&](const char* name) { return leaf(set->dnodes[i], name); };
            e.name = sub("name").value_or("");
            e.transport = sub("transport").value_or("ssh") == "tls" ? Transport::Tls : Transport::Ssh;
            e.address = sub("address").value_or("::");
            e.port = static_cast<uint16_t>(
                std::stoul(sub("port").value_or(e.transport == Transport::Tls ? "4335" : "4334")));
            c.listen.push_back(e);
        }
        ly_set_free(set, nullptr);
    }
    if (c.listen.empty()) {
        c.listen.push_back(Endpoint { "default", Transport::Ssh, "::", 4334 });
    }

    c.trustStore = overrides.trustStore ? overrides.trustStore : get("tls/trust-store");
    c.crlExpired
        = get("tls/crl-expired").value_or("fail-closed") == "ignore" ? CrlExpired::Ignore : CrlExpired::FailClosed;
    if (lyd_find_xpath(tree.get(), "/callhome-config:callhome/tls/manufacturer", &set) == LY_SUCCESS) {
        for (uint32_t i = 0; i < set->count; ++i) {
            auto sub = [&](const char* name) { return leaf(set->dnodes[i], name); };
            c.manufacturers.push_back(
                { sub("name").value_or(""), sub("serial-source").value_or("subject-serial-number"),
                    sub("ignore-lifetime").value_or("false") == "true" });
        }
        ly_set_free(set, nullptr);
    }
    if (lyd_find_xpath(tree.get(), "/callhome-config:callhome/tls/cert-to-name", &set) == LY_SUCCESS) {
        for (uint32_t i = 0; i < set->count; ++i) {
            auto sub = [&](const char* name) { return leaf(set->dnodes[i], name); };
            CertToName rule { static_cast<uint32_t>(std::stoul(sub("id").value_or("0"))),
                sub("fingerprint").value_or(""), sub("map-type").value_or(""), sub("name").value_or("") };
            if (rule.mapType == "specified" && rule.name.empty()) {
                ly_set_free(set, nullptr);
                throw ConfigError(where + ": /callhome-config:callhome/tls/cert-to-name[id='" + std::to_string(rule.id)
                    + "']/name: map-type specified needs a name");
            }
            c.certToName.push_back(rule);
        }
        ly_set_free(set, nullptr);
        std::sort(c.certToName.begin(), c.certToName.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    }
    c.logLevels.all = log::parseLevel(get("log/level").value_or("info"));
    if (lyd_find_xpath(tree.get(), "/callhome-config:callhome/log/subsystem", &set) == LY_SUCCESS) {
        for (uint32_t i = 0; i < set->count; ++i) {
            auto sub = [&](const char* name) { return leaf(set->dnodes[i], name); };
            // The YANG enumerations are exactly log::Subsystems and the level names parseLevel() takes.
            c.logLevels.subsystems[sub("name").value_or("")] = log::parseLevel(sub("level").value_or("info"));
        }
        ly_set_free(set, nullptr);
    }
    c.duplicateSessions = get("sessions/duplicate").value_or("replace") == "refuse" ? DuplicateSessions::Refuse
                                                                                    : DuplicateSessions::Replace;
    if (lyd_find_xpath(tree.get(), "/callhome-config:callhome/admission/auto-approve/rule", &set) == LY_SUCCESS) {
        std::unique_ptr<ly_set, void (*)(ly_set*)> held(set, [](ly_set* s) { ly_set_free(s, nullptr); });
        for (uint32_t i = 0; i < set->count; ++i) {
            auto* node = set->dnodes[i];
            auto sub = [&](const char* name) { return leaf(node, name); };
            AutoApproveRule rule;
            rule.name = sub("name").value_or("");
            const auto path
                = where + ": /callhome-config:callhome/admission/auto-approve/rule[name='" + rule.name + "']";
            ly_set* sources = nullptr;
            if (lyd_find_xpath(node, "source", &sources) == LY_SUCCESS) {
                std::unique_ptr<ly_set, void (*)(ly_set*)> heldSources(
                    sources, [](ly_set* s) { ly_set_free(s, nullptr); });
                for (uint32_t j = 0; j < sources->count; ++j) {
                    try {
                        rule.sources.push_back(parsePrefix(lyd_get_value(sources->dnodes[j])));
                    } catch (const UsageError& e) {
                        throw ConfigError(path + "/source: " + e.what());
                    }
                }
            }
            if (auto t = sub("transport")) {
                rule.transport = *t == "tls" ? Transport::Tls : Transport::Ssh;
            }
            rule.manufacturer = sub("manufacturer");
            rule.namePrefix = sub("name-prefix").value_or("");
            rule.sshUser = sub("ssh-user");
            if (rule.namePrefix.find_first_not_of("0123456789") == std::string::npos) {
                throw ConfigError(path + "/name-prefix: all digits would name devices like ids; add a letter");
            }
            if (rule.sources.empty() && !rule.manufacturer) {
                throw ConfigError(path
                    + ": a rule needs a source or a manufacturer (one with neither would approve "
                      "every device that calls)");
            }
            if (rule.manufacturer && rule.transport == Transport::Ssh) {
                throw ConfigError(path + "/manufacturer: only TLS devices have a manufacturer (transport is ssh)");
            }
            if (rule.sshUser && (rule.manufacturer || rule.transport == Transport::Tls)) {
                throw ConfigError(path + "/ssh-user: the rule approves TLS devices only");
            }
            c.autoApprove.push_back(std::move(rule));
        }
    }
    if (c.hasTls() && !c.trustStore) {
        throw ConfigError(where + ": a tls endpoint needs a trust store (tls/trust-store or --trust-store)");
    }
    return c;
}
} // namespace callhome::config
