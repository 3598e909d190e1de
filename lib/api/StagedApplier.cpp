#include "api/StagedApplier.h"
#include "api/Convert.h"
#include "common/Log.h"
#include "common/Time.h"
#include "inventory/Inventory.h"
#include "inventory/Open.h"
#include "netconf/Context.h"
#include "netconf/Session.h"
#include "server/SessionRegistry.h"
#include "server/TraceLog.h"
#include <fmt/format.h>
#include <pthread.h>
#include <shared_mutex>

namespace callhome::api {
namespace {
using inventory::StagedResult;
using inventory::StagedState;
using server::RpcOutcome;
using SteadyClock = std::chrono::steady_clock;

/** The <edit-config> for an item; JSON becomes XML with the device's own schemas (held shared meanwhile). */
std::string editOperation(const inventory::StagedEdit& item, const server::LiveSession& session)
{
    std::string config;
    if (item.format == "json") {
        auto context = session.session->context();
        std::shared_lock lock(context->mutex());
        config = jsonToXml(context->get(), item.content);
    } else {
        config = elements(item.content, "the staged configuration");
    }
    return "<edit-config><target><" + item.target + "/></target><config>" + config + "</config></edit-config>";
}

std::string label(const server::LiveSession& s)
{
    if (!s.deviceName.empty()) {
        return s.deviceName;
    }
    std::string out = "#"; // not "#" + ...: GCC 12 -O3 warns falsely (-Wrestrict)
    out += std::to_string(s.deviceId);
    return out;
}
} // namespace

StagedApplier::StagedApplier(
    server::SessionRegistry& registry, std::shared_ptr<server::TraceLog> trace, Options options)
    : m_registry(registry)
    , m_trace(std::move(trace))
    , m_options(std::move(options))
{
    m_inventory = inventory::openInventory(m_options.inventoryPath, inventory::OpenMode::ExistingOnly);
    m_inventory->setActor("callhomed");
}

StagedApplier::~StagedApplier()
{
    stop();
}

void StagedApplier::start()
{
    if (auto n = m_inventory->requeueApplying(); n > 0) {
        log::get(log::Main)->warn(
            "staged configuration: {} edit(s) were being applied when callhomed stopped; queued again", n);
    }
    m_thread = std::thread([this] {
        pthread_setname_np(pthread_self(), "ch-staged");
        run();
    });
}

void StagedApplier::stop()
{
    auto& box = *m_mailbox;
    {
        std::lock_guard lock(box.mutex);
        if (box.stopping) {
            return;
        }
        box.stopping = true;
    }
    box.wake.notify_all();
    if (m_thread.joinable()) {
        m_thread.join();
    }
}

void StagedApplier::sessionUp(int64_t deviceId)
{
    auto& box = *m_mailbox;
    {
        std::lock_guard lock(box.mutex);
        box.sessionsUp.insert(deviceId);
    }
    box.wake.notify_all();
}

void StagedApplier::poke()
{
    auto& box = *m_mailbox;
    {
        std::lock_guard lock(box.mutex);
        box.poked = true;
    }
    box.wake.notify_all();
}

void StagedApplier::run()
{
    uint64_t counter = 0;
    auto nextScan = SteadyClock::now(); // the first pass looks at every queue (sessions already up)
    while (true) {
        std::deque<Answer> answers;
        std::set<int64_t> up;
        bool poked = false;
        {
            auto& box = *m_mailbox;
            std::unique_lock lock(box.mutex);
            box.wake.wait_for(lock, m_options.poll,
                [&box] { return box.stopping || !box.answers.empty() || !box.sessionsUp.empty() || box.poked; });
            if (box.stopping) {
                return;
            }
            answers.swap(box.answers);
            up.swap(box.sessionsUp);
            std::swap(poked, box.poked);
        }
        try {
            std::vector<int64_t> unrecorded;
            for (const auto& [id, attempt] : m_inFlight) {
                if (attempt.recording) {
                    unrecorded.push_back(id);
                }
            }
            for (auto id : unrecorded) {
                record(id);
            }
            for (auto& a : answers) {
                answered(std::move(a));
            }
            for (auto id : up) {
                tryDevice(id);
            }
            auto current = m_inventory->changeCounter();
            auto t = SteadyClock::now();
            if (poked || current != counter || t >= nextScan) {
                counter = current;
                nextScan = t + m_options.rescan;
                for (auto id : m_inventory->devicesWithStaged()) {
                    tryDevice(id);
                }
            }
        } catch (const std::exception& e) {
            // A locked or broken database: the items stay as they are and are looked at again on the next round.
            log::get(log::Main)->error("staged configuration: {}", e.what());
        }
    }
}

void StagedApplier::tryDevice(int64_t deviceId)
{
    if (m_inFlight.count(deviceId)) {
        return;
    }
    auto session = m_registry.find(deviceId);
    if (!session) {
        return; // applied when its session is up
    }
    auto next = m_inventory->nextStaged(deviceId);
    if (!next || next->state != StagedState::Queued) {
        return; // nothing to do, or a failed item holds the queue until an operator retries or unstages it
    }
    if (!m_inventory->markStagedApplying(next->id, session->connectionId)) {
        return; // unstaged a moment ago
    }
    auto& attempt = m_inFlight[deviceId];
    attempt = Attempt { .item = *next, .session = session, .editMessageId = {}, .result = std::nullopt };
    std::string operation;
    try {
        operation = editOperation(attempt.item, *session);
    } catch (const std::exception& e) {
        // JSON naming a module the device lacks, or XML made unusable: the operator has to look at it.
        finish(deviceId,
            StagedResult { .state = StagedState::Failed,
                .connectionId = session->connectionId,
                .detail = std::string("cannot be sent to this device: ") + e.what(),
                .address = session->address });
        return;
    }
    log::get(log::Main)->info("[{}] {}: applying staged edit #{} ({} edit of {})", session->connectionId,
        label(*session), next->id, next->format, next->target);
    send(deviceId, Step::Edit, operation);
}

void StagedApplier::send(int64_t deviceId, Step step, const std::string& operation)
{
    auto& attempt = m_inFlight.at(deviceId);
    const auto& session = *attempt.session;
    inventory::TraceRecord record;
    record.receivedAt = now();
    record.source = "staged";
    record.client = attempt.item.createdBy;
    record.detail = "staged edit #" + std::to_string(attempt.item.id);
    record.deviceId = session.deviceId;
    record.deviceName = session.deviceName;
    record.connectionId = session.connectionId;
    server::describeRequest(record, operation);

    auto call = std::make_shared<server::RpcCall>();
    call->operation = operation;
    call->deadline = SteadyClock::now() + m_options.rpcTimeout;
    auto started = SteadyClock::now();
    // Called once on the device's event loop: only queue the answer (and its trace record) and return.
    call->done = [box = m_mailbox, trace = m_trace, deviceId, step, started, record = std::move(record)](
                     RpcOutcome o) mutable {
        if (trace) {
            server::traceOutcome(
                record, o, std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - started));
            if (record.outcome != "ok") {
                record.detail += record.detail.empty() ? "" : "; ";
                record.detail += o.detail;
            }
            trace->record(std::move(record));
        }
        {
            std::lock_guard lock(box->mutex);
            box->answers.push_back(Answer { .deviceId = deviceId, .step = step, .outcome = std::move(o) });
        }
        box->wake.notify_all();
    };
    session.channel.submit(std::move(call));
}

