#pragma once
#include "common/Time.h"
#include "inventory/Inventory.h"
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace callhome::inventory {

/**
 * The daemon's one inventory writer. Contacts, events, session records and heartbeats are queued here (bounded) by
 * whichever thread produces them and written by one thread, ch-writer, as batches: everything queued when a batch
 * starts (up to Options::maxBatch) is one transaction (Inventory::writeBatch), so under load the cost per record is
 * a fraction of a commit and never paid by an event loop.
 *
 * The writer has its own database connection: while another process holds the write lock (callhomectl, a script,
 * `sqlite3` with BEGIN IMMEDIATE), only ch-writer waits; the daemon's readers, admission and sessions go on, and the
 * queue keeps the records in order until the lock is released (retried with a growing pause, a warning every
 * 10 s). A full queue drops new records, counted (takeDropped()), and never blocks the caller. kill -9 loses what
 * was queued and not committed; operator decisions are never queued here (callhomectl and the API commit them
 * themselves).
 */
class Writer {
public:
    /** One write, run inside the batch's transaction; returns what to do once the batch is committed (or nothing). */
    using Op = std::function<std::function<void()>(Inventory&)>;
    struct Options {
        size_t maxQueued = 200'000; ///< records waiting; beyond it post() drops
        size_t maxBatch = 2'000; ///< records per transaction
        std::chrono::milliseconds retryMin { 50 }; ///< first pause after a batch failed (locked); doubles to retryMax
        std::chrono::milliseconds retryMax { 1'000 };
    };
    struct Stats {
        uint64_t written = 0; ///< records committed
        uint64_t batches = 0; ///< transactions committed
        uint64_t dropped = 0; ///< records refused because the queue was full, or left at stop
        uint64_t failed = 0; ///< records whose own write failed (logged), e.g. a session of a forgotten device
        size_t queued = 0;
        bool waiting = false; ///< the last batch could not be written (the lock is held elsewhere): retrying
    };

    Writer(std::unique_ptr<Inventory> connection, Options options);
    explicit Writer(std::unique_ptr<Inventory> connection)
        : Writer(std::move(connection), Options {})
    { }
    ~Writer();
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;

    void start();
    /** Queues a write; `what` names it in error messages. False when the queue is full (counted as dropped). */
    bool post(const std::string& what, Op op);
    /**
     * Queues `fn` and waits until its batch is committed, returning its result (or rethrowing its exception).
     * Throws DatabaseError when the queue is full or the writer stopped before writing it.
     */
    template<typename T>
    T call(const std::string& what, std::function<T(Inventory&)> fn)
    {
        auto promise = std::make_shared<std::promise<T>>();
        auto future = promise->get_future();
        enqueueCall(
            what,
            [promise, fn = std::move(fn)](Inventory& inventory) -> std::function<void()> {
                try {
                    auto result = std::make_shared<T>(fn(inventory));
                    return [promise, result] { promise->set_value(std::move(*result)); };
                } catch (...) {
                    // Undone with its savepoint; the rest of the batch goes on. Told once the batch is committed
                    // (a batch that fails as a whole runs this again).
                    return [promise, error = std::current_exception()] { promise->set_exception(error); };
                }
            },
            [promise](const std::string& why) { promise->set_exception(std::make_exception_ptr(DatabaseError(why))); });
        return future.get();
    }
    /** The listener's liveness beat: only the latest is written, with the next batch (at once when idle). */
    void heartbeat(const std::string& listenerId, TimePoint at);
    /**
     * Stops taking records, writes what is queued (trying for up to `drain` while the lock is held elsewhere), then
     * joins; records still queued then are dropped and logged. Idempotent.
     */
    void stop(std::chrono::milliseconds drain);
    Stats stats() const;
    /** Records dropped since the previous call (the daemon writes one `writes-dropped` event per interval). */
    uint64_t takeDropped();
    /** Waits until everything queued so far is committed, up to `timeout`; false if not (tests, shutdown). */
    bool flush(std::chrono::milliseconds timeout);

private:
    struct Item {
        std::string what;
        Op op;
        std::function<void(const std::string& why)> dropped; ///< for call(): tells the waiting caller
    };
    void enqueueCall(const std::string& what, Op op, std::function<void(const std::string&)> dropped);
    void run();
    /** One transaction for `batch`; false when it could not be committed (all of it stays to be retried). */
    bool writeOnce(std::deque<Item>& batch, const std::optional<std::pair<std::string, TimePoint>>& beat);

    std::unique_ptr<Inventory> m_inventory;
    Options m_options;
    mutable std::mutex m_mutex;
    std::condition_variable m_wake;
    std::condition_variable m_idle;
    std::deque<Item> m_queue;
    std::optional<std::pair<std::string, TimePoint>> m_heartbeat;
    bool m_busy = false; ///< ch-writer holds a batch taken from the queue
    bool m_stopping = false;
    bool m_started = false;
    std::chrono::steady_clock::time_point m_drainUntil;
    Stats m_stats;
    uint64_t m_droppedSinceTaken = 0;
    std::thread m_thread;
};
} // namespace callhome::inventory
