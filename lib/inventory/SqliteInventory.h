#pragma once
#include "common/UniqueFd.h"
#include "inventory/Inventory.h"
#include "inventory/Sqlite.h"
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>

namespace callhome::inventory {
/** A session counts as live while its listener's heartbeat is at most this old; v_devices uses the same 15 s. */
inline constexpr std::chrono::milliseconds HeartbeatWindow { 15'000 };
/** PRAGMA application_id of a callhome inventory ("CHIV"), so that other SQLite files are recognised. */
inline constexpr int32_t ApplicationId = 0x43484956;
/** How long a write waits for another writer (callhomectl, a script) before failing with DatabaseError. */
inline constexpr std::chrono::milliseconds BusyTimeout { 5'000 };

/** The SQLite inventory: one connection in WAL mode, serialized by a mutex. */
class SqliteInventory : public Inventory {
public:
    enum class Mode {
        CreateAndMigrate, ///< the daemon: create the file if missing, apply pending migrations
        ExistingOnly, ///< readers and callhomectl: never create, never migrate
    };
    SqliteInventory(const std::string& path, Mode mode);

    Contact recordContact(Transport transport, const std::string& fingerprint, const std::string& keyType,
        const std::string& address, TimePoint at) override;
    Contact recordTlsContact(const TlsIdentity& identity, const std::string& address, TimePoint at) override;
    ExpectResult expectAll(const std::vector<ExpectedDevice>& devices) override;
    void listenerStarted(const std::string& listenerId, TimePoint at) override;
    void heartbeat(const std::string& listenerId, TimePoint at) override;
    void listenerStopped(const std::string& listenerId) override;
    void setControlEndpoint(const std::string& listenerId, const std::string& endpoint) override;
    std::vector<ListenerInfo> listeners() override;
    void lockListener(const std::string& listenerId) override;
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

    /** Number of migrations this build carries, i.e. the schema version it creates. */
    static int64_t knownSchemaVersion();

private:
    class WriteTransaction;
    enum class Sync { Normal, Full };

    void checkFile(Mode mode);
    void migrate();
    std::vector<Device> queryDevices(const std::string& where, const std::optional<int64_t>& id,
        const std::optional<std::string>& text, const std::string& purpose);
    std::optional<Device> deviceById(int64_t id);
    std::optional<Device> deviceByName(const std::string& name);
    std::optional<Device> deviceBySerial(
        const std::string& manufacturer, const std::string& serial, const std::string& purpose);
    void applyDerivedName(const Device& d, const std::optional<std::string>& derivedName);
    Device requireDevice(int64_t id);
    /** The known (non-pending) device most recently seen at `address`: a new identity from there is flagged. */
    std::optional<int64_t> knownDeviceAt(const std::string& address, const std::string& purpose);
    void ensureNameFree(const std::string& name, int64_t exceptId);
    void appendEvent(const Event& event);
    /** The id of the capability set with this JSON text, stored now if it is new (schema version 8). */
    int64_t storeCapabilitySet(const std::string& json, const std::string& purpose);
    /** Deletes capability set `set` when no device refers to it any more. */
    void dropUnusedCapabilitySet(std::optional<int64_t> set, const std::string& purpose);
    /** The work of approve() etc. inside the caller's lock and transaction (shared with decideAll). */
    Device approveLocked(const Device& d, const std::optional<std::string>& name,
        const std::optional<std::string>& sshUser, TimePoint at);
    Device rejectLocked(const Device& d);
    Device revokeLocked(const Device& d);
    void forgetLocked(const Device& d);
    std::vector<std::string> integrityProblems();
    /** One SSH entry of expectAll(): the device, and whether it was created (false: already expected). */
    std::pair<Device, bool> expectSsh(const ExpectedDevice& e, std::size_t position, TimePoint at);
    /** An operator's decision: sets the state, logs `kind` with `detail`, returns the device as stored. */
    Device setStateByOperator(
        const Device& d, DeviceState state, EventKind kind, const std::string& detail, const char* purpose);

    std::string m_path;
    /// recursive: writeBatch() holds it while the calls it runs take it again
    std::recursive_mutex m_mutex;
    sqlite::Connection m_db;
    uint64_t m_ownCommits = 0;
    bool m_inBatch = false; ///< writeBatch() owns the transaction: WriteTransaction uses savepoints
    std::string m_actor = "operator"; ///< setActor(); guarded by m_mutex
    UniqueFd m_listenerLock; ///< lockListener()
    /** " by WHO" for an operator event's detail; empty for the default actor (details as before). */
    std::string byActor() const;
    /** The staged items `where` selects (a clause on s.*, ?1 bound to `id`), in queue order. */
    std::vector<StagedEdit> queryStaged(
        const std::string& where, std::optional<int64_t> id, const std::string& purpose);
    StagedEdit requireStaged(int64_t id);
    /** An operator's move of staged edit `id` to `to`: `check` throws when its state does not allow it, else returns
     * the event's detail. One transaction with its event. */
    StagedEdit moveStaged(int64_t id, StagedState to, EventKind kind, const std::string& purpose,
        const std::function<std::string(const StagedEdit&)>& check);
};
} // namespace callhome::inventory
