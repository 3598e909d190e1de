#include "netconf/Message.h"
#include <charconv>
#include <libxml/parser.h>
#include <libxml/xmlreader.h>
#include <memory>
#include <mutex>

namespace callhome::netconf {
namespace {
struct ReaderFree {
    void operator()(xmlTextReader* r) const noexcept { xmlFreeTextReader(r); }
};
using ReaderPtr = std::unique_ptr<xmlTextReader, ReaderFree>;
struct XmlCharFree {
    void operator()(xmlChar* p) const noexcept { xmlFree(p); }
};
using XmlStringPtr = std::unique_ptr<xmlChar, XmlCharFree>;

/** A streaming reader over `xml`; null when libxml2 cannot take it (it counts sizes in int). */
ReaderPtr reader(std::string_view xml)
{
    if (xml.size() > INT32_MAX) {
        return nullptr;
    }
    static std::once_flag once;
    std::call_once(once, [] { xmlInitParser(); });
    // No network, no DTD loading, no entity substitution; errors are ours to report, not libxml2's to print.
    return ReaderPtr(xmlReaderForMemory(xml.data(), static_cast<int>(xml.size()), nullptr, nullptr,
        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA));
}

std::string str(const xmlChar* p)
{
    return p ? std::string(reinterpret_cast<const char*>(p)) : std::string();
}

std::string owned(xmlChar* p)
{
    XmlStringPtr guard(p);
    return str(p);
}

bool isElement(xmlTextReader* r)
{
    return xmlTextReaderNodeType(r) == XML_READER_TYPE_ELEMENT;
}

std::string localName(xmlTextReader* r)
{
    return str(xmlTextReaderConstLocalName(r));
}

std::string trim(std::string s)
{
    auto b = s.find_first_not_of(" \t\r\n");
    auto e = s.find_last_not_of(" \t\r\n");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}
} // namespace

std::optional<MessageHead> messageHead(std::string_view xml)
{
    auto r = reader(xml);
    if (!r) {
        return std::nullopt;
    }
    MessageHead head;
    bool haveRoot = false;
    int rc;
    while ((rc = xmlTextReaderRead(r.get())) == 1) {
        if (!isElement(r.get())) {
            continue;
        }
        if (!haveRoot) {
            head.name = localName(r.get());
            head.ns = str(xmlTextReaderConstNamespaceUri(r.get()));
            head.messageId = owned(xmlTextReaderGetAttribute(r.get(), BAD_CAST "message-id"));
            haveRoot = true;
            if (xmlTextReaderIsEmptyElement(r.get())) {
                break;
            }
            continue;
        }
        head.firstChild = localName(r.get());
        break;
    }
    if (!haveRoot) {
        return std::nullopt;
    }
    return head;
}

bool Hello::supports11() const
{
    for (const auto& c : capabilities) {
        if (c == kBase11) {
            return true;
        }
    }
    return false;
}

std::optional<Hello> parseHello(std::string_view xml)
{
    auto r = reader(xml);
    if (!r) {
        return std::nullopt;
    }
    Hello hello;
    bool root = false;
    int rc;
    while ((rc = xmlTextReaderRead(r.get())) == 1) {
        if (!isElement(r.get())) {
            continue;
        }
        auto depth = xmlTextReaderDepth(r.get());
        auto name = localName(r.get());
        if (depth == 0) {
            if (name != "hello" || str(xmlTextReaderConstNamespaceUri(r.get())) != kBaseNamespace) {
                return std::nullopt;
            }
            root = true;
        } else if (depth == 2 && name == "capability") {
            auto text = trim(owned(xmlTextReaderReadString(r.get())));
            if (!text.empty()) {
                hello.capabilities.push_back(std::move(text));
            }
        } else if (depth == 1 && name == "session-id") {
            auto text = trim(owned(xmlTextReaderReadString(r.get())));
            uint32_t id = 0;
            auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
            if (ec != std::errc() || p != text.data() + text.size() || id == 0) {
                return std::nullopt;
            }
            hello.sessionId = id;
        }
    }
    if (rc != 0 || !root || hello.capabilities.empty()) {
        return std::nullopt; // malformed XML, or not a hello
    }
    return hello;
}

std::optional<OperationSummary> operationSummary(std::string_view xml)
{
    auto r = reader(xml);
    if (!r) {
        return std::nullopt;
    }
    OperationSummary out;
    bool inDatastore = false;
    bool haveRoot = false;
    while (xmlTextReaderRead(r.get()) == 1) {
        if (!isElement(r.get())) {
            continue;
        }
        auto depth = xmlTextReaderDepth(r.get());
        auto name = localName(r.get());
        if (depth == 0) {
            out.name = name;
            haveRoot = true;
            if (name == "commit") {
                out.datastore = "running";
            } else if (name == "discard-changes") {
                out.datastore = "candidate";
            } else if (name == "get") {
                out.datastore = "operational";
            }
            if (xmlTextReaderIsEmptyElement(r.get()) || !out.datastore.empty()) {
                break;
            }
        } else if (depth == 1) {
            if (name != "target" && name != "source") {
                if (name == "config" || name == "filter") {
                    break; // the body: never read for the trace
                }
                continue;
            }
            inDatastore = true;
        } else if (depth == 2 && inDatastore) {
            out.datastore = name.substr(0, 64);
            break;
        }
    }
    if (!haveRoot) {
        return std::nullopt;
    }
    return out;
}

std::string xmlEscape(std::string_view text)
{
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        switch (c) {
        case '&':
            out += "&amp;";
            break;
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        case '"':
            out += "&quot;";
            break;
        default:
            out += c;
        }
    }
    return out;
}

