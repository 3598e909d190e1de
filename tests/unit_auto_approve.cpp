// Auto-approve rule matching (admission/auto-approve) and the address prefixes it uses: no SQLite, no network.
#include "common/Address.h"
#include "common/Error.h"
#include "identity/AutoApprove.h"
#include <catch2/catch.hpp>

using namespace callhome;
using namespace callhome::identity;
using config::Transport;

namespace {
config::AutoApproveRule rule(const std::string& name, std::vector<std::string> sources,
    std::optional<Transport> transport = std::nullopt, std::optional<std::string> manufacturer = std::nullopt)
{
    config::AutoApproveRule r;
    r.name = name;
    for (const auto& s : sources) {
        r.sources.push_back(parsePrefix(s));
    }
    r.transport = transport;
    r.manufacturer = manufacturer;
    r.namePrefix = name + "-";
    return r;
}

std::string matched(const std::vector<config::AutoApproveRule>& rules, Transport t, const std::string& address,
    const std::string& manufacturer = "")
{
    auto* r = matchAutoApprove(rules, { t, address, manufacturer });
    return r ? r->name : "";
}
} // namespace

TEST_CASE("address prefixes: IPv4, IPv6, IPv4-mapped peers, bounds")
{
    auto p = parsePrefix("10.1.0.0/16");
    CHECK(p.text == "10.1.0.0/16");
    CHECK(p.contains("10.1.255.7"));
    CHECK(p.contains("::ffff:10.1.0.1")); // what a dual-stack socket reports
    CHECK_FALSE(p.contains("10.2.0.1"));
    CHECK_FALSE(p.contains("2001:db8::1"));
    CHECK_FALSE(p.contains("not an address"));

    auto host = parsePrefix("192.0.2.7");
    CHECK(host.text == "192.0.2.7/32");
    CHECK(host.contains("192.0.2.7"));
    CHECK_FALSE(host.contains("192.0.2.8"));

    auto v6 = parsePrefix("2001:DB8:7::/48");
    CHECK(v6.text == "2001:db8:7::/48");
    CHECK(v6.contains("2001:db8:7:ffff::1"));
    CHECK(v6.contains("2001:db8:7::1%eth0"));
    CHECK_FALSE(v6.contains("2001:db8:8::1"));
    CHECK_FALSE(v6.contains("10.0.0.1"));

    CHECK(parsePrefix("0.0.0.0/0").contains("203.0.113.1"));
    CHECK(parsePrefix("::/0").contains("2001:db8::1"));
    CHECK_FALSE(parsePrefix("::/0").contains("203.0.113.1"));
    CHECK(parsePrefix("10.1.2.2/31").length == 31);
    CHECK(parsePrefix("127.0.0.0/15").contains("127.1.0.1"));

    CHECK_THROWS_AS(parsePrefix("10.1.2.3/16"), UsageError); // host bits: refused, not widened
    CHECK_THROWS_WITH(parsePrefix("10.0.0.0/33"), Catch::Contains("at most /32"));
    CHECK_THROWS_WITH(parsePrefix("::/129"), Catch::Contains("at most /128"));
    CHECK_THROWS_WITH(parsePrefix("10.0.0.0/x"), Catch::Contains("number of bits"));
    CHECK_THROWS_WITH(parsePrefix("10.0.0.0/"), Catch::Contains("number of bits"));
    CHECK_THROWS_WITH(parsePrefix("host/24"), Catch::Contains("not a numeric"));
    CHECK_THROWS_WITH(parsePrefix(""), Catch::Contains("not a numeric"));
    CHECK_THROWS_WITH(parsePrefix("::ffff:10.0.0.0/104"), Catch::Contains("as IPv4"));
}

TEST_CASE("auto-approve: the first matching rule wins; every criterion a rule sets must hold")
{
    std::vector<config::AutoApproveRule> rules {
        rule("lab-ssh", { "10.1.0.0/16" }, Transport::Ssh),
        rule("lab-any", { "10.0.0.0/8", "2001:db8::/32" }),
        rule("acme", {}, std::nullopt, "acme"),
        rule("acme-site", { "192.0.2.0/24" }, Transport::Tls, "other"),
    };
    CHECK(matched(rules, Transport::Ssh, "10.1.2.3") == "lab-ssh");
    CHECK(matched(rules, Transport::Tls, "10.1.2.3") == "lab-any"); // lab-ssh is ssh only
    CHECK(matched(rules, Transport::Ssh, "::ffff:10.9.0.1") == "lab-any");
    CHECK(matched(rules, Transport::Ssh, "2001:db8:1::5") == "lab-any");
    CHECK(matched(rules, Transport::Ssh, "203.0.113.5").empty());
    // manufacturer: a TLS device verified by that manufacturer's anchor, from anywhere
    CHECK(matched(rules, Transport::Tls, "203.0.113.5", "acme") == "acme");
    CHECK(matched(rules, Transport::Tls, "203.0.113.5", "").empty()); // self-signed: no manufacturer
    CHECK(matched(rules, Transport::Ssh, "203.0.113.5", "acme").empty()); // SSH devices have none
    // source and manufacturer together
    CHECK(matched(rules, Transport::Tls, "192.0.2.1", "other") == "acme-site");
    CHECK(matched(rules, Transport::Tls, "198.51.100.1", "other").empty());
    CHECK(matched(rules, Transport::Tls, "192.0.2.1", "acme") == "acme");
}

TEST_CASE("auto-approve: no rules, or a rule without source and manufacturer, approves nothing")
{
    CHECK(matched({}, Transport::Ssh, "10.0.0.1").empty());
    config::AutoApproveRule open;
    open.name = "open";
    open.namePrefix = "x-";
    open.transport = Transport::Ssh;
    CHECK(matched({ open }, Transport::Ssh, "10.0.0.1").empty());
}
