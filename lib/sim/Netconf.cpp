#include "sim/Netconf.h"
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fmt/format.h>
#include <optional>

namespace callhome::sim {
namespace embedded {
extern const std::vector<std::pair<std::string_view, std::string_view>> modules;
}

namespace {
constexpr std::string_view BaseNs = "urn:ietf:params:xml:ns:netconf:base:1.0";
constexpr std::string_view MonitoringNs = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring";
constexpr std::string_view SimNs = "urn:callhome:params:xml:ns:yang:callhome-sim";
constexpr std::string_view Eom = "]]>]]>";

bool isNameEnd(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '/' || c == '>';
}

/** A start tag found in a message: [begin, end) covers `<...>`; attributes are the text after the name. */
struct Tag {
    size_t begin = 0;
    size_t end = 0;
    size_t nameEnd = 0;
    std::string prefix; ///< "nc:" or empty
    bool selfClosing = false;
};

/** The first start tag at or after `from` whose local name is `local` (any namespace prefix). */
std::optional<Tag> findStartTag(std::string_view xml, std::string_view local, size_t from = 0)
{
    for (size_t p = xml.find('<', from); p != std::string_view::npos; p = xml.find('<', p + 1)) {
        size_t nameBegin = p + 1;
        if (nameBegin >= xml.size() || xml[nameBegin] == '/' || xml[nameBegin] == '?' || xml[nameBegin] == '!') {
            continue;
        }
        size_t nameEnd = nameBegin;
        while (nameEnd < xml.size() && !isNameEnd(xml[nameEnd])) {
            ++nameEnd;
        }
        auto qname = xml.substr(nameBegin, nameEnd - nameBegin);
        auto colon = qname.find(':');
        auto name = colon == std::string_view::npos ? qname : qname.substr(colon + 1);
        if (name != local) {
            continue;
        }
        auto close = xml.find('>', nameEnd);
        if (close == std::string_view::npos) {
            return std::nullopt;
        }
        Tag t;
        t.begin = p;
        t.end = close + 1;
        t.nameEnd = nameEnd;
        t.prefix = colon == std::string_view::npos ? "" : std::string(qname.substr(0, colon + 1));
        t.selfClosing = close > 0 && xml[close - 1] == '/';
        return t;
    }
    return std::nullopt;
}

/** Local name of the first element that starts after `from`. */
std::string firstElementName(std::string_view xml, size_t from)
{
    for (size_t p = xml.find('<', from); p != std::string_view::npos; p = xml.find('<', p + 1)) {
        if (p + 1 >= xml.size() || xml[p + 1] == '!' || xml[p + 1] == '?') {
            continue;
        }
        if (xml[p + 1] == '/') {
            return "";
        }
        size_t e = p + 1;
        while (e < xml.size() && !isNameEnd(xml[e])) {
            ++e;
        }
        auto qname = xml.substr(p + 1, e - p - 1);
        auto colon = qname.find(':');
        return std::string(colon == std::string_view::npos ? qname : qname.substr(colon + 1));
    }
    return "";
}

/** Text of the first element named `local`, trimmed; nullopt when absent. */
std::optional<std::string> elementText(std::string_view xml, std::string_view local)
{
    auto tag = findStartTag(xml, local);
    if (!tag) {
        return std::nullopt;
    }
    if (tag->selfClosing) {
        return std::string();
    }
    auto close = xml.find("</", tag->end);
    if (close == std::string_view::npos) {
        return std::nullopt;
    }
    auto text = xml.substr(tag->end, close - tag->end);
    auto b = text.find_first_not_of(" \t\r\n");
    auto e = text.find_last_not_of(" \t\r\n");
    return b == std::string_view::npos ? std::string() : std::string(text.substr(b, e - b + 1));
}

/** Everything between `<prefix:config ...>` and its closing tag (the last one in the message). */
std::optional<std::string> configContent(std::string_view xml)
{
    auto tag = findStartTag(xml, "config");
    if (!tag) {
        return std::nullopt;
    }
    if (tag->selfClosing) {
        return std::string();
    }
    auto closing = "</" + tag->prefix + "config>";
    auto close = xml.rfind(closing);
    if (close == std::string_view::npos || close < tag->end) {
        return std::nullopt;
    }
    return std::string(xml.substr(tag->end, close - tag->end));
}

std::string nowRfc3339()
{
    auto now = std::chrono::system_clock::now();
    auto t = std::chrono::system_clock::to_time_t(now);
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() % 1000000;
    std::tm tm {};
    gmtime_r(&t, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900, tm.tm_mon + 1,
        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(us));
    return buf;
}

std::string rpcError(std::string_view tag, std::string_view message)
{
    return fmt::format("<rpc-error><error-type>protocol</error-type><error-tag>{}</error-tag>"
                       "<error-severity>error</error-severity><error-message xml:lang=\"en\">{}</error-message>"
                       "</rpc-error>",
        tag, xmlEscape(message));
}

int64_t monotonicSeconds()
{
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}
} // namespace

std::string xmlEscape(std::string_view text)
{
    std::string out;
    out.reserve(text.size() + text.size() / 16);
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
        default:
            out += c;
        }
    }
    return out;
}

