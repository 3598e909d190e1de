#pragma once
#include "inventory/Inventory.h"
#include "inventory/Pg.h"
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

namespace callhome::inventory {
/**
 * The PostgreSQL inventory (schemas/pgsql): the same behaviour as SqliteInventory behind the same interface, for
 * several callhomed instances sharing one inventory. One connection serialized by a recursive mutex; every write
 * transaction takes the inventory's write lock (an advisory transaction lock) first, so writers are serialized as
 * SQLite's are and the change log commits in order. A second connection LISTENs on channel callhome_changes, so
 * that changeCounter() moves for any other connection's committed change to a device, a blocked source or a staged
 * edit (schemas/pgsql/README.md).
 */
class PostgresInventory : public Inventory {
public:
    enum class Mode {
        CreateAndMigrate, ///< the daemon: create the schema if the database is empty, apply pending migrations
        ExistingOnly, ///< readers and callhomectl: never migrate
    };
    /** `conninfo`: a libpq URL or keyword string; messages name it redacted (never a password). */
    PostgresInventory(const std::string& conninfo, Mode mode);
    ~PostgresInventory() override;

    Contact recordContact(Transport transport, const std::string& fingerprint, const std::string& keyType,
        const std::string& address, TimePoint at) override;
    Contact recordTlsContact(const TlsIdentity& identity, const std::string& address, TimePoint at) override;
    ExpectResult expectAll(const std::vector<ExpectedDevice>& devices) override;
    void listenerStarted(const std::string& listenerId, TimePoint at) override;
    void heartbeat(const std::string& listenerId, TimePoint at) override;
    void listenerStopped(const std::string& listenerId) override;
    void sessionOpened(int64_t deviceId, const std::string& listenerId, TimePoint start,
        const std::vector<std::string>& capabilities) override;
    void sessionClosed(int64_t deviceId, const std::string& listenerId) override;
    void addEvent(const Event& event) override;
    void blockSource(const std::string& source, TimePoint since, TimePoint until, const std::string& reason,
        int64_t failures) override;
    uint64_t changeCounter() override;
    void writeBatch(const std::function<void()>& ops) override;
    std::vector<DeviceChange> changesAfter(int64_t seq, int64_t limit) override;
    int64_t lastChange() override;
    int64_t firstChange() override;
    void pruneChanges(TimePoint before) override;
    int64_t pruneEvents(TimePoint before) override;
    std::optional<TimePoint> eventTimeKeeping(int64_t keep) override;

    std::optional<Device> findByFingerprint(const std::string& fingerprint) override;
    std::optional<Device> findById(int64_t id) override;
    std::vector<Device> devices() override;
    void forEachDevice(const DeviceFilter& filter, const std::function<void(const Device&)>& fn) override;
    Device resolve(const std::string& reference) override;
    std::vector<Event> events(const EventFilter& filter) override;
    void forEachEvent(const EventFilter& filter, const std::function<void(const Event&)>& fn) override;
    /** A cheap consistency query (rows referring to missing ones, a schema marker out of place); not a page check. */
    std::vector<std::string> checkIntegrity() override;
    std::vector<BlockedSource> blockedSources(TimePoint now) override;

    Device approve(
        int64_t deviceId, const std::optional<std::string>& name, const std::optional<std::string>& sshUser) override;
    Device reject(int64_t deviceId) override;
    Device revoke(int64_t deviceId) override;
    void forget(int64_t deviceId) override;
    Device rename(int64_t deviceId, const std::string& newName) override;
    Device rekey(int64_t deviceId, int64_t pendingId) override;
    bool unblockSource(const std::string& source, const std::string& decidedBy) override;
    int64_t decideAll(const DeviceFilter& filter, const BulkDecision& decision) override;
    Device setCredentials(int64_t deviceId, const CredentialsUpdate& update) override;
    void addTrace(const std::vector<TraceRecord>& records) override;
    void forEachTrace(const TraceFilter& filter, const std::function<void(const TraceRecord&)>& fn) override;
    int64_t pruneTrace(TimePoint olderThan) override;
    void setActor(const std::string& actor) override;
    StagedEdit stage(int64_t deviceId, const StagedRequest& request) override;
    std::vector<StagedEdit> stagedEdits(std::optional<int64_t> deviceId, bool withDropped) override;
    StagedEdit stagedEdit(int64_t id) override;
    StagedEdit unstage(int64_t id) override;
    StagedEdit retryStaged(int64_t id) override;
    std::vector<int64_t> devicesWithStaged() override;
    std::optional<StagedEdit> nextStaged(int64_t deviceId) override;
    bool markStagedApplying(int64_t id, const std::string& connectionId) override;
    void finishStaged(int64_t id, const StagedResult& result) override;
    int64_t requeueApplying() override;

