// The control API's optional TCP listener: TLS with client certificates. A client whose certificate verifies to
// control/tcp/client-ca is served (and named by its certificate in the log); one without a certificate, or with one
// from another CA, is refused during the handshake. curl is the independent client.
#include "Binaries.h"
#include "api/ControlApi.h"
#include "harness/DevPki.h"
#include "harness/TempDir.h"
#include "server/Daemon.h"
#include <nlohmann/json.hpp>

using namespace callhome;
using namespace callhome::test;

TEST_CASE("the TCP control listener serves only clients with a certificate from its client CA")
{
    TempDir dir("callhome-api-tcp");
    DevPki pki(dir);
    auto config
        = config::load(std::nullopt, config::Overrides { dir.file("state"), std::nullopt, { "ssh:127.0.0.1:0" } });
    config.listenerId = "api-tcp";
    config.eventLoops = 1;
    config::ControlSettings::Tcp tcp;
    tcp.address = "127.0.0.1";
    tcp.port = 0;
    // The server presents the station's certificate; clients must hold one the manufacturer CA signed.
    tcp.certificate = pki.station().chain;
    tcp.key = pki.station().key;
    tcp.clientCa = pki.manufacturerCa();
    config.control.tcp = tcp;
    config.control.socket = dir.file("control.sock");

    server::Daemon daemon(config);
    daemon.start();
    api::ControlApi control(daemon, config.control);
    control.start();
    const auto url = "https://127.0.0.1:" + std::to_string(control.tcpPort()) + "/v1/health";
    REQUIRE(control.tcpPort() != 0);

    // -k: this test is about the client's authentication; the station certificate names no loopback address.
    auto good = pki.device("sn-0001");
    auto ok = runCommand(dir, { "curl", "-sS", "-k", "--cert", good.cert, "--key", good.key, url });
    CHECK(ok.status == 0);
    auto health = nlohmann::json::parse(ok.out, nullptr, false);
    REQUIRE(health.is_object());
    CHECK(health["status"] == "ok");

    auto none = runCommand(dir, { "curl", "-sS", "-k", url });
    CHECK(none.status != 0);
    CHECK(none.out.find("\"status\"") == std::string::npos);

    auto other = pki.device("other-ca-0007");
    auto foreign = runCommand(dir, { "curl", "-sS", "-k", "--cert", other.cert, "--key", other.key, url });
    CHECK(foreign.status != 0);
    CHECK(foreign.out.find("\"status\"") == std::string::npos);

    // The UNIX socket is served alongside.
    auto local
        = runCommand(dir, { "curl", "-sS", "--unix-socket", dir.file("control.sock"), "http://localhost/v1/health" });
    CHECK(local.status == 0);
    CHECK(local.out.find("\"ok\"") != std::string::npos);

    daemon.stop();
    control.stop();
}
