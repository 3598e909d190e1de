#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

struct ly_ctx;

namespace callhome::netconf {
/**
 * A libyang context for NETCONF sessions. libnetconf2 fills it from the device's <hello> (locally from the search
 * path, else by <get-schema>) which modifies it, so filling takes the mutex exclusively and readers take it shared.
 */
class Context {
public:
    explicit Context(const std::vector<std::string>& searchDirs);
    ~Context();
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    ly_ctx* get() const noexcept { return m_ctx; }
    std::shared_mutex& mutex() noexcept { return m_mutex; }
    /** Number of modules loaded (memory figure for logs and the benchmark). */
    unsigned moduleCount() const;

private:
    ly_ctx* m_ctx = nullptr;
    std::shared_mutex m_mutex;
};

/**
 * YANG contexts shared between devices that advertise the same module set. A device's capabilities from its previous
 * session pick a pooled context; a device seen for the first time gets a private context, which becomes the pooled
 * one for its module set once its session is up (so the first device of a kind pays the <get-schema> cost once).
 */
class ContextPool {
public:
    explicit ContextPool(std::vector<std::string> searchDirs);
    /** The pooled context for this module set, or a new private one when none is pooled or `capabilities` is empty. */
    std::shared_ptr<Context> forCapabilities(const std::vector<std::string>& capabilities);
    /** Offers a context that served a session with `capabilities`; pooled unless one already is for that set. */
    void adopt(const std::shared_ptr<Context>& context, const std::vector<std::string>& capabilities);
    size_t size() const;
    /** Contexts built so far (each one costs parsing, and <get-schema> round trips, for its module set). */
    size_t created() const;
    /** The key of a module set: the sorted capability URIs, one per line. */
    static std::string keyOf(std::vector<std::string> capabilities);

private:
    std::vector<std::string> m_searchDirs;
    mutable std::mutex m_mutex;
    std::map<std::string, std::shared_ptr<Context>> m_pool;
    size_t m_created = 0;
};
} // namespace callhome::netconf
