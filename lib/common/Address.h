#pragma once
#include <array>
#include <cstdint>
#include <string>

namespace callhome {
/**
 * The admission key of a peer address: what per-source limits and blocks apply to. An IPv4 address is its own key
 * ("192.0.2.7"); an IPv6 address is keyed by its /64 ("2001:db8:1:2::/64"), the smallest prefix a site or a
 * customer is normally given, so one host cannot dodge a limit by rotating its interface identifier. An
 * IPv4-mapped IPv6 address ("::ffff:192.0.2.7", what a dual-stack socket reports) is keyed as the IPv4 address.
 *
 * Also accepts a key itself, so that operators may type either form: "192.0.2.7/32", "2001:db8:1:2::/64" (host bits
 * are ignored), an IPv6 address in brackets, and a zone suffix ("fe80::1%eth0", dropped). Throws UsageError for
 * anything else, including other prefix lengths.
 */
std::string sourceKey(const std::string& numericAddress);

/** An IPv4 or IPv6 network ("10.1.0.0/16", "2001:db8::/32"; a bare address is a /32 or /128). */
struct AddressPrefix {
    bool v4 = true;
    std::array<uint8_t, 16> bytes {}; ///< network order; the first 4 for IPv4
    unsigned length = 0; ///< prefix length in bits
    std::string text; ///< canonical "ADDRESS/LENGTH"
    /** Whether the numeric address (IPv4-mapped IPv6 counts as IPv4; no port) is in this network. */
    bool contains(const std::string& numericAddress) const;
    bool operator==(const AddressPrefix& other) const { return text == other.text; }
};
/** Parses "ADDRESS/LENGTH" or "ADDRESS"; throws UsageError for anything else, and for host bits set (10.1.2.3/16). */
AddressPrefix parsePrefix(const std::string& text);
} // namespace callhome
