#include "netconf/Session.h"
#include "common/Log.h"
#include "netconf/Context.h"
#include <functional>
#include <libnetconf2/log.h>
#include <libnetconf2/session_client.h>
#include <libssh/libssh.h>
#include <libssh/server.h> // ssh_send_keepalive, despite the header, works on client sessions
#include <libyang/libyang.h>

namespace callhome::netconf {
namespace {
void ncLog(const struct nc_session* session, NC_VERB_LEVEL level, const char* msg) noexcept
{
    try {
        auto logger = log::get(log::Netconf);
        auto lvl = level == NC_VERB_ERROR ? spdlog::level::warn
            : level == NC_VERB_WARNING    ? spdlog::level::info
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

std::unique_ptr<Session> Session::connect(ContextPool& pool, const std::vector<std::string>& knownCapabilities,
    const std::function<nc_session*(ly_ctx*)>& connectWith)
{
    auto context = pool.forCapabilities(knownCapabilities);
    nc_session* raw = nullptr;
    {
        // libnetconf2 loads the device's modules into the context while connecting.
        std::unique_lock lock(context->mutex());
        raw = connectWith(context->get());
    }
    if (!raw) {
        return nullptr;
    }
    std::unique_ptr<Session> s(new Session());
    s->m_context = context;
    s->m_session = raw;
    s->m_sessionId = nc_session_get_id(raw);
    if (auto caps = nc_session_get_cpblts(raw)) {
        for (size_t i = 0; caps[i]; ++i) {
            s->m_capabilities.emplace_back(caps[i]);
        }
    }
    pool.adopt(context, s->m_capabilities);
    return s;
}

std::unique_ptr<Session> Session::connectSsh(
    ssh_session_struct* ssh, SocketRef socket, ContextPool& pool, const std::vector<std::string>& knownCapabilities)
{
    int fd = ssh_get_fd(ssh);
    // nc_connect_libssh takes `ssh`, success or not.
    auto s = connect(pool, knownCapabilities, [ssh](ly_ctx* ctx) { return nc_connect_libssh(ssh, ctx); });
    if (!s) {
        socket.closeIfStillOurs();
        throw SessionError("NETCONF session setup failed (netconf subsystem, <hello> or YANG modules; see debug log)");
    }
    s->m_ssh = ssh;
    s->m_fd = fd;
    s->m_socket = socket;
    return s;
}

std::unique_ptr<Session> Session::connectTls(
    UniqueFd in, UniqueFd out, ContextPool& pool, const std::vector<std::string>& knownCapabilities)
{
    auto s = connect(pool, knownCapabilities, [&](ly_ctx* ctx) { return nc_connect_inout(in.get(), out.get(), ctx); });
    if (!s) {
        throw SessionError("NETCONF session setup over TLS failed (<hello> or YANG modules; see debug log)");
    }
    // libnetconf2 never closes descriptors given to nc_connect_inout; close() does after nc_session_free.
    s->m_socket = SocketRef::of(in.release());
    s->m_socketOut = SocketRef::of(out.release());
    s->m_fd = s->m_socket.fd;
    return s;
}

Session::~Session()
{
    close();
}

std::string Session::version() const
{
    std::lock_guard lock(m_io);
    if (!m_session) {
        return "closed";
    }
    return nc_session_get_version(m_session) == 1 ? "1.1" : "1.0";
}

bool Session::isOpen() const
{
    std::lock_guard lock(m_io);
    return m_session && nc_session_get_status(m_session) == NC_STATUS_RUNNING;
}

bool Session::processIncoming()
{
    std::lock_guard lock(m_io);
    if (!m_session || nc_session_get_status(m_session) != NC_STATUS_RUNNING) {
        return false;
    }
    std::shared_lock ctxLock(m_context->mutex());
    // We never subscribe, so the device has nothing NETCONF to say unasked: this reads SSH-level traffic
    // (channel EOF/close, window adjusts, keepalive replies) and notices a closed transport.
    lyd_node* envp = nullptr;
    lyd_node* op = nullptr;
    NC_MSG_TYPE r;
    do {
        r = nc_recv_notif(m_session, 0, &envp, &op);
        lyd_free_tree(envp);
        lyd_free_tree(op);
        envp = op = nullptr;
    } while (r == NC_MSG_NOTIF);
    return nc_session_get_status(m_session) == NC_STATUS_RUNNING && r != NC_MSG_ERROR;
}

bool Session::sendKeepalive()
{
    std::lock_guard lock(m_io);
    if (!m_session || nc_session_get_status(m_session) != NC_STATUS_RUNNING) {
        return false;
    }
    if (!m_ssh) {
        // TLS has no keepalive message; TCP keepalive (set on the socket) finds dead peers.
        return true;
    }
    return ssh_send_keepalive(m_ssh) == SSH_OK && ssh_is_connected(m_ssh);
}

void Session::close()
{
    std::lock_guard lock(m_io);
    if (!m_session) {
        return;
    }
    std::shared_lock ctxLock(m_context->mutex());
    nc_session_free(m_session, nullptr); // sends <close-session> when still running
    m_session = nullptr;
    m_socket.closeIfStillOurs();
    m_socketOut.closeIfStillOurs();
    m_ssh = nullptr;
}
} // namespace callhome::netconf
