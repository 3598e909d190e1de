#pragma once
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <sys/resource.h>
#include <unordered_map>
#include <vector>

namespace callhome::config {
struct AdmissionSettings;
}

namespace callhome::server {
/** Monotonic time of the accept path; admission never reads a clock itself (tests pass their own). */
using SteadyTime = std::chrono::steady_clock::time_point;

/**
 * The global cap on handshakes in flight for an open-file limit (RLIMIT_NOFILE soft limit):
 *   min(MaxDerivedHandshakes, max(1, ((nofile - ReservedFds) / FdsPerConnection) / 2))
 * ReservedFds (64) covers the process's own descriptors (inventory database + WAL + shm, listening sockets, control
 * socket, event loops, logs, hook pipes). FdsPerConnection (3) is the worst case of one device: its socket plus the
 * socketpair that carries every session's NETCONF to libnetconf2. Half of that connection budget may be handshakes;
 * the other half stays for established sessions, so a flood of handshakes cannot starve them of descriptors. The
 * upper clamp bounds memory: a silent SSH peer costs only its descriptor and a small object (no libssh state before
 * the device's banner), a handshake in progress tens of KiB, so 32,768 of them stay within about 2 GiB even if all
 * were mid key exchange (per-source caps keep one source far below that). RLIM_INFINITY gives the clamp.
 */
size_t handshakeCapacityFromFdLimit(rlim_t nofile);
inline constexpr rlim_t ReservedFds = 64;
inline constexpr rlim_t FdsPerConnection = 3;
inline constexpr size_t MaxDerivedHandshakes = 32768;

/** Admission limits; the daemon builds them from config::AdmissionSettings (and the fd limit). */
struct AdmissionLimits {
    size_t maxHandshakes = 1024; ///< handshakes in flight, all sources together; 0 is taken as 1
    size_t perSourceHandshakes = 64; ///< handshakes in flight per source key; 0 = no per-source cap
    double perSourceRate = 50; ///< token bucket refill per source key, connections per second; 0 = no rate limit
    double perSourceBurst = 200; ///< token bucket size (values below 1 are taken as 1)
    unsigned blockAfterFailures = 50; ///< failed handshakes within failureWindow that block a source; 0 = never
    std::chrono::seconds failureWindow { 60 };
    std::chrono::seconds blockDuration { 600 };
    size_t maxSources = 100'000; ///< entries in the per-source table (see Admission); 0 is taken as 1
};

/** The limits for the configured settings; max-handshakes 0 becomes handshakeCapacityFromFdLimit(nofile). */
AdmissionLimits admissionLimits(const config::AdmissionSettings& settings, rlim_t nofile);

/** Why a connection was refused; a connection that is not refused is admitted. */
enum class Refusal {
    GlobalCap, ///< maxHandshakes in flight, or the per-source table is full of sources that cannot be evicted
    SourceCap, ///< perSourceHandshakes of this source in flight
    SourceRate, ///< this source's token bucket is empty
    Blocked, ///< this source is blocked (too many failed handshakes, or loaded from the inventory)
};
inline constexpr size_t RefusalCount = 4;
/** "global-cap", "source-cap", "source-rate", "blocked" (stable: they appear in logs and events). */
const char* toString(Refusal r);

/** The outcome of admit(). */
struct Verdict {
    std::optional<Refusal> refusal; ///< nullopt: admitted, and finished() must be called exactly once
    std::string key; ///< the source key the limits applied to (callhome::sourceKey of the address)
    bool admitted() const noexcept { return !refusal; }
};

/** A source blocked by finished(): the daemon writes it to the inventory (one `blocked` event) and logs it. */
struct BlockDecision {
    std::string key;
    SteadyTime until;
    std::chrono::seconds duration;
    unsigned failures = 0; ///< failed handshakes counted in the window that led to the block
    std::string reason; ///< "50 failed handshakes within 60 s"
};

/** A source that is blocked now. */
struct BlockedEntry {
    std::string key;
    SteadyTime until;
    std::string reason;
    /// true once the block was seen in the inventory (loaded with block() or confirmed by reconcile()); a block that
    /// finished() decided is unconfirmed until its inventory row has been seen
    bool confirmed = false;
};

/** A block as the inventory holds it, converted to steady time by the caller: the input of reconcile(). */
struct PersistedBlock {
    std::string key;
    SteadyTime until;
    std::string reason;
};

/** Counts since the previous takeSummary(): what the daemon logs and writes as one `refused-summary` event. */
struct AdmissionSummary {
    uint64_t admitted = 0;
    std::array<uint64_t, RefusalCount> refused {}; ///< indexed by Refusal
    uint64_t failures = 0; ///< handshakes that finished with failed = true
    uint64_t blocks = 0; ///< block decisions returned by finished()
    size_t inFlight = 0; ///< handshakes in flight when the summary was taken (a gauge, not reset)
    size_t sources = 0; ///< entries in the per-source table then (a gauge)
    /// the sources refused most often in this interval, most first (at most TopRefused; evicted sources drop out)
    std::vector<std::pair<std::string, uint64_t>> topRefused;

