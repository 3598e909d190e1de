#include "api/ControlApi.h"
#include "api/Convert.h"
#include "api/Forwarder.h"
#include "api/StagedApplier.h"
#include "cli/Json.h"
#include "common/Error.h"
#include "common/Log.h"
#include "common/Secret.h"
#include "common/Time.h"
#include "inventory/CredentialStore.h"
#include "inventory/Inventory.h"
#include "inventory/Open.h"
#include "inventory/Writer.h"
#include "netconf/Context.h"
#include "netconf/Message.h"
#include "netconf/Session.h"
#include "server/Daemon.h"
#include "server/Metrics.h"
#include "server/SessionRegistry.h"
#include "server/TraceLog.h"
#include "server/WorkerPool.h"
#include "transport/StationKey.h"
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <charconv>
#include <nlohmann/json.hpp>
#include <shared_mutex>

namespace callhome::api {
namespace {
namespace net = boost::asio;
using nlohmann::json;
using server::RpcOutcome;
using Status = http::status;
using SteadyClock = std::chrono::steady_clock;

constexpr const char* kJson = "application/json";
constexpr const char* kYangJson = "application/yang-data+json";
constexpr const char* kXml = "application/xml";
constexpr const char* kLines = "application/x-ndjson";
constexpr size_t kEventBatch = 1000;

bool allDigits(const std::string& s)
{
    return !s.empty() && s.size() < 19 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/** RFC 8040 section 7: the HTTP status for a NETCONF error-tag. */
Status statusForTag(const std::string& tag)
{
    static const std::map<std::string, Status> table {
        { "in-use", Status::conflict },
        { "invalid-value", Status::bad_request },
        { "too-big", Status::payload_too_large },
        { "missing-attribute", Status::bad_request },
        { "bad-attribute", Status::bad_request },
        { "unknown-attribute", Status::bad_request },
        { "missing-element", Status::bad_request },
        { "bad-element", Status::bad_request },
        { "unknown-element", Status::bad_request },
        { "unknown-namespace", Status::bad_request },
        { "access-denied", Status::forbidden },
        { "lock-denied", Status::conflict },
        { "resource-denied", Status::conflict },
        { "rollback-failed", Status::internal_server_error },
        { "data-exists", Status::conflict },
        { "data-missing", Status::conflict },
        { "operation-not-supported", Status::not_implemented },
        { "operation-failed", Status::internal_server_error },
        { "partial-operation", Status::internal_server_error },
        { "malformed-message", Status::bad_request },
    };
    auto it = table.find(tag);
    return it == table.end() ? Status::internal_server_error : it->second;
}

Response jsonResponse(const json& doc, Status status = Status::ok)
{
    Response r { status, 11 };
    r.set(http::field::content_type, kJson);
    r.body() = doc.dump() + "\n";
    return r;
}

Response error(Status status, const std::string& code, const std::string& message, json extra = json::object())
{
    extra["error"] = code;
    extra["message"] = message;
    return jsonResponse(extra, status);
}

json rpcErrorsJson(const std::vector<RpcError>& errors)
{
    auto list = json::array();
    for (const auto& e : errors) {
        json item = json::object();
        auto put = [&](const char* key, const std::string& value) {
            if (!value.empty()) {
                item[key] = value;
            }
        };
        put("type", e.type);
        put("tag", e.tag);
        put("severity", e.severity);
        put("app_tag", e.appTag);
        put("path", e.path);
        put("message", e.message);
        put("info", e.info);
        list.push_back(std::move(item));
    }
    return list;
}

/** The outcome name for metrics and logs. */
std::string outcomeName(const RpcOutcome& o, bool rpcError)
{
    switch (o.kind) {
    case RpcOutcome::Kind::Reply:
        return rpcError ? "rpc-error" : "ok";
    case RpcOutcome::Kind::Timeout:
        return "timeout";
    case RpcOutcome::Kind::TransportError:
        return "transport-error";
    case RpcOutcome::Kind::TooLarge:
        return "reply-too-large";
    case RpcOutcome::Kind::Busy:
        return "busy";
    }
    return "unknown";
}

/** The error response for an outcome that is not a reply. */
Response failure(const RpcOutcome& o, const std::string& device)
{
    switch (o.kind) {
    case RpcOutcome::Kind::Timeout:
        return error(Status::gateway_timeout, "timeout", device + ": " + o.detail);
    case RpcOutcome::Kind::TooLarge:
        return error(Status::bad_gateway, "reply-too-large",
            device + ": the reply was too large (" + o.detail + "); the session was closed");
    case RpcOutcome::Kind::Busy:
        return error(Status::service_unavailable, "busy", device + ": " + o.detail);
    case RpcOutcome::Kind::TransportError:
    case RpcOutcome::Kind::Reply:
        break;
    }
    return error(Status::bad_gateway, "transport-error", device + ": " + o.detail);
}

std::string deviceLabel(const server::LiveSession& s)
{
    if (!s.deviceName.empty()) {
        return s.deviceName;
    }
    std::string label = "#"; // not "#" + ...: GCC 12 -O3 warns falsely (-Wrestrict)
    label += std::to_string(s.deviceId);
    return label;
}

std::string isoMs(int64_t ms)
{
    return toIso8601(TimePoint(std::chrono::milliseconds(ms)));
}

std::optional<bool> flag(const Request& r, const std::string& name)
{
    auto v = r.param(name);
    if (!v) {
        return std::nullopt;
    }
    if (*v == "" || *v == "true" || *v == "1" || *v == "yes") {
        return true;
    }
    if (*v == "false" || *v == "0" || *v == "no") {
        return false;
    }
    throw BadRequest("bad-request", "query parameter " + name + " must be true or false, not '" + *v + "'");
}

std::optional<int64_t> number(const Request& r, const std::string& name, int64_t min, int64_t max)
{
    auto v = r.param(name);
    if (!v) {
        return std::nullopt;
    }
    int64_t n = 0;
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
    if (ec != std::errc() || end != v->data() + v->size() || n < min || n > max) {
        throw BadRequest("bad-request",
            "query parameter " + name + " must be a number from " + std::to_string(min) + " to " + std::to_string(max)
                + ", not '" + *v + "'");
    }
    return n;
}

std::string oneOf(
    const Request& r, const std::string& name, std::initializer_list<const char*> allowed, const std::string& fallback)
{
    auto v = r.param(name);
    if (!v) {
        return fallback;
    }
    for (const auto* a : allowed) {
        if (*v == a) {
            return *v;
        }
    }
    std::string list;
    for (const auto* a : allowed) {
        list += (list.empty() ? "" : ", ") + std::string(a);
    }
    throw BadRequest("bad-request", "query parameter " + name + " must be one of " + list + ", not '" + *v + "'");
}

/** Shared lock on the device's YANG context for conversions. */
struct ContextUse {
    std::shared_ptr<netconf::Context> context;
    std::shared_lock<std::shared_mutex> lock;
    explicit ContextUse(const server::LiveSession& s)
        : context(s.session->context())
        , lock(context->mutex())
    { }
    const ly_ctx* get() const { return context->get(); }
};

/** Where a request's operations are traced, and what every record of that request shares (who, which device). */
struct Tracer {
    std::shared_ptr<server::TraceLog> log;
    inventory::TraceRecord base;
};

/** The part of a trace record that the request and the device give: client, trace id, device, connection. */
Tracer tracer(const std::shared_ptr<server::TraceLog>& log, const Request& request, const server::LiveSession& s)
{
    Tracer t { .log = log, .base = {} };
    auto& r = t.base;
    r.receivedAt = request.receivedAt;
    r.source = "api";
    r.client = request.peer.describe();
    if (auto by = request.message[kForwardedByHeader]; !by.empty() && !request.peer.certSubject.empty()) {
        // Forwarded by another instance, which authenticated with its certificate: it names who asked it, so the
        // record says both (printable ASCII only, bounded: the header is the other instance's word).
        auto clean = [](std::string_view text) {
            std::string out(text.substr(0, 256));
            for (auto& c : out) {
                if (c < 0x20 || c > 0x7e) {
                    c = '?';
                }
            }
            return out;
        };
        r.client += " forwarded by instance " + clean(by) + " for " + clean(request.message[kForwardedForHeader]);
    }
    if (request.peer.uid) {
        r.clientUid = static_cast<int64_t>(*request.peer.uid);
        r.clientUser = request.peer.userName();
    }
    if (request.peer.pid) {
        r.clientPid = static_cast<int64_t>(*request.peer.pid);
    }
    r.clientCertSubject = request.peer.certSubject;
    r.clientCertFingerprint = request.peer.certFingerprint;
    r.traceId = std::string(request.message[kTraceIdHeader]);
    r.deviceId = s.deviceId;
    r.deviceName = s.deviceName;
    r.connectionId = s.connectionId;
    return t;
}

/** A follower of one device's notifications: fans the device's messages into its HTTP stream. */
class NotificationStream : public server::NotificationSink, public std::enable_shared_from_this<NotificationStream> {
public:
    NotificationStream(std::shared_ptr<Exchange> exchange, std::shared_ptr<const server::LiveSession> session, bool xml,
        net::io_context& io, size_t limit, std::function<void()> release, Tracer tracer, std::string stream)
        : m_tracer(std::move(tracer))
        , m_stream(std::move(stream))
        , m_exchange(std::move(exchange))
        , m_session(std::move(session))
        , m_xml(xml)
        , m_io(io)
        , m_limit(limit)
        , m_release(std::move(release))
    { }
    ~NotificationStream() override { m_release(); }

    void subscribed() override
    {
        m_started = true;
        m_exchange->startStream(m_xml ? kXml : kLines);
        trace("ok", {}, {});
    }

    bool deliver(const std::string& xml) override
    {
        if (m_exchange->gone() || m_pending.load() + xml.size() > m_limit) {
            return false;
        }
        m_pending += xml.size();
        net::post(m_io, [self = shared_from_this(), xml]() {
            self->m_pending -= xml.size();
            self->m_exchange->write(self->format(xml) + "\n");
        });
        return true;
    }

    void ended(const std::string& reason, const std::string& reply) override
    {
        net::post(m_io, [self = shared_from_this(), reason, reply]() {
            if (!self->m_started) {
                std::string tag, path;
                if (auto parsed = netconf::parseReply(reply); parsed && !parsed->errorTag.empty()) {
                    tag = parsed->errorTag;
                    path = parsed->errorPath;
                }
                self->trace(!tag.empty()                      ? "rpc-error"
                        : reason.rfind("the session", 0) == 0 ? "transport-error"
                                                              : "refused",
                    tag, path, reason);
                json extra = json::object();
                if (!reply.empty()) {
                    extra["rpc_errors"] = rpcErrorsJson(rpcErrors(reply));
                    extra["reply"] = reply;
                }
                self->m_exchange->respond(error(Status::conflict, reply.empty() ? "not-subscribed" : "rpc-error",
                    deviceLabel(*self->m_session) + ": " + reason, extra));
                return;
            }
            log::get(log::Main)->debug(
                "control API: notification stream of {} ended: {}", deviceLabel(*self->m_session), reason);
            self->m_exchange->endStream();
        });
    }

private:
    /** The subscription's one trace record (create-subscription, or the follower joining a subscribed session). */
    void trace(
        const std::string& outcome, const std::string& tag, const std::string& path, const std::string& reason = {})
    {
        if (!m_tracer.log || m_traced.exchange(true)) {
            return;
        }
        auto r = m_tracer.base;
        r.answeredAt = now();
        r.durationMs = std::chrono::duration_cast<std::chrono::milliseconds>(r.answeredAt - r.receivedAt).count();
        r.outcome = outcome;
        r.errorTag = tag;
        r.errorPath = path;
        r.detail = "stream " + m_stream + (reason.empty() ? "" : ": " + reason);
        m_tracer.log->record(std::move(r));
    }

    std::string format(const std::string& xml)
    {
        if (m_xml) {
            return oneLine(xml);
        }
        json line { { "device", m_session->deviceName }, { "device_id", m_session->deviceId } };
        try {
            ContextUse ctx(*m_session);
            auto n = notificationToJson(ctx.get(), xml);
            line["event_time"] = n.eventTime;
            if (n.json) {
                line["notification"] = json::parse(*n.json);
            } else {
                line["xml"] = xml;
            }
        } catch (const std::exception&) {
            line["xml"] = xml;
        }
        return line.dump();
    }

    Tracer m_tracer;
    std::string m_stream; ///< for the trace
    std::atomic<bool> m_traced { false };
    std::shared_ptr<Exchange> m_exchange;
    std::shared_ptr<const server::LiveSession> m_session;
    bool m_xml;
    net::io_context& m_io;
    size_t m_limit;
    std::function<void()> m_release;
    std::atomic<size_t> m_pending { 0 };
    std::atomic<bool> m_started { false };
};

/**
 * Sends `operation` to the device and calls `then` with the outcome on an API thread (never on the device's loop:
 * conversions with libyang must not hold up the device's traffic). A client that hangs up cancels the call. Every
 * operation handed to the device leaves one trace record (also when the client went away first), queued to the
 * trace writer on the API thread: the request never waits on the database for it.
 */
void call(net::io_context& io, server::Metrics& metrics, const std::shared_ptr<const server::LiveSession>& session,
    const std::shared_ptr<Exchange>& exchange, std::string operation, std::chrono::milliseconds timeout,
    const Tracer& tracer, std::function<void(RpcOutcome)> then)
{
    auto c = std::make_shared<server::RpcCall>();
    auto record = tracer.base;
    server::describeRequest(record, operation);
    c->operation = std::move(operation);
    c->deadline = SteadyClock::now() + timeout;
    auto started = SteadyClock::now();
    c->done = [&io, &metrics, started, log = tracer.log, record = std::move(record), then = std::move(then)](
                  RpcOutcome o) mutable {
        net::post(io,
            [&metrics, started, log, record = std::move(record), then = std::move(then), o = std::move(o)]() mutable {
                auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - started);
                if (log) {
                    server::traceOutcome(record, o, elapsed);
                    log->record(std::move(record));
                }
                if (o.cancelled) {
                    return; // nobody to answer
                }
                bool rpcError = o.kind == RpcOutcome::Kind::Reply && o.reply.find("rpc-error>") != std::string::npos;
                metrics.rpc(
                    outcomeName(o, rpcError), std::chrono::duration<double>(SteadyClock::now() - started).count());
                then(std::move(o));
            });
    };
    std::weak_ptr<server::RpcCall> weak = c;
    exchange->onGone([weak] {
        if (auto c = weak.lock()) {
            c->cancelled = true;
        }
    });
    session->channel.submit(std::move(c));
}

/** The <rpc-error> response, or nullopt when the reply has none. */
std::optional<Response> rpcErrorResponse(const std::string& reply, const std::string& device, const std::string& step)
{
    auto errors = rpcErrors(reply);
    if (errors.empty()) {
        return std::nullopt;
    }
    const auto& first = errors.front();
    std::string message = device + " answered <rpc-error>";
    if (!step.empty()) {
        message += " to <" + step + ">";
    }
    message += ": " + first.tag;
    if (!first.path.empty()) {
        message += " at " + first.path;
    }
    if (!first.message.empty()) {
        message += ": " + first.message;
    }
    json extra { { "rpc_errors", rpcErrorsJson(errors) }, { "reply", reply } };
    if (!step.empty()) {
        extra["step"] = step;
    }
    return error(statusForTag(first.tag), "rpc-error", message, extra);
}
/**
 * Answers `exchange` when the outcome is not a plain reply (timeout, transport error, ...) or the reply is an
 * <rpc-error>; true when it did (the caller is done), false when the reply is the caller's to answer.
 */
bool answeredFailure(const std::shared_ptr<Exchange>& exchange, const RpcOutcome& o, const std::string& device)
{
    if (o.kind != RpcOutcome::Kind::Reply) {
        exchange->respond(failure(o, device));
        return true;
    }
    if (auto e = rpcErrorResponse(o.reply, device, {})) {
        exchange->respond(std::move(*e));
        return true;
    }
    return false;
}
} // namespace

struct ControlApi::EventFollower {
    std::shared_ptr<Exchange> exchange;
    std::optional<int64_t> deviceId;
    int64_t lastId = 0;
    bool matches(const inventory::Event& e) const { return !deviceId || e.deviceId == deviceId; }
};

struct ControlApi::TraceFollower {
    std::shared_ptr<Exchange> exchange;
    inventory::TraceFilter filter; ///< device, client, trace id (since: only for the catch-up)
    int64_t lastId = 0;
    bool matches(const inventory::TraceRecord& r) const
    {
        const auto& c = filter.client;
        return (!filter.deviceId || r.deviceId == filter.deviceId) && (!filter.traceId || r.traceId == *filter.traceId)
            && (!c
                || (*c == r.client || *c == r.clientUser || *c == r.clientCertSubject || *c == r.clientCertFingerprint
                    || (r.clientUid && *c == std::to_string(*r.clientUid))));
    }
};

ControlApi::ControlApi(server::Daemon& daemon, const config::ControlSettings& settings)
    : m_daemon(daemon)
    , m_settings(settings)
{
    m_inventory = inventory::openInventory(daemon.config().inventoryPath, inventory::OpenMode::ExistingOnly);
    m_db = std::make_unique<server::WorkerPool>(1, 100000, "ch-api-db");
    m_trace = std::make_shared<server::TraceLog>(daemon.config().inventoryPath);
    m_staged = std::make_unique<StagedApplier>(daemon.registry(), m_trace,
        StagedApplier::Options { .inventoryPath = daemon.config().inventoryPath,
            .rpcTimeout = std::chrono::milliseconds(settings.rpcTimeout) });
    HttpServer::Options options { .socketPath = settings.socket,
        .group = settings.group,
        .maxBody = settings.maxRequest,
        .streamBuffer = settings.streamBuffer,
        .threads = settings.threads,
        .tcp = settings.tcp };
    m_http = std::make_unique<HttpServer>(
        options, [this](RequestPtr r, ExchangePtr e) { handle(std::move(r), std::move(e)); });
    if (settings.forward) {
        m_forwarder = std::make_unique<Forwarder>(m_http->context(), *settings.forward, daemon.config().listenerId);
    }
}

ControlApi::~ControlApi()
{
    stop();
}

void ControlApi::start()
{
    m_http->start();
    m_staged->start();
    m_daemon.registry().setStagedTrigger([staged = m_staged.get()](int64_t deviceId) { staged->sessionUp(deviceId); });
    m_poller = std::thread([this] {
        pthread_setname_np(pthread_self(), "ch-api-events");
        std::unique_lock lock(m_followMutex);
        while (!m_stopping) {
            m_followWake.wait_for(lock, std::chrono::milliseconds(100));
            if (m_stopping) {
                break;
            }
            if (!m_followers.empty() && !m_pollQueued) {
                m_pollQueued = true;
                if (!m_db->trySubmit([this] { pollEvents(); })) {
                    m_pollQueued = false;
                }
            }
            if (!m_traceFollowers.empty() && !m_tracePollQueued) {
                m_tracePollQueued = true;
                if (!m_db->trySubmit([this] { pollTrace(); })) {
                    m_tracePollQueued = false;
                }
            }
        }
    });
    if (!m_settings.socket.empty()) {
        log::get(log::Main)->info("control API on {}", m_settings.socket);
    }
    if (m_settings.tcp) {
        log::get(log::Main)->info("control API on TLS {} port {}", m_settings.tcp->address, tcpPort());
    }
    // Several instances on one inventory: where the others forward requests for the devices this one holds (empty:
    // nowhere, also clearing what an earlier run with control/forward recorded).
    std::string endpoint;
    if (m_settings.forward && m_settings.tcp) {
        const auto& host = m_settings.forward->advertise;
        endpoint = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(tcpPort());
        log::get(log::Main)->info("control API: other instances forward to {}", endpoint);
    }
    m_daemon.writer().post(
        "recording the control endpoint", [id = m_daemon.config().listenerId, endpoint](inventory::Inventory& inv) {
            inv.setControlEndpoint(id, endpoint);
            return std::function<void()> {};
        });
}

void ControlApi::stop()
{
    {
        std::lock_guard lock(m_followMutex);
        if (m_stopping) {
            return;
        }
        m_stopping = true;
    }
    m_followWake.notify_all();
    if (m_poller.joinable()) {
        m_poller.join();
    }
    m_http->stop();
    m_db->stop();
    m_daemon.registry().setStagedTrigger(nullptr);
    m_staged->stop();
    m_trace->stop(); // writes what the last answers queued
    std::lock_guard lock(m_followMutex);
    m_followers.clear();
    m_traceFollowers.clear();
}

uint16_t ControlApi::tcpPort() const
{
    return m_http->tcpPort();
}

void ControlApi::handle(RequestPtr request, ExchangePtr exchange)
{
    try {
        route(request, exchange);
    } catch (const BadRequest& e) {
        exchange->respond(error(Status::bad_request, e.code(), e.what()));
    } catch (const std::exception& e) {
        exchange->respond(error(Status::internal_server_error, "internal", e.what()));
    }
}

void ControlApi::route(const RequestPtr& request, const ExchangePtr& exchange)
{
    const auto method = request->message.method();
    const auto& parts = request->segments;
    if (parts.empty() || parts[0] != "v1") {
        exchange->respond(error(Status::not_found, "not-found", "no such endpoint: " + request->path + " (try /v1/)"));
        return;
    }
    auto wrongMethod = [&](const char* allowed) {
        exchange->respond(error(Status::method_not_allowed, "method-not-allowed",
            std::string(request->message.method_string()) + " " + request->path + ": use " + allowed));
    };
    const bool get = method == http::verb::get;
    const bool post = method == http::verb::post;
    const bool del = method == http::verb::delete_;
    if (!get && !post && !del) {
        wrongMethod("GET, POST or DELETE");
        return;
    }
    if (auto traceId = request->message[kTraceIdHeader]; !traceId.empty() && !validTraceId(traceId)) {
        exchange->respond(error(Status::bad_request, "bad-request",
            std::string(kTraceIdHeader) + " must be 1 to 128 printable ASCII characters"));
        return;
    }
    if (parts.size() >= 2 && parts[1] != "health" && parts[1] != "metrics" && parts[1] != "sessions" && (post || del)) {
        // Every request that changes something is logged with who asked.
        log::get(log::Main)->info("control API: {} {} from {}", std::string(request->message.method_string()),
            std::string(request->message.target()), request->peer.describe());
    }
    if (parts.size() == 2 && parts[1] == "health") {
        exchange->respond(jsonResponse(
            { { "status", "ok" }, { "sessions", m_daemon.registry().size() }, { "version", CALLHOME_VERSION } }));
        return;
    }
    if (parts.size() == 2 && parts[1] == "metrics") {
        get ? metrics(exchange) : wrongMethod("GET");
        return;
    }
    if (parts.size() == 2 && parts[1] == "sessions") {
        get ? sessions(exchange) : wrongMethod("GET");
        return;
    }
    if (parts.size() == 2 && parts[1] == "events") {
        get ? events(request, exchange) : wrongMethod("GET");
        return;
    }
    if (parts.size() == 2 && parts[1] == "trace") {
        get ? trace(request, exchange) : wrongMethod("GET");
        return;
    }
    // staged configuration
    if (parts.size() >= 2 && parts[1] == "staged") {
        if (parts.size() == 2) {
            get ? staged(request, exchange, std::nullopt, std::nullopt, "list") : wrongMethod("GET");
            return;
        }
        if (parts.size() == 3) {
            get       ? staged(request, exchange, std::nullopt, parts[2], "show")
                : del ? staged(request, exchange, std::nullopt, parts[2], "unstage")
                      : wrongMethod("GET or DELETE");
            return;
        }
        if (parts.size() == 4 && parts[3] == "retry") {
            post ? staged(request, exchange, std::nullopt, parts[2], "retry") : wrongMethod("POST");
            return;
        }
    }
    if (parts.size() == 4 && parts[1] == "devices" && parts[3] == "staged") {
        get        ? staged(request, exchange, parts[2], std::nullopt, "list")
            : post ? staged(request, exchange, parts[2], std::nullopt, "stage")
                   : wrongMethod("GET or POST");
        return;
    }
    if (parts.size() >= 2 && parts[1] == "devices") {
        if (parts.size() == 2) {
            get ? devices(request, exchange) : wrongMethod("GET");
            return;
        }
        const auto& ref = parts[2];
        if (parts.size() == 3) {
            get ? device(exchange, ref) : wrongMethod("GET");
            return;
        }
        if (parts.size() == 4) {
            const auto& what = parts[3];
            static const std::set<std::string> decisions { "approve", "reject", "revoke", "forget", "rename", "rekey" };
            if (decisions.count(what)) {
                post ? decide(request, exchange, ref, what) : wrongMethod("POST");
                return;
            }
            if (what == "credentials") {
                post ? credentials(request, exchange, ref) : wrongMethod("POST");
                return;
            }
            using Op = void (ControlApi::*)(const RequestPtr&, const ExchangePtr&, const SessionPtr&);
            static const std::map<std::string, std::pair<Op, bool>> ops {
                { "rpc", { &ControlApi::rpc, true } },
                { "data", { &ControlApi::data, false } },
                { "edit", { &ControlApi::edit, true } },
                { "notifications", { &ControlApi::notifications, false } },
                { "close", { &ControlApi::close, true } },
            };
            if (auto it = ops.find(what); it != ops.end()) {
                if (it->second.second ? !post : !get) {
                    wrongMethod(it->second.second ? "POST" : "GET");
                    return;
                }
                auto op = it->second.first;
                withSession(request, exchange, ref, [this, op, request, exchange](SessionPtr s) {
                    try {
                        (this->*op)(request, exchange, s);
                    } catch (const BadRequest& e) {
                        exchange->respond(error(Status::bad_request, e.code(), e.what()));
                    } catch (const std::exception& e) {
                        exchange->respond(error(Status::internal_server_error, "internal", e.what()));
                    }
                });
                return;
            }
        }
    }
    exchange->respond(error(Status::not_found, "not-found", "no such endpoint: " + request->path));
}

void ControlApi::onInventory(const ExchangePtr& exchange, std::function<void(inventory::Inventory&)> work)
{
    bool queued = m_db->trySubmit([this, exchange, work = std::move(work)] {
        try {
            work(*m_inventory);
        } catch (const inventory::NotFound& e) {
            exchange->respond(error(Status::not_found, "unknown-device", e.what()));
        } catch (const inventory::Ambiguous& e) {
            exchange->respond(error(Status::bad_request, "ambiguous", e.what()));
        } catch (const BadRequest& e) {
            exchange->respond(error(Status::bad_request, e.code(), e.what()));
        } catch (const UsageError& e) {
            exchange->respond(error(Status::conflict, "refused", e.what()));
        } catch (const std::exception& e) {
            exchange->respond(error(Status::internal_server_error, "inventory", e.what()));
        }
    });
    if (!queued) {
        exchange->respond(error(Status::service_unavailable, "busy", "the inventory queue is full"));
    }
}

void ControlApi::withSession(const RequestPtr& request, const ExchangePtr& exchange, const std::string& ref,
    std::function<void(SessionPtr)> then)
{
    auto& registry = m_daemon.registry();
    // Fast path, no database: a live session by numeric id or exact name.
    SessionPtr live = allDigits(ref) ? registry.find(std::stoll(ref)) : registry.findByName(ref);
    if (live) {
        then(std::move(live));
        return;
    }
    onInventory(exchange, [this, request, exchange, then = std::move(then), ref](inventory::Inventory& inv) {
        auto d = inv.resolve(ref);
        auto session = m_daemon.registry().find(d.id);
        if (!session && forwardToHolder(inv, d, request, exchange)) {
            return;
        }
        if (!session) {
            exchange->respond(error(Status::conflict, "not-connected",
                d.name.value_or(std::to_string(d.id)) + " is not connected (state " + inventory::toString(d.state)
                    + ")",
                { { "device", cli::toJson(d) } }));
            return;
        }
        net::post(m_http->context(), [then, session]() { then(session); });
    });
}

bool ControlApi::forwardToHolder(
    inventory::Inventory& inv, const inventory::Device& d, const RequestPtr& request, const ExchangePtr& exchange)
{
    // A forwarded request is never forwarded again: the holder's view may be behind ours, and two instances must
    // not bounce a request between them.
    const auto& self = m_daemon.config().listenerId;
    if (!m_forwarder || !d.listenerId || *d.listenerId == self || !request->message[kForwardedByHeader].empty()) {
        return false;
    }
    for (const auto& l : inv.listeners()) {
        if (l.id == *d.listenerId && l.alive && !l.controlEndpoint.empty()) {
            net::post(m_http->context(),
                [forwarder = m_forwarder.get(), request, exchange, endpoint = l.controlEndpoint, holder = l.id] {
                    forwarder->forward(request, exchange, endpoint, holder);
                });
            return true;
        }
    }
    return false; // the holder records no control endpoint (no control/forward there): not-connected, as before
}

void ControlApi::devices(const RequestPtr& request, const ExchangePtr& exchange)
{
    inventory::DeviceFilter filter;
    if (auto s = request->param("state")) {
        filter.state = inventory::deviceStateFromString(
            oneOf(*request, "state", { "pending", "approved", "rejected", "revoked" }, *s));
    }
    if (auto t = request->param("transport")) {
        filter.transport = inventory::transportFromString(oneOf(*request, "transport", { "ssh", "tls" }, *t));
    }
    filter.connected = flag(*request, "connected");
    filter.afterId = number(*request, "after", 0, INT64_MAX);
    filter.limit = number(*request, "limit", 1, INT64_MAX);
    if (auto n = request->param("name")) {
        filter.nameGlob = *n;
    }
    onInventory(exchange, [exchange, filter](inventory::Inventory& inv) {
        // Streamed as it is read: a 100,000-device listing costs constant memory here.
        exchange->startStream(kJson);
        std::string chunk = "{\"devices\": [";
        bool first = true;
        inv.forEachDevice(filter, [&](const inventory::Device& d) {
            chunk += (first ? "\n" : ",\n") + cli::toJson(d).dump();
            first = false;
            if (chunk.size() > 65536) {
                if (!exchange->waitWritable(std::chrono::seconds(30))) {
                    throw Error("the client stopped reading");
                }
                exchange->write(std::move(chunk));
                chunk.clear();
            }
        });
        chunk += "\n]}\n";
        exchange->write(std::move(chunk));
        exchange->endStream();
    });
}

void ControlApi::device(const ExchangePtr& exchange, const std::string& ref)
{
    onInventory(exchange,
        [exchange, ref](inventory::Inventory& inv) { exchange->respond(jsonResponse(cli::toJson(inv.resolve(ref)))); });
}

void ControlApi::decide(
    const RequestPtr& request, const ExchangePtr& exchange, const std::string& ref, const std::string& action)
{
    json body = json::object();
    const auto& text = request->message.body();
    if (text.find_first_not_of(" \t\r\n") != std::string::npos) {
        body = json::parse(text, nullptr, false);
        if (body.is_discarded() || !body.is_object()) {
            throw BadRequest("bad-json", "the body must be a JSON object");
        }
    }
    auto optString = [&](const char* key) -> std::optional<std::string> {
        if (!body.contains(key) || body[key].is_null()) {
            return std::nullopt;
        }
        if (!body[key].is_string()) {
            throw BadRequest("bad-json", std::string(key) + " must be a string");
        }
        return body[key].get<std::string>();
    };
    auto name = optString("name");
    auto user = optString("user");
    auto fingerprint = optString("fingerprint");
    if (action == "rename" && !name) {
        throw BadRequest("bad-request", "rename needs {\"name\": NEWNAME}");
    }
    if (action == "rekey" && !fingerprint) {
        throw BadRequest("bad-request", "rekey needs {\"fingerprint\": the pending device with the new key}");
    }
    auto who = request->peer.describe();
    auto actor = request->peer.actor();
    onInventory(exchange, [exchange, ref, action, name, user, fingerprint, who, actor](inventory::Inventory& inv) {
        // This thread is the connection's only user: the actor set here is this decision's.
        inv.setActor(actor);
        auto d = inv.resolve(ref);
        inventory::Device result;
        if (action == "approve") {
            result = inv.approve(d.id, name, user);
        } else if (action == "reject") {
            result = inv.reject(d.id);
        } else if (action == "revoke") {
            result = inv.revoke(d.id);
        } else if (action == "forget") {
            inv.forget(d.id);
            result = d;
        } else if (action == "rekey") {
            result = inv.rekey(d.id, inv.resolve(*fingerprint).id);
        } else {
            result = inv.rename(d.id, *name);
        }
        log::get(log::Main)->info("control API: {} {} #{} ({})", who, action, d.id, d.name.value_or("unnamed"));
        // The registry notices decisions by polling the inventory; a live session of a device no longer approved
        // ends then (within its poll interval), as with callhomectl.
        exchange->respond(jsonResponse(cli::toJson(result)));
    });
}

void ControlApi::credentials(const RequestPtr& request, const ExchangePtr& exchange, const std::string& ref)
{
    // The body carries secrets: it is never logged, and the answer says only what the device has ("set").
    json body = json::parse(request->message.body(), nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
        throw BadRequest("bad-json", "the body must be a JSON object");
    }
    static const std::set<std::string> known { "user", "password", "private_key", "clear_password", "clear_key",
        "password_fallback" };
    for (const auto& [key, value] : body.items()) {
        if (!known.count(key)) {
            throw BadRequest("bad-request",
                "unknown member " + key
                    + " (known: user, password, private_key, "
                      "clear_password, clear_key, password_fallback)");
        }
    }
    auto optString = [&](const char* key) -> std::optional<std::string> {
        if (!body.contains(key) || body[key].is_null()) {
            return std::nullopt;
        }
        if (!body[key].is_string() || body[key].get_ref<const std::string&>().empty()) {
            throw BadRequest("bad-json", std::string(key) + " must be a non-empty string");
        }
        return body[key].get<std::string>();
    };
    auto optBool = [&](const char* key) -> std::optional<bool> {
        if (!body.contains(key) || body[key].is_null()) {
            return std::nullopt;
        }
        if (!body[key].is_boolean()) {
            throw BadRequest("bad-json", std::string(key) + " must be true or false");
        }
        return body[key].get<bool>();
    };
    auto user = optString("user");
    std::optional<Secret> password;
    if (auto p = optString("password")) {
        if (p->find('\n') != std::string::npos || p->find('\0') != std::string::npos) {
            throw BadRequest("bad-request", "password must be one line");
        }
        password = Secret(std::move(*p));
    }
    std::optional<Secret> privateKey;
    if (auto k = optString("private_key")) {
        privateKey = Secret(std::move(*k));
        try {
            transport::checkPrivateKeyText(*privateKey, "private_key");
        } catch (const UsageError& e) {
            throw BadRequest("bad-request", e.what());
        }
    }
    const bool clearPassword = optBool("clear_password").value_or(false);
    const bool clearKey = optBool("clear_key").value_or(false);
    if ((password && clearPassword) || (privateKey && clearKey)) {
        throw BadRequest("bad-request", "a secret cannot be set and cleared at once");
    }
    auto fallback = optBool("password_fallback");
    if (!user && !password && !privateKey && !clearPassword && !clearKey && !fallback) {
        throw BadRequest("bad-request", "nothing to change");
    }
    for (auto& [key, value] : body.items()) {
        if (value.is_string()) {
            wipe(value.get_ref<std::string&>());
        }
    }
    auto actor = request->peer.actor();
    auto who = request->peer.describe();
    auto* store = &m_daemon.credentialStore();
    onInventory(exchange,
        [exchange, ref, user, password, privateKey, clearPassword, clearKey, fallback, actor, who, store](
            inventory::Inventory& inv) {
            inv.setActor(actor);
            auto d = inv.resolve(ref);
            if (d.transport != inventory::Transport::Ssh) {
                throw UsageError("a TLS device has no SSH credentials (callhomed presents the station's certificate)");
            }
            // Secrets first when set (the record never says "set" for a secret that is not stored), last when cleared.
            inventory::CredentialsUpdate update { .sshUser = user, .passwordFallback = fallback };
            if (password) {
                store->setPassword(d.id, password);
                update.passwordSet = true;
            } else if (clearPassword) {
                update.passwordSet = false;
            }
            if (privateKey) {
                store->setPrivateKey(d.id, privateKey);
                update.keySet = true;
            } else if (clearKey) {
                update.keySet = false;
            }
            auto result = inv.setCredentials(d.id, update);
            if (clearPassword) {
                store->setPassword(d.id, std::nullopt);
            }
            if (clearKey) {
                store->setPrivateKey(d.id, std::nullopt);
            }
            log::get(log::Main)->info(
                "control API: {} changed the credentials of #{} ({})", who, d.id, d.name.value_or("unnamed"));
            exchange->respond(jsonResponse(cli::toJson(result)));
        });
}

void ControlApi::sessions(const ExchangePtr& exchange)
{
    auto list = json::array();
    for (const auto& s : m_daemon.registry().sessions()) {
        list.push_back({ { "device_id", s->deviceId }, { "device", s->deviceName },
            { "connection_id", s->connectionId }, { "transport", s->transport }, { "address", s->address },
            { "since", toIso8601(s->start) }, { "netconf_version", s->session->version() },
            { "session_id", s->session->sessionId() }, { "rpcs", s->stats ? s->stats->rpcs.load() : 0 },
            { "last_activity",
                s->stats && s->stats->lastActivityMs.load() ? json(isoMs(s->stats->lastActivityMs.load()))
                                                            : json(nullptr) } });
    }
    exchange->respond(jsonResponse({ { "sessions", list } }));
}

namespace {
std::chrono::milliseconds timeoutOf(const Request& r, std::chrono::seconds fallback)
{
    auto t = number(r, "timeout", 1, 86400);
    return t ? std::chrono::milliseconds(*t * 1000) : std::chrono::milliseconds(fallback);
}
} // namespace

void ControlApi::rpc(const RequestPtr& request, const ExchangePtr& exchange, const SessionPtr& session)
{
    const auto& body = request->message.body();
    if (body.find_first_not_of(" \t\r\n") == std::string::npos) {
        throw BadRequest("bad-request", "the body must be one NETCONF operation as XML (what goes inside <rpc>)");
    }
    auto operation = oneElement(body, "the operation");
    bool wantJson = request->accepts(kYangJson) || request->accepts("application/json");
    auto timeout = timeoutOf(*request, m_settings.rpcTimeout);
    call(m_http->context(), m_daemon.metrics(), session, exchange, operation, timeout,
        tracer(m_trace, *request, *session), [exchange, session, operation, wantJson](RpcOutcome o) {
            auto device = deviceLabel(*session);
            if (answeredFailure(exchange, o, device)) {
                return;
            }
            if (!wantJson) {
                exchange->respond(okResponse(std::move(o.reply), kXml));
                return;
            }
            std::optional<std::string> converted;
            {
                ContextUse ctx(*session);
                converted = replyToJson(ctx.get(), operation, o.reply);
            }
            if (!converted) {
                exchange->respond(error(Status::bad_gateway, "unparseable-reply",
                    device + ": the reply does not match the device's schemas; ask for XML", { { "reply", o.reply } }));
                return;
            }
            exchange->respond(okResponse(std::move(*converted) + "\n", kYangJson));
        });
}

void ControlApi::data(const RequestPtr& request, const ExchangePtr& exchange, const SessionPtr& session)
{
    auto datastore
        = oneOf(*request, "datastore", { "running", "candidate", "startup", "operational" }, std::string("running"));
    auto xpath = request->param("xpath");
    auto subtree = request->param("subtree");
    if (xpath && subtree) {
        throw BadRequest("bad-request", "give xpath or subtree, not both");
    }
    std::string filter;
    if (xpath) {
        ContextUse ctx(*session);
        auto f = xpathFilter(ctx.get(), *xpath);
        filter = "<filter type=\"xpath\" select=\"" + netconf::xmlEscape(f.select) + "\"" + f.namespaces + "/>";
    } else if (subtree) {
        filter = "<filter type=\"subtree\">" + elements(*subtree, "the subtree filter") + "</filter>";
    }
    std::string operation = datastore == "operational"
        ? "<get>" + filter + "</get>"
        : "<get-config><source><" + datastore + "/></source>" + filter + "</get-config>";
    bool wantXml = request->accepts(kXml) && !request->accepts(kYangJson);
    auto timeout = timeoutOf(*request, m_settings.rpcTimeout);
    call(m_http->context(), m_daemon.metrics(), session, exchange, operation, timeout,
        tracer(m_trace, *request, *session), [exchange, session, wantXml](RpcOutcome o) {
            auto device = deviceLabel(*session);
            if (answeredFailure(exchange, o, device)) {
                return;
            }
            auto content = replyData(o.reply);
            if (!content) {
                exchange->respond(error(Status::bad_gateway, "unparseable-reply", device + ": the reply has no <data>",
                    { { "reply", o.reply } }));
                return;
            }
            if (wantXml) {
                exchange->respond(okResponse(
                    "<data xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\">" + *content + "</data>\n", kXml));
                return;
            }
            try {
                ContextUse ctx(*session);
                exchange->respond(okResponse(dataToJson(ctx.get(), *content) + "\n", kYangJson));
            } catch (const std::exception& e) {
                exchange->respond(error(
                    Status::bad_gateway, "unparseable-reply", device + ": " + e.what(), { { "reply", o.reply } }));
            }
        });
}

namespace {
/** The steps of one /edit request, run one after the other; on a failure the lock is given back. */
struct EditSequence : std::enable_shared_from_this<EditSequence> {
    net::io_context* io;
    server::Metrics* metrics;
    std::shared_ptr<const server::LiveSession> session;
    std::shared_ptr<Exchange> exchange;
    std::chrono::milliseconds timeout;
    Tracer trace; ///< every step (and the clean-up after a failed one) is one trace record
    std::string target;
    std::vector<std::pair<std::string, std::string>> steps; ///< name, operation
    size_t next = 0;
    bool locked = false;
    std::vector<std::string> done;

