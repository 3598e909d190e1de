#pragma once
// What both inventory backends (SqliteInventory, PostgresInventory) decide the same way, whatever the SQL: identity
// and name rules, fingerprint references, times, capability lists, labels. Internal to lib/inventory.
#include "inventory/Types.h"
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace callhome::inventory::detail {
inline constexpr std::string_view FingerprintPrefix = "SHA256:";
// A fingerprint prefix must carry at least 96 bits, or an impostor could make a key that matches it (24 bits take
// well under a second): 16 base64 characters of an SSH fingerprint, 24 hex digits of a TLS one.
inline constexpr size_t MinPrefixLength = 16;
inline constexpr size_t MinHexPrefixDigits = 24;
/// Listing the candidates of an ambiguous prefix: a few are enough to show the operator what to type.
inline constexpr int64_t MaxCandidates = 10;
/// SSH fingerprints are SHA-256 in unpadded base64: 43 characters after "SHA256:".
inline constexpr size_t SshFingerprintLength = 43;
inline constexpr size_t MaxNameLength = 64;
inline constexpr const char* DecidedByPreProvisioning = "pre-provisioned";
inline constexpr size_t MaxIdentityLength = 1024;

/**
 * A backend's embedded migrations (file name, SQL) in file-name order; each name starts with its 1-based number
 * ("0001-initial.sql"). Throws DatabaseError when the numbers have a gap or a duplicate.
 */
std::vector<std::pair<std::string_view, std::string_view>> sortedMigrations(
    std::vector<std::pair<std::string_view, std::string_view>> list);
/** Times are stored as milliseconds since the Unix epoch. */
int64_t toMs(TimePoint t);
TimePoint fromMs(int64_t ms);
/** "manufacturer/serial", the way operators and `callhomectl` write a TLS device's 802.1AR identity. */
std::string serialIdentity(const Device& d);
/** How messages name a device: its name, else its fingerprint or manufacturer/serial. */
std::string describe(const Device& d);
/** Empty, over-long or control characters; returns the problem, empty when fine. */
std::string identityProblem(const std::string& what, const std::string& value);
/**
 * TLS fingerprints are hex ("SHA256:AB:CD:..."), which operators may type in lower case; SSH fingerprints are
 * base64 (case-sensitive, never a ':'), so only a reference made of hex digits and colons is upper-cased.
 */
std::string normalizeHexFingerprint(const std::string& reference);
/** Letters, digits, '.', '_' and '-'. */
bool isNameChar(unsigned char c);
/** All digits: such a name would shadow a numeric id when an operator refers to a device. */
bool isAllDigits(const std::string& text);
/** The rules of validateName as a yes/no, for names that come from certificates rather than from operators. */
bool isValidName(const std::string& name);
/** Throws UsageError, saying what is wrong, unless `name` is a valid device name. */
void validateName(const std::string& name);
/** "SHA256:" and 43 base64 characters: what ssh-keygen -l -E sha256 prints. Returns the problem, empty when fine. */
std::string sshFingerprintProblem(const std::string& fp);
/** escapeControl() of each. */
std::vector<std::string> escapedAll(const std::vector<std::string>& texts);
/** A capability list as stored in capability_sets: a JSON array of strings. */
std::string encodeCapabilities(const std::vector<std::string>& capabilities);
/** The reverse of encodeCapabilities; throws DatabaseError naming the device when malformed. */
std::vector<std::string> decodeCapabilities(std::string_view text, int64_t deviceId);
/** "staged edit #ID", as messages and events name a staged item. */
std::string stagedLabel(int64_t id);
} // namespace callhome::inventory::detail
