#pragma once
#include <memory>
#include <spdlog/spdlog.h>
#include <string>

namespace callhome::log {
/** Named loggers, one per subsystem. */
inline constexpr const char* Listener = "listener";
inline constexpr const char* Ssh = "ssh";
inline constexpr const char* Identity = "identity";
inline constexpr const char* Netconf = "netconf";
inline constexpr const char* Inventory = "inventory";
inline constexpr const char* Main = "main";

/** Sets up the named loggers on stderr, or the journal when `journal` is true and systemd support is built in. */
void init(spdlog::level::level_enum level, bool journal = false);
/** Parses "trace|debug|info|warning|error|critical|off"; throws UsageError otherwise. */
spdlog::level::level_enum parseLevel(const std::string& name);
/** The named logger; created on first use so that libraries and tests work without init(). */
std::shared_ptr<spdlog::logger> get(const char* name);
} // namespace callhome::log