    void run()
    {
        if (next == steps.size()) {
            exchange->respond(jsonResponse({ { "ok", true }, { "target", target }, { "steps", done } }));
            return;
        }
        auto [name, operation] = steps[next++];
        call(*io, *metrics, session, exchange, operation, timeout, trace,
            [self = shared_from_this(), name](RpcOutcome o) { self->answered(name, std::move(o)); });
    }

    void answered(const std::string& name, RpcOutcome o)
    {
        auto device = deviceLabel(*session);
        std::optional<Response> failed;
        if (o.kind != RpcOutcome::Kind::Reply) {
            failed = failure(o, device);
        } else if (auto e = rpcErrorResponse(o.reply, device, name)) {
            failed = std::move(e);
        }
        if (!failed) {
            done.push_back(name);
            if (name == "lock") {
                locked = true;
            } else if (name == "unlock") {
                locked = false;
            }
            run();
            return;
        }
        if (locked && o.kind == RpcOutcome::Kind::Reply) {
            // Give the datastore back: drop a half-made candidate, then unlock; the answer is the first failure.
            std::string cleanup = target == "candidate" ? "<discard-changes/>" : "";
            auto unlock = "<unlock><target><" + target + "/></target></unlock>";
            auto response = std::make_shared<Response>(std::move(*failed));
            auto finish = [exchange = exchange, response](RpcOutcome) { exchange->respond(std::move(*response)); };
            if (!cleanup.empty()) {
                auto self = shared_from_this();
                call(*io, *metrics, session, exchange, cleanup, timeout, trace, [self, unlock, finish](RpcOutcome) {
                    call(*self->io, *self->metrics, self->session, self->exchange, unlock, self->timeout, self->trace,
                        finish);
                });
            } else {
                call(*io, *metrics, session, exchange, unlock, timeout, trace, finish);
            }
            return;
        }
        exchange->respond(std::move(*failed));
    }
};
} // namespace

void ControlApi::edit(const RequestPtr& request, const ExchangePtr& exchange, const SessionPtr& session)
{
    auto target = oneOf(*request, "target", { "running", "candidate" }, std::string("running"));
    auto defaultOperation = request->param("default-operation");
    if (defaultOperation) {
        oneOf(*request, "default-operation", { "merge", "replace", "none" }, {});
    }
    auto testOption = request->param("test-option");
    if (testOption) {
        oneOf(*request, "test-option", { "test-then-set", "set", "test-only" }, {});
    }
    auto errorOption = request->param("error-option");
    if (errorOption) {
        oneOf(*request, "error-option", { "stop-on-error", "continue-on-error", "rollback-on-error" }, {});
    }
    bool commit = flag(*request, "commit").value_or(false);
    bool lock = flag(*request, "lock").value_or(false);
    if (commit && target != "candidate") {
        throw BadRequest("bad-request", "commit=true needs target=candidate");
    }
    const auto& body = request->message.body();
    auto contentType = std::string(request->message[http::field::content_type]);
    auto first = body.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) {
        throw BadRequest(
            "bad-request", "the body must be the configuration: XML (the content of <config>) or RFC 7951 JSON");
    }
    std::string config;
    if (contentType.find("json") != std::string::npos || (contentType.empty() && body[first] == '{')) {
        ContextUse ctx(*session);
        config = jsonToXml(ctx.get(), body);
    } else {
        config = elements(body, "the configuration");
    }
    std::string editOp = "<edit-config><target><" + target + "/></target>";
    if (defaultOperation) {
        editOp += "<default-operation>" + *defaultOperation + "</default-operation>";
    }
    if (testOption) {
        editOp += "<test-option>" + *testOption + "</test-option>";
    }
    if (errorOption) {
        editOp += "<error-option>" + *errorOption + "</error-option>";
    }
    editOp += "<config>" + config + "</config></edit-config>";

