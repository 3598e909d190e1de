#include "cli/KnownHosts.h"
#include "common/Error.h"
#include "common/Text.h"
#include <algorithm>
#include <array>
#include <cstdint>
#include <fmt/format.h>
#include <istream>
#include <map>
#include <openssl/evp.h>
#include <set>
#include <sstream>

namespace callhome::cli {
namespace {
constexpr std::string_view Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::size_t GeneratedNameChars = 12;

std::string encodeBase64NoPadding(const unsigned char* data, std::size_t size)
{
    std::string out;
    out.reserve((size + 2) / 3 * 4);
    for (std::size_t i = 0; i < size; i += 3) {
        uint32_t n = static_cast<uint32_t>(data[i]) << 16;
        const std::size_t left = size - i;
        if (left > 1) {
            n |= static_cast<uint32_t>(data[i + 1]) << 8;
        }
        if (left > 2) {
            n |= data[i + 2];
        }
        out.push_back(Alphabet[(n >> 18) & 63]);
        out.push_back(Alphabet[(n >> 12) & 63]);
        if (left > 1) {
            out.push_back(Alphabet[(n >> 6) & 63]);
        }
        if (left > 2) {
            out.push_back(Alphabet[n & 63]);
        }
    }
    return out;
}

bool isNameChar(unsigned char c)
{
    return std::isalnum(c) || c == '.' || c == '_' || c == '-';
}

/** The type string a key blob starts with (RFC 4253 section 6.6: uint32 length, then the name). */
std::optional<std::string> blobKeyType(const std::string& blob)
{
    if (blob.size() < 4) {
        return std::nullopt;
    }
    uint32_t len = 0;
    for (int i = 0; i < 4; ++i) {
        len = (len << 8) | static_cast<unsigned char>(blob[static_cast<std::size_t>(i)]);
    }
    if (len == 0 || len > blob.size() - 4) {
        return std::nullopt;
    }
    return blob.substr(4, len);
}

/** The host a plain known_hosts pattern names: "[host]:port" → host. nullopt for wildcards and negations. */
std::optional<std::string> hostOf(const std::string& pattern)
{
    if (pattern.empty() || pattern.front() == '!' || pattern.find_first_of("*?") != std::string::npos) {
        return std::nullopt;
    }
    if (pattern.front() == '[') {
        auto close = pattern.find(']');
        if (close == std::string::npos || close == 1) {
            return std::nullopt;
        }
        return pattern.substr(1, close - 1);
    }
    return pattern;
}

std::string asName(std::string host)
{
    std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return isNameChar(c) ? c : '-'; });
    return host;
}

std::string typeSuffix(const std::string& keyType)
{
    return keyType.starts_with("ssh-") ? keyType.substr(4) : keyType;
}
} // namespace

std::optional<std::string> decodeBase64(const std::string& text)
{
    std::string body = text;
    while (!body.empty() && body.back() == '=') {
        body.pop_back();
    }
    if (text.size() - body.size() > 2 || body.size() % 4 == 1) {
        return std::nullopt;
    }
    std::string out;
    out.reserve(body.size() * 3 / 4);
    uint32_t acc = 0;
    int bits = 0;
    for (char c : body) {
        auto pos = Alphabet.find(c);
        if (pos == std::string_view::npos) {
            return std::nullopt;
        }
        acc = (acc << 6) | static_cast<uint32_t>(pos);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xFF));
        }
    }
    return out;
}

std::string sshFingerprint(const std::string& blob)
{
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest {};
    unsigned int len = 0;
    if (EVP_Digest(blob.data(), blob.size(), digest.data(), &len, EVP_sha256(), nullptr) != 1) {
        throw Error("EVP_Digest(SHA-256) failed");
    }
    return "SHA256:" + encodeBase64NoPadding(digest.data(), len);
}

std::vector<KnownHostKey> parseKnownHosts(
    std::istream& in, const std::string& fileName, const std::string& hashedPrefix)
{
    std::vector<KnownHostKey> out;
    std::set<std::string> fingerprints;
    std::set<std::string> names;
    std::map<std::string, std::size_t> keysOfHost; // plain host name → keys named after it so far
    std::size_t lineNumber = 0;
    auto fail = [&](const std::string& problem) {
        return UsageError(fmt::format("{}:{}: {}", fileName, lineNumber, problem));
    };
    for (std::string line; std::getline(in, line);) {
        ++lineNumber;
        if (!line.empty() && line.back() == '\r') {
            line.pop_back();
        }
        std::istringstream words(line);
        std::string hosts;
        if (!(words >> hosts) || hosts.front() == '#') {
            continue;
        }
        if (hosts.front() == '@') {
            if (hosts == "@cert-authority" || hosts == "@revoked") {
                continue; // a CA key, or a key that must never be accepted: nothing to pre-provision
            }
            throw fail("unknown marker \"" + escapeControl(hosts) + "\" (known: @cert-authority, @revoked)");
        }
        std::string keyType, base64;
        if (!(words >> keyType >> base64)) {
            throw fail("expected \"hostnames keytype base64-key [comment]\"");
        }
        auto blob = decodeBase64(base64);
        if (!blob) {
            throw fail("the key of " + escapeControl(keyType) + " is not valid base64");
        }
        auto embedded = blobKeyType(*blob);
        if (!embedded || *embedded != keyType) {
            throw fail(fmt::format("the key is not a {} key (its blob says \"{}\")", escapeControl(keyType),
                escapeControl(embedded.value_or("?"))));
        }
        KnownHostKey key { .line = lineNumber, .keyType = keyType, .fingerprint = sshFingerprint(*blob) };
        if (!fingerprints.insert(key.fingerprint).second) {
            continue; // the same key under another name (ssh-keyscan writes one line per host name / address)
        }
        if (hosts.starts_with("|1|")) {
            key.hashed = true;
            std::string fragment = key.fingerprint.substr(7, GeneratedNameChars);
            std::replace(fragment.begin(), fragment.end(), '+', '-');
            std::replace(fragment.begin(), fragment.end(), '/', '_');
            key.name = hashedPrefix + fragment;
        } else {
            auto first = hosts.substr(0, hosts.find(','));
            auto host = hostOf(first);
            if (!host) {
                throw fail("\"" + escapeControl(first)
                    + "\" is a pattern, not one host; write the device's own host name on this line");
            }
            auto base = asName(*host);
            auto& count = keysOfHost[base];
            key.name = count == 0 ? base : base + "-" + asName(typeSuffix(keyType));
            ++count;
        }
        // Still unique (two rsa keys of one host, a host literally named "router1-rsa"): number the later ones.
        if (names.count(key.name)) {
            const auto taken = key.name;
            for (int n = 2; names.count(key.name = taken + "-" + std::to_string(n)); ++n) { }
        }
        names.insert(key.name);
        out.push_back(std::move(key));
    }
    if (in.bad()) {
        throw UsageError(fmt::format("{}: read error after line {}", fileName, lineNumber));
    }
    if (out.empty()) {
        throw UsageError(fileName + ": no host keys in the file (expected OpenSSH known_hosts lines)");
    }
    return out;
}
} // namespace callhome::cli
