#include "sim/Simulator.h"
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace callhome::sim {
std::string Report::toJson() const
{
    nlohmann::json failuresJson = nlohmann::json::object();
    for (const auto& [reason, n] : failures) {
        failuresJson[reason] = n;
    }
    nlohmann::json j = {
        { "mode", mode },
        { "transport", transport },
        { "station", station },
        { "devices", devices },
        { "threads", threads },
        { "attempts", attempts },
        { "established", established },
        { "failed", failed },
        { "dropped", dropped },
        { "held_at_end", heldAtEnd },
        { "silent_opened", silentOpened },
        { "closed_by_station", closedByStation },
        { "junk_sent", junkSent },
        { "rpcs", rpcs },
        { "notifications", notifications },
        { "elapsed_s", elapsedSeconds },
        { "rate_sessions_per_s", sessionsPerSecond },
        { "time_to_session_ms", { { "p50", p50Ms }, { "p90", p90Ms }, { "p99", p99Ms }, { "max", maxMs } } },
        { "failures", failuresJson },
    };
    return j.dump(2) + "\n";
}

std::string Report::summary() const
{
    std::string out = fmt::format("callhome-sim: {} {} devices, mode {}, station {}, {} threads, {:.2f} s\n", devices,
        transport, mode, station, threads, elapsedSeconds);
    if (mode == "hold" || mode == "once") {
        out += fmt::format("  established  {} of {} attempts, failed {}, dropped by station {}, held at end {}\n",
            established, attempts, failed, dropped, heldAtEnd);
        out += fmt::format("  rate         {:.1f} sessions/s (first connect → last <hello>)\n", sessionsPerSecond);
        out += fmt::format("  time to session (connect → station <hello>): p50 {:.1f} ms, p90 {:.1f} ms, "
                           "p99 {:.1f} ms, max {:.1f} ms\n",
            p50Ms, p90Ms, p99Ms, maxMs);
        out += fmt::format("  rpcs answered {}, notifications sent {}\n", rpcs, notifications);
    } else if (mode == "silent") {
        out += fmt::format("  silent connections opened {} of {} attempts, closed by station {}, failed {}\n",
            silentOpened, attempts, closedByStation, failed);
    } else {
        out += fmt::format("  junk connections {} of {} attempts ({:.0f}/s), failed {}\n", junkSent, attempts,
            elapsedSeconds > 0 ? static_cast<double>(junkSent) / elapsedSeconds : 0.0, failed);
    }
    for (const auto& [reason, n] : failures) {
        out += fmt::format("  failure: {} × {}\n", n, reason);
    }
    return out;
}
} // namespace callhome::sim
