#pragma once
#include "api/Http.h"
#include "config/Config.h"
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace callhome::inventory {
class Inventory;
struct Device;
} // namespace callhome::inventory
namespace callhome::server {
class Daemon;
class TraceLog;
class WorkerPool;
struct LiveSession;
} // namespace callhome::server

namespace callhome::api {
class StagedApplier;
class Forwarder;
/**
 * callhomed's control API (lib/api/README.md is the contract): the inventory's devices and operator actions, the
 * held sessions, RPCs, data and edits through them, notification and event streams, metrics. Requests to devices
 * go to the device's connection on its event loop (server::DeviceChannel) and are answered when the reply comes:
 * no thread waits on a device. Inventory work runs on one thread of its own (ch-api-db) with its own connection, so
 * a slow database never blocks requests to devices.
 *
 * Start it after the daemon; stop the daemon first, then this (device connections may answer until they end).
 */
class ControlApi {
public:
    ControlApi(server::Daemon& daemon, const config::ControlSettings& settings);
    ~ControlApi();
    ControlApi(const ControlApi&) = delete;
    ControlApi& operator=(const ControlApi&) = delete;

    void start();
    void stop();
    const std::string& socketPath() const noexcept { return m_settings.socket; }
    uint16_t tcpPort() const;

    struct EventFollower; ///< one /v1/events?follow=true client
    struct TraceFollower; ///< one /v1/trace?follow=true client
    /** The writer of the operation trace (what hooks and staged edits will use too). */
    const std::shared_ptr<server::TraceLog>& traceLog() const noexcept { return m_trace; }

private:
    using RequestPtr = std::shared_ptr<Request>;
    using ExchangePtr = std::shared_ptr<Exchange>;
    using SessionPtr = std::shared_ptr<const server::LiveSession>;

    void handle(RequestPtr request, ExchangePtr exchange);
    void route(const RequestPtr& request, const ExchangePtr& exchange);
    /** Runs `work` on the inventory thread; its exceptions become error responses. */
    void onInventory(const ExchangePtr& exchange, std::function<void(inventory::Inventory&)> work);
    /** Finds the live session of `ref` (fast path in memory; else resolved in the inventory), then `then`. */
    /**
     * Several instances: when `d` is held by another live instance that records a control endpoint and the request
     * was not forwarded already, forwards it there (on the HTTP threads) and returns true.
     */
    bool forwardToHolder(
        inventory::Inventory& inv, const inventory::Device& d, const RequestPtr& request, const ExchangePtr& exchange);
    void withSession(const RequestPtr& request, const ExchangePtr& exchange, const std::string& ref,
        std::function<void(SessionPtr)> then);
    void devices(const RequestPtr& request, const ExchangePtr& exchange);
    void device(const ExchangePtr& exchange, const std::string& ref);
    void decide(
        const RequestPtr& request, const ExchangePtr& exchange, const std::string& ref, const std::string& action);
    /** POST /v1/devices/{ref}/credentials: the device's SSH user, own password / key, password fallback. */
    void credentials(const RequestPtr& request, const ExchangePtr& exchange, const std::string& ref);
    void sessions(const ExchangePtr& exchange);
    void rpc(const RequestPtr& request, const ExchangePtr& exchange, const SessionPtr& session);
    void data(const RequestPtr& request, const ExchangePtr& exchange, const SessionPtr& session);
    void edit(const RequestPtr& request, const ExchangePtr& exchange, const SessionPtr& session);
    void notifications(const RequestPtr& request, const ExchangePtr& exchange, const SessionPtr& session);
    void close(const RequestPtr& request, const ExchangePtr& exchange, const SessionPtr& session);
    void events(const RequestPtr& request, const ExchangePtr& exchange);
    void metrics(const ExchangePtr& exchange);
    void trace(const RequestPtr& request, const ExchangePtr& exchange);
    /** /v1/devices/{ref}/staged (GET, POST), /v1/staged[/{id}[/retry]] (GET, DELETE, POST). */
    void staged(const RequestPtr& request, const ExchangePtr& exchange, const std::optional<std::string>& ref,
        const std::optional<std::string>& id, const std::string& action);
    void pollEvents();
    void pollTrace();
    bool takeStream();
    /** Gives a stream's slot back; safe to call after this object is gone. */
    std::function<void()> streamReleaser() const;

    server::Daemon& m_daemon;
    config::ControlSettings m_settings;
    std::unique_ptr<inventory::Inventory> m_inventory; ///< used on m_db's thread only
    std::unique_ptr<server::WorkerPool> m_db;
    std::shared_ptr<server::TraceLog> m_trace; ///< shared with the answers in flight
    std::unique_ptr<StagedApplier> m_staged; ///< applies the staged configuration (StagedApplier.h)
    std::unique_ptr<HttpServer> m_http;
    /// control/forward: requests for devices another instance holds go there (Forwarder.h); null without it
    std::unique_ptr<Forwarder> m_forwarder;
    /** Streams open; shared with the streams themselves, which may outlive this object in queued handlers. */
    std::shared_ptr<std::atomic<size_t>> m_streams = std::make_shared<std::atomic<size_t>>(0);

    // Event followers: polled from the inventory (callhomectl writes events too) by one thread, fanned out.
    std::mutex m_followMutex;
    std::condition_variable m_followWake;
    std::vector<std::shared_ptr<EventFollower>> m_followers;
    std::vector<std::shared_ptr<TraceFollower>> m_traceFollowers;
    bool m_tracePollQueued = false;
    int64_t m_eventCursor = -1; ///< newest event id delivered; -1 until read
    bool m_stopping = false;
    bool m_pollQueued = false;
    std::thread m_poller;
};
} // namespace callhome::api
