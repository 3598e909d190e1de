#pragma once
#include "inventory/Types.h"
#include "server/DeviceApi.h"
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace callhome::inventory {
class Inventory;
}

namespace callhome::server {
/**
 * Fills what a trace record keeps of an operation about to be sent to a device (what goes inside <rpc>): its name
 * and datastore, its size and SHA-256 — never its content. The caller fills who asked and which device.
 */
void describeRequest(inventory::TraceRecord& record, std::string_view operation);
/** Fills the record's outcome from how the operation ended: message-id, outcome, error tag and path, answered now. */
void traceOutcome(inventory::TraceRecord& record, const RpcOutcome& outcome, std::chrono::milliseconds duration);
/** Lower-case hex SHA-256 of `data`. */
std::string sha256Hex(std::string_view data);

/**
 * The writer of the operation trace (inventory::TraceRecord, schemas/sql/0005-trace.sql): record() queues and
 * returns at once, on any thread (an API thread, a device's loop, a hook runner); one thread of its own (ch-trace)
 * with its own inventory connection writes what is queued in one transaction per batch. So no request ever waits on
 * SQLite for its trace. A full queue (`capacity` records, a database stuck for a long while) drops records, counted
 * and logged; a failed write is retried while the queue has room.
 */
class TraceLog {
public:
    TraceLog(const std::string& inventoryPath, size_t capacity = 100000);
    /** Writes what is queued, then stops. */
    ~TraceLog();
    TraceLog(const TraceLog&) = delete;
    TraceLog& operator=(const TraceLog&) = delete;

    void record(inventory::TraceRecord record);
    /** Waits (up to `timeout`) until everything queued before the call is written; false when time ran out. */
    bool flush(std::chrono::milliseconds timeout);
    /** Records dropped because the queue was full. */
    uint64_t dropped() const noexcept { return m_dropped.load(); }
    /** Writes what is queued and joins the thread. Idempotent. */
    void stop();

private:
    void run();

    std::unique_ptr<inventory::Inventory> m_inventory; ///< used on m_thread only
    size_t m_capacity;
    std::mutex m_mutex;
    std::condition_variable m_wake;
    std::condition_variable m_written;
    std::deque<inventory::TraceRecord> m_queue;
    uint64_t m_queuedTotal = 0; ///< records ever queued (under m_mutex)
    uint64_t m_writtenTotal = 0; ///< of those, written or given up (under m_mutex)
    bool m_stopping = false;
    std::atomic<uint64_t> m_dropped { 0 };
    std::thread m_thread;
};
} // namespace callhome::server
