#include "netconf/Context.h"
#include "common/Error.h"
#include "common/Log.h"
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <libyang/libyang.h>
#include <regex>
#include <unistd.h>

namespace callhome::netconf {
namespace {
namespace fs = std::filesystem;
constexpr size_t kMaxSchemaText = 8 * 1024 * 1024;

std::string param(const std::string& capability, const std::string& name)
{
    auto q = capability.find('?');
    if (q == std::string::npos) {
        return {};
    }
    for (size_t pos = q + 1; pos < capability.size();) {
        auto amp = capability.find('&', pos);
        auto item = capability.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
        if (item.rfind(name + "=", 0) == 0) {
            return item.substr(name.size() + 1);
        }
        if (amp == std::string::npos) {
            break;
        }
        pos = amp + 1;
    }
    return {};
}

std::vector<std::string> split(const std::string& s, char sep)
{
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos <= s.size()) {
        auto next = s.find(sep, pos);
        auto item = s.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
        if (!item.empty()) {
            out.push_back(item);
        }
        if (next == std::string::npos) {
            break;
        }
        pos = next + 1;
    }
    return out;
}

struct BuildState {
    std::set<SchemaRequest> missing;
};

// libyang asks here only for what the search path and the cache do not have (LY_CTX_PREFER_SEARCHDIRS): record it.
LY_ERR recordMissing(const char* modName, const char* modRev, const char* submodName, const char* submodRev,
    void* userData, LYS_INFORMAT*, const char**, ly_module_imp_data_free_clb*) noexcept
{
    try {
        auto* state = static_cast<BuildState*>(userData);
        if (submodName) {
            state->missing.insert({ submodName, submodRev ? submodRev : "" });
        } else if (modName) {
            state->missing.insert({ modName, modRev ? modRev : "" });
        }
    } catch (...) { }
    return LY_ENOTFOUND;
}

struct CtxFree {
    void operator()(ly_ctx* c) const noexcept { ly_ctx_destroy(c); }
};
using CtxPtr = std::unique_ptr<ly_ctx, CtxFree>;

const lys_module* load(ly_ctx* ctx, const ModuleRef& m)
{
    std::vector<const char*> features;
    for (const auto& f : m.features) {
        features.push_back(f.c_str());
    }
    features.push_back(nullptr);
    const char* revision = m.revision.empty() ? nullptr : m.revision.c_str();
    // Exactly the announced features (none announced: none enabled), as libnetconf2 sets them: its later
    // lys_set_implemented() with the same list is then a no-op instead of a recompilation of a shared context.
    auto* mod = ly_ctx_load_module(ctx, m.name.c_str(), revision, m.features.empty() ? nullptr : features.data());
    if (!mod && !m.features.empty()) {
        mod = ly_ctx_load_module(ctx, m.name.c_str(), revision, nullptr); // a feature the module does not define
    }
    return mod;
}
} // namespace

std::vector<ModuleRef> modulesOf(const std::vector<std::string>& capabilities)
{
    std::vector<ModuleRef> out;
    for (const auto& c : capabilities) {
        auto name = param(c, "module");
        if (name.empty()) {
            continue;
        }
        out.push_back({ name, param(c, "revision"), split(param(c, "features"), ',') });
    }
    return out;
}

Context::Context(ly_ctx* ctx, std::vector<std::string> libnetconf2Capabilities, std::vector<std::string> unavailable)
    : m_ctx(ctx)
    , m_capabilities(std::move(libnetconf2Capabilities))
    , m_unavailable(std::move(unavailable))
{ }

Context::~Context()
{
    ly_ctx_destroy(m_ctx);
}

unsigned Context::moduleCount() const
{
    uint32_t index = 0;
    unsigned n = 0;
    while (ly_ctx_get_module_iter(m_ctx, &index)) {
        ++n;
    }
    return n;
}

ContextPool::ContextPool(std::vector<std::string> searchDirs, std::string cacheDir, size_t maxContexts)
    : m_searchDirs(std::move(searchDirs))
    , m_cacheDir(std::move(cacheDir))
    , m_maxContexts(std::max<size_t>(1, maxContexts))
{ }

std::string ContextPool::keyOf(std::vector<std::string> capabilities)
{
    std::sort(capabilities.begin(), capabilities.end());
    std::string key;
    for (const auto& c : capabilities) {
        key += c;
        key += '\n';
    }
    return key;
}

