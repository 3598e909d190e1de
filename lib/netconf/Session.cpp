#include "netconf/Session.h"
#include "common/Log.h"
#include "netconf/Context.h"
#include <fcntl.h>
#include <libnetconf2/log.h>
#include <libnetconf2/session_client.h>
#include <libyang/libyang.h>

namespace callhome::netconf {
namespace {
/** Set while this thread frees a session whose transport the pump already closed: what libnetconf2 says about the
 * closed descriptor and the unanswered <close-session> then is expected, not a warning (one per session). */
thread_local bool t_freeing = false;

void ncLog(const struct nc_session* session, NC_VERB_LEVEL level, const char* raw) noexcept
{
    try {
        auto text = withoutMessageBodies(raw ? std::string_view(raw) : std::string_view());
        const char* msg = text.c_str();
        auto logger = log::get(log::Netconf);
        auto lvl = t_freeing           ? spdlog::level::debug
            : level == NC_VERB_ERROR   ? spdlog::level::warn
            : level == NC_VERB_WARNING ? spdlog::level::info
                                       : spdlog::level::debug;
        if (session && nc_session_get_id(session)) {
            logger->log(lvl, "libnetconf2 session {}: {}", nc_session_get_id(session), msg);
        } else {
            logger->log(lvl, "libnetconf2: {}", msg);
        }
    } catch (...) {
        // Logging must never throw into libnetconf2.
    }
}

void lyLog(LY_LOG_LEVEL level, const char* msg, const char* path) noexcept
{
    try {
        auto lvl = level == LY_LLERR ? spdlog::level::debug : spdlog::level::trace;
        log::get(log::Netconf)->log(lvl, "libyang: {}{}{}", msg, path ? " at " : "", path ? path : "");
    } catch (...) { }
}
} // namespace

std::string withoutMessageBodies(std::string_view msg)
{
    auto cut = msg.find_first_of("<\n");
    if (cut == std::string_view::npos) {
        return std::string(msg);
    }
    auto head = msg.substr(0, cut);
    while (!head.empty() && (head.back() == ' ' || head.back() == ':')) {
        head.remove_suffix(1);
    }
    return std::string(head) + " [" + std::to_string(msg.size() - cut) + " bytes of message not logged]";
}

Runtime::Runtime()
{
    nc_client_init();
    nc_set_print_clb_session(ncLog);
    auto level = log::get(log::Netconf)->level();
    nc_verbosity(level <= spdlog::level::trace ? NC_VERB_DEBUG
            : level <= spdlog::level::debug    ? NC_VERB_VERBOSE
                                               : NC_VERB_WARNING);
    ly_set_log_clb(lyLog, 1);
    ly_log_options(LY_LOLOG | LY_LOSTORE_LAST);
}

Runtime::~Runtime()
{
    nc_client_destroy();
}

std::unique_ptr<Session> Session::connect(
    UniqueFd fd, std::shared_ptr<Context> context, std::vector<std::string> deviceCapabilities)
{
    // Non-blocking, so that libnetconf2's read timeouts work (it polls, then reads until EAGAIN).
    ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
    nc_session* raw = nullptr;
    {
        // nc_connect_inout sets and clears context flags while it checks the (complete) context: exclusive, but held
        // only for local work — the device's <hello> is already in the socketpair and ours goes into it.
        std::unique_lock lock(context->mutex());
        raw = nc_connect_inout(fd.get(), fd.get(), context->get());
    }
    if (!raw) {
        throw SessionError("NETCONF session setup failed (<hello> exchange; see debug log)");
    }
    std::unique_ptr<Session> s(new Session());
    s->m_context = std::move(context);
    s->m_session = raw;
    s->m_fd = std::move(fd); // libnetconf2 never closes descriptors given to nc_connect_inout
    s->m_sessionId = nc_session_get_id(raw);
    s->m_version = nc_session_get_version(raw) == 1 ? "1.1" : "1.0";
    s->m_capabilities = std::move(deviceCapabilities);
    return s;
}

Session::~Session()
{
    close();
}

void Session::close()
{
    std::lock_guard lock(m_io);
    if (!m_session) {
        return;
    }
    std::shared_lock ctxLock(m_context->mutex());
    t_freeing = true;
    nc_session_free(m_session, nullptr);
    t_freeing = false;
    m_session = nullptr;
    m_fd.reset();
}
} // namespace callhome::netconf
