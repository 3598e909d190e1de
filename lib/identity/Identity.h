#pragma once
#include "config/Config.h"
#include "identity/Certificate.h"
#include "inventory/Types.h"
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace callhome::inventory {
class Inventory;
class Writer;
struct Contact;
} // namespace callhome::inventory

struct x509_st;

namespace callhome::identity {
class TrustStore;

enum class Verdict { Accept, Pending, Reject };

/** The identity step's answer for one connection; nothing secret is sent to the device unless Accept. */
struct Decision {
    Verdict verdict = Verdict::Reject;
    std::optional<inventory::Device> device; ///< the device as recorded by this contact; none for an invalid chain
    std::string reason; ///< why, in operator words (also stored in the event log)
};

/** Where a connection comes from. */
struct Peer {
    std::string connectionId; ///< "C42"
    std::string address; ///< numeric, no port
};

class IdentityIndex;

/** Bounds on unknown identities stored as pending devices (0 = no bound). */
struct PendingCaps {
    size_t global = 10'000;
    size_t perSource = 100; ///< per source key (IPv4 address, IPv6 /64), by the pending devices' last address
};

/** New identities not stored because a pending cap was reached, since the previous takeCapped(). */
struct CappedCounts {
    uint64_t global = 0;
    uint64_t perSource = 0;
    std::vector<std::pair<std::string, uint64_t>> topSources; ///< most refused first (at most 5)
    uint64_t total() const noexcept { return global + perSource; }
    /** "12000 new identities not stored (pending cap: 10000 reached 0 times, 100 per source 12000 times); ..." */
    std::string describe(const PendingCaps& caps) const;
};

/**
 * Applies DESIGN.md's identity rules against the inventory and records the contact and the decision.
 *
 * With an IdentityIndex and a Writer (the daemon), a known identity is decided from the index without touching
 * SQLite (quickSsh/quickTls, on the event loop); its contact and event are queued to the writer. Only a new identity
 * waits for the inventory (decideSsh/decideTls, on the identity thread), because it needs its device id; beyond the
 * pending caps it is not stored at all, only counted. Without them (tests, tools) every decision reads and writes the
 * inventory directly.
 */
class IdentityPolicy {
public:
    IdentityPolicy(inventory::Inventory& inventory, std::vector<CertToNameRule> certToName = {});
    IdentityPolicy(inventory::Inventory& inventory, IdentityIndex& index, inventory::Writer& writer, PendingCaps caps,
        std::vector<CertToNameRule> certToName = {});
    /** SSH, known identity: the decision without waiting on the inventory; nullopt when it must (a new identity). */
    std::optional<Decision> quickSsh(const Peer& peer, const std::string& fingerprint, const std::string& keyType);
    /** SSH: identity is the host key fingerprint. May wait for the inventory. */
    Decision decideSsh(const Peer& peer, const std::string& fingerprint, const std::string& keyType);
    /** TLS, known identity: like quickSsh. */
    std::optional<Decision> quickTls(
        const Peer& peer, const std::vector<x509_st*>& presented, const TrustStore& trustStore);
    /**
     * TLS: the presented chain (leaf first) must verify to a manufacturer anchor — identity (manufacturer, serial read
     * from the certificate) — or be a self-signed certificate, pinned by fingerprint once approved. `trustStore` is
     * one snapshot (TrustStoreHolder::current()) used for the whole decision. What policy let pass (an expired CRL
     * under tls/crl-expired ignore) is added to the event and logged as a warning, at most once a minute per CRL.
     */
    Decision decideTls(const Peer& peer, const std::vector<x509_st*>& presented, const TrustStore& trustStore);
    /** The counts of new identities refused by the pending caps since the previous call. */
    CappedCounts takeCapped();
    const PendingCaps& caps() const noexcept { return m_caps; }
    /**
     * admission/auto-approve: first-contact identities matching a rule are approved at once (decideSsh/decideTls),
     * named rule.namePrefix + id, decided_by "auto-approve rule NAME". Thread-safe; a reload replaces them.
     */
    void setAutoApprove(std::vector<config::AutoApproveRule> rules);

private:
    /** A verified chain's identity, or the refusal. */
    struct TlsCheck {
        std::optional<Decision> refusal;
        inventory::TlsIdentity identity;
        std::string what;
        std::string warning;
    };
    TlsCheck checkTls(const Peer& peer, const std::vector<x509_st*>& presented, const TrustStore& trustStore);
    std::optional<Decision> fromIndexSsh(const Peer& peer, const std::string& fingerprint, const std::string& keyType);
    std::optional<Decision> fromIndexTls(const Peer& peer, const TlsCheck& check);
    /** A new identity beyond a pending cap: counted, not stored. */
    std::optional<Decision> capped(const Peer& peer, const std::string& what);
    Decision fromContact(
        const Peer& peer, const inventory::Contact& contact, const std::string& what, const std::string& note = {});
    Decision refuse(const Peer& peer, const std::string& fingerprint, const std::string& reason);
    void record(const inventory::Event& event);
    /** The auto-approve rule `candidate` matches (a copy: a reload may replace the rules meanwhile). */
    std::optional<config::AutoApproveRule> autoApproveRule(
        config::Transport transport, const std::string& address, const std::string& manufacturer);
    void warnRateLimited(const Peer& peer, const std::string& what, const std::string& warning);

    inventory::Inventory& m_inventory;
    IdentityIndex* m_index = nullptr;
    inventory::Writer* m_writer = nullptr;
    PendingCaps m_caps;
    std::vector<CertToNameRule> m_certToName;
    std::mutex m_autoApproveMutex;
    std::shared_ptr<const std::vector<config::AutoApproveRule>> m_autoApprove
        = std::make_shared<const std::vector<config::AutoApproveRule>>();

    std::mutex m_cappedMutex;
    CappedCounts m_capped;
    std::map<std::string, uint64_t> m_cappedBySource; ///< this interval; bounded by the distinct sources seen

    struct WarningState {
        std::chrono::steady_clock::time_point last;
        unsigned suppressed = 0;
    };
    std::mutex m_warningsMutex; ///< decideTls runs on many handshake threads
    std::map<std::string, WarningState> m_warnings; ///< by warning text: one entry per distinct stale CRL
};

std::string toString(Verdict v);
} // namespace callhome::identity
