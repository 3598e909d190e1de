#pragma once
#include <memory>
#include <string>

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template<typename T>
class Family;
} // namespace prometheus

namespace callhome::server {
/**
 * The station's Prometheus metrics (served by the control API at /v1/metrics). Counters and histograms are updated
 * where things happen (lock-free atomics in prometheus-cpp); gauges are set from live values when scraped.
 */
class Metrics {
public:
    Metrics();
    ~Metrics();
    Metrics(const Metrics&) = delete;
    Metrics& operator=(const Metrics&) = delete;

    void accepted();
    /** A connection refused by admission; `reason` as admission names it (global-cap, source-rate, ...). */
    void refused(const std::string& reason);
    /** A handshake ended: `outcome` "session" (a NETCONF session came up) or "failed". */
    void handshake(const std::string& transport, const std::string& outcome, double seconds);
    /** A control-API request to a device: `outcome` ok, rpc-error, timeout, transport-error, ... */
    void rpc(const std::string& outcome, double seconds);
    /** A hook ended or was dropped: `hook` on-connect, ...; `outcome` ok, failed, timed-out, not-started, dropped. */
    void hook(const std::string& hook, const std::string& outcome);
    void setGauges(double handshakesInFlight, double sessions, double connections);
    /** Prometheus text exposition format. */
    std::string scrape() const;

private:
    std::shared_ptr<prometheus::Registry> m_registry;
    prometheus::Counter* m_accepted;
    prometheus::Family<prometheus::Counter>* m_refused;
    prometheus::Family<prometheus::Counter>* m_handshakes;
    prometheus::Family<prometheus::Histogram>* m_handshakeSeconds;
    prometheus::Family<prometheus::Counter>* m_rpcs;
    prometheus::Histogram* m_rpcSeconds;
    prometheus::Family<prometheus::Counter>* m_hooks;
    prometheus::Gauge* m_inFlight;
    prometheus::Gauge* m_sessions;
    prometheus::Gauge* m_connections;
};
} // namespace callhome::server
