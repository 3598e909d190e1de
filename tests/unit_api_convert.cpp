// The control API's conversions: <rpc-error> fields, <data> content, request XML checks, XPath namespaces, and
// RFC 7951 JSON <-> XML with a real libyang context.
#include "api/Convert.h"
#include <catch2/catch.hpp>
#include <libyang/libyang.h>
#include <memory>
#include <nlohmann/json.hpp>

using namespace callhome::api;

namespace {
const char* kModule = R"(module api-test {
  yang-version 1.1;
  namespace "urn:test:api";
  prefix at;
  container system {
    leaf hostname { type string; }
    leaf-list dns { type string; }
  }
  rpc restart {
    input { leaf delay { type uint32; } }
    output { leaf scheduled { type string; } }
  }
  notification alarm {
    leaf severity { type string; }
  }
})";

struct Ctx {
    ly_ctx* ctx = nullptr;
    Ctx()
    {
        REQUIRE(ly_ctx_new(nullptr, 0, &ctx) == LY_SUCCESS);
        REQUIRE(lys_parse_mem(ctx, kModule, LYS_IN_YANG, nullptr) == LY_SUCCESS);
    }
    ~Ctx() { ly_ctx_destroy(ctx); }
};

const std::string kBase = "urn:ietf:params:xml:ns:netconf:base:1.0";
} // namespace

TEST_CASE("every field of every <rpc-error> is read, with error-info as XML")
{
    std::string reply = "<rpc-reply xmlns=\"" + kBase
        + "\" message-id=\"7\">"
          "<rpc-error><error-type>application</error-type><error-tag>invalid-value</error-tag>"
          "<error-severity>error</error-severity><error-app-tag>too-long</error-app-tag>"
          "<error-path xmlns:at=\"urn:test:api\">\n  /at:system/at:hostname\n</error-path>"
          "<error-message xml:lang=\"en\">hostname too long</error-message>"
          "<error-info><bad-element>hostname</bad-element></error-info></rpc-error>"
          "<rpc-error><error-type>protocol</error-type><error-tag>operation-failed</error-tag>"
          "<error-severity>error</error-severity></rpc-error></rpc-reply>";
    auto errors = rpcErrors(reply);
    REQUIRE(errors.size() == 2);
    CHECK(errors[0].type == "application");
    CHECK(errors[0].tag == "invalid-value");
    CHECK(errors[0].severity == "error");
    CHECK(errors[0].appTag == "too-long");
    CHECK(errors[0].path == "/at:system/at:hostname");
    CHECK(errors[0].message == "hostname too long");
    CHECK(errors[0].info.find("<bad-element") != std::string::npos);
    CHECK(errors[1].tag == "operation-failed");
    CHECK(errors[1].path.empty());
    CHECK(rpcErrors("<rpc-reply xmlns=\"" + kBase + "\"><ok/></rpc-reply>").empty());
    CHECK(rpcErrors("not xml").empty());
}

TEST_CASE("the content of <data> is extracted; a reply without it has none")
{
    auto data = replyData("<rpc-reply xmlns=\"" + kBase
        + "\"><data><system xmlns=\"urn:test:api\"><hostname>a</hostname>"
          "</system><x xmlns=\"urn:y\"/></data></rpc-reply>");
    REQUIRE(data);
    CHECK(data->find("<hostname>a</hostname>") != std::string::npos);
    CHECK(data->find("<x xmlns=\"urn:y\"/>") != std::string::npos);
    CHECK(!replyData("<rpc-reply xmlns=\"" + kBase + "\"><ok/></rpc-reply>"));
    CHECK(replyData("<rpc-reply xmlns=\"" + kBase + "\"><data/></rpc-reply>") == std::string());
}

TEST_CASE("request XML: one element, no DTD, the declaration dropped")
{
    CHECK(oneElement("<?xml version=\"1.0\"?>\n<get/>", "x") == "<get/>");
    CHECK(oneElement("  <get-config><source><running/></source></get-config>\n", "x")
        == "<get-config><source><running/></source></get-config>");
    auto code = [](auto f) {
        try {
            f();
        } catch (const BadRequest& e) {
            return e.code();
        }
        return std::string("no error");
    };
    CHECK(code([] { oneElement("<get>", "x"); }) == "bad-xml");
    CHECK(code([] { oneElement("<a/><b/>", "x"); }) == "bad-xml");
    CHECK(code([] { oneElement("<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>", "x"); }) == "bad-xml");
    CHECK(elements("<a/>\n<b>t</b>", "x") == "<a/><b>t</b>");
    CHECK(code([] { elements("<a/>text", "x"); }) == "bad-xml");
    CHECK(code([] { elements("   ", "x"); }) == "bad-xml");
    CHECK(code([] { elements("<!DOCTYPE a><a/>", "x"); }) == "bad-xml");
}

