#include "server/Listener.h"
#include "common/Error.h"
#include "common/Log.h"
#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

namespace callhome::server {
namespace {
constexpr int kBacklog = 4096; // a burst of devices calling at once must not be reset by a small backlog

[[noreturn]] void fail(const config::Endpoint& e, const std::string& what)
{
    throw Error("cannot listen on " + e.toString() + ": " + what);
}

UniqueFd bindEndpoint(config::Endpoint& e)
{
    addrinfo hints {};
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (int rc = getaddrinfo(e.address.c_str(), std::to_string(e.port).c_str(), &hints, &res); rc != 0) {
        fail(e, gai_strerror(rc));
    }
    std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);
    UniqueFd fd(::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
        fail(e, std::strerror(errno));
    }
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (res->ai_family == AF_INET6) {
        // "::" means every address, IPv4 included; a specific IPv6 address means only that one.
        int v6only = e.address == "::" ? 0 : 1;
        ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    }
    if (::bind(fd.get(), res->ai_addr, res->ai_addrlen) != 0) {
        fail(e, std::strerror(errno));
    }
    if (::listen(fd.get(), kBacklog) != 0) {
        fail(e, std::strerror(errno));
    }
    sockaddr_storage ss {};
    socklen_t len = sizeof ss;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
    e.port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    return fd;
}

std::pair<std::string, uint16_t> peerOf(const sockaddr_storage& ss)
{
    char buf[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET6) {
        auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
        inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
        return { normalizeAddress(buf), ntohs(a->sin6_port) };
    }
    auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    return { buf, ntohs(a->sin_port) };
}
} // namespace

std::string normalizeAddress(const std::string& address)
{
    static const std::string prefix = "::ffff:";
    if (address.rfind(prefix, 0) == 0 && address.find('.') != std::string::npos) {
        return address.substr(prefix.size());
    }
    return address;
}

Listener::Listener(const std::vector<config::Endpoint>& endpoints, Handler onAccept)
    : m_onAccept(std::move(onAccept))
{
    m_epoll.reset(::epoll_create1(EPOLL_CLOEXEC));
    m_wake.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!m_epoll || !m_wake) {
        throw Error(std::string("listener: ") + std::strerror(errno));
    }
    epoll_event ev {};
    ev.events = EPOLLIN;
    ev.data.u64 = UINT64_MAX;
    ::epoll_ctl(m_epoll.get(), EPOLL_CTL_ADD, m_wake.get(), &ev);
    for (const auto& e : endpoints) {
        auto bound = e;
        auto fd = bindEndpoint(bound);
        add(e, bound, std::move(fd));
    }
}

Listener::~Listener()
{
    stop();
}

void Listener::add(config::Endpoint configured, config::Endpoint bound, UniqueFd socket)
{
    std::lock_guard lock(m_mutex);
    auto id = m_nextSlot++;
    epoll_event ev {};
    ev.events = EPOLLIN;
    ev.data.u64 = id;
    ::epoll_ctl(m_epoll.get(), EPOLL_CTL_ADD, socket.get(), &ev);
    m_slots.emplace(id, Slot { std::move(configured), std::move(bound), std::move(socket) });
}

std::vector<config::Endpoint> Listener::endpoints() const
{
    std::lock_guard lock(m_mutex);
    std::vector<config::Endpoint> out;
    for (const auto& [id, slot] : m_slots) {
        out.push_back(slot.bound);
    }
    return out;
}

