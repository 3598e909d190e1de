#pragma once
#include "config/Config.h"
#include "harness/DevPki.h"
#include "harness/TempDir.h"
#include "inventory/Inventory.h"
#include "server/Daemon.h"
#include <memory>
#include <string>

namespace callhome::api {
class ControlApi;
}

namespace callhome::test {
/**
 * A real Daemon in-process on runtime-picked loopback ports (IPv4 and IPv6) with its state in a temp dir. With
 * `tls`, it listens for TLS call home instead, with the trust store of a fresh scripts/dev-pki PKI.
 */
struct CallhomeFixture {
    TempDir dir { "callhome-it" };
    std::unique_ptr<DevPki> pki;
    config::Config config;
    std::unique_ptr<server::Daemon> daemon;
    /** The control API on `config.control.socket` (STATE-DIR/control.sock), only after startApi(). */
    std::unique_ptr<api::ControlApi> api;

    explicit CallhomeFixture(bool tls = false);
    ~CallhomeFixture();
    CallhomeFixture(const CallhomeFixture&) = delete;
    CallhomeFixture& operator=(const CallhomeFixture&) = delete;
    /** (Re)starts the daemon on the state in `dir`; ports are picked anew. After startApi(), the API too. */
    void start();
    /** Stops the daemon, then the API (as callhomed does: device connections answer API requests until they end). */
    void stop();
    /** Starts the control API on the running daemon (and again after every start()). */
    void startApi();
    /** The control API's socket path. */
    const std::string& apiSocket() const { return config.control.socket; }
    uint16_t portV4() const;
    uint16_t portV6() const;
    inventory::Inventory& inventory() { return daemon->inventory(); }
    /** The device with this fingerprint, waiting up to 10 s for it to be recorded. */
    inventory::Device waitForDevice(const std::string& fingerprint);
    /**
     * Waits until the registry holds `n` sessions and, with `recorded`, until the inventory shows them too (the writer
     * records them later; a test that holds the inventory's write lock waits for the registry only).
     */
    void waitForSessions(size_t n, bool recorded = true);
    /** Waits until the inventory shows the device connected (the writer records a session after the registry has it).
     */
    void waitConnected(int64_t deviceId);
    /** Events of `kind` so far, optionally for one device. */
    std::vector<inventory::Event> eventsOf(inventory::EventKind kind, std::optional<int64_t> deviceId = std::nullopt);
    void waitForEvent(inventory::EventKind kind, std::optional<int64_t> deviceId = std::nullopt, size_t count = 1);

private:
    bool m_apiWanted = false;
};
} // namespace callhome::test
