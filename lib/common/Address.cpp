#include "common/Address.h"
#include "common/Error.h"
#include <arpa/inet.h>
#include <cstring>
#include <netinet/in.h>
#include <optional>

namespace callhome {
namespace {
std::string ntop(int family, const void* address)
{
    char text[INET6_ADDRSTRLEN] = {};
    if (!::inet_ntop(family, address, text, sizeof text)) {
        // Only reachable with a wrong family: a broken invariant, not operator input.
        throw Error("inet_ntop failed");
    }
    return text;
}

UsageError invalid(const std::string& input, const std::string& why)
{
    return UsageError("\"" + input + "\" is not a source address: " + why
        + " (expected e.g. 192.0.2.7, 2001:db8:1:2::5 or 2001:db8:1:2::/64)");
}
} // namespace

std::string sourceKey(const std::string& numericAddress)
{
    std::string text = numericAddress;
    std::string prefix;
    if (auto slash = text.find('/'); slash != std::string::npos) {
        prefix = text.substr(slash + 1);
        text.erase(slash);
        if (prefix.empty()) {
            throw invalid(numericAddress, "empty prefix length");
        }
    }
    if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
        text = text.substr(1, text.size() - 2);
    }
    if (auto percent = text.find('%'); percent != std::string::npos && text.find(':') != std::string::npos) {
        text.erase(percent);
    }

    in_addr v4 {};
    if (::inet_pton(AF_INET, text.c_str(), &v4) == 1) {
        if (!prefix.empty() && prefix != "32") {
            throw invalid(numericAddress, "an IPv4 source is one address (/32)");
        }
        return ntop(AF_INET, &v4);
    }
    in6_addr v6 {};
    if (::inet_pton(AF_INET6, text.c_str(), &v6) != 1) {
        throw invalid(numericAddress, "not a numeric IPv4 or IPv6 address");
    }
    if (IN6_IS_ADDR_V4MAPPED(&v6)) {
        if (!prefix.empty()) {
            throw invalid(numericAddress, "an IPv4-mapped address takes no prefix; write the IPv4 address");
        }
        std::memcpy(&v4, &v6.s6_addr[12], sizeof v4);
        return ntop(AF_INET, &v4);
    }
    if (!prefix.empty() && prefix != "64") {
        throw invalid(numericAddress, "IPv6 sources are /64 prefixes");
    }
    std::memset(&v6.s6_addr[8], 0, 8);
    return ntop(AF_INET6, &v6) + "/64";
}

AddressPrefix parsePrefix(const std::string& input)
{
    auto bad = [&](const std::string& why) {
        return UsageError("\"" + input + "\" is not an address prefix: " + why
            + " (expected ADDRESS/LENGTH, e.g. 192.0.2.0/24 or 2001:db8::/32)");
    };
    std::string address = input;
    std::optional<unsigned> length;
    if (auto slash = input.find('/'); slash != std::string::npos) {
        address = input.substr(0, slash);
        auto digits = input.substr(slash + 1);
        if (digits.empty() || digits.size() > 3 || digits.find_first_not_of("0123456789") != std::string::npos) {
            throw bad("the length must be a number of bits");
        }
        length = static_cast<unsigned>(std::stoul(digits));
    }
    AddressPrefix p;
    in_addr v4 {};
    in6_addr v6 {};
    unsigned maxLength = 0;
    if (::inet_pton(AF_INET, address.c_str(), &v4) == 1) {
        p.v4 = true;
        maxLength = 32;
        std::memcpy(p.bytes.data(), &v4, 4);
    } else if (::inet_pton(AF_INET6, address.c_str(), &v6) == 1) {
        if (IN6_IS_ADDR_V4MAPPED(&v6)) {
            throw bad("write an IPv4-mapped address as IPv4");
        }
        p.v4 = false;
        maxLength = 128;
        std::memcpy(p.bytes.data(), &v6, 16);
    } else {
        throw bad("\"" + address + "\" is not a numeric IPv4 or IPv6 address");
    }
    p.length = length.value_or(maxLength);
    if (p.length > maxLength) {
        throw bad("an " + std::string(p.v4 ? "IPv4" : "IPv6") + " prefix is at most /" + std::to_string(maxLength));
    }
    for (unsigned bit = p.length; bit < maxLength; ++bit) {
        if (p.bytes[bit / 8] & (0x80u >> (bit % 8))) {
            // A typo such as 10.1.2.3/8 for 10.1.2.3/32 would widen an allow-list: refuse it rather than guess.
            throw bad("host bits are set after the first " + std::to_string(p.length) + " bits");
        }
    }
    p.text = ntop(p.v4 ? AF_INET : AF_INET6, p.bytes.data()) + "/" + std::to_string(p.length);
    return p;
}

bool AddressPrefix::contains(const std::string& numericAddress) const
{
    std::string text = numericAddress;
    if (auto percent = text.find('%'); percent != std::string::npos) {
        text.erase(percent);
    }
    std::array<uint8_t, 16> peer {};
    bool peerV4 = false;
    in_addr a4 {};
    in6_addr a6 {};
    if (::inet_pton(AF_INET, text.c_str(), &a4) == 1) {
        peerV4 = true;
        std::memcpy(peer.data(), &a4, 4);
    } else if (::inet_pton(AF_INET6, text.c_str(), &a6) == 1) {
        if (IN6_IS_ADDR_V4MAPPED(&a6)) {
            peerV4 = true;
            std::memcpy(peer.data(), &a6.s6_addr[12], 4);
        } else {
            std::memcpy(peer.data(), &a6, 16);
        }
    } else {
        return false;
    }
    if (peerV4 != v4) {
        return false;
    }
    for (unsigned bit = 0; bit < length; ++bit) {
        const uint8_t mask = 0x80u >> (bit % 8);
        if ((peer[bit / 8] & mask) != (bytes[bit / 8] & mask)) {
            return false;
        }
    }
    return true;
}
} // namespace callhome