    uint64_t refusedTotal() const noexcept;
    uint64_t refusedFor(Refusal r) const noexcept { return refused[static_cast<size_t>(r)]; }
    /** Nothing refused and no failure: the daemon need not write anything for this interval. */
    bool quiet() const noexcept { return refusedTotal() == 0 && failures == 0 && blocks == 0; }
    /** One line: "refused 1212 (global-cap 0, source-cap 12, source-rate 1200, blocked 0), admitted 40, ..." */
    std::string describe() const;
    static constexpr size_t TopRefused = 5;
};

/**
 * Admission control on the accept path, before any crypto (RFC 8071 §9: a listener must withstand floods and
 * repeated failed attempts). Pure logic: no I/O, no clock (every call takes `now`), thread-safe (one mutex, a hash
 * map; every call is O(1) amortised except blocked(), reconcile() and takeSummary(), which walk the table).
 *
 * Per source key (callhome::sourceKey: IPv4 /32, IPv6 /64, IPv4-mapped as IPv4): a cap on handshakes in flight and a
 * token bucket (rate per second, burst). All sources: a cap on handshakes in flight. A source whose handshakes fail
 * blockAfterFailures times within failureWindow is blocked for blockDuration. The window is fixed and starts at the
 * first failure after the previous window ended, so a block always means that many failures really happened within
 * the window (a run of failures straddling two windows may need up to twice as many). Successful handshakes do not
 * reset the count (devices behind one NAT share a key; one good device must not hide a bad one).
 *
 * Memory bounds: the per-source table holds at most maxSources entries (about 250 bytes each with the key and
 * allocator overhead: 100k entries ≈ 25 MB). It is kept in least-recently-active order. An entry is evictable when it
 * has no handshake in flight and no unexpired block; evicting it loses nothing once it has been idle for
 * max(failureWindow, burst / rate), and such entries are dropped by a sweep at most once a second. A new source
 * arriving at a full table evicts the least recently active evictable entry, looking at no more than EvictionScan
 * entries (the non-evictable ones it meets move to the front); when none is found the connection is refused as
 * GlobalCap. Entries with handshakes in flight are bounded by maxHandshakes, blocked ones by the table size.
 */
class Admission {
public:
    static constexpr size_t EvictionScan = 8;

    explicit Admission(const AdmissionLimits& limits);

    /** Decides on a new connection from `address` (numeric, as from getpeername). Counts the verdict. */
    Verdict admit(const std::string& address, SteadyTime now);
    /**
     * The admitted handshake of `address` ended (completed, failed, timed out). Releases its slots; with `failed`
     * counts a failure and may block the source: returns the block once, when it is decided. A call without a
     * matching admit() is ignored.
     */
    std::optional<BlockDecision> finished(const std::string& address, bool failed, SteadyTime now);

    /**
     * Blocks `keyOrAddress` until `until` (or longer, if it is blocked longer already), as confirmed: for blocks
     * loaded from the inventory. True when the source is blocked afterwards; false when `until` is not after `now`
     * or the table is full of entries that cannot be evicted. Throws UsageError on an invalid key.
     */
    bool block(const std::string& keyOrAddress, SteadyTime until, const std::string& reason, SteadyTime now);
    /** Lifts a block and its failure count (operator unblock); true when the source was blocked at `now`. Throws
     * UsageError on an invalid key. */
    bool unblock(const std::string& keyOrAddress, SteadyTime now);
    bool isBlocked(const std::string& keyOrAddress, SteadyTime now) const;
    /** Sources blocked at `now`, ordered by key. */
    std::vector<BlockedEntry> blocked(SteadyTime now) const;
    /**
     * Makes the blocks agree with the inventory's list of unexpired blocks: listed ones are blocked (and confirmed);
     * a confirmed block that is no longer listed was lifted by an operator and is unblocked; an unconfirmed one (its
     * inventory write may still be queued) stays. Returns the keys unblocked, for the daemon's log.
     */
    std::vector<std::string> reconcile(const std::vector<PersistedBlock>& persisted, SteadyTime now);

    /** Applies new limits (config reload); counts, buckets and blocks are kept and follow the new limits lazily. */
    void setLimits(const AdmissionLimits& limits);
    AdmissionLimits limits() const;
    /** Returns the counts since the previous call (or construction) and starts a new interval. */
    AdmissionSummary takeSummary();

    size_t inFlight() const;
    size_t sourceCount() const;

private:
    struct Source;
    using Entry = std::pair<const std::string, Source>;
    using Lru = std::list<Entry*>; ///< front = most recently active; unordered_map nodes never move
    using Table = std::unordered_map<std::string, Source>;

    struct Source {
        size_t inFlight = 0;
        double tokens = 0;
        SteadyTime refilledAt;
        unsigned failures = 0;
        SteadyTime windowStart;
        std::optional<SteadyTime> blockedUntil;
        std::string blockReason;
        bool blockConfirmed = false;
        uint64_t refusedEpoch = 0;
        uint64_t refusedCount = 0;
        SteadyTime activeAt;
        Lru::iterator lru;
    };

    /** Normalises without throwing: an address that is not numeric keys as itself (never seen from getpeername). */
    static std::string keyOf(const std::string& address);
    bool evictable(const Source& s, SteadyTime now) const;
    void touch(Source& s, SteadyTime now);
    /** The entry for `key`, created (evicting if needed) when missing; nullptr when the table is full. */
    Source* findOrCreate(const std::string& key, SteadyTime now);
    void erase(Table::iterator it);
    void sweep(SteadyTime now);
    void refill(Source& s, SteadyTime now) const;
    void countRefusal(Refusal r, Source* s);
    bool activeBlock(const Source& s, SteadyTime now) const;

    mutable std::mutex m_mutex;
    AdmissionLimits m_limits;
    Table m_sources;
    Lru m_lru;
    size_t m_inFlight = 0;
    std::optional<SteadyTime> m_nextSweep;
    uint64_t m_epoch = 1;
    AdmissionSummary m_counts;
};
} // namespace callhome::server