std::string helloMessage(const Hello& hello)
{
    std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><hello xmlns=\"";
    out += kBaseNamespace;
    out += "\"><capabilities>";
    for (const auto& c : hello.capabilities) {
        out += "<capability>" + xmlEscape(c) + "</capability>";
    }
    out += "</capabilities>";
    if (hello.sessionId) {
        out += "<session-id>" + std::to_string(*hello.sessionId) + "</session-id>";
    }
    out += "</hello>";
    return out;
}

std::optional<Reply> parseReply(std::string_view xml)
{
    auto r = reader(xml);
    if (!r) {
        return std::nullopt;
    }
    Reply reply;
    bool root = false;
    bool sawError = false;
    bool sawResult = false;
    int rc;
    while ((rc = xmlTextReaderRead(r.get())) == 1) {
        if (!isElement(r.get())) {
            continue;
        }
        auto depth = xmlTextReaderDepth(r.get());
        auto name = localName(r.get());
        if (depth == 0) {
            if (name != "rpc-reply") {
                return std::nullopt;
            }
            root = true;
        } else if (depth == 1 && name == "rpc-error") {
            sawError = true;
        } else if (depth == 2 && sawError && (name == "error-tag" || name == "error-message")
            && reply.error.size() < 512) {
            auto text = trim(owned(xmlTextReaderReadString(r.get())));
            if (name == "error-tag" && reply.errorTag.empty()) {
                reply.errorTag = text;
            }
            if (!reply.error.empty()) {
                reply.error += ": ";
            }
            reply.error += text;
        } else if (depth == 2 && sawError && name == "error-path" && reply.errorPath.empty()) {
            reply.errorPath = trim(owned(xmlTextReaderReadString(r.get()))).substr(0, 1024);
        } else if (depth == 1 && name == "ok") {
            sawResult = true;
        } else if (depth == 1 && name == "data") {
            sawResult = true;
            reply.dataText = owned(xmlTextReaderReadString(r.get()));
        }
    }
    if (rc != 0 || !root) {
        return std::nullopt;
    }
    reply.ok = sawResult && !sawError;
    return reply;
}
} // namespace callhome::netconf