    auto seq = std::make_shared<EditSequence>();
    seq->io = &m_http->context();
    seq->metrics = &m_daemon.metrics();
    seq->session = session;
    seq->exchange = exchange;
    seq->timeout = timeoutOf(*request, m_settings.rpcTimeout);
    seq->trace = tracer(m_trace, *request, *session);
    seq->target = target;
    if (lock) {
        seq->steps.emplace_back("lock", "<lock><target><" + target + "/></target></lock>");
    }
    seq->steps.emplace_back("edit-config", editOp);
    if (commit) {
        seq->steps.emplace_back("commit", "<commit/>");
    }
    if (lock) {
        seq->steps.emplace_back("unlock", "<unlock><target><" + target + "/></target></unlock>");
    }
    seq->run();
}

void ControlApi::staged(const RequestPtr& request, const ExchangePtr& exchange, const std::optional<std::string>& ref,
    const std::optional<std::string>& idText, const std::string& action)
{
    std::optional<int64_t> id;
    if (idText) {
        if (!allDigits(*idText)) {
            throw BadRequest("bad-request", "a staged edit's id is a number, not '" + *idText + "'");
        }
        id = std::stoll(*idText);
    }
    inventory::StagedRequest stage;
    if (action == "stage") {
        stage.target = oneOf(*request, "target", { "running", "candidate" }, std::string("running"));
        stage.commit = flag(*request, "commit").value_or(false);
        if (stage.commit && stage.target != "candidate") {
            throw BadRequest("bad-request", "commit=true needs target=candidate");
        }
        const auto& body = request->message.body();
        auto first = body.find_first_not_of(" \t\r\n");
        if (first == std::string::npos) {
            throw BadRequest(
                "bad-request", "the body must be the configuration: XML (the content of <config>) or RFC 7951 JSON");
        }
        auto contentType = std::string(request->message[http::field::content_type]);
        auto detected = contentType.find("json") != std::string::npos
                || (contentType.find("xml") == std::string::npos && body[first] == '{')
            ? "json"
            : "xml";
        stage.format = oneOf(*request, "format", { "xml", "json" }, detected);
        // Checked now, stored as given: JSON becomes XML with the device's schemas when it is applied.
        if (stage.format == "json") {
            auto doc = json::parse(body, nullptr, false);
            if (doc.is_discarded() || !doc.is_object()) {
                throw BadRequest("bad-json", "the staged configuration must be one JSON object (RFC 7951)");
            }
        } else {
            elements(body, "the staged configuration");
        }
        stage.content = body;
    }
    auto actor = request->peer.actor();
    auto who = request->peer.describe();
    auto* applier = m_staged.get();
    onInventory(exchange, [exchange, ref, id, action, stage, actor, who, applier](inventory::Inventory& inv) {
        inv.setActor(actor);
        auto listJson = [](const std::vector<inventory::StagedEdit>& list) {
            auto out = json::array();
            for (const auto& e : list) {
                out.push_back(cli::toJson(e));
            }
            return json { { "staged", out } };
        };
        try {
            if (action == "list") {
                std::optional<int64_t> deviceId;
                if (ref) {
                    deviceId = inv.resolve(*ref).id;
                }
                exchange->respond(jsonResponse(listJson(inv.stagedEdits(deviceId, false))));
            } else if (action == "stage") {
                auto d = inv.resolve(*ref);
                auto e = inv.stage(d.id, stage);
                log::get(log::Main)->info(
                    "control API: {} staged edit #{} for #{} ({})", who, e.id, d.id, d.name.value_or("unnamed"));
                applier->poke();
                exchange->respond(jsonResponse(cli::toJson(e), Status::created));
            } else if (action == "show") {
                exchange->respond(jsonResponse(cli::toJson(inv.stagedEdit(*id))));
            } else if (action == "unstage") {
                exchange->respond(jsonResponse(cli::toJson(inv.unstage(*id))));
            } else {
                auto e = inv.retryStaged(*id);
                applier->poke();
                exchange->respond(jsonResponse(cli::toJson(e)));
            }
        } catch (const inventory::NotFound& e) {
            exchange->respond(error(Status::not_found, ref ? "unknown-device" : "unknown-staged", e.what()));
        }
    });
}

