#pragma once
#include "common/Time.h"
#include "common/UniqueFd.h"
#include "config/Config.h"
#include "inventory/Types.h"
#include "server/DeviceApi.h"
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace callhome::inventory {
class Inventory;
class Writer;
} // namespace callhome::inventory
namespace callhome::identity {
class IdentityIndex;
}
namespace callhome::netconf {
class Session;
}

namespace callhome::server {
/** A NETCONF session we hold to an approved device. */
struct LiveSession {
    int64_t deviceId = 0;
    std::string deviceName;
    std::string connectionId;
    std::string address;
    std::string fingerprint;
    std::string transport; ///< "ssh" or "tls"
    TimePoint start;
    std::shared_ptr<netconf::Session> session;
    /** Asks the device's connection (on its event loop) to end the session; thread-safe, returns at once. */
    std::function<void(const std::string& reason)> close;
    std::shared_ptr<SessionStats> stats;
    /** RPCs and notification followers of the control API. */
    DeviceChannel channel;
    /** sessions/duplicate refuse, lost race: closed at once, never the device's session of record. */
    bool duplicateRefused = false;
};

/**
 * The sessions we hold, by device. It never touches a device's network: connections (on the event loops) report
 * sessions up and down (add/ended, both called on the one ch-sessions thread, in order), and the registry asks a
 * connection to close by message. Their records, and the listener's heartbeat, go to the inventory writer (queued,
 * batched: a locked inventory delays the records, never a session).
 *
 * Its monitor thread follows the inventory: when the change counter moves it reads the change log (which devices
 * changed, written by the schema's triggers whoever the writer was), refreshes those devices in the identity index,
 * and closes the sessions of devices an operator revoked, rejected or forgot — work proportional to the changes, not
 * to the inventory, and callhomectl needs no channel to the daemon. add() checks the index too, so a session that
 * comes up just after its device was revoked is closed by one check or the other.
 */
class SessionRegistry {
public:
    struct Options {
        std::string listenerId;
        std::chrono::milliseconds heartbeatInterval { 5000 };
        std::chrono::milliseconds inventoryPoll { 100 };
    };
    /** `inventory` is read (the change log), `writer` takes the records, `index` is kept current. */
    SessionRegistry(
        inventory::Inventory& inventory, inventory::Writer& writer, identity::IdentityIndex& index, Options options);
    ~SessionRegistry();
    SessionRegistry(const SessionRegistry&) = delete;
    SessionRegistry& operator=(const SessionRegistry&) = delete;

    void start();
    /** A token for a session about to be added (connections take one on the loop, then add() on the inventory thread).
     */
    uint64_t reserveToken() noexcept { return m_nextToken++; }
    /**
     * Records the session. When the device has one already (it called again): with sessions/duplicate replace the
     * older one is asked to close, with refuse this new one is (two connections got past identity together; the
     * connection normally refuses a duplicate before authentication). Either way recordDuplicate().
     */
    void add(uint64_t token, LiveSession&& session);
    /** sessions/duplicate; thread-safe, a reload sets it. */
    void setDuplicatePolicy(config::DuplicateSessions policy) noexcept { m_duplicate = policy; }
    config::DuplicateSessions duplicatePolicy() const noexcept { return m_duplicate; }
    /**
     * The device of `live` called again on `connectionId` from `address`: a duplicate-session event (replaced or
     * refused), and when the address differs from the live session's, a cloned-identity event and a warning. Queued
     * to the writer: never waits.
     */
    void recordDuplicate(
        const LiveSession& live, const std::string& connectionId, const std::string& address, bool refused);
    /** The connection ended: frees libnetconf2's session and records the end. Unknown tokens are ignored. */
    void ended(uint64_t token, const std::string& reason);
    /** Asks every session to close. */
    void closeAll(const std::string& reason);
    /** Waits until no session is held, up to `timeout`; false when some remain. */
    bool waitEmpty(std::chrono::milliseconds timeout);
    /** Stops the monitor; records whatever is still held as closed. Call after the loops and workers stopped. */
    void stop(const std::string& reason);
    /** The held sessions, oldest first. */
    std::vector<std::shared_ptr<const LiveSession>> sessions() const;
    /** The session held to this device, or nullptr. */
    std::shared_ptr<const LiveSession> find(int64_t deviceId) const;
    /** The session held to the device of this name, or nullptr. */
    std::shared_ptr<const LiveSession> findByName(const std::string& name) const;
    size_t size() const;
    /**
     * Staged configuration (lib/api/StagedApplier): `trigger` is told the device of every session add() records,
     * on the ch-sessions thread, so it must return at once. nullptr removes it (before its owner goes).
     */
    void setStagedTrigger(std::function<void(int64_t deviceId)> trigger);

    // ---- Hooks (config hooks/on-connect, on-disconnect) ----
    /**
     * Called on ch-sessions after add() recorded a session (so the device is reachable through the registry, and the
     * control API, when it runs) and after ended(); set before start(). Each must return at once (HookRunner::submit).
     */
    void setHookObservers(std::function<void(const LiveSession&)> up,
        std::function<void(const LiveSession&, const std::string& reason)> down);

private:
    void run();
    /** Applies the change log to the index and to the held sessions. */
    void followChanges();
    /** Closes `live` unless `device` (nullopt: forgotten) is approved. */
    static void enforce(const LiveSession& live, const std::optional<inventory::Device>& device);

    inventory::Inventory& m_inventory;
    inventory::Writer& m_writer;
    identity::IdentityIndex& m_index;
    Options m_options;
    mutable std::mutex m_mutex;
    std::condition_variable m_changed;
    std::map<uint64_t, std::shared_ptr<LiveSession>> m_sessions;
    std::map<int64_t, uint64_t> m_byDevice;
    std::map<std::string, uint64_t> m_byName;
    std::atomic<uint64_t> m_nextToken { 1 };
    std::atomic<config::DuplicateSessions> m_duplicate { config::DuplicateSessions::Replace };
    bool m_stopping = false;
    std::condition_variable m_wake;
    std::thread m_thread;
    std::mutex m_stagedMutex; ///< guards m_stagedTrigger
    std::function<void(int64_t)> m_stagedTrigger;
    std::function<void(const LiveSession&)> m_hookUp; ///< hooks: see setHookObservers()
    std::function<void(const LiveSession&, const std::string&)> m_hookDown;
};
} // namespace callhome::server
