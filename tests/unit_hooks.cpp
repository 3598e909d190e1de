// server::HookRunner on its own (no daemon): /bin/sh scripts as hooks, the events it records collected in memory.
#include "harness/TempDir.h"
#include "harness/Util.h"
#include "server/HookRunner.h"
#include "server/Metrics.h"
#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <mutex>

using namespace callhome;
using namespace callhome::server;
using namespace callhome::test;
using namespace std::chrono_literals;

namespace {
/** A runner whose settings a test changes, and the events it recorded. */
struct Runner {
    std::mutex mutex;
    config::HookSettings settings;
    std::vector<inventory::Event> events;
    Metrics metrics;
    TempDir dir { "callhome-unit-hooks" };
    HookRunner runner { HookRunner::Options {
        .settings =
            [this] {
                std::lock_guard lock(mutex);
                return settings;
            },
        .record =
            [this](const inventory::Event& e) {
                std::lock_guard lock(mutex);
                events.push_back(e);
            },
        .metrics = &metrics,
        .controlSocket = "/run/test.sock",
        .stateDir = dir.path(),
    } };
    Runner() { runner.start(); }
    /** Changes the settings the runner reads (on its own thread: under the mutex). */
    void configure(const std::function<void(config::HookSettings&)>& change)
    {
        std::lock_guard lock(mutex);
        change(settings);
    }
    std::vector<std::string> details()
    {
        std::lock_guard lock(mutex);
        std::vector<std::string> out;
        for (const auto& e : events) {
            out.push_back(e.detail);
        }
        return out;
    }
    size_t count()
    {
        std::lock_guard lock(mutex);
        return events.size();
    }
    void waitCount(size_t n, std::chrono::milliseconds deadline = 10s)
    {
        waitFor([&] { return count() >= n; }, deadline, std::to_string(n) + " hook events");
    }
};

HookEvent pendingEvent(int64_t id)
{
    return HookEvent { .kind = HookKind::Pending, .deviceId = id, .address = "192.0.2.7", .connectionId = "C1" };
}
} // namespace

TEST_CASE("HookRunner: no command, no hook; output captured and truncated; exit status; kinds")
{
    Runner r;
    CHECK_FALSE(r.runner.submit(pendingEvent(1))); // nothing configured
    r.configure([&](config::HookSettings& s) {
        s.onPending = { "/bin/sh", "-c", "printf 'hello %s' \"$CALLHOME_ADDRESS\"; printf ' err' >&2; exit 7" };
        s.onRefused = { "/bin/sh", "-c", "head -c 10000 /dev/zero | tr '\\0' x" };
        s.maxOutput = 100;
    });
    REQUIRE(r.runner.submit(pendingEvent(1)));
    r.waitCount(1);
    CHECK_THAT(r.details()[0], Catch::StartsWith("on-pending: exit 7 after "));
    CHECK_THAT(r.details()[0], Catch::EndsWith("; output: hello 192.0.2.7 err"));
    CHECK(r.events[0].deviceId == 1);
    CHECK(r.events[0].kind == inventory::EventKind::Hook);
    CHECK(r.events[0].connectionId == "C1");

    REQUIRE(r.runner.submit(HookEvent { .kind = HookKind::Refused, .deviceId = 2 }));
    r.waitCount(2);
    auto detail = r.details()[1];
    CHECK_THAT(detail, Catch::StartsWith("on-refused: exit 0 after "));
    CHECK_THAT(detail, Catch::EndsWith("; output (first 100 bytes): " + std::string(100, 'x')));
    CHECK_THAT(r.metrics.scrape(), Catch::Contains("callhome_hooks_total{hook=\"on-pending\",outcome=\"failed\"} 1"));
}

TEST_CASE("HookRunner: a hook that ignores SIGTERM is killed; what a hook leaves behind in its group is killed")
{
    Runner r;
    auto pidFile = r.dir.file("child.pid");
    // ignores SIGTERM: SIGKILL 2 s after the timeout
    r.configure([&](config::HookSettings& s) {
        s.onPending = { "/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.1; done" };
        // leaves a background child in its group and exits at once
        s.onConnect = { "/bin/sh", "-c", "sleep 60 & echo $! > " + pidFile + "; exit 0" };
        s.timeout = 1s;
    });
    auto t0 = Clock::now();
    REQUIRE(r.runner.submit(pendingEvent(1)));
    REQUIRE(r.runner.submit(HookEvent { .kind = HookKind::Connect, .deviceId = 1 }));
    r.waitCount(2, 10s);
    auto details = r.details();
    std::sort(details.begin(), details.end());
    CHECK_THAT(details[0], Catch::StartsWith("on-connect: exit 0"));
    CHECK(details[1] == "on-pending: timed out after 1.00 s, killed with SIGKILL");
    CHECK(Clock::now() - t0 >= 3s - 100ms); // 1 s timeout + 2 s grace
    auto child = std::stoi(readFileIfExists(pidFile));
    waitFor([&] { return ::kill(child, 0) != 0; }, 5s, "the background child killed");
}

TEST_CASE("HookRunner: max-concurrent, a full queue drops and counts, stop() kills what runs at once")
{
    Runner r;
    r.configure([&](config::HookSettings& s) {
        s.onPending = { "/bin/sh", "-c", "touch " + r.dir.file("started.") + "$$; exec sleep 30" };
        s.maxConcurrent = 2;
        s.maxQueued = 3;
        s.timeout = 600s;
    });
    size_t accepted = 0;
    for (int i = 0; i < 10; ++i) {
        accepted += r.runner.submit(pendingEvent(i)) ? 1 : 0;
    }
    // 2 may have started before the rest was queued; at least 3 queued, at most 2 + 3
    CHECK(accepted >= 3);
    CHECK(accepted <= 5);
    CHECK(r.runner.takeDropped() == 10 - accepted);
    CHECK(r.runner.takeDropped() == 0);
    CHECK_THAT(r.metrics.scrape(),
        Catch::Contains(
            "callhome_hooks_total{hook=\"on-pending\",outcome=\"dropped\"} " + std::to_string(10 - accepted)));
    auto started = [&] {
        size_t n = 0;
        for (const auto& entry : std::filesystem::directory_iterator(r.dir.path())) {
            n += entry.path().filename().string().rfind("started.", 0) == 0 ? 1 : 0;
        }
        return n;
    };
    waitFor([&] { return started() == 2; }, 10s, "two hooks running");
    CHECK(r.count() == 0);
    auto t0 = Clock::now();
    r.runner.stop();
    CHECK(Clock::now() - t0 < 3s); // SIGKILL, then reaping bounded by 2 s
    // the two running ones were killed and recorded; the queued ones never ran (max-concurrent held)
    CHECK(started() == 2);
    CHECK(r.count() == 2);
    for (const auto& d : r.details()) {
        CHECK_THAT(d, Catch::StartsWith("on-pending: killed by SIGKILL"));
    }
    CHECK_FALSE(r.runner.submit(pendingEvent(99)));
}
