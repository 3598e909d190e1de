#include "identity/TrustStoreHolder.h"
#include "common/Log.h"
#include <algorithm>
#include <filesystem>
#include <sys/stat.h>

namespace callhome::identity {
namespace fs = std::filesystem;

namespace {
void logLoaded(const TrustStore& store, const char* what)
{
    auto logger = log::get(log::Identity);
    logger->info("trust store {} {}: {} manufacturer(s), tls/crl-expired {}", store.directory(), what,
        store.manufacturers().size(), store.crlExpired() == config::CrlExpired::Ignore ? "ignore" : "fail-closed");
    const auto t = now();
    for (const auto& m : store.manufacturers()) {
        const bool stale = std::any_of(
            m.crls.begin(), m.crls.end(), [&](const CrlInfo& c) { return c.nextUpdate && *c.nextUpdate < t; });
        logger->log(stale ? spdlog::level::warn : spdlog::level::info, "{}", describe(m));
    }
}
} // namespace

TrustStoreHolder::TrustStoreHolder(
    std::string directory, std::vector<config::ManufacturerOptions> options, config::CrlExpired crlExpired)
    : m_directory(std::move(directory))
    , m_options(std::move(options))
    , m_crlExpired(crlExpired)
{
    // Scanned before reading, so a file replaced while it is read is seen as changed by the next check.
    m_seen = scan();
    m_current = std::make_shared<const TrustStore>(TrustStore::load(m_directory, m_options, m_crlExpired));
    logLoaded(*m_current, "loaded");
}

std::shared_ptr<const TrustStore> TrustStoreHolder::current() const
{
    std::lock_guard lock(m_currentMutex);
    return m_current;
}

ReloadResult TrustStoreHolder::reload()
{
    std::lock_guard lock(m_reloadMutex);
    return reloadFrom(scan());
}

bool TrustStoreHolder::reloadIfChanged()
{
    std::lock_guard lock(m_reloadMutex);
    auto files = scan();
    if (files == m_seen) {
        return false;
    }
    log::get(log::Identity)->info("trust store {}: files changed, reloading", m_directory);
    return reloadFrom(std::move(files)).ok;
}

TrustStoreHolder::FileState TrustStoreHolder::stateOf(const std::string& path)
{
    FileState f;
    f.path = path;
    struct stat st { };
    // stat, not lstat: a symlink swapped to a new target (e.g. a mounted Kubernetes ConfigMap) is a change.
    if (::stat(f.path.c_str(), &st) == 0) {
        f.exists = true;
        f.device = st.st_dev;
        f.inode = st.st_ino;
        f.size = static_cast<unsigned long long>(st.st_size);
        f.mtimeNs = static_cast<long long>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
        f.ctimeNs = static_cast<long long>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec;
    }
    return f;
}

std::vector<TrustStoreHolder::FileState> TrustStoreHolder::scan() const
{
    std::vector<FileState> out;
    const auto mdir = fs::path(m_directory) / "manufacturers";
    std::vector<fs::path> folders;
    std::error_code ec;
    // A directory that cannot be listed right now is a state too (no folders); reading it will say why.
    for (fs::directory_iterator it(mdir, ec), end; !ec && it != end; it.increment(ec)) {
        std::error_code typeError;
        if (it->is_directory(typeError)) {
            folders.push_back(it->path());
        }
    }
    std::sort(folders.begin(), folders.end());
    out.push_back(stateOf(mdir.string()));
    out.back().mtimeNs = out.back().ctimeNs = 0; // folder listing below; not touched by edits inside folders
    for (const auto& f : folders) {
        out.push_back({ .path = f.string(), .exists = true });
        out.push_back(stateOf((f / "ca.pem").string()));
        out.push_back(stateOf((f / "crl.pem").string()));
    }
    return out;
}

ReloadResult TrustStoreHolder::reloadFrom(std::vector<FileState> files)
{
    // Recorded whether or not the load succeeds: a broken file is reported once, not on every timer tick.
    m_seen = std::move(files);
    try {
        auto fresh = std::make_shared<const TrustStore>(TrustStore::load(m_directory, m_options, m_crlExpired));
        logLoaded(*fresh, "reloaded");
        ReloadResult r { true,
            "trust store " + m_directory + " reloaded: " + std::to_string(fresh->manufacturers().size())
                + " manufacturer(s)" };
        {
            std::lock_guard lock(m_currentMutex);
            m_current.swap(fresh);
        }
        // `fresh` now holds the previous store; it is freed here or when the last snapshot of it is dropped.
        return r;
    } catch (const std::exception& e) {
        ReloadResult r { false,
            "trust store " + m_directory + ": reload failed, keeping the previous anchors and CRLs: " + e.what() };
        log::get(log::Identity)->error("{}", r.message);
        return r;
    }
}
} // namespace callhome::identity
