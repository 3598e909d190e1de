#pragma once
// The isolation scenario the callhome_hostile* suites run against the in-process station: real devices calling
// home while a hostile peer is active, with every wait under a deadline.
#include "CallhomeFixture.h"
#include "harness/HostilePeer.h"
#include "harness/SshdDevice.h"
#include "harness/StunnelDevice.h"
#include "harness/Util.h"
#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace callhome::test::hostile {
using namespace std::chrono_literals;

/** What the station owes a real device while hostile peers are active: a session, or an ended one on revoke. */
constexpr auto kDeadline = 5s;
/** How long the station may take with a well-behaved device before any hostile peer is there. */
constexpr auto kSetupDeadline = 30s;
/** How long approved hostile peers may take to get their session (or as far as their mode goes). */
constexpr auto kHostileStartDeadline = 15s;
/** Keepalive settings the hostile suites run the station with. */
constexpr auto kKeepaliveInterval = 1s;
// The station gives up after this many unanswered keepalives (timeouts/keepalive-count-max).
constexpr unsigned kKeepaliveCountMax = 3;

/** A loopback source address for hostile peer number `n` (127.3.x.y): not the real devices' 127.0.0.1. */
std::string hostileSource(int n);
/** Polls `condition` (20 ms) until it holds or `deadline` passes; false on timeout, for a CHECK that goes on. */
bool within(std::chrono::milliseconds deadline, const std::function<bool()>& condition);
/** Milliseconds since `start`, for the measured times the suites print. */
long msSince(Clock::time_point start);
/** Threads of this process (/proc/self/task): the daemon runs in-process. */
size_t threadCount();
/** The most threads seen while sampling for `window` (a burst of per-connection threads shows up). */
size_t maxThreadCount(std::chrono::milliseconds window);
/** keepaliveInterval = kKeepaliveInterval, keepaliveCountMax = kKeepaliveCountMax; restarts the daemon. */
void configureKeepalives(CallhomeFixture& f);

/** One real, approved device: calls home on request; its inventory id. */
struct RealDevice {
    std::string name;
    int64_t id = 0;
    std::function<Process&()> callHome;
    std::vector<std::string> logs; ///< the device side's logs (sshd or stunnel, netconfd), shown when a check fails
};

/**
 * Three real approved devices of one transport: `steady` and `victim` are connected by the constructor (before any
 * hostile peer), `late` is approved but calls only when check() says so. SSH: OpenSSH sshd + netconfd; TLS: stunnel +
 * netconfd with DevPki identities (sn-0001 pre-provisioned, unknown-0005 and selfsigned approved).
 */
class RealDevices {
public:
    explicit RealDevices(CallhomeFixture& f);
    ~RealDevices();
    RealDevice steady;
    RealDevice victim;
    RealDevice late;

    /**
     * The isolation checks, with a hostile peer active (`what` names it in messages): `late` gets its session within
     * kDeadline; revoking `victim` ends its session within kDeadline (in the inventory and at the device); `steady`
     * stays connected all along and has no session-closed event. Prints the measured times.
     */
    void check(const std::string& what);
    /** CHECKs that `steady` is connected (inventory). */
    void checkSteady(const std::string& where);

private:
    CallhomeFixture& m_f;
    std::vector<std::unique_ptr<SshdDevice>> m_sshd;
    std::vector<std::unique_ptr<StunnelDevice>> m_stunnel;
    Process* m_victimAttempt = nullptr;
    Process* m_steadyAttempt = nullptr;
};

/** True when the inventory shows the device connected. */
bool connected(CallhomeFixture& f, int64_t id);

/**
 * Lets an SSH or TLS hostile peer call once in `mode` (the station records it pending and closes), approves it as
 * `name`, and lets it call again in `mode`; returns that attempt once it wrote `activeMarker`.
 */
HostileAttempt& approvedHostileAttempt(CallhomeFixture& f, HostilePeer& peer, const std::string& mode,
    const std::string& name, const std::string& activeMarker, const std::vector<std::string>& extraArgs = {});

/**
 * Hostile peers are run several at a time: more than the fixture's handshake workers, so that a fixed pool of
 * blocking threads of that size cannot absorb them.
 */
constexpr int kHostilePeers = 6;

/** `count` approved hostile SSH or TLS peers in one mode, each with its own identity and source address. */
class HostileSwarm {
public:
    /**
     * Creates the peers (TLS: self-signed identities), lets them all call once (pending), approves them as
     * hostile-1..N and lets them call again; returns once every one wrote activeMarker(mode), or after
     * kHostileStartDeadline with a failed CHECK for each that did not.
     */
    HostileSwarm(CallhomeFixture& f, HostileKind kind, const std::string& mode, int count = kHostilePeers,
        const std::vector<std::string>& extraArgs = {});
    /**
     * Revokes every hostile device: each must be disconnected in the inventory and see its connection closed
     * within kDeadline (measured from the revocation; printed).
     */
    void checkRevoked(const std::string& what);
    std::vector<int64_t> ids;
    std::vector<std::unique_ptr<HostilePeer>> peers;
    std::vector<HostileAttempt*> attempts;

private:
    CallhomeFixture& m_f;
};

/** The marker after which a hostile peer in `mode` is doing its worst (see tests/hostile/README.md). */
std::string activeMarker(const std::string& mode);
} // namespace callhome::test::hostile