void StagedApplier::answered(Answer answer)
{
    auto it = m_inFlight.find(answer.deviceId);
    if (it == m_inFlight.end()) {
        return;
    }
    auto& attempt = it->second;
    const auto& session = *attempt.session;
    const auto& item = attempt.item;
    const auto& o = answer.outcome;
    if (answer.step == Step::Discard) {
        finish(answer.deviceId, std::move(*attempt.result));
        return;
    }
    StagedResult result { .state = StagedState::Failed,
        .connectionId = session.connectionId,
        .messageId = answer.step == Step::Edit ? o.messageId : attempt.editMessageId,
        .address = session.address };
    const char* stepName = answer.step == Step::Edit ? "edit-config" : "commit";
    switch (o.kind) {
    case RpcOutcome::Kind::Reply: {
        auto errors = rpcErrors(o.reply);
        if (errors.empty()) {
            if (answer.step == Step::Edit && item.commit) {
                attempt.editMessageId = o.messageId;
                send(answer.deviceId, Step::Commit, "<commit/>");
                return;
            }
            result.state = StagedState::Applied;
            result.detail = "applied to " + item.target + (item.commit ? " and committed" : "") + " (message-id "
                + result.messageId + ")";
            break;
        }
        const auto& first = errors.front();
        result.errorTag = first.tag;
        result.errorMessage = first.message;
        result.detail = fmt::format("the device answered <rpc-error> to <{}>: {}{}{}", stepName, first.tag,
            first.path.empty() ? "" : " at " + first.path, first.message.empty() ? "" : ": " + first.message);
        if (item.target == "candidate") {
            // Leave no half-made candidate behind for the next item or an operator.
            attempt.result = std::move(result);
            send(answer.deviceId, Step::Discard, "<discard-changes/>");
            return;
        }
        break;
    }
    case RpcOutcome::Kind::TransportError:
        // The device may or may not have applied it; <edit-config> merges are usually safe to send again.
        result.state = StagedState::Queued;
        result.detail
            = "the session ended before the reply to <" + std::string(stepName) + ">: queued again (" + o.detail + ")";
        break;
    case RpcOutcome::Kind::Busy:
        result.state = StagedState::Queued;
        result.detail = "the device's request queue was full: queued again";
        break;
    case RpcOutcome::Kind::Timeout:
        result.detail
            = "no reply to <" + std::string(stepName) + "> in time (" + o.detail + "); the device may have applied it";
        break;
    case RpcOutcome::Kind::TooLarge:
        result.detail = "the reply to <" + std::string(stepName) + "> was too large (" + o.detail + ")";
        break;
    }
    finish(answer.deviceId, std::move(result));
}

void StagedApplier::finish(int64_t deviceId, StagedResult result)
{
    auto& attempt = m_inFlight.at(deviceId);
    auto logger = log::get(log::Main);
    const auto& s = *attempt.session;
    if (result.state == StagedState::Applied) {
        logger->info("[{}] {}: staged edit #{} {}", s.connectionId, label(s), attempt.item.id, result.detail);
    } else {
        logger->warn("[{}] {}: staged edit #{} {}: {}", s.connectionId, label(s), attempt.item.id,
            toString(result.state), result.detail);
    }
    attempt.result = std::move(result);
    attempt.recording = true;
    if (record(deviceId) && m_inFlight.count(deviceId) == 0) {
        tryDevice(deviceId); // the next item at once (tryDevice finds nothing after a failure: the queue stops)
    }
}

bool StagedApplier::record(int64_t deviceId)
{
    auto& attempt = m_inFlight.at(deviceId);
    try {
        m_inventory->finishStaged(attempt.item.id, *attempt.result);
    } catch (const std::exception& e) {
        log::get(log::Main)->error(
            "staged configuration: recording edit #{}'s result (tried again): {}", attempt.item.id, e.what());
        return false;
    }
    bool busy = attempt.result->state == StagedState::Queued;
    m_inFlight.erase(deviceId);
    return !busy;
}
} // namespace callhome::api
