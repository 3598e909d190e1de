#include "CallhomeFixture.h"
#include "api/ControlApi.h"
#include "common/Log.h"
#include "harness/Util.h"
#include "server/SessionRegistry.h"
#include <algorithm>
#include <cstdlib>

namespace callhome::test {
using namespace std::chrono_literals;

CallhomeFixture::CallhomeFixture(bool tls)
{
    ignoreSigpipe();
    if (tls) {
        pki = std::make_unique<DevPki>(dir);
        config = config::load(std::nullopt,
            config::Overrides {
                dir.file("state"), std::nullopt, { "tls:127.0.0.1:0", "tls:[::1]:0" }, pki->trustStore() });
    } else {
        config = config::load(
            std::nullopt, config::Overrides { dir.file("state"), std::nullopt, { "ssh:127.0.0.1:0", "ssh:[::1]:0" } });
    }
    config.handshakeTimeout = 3s;
    config.eventLoops = 2;
    config.listenerId = "test-listener";
    // CALLHOME_TEST_LOG_LEVEL (as log/level and --log-level take it, e.g. "debug" or "netconf=debug"): a failure
    // investigated with more of the station's log than the default info
    if (const char* text = std::getenv("CALLHOME_TEST_LOG_LEVEL")) {
        log::Levels levels;
        log::parseLevels(text, levels);
        log::setLevels(levels);
    }
    start();
}

CallhomeFixture::~CallhomeFixture()
{
    stop();
}

void CallhomeFixture::start()
{
    daemon = std::make_unique<server::Daemon>(config);
    daemon->start();
    if (m_apiWanted) {
        api = std::make_unique<api::ControlApi>(*daemon, config.control);
        api->start();
    }
}

void CallhomeFixture::stop()
{
    if (daemon) {
        daemon->stop();
    }
    if (api) {
        api->stop();
    }
    api.reset();
    daemon.reset();
}

void CallhomeFixture::startApi()
{
    m_apiWanted = true;
    if (!api) {
        api = std::make_unique<api::ControlApi>(*daemon, config.control);
        api->start();
    }
}

uint16_t CallhomeFixture::portV4() const
{
    return daemon->endpoints().at(0).port;
}

uint16_t CallhomeFixture::portV6() const
{
    return daemon->endpoints().at(1).port;
}

inventory::Device CallhomeFixture::waitForDevice(const std::string& fingerprint)
{
    waitFor([&] { return inventory().findByFingerprint(fingerprint).has_value(); }, 10s,
        "device " + fingerprint + " in the inventory");
    return *inventory().findByFingerprint(fingerprint);
}

void CallhomeFixture::waitForSessions(size_t n, bool recorded)
{
    waitFor([&] { return daemon->registry().size() == n; }, 30s, std::to_string(n) + " live sessions");
    if (!recorded) {
        return;
    }
    // The writer records a session after the registry has it: wait until the inventory shows each one held (unless
    // it ended meanwhile), so that a test reads what an operator would see a moment later.
    for (const auto& live : daemon->registry().sessions()) {
        waitFor(
            [&] {
                auto d = inventory().findById(live->deviceId);
                return (d && d->connected) || !daemon->registry().find(live->deviceId);
            },
            30s, "session " + live->connectionId + " recorded in the inventory");
    }
}

void CallhomeFixture::waitConnected(int64_t deviceId)
{
    waitFor(
        [&] {
            auto d = inventory().findById(deviceId);
            return d && d->connected;
        },
        30s, "device " + std::to_string(deviceId) + " recorded connected");
}

std::vector<inventory::Event> CallhomeFixture::eventsOf(inventory::EventKind kind, std::optional<int64_t> deviceId)
{
    auto all = inventory().events(inventory::EventFilter { .deviceId = deviceId });
    std::vector<inventory::Event> out;
    std::copy_if(all.begin(), all.end(), std::back_inserter(out), [&](const auto& e) { return e.kind == kind; });
    return out;
}

void CallhomeFixture::waitForEvent(inventory::EventKind kind, std::optional<int64_t> deviceId, size_t count)
{
    waitFor([&] { return eventsOf(kind, deviceId).size() >= count; }, 15s,
        std::to_string(count) + " '" + inventory::toString(kind) + "' events");
}
} // namespace callhome::test
