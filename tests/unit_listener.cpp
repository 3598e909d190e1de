#include "common/Error.h"
#include "server/Listener.h"
#include "server/WorkerPool.h"
#include <arpa/inet.h>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace callhome;
using namespace callhome::server;

namespace {
int connectTo(int family, const char* address, uint16_t port)
{
    int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_storage ss {};
    socklen_t len;
    if (family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        inet_pton(AF_INET, address, &a->sin_addr);
        len = sizeof *a;
    } else {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        inet_pton(AF_INET6, address, &a->sin6_addr);
        len = sizeof *a;
    }
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0);
    return fd;
}

struct Collector {
    std::mutex m;
    std::condition_variable cv;
    std::vector<Accepted> accepted;
    void add(Accepted&& a)
    {
        std::lock_guard l(m);
        accepted.push_back(std::move(a));
        cv.notify_all();
    }
    bool waitFor(size_t n)
    {
        std::unique_lock l(m);
        return cv.wait_for(l, std::chrono::seconds(5), [&] { return accepted.size() >= n; });
    }
};
} // namespace

TEST_CASE("address normalisation")
{
    CHECK(normalizeAddress("::ffff:192.0.2.7") == "192.0.2.7");
    CHECK(normalizeAddress("::1") == "::1");
    CHECK(normalizeAddress("2001:db8::ffff:1") == "2001:db8::ffff:1");
}

TEST_CASE("accepts IPv4 and IPv6 on port 0 endpoints, dual stack on ::")
{
    Collector c;
    Listener l({ config::parseEndpoint("ssh:127.0.0.1:0"), config::parseEndpoint("ssh:[::]:0") },
        [&](Accepted&& a) { c.add(std::move(a)); });
    REQUIRE(l.endpoints().size() == 2);
    CHECK(l.endpoints()[0].port != 0);
    CHECK(l.endpoints()[1].port != 0);
    l.start();
    int a = connectTo(AF_INET, "127.0.0.1", l.endpoints()[0].port);
    int b = connectTo(AF_INET6, "::1", l.endpoints()[1].port);
    int d = connectTo(AF_INET, "127.0.0.1", l.endpoints()[1].port); // v4 on the dual-stack socket
    REQUIRE(c.waitFor(3));
    l.stop();
    std::vector<std::string> peers;
    for (auto& x : c.accepted) {
        CHECK(x.socket);
        peers.push_back(x.peerAddress);
    }
    std::sort(peers.begin(), peers.end());
    CHECK(peers == std::vector<std::string> { "127.0.0.1", "127.0.0.1", "::1" });
    ::close(a);
    ::close(b);
    ::close(d);
}

TEST_CASE("a port in use is a clear error")
{
    Listener first({ config::parseEndpoint("ssh:127.0.0.1:0") }, [](Accepted&&) {});
    auto taken = first.endpoints()[0];
    REQUIRE_THROWS_WITH(Listener({ taken }, [](Accepted&&) {}),
        Catch::Contains("cannot listen on ssh:127.0.0.1:" + std::to_string(taken.port)) && Catch::Contains("in use"));
}

TEST_CASE("worker pool bounds its queue")
{
    std::mutex m;
    std::condition_variable cv;
    bool release = false;
    int started = 0;
    int done = 0;
    {
        WorkerPool pool(1, 2);
        auto blocker = [&] {
            std::unique_lock l(m);
            ++started;
            cv.notify_all();
            cv.wait(l, [&] { return release; });
            ++done;
        };
        REQUIRE(pool.trySubmit(blocker));
        {
            // the single worker is busy with the first task, so the queue is empty again
            std::unique_lock l(m);
            REQUIRE(cv.wait_for(l, std::chrono::seconds(5), [&] { return started == 1; }));
        }
        CHECK(pool.trySubmit(blocker));
        CHECK(pool.trySubmit(blocker));
        CHECK_FALSE(pool.trySubmit(blocker)); // queue of 2 is full
        CHECK(pool.load() == 3);
        {
            std::lock_guard l(m);
            release = true;
        }
        cv.notify_all();
        pool.stop();
    }
    CHECK(done == 3);
}

namespace {
/** connect() to 127.0.0.1:port succeeds (the kernel completes it once the socket listens). */
bool listening(uint16_t port)
{
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a {};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}
} // namespace

TEST_CASE("update() adds and removes endpoints while running, keeps the others' sockets, changes nothing on error")
{
    Collector c;
    const auto kept = config::parseEndpoint("ssh:127.0.0.1:0");
    Listener l({ kept }, [&](Accepted&& a) { c.add(std::move(a)); });
    l.start();
    const auto keptPort = l.endpoints().at(0).port;

    // an added endpoint accepts at once; the kept one is not rebound (same port, though configured as port 0)
    const auto added = config::parseEndpoint("tls:127.0.0.1:0");
    auto u = l.update({ kept, added });
    REQUIRE(u.added.size() == 1);
    CHECK(u.removed.empty());
    CHECK(u.added[0].transport == config::Transport::Tls);
    const auto addedPort = u.added[0].port;
    REQUIRE(l.endpoints().size() == 2);
    CHECK(l.endpoints()[0].port == keptPort);
    CHECK(l.endpoints()[1].port == addedPort);
    int a = connectTo(AF_INET, "127.0.0.1", addedPort);
    REQUIRE(c.waitFor(1));
    CHECK(c.accepted.back().endpoint.transport == config::Transport::Tls);
    CHECK(l.update({ kept, added }).added.empty()); // the same list again: nothing to do

    // a port that cannot be bound refuses the whole update: the endpoint to be removed stays too
    Listener other({ config::parseEndpoint("ssh:127.0.0.1:0") }, [](Accepted&&) {});
    auto taken = other.endpoints()[0];
    CHECK_THROWS_WITH(l.update({ kept, taken }), Catch::Contains("cannot listen on") && Catch::Contains("in use"));
    CHECK(l.endpoints().size() == 2);
    CHECK(listening(addedPort));

    // removed: that port stops accepting, the kept one goes on
    u = l.update({ kept });
    REQUIRE(u.removed.size() == 1);
    CHECK(u.removed[0].port == addedPort);
    CHECK(l.endpoints().size() == 1);
    CHECK_FALSE(listening(addedPort));
    int b = connectTo(AF_INET, "127.0.0.1", keptPort);
    REQUIRE(c.waitFor(2));
    l.stop();
    ::close(a);
    ::close(b);
}
