#include "server/TraceLog.h"
#include "common/Log.h"
#include "inventory/Inventory.h"
#include "inventory/Open.h"
#include "netconf/Message.h"
#include <openssl/evp.h>
#include <pthread.h>
#include <vector>

namespace callhome::server {
namespace {
/** At most this many records per transaction: a backlog is written in bounded steps. */
constexpr size_t kBatch = 1000;
/** Between attempts when a write failed (the database locked by another writer for long, a full disk). */
constexpr auto kRetryPause = std::chrono::milliseconds(250);
/** A record the database refused this often is given up (logged): it would block every record behind it. */
constexpr int kAttempts = 20;
} // namespace

std::string sha256Hex(std::string_view data)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr) != 1) {
        return {};
    }
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(2 * n);
    for (unsigned int i = 0; i < n; ++i) {
        out += hex[md[i] >> 4];
        out += hex[md[i] & 0xf];
    }
    return out;
}

void describeRequest(inventory::TraceRecord& r, std::string_view operation)
{
    if (auto summary = netconf::operationSummary(operation)) {
        r.operation = summary->name;
        r.datastore = summary->datastore;
    } else {
        r.operation = "(not XML)";
    }
    r.requestBytes = static_cast<int64_t>(operation.size());
    r.requestSha256 = sha256Hex(operation);
}

void traceOutcome(inventory::TraceRecord& record, const RpcOutcome& outcome, std::chrono::milliseconds duration)
{
    record.answeredAt = now();
    record.durationMs = duration.count();
    record.messageId = outcome.messageId;
    switch (outcome.kind) {
    case RpcOutcome::Kind::Reply:
        record.outcome = "ok";
        // Parsed only when it is an error: a large <data> reply is not read again for its trace.
        if (outcome.reply.find("rpc-error>") != std::string::npos) {
            if (auto reply = netconf::parseReply(outcome.reply); reply && !reply->errorTag.empty()) {
                record.outcome = "rpc-error";
                record.errorTag = reply->errorTag;
                record.errorPath = reply->errorPath;
            }
        }
        break;
    case RpcOutcome::Kind::Timeout:
        record.outcome = "timeout";
        break;
    case RpcOutcome::Kind::TransportError:
        record.outcome = "transport-error";
        break;
    case RpcOutcome::Kind::TooLarge:
        record.outcome = "reply-too-large";
        break;
    case RpcOutcome::Kind::Busy:
        record.outcome = "refused";
        break;
    }
    if (outcome.kind != RpcOutcome::Kind::Reply) {
        record.detail = outcome.detail;
    }
    if (outcome.cancelled) {
        // The client hung up first: what the device did (if it got the operation at all) is in `detail`.
        record.detail
            = "the client went away (" + record.outcome + (outcome.detail.empty() ? "" : ": ") + outcome.detail + ")";
        record.outcome = "cancelled";
    }
}

TraceLog::TraceLog(const std::string& inventoryPath, size_t capacity)
    : m_inventory(inventory::openInventory(inventoryPath, inventory::OpenMode::ExistingOnly))
    , m_capacity(capacity)
{
    m_thread = std::thread([this] { run(); });
}

TraceLog::~TraceLog()
{
    stop();
}

void TraceLog::record(inventory::TraceRecord record)
{
    {
        std::lock_guard lock(m_mutex);
        if (m_stopping) {
            ++m_dropped; // an answer after stop(): the API is gone already
            return;
        }
        if (m_queue.size() >= m_capacity) {
            if (m_dropped.fetch_add(1) == 0) {
                log::get(log::Inventory)->error("trace: the queue is full ({} records); dropping records", m_capacity);
            }
            return;
        }
        m_queue.push_back(std::move(record));
        ++m_queuedTotal;
    }
    m_wake.notify_one();
}

bool TraceLog::flush(std::chrono::milliseconds timeout)
{
    std::unique_lock lock(m_mutex);
    auto target = m_queuedTotal;
    return m_written.wait_for(lock, timeout, [&] { return m_writtenTotal >= target; });
}

void TraceLog::stop()
{
    {
        std::lock_guard lock(m_mutex);
        m_stopping = true;
    }
    m_wake.notify_all();
    if (m_thread.joinable()) {
        m_thread.join();
    }
}

void TraceLog::run()
{
    pthread_setname_np(pthread_self(), "ch-trace");
    std::vector<inventory::TraceRecord> batch;
    int failures = 0;
    uint64_t droppedLogged = 0;
    std::unique_lock lock(m_mutex);
    for (;;) {
        m_wake.wait(lock, [&] { return m_stopping || !m_queue.empty(); });
        if (m_queue.empty()) {
            return; // stopping, all written
        }
        auto n = std::min(m_queue.size(), kBatch);
        batch.assign(std::make_move_iterator(m_queue.begin()), std::make_move_iterator(m_queue.begin() + n));
        lock.unlock();
        bool written = false;
        try {
            m_inventory->addTrace(batch);
            written = true;
            failures = 0;
        } catch (const std::exception& e) {
            ++failures;
            log::get(log::Inventory)
                ->warn("trace: writing {} records failed (attempt {} of {}): {}", n, failures, kAttempts, e.what());
        }
        if (auto dropped = m_dropped.load(); written && dropped != droppedLogged) {
            log::get(log::Inventory)->error("trace: {} records dropped so far (the queue was full)", dropped);
            droppedLogged = dropped;
        }
        lock.lock();
        if (written || failures >= kAttempts) {
            if (!written) {
                log::get(log::Inventory)->error("trace: gave up on {} records", n);
                m_dropped += n;
                failures = 0;
            }
            m_queue.erase(m_queue.begin(), m_queue.begin() + static_cast<std::ptrdiff_t>(n));
            m_writtenTotal += n;
            m_written.notify_all();
        } else if (!m_stopping) {
            m_wake.wait_for(lock, kRetryPause, [&] { return m_stopping; });
        } else {
            // Stopping with a database that refuses: the last attempts happen without pause.
        }
    }
}
} // namespace callhome::server
