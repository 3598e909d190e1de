#include "netconf/Context.h"
#include "common/Error.h"
#include <algorithm>
#include <libyang/libyang.h>

namespace callhome::netconf {
Context::Context(const std::vector<std::string>& searchDirs)
{
    if (ly_ctx_new(nullptr, LY_CTX_NO_YANGLIBRARY | LY_CTX_DISABLE_SEARCHDIR_CWD, &m_ctx) != LY_SUCCESS) {
        throw LibraryError("ly_ctx_new", "cannot create a YANG context");
    }
    for (const auto& dir : searchDirs) {
        // A missing directory is not fatal: libnetconf2 falls back to <get-schema>.
        ly_ctx_set_searchdir(m_ctx, dir.c_str());
    }
}

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

ContextPool::ContextPool(std::vector<std::string> searchDirs)
    : m_searchDirs(std::move(searchDirs))
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

std::shared_ptr<Context> ContextPool::forCapabilities(const std::vector<std::string>& capabilities)
{
    if (!capabilities.empty()) {
        std::lock_guard lock(m_mutex);
        if (auto it = m_pool.find(keyOf(capabilities)); it != m_pool.end()) {
            return it->second;
        }
    }
    auto context = std::make_shared<Context>(m_searchDirs);
    std::lock_guard lock(m_mutex);
    ++m_created;
    return context;
}

void ContextPool::adopt(const std::shared_ptr<Context>& context, const std::vector<std::string>& capabilities)
{
    if (capabilities.empty()) {
        return;
    }
    std::lock_guard lock(m_mutex);
    m_pool.try_emplace(keyOf(capabilities), context);
}

size_t ContextPool::created() const
{
    std::lock_guard lock(m_mutex);
    return m_created;
}

size_t ContextPool::size() const
{
    std::lock_guard lock(m_mutex);
    return m_pool.size();
}
} // namespace callhome::netconf