void ControlApi::notifications(const RequestPtr& request, const ExchangePtr& exchange, const SessionPtr& session)
{
    auto stream = request->param("stream").value_or("NETCONF");
    bool xml = oneOf(*request, "format", { "json", "xml" }, std::string("json")) == "xml";
    if (!takeStream()) {
        exchange->respond(error(Status::service_unavailable, "busy",
            "too many streams open (control/max-streams " + std::to_string(m_settings.maxStreams) + ")"));
        return;
    }
    auto trace = tracer(m_trace, *request, *session);
    trace.base.operation = "create-subscription";
    auto sink = std::make_shared<NotificationStream>(
        exchange, session, xml, m_http->context(), m_settings.streamBuffer, streamReleaser(), std::move(trace), stream);
    std::weak_ptr<NotificationStream> weak = sink;
    auto channel = session->channel;
    exchange->onGone([weak, channel] {
        if (auto s = weak.lock()) {
            channel.unfollow(s);
        }
    });
    channel.follow(std::move(sink), stream);
}

void ControlApi::close(const RequestPtr& request, const ExchangePtr& exchange, const SessionPtr& session)
{
    session->close("closed through the control API by " + request->peer.describe());
    // The session's end is in the event log (session-closed); the trace records who asked for it.
    auto trace = tracer(m_trace, *request, *session);
    trace.base.operation = "close-session";
    trace.base.answeredAt = now();
    trace.base.outcome = "ok";
    trace.base.detail = "requested: callhomed sends <close-session> and ends the session";
    m_trace->record(std::move(trace.base));
    exchange->respond(jsonResponse({ { "closed", true }, { "device", session->deviceName },
        { "device_id", session->deviceId }, { "connection_id", session->connectionId } }));
}

