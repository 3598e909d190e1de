#pragma once
#include "inventory/Types.h"
#include "server/DeviceApi.h"
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

namespace callhome::inventory {
class Inventory;
}
namespace callhome::server {
class SessionRegistry;
class TraceLog;
struct LiveSession;
} // namespace callhome::server

namespace callhome::api {
/**
 * Applies the staged configuration (inventory: schemas/sql/0006-staged.sql) to devices whose session is up: each
 * device's queue in order, one item at a time, through the same DeviceChannel the control API's /edit uses
 * (<edit-config>, then <commit/> when asked; <discard-changes/> after a failed candidate edit). A failed item stops
 * that device's queue until an operator retries or unstages it.
 *
 * It runs on one thread of its own (ch-staged) with its own inventory connection: the device's event loop only
 * hands replies back (RpcCall::done queues them here and returns). It looks at a device when its session comes up
 * (sessionUp(), called by the registry), when something is staged or retried (poke(), or the inventory's change
 * counter moving: callhomectl writes the database directly), and every few seconds. Every operation is traced
 * (server::TraceLog, source "staged", client: who staged it).
 */
class StagedApplier {
public:
    struct Options {
        std::string inventoryPath;
        std::chrono::milliseconds rpcTimeout { 60'000 }; ///< per operation; a timeout fails the item
        std::chrono::milliseconds poll { 200 }; ///< how often the change counter is read
        std::chrono::milliseconds rescan { 5'000 }; ///< full look at the queues even when nothing seems to change
    };
    StagedApplier(server::SessionRegistry& registry, std::shared_ptr<server::TraceLog> trace, Options options);
    ~StagedApplier();
    StagedApplier(const StagedApplier&) = delete;
    StagedApplier& operator=(const StagedApplier&) = delete;

    /** Items an earlier run left applying go back to queued (the reply was never seen), then the thread starts. */
    void start();
    /** Joins the thread; items in flight are re-queued by the next start (or when their reply comes first). */
    void stop();
    /** A session to the device is up (thread-safe, returns at once). */
    void sessionUp(int64_t deviceId);
    /** Something was staged or retried: look now instead of at the next poll (thread-safe, returns at once). */
    void poke();

private:
    enum class Step { Edit, Commit, Discard };
    struct Attempt {
        inventory::StagedEdit item;
        std::shared_ptr<const server::LiveSession> session;
        std::string editMessageId;
        std::optional<inventory::StagedResult> result; ///< decided; a <discard-changes/> or its recording is pending
        bool recording = false; ///< the result could not be written yet (database locked): tried again each round
    };
    struct Answer {
        int64_t deviceId = 0;
        Step step = Step::Edit;
        server::RpcOutcome outcome;
    };

    void run();
    void tryDevice(int64_t deviceId);
    void send(int64_t deviceId, Step step, const std::string& operation);
    void answered(Answer answer);
    void finish(int64_t deviceId, inventory::StagedResult result);
    /**
     * Writes the attempt's result and ends the attempt; false when the database refused (kept, tried again on the
     * next round) or the item went back to the queue (not to be sent again at once).
     */
    bool record(int64_t deviceId);

    server::SessionRegistry& m_registry;
    std::shared_ptr<server::TraceLog> m_trace;
    Options m_options;
    std::unique_ptr<inventory::Inventory> m_inventory; ///< used on m_thread only
    std::map<int64_t, Attempt> m_inFlight; ///< by device; m_thread only

    /** What other threads hand in; shared with the RPCs in flight, whose answers may come after this is gone. */
    struct Mailbox {
        std::mutex mutex;
        std::condition_variable wake;
        std::deque<Answer> answers;
        std::set<int64_t> sessionsUp;
        bool poked = false;
        bool stopping = false;
    };
    std::shared_ptr<Mailbox> m_mailbox = std::make_shared<Mailbox>();
    std::thread m_thread;
};
} // namespace callhome::api