const std::vector<Module>& announcedModules()
{
    static const std::vector<Module> modules = [] {
        std::vector<Module> out;
        for (const auto& [file, text] : embedded::modules) {
            // file names are NAME@REVISION.yang
            auto at = file.find('@');
            auto dot = file.rfind(".yang");
            // the module's own namespace statement: namespace "URI";
            auto q1 = text.find('"', text.find("namespace"));
            auto q2 = text.find('"', q1 + 1);
            out.push_back(Module {
                file.substr(0, at), file.substr(at + 1, dot - at - 1), text.substr(q1 + 1, q2 - q1 - 1), text });
        }
        return out;
    }();
    return modules;
}

FrameDecoder::Result FrameDecoder::next(std::string& out)
{
    return m_chunked ? nextChunked(out) : nextEom(out);
}

FrameDecoder::Result FrameDecoder::nextEom(std::string& out)
{
    auto p = m_in.find(Eom);
    if (p == std::string::npos) {
        return m_in.size() > m_max ? Result::Error : Result::NeedMore;
    }
    out.assign(m_in, 0, p);
    m_in.erase(0, p + Eom.size());
    return Result::Message;
}

FrameDecoder::Result FrameDecoder::nextChunked(std::string& out)
{
    // RFC 6242 4.2: chunk = LF HASH chunk-size LF chunk-data; end-of-chunks = LF HASH HASH LF
    while (true) {
        if (m_in.size() < 4) {
            return Result::NeedMore;
        }
        if (m_in[0] != '\n' || m_in[1] != '#') {
            return Result::Error;
        }
        if (m_in[2] == '#') {
            if (m_in[3] != '\n') {
                return Result::Error;
            }
            m_in.erase(0, 4);
            out = std::move(m_message);
            m_message.clear();
            return Result::Message;
        }
        size_t lf = m_in.find('\n', 2);
        if (lf == std::string::npos) {
            return m_in.size() > 12 ? Result::Error : Result::NeedMore; // chunk-size is at most 10 digits
        }
        uint64_t len = 0;
        for (size_t i = 2; i < lf; ++i) {
            if (m_in[i] < '0' || m_in[i] > '9' || (i == 2 && m_in[i] == '0')) {
                return Result::Error;
            }
            len = len * 10 + static_cast<uint64_t>(m_in[i] - '0');
            if (len > m_max) {
                return Result::Error;
            }
        }
        if (lf == 2 || m_message.size() + len > m_max) {
            return Result::Error;
        }
        if (m_in.size() < lf + 1 + len) {
            return Result::NeedMore;
        }
        m_message.append(m_in, lf + 1, len);
        m_in.erase(0, lf + 1 + len);
    }
}

std::string frame(std::string_view message, bool chunked)
{
    if (!chunked) {
        std::string out;
        out.reserve(message.size() + Eom.size());
        out.append(message).append(Eom);
        return out;
    }
    return fmt::format("\n#{}\n{}\n##\n", message.size(), message);
}

NetconfServer::NetconfServer(const DeviceModel& model, uint32_t sessionId, uint32_t deviceIndex, std::string serial)
    : m_model(model)
    , m_running(fmt::format("<system xmlns=\"{}\"><hostname>sim-{:06}</hostname></system>", SimNs, deviceIndex + 1))
    , m_serial(std::move(serial))
    , m_sessionId(sessionId)
    , m_deviceIndex(deviceIndex)
    , m_startedAt(monotonicSeconds())
{ }

std::string NetconfServer::hello() const
{
    std::string caps = "<capability>urn:ietf:params:netconf:base:1.0</capability>"
                       "<capability>urn:ietf:params:netconf:base:1.1</capability>"
                       "<capability>urn:ietf:params:netconf:capability:writable-running:1.0</capability>";
    if (m_model.notifications) {
        caps += "<capability>urn:ietf:params:netconf:capability:notification:1.0</capability>";
    }
    for (const auto& m : announcedModules()) {
        caps += fmt::format("<capability>{}?module={}&amp;revision={}</capability>", m.ns, m.name, m.revision);
    }
    return frame(fmt::format("<?xml version=\"1.0\" encoding=\"UTF-8\"?><hello xmlns=\"{}\"><capabilities>{}"
                             "</capabilities><session-id>{}</session-id></hello>",
                     BaseNs, caps, m_sessionId),
        false);
}

