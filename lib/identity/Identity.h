#pragma once
#include "inventory/Types.h"
#include <optional>
#include <string>

namespace callhome::inventory {
class Inventory;
}

namespace callhome::identity {
enum class Verdict { Accept, Pending, Reject };

/** The identity step's answer for one connection; nothing secret is sent to the device unless Accept. */
struct Decision {
    Verdict verdict = Verdict::Reject;
    inventory::Device device; ///< the device as recorded by this contact
    std::string reason; ///< why, in operator words (also stored in the event log)
};

/** Where a connection comes from and what it presented. */
struct Peer {
    std::string connectionId; ///< "C42"
    std::string address; ///< numeric, no port
};

/** Applies DESIGN.md's identity rules against the inventory and records the contact and the decision. */
class IdentityPolicy {
public:
    explicit IdentityPolicy(inventory::Inventory& inventory);
    /** SSH: identity is the host key fingerprint. */
    Decision decideSsh(const Peer& peer, const std::string& fingerprint, const std::string& keyType);

private:
    inventory::Inventory& m_inventory;
};

std::string toString(Verdict v);
} // namespace callhome::identity
