#include "identity/Identity.h"
#include "common/Log.h"
#include "common/Time.h"
#include "inventory/Inventory.h"

namespace callhome::identity {
using inventory::DeviceState;
using inventory::EventKind;

std::string toString(Verdict v)
{
    switch (v) {
    case Verdict::Accept:
        return "accept";
    case Verdict::Pending:
        return "pending";
    case Verdict::Reject:
        return "reject";
    }
    return "?";
}

IdentityPolicy::IdentityPolicy(inventory::Inventory& inventory)
    : m_inventory(inventory)
{ }

Decision IdentityPolicy::decideSsh(const Peer& peer, const std::string& fingerprint, const std::string& keyType)
{
    auto logger = log::get(log::Identity);
    auto contact = m_inventory.recordContact(inventory::Transport::Ssh, fingerprint, keyType, peer.address, now());
    Decision d;
    d.device = contact.device;
    const auto& dev = d.device;
    EventKind kind = EventKind::Refused;
    switch (dev.state) {
    case DeviceState::Approved:
        d.verdict = Verdict::Accept;
        d.reason = "approved host key";
        kind = EventKind::Accepted;
        break;
    case DeviceState::Pending:
        d.verdict = Verdict::Pending;
        d.reason = contact.created ? "first contact, awaiting approval" : "awaiting approval";
        if (dev.sameAddressAs) {
            auto known = m_inventory.findById(*dev.sameAddressAs);
            std::string knownName = known && known->name ? *known->name : "#" + std::to_string(*dev.sameAddressAs);
            d.reason += "; new key from the last address of known device " + knownName
                + " (re-imaged, replaced, or an impostor: `callhomectl rekey " + knownName + " " + fingerprint + "`)";
        }
        kind = EventKind::Pending;
        break;
    case DeviceState::Rejected:
        d.verdict = Verdict::Reject;
        d.reason = "host key rejected by operator";
        break;
    case DeviceState::Revoked:
        d.verdict = Verdict::Reject;
        d.reason = "host key revoked by operator";
        break;
    }
    m_inventory.addEvent(inventory::Event { .at = now(),
        .kind = kind,
        .deviceId = dev.id,
        .deviceName = dev.name.value_or(""),
        .connectionId = peer.connectionId,
        .address = peer.address,
        .fingerprint = fingerprint,
        .detail = d.reason });
    auto level = d.verdict == Verdict::Accept ? spdlog::level::info : spdlog::level::warn;
    logger->log(level, "[{} {}] {} {} {}: {} (attempt {})", peer.connectionId, peer.address, toString(d.verdict),
        keyType, fingerprint, d.reason, dev.attempts);
    return d;
}
} // namespace callhome::identity
