#include "inventory/Common.h"
#include "common/Error.h"
#include "common/Text.h"
#include "inventory/Inventory.h"
#include <algorithm>
#include <cctype>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace callhome::inventory::detail {
std::vector<std::pair<std::string_view, std::string_view>> sortedMigrations(
    std::vector<std::pair<std::string_view, std::string_view>> list)
{
    std::sort(list.begin(), list.end());
    for (size_t i = 0; i < list.size(); ++i) {
        const auto& name = list[i].first;
        auto digits = name.substr(0, name.find_first_not_of("0123456789"));
        if (digits.empty() || std::stoll(std::string(digits)) != static_cast<long long>(i + 1)) {
            // A build with a gap or duplicate in schemas/sql or schemas/pgsql would number schema versions wrongly.
            throw DatabaseError(
                "internal error: migration " + std::string(name) + " is not number " + std::to_string(i + 1));
        }
    }
    return list;
}

int64_t toMs(TimePoint t)
{
    return t.time_since_epoch().count();
}

TimePoint fromMs(int64_t ms)
{
    return TimePoint(std::chrono::milliseconds(ms));
}

std::string serialIdentity(const Device& d)
{
    return d.manufacturer + "/" + d.serial;
}

std::string describe(const Device& d)
{
    if (d.name) {
        return *d.name;
    }
    return d.fingerprint.empty() && !d.serial.empty() ? serialIdentity(d) : d.fingerprint;
}

std::string identityProblem(const std::string& what, const std::string& value)
{
    if (value.empty()) {
        return what + " is empty";
    }
    if (value.size() > MaxIdentityLength) {
        return fmt::format("{} is longer than {} characters", what, MaxIdentityLength);
    }
    if (std::any_of(value.begin(), value.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; })) {
        return what + " contains control characters";
    }
    return {};
}

std::string normalizeHexFingerprint(const std::string& reference)
{
    auto body = std::string_view(reference);
    std::string prefix;
    auto head = std::string(body.substr(0, FingerprintPrefix.size()));
    std::transform(head.begin(), head.end(), head.begin(), [](unsigned char c) { return std::toupper(c); });
    if (head == FingerprintPrefix) {
        prefix = FingerprintPrefix;
        body.remove_prefix(FingerprintPrefix.size());
    }
    auto isHexOrColon = [](unsigned char c) { return std::isxdigit(c) || c == ':'; };
    if (body.find(':') == std::string_view::npos || !std::all_of(body.begin(), body.end(), isHexOrColon)) {
        return reference;
    }
    std::string upper(body);
    std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
    return prefix + upper;
}

bool isNameChar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_'
        || c == '-';
}

bool isAllDigits(const std::string& text)
{
    return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool isValidName(const std::string& name)
{
    return !name.empty() && name.size() <= MaxNameLength && std::all_of(name.begin(), name.end(), isNameChar)
        && !isAllDigits(name);
}

void validateName(const std::string& name)
{
    if (name.empty()) {
        throw UsageError("a device name cannot be empty");
    }
    if (name.size() > MaxNameLength) {
        throw UsageError(fmt::format("device name \"{}\" is longer than {} characters", name, MaxNameLength));
    }
    if (!std::all_of(name.begin(), name.end(), isNameChar)) {
        throw UsageError(fmt::format("device name \"{}\" may contain only letters, digits, '.', '_' and '-'", name));
    }
    if (isAllDigits(name)) {
        throw UsageError(fmt::format(
            "device name \"{}\" is all digits, which would read as a device id; add a letter (e.g. \"dev-{}\")", name,
            name));
    }
}

std::string sshFingerprintProblem(const std::string& fp)
{
    auto isBase64 = [](unsigned char c) { return std::isalnum(c) || c == '+' || c == '/'; };
    if (!fp.starts_with(FingerprintPrefix) || fp.size() != FingerprintPrefix.size() + SshFingerprintLength
        || !std::all_of(fp.begin() + FingerprintPrefix.size(), fp.end(), isBase64)) {
        return fmt::format("\"{}\" is not an SSH host key fingerprint (SHA256: and {} base64 characters, as "
                           "ssh-keygen -l -E sha256 prints)",
            escapeControl(fp), SshFingerprintLength);
    }
    return {};
}

std::vector<std::string> escapedAll(const std::vector<std::string>& texts)
{
    std::vector<std::string> out;
    out.reserve(texts.size());
    for (const auto& t : texts) {
        out.push_back(escapeControl(t));
    }
    return out;
}

std::string encodeCapabilities(const std::vector<std::string>& capabilities)
{
    return nlohmann::json(capabilities).dump();
}

std::vector<std::string> decodeCapabilities(std::string_view text, int64_t deviceId)
{
    auto parsed = nlohmann::json::parse(text, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_array()) {
        throw DatabaseError(fmt::format("device {} has malformed capabilities in the inventory", deviceId));
    }
    std::vector<std::string> out;
    for (const auto& item : parsed) {
        if (item.is_string()) {
            out.push_back(item.get<std::string>());
        }
    }
    return out;
}

std::string stagedLabel(int64_t id)
{
    return "staged edit #" + std::to_string(id);
}
} // namespace callhome::inventory::detail
