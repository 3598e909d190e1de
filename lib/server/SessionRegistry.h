#pragma once
#include "common/Time.h"
#include "common/UniqueFd.h"
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace callhome::inventory {
class Inventory;
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
    TimePoint start;
    std::unique_ptr<netconf::Session> session;
};

/** What the registry can tell about a held session. */
struct SessionInfo {
    int64_t deviceId;
    std::string deviceName;
    std::string connectionId;
    std::string address;
    TimePoint start;
};

/**
 * Holds every live session without a thread per session: one monitor thread waits on all session sockets with
 * epoll, notices devices going away, sends keepalives, beats the listener's heartbeat into the inventory, and
 * closes sessions whose device an operator revoked, rejected or forgot (it polls the inventory's change counter,
 * so callhomectl needs no channel to the daemon).
 */
class SessionRegistry {
public:
    struct Options {
        std::string listenerId;
        std::chrono::seconds keepaliveInterval { 30 };
        std::chrono::milliseconds heartbeatInterval { 5000 };
        std::chrono::milliseconds inventoryPoll { 250 };
    };
    SessionRegistry(inventory::Inventory& inventory, Options options);
    ~SessionRegistry();
    SessionRegistry(const SessionRegistry&) = delete;
    SessionRegistry& operator=(const SessionRegistry&) = delete;

    void start();
    /** Takes over a new session; an older session of the same device is closed first (the device called again). */
    void add(LiveSession&& session);
    /** Closes every session (<close-session>), records them closed, stops the monitor. */
    void stop(const std::string& reason);
    std::vector<SessionInfo> sessions() const;
    size_t size() const;

private:
    void run();
    void closeByToken(uint64_t token, const std::string& reason);
    /** Closes several sessions at once (token, reason), in parallel when there are many. */
    void closeMany(const std::vector<std::pair<uint64_t, std::string>>& closing);
    void reconcile();
    void keepalives();
    std::shared_ptr<LiveSession> take(uint64_t token);

    inventory::Inventory& m_inventory;
    Options m_options;
    UniqueFd m_epoll;
    UniqueFd m_wake;
    mutable std::mutex m_mutex;
    std::map<uint64_t, std::shared_ptr<LiveSession>> m_sessions; ///< by token (fds get reused, tokens do not)
    std::map<int64_t, uint64_t> m_byDevice;
    uint64_t m_nextToken = 1;
    std::atomic<bool> m_stopping { false };
    std::thread m_thread;
};
} // namespace callhome::server