BuildOutcome ContextPool::build(
    const std::vector<std::string>& capabilities, bool canFetch, const std::set<SchemaRequest>& fetched) const
{
    ly_ctx* raw = nullptr;
    if (ly_ctx_new(nullptr, LY_CTX_NO_YANGLIBRARY | LY_CTX_DISABLE_SEARCHDIR_CWD | LY_CTX_PREFER_SEARCHDIRS, &raw)
        != LY_SUCCESS) {
        throw LibraryError("ly_ctx_new", "cannot create a YANG context");
    }
    CtxPtr ctx(raw);
    std::vector<std::string> dirs = m_searchDirs;
    if (!m_cacheDir.empty()) {
        dirs.push_back(m_cacheDir);
    }
    for (const auto& dir : dirs) {
        std::error_code ec;
        if (fs::is_directory(dir, ec)) {
            ly_ctx_set_searchdir(ctx.get(), dir.c_str());
        }
    }
    BuildState state;
    ly_ctx_set_module_imp_clb(ctx.get(), recordMissing, &state);

    auto modules = modulesOf(capabilities);
    std::set<std::string> failed;
    auto netconf = std::find_if(modules.begin(), modules.end(), [](const auto& m) { return m.name == "ietf-netconf"; });
    // Unannounced, ietf-netconf gets every feature so that any operation can be built.
    ModuleRef base = netconf != modules.end() ? *netconf : ModuleRef { "ietf-netconf", "", { "*" } };
    if (!load(ctx.get(), base)) {
        failed.insert("ietf-netconf");
    }
    for (const auto& m : modules) {
        if (m.name == "ietf-netconf") {
            continue;
        }
        if (!load(ctx.get(), m)) {
            failed.insert(m.name);
        }
    }
    // libyang also asks for imports it then resolves itself (its built-in modules): only a module that failed to
    // load makes the missing schemas worth a round trip.
    std::set<SchemaRequest> toFetch;
    for (const auto& r : failed.empty() ? std::set<SchemaRequest> {} : state.missing) {
        if (!fetched.count(r) && !ly_ctx_get_module_latest(ctx.get(), r.identifier.c_str())) {
            toFetch.insert(r);
        }
    }
    if (canFetch && !toFetch.empty()) {
        return BuildOutcome { nullptr, std::move(toFetch) };
    }
    ly_ctx_set_module_imp_clb(ctx.get(), nullptr, nullptr);

    // The <hello> libnetconf2 sees: nothing that would make it fetch schemas or read yang-library over the network,
    // and every loaded module with its revision (libnetconf2 looks a module up by revision, else it tries to load it).
    std::vector<std::string> forLibnetconf2;
    std::vector<std::string> unavailable;
    for (const auto& c : capabilities) {
        if (c.rfind("urn:ietf:params:netconf:capability:yang-library:", 0) == 0) {
            continue;
        }
        auto name = param(c, "module");
        if (name.empty()) {
            forLibnetconf2.push_back(c);
            continue;
        }
        if (name == "ietf-netconf-monitoring") {
            continue; // loaded (when available), but announcing it would turn on libnetconf2's <get-schema>
        }
        auto revision = param(c, "revision");
        auto* mod = ly_ctx_get_module_implemented(ctx.get(), name.c_str());
        if (!mod || failed.count(name)) {
            unavailable.push_back(name + (revision.empty() ? "" : "@" + revision));
            continue;
        }
        if (revision.empty()) {
            if (!mod->revision) {
                continue;
            }
            forLibnetconf2.push_back(c + "&revision=" + mod->revision);
        } else {
            forLibnetconf2.push_back(c);
        }
    }
    auto context = std::make_shared<Context>(ctx.release(), std::move(forLibnetconf2), std::move(unavailable));
    return BuildOutcome { std::move(context), {} };
}

