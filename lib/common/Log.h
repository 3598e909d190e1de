#pragma once
#include <array>
#include <map>
#include <memory>
#include <optional>
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
/** Every subsystem logger of callhomed, in the order --help lists them. */
inline constexpr std::array<const char*, 6> Subsystems = { Main, Listener, Ssh, Identity, Netconf, Inventory };

/**
 * Log levels as velia sets them: one default and per-subsystem exceptions. Written "LEVEL", "NAME=LEVEL", or a
 * comma-separated list of both ("info,inventory=debug,netconf=trace").
 */
struct Levels {
    std::optional<spdlog::level::level_enum> all; ///< nullopt: keep what is below it (info for the base)
    std::map<std::string, spdlog::level::level_enum> subsystems;

    /** The level of `subsystem`: its own, else `all`, else info. */
    spdlog::level::level_enum of(const std::string& subsystem) const;
    /** `over` on top of this: its default (if set) replaces ours and its subsystems replace ours one by one. */
    Levels overriddenBy(const Levels& over) const;
    /** "info,inventory=debug" (the default first, then subsystems by name); "info" when nothing is set. */
    std::string toString() const;
    bool operator==(const Levels&) const = default;
};

/** Parses one --log-level value: "LEVEL", "NAME=LEVEL" or a comma list of them; throws UsageError naming the bad
 * part. A later item wins over an earlier one. Merges into `into`. */
void parseLevels(const std::string& text, Levels& into);

/** Where log lines go. */
enum class Output {
    Auto, ///< the journal when stderr is the journal's stream (JOURNAL_STREAM matches it), else stderr
    Stderr,
    Journal,
};

/** Sets up the named loggers with `levels` on `output` (common/Log.cpp); returns the output chosen. */
Output init(const Levels& levels, Output output = Output::Stderr);
/** As init(Levels) with one level for every logger. */
Output init(spdlog::level::level_enum level, bool journal = false);
/** Applies new levels to every logger now (SIGHUP); thread-safe, the output stays. */
void setLevels(const Levels& levels);
/** The levels in force. */
Levels levels();
/**
 * True when `journalStream` (the JOURNAL_STREAM variable systemd sets, "DEVICE:INODE") names the file `fd` is open
 * on: then stderr is the journal's stream and structured journal logging is better. nullptr or garbage: false.
 */
bool isJournalStream(const char* journalStream, int fd);
/** Parses "trace|debug|info|warning|error|critical|off"; throws UsageError otherwise. */
spdlog::level::level_enum parseLevel(const std::string& name);
/** The named logger; created on first use so that libraries and tests work without init(). */
std::shared_ptr<spdlog::logger> get(const char* name);
} // namespace callhome::log
