// callhome-sim against the real Daemon in-process: first contacts are pending, approved (SSH) or pre-provisioned
// (TLS) devices come up, and the simulator's JSON report agrees. Bounded: each run ends by its --duration.
#include "CallhomeFixture.h"
#include "harness/Util.h"
#include "sim/Simulator.h"
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

using namespace callhome;
using namespace callhome::test;
using namespace std::chrono_literals;
using inventory::DeviceState;

namespace {
sim::Options simOptions(uint16_t port, size_t count)
{
    sim::Options o;
    o.stationAddress = "127.0.0.1";
    o.stationPort = port;
    o.count = count;
    o.mode = sim::Mode::Once; // establish, close; the run ends as soon as every device is done
    o.threads = 2;
    o.duration = 15s;
    o.timeout = 10s;
    return o;
}

nlohmann::json runSim(const sim::Options& o)
{
    sim::Simulator s(o);
    return nlohmann::json::parse(s.run().toJson());
}
} // namespace

TEST_CASE("callhome-sim SSH devices: pending first, sessions once approved")
{
    CallhomeFixture f;
    constexpr size_t n = 5;
    auto o = simOptions(f.portV4(), n);
    o.sshKeysDir = f.dir.file("sim-keys");

    auto first = runSim(o);
    CHECK(first["established"] == 0);
    CHECK(first["failed"] == n);
    std::ifstream list(f.dir.file("sim-keys") + "/fingerprints.txt");
    std::vector<std::string> fingerprints;
    for (std::string fp, name; list >> fp >> name;) {
        fingerprints.push_back(fp);
    }
    REQUIRE(fingerprints.size() == n);
    for (size_t i = 0; i < n; ++i) {
        auto d = f.waitForDevice(fingerprints[i]);
        CHECK(d.state == DeviceState::Pending);
        CHECK(d.lastAddress == "127.1.0." + std::to_string(i + 1)); // one loopback source address per device
        f.inventory().approve(d.id, "sim-" + std::to_string(i + 1), std::nullopt);
    }

    auto second = runSim(o); // the same keys, reused from the directory
    INFO(second.dump(2));
    CHECK(second["established"] == n);
    CHECK(second["failed"] == 0);
    CHECK(second["time_to_session_ms"]["max"].get<double>() > 0);
    f.waitForEvent(inventory::EventKind::SessionOpened, std::nullopt, n);
    // five first sessions of one model: one context, built with the sim's module fetched once by <get-schema>
    CHECK(f.daemon->contexts().created() == 1);
    CHECK(f.daemon->contexts().stored() == 1);
    CHECK(std::filesystem::exists(f.dir.file("state") + "/yang-cache/callhome-sim@2024-06-01.yang"));

    // after a restart the cache serves it: no round trip
    f.stop();
    f.start();
    o.stationPort = f.portV4();
    auto third = runSim(o);
    CHECK(third["established"] == n);
    CHECK(f.daemon->contexts().created() == 1);
    CHECK(f.daemon->contexts().stored() == 0);
}

TEST_CASE("callhome-sim TLS devices: pre-provisioned IDevIDs come up")
{
    CallhomeFixture f(true);
    constexpr size_t n = 3;
    auto o = simOptions(0, n);
    o.transport = sim::Transport::Tls;
    o.caDir = f.dir.file("sim-pki");
    o.stationCa = f.pki->stationCa();
    o.manufacturer = "sim";
    {
        sim::Simulator makePki(o); // creates the CA and device certificates
    }
    // the sim's CA becomes a manufacturer of the station's trust store; the daemon reads it at start
    auto mfr = std::filesystem::path(f.pki->trustStore()) / "manufacturers" / "sim";
    std::filesystem::create_directories(mfr);
    std::filesystem::copy_file(*o.caDir + "/manufacturer/ca.pem", mfr / "ca.pem");
    f.stop();
    f.start();
    std::vector<inventory::ExpectedDevice> expected;
    for (size_t i = 0; i < n; ++i) {
        expected.push_back({ "SIM-00000" + std::to_string(i + 1), "sim", "tls-" + std::to_string(i + 1) });
    }
    f.inventory().expect(expected);

    o.stationPort = f.portV4();
    auto report = runSim(o);
    INFO(report.dump(2));
    CHECK(report["established"] == n);
    CHECK(report["failed"] == 0);
    f.waitForEvent(inventory::EventKind::SessionOpened, std::nullopt, n);
}