bool ContextPool::storeSchema(const SchemaRequest& request, const std::string& text) const
{
    static const std::regex name("[A-Za-z_][A-Za-z0-9_.-]{0,127}");
    static const std::regex revision("[0-9]{4}-[0-9]{2}-[0-9]{2}");
    if (m_cacheDir.empty() || !std::regex_match(request.identifier, name)
        || (!request.revision.empty() && !std::regex_match(request.revision, revision)) || text.empty()
        || text.size() > kMaxSchemaText) {
        return false;
    }
    auto start = text.find_first_not_of(" \t\r\n");
    if (start == std::string::npos
        || (text.compare(start, 6, "module") != 0 && text.compare(start, 9, "submodule") != 0)) {
        return false; // YANG text only (we ask for format yang)
    }
    std::error_code ec;
    fs::create_directories(m_cacheDir, ec);
    fs::permissions(m_cacheDir, fs::perms::owner_all, ec);
    auto file = fs::path(m_cacheDir)
        / (request.identifier + (request.revision.empty() ? "" : "@" + request.revision) + ".yang");
    auto tmp = file;
    tmp += ".tmp" + std::to_string(::getpid()) + "-" + std::to_string(std::hash<std::string>()(text));
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << text;
        if (!out.flush()) {
            fs::remove(tmp, ec);
            return false;
        }
    }
    fs::rename(tmp, file, ec);
    if (ec) {
        fs::remove(tmp, ec);
        return false;
    }
    ++m_stored;
    return true;
}

ContextPool::Claim ContextPool::claim(const std::string& key, uint64_t waiterId, Waiter waiter)
{
    std::lock_guard lock(m_mutex);
    auto& e = m_entries[key];
    if (e.context) {
        e.lastUse = ++m_clock;
        return Claim { e.context, false };
    }
    if (!e.building) {
        e.building = true;
        return Claim { nullptr, true };
    }
    e.waiters.emplace_back(waiterId, std::move(waiter));
    return Claim {};
}

void ContextPool::cancel(const std::string& key, uint64_t waiterId)
{
    std::lock_guard lock(m_mutex);
    if (auto it = m_entries.find(key); it != m_entries.end()) {
        it->second.waiters.remove_if([&](const auto& w) { return w.first == waiterId; });
    }
}

void ContextPool::publish(const std::string& key, const std::shared_ptr<Context>& context)
{
    std::list<std::pair<uint64_t, Waiter>> waiters;
    {
        std::lock_guard lock(m_mutex);
        auto& e = m_entries[key];
        e.context = context;
        e.building = false;
        e.lastUse = ++m_clock;
        waiters.swap(e.waiters);
        ++m_created;
        evictLocked();
    }
    for (auto& [id, w] : waiters) {
        w(context, false);
    }
}

void ContextPool::abandon(const std::string& key)
{
    Waiter next;
    {
        std::lock_guard lock(m_mutex);
        auto it = m_entries.find(key);
        if (it == m_entries.end()) {
            return;
        }
        auto& e = it->second;
        if (e.waiters.empty()) {
            e.building = false;
            if (!e.context) {
                m_entries.erase(it);
            }
            return;
        }
        next = std::move(e.waiters.front().second); // stays "building": the waiter takes over
        e.waiters.pop_front();
    }
    next(nullptr, true);
}

void ContextPool::evictLocked()
{
    auto pooled = [&] {
        return static_cast<size_t>(std::count_if(
            m_entries.begin(), m_entries.end(), [](const auto& kv) { return kv.second.context != nullptr; }));
    };
    while (pooled() > m_maxContexts) {
        auto victim = m_entries.end();
        for (auto it = m_entries.begin(); it != m_entries.end(); ++it) {
            const auto& e = it->second;
            if (e.context && e.context.use_count() == 1 && e.waiters.empty() && !e.building
                && (victim == m_entries.end() || e.lastUse < victim->second.lastUse)) {
                victim = it;
            }
        }
        if (victim == m_entries.end()) {
            return; // every pooled context is in use: the bound is on unused ones
        }
        log::get(log::Netconf)
            ->debug("evicting an unused YANG context ({} modules)", victim->second.context->moduleCount());
        m_entries.erase(victim);
    }
}

size_t ContextPool::created() const
{
    std::lock_guard lock(m_mutex);
    return m_created;
}

size_t ContextPool::size() const
{
    std::lock_guard lock(m_mutex);
    return static_cast<size_t>(
        std::count_if(m_entries.begin(), m_entries.end(), [](const auto& kv) { return kv.second.context != nullptr; }));
}
} // namespace callhome::netconf
