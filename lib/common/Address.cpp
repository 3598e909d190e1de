#include "common/Address.h"
#include "common/Error.h"
#include <arpa/inet.h>
#include <cstring>
#include <netinet/in.h>

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
} // namespace callhome
