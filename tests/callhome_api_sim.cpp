// The control API under load: 100 callhome-sim devices (lib/sim, in this process on its own event loops) held by
// the in-process station, and 1,000 API requests at the same time, each on its own connection.
#include "callhome_api_common.h"
#include "server/SessionRegistry.h"
#include "sim/Simulator.h"
#include <fstream>
#include <future>

using namespace callhome;
using namespace callhome::test;
using namespace callhome::test::api;
using namespace std::chrono_literals;

TEST_CASE("control API: 1,000 concurrent requests across 100 devices are all served")
{
    CallhomeFixture f;
    f.config.eventLoops = 2;
    startWithApi(f);
    constexpr size_t devices = 100;
    constexpr size_t perDevice = 10;

    sim::Options o;
    o.stationAddress = "127.0.0.1";
    o.stationPort = f.portV4();
    o.count = devices;
    o.threads = 2;
    o.timeout = 20s;
    o.sshKeysDir = f.dir.file("sim-keys");
    // first contact: every device is recorded pending (and closed)
    o.mode = sim::Mode::Once;
    o.duration = 20s;
    {
        sim::Simulator first(o);
        auto report = first.run();
        CHECK(report.established == 0);
    }
    std::ifstream list(f.dir.file("sim-keys") + "/fingerprints.txt");
    std::vector<std::string> fingerprints;
    std::vector<std::string> simNames; // the sim's own name of each device, its configured hostname
    for (std::string fp, name; list >> fp >> name;) {
        fingerprints.push_back(fp);
        simNames.push_back(name);
    }
    REQUIRE(fingerprints.size() == devices);
    // approved through the API, all at once
    std::vector<HttpRequest> approvals;
    for (size_t i = 0; i < devices; ++i) {
        f.waitForDevice(fingerprints[i]);
        approvals.push_back({ "POST", deviceUrl(fingerprints[i], "approve"),
            json { { "name", "sim-" + std::to_string(i + 1) } }.dump(), { { "Content-Type", "application/json" } } });
    }
    for (const auto& r : httpConcurrent(f.apiSocket(), approvals, 30s)) {
        INFO(r.body);
        CHECK(r.status == 200);
    }

    // hold: the devices stay until the run is stopped (bounded by its duration)
    o.mode = sim::Mode::Hold;
    o.duration = 50s;
    sim::Simulator held(o);
    auto run = std::async(std::launch::async, [&] { return held.run(); });
    struct StopSim {
        sim::Simulator& s;
        std::future<sim::Report>& run;
        ~StopSim()
        {
            s.stop();
            if (run.valid()) {
                run.wait();
            }
        }
    } stopSim { held, run };
    f.waitForSessions(devices);

    // 1,000 requests at once: data (JSON and XML), raw RPCs, the device records
    std::vector<HttpRequest> requests;
    for (size_t i = 0; i < devices; ++i) {
        auto name = "sim-" + std::to_string(i + 1);
        for (size_t k = 0; k < perDevice; ++k) {
            switch (k % 4) {
            case 0:
                requests.push_back({ "GET", deviceUrl(name, "data?datastore=running") });
                break;
            case 1:
                requests.push_back(
                    { "GET", deviceUrl(name, "data?datastore=operational"), {}, { { "Accept", "application/xml" } } });
                break;
            case 2:
                requests.push_back(
                    { "POST", deviceUrl(name, "rpc"), "<get-config><source><running/></source></get-config>",
                        { { "Content-Type", "application/xml" } } });
                break;
            default:
                requests.push_back({ "GET", deviceUrl(name) });
                break;
            }
        }
    }
    REQUIRE(requests.size() == 1000);
    auto started = Clock::now();
    auto responses = httpConcurrent(f.apiSocket(), requests, 60s);
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
    WARN("1,000 concurrent API requests over 100 devices: " << took.count() << " ms");
    size_t ok = 0;
    for (size_t i = 0; i < responses.size(); ++i) {
        const auto& r = responses[i];
        if (r.status == 200) {
            ++ok;
        } else {
            FAIL_CHECK(requests[i].method << " " << requests[i].target << ": HTTP " << r.status << " " << r.body);
        }
        auto kind = (i % perDevice) % 4;
        if (kind == 3 && r.status == 200) {
            CHECK(bodyJson(r)["name"] == "sim-" + std::to_string(i / perDevice + 1));
        }
        if (kind == 1 && r.status == 200) {
            CHECK_THAT(r.body, Catch::StartsWith("<data"));
        }
        if (kind == 0 && r.status == 200) {
            // each answer came from its own device, not another's: the device's hostname is in its running config
            CHECK_THAT(r.body, Catch::Contains("\"" + simNames[i / perDevice] + "\""));
        }
    }
    CHECK(ok == requests.size());
    CHECK(f.daemon->registry().size() == devices); // nobody was dropped for it

    auto sessions = getJson(f, "/v1/sessions")["sessions"];
    CHECK(sessions.size() == devices);
    uint64_t rpcs = 0;
    for (const auto& s : sessions) {
        rpcs += s["rpcs"].get<uint64_t>();
    }
    CHECK(rpcs >= devices * perDevice * 3 / 4); // the data and rpc requests, counted per session

    // The Prometheus metrics count them too (the simulator's probes do not pass through the API).
    auto metrics = call(f, "GET", "/v1/metrics");
    CHECK(metrics.status == 200);
    INFO(metrics.body.substr(0, 3000));
    CHECK_THAT(metrics.body, Catch::Contains("callhome_rpcs_total{outcome=\"ok\"} " + std::to_string(rpcs)));
    CHECK_THAT(metrics.body, Catch::Contains("callhome_rpc_seconds_count " + std::to_string(rpcs)));
    CHECK_THAT(metrics.body, Catch::Contains("callhome_sessions " + std::to_string(devices)));
    CHECK_THAT(metrics.body, Catch::Contains("callhome_handshakes_total{outcome=\"session\",transport=\"ssh\"}"));

    held.stop();
    auto report = run.get();
    CHECK(report.established >= devices);
    CHECK(report.rpcs >= devices * perDevice * 3 / 4);
}
