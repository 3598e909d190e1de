#pragma once
#include <chrono>
#include <optional>
#include <string>

namespace callhome::systemd {
/** True when a service manager asked for notifications (NOTIFY_SOCKET is set). */
bool notifying();
/**
 * Sends `state` ("READY=1", "STATUS=...", newline-separated assignments) to the service manager with sd_notify;
 * false when there is none (no NOTIFY_SOCKET) or the datagram could not be sent. Thread-safe.
 */
bool notify(const std::string& state);
/** The watchdog interval the service manager expects pings within (WATCHDOG_USEC, via sd_watchdog_enabled). */
std::optional<std::chrono::microseconds> watchdogInterval();
/** "RELOADING=1\nMONOTONIC_USEC=..." (systemd 253's notify-reload wants the time stamp; older ones ignore it). */
std::string reloadingState();
} // namespace callhome::systemd
