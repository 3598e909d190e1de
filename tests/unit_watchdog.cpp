// The systemd watchdog's proof of life (server/Watchdog.h): real event loops run the heartbeat's tasks; a loop
// blocked in a task makes beat() name it until it runs again.
#include "server/EventLoop.h"
#include "server/Watchdog.h"
#include "server/WorkerPool.h"
#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>

using namespace callhome::server;
using namespace std::chrono_literals;

namespace {
/** Calls beat() until it returns what `want` accepts, at most 5 s (each beat needs the previous one's tasks run). */
std::optional<std::string> beatUntil(Heartbeat& h, const std::function<bool(const std::optional<std::string>&)>& want)
{
    auto end = std::chrono::steady_clock::now() + 5s;
    std::optional<std::string> r;
    do {
        r = h.beat();
        if (want(r)) {
            return r;
        }
        std::this_thread::sleep_for(2ms); // polling interval, not a wait for the result: the loop ends on it
    } while (std::chrono::steady_clock::now() < end);
    return r;
}
} // namespace

TEST_CASE("heartbeat: alive while every part runs its tasks, names a stalled loop, recovers")
{
    EventLoop loop0("ch-loop-0");
    EventLoop loop1("ch-loop-1");
    WorkerPool inventory(1, 16, "ch-inventory");
    loop0.start();
    loop1.start();
    std::vector<Heartbeat::Part> parts;
    for (auto* l : { &loop0, &loop1 }) {
        parts.push_back({ l->name(), [l](std::function<void()> t) {
                             l->post(std::move(t));
                             return true;
                         } });
    }
    parts.push_back({ "ch-inventory", [&](std::function<void()> t) { return inventory.trySubmit(std::move(t)); } });
    Heartbeat h(std::move(parts));

    CHECK_FALSE(h.beat()); // nothing asked yet
    CHECK_FALSE(beatUntil(h, [](const auto& r) { return !r; }));

    std::mutex m;
    std::condition_variable cv;
    bool release = false;
    loop1.post([&] {
        std::unique_lock l(m);
        cv.wait(l, [&] { return release; });
    });
    // loop 1 cannot run the next beat's task: from then on no beat succeeds
    auto late = beatUntil(h, [](const auto& r) { return r == std::optional<std::string>("ch-loop-1"); });
    CHECK(late == std::optional<std::string>("ch-loop-1"));
    for (int i = 0; i < 3; ++i) {
        std::this_thread::sleep_for(10ms); // give the other parts every chance to run theirs
        CHECK(h.beat().has_value());
    }
    {
        std::lock_guard l(m);
        release = true;
    }
    cv.notify_all();
    CHECK_FALSE(beatUntil(h, [](const auto& r) { return !r; }));

    // a part whose queue refuses the task is not alive either
    Heartbeat refusing({ { "ch-full", [](std::function<void()>) { return false; } } });
    CHECK_FALSE(refusing.beat());
    CHECK(refusing.beat() == std::optional<std::string>("ch-full"));
    loop0.stop();
    loop1.stop();
    inventory.stop();
}
