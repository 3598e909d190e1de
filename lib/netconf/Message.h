#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace callhome::netconf {
inline constexpr std::string_view kBaseNamespace = "urn:ietf:params:xml:ns:netconf:base:1.0";
inline constexpr std::string_view kNotificationNamespace = "urn:ietf:params:xml:ns:netconf:notification:1.0";
inline constexpr std::string_view kBase11 = "urn:ietf:params:netconf:base:1.1";

/** What the transport pump needs to know of a message to route it: its root element and message-id. */
struct MessageHead {
    std::string name; ///< local name: hello, rpc, rpc-reply, notification, ...
    std::string ns; ///< namespace URI of the root element
    std::string messageId; ///< empty when absent
    std::string firstChild; ///< local name of the first child element (the operation of an <rpc>), may be empty
};
/** Reads only the start of `xml` (streaming): nullopt when it does not start with a well-formed element. */
std::optional<MessageHead> messageHead(std::string_view xml);

/** A peer's <hello>. */
struct Hello {
    std::vector<std::string> capabilities;
    std::optional<uint32_t> sessionId;
    bool supports11() const;
};
/** Parses a <hello>; nullopt when the message is not a well-formed NETCONF <hello> with capabilities. */
std::optional<Hello> parseHello(std::string_view xml);
/** A <hello> message (without framing) with these capabilities, XML-escaped. */
std::string helloMessage(const Hello& hello);

/** The outcome of an <rpc-reply> as the pump sees it. */
struct Reply {
    bool ok = false; ///< <ok/> or <data>, no <rpc-error>
    std::optional<std::string> dataText; ///< text content of <data> (e.g. the YANG source of <get-schema>)
    std::string error; ///< error-tag and error-message of the first <rpc-error>
    std::string errorTag; ///< the first <rpc-error>'s error-tag
    std::string errorPath; ///< and its error-path (empty when absent)
};
/** Parses an <rpc-reply>; nullopt when it is not one. */
std::optional<Reply> parseReply(std::string_view xml);

/** What a trace records of an operation (what goes inside <rpc>): its name and the datastore it reads or changes. */
struct OperationSummary {
    std::string name; ///< local name of the root element: edit-config, get-config, commit, ...
    /** <target>'s or <source>'s datastore (running, candidate, startup, url); commit: running; discard-changes:
     * candidate; get: operational; empty for the others. */
    std::string datastore;
};
/** Reads `xml` only up to its datastore (never into <config> or a filter); nullopt when it is not XML. */
std::optional<OperationSummary> operationSummary(std::string_view xml);

std::string xmlEscape(std::string_view text);
} // namespace callhome::netconf
