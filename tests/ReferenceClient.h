#pragma once
// libnetconf2's own client as an independent reference management station, for the peer self-tests.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <libyang/libyang.h>
#include <memory>
#include <nc_client.h>
#include <string>

namespace callhome::test::reference {
struct NcSessionFree {
    void operator()(nc_session* s) const noexcept { nc_session_free(s, nullptr); }
};
using NcSessionPtr = std::unique_ptr<nc_session, NcSessionFree>;

struct NcRpcFree {
    void operator()(nc_rpc* r) const noexcept { nc_rpc_free(r); }
};
using NcRpcPtr = std::unique_ptr<nc_rpc, NcRpcFree>;

struct LydFree {
    void operator()(lyd_node* n) const noexcept { lyd_free_all(n); }
};
using LydPtr = std::unique_ptr<lyd_node, LydFree>;

struct CFree {
    void operator()(char* p) const noexcept { std::free(p); }
};
using CStringPtr = std::unique_ptr<char, CFree>;

/** libnetconf2's client init, once per process. */
struct NcClientLibrary {
    NcClientLibrary()
    {
        nc_client_init();
        // Building a context from netconfd's yuma modules warns a lot; only errors matter here.
        ly_log_level(LY_LLERR);
    }
    ~NcClientLibrary() { nc_client_destroy(); }
};

inline bool hasBaseCapability(nc_session* session)
{
    for (auto* cap = nc_session_get_cpblts(session); cap && *cap; ++cap) {
        if (!std::strcmp(*cap, "urn:ietf:params:netconf:base:1.1")
            || !std::strcmp(*cap, "urn:ietf:params:netconf:base:1.0")) {
            return true;
        }
    }
    return false;
}

/** Sends `rpc` and returns the reply data printed as XML; fails the test on an error reply. */
inline std::string call(nc_session* session, nc_rpc* rpc)
{
    uint64_t msgid = 0;
    REQUIRE(nc_send_rpc(session, rpc, 5000, &msgid) == NC_MSG_RPC);
    lyd_node* envp = nullptr;
    lyd_node* op = nullptr;
    NC_MSG_TYPE type = nc_recv_reply(session, rpc, msgid, 10000, &envp, &op);
    LydPtr envpOwner(envp);
    LydPtr opOwner(op);
    REQUIRE(type == NC_MSG_REPLY);
    REQUIRE(op);
    char* raw = nullptr;
    lyd_print_mem(&raw, op, LYD_XML, LYD_PRINT_WITHSIBLINGS);
    CStringPtr text(raw);
    return text ? std::string(text.get()) : std::string();
}

/** The session advertises a base capability and answers <get> with monitoring data. */
inline void checkSession(nc_session* session)
{
    REQUIRE(hasBaseCapability(session));
    NcRpcPtr get(nc_rpc_get(nullptr, NC_WD_UNKNOWN, NC_PARAMTYPE_CONST));
    auto data = call(session, get.get());
    REQUIRE(data.find("ietf-netconf-monitoring") != std::string::npos);
}
} // namespace callhome::test::reference
