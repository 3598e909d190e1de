#include "server/Admission.h"
#include "common/Address.h"
#include "common/Error.h"
#include "config/Config.h"
#include <algorithm>
#include <fmt/format.h>
#include <numeric>
#include <set>

namespace callhome::server {
namespace {
using Seconds = std::chrono::duration<double>;
/** Idle entries are dropped at most this often, so the sweep's cost is spread out. */
constexpr std::chrono::seconds SweepInterval { 1 };

size_t atLeastOne(size_t n)
{
    return std::max<size_t>(n, 1);
}
} // namespace

size_t handshakeCapacityFromFdLimit(rlim_t nofile)
{
    if (nofile == RLIM_INFINITY) {
        return MaxDerivedHandshakes;
    }
    if (nofile <= ReservedFds) {
        return 1;
    }
    const rlim_t connections = (nofile - ReservedFds) / FdsPerConnection;
    const rlim_t handshakes = std::max<rlim_t>(connections / 2, 1);
    return static_cast<size_t>(std::min<rlim_t>(handshakes, MaxDerivedHandshakes));
}

AdmissionLimits admissionLimits(const config::AdmissionSettings& settings, rlim_t nofile)
{
    AdmissionLimits l;
    l.maxHandshakes = settings.maxHandshakes ? settings.maxHandshakes : handshakeCapacityFromFdLimit(nofile);
    l.perSourceHandshakes = settings.perSourceHandshakes;
    l.perSourceRate = settings.perSourceRate;
    l.perSourceBurst = settings.perSourceBurst;
    l.blockAfterFailures = settings.blockAfterFailures;
    l.failureWindow = settings.failureWindow;
    l.blockDuration = settings.blockDuration;
    return l;
}

const char* toString(Refusal r)
{
    switch (r) {
    case Refusal::GlobalCap:
        return "global-cap";
    case Refusal::SourceCap:
        return "source-cap";
    case Refusal::SourceRate:
        return "source-rate";
    case Refusal::Blocked:
        return "blocked";
    }
    return "unknown";
}

uint64_t AdmissionSummary::refusedTotal() const noexcept
{
    return std::accumulate(refused.begin(), refused.end(), uint64_t { 0 });
}

std::string AdmissionSummary::describe() const
{
    std::string text = fmt::format("refused {} (", refusedTotal());
    for (size_t i = 0; i < RefusalCount; ++i) {
        text += fmt::format("{}{} {}", i ? ", " : "", toString(static_cast<Refusal>(i)), refused[i]);
    }
    text += fmt::format("), admitted {}, failed handshakes {}, new blocks {}, in flight {}, sources {}", admitted,
        failures, blocks, inFlight, sources);
    if (!topRefused.empty()) {
        text += "; most refused:";
        for (size_t i = 0; i < topRefused.size(); ++i) {
            text += fmt::format("{} {} ({})", i ? "," : "", topRefused[i].first, topRefused[i].second);
        }
    }
    return text;
}

Admission::Admission(const AdmissionLimits& limits)
    : m_limits(limits)
{ }

std::string Admission::keyOf(const std::string& address)
{
    try {
        return sourceKey(address);
    } catch (const UsageError&) {
        // getpeername + inet_ntop never gives this; keying it as itself still limits it, and the table bounds it.
        return address;
    }
}

bool Admission::activeBlock(const Source& s, SteadyTime now) const
{
    return s.blockedUntil && *s.blockedUntil > now;
}

bool Admission::evictable(const Source& s, SteadyTime now) const
{
    return s.inFlight == 0 && !activeBlock(s, now);
}

void Admission::touch(Source& s, SteadyTime now)
{
    s.activeAt = std::max(s.activeAt, now);
    m_lru.splice(m_lru.begin(), m_lru, s.lru);
}

void Admission::erase(Table::iterator it)
{
    m_lru.erase(it->second.lru);
    m_sources.erase(it);
}

Admission::Source* Admission::findOrCreate(const std::string& key, SteadyTime now)
{
    if (auto it = m_sources.find(key); it != m_sources.end()) {
        return &it->second;
    }
    const size_t cap = atLeastOne(m_limits.maxSources);
    // Bounded work: a table full of sources that are busy or blocked must not make every accept walk all of it.
    for (size_t scanned = 0; m_sources.size() >= cap && scanned < EvictionScan && !m_lru.empty(); ++scanned) {
        Entry* oldest = m_lru.back();
        if (evictable(oldest->second, now)) {
            erase(m_sources.find(oldest->first));
        } else {
            touch(oldest->second, now);
        }
    }
    if (m_sources.size() >= cap) {
        return nullptr;
    }
    auto [it, inserted] = m_sources.try_emplace(key);
    Source& s = it->second;
    s.tokens = std::max(m_limits.perSourceBurst, 1.0);
    s.refilledAt = now;
    s.activeAt = now;
    m_lru.push_front(&*it);
    s.lru = m_lru.begin();
    return &s;
}

void Admission::sweep(SteadyTime now)
{
    auto idleAfter = std::chrono::duration_cast<SteadyTime::duration>(Seconds(m_limits.failureWindow));
    if (m_limits.perSourceRate > 0) {
        // By then an unused bucket is full again: a fresh entry would start in the same state.
        idleAfter = std::max(idleAfter,
            std::chrono::duration_cast<SteadyTime::duration>(
                Seconds(std::max(m_limits.perSourceBurst, 1.0) / m_limits.perSourceRate)));
    }
    idleAfter = std::max<SteadyTime::duration>(idleAfter, SweepInterval);
    const auto cutoff = now - idleAfter;
    // Least recently active last: stop at the first entry active since the cutoff. Each stale entry is visited once:
    // dropped, or (busy, blocked) moved to the front as active now.
    while (!m_lru.empty() && m_lru.back()->second.activeAt < cutoff) {
        Entry* oldest = m_lru.back();
        if (evictable(oldest->second, now)) {
            erase(m_sources.find(oldest->first));
        } else {
            touch(oldest->second, now);
        }
    }
}

void Admission::refill(Source& s, SteadyTime now) const
{
    const double burst = std::max(m_limits.perSourceBurst, 1.0);
    if (now > s.refilledAt) {
        const double elapsed = Seconds(now - s.refilledAt).count();
        s.tokens = std::min(burst, s.tokens + elapsed * m_limits.perSourceRate);
        s.refilledAt = now;
    }
    // A reload may have lowered the burst.
    s.tokens = std::min(burst, s.tokens);
}

void Admission::countRefusal(Refusal r, Source* s)
{
    ++m_counts.refused[static_cast<size_t>(r)];
    if (s) {
        if (s->refusedEpoch != m_epoch) {
            s->refusedEpoch = m_epoch;
            s->refusedCount = 0;
        }
        ++s->refusedCount;
    }
}

Verdict Admission::admit(const std::string& address, SteadyTime now)
{
    Verdict v { std::nullopt, keyOf(address) };
    std::lock_guard lock(m_mutex);
    if (!m_nextSweep || now >= *m_nextSweep) {
        sweep(now);
        m_nextSweep = now + SweepInterval;
    }
    auto refuse = [&](Refusal r, Source* s) {
        countRefusal(r, s);
        v.refusal = r;
        return v;
    };

    Source* s = nullptr;
    if (auto it = m_sources.find(v.key); it != m_sources.end()) {
        s = &it->second;
        touch(*s, now);
        if (activeBlock(*s, now)) {
            return refuse(Refusal::Blocked, s);
        }
        if (s->blockedUntil) {
            // expired: the source starts over
            s->blockedUntil.reset();
            s->blockReason.clear();
            s->blockConfirmed = false;
        }
    }
    if (m_inFlight >= atLeastOne(m_limits.maxHandshakes)) {
        return refuse(Refusal::GlobalCap, s);
    }
    if (!s) {
        s = findOrCreate(v.key, now);
        if (!s) {
            return refuse(Refusal::GlobalCap, nullptr);
        }
    }
    if (m_limits.perSourceHandshakes > 0 && s->inFlight >= m_limits.perSourceHandshakes) {
        return refuse(Refusal::SourceCap, s);
    }
    if (m_limits.perSourceRate > 0) {
        refill(*s, now);
        if (s->tokens < 1.0) {
            return refuse(Refusal::SourceRate, s);
        }
        s->tokens -= 1.0;
    }
    ++s->inFlight;
    ++m_inFlight;
    ++m_counts.admitted;
    return v;
}

std::optional<BlockDecision> Admission::finished(const std::string& address, bool failed, SteadyTime now)
{
    const auto key = keyOf(address);
    std::lock_guard lock(m_mutex);
    auto it = m_sources.find(key);
    // Entries with handshakes in flight are never evicted, so a missing entry means there was no admit().
    if (it == m_sources.end() || it->second.inFlight == 0) {
        return std::nullopt;
    }
    Source& s = it->second;
    --s.inFlight;
    if (m_inFlight > 0) {
        --m_inFlight;
    }
    touch(s, now);
    if (!failed) {
        return std::nullopt;
    }
    ++m_counts.failures;
    if (m_limits.blockAfterFailures == 0 || activeBlock(s, now)) {
        // Handshakes admitted before the block that fail afterwards do not block it again: one decision, one event.
        return std::nullopt;
    }
    if (s.failures == 0 || now - s.windowStart >= m_limits.failureWindow) {
        s.windowStart = now;
        s.failures = 0;
    }
    if (++s.failures < m_limits.blockAfterFailures) {
        return std::nullopt;
    }
    BlockDecision d { .key = key,
        .until = now + m_limits.blockDuration,
        .duration = m_limits.blockDuration,
        .failures = s.failures,
        .reason = fmt::format("{} failed handshakes within {} s", s.failures, m_limits.failureWindow.count()) };
    s.blockedUntil = d.until;
    s.blockReason = d.reason;
    s.blockConfirmed = false;
    s.failures = 0;
    ++m_counts.blocks;
    return d;
}

bool Admission::block(const std::string& keyOrAddress, SteadyTime until, const std::string& reason, SteadyTime now)
{
    const auto key = sourceKey(keyOrAddress);
    std::lock_guard lock(m_mutex);
    if (until <= now) {
        return false;
    }
    Source* s = findOrCreate(key, now);
    if (!s) {
        return false;
    }
    touch(*s, now);
    if (!activeBlock(*s, now) || *s->blockedUntil < until) {
        s->blockedUntil = until;
    }
    s->blockReason = reason;
    s->blockConfirmed = true;
    return true;
}

bool Admission::unblock(const std::string& keyOrAddress, SteadyTime now)
{
    const auto key = sourceKey(keyOrAddress);
    std::lock_guard lock(m_mutex);
    auto it = m_sources.find(key);
    if (it == m_sources.end()) {
        return false;
    }
    Source& s = it->second;
    const bool was = activeBlock(s, now);
    s.blockedUntil.reset();
    s.blockReason.clear();
    s.blockConfirmed = false;
    s.failures = 0;
    return was;
}

bool Admission::isBlocked(const std::string& keyOrAddress, SteadyTime now) const
{
    const auto key = sourceKey(keyOrAddress);
    std::lock_guard lock(m_mutex);
    auto it = m_sources.find(key);
    return it != m_sources.end() && activeBlock(it->second, now);
}

std::vector<BlockedEntry> Admission::blocked(SteadyTime now) const
{
    std::vector<BlockedEntry> out;
    {
        std::lock_guard lock(m_mutex);
        for (const auto& [key, s] : m_sources) {
            if (activeBlock(s, now)) {
                out.push_back({ key, *s.blockedUntil, s.blockReason, s.blockConfirmed });
            }
        }
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
    return out;
}

std::vector<std::string> Admission::reconcile(const std::vector<PersistedBlock>& persisted, SteadyTime now)
{
    std::set<std::string> listed;
    for (const auto& p : persisted) {
        if (p.until > now) {
            listed.insert(keyOf(p.key));
        }
    }
    std::vector<std::string> lifted;
    std::lock_guard lock(m_mutex);
    for (const auto& p : persisted) {
        if (p.until <= now) {
            continue;
        }
        Source* s = findOrCreate(keyOf(p.key), now);
        if (!s) {
            continue; // table full of busy or blocked sources: this block waits for the next reconcile
        }
        touch(*s, now);
        if (!activeBlock(*s, now) || *s->blockedUntil < p.until) {
            s->blockedUntil = p.until;
        }
        s->blockReason = p.reason;
        s->blockConfirmed = true;
    }
    for (auto& [key, s] : m_sources) {
        if (activeBlock(s, now) && s.blockConfirmed && !listed.contains(key)) {
            s.blockedUntil.reset();
            s.blockReason.clear();
            s.blockConfirmed = false;
            s.failures = 0;
            lifted.push_back(key);
        }
    }
    std::sort(lifted.begin(), lifted.end());
    return lifted;
}

void Admission::setLimits(const AdmissionLimits& limits)
{
    std::lock_guard lock(m_mutex);
    m_limits = limits;
}

AdmissionLimits Admission::limits() const
{
    std::lock_guard lock(m_mutex);
    return m_limits;
}

AdmissionSummary Admission::takeSummary()
{
    std::lock_guard lock(m_mutex);
    AdmissionSummary out = m_counts;
    out.inFlight = m_inFlight;
    out.sources = m_sources.size();
    std::vector<std::pair<std::string, uint64_t>> refused;
    for (const auto& [key, s] : m_sources) {
        if (s.refusedEpoch == m_epoch && s.refusedCount > 0) {
            refused.emplace_back(key, s.refusedCount);
        }
    }
    const auto top = std::min(refused.size(), AdmissionSummary::TopRefused);
    std::partial_sort(refused.begin(), refused.begin() + static_cast<std::ptrdiff_t>(top), refused.end(),
        [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
    refused.resize(top);
    out.topRefused = std::move(refused);
    m_counts = {};
    ++m_epoch;
    return out;
}

size_t Admission::inFlight() const
{
    std::lock_guard lock(m_mutex);
    return m_inFlight;
}

size_t Admission::sourceCount() const
{
    std::lock_guard lock(m_mutex);
    return m_sources.size();
}
} // namespace callhome::server
