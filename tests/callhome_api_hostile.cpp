// The control API against devices that fail it (tests/hostile/hostile_ssh.py): one that drops the connection in
// the middle of a request, one that keeps its session but never answers. A real device is served meanwhile.
#include "callhome_api_common.h"
#include "harness/HostilePeer.h"
#include "harness/SshdDevice.h"
#include "server/SessionRegistry.h"

using namespace callhome;
using namespace callhome::test;
using namespace callhome::test::api;
using namespace std::chrono_literals;
using inventory::EventKind;

namespace {
/** A hostile SSH peer that called once (pending), was approved as `name`, and calls again in `mode`. */
HostileAttempt& approvedHostile(CallhomeFixture& f, HostilePeer& peer, const std::string& name, const std::string& mode)
{
    auto& first = peer.callHome("normal", "127.0.0.1", f.portV4());
    first.waitFor("closed", 15s); // the station hangs up on a pending device after key exchange
    f.waitForDevice(peer.hostKeyFingerprint());
    approve(f, peer.hostKeyFingerprint(), name);
    auto& attempt = peer.callHome(mode, "127.0.0.1", f.portV4());
    attempt.waitFor("hello-received", 15s);
    waitFor([&] { return f.daemon->registry().findByName(name) != nullptr; }, 15s, name + " in the registry");
    return attempt;
}

const std::string kGet = "<get/>";
} // namespace

TEST_CASE("control API: a device that drops mid-RPC gives the transport error and is recorded disconnected")
{
    CallhomeFixture f;
    startWithApi(f);
    HostilePeer peer(f.dir, HostileKind::Ssh, HostilePeerOptions { .authorizedKeyLine = f.daemon->stationPublicKey() });
    auto& attempt = approvedHostile(f, peer, "dropper", "drop-on-rpc");
    auto id = f.inventory().findByFingerprint(peer.hostKeyFingerprint())->id;
    f.waitConnected(id); // the writer records the session a moment after the registry has it

    auto started = Clock::now();
    auto r = call(f, "POST", deviceUrl("dropper", "rpc"), kGet, { { "Content-Type", "application/xml" } });
    auto took = Clock::now() - started;
    INFO(r.body << "\n" << attempt.describe());
    CHECK(r.status == 502);
    auto doc = bodyJson(r);
    CHECK(doc["error"] == "transport-error");
    CHECK_THAT(doc["message"].get<std::string>(), Catch::StartsWith("dropper: "));
    CHECK(took < 10s); // the drop is noticed, not waited out to the 60 s RPC timeout
    CHECK(attempt.has("rpc-received"));
    attempt.waitFor("dropped", 5s); // written right after the close the station noticed

    // recorded disconnected: no session, the inventory says so, one session-closed event
    f.waitForSessions(0);
    f.waitForEvent(EventKind::SessionClosed, id);
    CHECK_FALSE(f.inventory().findById(id)->connected);
    auto shown = getJson(f, deviceUrl("dropper"));
    CHECK(shown["connected"] == false);
    CHECK(getJson(f, "/v1/sessions")["sessions"].empty());
    auto after = call(f, "GET", deviceUrl("dropper", "data"));
    CHECK(after.status == 409);
    CHECK(bodyJson(after)["error"] == "not-connected");
    CHECK(ctl(f, { "get-config", "dropper" }).status == 4);

    // callhomectl on a second drop: exit 1 with the transport error on stderr
    auto& again = peer.callHome("drop-on-rpc", "127.0.0.1", f.portV4());
    again.waitFor("hello-received", 15s);
    f.waitForSessions(1);
    auto cli = ctl(f, { "get-config", "dropper" });
    INFO(cli.err << "\n" << again.describe());
    CHECK(cli.status == 1);
    CHECK_THAT(cli.err, Catch::Contains("dropper"));
    again.waitFor("dropped", 5s);
    f.waitForSessions(0);
    f.waitForEvent(EventKind::SessionClosed, id, 2);
    auto metrics = call(f, "GET", "/v1/metrics");
    REQUIRE(metrics.status == 200);
    CHECK_THAT(metrics.body, Catch::Contains("callhome_rpcs_total{outcome=\"transport-error\"} 2"));
}

