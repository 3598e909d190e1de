#pragma once
#include "common/Error.h"
#include "inventory/Types.h"
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace callhome::inventory {
/** A reference (name, id, fingerprint prefix) matched no device. */
class NotFound : public UsageError {
public:
    using UsageError::UsageError;
};
/** A reference matched more than one device. */
class Ambiguous : public UsageError {
public:
    using UsageError::UsageError;
};
/** The database cannot be used: corrupt, newer schema than this build, not a callhome inventory. */
class DatabaseError : public Error {
public:
    using Error::Error;
};

/** Result of recording a call-home contact by an SSH host key (or, later, a certificate). */
struct Contact {
    Device device; ///< after the update (attempts incremented, last seen/address set)
    bool created = false; ///< first time this identity was seen
};

/**
 * The device inventory: devices, their identities and state, live sessions, and an append-only event log.
 * SQLite (SqliteInventory) is the embedded implementation, PostgreSQL (PostgresInventory) the shared one for several
 * listeners; openInventory() (inventory/Open.h) picks one, and the interface keeps SQL dialect out of callers. All
 * methods are thread-safe.
 */
class Inventory {
public:
    virtual ~Inventory() = default;

    // --- listener side ---
    /**
     * Records that a device with this identity called home from `address`: creates a pending device on first
     * contact (flagging sameAddressAs when a known, non-pending device was last seen at that address), otherwise
     * bumps attempts / last seen / last address. One transaction.
     */
    virtual Contact recordContact(Transport transport, const std::string& fingerprint, const std::string& keyType,
        const std::string& address, TimePoint at)
        = 0;
    /**
     * TLS: records a contact by certificate. A chain verified to a manufacturer anchor is identified by
     * (manufacturer, serial); a self-signed certificate by its fingerprint. A device pre-provisioned with that
     * (manufacturer, serial) becomes approved with decidedBy "pre-provisioned" on its first contact (Contact.created is
     * false then); an unknown identity becomes pending. Known devices get attempts/last seen/address bumped and their
     * fingerprint/subject/issuer updated (certificate renewed). One transaction.
     */
    virtual Contact recordTlsContact(const TlsIdentity& identity, const std::string& address, TimePoint at) = 0;
    /**
     * Pre-provisions devices (approved, decidedBy "pre-provisioned", no contact yet) in one transaction: all or
     * nothing. TLS devices by (manufacturer, serial); SSH devices by host-key fingerprint, optionally with key type
     * and SSH user: such a key is accepted on its first call home exactly like an approved one (recordContact).
     * An identity already known is an ExpectError (inventory/ExpectError.h, a UsageError) naming it and its 1-based
     * position in `devices`, unless it is already approved with the same name (and, for SSH, the same user or none
     * given): an idempotent re-import.
     */
    virtual ExpectResult expectAll(const std::vector<ExpectedDevice>& devices) = 0;
    /** expectAll() returning only the devices. */
    std::vector<Device> expect(const std::vector<ExpectedDevice>& devices) { return expectAll(devices).devices; }
    /** Registers a listener instance (unique id) and drops any sessions an earlier instance with that id left. */
    virtual void listenerStarted(const std::string& listenerId, TimePoint at) = 0;
    /** Liveness beat; sessions of a listener whose beat is older than the staleness window show as disconnected. */
    virtual void heartbeat(const std::string& listenerId, TimePoint at) = 0;
    /**
     * Makes this process the only one running listener `listenerId` on this inventory, for as long as this object
     * lives (a crash ends it too): a second callhomed with the same listener id would silently drop the first one's
     * sessions. SQLite: a flock()ed file INVENTORY.listener-ID.lock next to the database; PostgreSQL: a session-level
     * advisory lock on a connection of its own. Throws UsageError naming the holder when another process has it.
     */
    virtual void lockListener(const std::string& listenerId) = 0;
    /** Clean shutdown: removes the listener and its sessions. */
    virtual void listenerStopped(const std::string& listenerId) = 0;
    // --- several instances on one inventory (schemas/sql/0009-instances.sql) ---
    /**
     * Records where this listener's control API can be reached by the other instances ("HOST:PORT", empty: nowhere),
     * after listenerStarted(). A heartbeat keeps it.
     */
    virtual void setControlEndpoint(const std::string& listenerId, const std::string& endpoint) = 0;
    /** Every registered listener, ordered by id, with whether its heartbeat is fresh. */
    virtual std::vector<ListenerInfo> listeners() = 0;
    /** A NETCONF session is up: stores the hello capabilities and marks the device connected via this listener. */
    virtual void sessionOpened(
        int64_t deviceId, const std::string& listenerId, TimePoint start, const std::vector<std::string>& capabilities)
        = 0;
    virtual void sessionClosed(int64_t deviceId, const std::string& listenerId) = 0;
    virtual void addEvent(const Event& event) = 0;
    /**
     * Admission control blocked `source` (a callhome::sourceKey) from `since` to `until`: stores the block (replacing
     * an earlier one of that source) and appends a `blocked` event, in one transaction. Rows of blocks that have
     * ended are deleted on the way, so the table holds only current blocks and those that ended since.
     */
    virtual void blockSource(
        const std::string& source, TimePoint since, TimePoint until, const std::string& reason, int64_t failures)
        = 0;
    /** Changes whenever any connection (this process or another) commits a write; cheap to poll. */
    virtual uint64_t changeCounter() = 0;
    /**
     * Runs `ops` as one write transaction: every call it makes to this inventory on this thread joins it, each in a
     * savepoint of its own, so that a call that throws is undone alone (the exception reaches `ops`, which may catch
     * it and go on). Commits when `ops` returns; rolls everything back and rethrows when it throws or the commit
     * fails (e.g. DatabaseError when another process holds the write lock beyond the busy timeout).
     */
    virtual void writeBatch(const std::function<void()>& ops) = 0;
    /** The change log after `seq` (oldest first, at most `limit` rows): which devices changed, not how. */
    virtual std::vector<DeviceChange> changesAfter(int64_t seq, int64_t limit) = 0;
    /** The newest change log position (0 when empty); a reader that loads everything starts from here. */
    virtual int64_t lastChange() = 0;
    /** The oldest change log position still kept (0 when empty): a reader behind it must reload everything. */
    virtual int64_t firstChange() = 0;
    /** Deletes change log rows older than `before` (the daemon, periodically). */
    virtual void pruneChanges(TimePoint before) = 0;
    /**
     * Event retention: deletes the events older than `before` (which must be at least an hour ago; the schema's
     * triggers refuse any other deletion) and appends one `events-pruned` event saying how many, in one transaction.
     * Returns how many were deleted (0: nothing written).
     */
    virtual int64_t pruneEvents(TimePoint before) = 0;
    /** The time of the `keep`-th newest event, if there are more than `keep` (retention by row count). */
    virtual std::optional<TimePoint> eventTimeKeeping(int64_t keep) = 0;

    // --- lookups ---
    virtual std::optional<Device> findByFingerprint(const std::string& fingerprint) = 0;
    virtual std::optional<Device> findById(int64_t id) = 0;
    /** Every device, ordered by id. */
    virtual std::vector<Device> devices() = 0;
    /**
     * Calls `fn` for each device the filter selects, ordered by id, as it reads them: constant memory whatever the
     * number of devices. The inventory is locked meanwhile: `fn` must not call this inventory. An exception from
     * `fn` ends the listing and propagates.
     */
    virtual void forEachDevice(const DeviceFilter& filter, const std::function<void(const Device&)>& fn) = 0;
    /**
     * Resolves an operator's reference: exact name, numeric id, exact fingerprint, exact serial number or
     * MANUFACTURER/SERIAL, or an unambiguous fingerprint prefix (with or without "SHA256:", hex case-insensitive).
     * Throws NotFound / Ambiguous with a message naming the candidates.
     */
    virtual Device resolve(const std::string& reference) = 0;
    virtual std::vector<Event> events(const EventFilter& filter) = 0;
    /** Like events(), streaming: `fn` per event, oldest first, under the inventory's lock (see forEachDevice). */
    virtual void forEachEvent(const EventFilter& filter, const std::function<void(const Event&)>& fn) = 0;
    /**
     * SQLite: runs PRAGMA quick_check (and a foreign-key check) over the whole file: its cost grows with the file,
     * so openSqlite() runs it, openSqliteExisting() does not. PostgreSQL (which keeps its pages and foreign keys
     * consistent itself): a cheap consistency query over what the schema cannot state (the schema marker and
     * version, capability sets and their hashes). Returns the problems found, empty when all is well.
     */
    virtual std::vector<std::string> checkIntegrity() = 0;
    /** The sources blocked at `now` (until > now), ordered by source. */
    virtual std::vector<BlockedSource> blockedSources(TimePoint now) = 0;

    // --- the operation trace (append-only; schemas/sql/0005-trace.sql) ---
    /** Appends trace records in one transaction (a writer batches what it has queued). */
    virtual void addTrace(const std::vector<TraceRecord>& records) = 0;
    /** `fn` per record the filter selects, oldest first (by id), under the inventory's lock (see forEachDevice). */
    virtual void forEachTrace(const TraceFilter& filter, const std::function<void(const TraceRecord&)>& fn) = 0;
    std::vector<TraceRecord> trace(const TraceFilter& filter)
    {
        std::vector<TraceRecord> out;
        forEachTrace(filter, [&](const TraceRecord& r) { out.push_back(r); });
        return out;
    }
    /**
     * Retention: deletes the trace records received before `olderThan`, in one transaction (the only deletion the
     * append-only triggers allow). Returns how many it deleted.
     */
    virtual int64_t pruneTrace(TimePoint olderThan) = 0;

    /**
     * Who the operator actions of this connection are attributed to (devices' decided_by, and "by WHO" in the
     * events' detail): callhomectl's user, or the control API's client. "operator" until set.
     */
    virtual void setActor(const std::string& actor) = 0;

    // --- operator actions; each appends an event; all throw UsageError on an invalid transition ---
    /** pending|rejected|revoked → approved; name required unless already named; unique names. */
    virtual Device approve(
        int64_t deviceId, const std::optional<std::string>& name, const std::optional<std::string>& sshUser)
        = 0;
    virtual Device reject(int64_t deviceId) = 0; ///< pending → rejected (or approved → rejected)
    virtual Device revoke(int64_t deviceId) = 0; ///< approved → revoked
    virtual void forget(int64_t deviceId) = 0; ///< deletes the device; its events keep name/fingerprint text
    virtual Device rename(int64_t deviceId, const std::string& newName) = 0;
    /**
     * Moves known device `deviceId` to the identity of pending device `pendingId` (re-imaged/replaced device):
     * the device keeps id, name, user and state approved; its old fingerprint is retired; the pending row is removed.
     */
    virtual Device rekey(int64_t deviceId, int64_t pendingId) = 0;
    /**
     * Lifts the block of `source` (exact source key) now: deletes it and appends an `unblocked` event naming
     * `decidedBy` ("operator"), in one transaction; a running callhomed follows via changeCounter(). Returns false,
     * changing nothing, when the source is not blocked (never was, or its block has ended).
     */
    virtual bool unblockSource(const std::string& source, const std::string& decidedBy) = 0;
    /**
     * Applies one decision to every device `filter` selects for which it is a change (approve: not approved yet;
     * reject: pending or approved; revoke: approved; forget: any), in one transaction: all or nothing, one event per
     * device, as the single-device actions do. Returns how many devices it changed (or would, with dryRun).
     */
    virtual int64_t decideAll(const DeviceFilter& filter, const BulkDecision& decision) = 0;

    // --- staged configuration (schemas/sql/0006-staged.sql); operator actions append an event each ---
    /**
     * Queues an <edit-config> for the device (any state: pending and expected devices get theirs after approval and
     * their first session), attributed to the actor. The content is stored as given; callers check its syntax (XML
     * elements, or a JSON object). UsageError for a bad target/format, commit without candidate, empty or over-long
     * content.
     */
    virtual StagedEdit stage(int64_t deviceId, const StagedRequest& request) = 0;
    /** The items of one device, or of all (nullopt), in queue order (by id); dropped ones only with `withDropped`. */
    virtual std::vector<StagedEdit> stagedEdits(std::optional<int64_t> deviceId, bool withDropped) = 0;
    /** One item; NotFound when there is none with this id. */
    virtual StagedEdit stagedEdit(int64_t id) = 0;
    /** queued|failed → dropped (kept for the record, never applied). UsageError otherwise (applying, applied). */
    virtual StagedEdit unstage(int64_t id) = 0;
    /** failed → queued: callhomed applies it again (and the queue behind it) on the device's session. */
    virtual StagedEdit retryStaged(int64_t id) = 0;
    /** The devices whose queue can move: the first open item (queued, applying or failed) is queued. */
    virtual std::vector<int64_t> devicesWithStaged() = 0;
    /** The device's first open item (queued, applying or failed), if any: what its queue does next. */
    virtual std::optional<StagedEdit> nextStaged(int64_t deviceId) = 0;
    /** callhomed: queued → applying (attempts + 1); false, changing nothing, when it is no longer queued. */
    virtual bool markStagedApplying(int64_t id, const std::string& connectionId) = 0;
    /**
     * callhomed: applying → result.state (applied, failed, or queued again when the session ended before the reply),
     * with the result's fields and, for applied and failed, a staged-applied / staged-failed event.
     */
    virtual void finishStaged(int64_t id, const StagedResult& result) = 0;
    /** callhomed at start: items left applying by a previous run go back to queued; returns how many. */
    virtual int64_t requeueApplying() = 0;
    /**
     * Changes the non-secret part of a device's credentials (user, which secrets it has, password fallback) and
     * appends a `credentials-changed` event saying what changed, never a secret. The secrets themselves go to the
     * CredentialStore, written before this (set) or after it (clear). Returns the device as it is now.
     */
    virtual Device setCredentials(int64_t deviceId, const CredentialsUpdate& update) = 0;
};

/**
 * Opens (creating and migrating as needed) the SQLite inventory at `path`, for callhomed: a new file is created
 * mode 0600 whatever the umask (SQLite gives its -wal and -shm files the same mode); an existing one that others
 * may access loses those permissions (with a warning). Runs the integrity check. Throws DatabaseError.
 */
std::unique_ptr<Inventory> openSqlite(const std::string& path);
/**
 * Opens an existing SQLite inventory without creating it or changing its schema (for readers and callhomectl).
 * Checks the header and schema version only, not the whole file (checkIntegrity() does), so it costs the same for
 * any inventory size.
 */
std::unique_ptr<Inventory> openSqliteExisting(const std::string& path);
/**
 * Makes the inventory files (the database, and its -wal and -shm while a connection has them open) mode 0640 and
 * owned by `group`, so that its members can read the inventory (callhomectl, scripts) and nobody else. Throws
 * DatabaseError naming the group or the file.
 */
void shareWithGroup(const std::string& path, const std::string& group);
} // namespace callhome::inventory
