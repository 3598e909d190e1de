#include "cli/Json.h"
#include "common/Time.h"

namespace callhome::cli {
namespace {
template<typename T, typename F>
nlohmann::json orNull(const std::optional<T>& value, F&& convert)
{
    return value ? nlohmann::json(convert(*value)) : nlohmann::json(nullptr);
}

template<typename T>
nlohmann::json orNull(const std::optional<T>& value)
{
    return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}
} // namespace

nlohmann::json toJson(const inventory::Device& d)
{
    return {
        { "id", d.id },
        { "name", orNull(d.name) },
        { "state", inventory::toString(d.state) },
        { "transport", inventory::toString(d.transport) },
        { "fingerprint", d.fingerprint },
        { "key_type", d.keyType },
        { "ssh_user", orNull(d.sshUser) },
        { "last_address", d.lastAddress },
        // A pre-provisioned device that never called home has not been seen: null, not the epoch.
        { "first_seen", d.attempts > 0 ? nlohmann::json(toIso8601(d.firstSeen)) : nlohmann::json(nullptr) },
        { "last_seen", d.attempts > 0 ? nlohmann::json(toIso8601(d.lastSeen)) : nlohmann::json(nullptr) },
        { "attempts", d.attempts },
        { "same_address_as", orNull(d.sameAddressAs) },
        { "decided_at", orNull(d.decidedAt, toIso8601) },
        { "decided_by", d.decidedBy },
        { "connected", d.connected },
        { "session_start", orNull(d.sessionStart, toIso8601) },
        { "listener_id", orNull(d.listenerId) },
        { "capabilities", d.capabilities },
        { "manufacturer", d.manufacturer },
        { "serial", d.serial },
        { "cert_subject", d.certSubject },
        { "cert_issuer", d.certIssuer },
        // Per-device credentials: whether the device has them, never the secrets.
        { "ssh_password", d.passwordSet ? "set" : "none" },
        { "ssh_key", d.keySet ? "set" : "none" },
        { "password_fallback", d.passwordFallback },
    };
}

nlohmann::json toJson(const inventory::Event& e)
{
    return {
        { "id", e.id },
        { "at", toIso8601(e.at) },
        { "kind", inventory::toString(e.kind) },
        { "device_id", orNull(e.deviceId) },
        { "device_name", e.deviceName },
        { "connection_id", e.connectionId },
        { "address", e.address },
        { "fingerprint", e.fingerprint },
        { "detail", e.detail },
    };
}

nlohmann::json toJson(const inventory::TraceRecord& r)
{
    return {
        { "id", r.id },
        { "received_at", toIso8601(r.receivedAt) },
        { "answered_at", toIso8601(r.answeredAt) },
        { "duration_ms", r.durationMs },
        { "source", r.source },
        { "client", r.client },
        { "client_uid", orNull(r.clientUid) },
        { "client_user", r.clientUser },
        { "client_pid", orNull(r.clientPid) },
        { "client_cert_subject", r.clientCertSubject },
        { "client_cert_fingerprint", r.clientCertFingerprint },
        { "trace_id", r.traceId },
        { "device_id", orNull(r.deviceId) },
        { "device_name", r.deviceName },
        { "connection_id", r.connectionId },
        { "message_id", r.messageId },
        { "operation", r.operation },
        { "datastore", r.datastore },
        { "outcome", r.outcome },
        { "error_tag", r.errorTag },
        { "error_path", r.errorPath },
        { "detail", r.detail },
        { "request_bytes", r.requestBytes },
        { "request_sha256", r.requestSha256 },
    };
}

nlohmann::json toJson(const inventory::StagedEdit& e)
{
    return {
        { "id", e.id },
        { "device_id", e.deviceId },
        { "device", e.deviceName },
        { "created_at", toIso8601(e.createdAt) },
        { "created_by", e.createdBy },
        { "target", e.target },
        { "commit", e.commit },
        { "format", e.format },
        { "state", toString(e.state) },
        { "updated_at", toIso8601(e.updatedAt) },
        { "attempts", e.attempts },
        { "connection_id", e.connectionId },
        { "message_id", e.messageId },
        { "error_tag", e.errorTag },
        { "error_message", e.errorMessage },
        { "detail", e.detail },
        { "content", e.content },
    };
}
} // namespace callhome::cli