bool ControlApi::takeStream()
{
    if (m_streams->fetch_add(1) >= m_settings.maxStreams) {
        m_streams->fetch_sub(1);
        return false;
    }
    return true;
}

std::function<void()> ControlApi::streamReleaser() const
{
    return [streams = m_streams] { streams->fetch_sub(1); };
}

void ControlApi::events(const RequestPtr& request, const ExchangePtr& exchange)
{
    bool follow = flag(*request, "follow").value_or(false);
    auto after = number(*request, "after", 0, INT64_MAX);
    auto limit = number(*request, "limit", 1, INT64_MAX);
    auto deviceRef = request->param("device");
    if (!follow) {
        onInventory(exchange, [exchange, after, limit, deviceRef](inventory::Inventory& inv) {
            inventory::EventFilter filter;
            if (deviceRef) {
                filter.deviceId = inv.resolve(*deviceRef).id;
            }
            filter.afterId = after;
            filter.limit = limit;
            auto list = json::array();
            for (const auto& e : inv.events(filter)) {
                list.push_back(cli::toJson(e));
            }
            exchange->respond(jsonResponse({ { "events", list } }));
        });
        return;
    }
    if (!takeStream()) {
        exchange->respond(error(Status::service_unavailable, "busy",
            "too many streams open (control/max-streams " + std::to_string(m_settings.maxStreams) + ")"));
        return;
    }
    onInventory(exchange, [this, exchange, after, deviceRef](inventory::Inventory& inv) {
        auto follower = std::make_shared<EventFollower>();
        follower->exchange = exchange;
        try {
            if (deviceRef) {
                follower->deviceId = inv.resolve(*deviceRef).id;
            }
        } catch (...) {
            streamReleaser()();
            throw;
        }
        exchange->startStream(kLines);
        if (after) {
            // Catch up from `after` (on this thread, where the live poll runs too: nothing is missed or repeated).
            follower->lastId = *after;
            for (;;) {
                inventory::EventFilter filter { .deviceId = follower->deviceId,
                    .limit = static_cast<int64_t>(kEventBatch),
                    .afterId = follower->lastId };
                auto batch = inv.events(filter);
                std::string chunk;
                for (const auto& e : batch) {
                    chunk += cli::toJson(e).dump() + "\n";
                    follower->lastId = e.id;
                }
                if (!chunk.empty()) {
                    exchange->waitWritable(std::chrono::seconds(10));
                    exchange->write(std::move(chunk));
                }
                if (batch.size() < kEventBatch) {
                    break;
                }
            }
        } else {
            auto newest = inv.events(inventory::EventFilter { .limit = 1 });
            follower->lastId = newest.empty() ? 0 : newest.back().id;
        }
        exchange->onGone(streamReleaser());
        std::lock_guard lock(m_followMutex);
        m_followers.push_back(follower);
        m_followWake.notify_all();
    });
}

