#include "netconf/Message.h"
#include "transport/Framing.h"
#include <catch2/catch.hpp>

using namespace callhome;
using transport::FrameDecoder;
using transport::Framing;
using transport::FramingError;

namespace {
std::vector<std::string> drain(FrameDecoder& d)
{
    std::vector<std::string> out;
    while (auto m = d.next()) {
        out.push_back(*m);
    }
    return out;
}
} // namespace

TEST_CASE("end-of-message framing: whole messages only, whatever the pieces")
{
    FrameDecoder d(1024);
    std::string stream = "<hello/>]]>]]><rpc-reply message-id=\"1\"/>]]>]]><partial";
    // byte by byte: the marker straddles appends
    std::vector<std::string> got;
    for (char c : stream) {
        d.append(std::string_view(&c, 1));
        for (auto& m : drain(d)) {
            got.push_back(m);
        }
    }
    REQUIRE(got == std::vector<std::string> { "<hello/>", "<rpc-reply message-id=\"1\"/>" });
    CHECK(d.midMessage());
    CHECK(d.buffered() == std::string("<partial").size());
}

TEST_CASE("chunked framing: several chunks make one message; the framing switches after the hello")
{
    FrameDecoder d(1024);
    d.append("<hello/>]]>]]>\n#4\n<rpc\n#11\n-reply/>   \n##\n\n#3\n<a/");
    REQUIRE(d.next() == std::optional<std::string>("<hello/>"));
    d.setFraming(Framing::Chunked);
    REQUIRE(d.next() == std::optional<std::string>("<rpc-reply/>   "));
    CHECK_FALSE(d.next());
    CHECK(d.midMessage()); // "<a/": a message whose end-of-chunks has not come
    d.append("\n#1\n>\n##\n");
    REQUIRE(d.next() == std::optional<std::string>("<a/>"));
    CHECK_FALSE(d.midMessage());
}

TEST_CASE("framing violations and oversized messages are errors, never unbounded buffers")
{
    SECTION("chunk size with a leading zero")
    {
        FrameDecoder d(1024);
        d.setFraming(Framing::Chunked);
        d.append("\n#012\nabc");
        CHECK_THROWS_AS(d.next(), FramingError);
    }
    SECTION("not a chunk header")
    {
        FrameDecoder d(1024);
        d.setFraming(Framing::Chunked);
        d.append("<rpc/>");
        CHECK_THROWS_AS(d.next(), FramingError);
    }
    SECTION("a chunk that would exceed the limit")
    {
        FrameDecoder d(1024);
        d.setFraming(Framing::Chunked);
        d.append("\n#2000\n");
        CHECK_THROWS_WITH(d.next(), Catch::Contains("larger than 1024"));
    }
    SECTION("an end-of-message stream without end")
    {
        FrameDecoder d(1024);
        std::string block(600, 'x');
        d.append(block);
        CHECK_FALSE(d.next());
        CHECK_THROWS_AS(d.append(block), FramingError);
    }
    SECTION("a chunk size beyond RFC 6242's maximum")
    {
        FrameDecoder d(1024);
        d.setFraming(Framing::Chunked);
        d.append("\n#99999999999\n");
        CHECK_THROWS_AS(d.next(), FramingError);
    }
}

TEST_CASE("frame() produces what the decoder reads back")
{
    for (auto f : { Framing::EndOfMessage, Framing::Chunked }) {
        FrameDecoder d(1 << 20);
        d.setFraming(f);
        std::string big(100000, 'y');
        d.append(transport::frame(f, "<a/>") + transport::frame(f, big));
        CHECK(d.next() == std::optional<std::string>("<a/>"));
        CHECK(d.next() == std::optional<std::string>(big));
        CHECK(d.buffered() == 0);
    }
}

TEST_CASE("a device's hello: capabilities, session-id, base:1.1; anything else is refused")
{
    auto hello = netconf::parseHello(R"(<?xml version="1.0"?>
        <hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities>
          <capability>urn:ietf:params:netconf:base:1.0</capability>
          <capability> urn:ietf:params:netconf:base:1.1 </capability>
          <capability>urn:example:m?module=m&amp;revision=2024-01-01&amp;features=a,b</capability>
        </capabilities><session-id>42</session-id></hello>)");
    REQUIRE(hello);
    CHECK(hello->capabilities.size() == 3);
    CHECK(hello->capabilities[2] == "urn:example:m?module=m&revision=2024-01-01&features=a,b");
    CHECK(hello->sessionId == 42u);
    CHECK(hello->supports11());
    // what libnetconf2 is shown reads back the same
    auto again = netconf::parseHello(netconf::helloMessage(*hello));
    REQUIRE(again);
    CHECK(again->capabilities == hello->capabilities);
    CHECK(again->sessionId == 42u);

    CHECK_FALSE(netconf::parseHello("<hello xmlns=\"urn:other\"><capabilities><capability>x</capability>"
                                    "</capabilities></hello>"));
    CHECK_FALSE(netconf::parseHello("<rpc-reply/>"));
    CHECK_FALSE(netconf::parseHello("<hello xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"><capabilities>"));
    CHECK_FALSE(netconf::parseHello("garbage"));
    CHECK_FALSE(netconf::parseHello("<hello xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"><capabilities>"
                                    "<capability>x</capability></capabilities><session-id>-1</session-id></hello>"));
}

TEST_CASE("message heads and replies, as the pump routes them")
{
    auto head = netconf::messageHead(
        "<rpc xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\" message-id=\"7\"><create-subscription/></rpc>");
    REQUIRE(head);
    CHECK(head->name == "rpc");
    CHECK(head->messageId == "7");
    CHECK(head->firstChild == "create-subscription");
    CHECK_FALSE(netconf::messageHead("not xml"));
    // only the start is read: a huge message that is not finished yet still has a head
    auto partial = netconf::messageHead(
        "<notification xmlns=\"urn:ietf:params:xml:ns:netconf:notification:1.0\">" + std::string(100000, ' '));
    REQUIRE(partial);
    CHECK(partial->name == "notification");

    auto data = netconf::parseReply("<rpc-reply message-id=\"1\" xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\">"
                                    "<data xmlns=\"urn:x\">module m { &lt;x&gt; }</data></rpc-reply>");
    REQUIRE(data);
    CHECK(data->ok);
    CHECK(data->dataText == std::optional<std::string>("module m { <x> }"));
    auto error = netconf::parseReply("<rpc-reply message-id=\"2\"><rpc-error><error-tag>invalid-value</error-tag>"
                                     "<error-message>no such schema</error-message></rpc-error></rpc-reply>");
    REQUIRE(error);
    CHECK_FALSE(error->ok);
    CHECK(error->error == "invalid-value: no such schema");
}