TEST_CASE("XPath module-name prefixes become the modules' own prefixes, declared; unknown modules are refused")
{
    Ctx c;
    auto f = xpathFilter(c.ctx, "/api-test:system/hostname");
    CHECK(f.select == "/at:system/hostname");
    CHECK(f.namespaces == " xmlns:at=\"urn:test:api\"");
    // declared once; axes and quoted text are left alone
    auto g = xpathFilter(c.ctx, "/api-test:system[api-test:hostname='api-test:y']/child::api-test:dns");
    CHECK(g.select == "/at:system[at:hostname='api-test:y']/child::at:dns");
    CHECK(g.namespaces == " xmlns:at=\"urn:test:api\"");
    try {
        xpathFilter(c.ctx, "/nosuch:thing");
        FAIL("an unknown module was accepted");
    } catch (const BadRequest& e) {
        CHECK(e.code() == "unknown-module");
        CHECK(std::string(e.what()).find("nosuch") != std::string::npos);
    }
    CHECK_THROWS_AS(xpathFilter(c.ctx, "/api-test:system[hostname='x]"), BadRequest);
}

TEST_CASE("RFC 7951 JSON and NETCONF XML convert both ways with the device's schemas")
{
    Ctx c;
    auto xml = jsonToXml(c.ctx, R"({"api-test:system": {"hostname": "r1", "dns": ["a", "b"]}})");
    CHECK(xml.find("<system xmlns=\"urn:test:api\">") != std::string::npos);
    CHECK(xml.find("<hostname>r1</hostname>") != std::string::npos);
    auto back = nlohmann::json::parse(dataToJson(c.ctx, xml));
    CHECK(back == nlohmann::json::parse(R"({"api-test:system": {"hostname": "r1", "dns": ["a", "b"]}})"));
    CHECK(dataToJson(c.ctx, "") == "{}");
    auto code = [&](const std::string& json) {
        try {
            jsonToXml(c.ctx, json);
        } catch (const BadRequest& e) {
            return e.code();
        }
        return std::string("no error");
    };
    CHECK(code("{\"nosuch:x\": 1}") == "unknown-module");
    CHECK(code("{\"api-test:system\": ") == "bad-json");
    CHECK(code("[1]") == "bad-json");
    CHECK(code(R"({"api-test:system": {"nosuchleaf": 1}})") != "no error");
}

TEST_CASE("an RPC's reply output becomes {\"module:output\": ...}; <ok/> is {}")
{
    Ctx c;
    const std::string op = "<restart xmlns=\"urn:test:api\"><delay>5</delay></restart>";
    auto out = replyToJson(c.ctx, op,
        "<rpc-reply xmlns=\"" + kBase
            + "\" message-id=\"1\"><scheduled xmlns=\"urn:test:api\">at 5</scheduled>"
              "</rpc-reply>");
    REQUIRE(out);
    CHECK(nlohmann::json::parse(*out) == nlohmann::json::parse(R"({"api-test:output": {"scheduled": "at 5"}})"));
    auto ok = replyToJson(c.ctx, op, "<rpc-reply xmlns=\"" + kBase + "\" message-id=\"1\"><ok/></rpc-reply>");
    REQUIRE(ok);
    CHECK(*ok == "{}");
    // <data> replies give the data itself
    auto data = replyToJson(c.ctx, "<get/>",
        "<rpc-reply xmlns=\"" + kBase
            + "\"><data><system xmlns=\"urn:test:api\"><hostname>h</hostname></system>"
              "</data></rpc-reply>");
    REQUIRE(data);
    CHECK(nlohmann::json::parse(*data) == nlohmann::json::parse(R"({"api-test:system": {"hostname": "h"}})"));
    CHECK(!replyToJson(
        c.ctx, "<unknown-op xmlns=\"urn:nope\"/>", "<rpc-reply xmlns=\"" + kBase + "\"><ok/></rpc-reply>"));
}

TEST_CASE("a notification gives its eventTime and its content as JSON")
{
    Ctx c;
    auto n = notificationToJson(c.ctx,
        "<notification xmlns=\"urn:ietf:params:xml:ns:netconf:notification:1.0\"><eventTime>2026-12-01T10:00:00Z"
        "</eventTime><alarm xmlns=\"urn:test:api\"><severity>major</severity></alarm></notification>");
    CHECK(n.eventTime == "2026-12-01T10:00:00Z");
    REQUIRE(n.json);
    CHECK(nlohmann::json::parse(*n.json) == nlohmann::json::parse(R"({"api-test:alarm": {"severity": "major"}})"));
    auto unknown = notificationToJson(c.ctx,
        "<notification xmlns=\"urn:ietf:params:xml:ns:netconf:notification:1.0\"><eventTime>2026-12-01T10:00:00Z"
        "</eventTime><other xmlns=\"urn:other\"/></notification>");
    CHECK(unknown.eventTime == "2026-12-01T10:00:00Z");
    CHECK(!unknown.json);
}

TEST_CASE("data of a module the device's schemas lack is an error, not silently dropped")
{
    Ctx c;
    CHECK_THROWS_WITH(dataToJson(c.ctx, "<x xmlns=\"urn:unknown\"><y>1</y></x>"),
        Catch::Matchers::Contains("does not match its schemas"));
    CHECK_THROWS(dataToJson(c.ctx, "<system xmlns=\"urn:test:api\"><nosuch>1</nosuch></system>"));
}