TEST_CASE("control API: a device that never answers gives the timeout; its session stays, others are served")
{
    CallhomeFixture f;
    startWithApi(f);
    HostilePeer peer(f.dir, HostileKind::Ssh, HostilePeerOptions { .authorizedKeyLine = f.daemon->stationPublicKey() });
    auto& attempt = approvedHostile(f, peer, "mute", "no-close-reply");
    SshdDevice good(f.dir, KeyType::Ed25519, f.daemon->stationPublicKey());
    good.callHome("127.0.0.1", f.portV4()).waitExit(10s);
    approve(f, good.hostKeyFingerprint(), "good", good.user());
    good.callHome("127.0.0.1", f.portV4());
    f.waitForSessions(2);

    // the mute device's request and the good device's, at the same time: the good one is not held up
    auto started = Clock::now();
    auto both = httpConcurrent(f.apiSocket(),
        { HttpRequest { "GET", deviceUrl("mute", "data?datastore=running&timeout=3") },
            HttpRequest {
                "GET", deviceUrl("good", "data?datastore=running"), {}, { { "Accept", "application/xml" } } } },
        20s);
    auto took = Clock::now() - started;
    INFO(both[0].body << "\n" << both[1].body << "\n" << attempt.describe());
    CHECK(both[0].status == 504);
    auto doc = bodyJson(both[0]);
    CHECK(doc["error"] == "timeout");
    CHECK_THAT(doc["message"].get<std::string>(), Catch::StartsWith("mute: "));
    CHECK(took >= 3s);
    CHECK(took < 10s);
    CHECK(both[1].status == 200);
    CHECK_THAT(both[1].body, Catch::Contains("ietf-netconf-acm"));
    CHECK(attempt.count("rpc-received") >= 1);

    // the session stays up after a timeout
    CHECK(f.daemon->registry().size() == 2);
    CHECK(f.inventory().findByFingerprint(peer.hostKeyFingerprint())->connected);
    auto sessions = getJson(f, "/v1/sessions")["sessions"];
    CHECK(sessions.size() == 2);

    // callhomectl with --timeout: exit 1, the timeout named
    auto cliStart = Clock::now();
    auto cli = ctl(f, { "get-config", "mute", "--timeout", "2" });
    INFO(cli.err);
    CHECK(cli.status == 1);
    CHECK_THAT(cli.err, Catch::Contains("mute"));
    CHECK(Clock::now() - cliStart >= 2s);
    // a raw RPC too, by the API's ?timeout
    auto rpc = call(f, "POST", deviceUrl("mute", "rpc?timeout=1"), kGet, { { "Content-Type", "application/xml" } });
    CHECK(rpc.status == 504);
    CHECK(f.daemon->registry().size() == 2);
    auto metrics = call(f, "GET", "/v1/metrics");
    REQUIRE(metrics.status == 200);
    CHECK_THAT(metrics.body, Catch::Contains("callhome_rpcs_total{outcome=\"timeout\"} 3"));
    // and the good device still answers
    CHECK(call(f, "GET", deviceUrl("good", "data")).status == 200);
}

TEST_CASE("control API: a reply over limits/max-message is an error, and the session ends (a stream cannot skip it)")
{
    CallhomeFixture f;
    f.config.maxMessage = 1024 * 1024;
    startWithApi(f);
    HostilePeer peer(f.dir, HostileKind::Ssh, HostilePeerOptions { .authorizedKeyLine = f.daemon->stationPublicKey() });
    auto& attempt = approvedHostile(f, peer, "bigmouth", "huge-reply"); // answers with 100 MB
    auto id = f.inventory().findByFingerprint(peer.hostKeyFingerprint())->id;

    auto r = call(f, "POST", deviceUrl("bigmouth", "rpc"), kGet, { { "Content-Type", "application/xml" } });
    INFO(r.body << "\n" << attempt.describe());
    CHECK(r.status == 502);
    auto doc = bodyJson(r);
    CHECK(doc["error"] == "reply-too-large");
    CHECK_THAT(doc["message"].get<std::string>(), Catch::Contains("1048576"));
    CHECK(attempt.has("huge-started"));
    f.waitForSessions(0);
    f.waitForEvent(EventKind::SessionClosed, id);
    CHECK_FALSE(f.inventory().findById(id)->connected);
    auto metrics = call(f, "GET", "/v1/metrics");
    CHECK_THAT(metrics.body, Catch::Contains("callhome_rpcs_total{outcome=\"reply-too-large\"} 1"));
}
