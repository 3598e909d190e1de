#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace callhome {
/** Wall-clock time used in the inventory: milliseconds since the Unix epoch, UTC. */
using TimePoint = std::chrono::time_point<std::chrono::system_clock, std::chrono::milliseconds>;

TimePoint now();
/** "2026-11-22T02:55:15.123Z" */
std::string toIso8601(TimePoint t);
/**
 * Accepts "YYYY-MM-DD", "YYYY-MM-DDTHH:MM[:SS[.mmm]][Z]" (UTC, years 1970..9999, real calendar dates) or a time
 * relative to `reference`: "15m", "2h", "7d", at most 100 years (36525d); nullopt otherwise, never an exception.
 */
std::optional<TimePoint> parseTime(const std::string& text, TimePoint reference);
} // namespace callhome
