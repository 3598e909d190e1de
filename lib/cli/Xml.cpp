#include "cli/Xml.h"
#include "common/Text.h"
#include <algorithm>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <memory>

namespace callhome::cli {
namespace {
struct XmlDocFree {
    void operator()(xmlDoc* p) const noexcept { xmlFreeDoc(p); }
};
struct XmlBufferFree {
    void operator()(xmlBuffer* p) const noexcept { xmlBufferFree(p); }
};

bool isBlank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

std::string_view trim(std::string_view text)
{
    while (!text.empty() && isBlank(text.front())) {
        text.remove_prefix(1);
    }
    while (!text.empty() && isBlank(text.back())) {
        text.remove_suffix(1);
    }
    return text;
}

/** Text that is not XML, line by line with control characters escaped (it may come from a device). */
std::string asIs(std::string_view text)
{
    std::string out;
    for (std::size_t start = 0; start <= text.size();) {
        auto end = std::min(text.find('\n', start), text.size());
        out += escapeControl(text.substr(start, end - start)) + "\n";
        start = end + 1;
    }
    return out;
}

/**
 * What libxml2 leaves raw in text content and a terminal may act on: tab, DEL and the C1 controls (U+0080..U+009F,
 * 0xC2 0x80..0x9F in UTF-8, where 0xC2 is always a lead byte) become character references, which keeps the XML
 * equivalent (a saved get-config still means the same). Other control characters are not allowed in XML 1.0 and
 * libxml2 already writes CR as "&#13;".
 */
std::string referenceControls(std::string_view xml)
{
    static constexpr char Hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(xml.size());
    for (std::size_t i = 0; i < xml.size(); ++i) {
        const auto c = static_cast<unsigned char>(xml[i]);
        if (c == '\t') {
            out += "&#9;";
        } else if (c == 0x7F) {
            out += "&#127;";
        } else if (c == 0xC2 && i + 1 < xml.size() && static_cast<unsigned char>(xml[i + 1]) <= 0x9F
            && static_cast<unsigned char>(xml[i + 1]) >= 0x80) {
            const auto low = static_cast<unsigned char>(xml[++i]);
            out += std::string("&#x") + Hex[low >> 4] + Hex[low & 0xF] + ";";
        } else {
            out += xml[i];
        }
    }
    return out;
}
} // namespace

std::string prettyXml(std::string_view xml)
{
    auto text = trim(xml);
    if (text.empty()) {
        return {};
    }
    // An XML declaration may only open a document; inside the wrapper below it would be an error.
    if (text.starts_with("<?xml")) {
        auto end = text.find("?>");
        if (end == std::string_view::npos) {
            return asIs(text);
        }
        text = trim(text.substr(end + 2));
    }
    // A wrapper element makes a forest one document; it declares no namespace, so every node keeps its own.
    const std::string wrapped = "<w>" + std::string(text) + "</w>";
    // NOBLANKS drops the old indentation so that the formatter can indent; NONET: nothing is ever fetched; NOCDATA:
    // CDATA becomes text, so that referenceControls() never edits inside a CDATA section.
    std::unique_ptr<xmlDoc, XmlDocFree> doc(xmlReadMemory(wrapped.data(), static_cast<int>(wrapped.size()), nullptr,
        "UTF-8", XML_PARSE_NOBLANKS | XML_PARSE_NONET | XML_PARSE_NOCDATA | XML_PARSE_NOERROR | XML_PARSE_NOWARNING));
    if (!doc) {
        return asIs(text);
    }
    std::unique_ptr<xmlBuffer, XmlBufferFree> buffer(xmlBufferCreate());
    if (!buffer) {
        return asIs(text);
    }
    std::string out;
    for (auto* node = xmlDocGetRootElement(doc.get())->children; node; node = node->next) {
        xmlBufferEmpty(buffer.get());
        if (xmlNodeDump(buffer.get(), doc.get(), node, 0, 1) < 0) {
            return asIs(text);
        }
        out += referenceControls(std::string_view(
            reinterpret_cast<const char*>(xmlBufferContent(buffer.get())), xmlBufferLength(buffer.get())));
        out += '\n';
    }
    return out;
}
} // namespace callhome::cli
