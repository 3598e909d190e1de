#include "cli/Staged.h"
#include "common/Error.h"
#include "common/Text.h"
#include <fstream>
#include <iostream>
#include <iterator>
#include <libxml/parser.h>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

namespace callhome::cli {
namespace {
struct XmlDocFree {
    void operator()(xmlDoc* d) const noexcept { xmlFreeDoc(d); }
};

bool endsWith(const std::string& text, const std::string& suffix)
{
    return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string firstXmlError()
{
    const xmlError* e = xmlGetLastError();
    std::string message = e && e->message ? e->message : "not well-formed";
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
        message.pop_back();
    }
    return message;
}
} // namespace

StagedContent readStagedContent(const std::string& file, const std::string& format)
{
    std::string text;
    if (file == "-") {
        text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    } else {
        std::ifstream in(file, std::ios::binary);
        if (!in) {
            throw UsageError("cannot read " + escapeControl(file));
        }
        std::ostringstream buffer;
        buffer << in.rdbuf();
        text = buffer.str();
    }
    auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) {
        throw UsageError(escapeControl(file) + " is empty: nothing to stage");
    }
    StagedContent out { format, {} };
    if (out.format.empty()) {
        out.format = endsWith(file, ".json") ? "json"
            : endsWith(file, ".xml")         ? "xml"
            : text[first] == '{'             ? "json"
                                             : "xml";
    }
    if (out.format == "json") {
        auto doc = nlohmann::json::parse(text, nullptr, false);
        if (doc.is_discarded() || !doc.is_object()) {
            throw UsageError(escapeControl(file) + " is not one JSON object (RFC 7951 configuration)");
        }
        out.content = text;
        return out;
    }
    // An XML declaration belongs to a document, not to the content of <config>: dropped.
    if (text.compare(first, 5, "<?xml") == 0) {
        auto end = text.find("?>", first);
        if (end == std::string::npos) {
            throw UsageError(escapeControl(file) + ": unterminated XML declaration");
        }
        text.erase(0, end + 2);
    }
    // Wrapped in one element, a DOCTYPE is a syntax error: no entities, no external references.
    auto wrapped = "<config>" + text + "</config>";
    std::unique_ptr<xmlDoc, XmlDocFree> doc(xmlReadMemory(wrapped.data(), static_cast<int>(wrapped.size()),
        "staged.xml", nullptr, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING));
    if (!doc) {
        throw UsageError(escapeControl(file) + " is not well-formed XML: " + escapeControl(firstXmlError()));
    }
    bool anyElement = false;
    for (auto* n = xmlDocGetRootElement(doc.get())->children; n; n = n->next) {
        if (n->type == XML_ELEMENT_NODE) {
            anyElement = true;
        } else if (n->type == XML_TEXT_NODE && n->content) {
            std::string t = reinterpret_cast<const char*>(n->content);
            if (t.find_first_not_of(" \t\r\n") != std::string::npos) {
                throw UsageError(escapeControl(file) + ": text outside any element (expected the content of <config>)");
            }
        }
    }
    if (!anyElement) {
        throw UsageError(escapeControl(file) + " has no element: nothing to stage");
    }
    out.content = text.substr(text.find_first_not_of(" \t\r\n"));
    return out;
}
} // namespace callhome::cli
