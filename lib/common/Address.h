#pragma once
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
} // namespace callhome
