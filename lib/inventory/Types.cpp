#include "inventory/Types.h"
#include "common/Error.h"
#include <array>
#include <utility>

namespace callhome::inventory {
namespace {
// One table per enum keeps the names in one place for both directions.
constexpr std::array<std::pair<DeviceState, const char*>, 4> deviceStates { {
    { DeviceState::Pending, "pending" },
    { DeviceState::Approved, "approved" },
    { DeviceState::Rejected, "rejected" },
    { DeviceState::Revoked, "revoked" },
} };

constexpr std::array<std::pair<Transport, const char*>, 2> transports { {
    { Transport::Ssh, "ssh" },
    { Transport::Tls, "tls" },
} };

constexpr std::array<std::pair<EventKind, const char*>, 27> eventKinds { {
    { EventKind::Pending, "pending" },
    { EventKind::Accepted, "accepted" },
    { EventKind::Refused, "refused" },
    { EventKind::HandshakeFailed, "handshake-failed" },
    { EventKind::SessionOpened, "session-opened" },
    { EventKind::SessionClosed, "session-closed" },
    { EventKind::Approved, "approved" },
    { EventKind::Rejected, "rejected" },
    { EventKind::Revoked, "revoked" },
    { EventKind::Forgotten, "forgotten" },
    { EventKind::Renamed, "renamed" },
    { EventKind::Rekeyed, "rekeyed" },
    { EventKind::Blocked, "blocked" },
    { EventKind::Unblocked, "unblocked" },
    { EventKind::RefusedSummary, "refused-summary" },
    { EventKind::PendingCapped, "pending-capped" },
    { EventKind::EventsPruned, "events-pruned" },
    { EventKind::WritesDropped, "writes-dropped" },
    { EventKind::Staged, "staged" },
    { EventKind::Unstaged, "unstaged" },
    { EventKind::StagedRetried, "staged-retried" },
    { EventKind::StagedApplied, "staged-applied" },
    { EventKind::StagedFailed, "staged-failed" },
    { EventKind::CredentialsChanged, "credentials-changed" },
    { EventKind::DuplicateSession, "duplicate-session" },
    { EventKind::ClonedIdentity, "cloned-identity" },
    { EventKind::Hook, "hook" },
} };

constexpr std::array<std::pair<StagedState, const char*>, 5> stagedStates { {
    { StagedState::Queued, "queued" },
    { StagedState::Applying, "applying" },
    { StagedState::Applied, "applied" },
    { StagedState::Failed, "failed" },
    { StagedState::Dropped, "dropped" },
} };

template<typename Enum, std::size_t N>
std::string nameOf(const std::array<std::pair<Enum, const char*>, N>& table, Enum value)
{
    for (const auto& [v, name] : table) {
        if (v == value) {
            return name;
        }
    }
    // Only reachable with a value cast from an out-of-range integer: a broken invariant.
    throw Error("invalid enum value " + std::to_string(static_cast<int>(value)));
}

template<typename Enum, std::size_t N>
Enum valueOf(const std::array<std::pair<Enum, const char*>, N>& table, const std::string& text, const char* what)
{
    for (const auto& [v, name] : table) {
        if (text == name) {
            return v;
        }
    }
    std::string known;
    for (const auto& [v, name] : table) {
        known += known.empty() ? "" : ", ";
        known += name;
    }
    throw UsageError("unknown " + std::string(what) + " \"" + text + "\" (expected one of: " + known + ")");
}
} // namespace

std::string toString(DeviceState s)
{
    return nameOf(deviceStates, s);
}

std::string toString(Transport t)
{
    return nameOf(transports, t);
}

std::string toString(EventKind k)
{
    return nameOf(eventKinds, k);
}

DeviceState deviceStateFromString(const std::string& s)
{
    return valueOf(deviceStates, s, "device state");
}

Transport transportFromString(const std::string& s)
{
    return valueOf(transports, s, "transport");
}

EventKind eventKindFromString(const std::string& s)
{
    return valueOf(eventKinds, s, "event kind");
}

std::string toString(StagedState s)
{
    return nameOf(stagedStates, s);
}

StagedState stagedStateFromString(const std::string& s)
{
    return valueOf(stagedStates, s, "staged state");
}
} // namespace callhome::inventory