bool NetconfServer::receive(std::string_view bytes, std::string& out)
{
    m_decoder.feed(bytes);
    std::string message;
    while (!m_closing) {
        auto r = m_decoder.next(message);
        if (r == FrameDecoder::Result::NeedMore) {
            return true;
        }
        if (r == FrameDecoder::Result::Error) {
            return false;
        }
        if (!m_gotHello) {
            if (!findStartTag(message, "hello")) {
                return false;
            }
            m_gotHello = true;
            // RFC 6241 8.1: both announce base:1.1 → chunked framing from the next message on
            m_chunked = message.find("urn:ietf:params:netconf:base:1.1") != std::string::npos;
            m_decoder.setChunked(m_chunked);
            continue;
        }
        handle(message, out);
    }
    return true;
}

std::string NetconfServer::reply(const std::string& rpcAttributes, const std::string& body) const
{
    // RFC 6241 4.2: the reply carries every attribute of the <rpc> (message-id and any others).
    std::string attrs = rpcAttributes;
    if (attrs.find(std::string("\"") + std::string(BaseNs) + "\"") == std::string::npos) {
        attrs = fmt::format(" xmlns=\"{}\"", BaseNs) + attrs;
    }
    return frame(fmt::format("<rpc-reply{}>{}</rpc-reply>", attrs, body), m_chunked);
}

std::string NetconfServer::stateXml() const
{
    std::string schemas;
    for (const auto& m : announcedModules()) {
        schemas += fmt::format("<schema><identifier>{}</identifier><version>{}</version><format>yang</format>"
                               "<namespace>{}</namespace><location>NETCONF</location></schema>",
            m.name, m.revision, m.ns);
    }
    return fmt::format("<system-state xmlns=\"{}\"><device-index>{}</device-index><serial-number>{}</serial-number>"
                       "<uptime>{}</uptime></system-state><netconf-state xmlns=\"{}\"><schemas>{}</schemas>"
                       "</netconf-state>",
        SimNs, m_deviceIndex, xmlEscape(m_serial), monotonicSeconds() - m_startedAt, MonitoringNs, schemas);
}

void NetconfServer::handle(const std::string& message, std::string& out)
{
    auto rpc = findStartTag(message, "rpc");
    if (!rpc) {
        return; // not an <rpc>: nothing to answer (RFC 6241 leaves it to the server; we ignore it)
    }
    ++m_rpcs;
    std::string attrs = message.substr(rpc->nameEnd, message.rfind('>', rpc->end - 1) - rpc->nameEnd);
    if (!attrs.empty() && attrs.back() == '/') {
        attrs.pop_back();
    }
    auto op = rpc->selfClosing ? std::string() : firstElementName(message, rpc->end);
    if (op == "get") {
        out += reply(attrs, "<data>" + m_running + stateXml() + "</data>");
    } else if (op == "get-config") {
        out += reply(attrs, "<data>" + m_running + "</data>");
    } else if (op == "edit-config") {
        auto content = configContent(message);
        if (!content) {
            out += reply(attrs, rpcError("missing-element", "<edit-config> without <config>"));
        } else {
            m_running = *content;
            out += reply(attrs, "<ok/>");
        }
    } else if (op == "get-schema") {
        auto id = elementText(message, "identifier");
        auto version = elementText(message, "version");
        const Module* found = nullptr;
        for (const auto& m : announcedModules()) {
            if (id && m.name == *id && (!version || version->empty() || m.revision == *version)) {
                found = &m;
            }
        }
        if (!found) {
            out += reply(attrs, rpcError("invalid-value", "no such schema: " + id.value_or("")));
        } else {
            out += reply(attrs, fmt::format("<data xmlns=\"{}\">{}</data>", MonitoringNs, xmlEscape(found->text)));
        }
    } else if (op == "create-subscription" && m_model.notifications) {
        m_subscribed = true;
        out += reply(attrs, "<ok/>");
    } else if (op == "close-session") {
        out += reply(attrs, "<ok/>");
        m_closing = true;
    } else if (op == "lock" || op == "unlock" || op == "commit" || op == "discard-changes" || op == "validate"
        || op == "kill-session") {
        out += reply(attrs, "<ok/>");
    } else {
        out += reply(attrs, rpcError("operation-not-supported", "callhome-sim does not implement <" + op + ">"));
    }
}

std::string NetconfServer::notification(uint64_t sequence) const
{
    return frame(fmt::format("<notification xmlns=\"urn:ietf:params:xml:ns:netconf:notification:1.0\"><eventTime>{}"
                             "</eventTime><sim-event xmlns=\"{}\"><sequence>{}</sequence><text>device {}</text>"
                             "</sim-event></notification>",
                     nowRfc3339(), SimNs, sequence, m_deviceIndex),
        m_chunked);
}
} // namespace callhome::sim