namespace {
/**
 * One poll for the followers of an append-only log (events, trace): reads the records after the oldest position
 * any follower has, a batch at a time (`fetch(afterId)`), and writes each follower those after its own position
 * that it wants, one chunk per batch. A follower that falls behind is dropped by its exchange, never waited for.
 */
template<typename Follower, typename Fetch>
void feedFollowers(const std::vector<std::shared_ptr<Follower>>& followers, Fetch&& fetch)
{
    int64_t from = INT64_MAX;
    for (const auto& f : followers) {
        from = std::min(from, f->lastId);
    }
    for (;;) {
        auto batch = fetch(from);
        for (const auto& f : followers) {
            std::string chunk;
            for (const auto& record : batch) {
                if (record.id > f->lastId && f->matches(record)) {
                    chunk += cli::toJson(record).dump() + "\n";
                }
                f->lastId = std::max(f->lastId, record.id);
            }
            if (!chunk.empty()) {
                f->exchange->write(std::move(chunk));
            }
        }
        if (batch.size() < kEventBatch) {
            break;
        }
        from = batch.back().id;
    }
}
} // namespace

void ControlApi::pollEvents()
{
    std::vector<std::shared_ptr<EventFollower>> followers;
    {
        std::lock_guard lock(m_followMutex);
        m_pollQueued = false;
        std::erase_if(m_followers, [](const auto& f) { return f->exchange->gone(); });
        followers = m_followers;
    }
    if (followers.empty()) {
        return;
    }
    try {
        feedFollowers(followers, [&](int64_t after) {
            return m_inventory->events(
                inventory::EventFilter { .limit = static_cast<int64_t>(kEventBatch), .afterId = after });
        });
    } catch (const std::exception& e) {
        log::get(log::Inventory)->warn("control API: reading events for followers: {}", e.what());
    }
}

