// What a trace record keeps of an operation and its outcome (server/TraceLog.h, netconf/Message.h), and the log filter
// for libnetconf2's message dumps (netconf/Session.h): no device, no database.
#include "netconf/Message.h"
#include "netconf/Session.h"
#include "server/TraceLog.h"
#include <catch2/catch.hpp>

using namespace callhome;
using server::RpcOutcome;

TEST_CASE("operation summary: name and datastore, never read into the body")
{
    auto edit = netconf::operationSummary("<edit-config xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"><target>"
                                          "<candidate/></target><config><secret>x</secret></config></edit-config>");
    REQUIRE(edit);
    CHECK(edit->name == "edit-config");
    CHECK(edit->datastore == "candidate");
    auto get = netconf::operationSummary("<get-config><source><running/></source><filter/></get-config>");
    REQUIRE(get);
    CHECK(get->datastore == "running");
    CHECK(netconf::operationSummary("<commit/>")->datastore == "running");
    CHECK(netconf::operationSummary("<discard-changes/>")->datastore == "candidate");
    CHECK(netconf::operationSummary("<get><filter/></get>")->datastore == "operational");
    CHECK(netconf::operationSummary("<lock><target><running/></target></lock>")->datastore == "running");
    auto custom = netconf::operationSummary("<reboot xmlns=\"urn:example\"><delay>5</delay></reboot>");
    REQUIRE(custom);
    CHECK(custom->name == "reboot");
    CHECK(custom->datastore.empty());
    CHECK_FALSE(netconf::operationSummary("not xml"));
}

TEST_CASE("describeRequest keeps size and SHA-256 of the operation, not its content")
{
    inventory::TraceRecord r;
    const std::string op = "<edit-config><target><running/></target><config>secret-value</config></edit-config>";
    server::describeRequest(r, op);
    CHECK(r.operation == "edit-config");
    CHECK(r.datastore == "running");
    CHECK(r.requestBytes == static_cast<int64_t>(op.size()));
    CHECK(r.requestSha256.size() == 64);
    CHECK(server::sha256Hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    inventory::TraceRecord same;
    server::describeRequest(same, op);
    CHECK(same.requestSha256 == r.requestSha256);
    server::describeRequest(same, op + " ");
    CHECK(same.requestSha256 != r.requestSha256);
}

TEST_CASE("traceOutcome: ok, rpc-error with tag and path, timeout, refused, cancelled")
{
    using namespace std::chrono_literals;
    inventory::TraceRecord r;
    server::traceOutcome(r,
        { .kind = RpcOutcome::Kind::Reply,
            .reply = "<rpc-reply message-id=\"callhome-api-3\"><ok/></rpc-reply>",
            .messageId = "callhome-api-3" },
        12ms);
    CHECK(r.outcome == "ok");
    CHECK(r.messageId == "callhome-api-3");
    CHECK(r.durationMs == 12);
    CHECK(r.errorTag.empty());

    r = {};
    server::traceOutcome(r,
        { .kind = RpcOutcome::Kind::Reply,
            .reply = "<rpc-reply xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\" message-id=\"1\"><rpc-error>"
                     "<error-type>application</error-type><error-tag>invalid-value</error-tag>"
                     "<error-path>/sys:system/sys:ntp/sys:enabled</error-path></rpc-error></rpc-reply>" },
        1ms);
    CHECK(r.outcome == "rpc-error");
    CHECK(r.errorTag == "invalid-value");
    CHECK(r.errorPath == "/sys:system/sys:ntp/sys:enabled");

    r = {};
    server::traceOutcome(r, { .kind = RpcOutcome::Kind::Timeout, .detail = "no reply", .messageId = "m" }, 3000ms);
    CHECK(r.outcome == "timeout");
    CHECK(r.detail == "no reply");
    r = {};
    server::traceOutcome(r, { .kind = RpcOutcome::Kind::Busy, .detail = "4096 queued" }, 0ms);
    CHECK(r.outcome == "refused");
    CHECK(r.messageId.empty());
    r = {};
    server::traceOutcome(r,
        { .kind = RpcOutcome::Kind::Reply,
            .reply = "<rpc-reply><ok/></rpc-reply>",
            .messageId = "m",
            .cancelled = true },
        5ms);
    CHECK(r.outcome == "cancelled");
    CHECK_THAT(r.detail, Catch::Contains("went away") && Catch::Contains("ok"));
}

TEST_CASE("libnetconf2's message dumps lose the message, keep the line")
{
    CHECK(netconf::withoutMessageBodies("Received message:\n<rpc-reply><data><secret>x</secret></data></rpc-reply>\n")
        == "Received message [56 bytes of message not logged]");
    CHECK(netconf::withoutMessageBodies("Sending message:<rpc/>") == "Sending message [6 bytes of message not logged]");
    CHECK(netconf::withoutMessageBodies("Session 3: connection closed.") == "Session 3: connection closed.");
    CHECK(netconf::withoutMessageBodies("") == "");
}