Listener::Update Listener::update(const std::vector<config::Endpoint>& wanted)
{
    auto same = [](const config::Endpoint& a, const config::Endpoint& b) {
        return a.transport == b.transport && a.address == b.address && a.port == b.port;
    };
    std::vector<config::Endpoint> fresh;
    {
        std::lock_guard lock(m_mutex);
        for (const auto& w : wanted) {
            bool have = std::any_of(
                m_slots.begin(), m_slots.end(), [&](const auto& s) { return same(s.second.configured, w); });
            bool twice = std::any_of(fresh.begin(), fresh.end(), [&](const auto& f) { return same(f, w); });
            if (!have && !twice) {
                fresh.push_back(w);
            }
        }
    }
    // Bound before anything is removed or added, so that a port in use changes nothing.
    std::vector<std::pair<config::Endpoint, UniqueFd>> bound;
    for (const auto& f : fresh) {
        auto b = f;
        auto fd = bindEndpoint(b);
        bound.emplace_back(b, std::move(fd));
    }
    Update result;
    for (size_t i = 0; i < fresh.size(); ++i) {
        result.added.push_back(bound[i].first);
        add(fresh[i], bound[i].first, std::move(bound[i].second));
    }
    {
        // Under the mutex the accept thread is not using the socket; an event it already fetched for it finds no slot.
        std::lock_guard lock(m_mutex);
        for (auto it = m_slots.begin(); it != m_slots.end();) {
            bool keep = std::any_of(
                wanted.begin(), wanted.end(), [&](const auto& w) { return same(it->second.configured, w); });
            if (keep) {
                ++it;
                continue;
            }
            ::epoll_ctl(m_epoll.get(), EPOLL_CTL_DEL, it->second.socket.get(), nullptr);
            result.removed.push_back(it->second.bound);
            it = m_slots.erase(it);
        }
    }
    auto logger = log::get(log::Listener);
    for (const auto& e : result.added) {
        logger->info("listening for call home on {}", e.toString());
    }
    for (const auto& e : result.removed) {
        logger->info("no longer listening on {}", e.toString());
    }
    return result;
}

void Listener::start()
{
    for (const auto& e : endpoints()) {
        log::get(log::Listener)->info("listening for call home on {}", e.toString());
    }
    m_thread = std::thread([this] { run(); });
}

void Listener::stop()
{
    if (m_thread.joinable()) {
        uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(m_wake.get(), &one, sizeof one);
        m_thread.join();
    }
    std::lock_guard lock(m_mutex);
    m_slots.clear();
}

void Listener::run()
{
    auto logger = log::get(log::Listener);
    epoll_event events[16];
    uint64_t outOfFiles = 0;
    auto nextOutOfFilesLog = std::chrono::steady_clock::time_point {};
    while (true) {
        int n = ::epoll_wait(m_epoll.get(), events, 16, -1);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            logger->critical("epoll_wait: {}", std::strerror(errno));
            return;
        }
        for (int i = 0; i < n; ++i) {
            if (events[i].data.u64 == UINT64_MAX) {
                return;
            }
            std::lock_guard lock(m_mutex);
            auto slot = m_slots.find(events[i].data.u64);
            if (slot == m_slots.end()) {
                continue; // removed by update() after epoll_wait returned
            }
            const int listening = slot->second.socket.get();
            const auto& endpoint = slot->second.bound;
            while (true) {
                sockaddr_storage ss {};
                socklen_t len = sizeof ss;
                int fd = ::accept4(listening, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                    if (errno == EMFILE || errno == ENFILE) {
                        // Out of descriptors: leave the rest in the backlog for 100 ms instead of spinning, and say
                        // so at most every 10 s with how often it happened.
                        ++outOfFiles;
                        auto t = std::chrono::steady_clock::now();
                        if (t >= nextOutOfFilesLog) {
                            logger->error("accept on {}: {} ({} time(s) in the last 10 s; accepting paused 100 ms "
                                          "each time)",
                                endpoint.toString(), std::strerror(errno), outOfFiles);
                            outOfFiles = 0;
                            nextOutOfFilesLog = t + std::chrono::seconds(10);
                        }
                        epoll_event ignored[1];
                        ::epoll_wait(m_epoll.get(), ignored, 1, 100);
                    } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
                        logger->warn("accept on {}: {}", endpoint.toString(), std::strerror(errno));
                    }
                    break;
                }
                auto [address, port] = peerOf(ss);
                Accepted a { UniqueFd(fd), address, port, endpoint };
                try {
                    m_onAccept(std::move(a));
                } catch (const std::exception& e) {
                    logger->error("[{}] dropped: {}", address, e.what());
                }
            }
        }
    }
}
} // namespace callhome::server