void ControlApi::trace(const RequestPtr& request, const ExchangePtr& exchange)
{
    bool follow = flag(*request, "follow").value_or(false);
    inventory::TraceFilter filter;
    filter.afterId = number(*request, "after", 0, INT64_MAX);
    filter.limit = number(*request, "limit", 1, INT64_MAX);
    filter.client = request->param("client");
    filter.traceId = request->param("trace_id");
    if (auto since = request->param("since")) {
        filter.since = parseTime(*since, now());
        if (!filter.since) {
            throw BadRequest("bad-request",
                "query parameter since must be YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS]Z or relative (15m, 2h, 7d), not '"
                    + *since + "'");
        }
    }
    auto deviceRef = request->param("device");
    if (!follow) {
        onInventory(exchange, [exchange, filter, deviceRef](inventory::Inventory& inv) mutable {
            if (deviceRef) {
                filter.deviceId = inv.resolve(*deviceRef).id;
            }
            // Streamed as read, like the device listing: a day of records costs constant memory here.
            exchange->startStream(kJson);
            std::string chunk = "{\"trace\": [";
            bool first = true;
            inv.forEachTrace(filter, [&](const inventory::TraceRecord& r) {
                chunk += (first ? "\n" : ",\n") + cli::toJson(r).dump();
                first = false;
                if (chunk.size() > 65536) {
                    if (!exchange->waitWritable(std::chrono::seconds(30))) {
                        throw Error("the client stopped reading");
                    }
                    exchange->write(std::move(chunk));
                    chunk.clear();
                }
            });
            chunk += "\n]}\n";
            exchange->write(std::move(chunk));
            exchange->endStream();
        });
        return;
    }
    if (!takeStream()) {
        exchange->respond(error(Status::service_unavailable, "busy",
            "too many streams open (control/max-streams " + std::to_string(m_settings.maxStreams) + ")"));
        return;
    }
    onInventory(exchange, [this, exchange, filter, deviceRef](inventory::Inventory& inv) {
        auto follower = std::make_shared<TraceFollower>();
        follower->exchange = exchange;
        follower->filter = filter;
        try {
            if (deviceRef) {
                follower->filter.deviceId = inv.resolve(*deviceRef).id;
            }
        } catch (...) {
            streamReleaser()();
            throw;
        }
        exchange->startStream(kLines);
        if (filter.afterId || filter.since) {
            // Catch up (on this thread, where the live poll runs too: nothing is missed or repeated).
            auto catchUp = follower->filter;
            catchUp.afterId = filter.afterId.value_or(0);
            for (;;) {
                catchUp.limit = static_cast<int64_t>(kEventBatch);
                auto batch = inv.trace(catchUp);
                std::string chunk;
                for (const auto& r : batch) {
                    chunk += cli::toJson(r).dump() + "\n";
                    catchUp.afterId = r.id;
                }
                if (!chunk.empty()) {
                    exchange->waitWritable(std::chrono::seconds(10));
                    exchange->write(std::move(chunk));
                }
                if (batch.size() < kEventBatch) {
                    break;
                }
            }
            // Everything up to the newest record was looked at, matching or not.
            auto newest = inv.trace(inventory::TraceFilter { .limit = 1 });
            follower->lastId = std::max(*catchUp.afterId, newest.empty() ? int64_t { 0 } : newest.back().id);
        } else {
            auto newest = inv.trace(inventory::TraceFilter { .limit = 1 });
            follower->lastId = newest.empty() ? 0 : newest.back().id;
        }
        exchange->onGone(streamReleaser());
        std::lock_guard lock(m_followMutex);
        m_traceFollowers.push_back(follower);
        m_followWake.notify_all();
    });
}

void ControlApi::pollTrace()
{
    std::vector<std::shared_ptr<TraceFollower>> followers;
    {
        std::lock_guard lock(m_followMutex);
        m_tracePollQueued = false;
        std::erase_if(m_traceFollowers, [](const auto& f) { return f->exchange->gone(); });
        followers = m_traceFollowers;
    }
    if (followers.empty()) {
        return;
    }
    try {
        feedFollowers(followers, [&](int64_t after) {
            return m_inventory->trace(
                inventory::TraceFilter { .afterId = after, .limit = static_cast<int64_t>(kEventBatch) });
        });
    } catch (const std::exception& e) {
        log::get(log::Inventory)->warn("control API: reading the trace for followers: {}", e.what());
    }
}

void ControlApi::metrics(const ExchangePtr& exchange)
{
    exchange->respond(okResponse(m_daemon.metricsText(), "text/plain; version=0.0.4"));
}
} // namespace callhome::api
