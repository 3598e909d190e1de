#include "server/Metrics.h"
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace callhome::server {
namespace {
const prometheus::Histogram::BucketBoundaries& latencyBuckets()
{
    static const prometheus::Histogram::BucketBoundaries buckets { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
        0.5, 1, 2.5, 5, 10, 30, 60 };
    return buckets;
}
} // namespace

Metrics::Metrics()
    : m_registry(std::make_shared<prometheus::Registry>())
{
    auto& r = *m_registry;
    m_accepted = &prometheus::BuildCounter()
                      .Name("callhome_connections_accepted_total")
                      .Help("TCP connections admitted to a handshake")
                      .Register(r)
                      .Add({});
    m_refused = &prometheus::BuildCounter()
                     .Name("callhome_connections_refused_total")
                     .Help("TCP connections refused by admission, by reason")
                     .Register(r);
    m_handshakes = &prometheus::BuildCounter()
                        .Name("callhome_handshakes_total")
                        .Help("Handshakes ended, by transport and outcome (session, failed)")
                        .Register(r);
    m_handshakeSeconds = &prometheus::BuildHistogram()
                              .Name("callhome_handshake_seconds")
                              .Help("Time from accept to an established NETCONF session")
                              .Register(r);
    m_rpcs = &prometheus::BuildCounter()
                  .Name("callhome_rpcs_total")
                  .Help("Control-API requests to devices, by outcome")
                  .Register(r);
    m_rpcSeconds = &prometheus::BuildHistogram()
                        .Name("callhome_rpc_seconds")
                        .Help("Control-API request to device reply")
                        .Register(r)
                        .Add({}, latencyBuckets());
    m_hooks
        = &prometheus::BuildCounter()
               .Name("callhome_hooks_total")
               .Help("Hooks run (config hooks/...), by hook and outcome (ok, failed, timed-out, not-started, dropped)")
               .Register(r);
    m_inFlight = &prometheus::BuildGauge()
                      .Name("callhome_handshakes_in_flight")
                      .Help("Handshakes in flight")
                      .Register(r)
                      .Add({});
    m_sessions = &prometheus::BuildGauge().Name("callhome_sessions").Help("NETCONF sessions held").Register(r).Add({});
    m_connections = &prometheus::BuildGauge()
                         .Name("callhome_connections")
                         .Help("Device connections open (handshakes and sessions)")
                         .Register(r)
                         .Add({});
}

Metrics::~Metrics() = default;

void Metrics::accepted()
{
    m_accepted->Increment();
}

void Metrics::refused(const std::string& reason)
{
    m_refused->Add({ { "reason", reason } }).Increment();
}

void Metrics::handshake(const std::string& transport, const std::string& outcome, double seconds)
{
    m_handshakes->Add({ { "transport", transport }, { "outcome", outcome } }).Increment();
    if (outcome == "session") {
        m_handshakeSeconds->Add({ { "transport", transport } }, latencyBuckets()).Observe(seconds);
    }
}

void Metrics::rpc(const std::string& outcome, double seconds)
{
    m_rpcs->Add({ { "outcome", outcome } }).Increment();
    m_rpcSeconds->Observe(seconds);
}

void Metrics::hook(const std::string& hook, const std::string& outcome)
{
    m_hooks->Add({ { "hook", hook }, { "outcome", outcome } }).Increment();
}

void Metrics::setGauges(double handshakesInFlight, double sessions, double connections)
{
    m_inFlight->Set(handshakesInFlight);
    m_sessions->Set(sessions);
    m_connections->Set(connections);
}

std::string Metrics::scrape() const
{
    return prometheus::TextSerializer().Serialize(m_registry->Collect());
}
} // namespace callhome::server
