#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <tuple>
#include <vector>

struct ly_ctx;

namespace callhome::netconf {
/** A module as a device announces it in its <hello> (RFC 6020 §5.6.4 capability). */
struct ModuleRef {
    std::string name;
    std::string revision; ///< may be empty
    std::vector<std::string> features;
};
/** The module capabilities of a <hello>; other capabilities are skipped. */
std::vector<ModuleRef> modulesOf(const std::vector<std::string>& capabilities);

/** One <get-schema> to send to a device (RFC 6022): a module or submodule it uses that we do not have. */
struct SchemaRequest {
    std::string identifier;
    std::string revision; ///< may be empty
    bool operator<(const SchemaRequest& o) const
    {
        return std::tie(identifier, revision) < std::tie(o.identifier, o.revision);
    }
};

/**
 * A complete libyang context for one module set, built before any session uses it and never filled by libnetconf2:
 * the <hello> libnetconf2 is shown (libnetconf2Capabilities) announces only what is loaded here, with revisions, and
 * neither <get-schema> nor yang-library, so nc_connect_inout finds every module present and sends no RPC of its own.
 * nc_connect_inout still flips context flags while it checks, so it runs under the exclusive lock (local work only:
 * the device's <hello> is already buffered); everything else takes the lock shared.
 */
class Context {
public:
    Context(ly_ctx* ctx, std::vector<std::string> libnetconf2Capabilities, std::vector<std::string> unavailable);
    ~Context();
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    ly_ctx* get() const noexcept { return m_ctx; }
    std::shared_mutex& mutex() noexcept { return m_mutex; }
    /** Number of modules loaded (memory figure for logs and the benchmark). */
    unsigned moduleCount() const;
    const std::vector<std::string>& libnetconf2Capabilities() const noexcept { return m_capabilities; }
    /** Announced modules that could be found neither locally nor from the device ("name@revision"). */
    const std::vector<std::string>& unavailable() const noexcept { return m_unavailable; }

private:
    ly_ctx* m_ctx = nullptr;
    std::vector<std::string> m_capabilities;
    std::vector<std::string> m_unavailable;
    std::shared_mutex m_mutex;
};

/** What one build attempt produced: a finished context, or the schemas to fetch from the device first. */
struct BuildOutcome {
    std::shared_ptr<Context> context;
    std::set<SchemaRequest> fetch;
};

/**
 * YANG contexts shared between devices that announce the same module set, first sessions included: the first device
 * of a set builds its context (local search path and the on-disk schema cache first, then <get-schema> from that
 * device for what is missing); devices of the same set arriving meanwhile wait for it instead of building their own.
 * Contexts nobody uses are evicted beyond `maxContexts`. Thread-safe.
 */
class ContextPool {
public:
    ContextPool(std::vector<std::string> searchDirs, std::string cacheDir, size_t maxContexts = 64);
    ContextPool(const ContextPool&) = delete;
    ContextPool& operator=(const ContextPool&) = delete;

    /**
     * Called with the context once it is built (from any thread), or with nullptr when the builder gave up: the
     * waiter is then the builder (`build` true).
     */
    using Waiter = std::function<void(std::shared_ptr<Context> context, bool build)>;
    struct Claim {
        std::shared_ptr<Context> ready; ///< pooled already
        bool build = false; ///< the caller builds it, then publish() or abandon()
        /// neither: `waiter` will be called
    };
    Claim claim(const std::string& key, uint64_t waiterId, Waiter waiter);
    /** The waiting connection went away. */
    void cancel(const std::string& key, uint64_t waiterId);
    /** The builder's result: pooled, and every waiter gets it. */
    void publish(const std::string& key, const std::shared_ptr<Context>& context);
    /** The builder could not finish (its device went away): the next waiter builds. */
    void abandon(const std::string& key);

    /**
     * One build attempt (CPU only, no network): loads ietf-netconf and every announced module with its features from
     * the search path and the cache. Missing schemas not yet in `fetched` are returned to be fetched when the device
     * supports <get-schema>; otherwise the context is finished without them.
     */
    BuildOutcome build(
        const std::vector<std::string>& capabilities, bool canFetch, const std::set<SchemaRequest>& fetched) const;
    /**
     * Stores a schema a device served in the cache (atomically; file name from the module name and revision, which
     * are checked). False when the name or text is unusable.
     */
    bool storeSchema(const SchemaRequest& request, const std::string& text) const;

    size_t size() const;
    /** Schemas fetched from devices and stored in the cache so far (a restart with a warm cache fetches none). */
    size_t stored() const noexcept { return m_stored.load(); }
    /** Contexts built so far (each one costs parsing, and <get-schema> round trips, for its module set). */
    size_t created() const;
    /** The key of a module set: the sorted capability URIs, one per line. */
    static std::string keyOf(std::vector<std::string> capabilities);

private:
    struct Entry {
        std::shared_ptr<Context> context;
        bool building = false;
        std::list<std::pair<uint64_t, Waiter>> waiters;
        uint64_t lastUse = 0;
    };
    void evictLocked();

    std::vector<std::string> m_searchDirs;
    std::string m_cacheDir;
    size_t m_maxContexts;
    mutable std::mutex m_mutex;
    std::map<std::string, Entry> m_entries;
    size_t m_created = 0;
    mutable std::atomic<size_t> m_stored { 0 };
    uint64_t m_clock = 0;
};
} // namespace callhome::netconf
