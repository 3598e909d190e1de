#include "common/Systemd.h"
#include <cstdlib>
#include <ctime>
#include <systemd/sd-daemon.h>

namespace callhome::systemd {
bool notifying()
{
    const char* socket = std::getenv("NOTIFY_SOCKET");
    return socket && *socket;
}

bool notify(const std::string& state)
{
    // unset_environment 0: the variables stay for later calls (sd_notify only reads them).
    return ::sd_notify(0, state.c_str()) > 0;
}

std::optional<std::chrono::microseconds> watchdogInterval()
{
    uint64_t usec = 0;
    if (::sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        return std::chrono::microseconds(usec);
    }
    return std::nullopt;
}

std::string reloadingState()
{
    timespec ts {};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    auto usec = static_cast<unsigned long long>(ts.tv_sec) * 1'000'000ULL
        + static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
    return "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec);
}
} // namespace callhome::systemd
