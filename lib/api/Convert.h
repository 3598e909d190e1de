#pragma once
#include "common/Error.h"
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct ly_ctx;

namespace callhome::api {
/** The request's XML or JSON is not acceptable (bad syntax, unknown module, ...): HTTP 400. */
class BadRequest : public UsageError {
public:
    BadRequest(std::string code, const std::string& message)
        : UsageError(message)
        , m_code(std::move(code))
    { }
    const std::string& code() const noexcept { return m_code; }

private:
    std::string m_code;
};

/** One <rpc-error> of a reply (RFC 6241 §4.3); absent fields are empty. */
struct RpcError {
    std::string type, tag, severity, appTag, path, message;
    std::string info; ///< the <error-info> content as XML
};

/** The <rpc-error>s of an <rpc-reply> (none for <ok/> or <data>). */
std::vector<RpcError> rpcErrors(std::string_view reply);
/** The content of the reply's <data> element as XML (nullopt when there is none). */
std::optional<std::string> replyData(std::string_view reply);

/**
 * Checks that `xml` is one well-formed XML element (no DTD) and returns it re-serialized, without an XML declaration:
 * safe to put inside <rpc> or <config>. Throws BadRequest("bad-xml").
 */
std::string oneElement(std::string_view xml, const char* what);
/** Checks `xml` is a sequence of well-formed elements (a <config> or subtree filter content); returns it. */
std::string elements(std::string_view xml, const char* what);

/**
 * Data as RFC 7951 JSON, parsed from XML with the device's schema context `ctx` (caller holds its lock shared).
 * Data the context does not cover (a module it lacks) is an Error naming it, never left out. Empty data is "{}".
 */
std::string dataToJson(const ly_ctx* ctx, const std::string& xml);
/** RFC 7951 JSON configuration → XML for <config>, with `ctx`. Throws BadRequest("bad-json" / "unknown-module"). */
std::string jsonToXml(const ly_ctx* ctx, const std::string& json);
/**
 * The output of an RPC's reply as RFC 7951 JSON (`{"module:output": {...}}`; `{}` for <ok/>); `operation` is the
 * request as sent. A <data> reply (get, get-config) gives the data as dataToJson does. nullopt when libyang cannot
 * parse it with the device's schemas.
 */
std::optional<std::string> replyToJson(const ly_ctx* ctx, const std::string& operation, const std::string& reply);
/** A <notification>'s eventTime and content as RFC 7951 JSON; json nullopt when the schemas do not cover it. */
struct NotificationJson {
    std::string eventTime;
    std::optional<std::string> json;
};
NotificationJson notificationToJson(const ly_ctx* ctx, const std::string& xml);
/** An XPath filter ready for <filter type="xpath" select="..." NAMESPACES>. */
struct XPathFilter {
    std::string select; ///< the XPath with each module-name prefix replaced by that module's YANG prefix
    std::string namespaces; ///< ` xmlns:P="namespace"` for each prefix used
};
/**
 * Rewrites an XPath written RFC 7951 style, with module names as prefixes ("/ietf-interfaces:interfaces"), for
 * NETCONF: each becomes the module's YANG prefix ("/if:interfaces"), declared with its namespace, which both the
 * servers that resolve prefixes by the filter's namespace declarations and those that use module prefixes
 * (yuma123) understand. Throws BadRequest("unknown-module") for a module the device does not implement.
 */
XPathFilter xpathFilter(const ly_ctx* ctx, std::string_view xpath);
/** Collapses an XML document onto one line (newlines between elements removed) for line-based streams. */
std::string oneLine(std::string_view xml);
} // namespace callhome::api