    /**
     * Takes the session-level advisory lock of `listenerId` on a connection of its own, held until this object is
     * destroyed (or the process ends: the server drops the lock with the connection). Throws UsageError when another
     * process holds it: a second callhomed with the same listener id on this inventory.
     */
    void lockListener(const std::string& listenerId) override;
    void setControlEndpoint(const std::string& listenerId, const std::string& endpoint) override;
    std::vector<ListenerInfo> listeners() override;

    /** Number of migrations this build carries (schemas/pgsql), i.e. the schema version it creates. */
    static int64_t knownSchemaVersion();

private:
    class WriteTransaction;
    class Guard;
    void reconnectIfBroken();
    enum class Sync { Normal, Full };

    void checkSchema(Mode mode);
    void migrate();
    void drainNotifications();
    /** Counts the notifications libpq has read on m_listen; true when there was any. */
    bool takeNotifications();
    std::vector<Device> queryDevices(const std::string& where, const std::optional<int64_t>& id,
        const std::optional<std::string>& text, const std::string& purpose);
    std::optional<Device> deviceById(int64_t id);
    std::optional<Device> deviceByName(const std::string& name);
    std::optional<Device> deviceBySerial(
        const std::string& manufacturer, const std::string& serial, const std::string& purpose);
    void applyDerivedName(const Device& d, const std::optional<std::string>& derivedName);
    Device requireDevice(int64_t id);
    std::optional<int64_t> knownDeviceAt(const std::string& address, const std::string& purpose);
    void ensureNameFree(const std::string& name, int64_t exceptId);
    void appendEvent(const Event& event);
    Device approveLocked(const Device& d, const std::optional<std::string>& name,
        const std::optional<std::string>& sshUser, TimePoint at);
    Device rejectLocked(const Device& d);
    Device revokeLocked(const Device& d);
    void forgetLocked(const Device& d);
    /** The id of the capability set `json` (stored when new); known ids are kept in m_capabilitySets. */
    int64_t storeCapabilitySet(const std::string& json, const std::string& purpose);
    /** Deletes `set` when no device uses it any more (as the SQLite backend does). */
    void dropUnusedCapabilitySet(std::optional<int64_t> set, const std::string& purpose);
    std::pair<Device, bool> expectSsh(const ExpectedDevice& e, std::size_t position, TimePoint at);
    Device setStateByOperator(
        const Device& d, DeviceState state, EventKind kind, const std::string& detail, const char* purpose);
    std::string byActor() const;
    std::vector<StagedEdit> queryStaged(
        const std::string& where, std::optional<int64_t> id, const std::string& purpose);
    StagedEdit requireStaged(int64_t id);
    StagedEdit moveStaged(int64_t id, StagedState to, EventKind kind, const std::string& purpose,
        const std::function<std::string(const StagedEdit&)>& check);

    std::string m_conninfo;
    std::string m_label; ///< the redacted spec, for messages
    /// recursive: writeBatch() holds it while the calls it runs take it again
    std::recursive_mutex m_mutex;
    pg::Connection m_db;
    std::unique_ptr<pg::Connection> m_listen; ///< LISTEN callhome_changes (daemon and readers alike)
    std::unique_ptr<pg::Connection> m_listenerLock; ///< holds lockListener()'s advisory lock
    uint64_t m_ownCommits = 0;
    uint64_t m_notifications = 0;
    bool m_inBatch = false;
    int m_lockDepth = 0; ///< Guards held (recursively) by this thread; guarded by m_mutex
    std::string m_actor = "operator";
    /// capability list (JSON) → capability_sets.id, for the lists this connection stored or found: a fleet has few,
    /// and a device that calls again with its list needs no lookup of kilobytes by hash. Bounded (cleared when
    /// full); an id whose set was dropped since is noticed and looked up again.
    std::unordered_map<std::string, int64_t> m_capabilitySets;
};

/** A PostgresInventory (for openInventory()): createAndMigrate for callhomed, false for readers. */
std::unique_ptr<Inventory> openPostgres(const std::string& conninfo, bool createAndMigrate);
} // namespace callhome::inventory
