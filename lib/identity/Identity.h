#pragma once
#include "identity/Certificate.h"
#include "inventory/Types.h"
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace callhome::inventory {
class Inventory;
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

/** Applies DESIGN.md's identity rules against the inventory and records the contact and the decision. */
class IdentityPolicy {
public:
    IdentityPolicy(inventory::Inventory& inventory, std::vector<CertToNameRule> certToName = {});
    /** SSH: identity is the host key fingerprint. */
    Decision decideSsh(const Peer& peer, const std::string& fingerprint, const std::string& keyType);
    /**
     * TLS: the presented chain (leaf first) must verify to a manufacturer anchor — identity (manufacturer, serial read
     * from the certificate) — or be a self-signed certificate, pinned by fingerprint once approved. `trustStore` is
     * one snapshot (TrustStoreHolder::current()) used for the whole decision. What policy let pass (an expired CRL
     * under tls/crl-expired ignore) is added to the event and logged as a warning, at most once a minute per CRL.
     */
    Decision decideTls(const Peer& peer, const std::vector<x509_st*>& presented, const TrustStore& trustStore);

private:
    Decision fromContact(
        const Peer& peer, const inventory::Contact& contact, const std::string& what, const std::string& note = {});
    Decision refuse(const Peer& peer, const std::string& fingerprint, const std::string& reason);
    void warnRateLimited(const Peer& peer, const std::string& what, const std::string& warning);

    inventory::Inventory& m_inventory;
    std::vector<CertToNameRule> m_certToName;

    struct WarningState {
        std::chrono::steady_clock::time_point last;
        unsigned suppressed = 0;
    };
    std::mutex m_warningsMutex; ///< decideTls runs on many handshake threads
    std::map<std::string, WarningState> m_warnings; ///< by warning text: one entry per distinct stale CRL
};

std::string toString(Verdict v);
} // namespace callhome::identity
