#include "api/Convert.h"
#include <cctype>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libyang/libyang.h>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

namespace callhome::api {
namespace {
constexpr const char* kBase = "urn:ietf:params:xml:ns:netconf:base:1.0";

struct DocFree {
    void operator()(xmlDoc* d) const { xmlFreeDoc(d); }
};
using DocPtr = std::unique_ptr<xmlDoc, DocFree>;
struct TreeFree {
    void operator()(lyd_node* n) const { lyd_free_all(n); }
};
using TreePtr = std::unique_ptr<lyd_node, TreeFree>;

/** Parses without network access, entity substitution or DTD loading; nullptr when not well-formed. */
DocPtr parse(std::string_view xml)
{
    if (xml.size() > static_cast<size_t>(INT32_MAX)) {
        return nullptr;
    }
    return DocPtr(xmlReadMemory(xml.data(), static_cast<int>(xml.size()), nullptr, nullptr,
        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_HUGE));
}

std::string dump(xmlDoc* doc, xmlNode* node)
{
    xmlBuffer* buf = xmlBufferCreate();
    xmlNodeDump(buf, doc, node, 0, 0);
    std::string out(reinterpret_cast<const char*>(xmlBufferContent(buf)), static_cast<size_t>(xmlBufferLength(buf)));
    xmlBufferFree(buf);
    return out;
}

bool isBase(const xmlNode* n, const char* name)
{
    return n->type == XML_ELEMENT_NODE && xmlStrEqual(n->name, BAD_CAST name) && n->ns
        && xmlStrEqual(n->ns->href, BAD_CAST kBase);
}

std::string text(const xmlNode* n)
{
    xmlChar* c = xmlNodeGetContent(n);
    std::string out = c ? reinterpret_cast<const char*>(c) : "";
    xmlFree(c);
    return out;
}

std::string lastError(const ly_ctx* ctx)
{
    const ly_err_item* e = ly_err_last(ctx);
    if (!e || !e->msg) {
        return "libyang failed";
    }
    std::string msg = e->msg;
    if (e->path) {
        msg += std::string(" (") + e->path + ")";
    }
    return msg;
}

std::string printJson(const lyd_node* tree)
{
    if (!tree) {
        return "{}";
    }
    char* out = nullptr;
    if (lyd_print_mem(&out, tree, LYD_JSON, LYD_PRINT_WITHSIBLINGS | LYD_PRINT_SHRINK) != LY_SUCCESS || !out) {
        free(out);
        return "{}";
    }
    std::string s(out);
    free(out);
    return s.empty() ? "{}" : s;
}

/** Wraps element content so that libxml2 can check a sequence of elements. */
std::string wrapped(std::string_view xml)
{
    return "<callhome-wrap>" + std::string(xml) + "</callhome-wrap>";
}
} // namespace

std::vector<RpcError> rpcErrors(std::string_view reply)
{
    std::vector<RpcError> out;
    auto doc = parse(reply);
    if (!doc) {
        return out;
    }
    auto* root = xmlDocGetRootElement(doc.get());
    if (!root) {
        return out;
    }
    for (auto* e = root->children; e; e = e->next) {
        if (!isBase(e, "rpc-error")) {
            continue;
        }
        RpcError err;
        for (auto* f = e->children; f; f = f->next) {
            if (f->type != XML_ELEMENT_NODE) {
                continue;
            }
            std::string name = reinterpret_cast<const char*>(f->name);
            if (name == "error-type") {
                err.type = text(f);
            } else if (name == "error-tag") {
                err.tag = text(f);
            } else if (name == "error-severity") {
                err.severity = text(f);
            } else if (name == "error-app-tag") {
                err.appTag = text(f);
            } else if (name == "error-path") {
                err.path = text(f);
            } else if (name == "error-message") {
                err.message = text(f);
            } else if (name == "error-info") {
                for (auto* i = f->children; i; i = i->next) {
                    if (i->type == XML_ELEMENT_NODE) {
                        err.info += dump(doc.get(), i);
                    }
                }
            }
        }
        // Device text goes to logs and terminals: trim the whitespace devices wrap it in.
        for (auto* s : { &err.type, &err.tag, &err.severity, &err.appTag, &err.path, &err.message }) {
            auto b = s->find_first_not_of(" \t\r\n");
            auto end = s->find_last_not_of(" \t\r\n");
            *s = b == std::string::npos ? std::string() : s->substr(b, end - b + 1);
        }
        out.push_back(std::move(err));
    }
    return out;
}

std::optional<std::string> replyData(std::string_view reply)
{
    auto doc = parse(reply);
    if (!doc) {
        return std::nullopt;
    }
    auto* root = xmlDocGetRootElement(doc.get());
    if (!root) {
        return std::nullopt;
    }
    for (auto* e = root->children; e; e = e->next) {
        if (isBase(e, "data")) {
            std::string out;
            for (auto* c = e->children; c; c = c->next) {
                if (c->type == XML_ELEMENT_NODE) {
                    out += dump(doc.get(), c);
                }
            }
            return out;
        }
    }
    return std::nullopt;
}

std::string oneElement(std::string_view xml, const char* what)
{
    auto doc = parse(xml);
    if (!doc) {
        throw BadRequest("bad-xml", std::string(what) + " is not well-formed XML");
    }
    if (doc->intSubset || doc->extSubset) {
        throw BadRequest("bad-xml", std::string(what) + " must not have a DOCTYPE");
    }
    auto* root = xmlDocGetRootElement(doc.get());
    if (!root) {
        throw BadRequest("bad-xml", std::string(what) + " has no element");
    }
    return dump(doc.get(), root);
}

std::string elements(std::string_view xml, const char* what)
{
    if (xml.find("<!") != std::string_view::npos && xml.find("<![CDATA[") == std::string_view::npos) {
        throw BadRequest("bad-xml", std::string(what) + " must not have a DOCTYPE or declarations");
    }
    auto start = xml.find_first_not_of(" \t\r\n");
    if (start != std::string_view::npos && xml.substr(start, 5) == "<?xml") {
        auto end = xml.find("?>", start);
        xml = end == std::string_view::npos ? xml : xml.substr(end + 2);
    }
    auto doc = parse(wrapped(xml));
    if (!doc) {
        throw BadRequest("bad-xml", std::string(what) + " is not well-formed XML");
    }
    auto* root = xmlDocGetRootElement(doc.get());
    std::string out;
    for (auto* c = root->children; c; c = c->next) {
        if (c->type == XML_ELEMENT_NODE) {
            out += dump(doc.get(), c);
        } else if (c->type == XML_TEXT_NODE) {
            auto t = text(c);
            if (t.find_first_not_of(" \t\r\n") != std::string::npos) {
                throw BadRequest("bad-xml", std::string(what) + " has text outside elements");
            }
        }
    }
    if (out.empty()) {
        throw BadRequest("bad-xml", std::string(what) + " has no element");
    }
    return out;
}

std::string dataToJson(const ly_ctx* ctx, const std::string& xml)
{
    if (xml.find_first_not_of(" \t\r\n") == std::string::npos) {
        return "{}";
    }
    lyd_node* tree = nullptr;
    // Strict: data of a module the context lacks is an error, never silently left out of the answer.
    if (lyd_parse_data_mem(ctx, xml.c_str(), LYD_XML, LYD_PARSE_ONLY | LYD_PARSE_STRICT, 0, &tree) != LY_SUCCESS) {
        TreePtr guard(tree);
        throw Error("the device's data does not match its schemas (" + lastError(ctx)
            + "); ask for XML, or filter out what its schemas do not cover");
    }
    TreePtr guard(tree);
    return printJson(tree);
}

std::string jsonToXml(const ly_ctx* ctx, const std::string& json)
{
    try {
        [[maybe_unused]] auto parsed = nlohmann::json::parse(json);
        if (!parsed.is_object()) {
            throw BadRequest("bad-json", "the configuration must be a JSON object (RFC 7951)");
        }
    } catch (const nlohmann::json::parse_error& e) {
        throw BadRequest("bad-json", std::string("not valid JSON: ") + e.what());
    }
    lyd_node* tree = nullptr;
    if (lyd_parse_data_mem(ctx, json.c_str(), LYD_JSON, LYD_PARSE_ONLY | LYD_PARSE_STRICT, 0, &tree) != LY_SUCCESS) {
        TreePtr guard(tree);
        auto msg = lastError(ctx);
        bool module = msg.find("module") != std::string::npos || msg.find("Module") != std::string::npos;
        throw BadRequest(module ? "unknown-module" : "bad-json", "the configuration: " + msg);
    }
    TreePtr guard(tree);
    if (!tree) {
        throw BadRequest("bad-json", "the configuration is empty");
    }
    char* out = nullptr;
    if (lyd_print_mem(&out, tree, LYD_XML, LYD_PRINT_WITHSIBLINGS | LYD_PRINT_SHRINK) != LY_SUCCESS || !out) {
        free(out);
        throw BadRequest("bad-json", "the configuration cannot be written as XML: " + lastError(ctx));
    }
    std::string s(out);
    free(out);
    return s;
}

std::optional<std::string> replyToJson(const ly_ctx* ctx, const std::string& operation, const std::string& reply)
{
    if (auto data = replyData(reply)) {
        try {
            return dataToJson(ctx, *data);
        } catch (const std::exception&) {
            return std::nullopt;
        }
    }
    std::string rpc = std::string("<rpc xmlns=\"") + kBase + "\" message-id=\"1\">" + operation + "</rpc>";
    ly_in* in = nullptr;
    if (ly_in_new_memory(rpc.c_str(), &in) != LY_SUCCESS) {
        return std::nullopt;
    }
    lyd_node* envelope = nullptr;
    lyd_node* op = nullptr;
    auto r = lyd_parse_op(ctx, nullptr, in, LYD_XML, LYD_TYPE_RPC_NETCONF, &envelope, &op);
    ly_in_free(in, 0);
    TreePtr envelopeGuard(envelope);
    if (r != LY_SUCCESS || !op) {
        if (op) {
            lyd_free_all(op);
        }
        return std::nullopt;
    }
    lyd_node* top = op;
    while (top->parent) {
        top = lyd_parent(top);
    }
    TreePtr opGuard(top);
    if (ly_in_new_memory(reply.c_str(), &in) != LY_SUCCESS) {
        return std::nullopt;
    }
    lyd_node* replyEnvelope = nullptr;
    r = lyd_parse_op(ctx, op, in, LYD_XML, LYD_TYPE_REPLY_NETCONF, &replyEnvelope, nullptr);
    ly_in_free(in, 0);
    TreePtr replyGuard(replyEnvelope);
    if (r != LY_SUCCESS) {
        return std::nullopt;
    }
    // The RPC node now holds its input and, appended, the output: keep only the output.
    auto output = nlohmann::json::object();
    lyd_node* child = lyd_child(op);
    while (child) {
        lyd_node* next = child->next;
        if (child->schema && (child->schema->flags & LYS_IS_INPUT)) {
            lyd_free_tree(child);
        }
        child = next;
    }
    if (!lyd_child(op)) {
        return std::string("{}");
    }
    auto printed = nlohmann::json::parse(printJson(top), nullptr, false);
    if (printed.is_discarded()) {
        return std::nullopt;
    }
    // Descend to the operation's node (an action sits inside its data path), then name its output as RFC 8040 does.
    nlohmann::json* node = &printed;
    while (node->is_object() && node->size() == 1 && !node->contains("output")) {
        auto it = node->begin();
        if (it.key().find(':') != std::string::npos
            && it.key().substr(it.key().find(':') + 1) == std::string(op->schema->name)) {
            auto module = std::string(op->schema->module->name);
            return nlohmann::json { { module + ":output", it.value() } }.dump();
        }
        if (it.key() == std::string(op->schema->name)) {
            auto module = std::string(op->schema->module->name);
            return nlohmann::json { { module + ":output", it.value() } }.dump();
        }
        node = &it.value();
        if (node->is_array() && node->size() == 1) {
            node = &(*node)[0];
        }
    }
    return printed.dump();
}

NotificationJson notificationToJson(const ly_ctx* ctx, const std::string& xml)
{
    NotificationJson out;
    if (auto doc = parse(xml)) {
        if (auto* root = xmlDocGetRootElement(doc.get())) {
            for (auto* c = root->children; c; c = c->next) {
                if (c->type == XML_ELEMENT_NODE && xmlStrEqual(c->name, BAD_CAST "eventTime")) {
                    out.eventTime = text(c);
                }
            }
        }
    }
    ly_in* in = nullptr;
    if (ly_in_new_memory(xml.c_str(), &in) != LY_SUCCESS) {
        return out;
    }
    lyd_node* envelope = nullptr;
    lyd_node* op = nullptr;
    auto r = lyd_parse_op(ctx, nullptr, in, LYD_XML, LYD_TYPE_NOTIF_NETCONF, &envelope, &op);
    ly_in_free(in, 0);
    TreePtr envelopeGuard(envelope);
    if (op) {
        lyd_node* top = op;
        while (top->parent) {
            top = lyd_parent(top);
        }
        TreePtr opGuard(top);
        if (r == LY_SUCCESS) {
            out.json = printJson(top);
        }
    }
    return out;
}

XPathFilter xpathFilter(const ly_ctx* ctx, std::string_view xpath)
{
    XPathFilter out;
    std::map<std::string, std::string> prefixOf; // module name → the prefix used in `select`
    std::set<std::string> taken;
    char quote = 0;
    size_t copied = 0;
    auto nameChar
        = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'; };
    for (size_t i = 0; i < xpath.size(); ++i) {
        char c = xpath[i];
        if (quote) {
            if (c == quote) {
                quote = 0;
            }
            continue;
        }
        if (c == '"' || c == '\'') {
            quote = c;
            continue;
        }
        // A name starts after anything but a name character, a variable's '$' or a prefix's ':' (an axis's "::"
        // is followed by a name).
        bool afterAxis = i >= 2 && xpath[i - 1] == ':' && xpath[i - 2] == ':';
        bool startsName = (std::isalpha(static_cast<unsigned char>(c)) || c == '_')
            && (i == 0 || afterAxis || !(nameChar(xpath[i - 1]) || xpath[i - 1] == ':' || xpath[i - 1] == '$'));
        if (!startsName) {
            continue;
        }
        size_t j = i;
        while (j < xpath.size() && nameChar(xpath[j])) {
            ++j;
        }
        bool prefix = j < xpath.size() && xpath[j] == ':' && (j + 1 >= xpath.size() || xpath[j + 1] != ':');
        if (prefix) {
            std::string name(xpath.substr(i, j - i));
            auto known = prefixOf.find(name);
            if (known == prefixOf.end()) {
                const lys_module* m = ly_ctx_get_module_implemented(ctx, name.c_str());
                if (!m) {
                    throw BadRequest(
                        "unknown-module", "the XPath names module " + name + ", which the device does not implement");
                }
                // The module's own YANG prefix where it is free: servers that resolve prefixes by the filter's
                // xmlns declarations (RFC 6241) and servers that use module prefixes (yuma123) both understand it.
                std::string p = m->prefix && !taken.count(m->prefix) ? m->prefix : name;
                taken.insert(p);
                known = prefixOf.emplace(name, p).first;
                out.namespaces += " xmlns:" + p + "=\"" + m->ns + "\"";
            }
            out.select += xpath.substr(copied, i - copied);
            out.select += known->second;
            copied = j;
        }
        i = j;
    }
    if (quote) {
        throw BadRequest("bad-request", "the XPath has an unterminated string");
    }
    out.select += xpath.substr(copied);
    return out;
}

std::string oneLine(std::string_view xml)
{
    std::string out;
    out.reserve(xml.size());
    for (char c : xml) {
        if (c == '\n' || c == '\r') {
            continue;
        }
        out += c;
    }
    return out;
}
} // namespace callhome::api
