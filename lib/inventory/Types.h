#pragma once
#include "common/Time.h"
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace callhome::inventory {
/** What the operator (or pre-provisioning) decided about a device's current identity. */
enum class DeviceState { Pending, Approved, Rejected, Revoked };
/** How the device calls home. */
enum class Transport { Ssh, Tls };

std::string toString(DeviceState s);
std::string toString(Transport t);
/** Throws UsageError on an unknown name (e.g. a corrupt database row). */
DeviceState deviceStateFromString(const std::string& s);
Transport transportFromString(const std::string& s);

/** One managed (or candidate) device and its current identity. */
struct Device {
    int64_t id = 0;
    std::optional<std::string> name; ///< operator-given, unique; pending devices have none
    DeviceState state = DeviceState::Pending;
    Transport transport = Transport::Ssh;
    std::string fingerprint; ///< SSH: "SHA256:<base64 no padding>" of the host key, as ssh-keygen -l -E sha256
    std::string keyType; ///< SSH: "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa", ...
    std::optional<std::string> sshUser; ///< user to authenticate as; nullopt = the config's default
    std::string lastAddress; ///< "192.0.2.7" or "2001:db8::1" (no port)
    TimePoint firstSeen; ///< the epoch while attempts == 0 (pre-provisioned, never called home)
    TimePoint lastSeen;
    int64_t attempts = 0; ///< call-home attempts with this identity
    /// set on a new pending key that arrived from the last address of another known device
    /// (re-imaged/replaced/impostor)
    std::optional<int64_t> sameAddressAs;
    std::optional<std::string> sameAddressAsName; ///< that device's name, when it still exists and has one
    std::optional<TimePoint> decidedAt; ///< when state last changed by a decision
    std::string decidedBy; ///< "operator" or "pre-provisioned"; empty while pending
    // live status, computed from the sessions of listeners that are alive (heartbeat not stale)
    bool connected = false;
    std::optional<TimePoint> sessionStart;
    /// the instance (listener id) holding that session: with several instances on one inventory, which one
    std::optional<std::string> listenerId;
    std::vector<std::string> capabilities; ///< from the device's last <hello>
    /// the inventory's id of that list (0: none, or not known): within one listing, equal ids mean equal lists
    int64_t capabilitySet = 0;
    // TLS identity (empty for SSH devices)
    std::string manufacturer; ///< trust-store manufacturer name whose anchor verified the chain; empty when pinned
    std::string serial; ///< IEEE 802.1AR serial number read from the certificate
    std::string certSubject; ///< RFC 2253 subject of the leaf certificate last presented
    std::string certIssuer;
    // Per-device SSH credentials (schema version 7): whether the device has its own; the secrets are never here,
    // they live in the credentials store (inventory/CredentialStore.h).
    bool passwordSet = false; ///< a password of its own is in the credentials store
    bool keySet = false; ///< a private key of its own is in the credentials store (used instead of the station key)
    bool passwordFallback = false; ///< the fleet-wide password (config ssh/password) may be offered to it
};

/** What the TLS identity step learnt from a device's verified (or self-signed) certificate. */
struct TlsIdentity {
    std::string manufacturer; ///< empty for a self-signed certificate (identity = fingerprint)
    std::string serial; ///< empty for a self-signed certificate
    std::string fingerprint; ///< "SHA256:AB:CD:..." of the leaf certificate
    std::string subject;
    std::string issuer;
    std::optional<std::string> derivedName; ///< from cert-to-name, used when the device has no name yet and it is free
};

/**
 * One pre-provisioned ("expected") device, e.g. a line of shipping data: a TLS device by (manufacturer, serial), or
 * an SSH device by its host key's fingerprint (then serial and manufacturer stay empty).
 */
struct ExpectedDevice {
    std::string serial;
    std::string manufacturer;
    std::optional<std::string> name;
    std::string fingerprint; ///< SSH: "SHA256:<43 base64 characters>" of the host key; set = an SSH device
    std::string keyType; ///< SSH, may be empty: "ssh-ed25519", ...; recorded on the first call home otherwise
    std::optional<std::string> sshUser; ///< SSH: the user to authenticate as; nullopt = the configured default
};

/** What Inventory::expectAll did: the devices in input order, and how many of them it created. */
struct ExpectResult {
    std::vector<Device> devices; ///< one per input entry (an already expected device as it is)
    std::size_t created = 0; ///< the others were expected already with the same name (idempotent re-import)
};

/** Which devices a listing or a bulk decision covers: every field that is set narrows the selection. */
struct DeviceFilter {
    std::optional<DeviceState> state;
    std::optional<Transport> transport;
    std::optional<bool> connected; ///< a NETCONF session is open on a live listener (or not)
    std::optional<std::string> nameGlob; ///< SQLite GLOB on the name: case-sensitive, *, ?, [...]; unnamed never match
    std::optional<TimePoint> seenSince; ///< last call home at or after this (never-seen expected devices do not match)
    std::optional<int64_t> afterId; ///< paging: only ids greater than this
    std::optional<int64_t> limit; ///< at most this many, lowest ids first
    /// false: Device::capabilities stay empty (a listing that does not show them skips decoding them)
    bool withCapabilities = true;
};

/** A decision applied to every device a DeviceFilter selects (Inventory::decideAll). */
struct BulkDecision {
    enum class Action { Approve, Reject, Revoke, Forget };
    Action action = Action::Approve;
    /** Approve: an unnamed device is named namePrefix + its id ("edge-" → "edge-42"); without it, unnamed fail. */
    std::optional<std::string> namePrefix;
    std::optional<std::string> sshUser; ///< Approve: set this SSH user on every approved device
    bool dryRun = false; ///< only count what would change
};

/** Kinds of event in the append-only log. */
enum class EventKind {
    Pending, ///< unknown identity recorded (or seen again) as pending; connection closed before auth
    Accepted, ///< identity approved; we go on to authenticate
    Refused, ///< rejected/revoked identity, or other refusal; detail = reason
    HandshakeFailed, ///< transport/auth/NETCONF failure; detail = reason
    SessionOpened, ///< NETCONF session established
    SessionClosed, ///< NETCONF session ended; detail = reason
    Approved, ///< operator actions (detail: who/what)
    Rejected,
    Revoked,
    Forgotten,
    Renamed,
    Rekeyed,
    Blocked, ///< a source (address = its key) blocked after repeated failed handshakes; detail = reason and until
    Unblocked, ///< a block lifted by an operator (callhomectl unblock); address = the source key
    RefusedSummary, ///< connections refused by admission control in one interval, counted; detail = the counts
    PendingCapped, ///< new identities not stored in one interval because the pending caps were reached; detail = counts
    EventsPruned, ///< the retention job deleted the events older than a cut-off; detail = how many and the cut-off
    WritesDropped, ///< the daemon's write queue was full: records not written in one interval; detail = the counts
    // staged configuration (schemas/sql/0006-staged.sql); detail names the item ("staged edit #7 ...")
    Staged, ///< an operator staged an edit for the device
    Unstaged, ///< an operator dropped a queued or failed item
    StagedRetried, ///< an operator put a failed item back in the queue
    StagedApplied, ///< callhomed applied an item (connection_id: the session)
    StagedFailed, ///< the device refused an item (its <rpc-error>) or it could not be applied; the queue stops
    CredentialsChanged, ///< an operator set or cleared a device's SSH user, password, key or password fallback
    DuplicateSession, ///< a device with a live session called again; detail = replaced or refused, which connection
    ClonedIdentity, ///< alert: that second connection came from another address than the live one (cloned key?)
    Hook, ///< a hook ended (detail: which, its exit status, signal or timeout, its output), or hooks were dropped
};

/** An operator's change to a device's credentials record (Inventory::setCredentials): every field set is changed. */
struct CredentialsUpdate {
    std::optional<std::string> sshUser;
    std::optional<bool> passwordSet;
    std::optional<bool> keySet;
    std::optional<bool> passwordFallback;
};
std::string toString(EventKind k);
EventKind eventKindFromString(const std::string& s);

struct Event {
    int64_t id = 0; ///< assigned by the inventory
    TimePoint at;
    EventKind kind = EventKind::Pending;
    std::optional<int64_t> deviceId; ///< nulled when the device is forgotten
    std::string deviceName; ///< name at the time of the event (may be empty)
    std::string connectionId; ///< "C42", empty for operator actions
    std::string address; ///< peer address, empty for operator actions
    std::string fingerprint;
    std::string detail;
};

/** One row of the change log: device `deviceId` was created, deleted, or changed state, name, identity or user. */
struct DeviceChange {
    int64_t seq = 0; ///< increasing; a reader keeps the last one it has seen
    int64_t deviceId = 0;
};

/** A source that admission control blocked (RFC 8071 section 9: repeated failed handshakes). */
struct BlockedSource {
    std::string source; ///< callhome::sourceKey(): "192.0.2.7" or "2001:db8:1:2::/64"
    TimePoint since;
    TimePoint until; ///< the block ends here by itself
    std::string reason; ///< "50 failed handshakes within 60 s"
    int64_t failures = 0; ///< failed handshakes counted in the window that led to the block
};

/** Events come oldest first (by time, then id); with afterId in the order they were recorded (by id). */
struct EventFilter {
    std::optional<int64_t> deviceId;
    std::optional<TimePoint> since;
    std::optional<int64_t> limit; ///< newest N (still returned oldest first); with afterId: the first N after it
    std::optional<int64_t> afterId; ///< only events with a greater id (a follower's position in the log)
};

/**
 * One operation sent to a device on a client's behalf (RFC 7922 traceability): who asked, what was done to which
 * device, when and how it ended. Never the request's body: its size and SHA-256 only.
 */
struct TraceRecord {
    int64_t id = 0; ///< assigned by the inventory
    TimePoint receivedAt; ///< when the client's request arrived
    TimePoint answeredAt; ///< when this operation's outcome was known
    int64_t durationMs = 0; ///< from the hand-over to the device's queue to the outcome
    std::string source = "api"; ///< "api"; later "hook", "staged"
    std::string client; ///< "uid 1000 (alice) pid 4242" or "cert CN=nms SHA256:..."
    std::optional<int64_t> clientUid; ///< UNIX socket peer (SO_PEERCRED)
    std::string clientUser; ///< that uid's user name, when it has one
    std::optional<int64_t> clientPid;
    std::string clientCertSubject; ///< TLS client certificate (TCP listener), RFC 2253
    std::string clientCertFingerprint;
    std::string traceId; ///< the client's opaque secondary id (X-Callhome-Trace-Id), may be empty
    std::optional<int64_t> deviceId; ///< nulled when the device is forgotten
    std::string deviceName;
    std::string connectionId; ///< "C42"
    std::string messageId; ///< the NETCONF message-id sent; empty when it never reached the device
    std::string operation; ///< "edit-config", "get-config", "create-subscription", "close-session", ...
    std::string datastore; ///< target or source datastore, empty when the operation has none
    std::string outcome; ///< ok, rpc-error, timeout, transport-error, reply-too-large, refused, cancelled
    std::string errorTag; ///< rpc-error: the first <rpc-error>'s error-tag
    std::string errorPath; ///< and its error-path
    std::string detail; ///< why, for the outcomes that are not ok
    int64_t requestBytes = 0; ///< size of the operation sent (its XML)
    std::string requestSha256; ///< lower-case hex SHA-256 of that XML: equal requests compare equal
};

/** Which trace records a listing covers: every field that is set narrows it. Oldest first (by id). */
struct TraceFilter {
    std::optional<int64_t> deviceId;
    /** A uid (digits), a user name, a certificate subject or fingerprint, or the whole `client` text. */
    std::optional<std::string> client;
    std::optional<TimePoint> since; ///< received at or after
    std::optional<std::string> traceId;
    std::optional<int64_t> afterId; ///< only records with a greater id (a follower's position)
    std::optional<int64_t> limit; ///< the newest N (still oldest first); with afterId: the first N after it
};

// --- staged configuration (schemas/sql/0006-staged.sql) ---
/** queued → applying → applied | failed; failed → queued (retry); queued | failed → dropped (unstage). */
enum class StagedState { Queued, Applying, Applied, Failed, Dropped };
std::string toString(StagedState s);
StagedState stagedStateFromString(const std::string& s);

/** What an operator stages: one <edit-config> for a device. */
struct StagedRequest {
    std::string target = "running"; ///< "running" or "candidate"
    bool commit = false; ///< <commit/> after the edit (candidate only)
    std::string format = "xml"; ///< "xml" (the content of <config>) or "json" (RFC 7951, converted when applied)
    std::string content;
};

/** One staged edit and what became of it. */
struct StagedEdit {
    int64_t id = 0; ///< also its place in the device's queue: lower ids are applied first
    int64_t deviceId = 0;
    std::string deviceName; ///< the device's name now (may be empty)
    TimePoint createdAt;
    std::string createdBy; ///< the actor who staged it
    std::string target;
    bool commit = false;
    std::string format;
    std::string content;
    StagedState state = StagedState::Queued;
    TimePoint updatedAt;
    int64_t attempts = 0; ///< times it was sent to the device
    std::string connectionId; ///< the last attempt's connection
    std::string messageId; ///< the last attempt's <edit-config> message-id
    std::string errorTag; ///< failed: the device's first <rpc-error>'s tag (empty for other failures)
    std::string errorMessage; ///< and its error-message
    std::string detail; ///< why it failed, or how it was applied
};

/** How an attempt to apply an item ended (Inventory::finishStaged). */
struct StagedResult {
    StagedState state = StagedState::Applied; ///< Applied, Failed, or Queued (session ended before the reply)
    std::string connectionId;
    std::string messageId;
    std::string errorTag;
    std::string errorMessage;
    std::string detail;
    std::string address; ///< the session's peer, for the event
};
/** One listener instance on the inventory (several callhomed may share one): Inventory::listeners(). */
struct ListenerInfo {
    std::string id; ///< config listener-id
    TimePoint startedAt;
    TimePoint heartbeatAt;
    bool alive = false; ///< its heartbeat is within the staleness window: its sessions count as held
    std::string controlEndpoint; ///< "HOST:PORT" of its control API for the other instances; empty: none
};
} // namespace callhome::inventory
