#include "identity/Identity.h"
#include "common/Log.h"
#include "common/Time.h"
#include "identity/TrustStore.h"
#include "inventory/Inventory.h"
#include <utility>

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

IdentityPolicy::IdentityPolicy(inventory::Inventory& inventory, std::vector<CertToNameRule> certToName)
    : m_inventory(inventory)
    , m_certToName(std::move(certToName))
{ }

Decision IdentityPolicy::decideSsh(const Peer& peer, const std::string& fingerprint, const std::string& keyType)
{
    auto contact = m_inventory.recordContact(inventory::Transport::Ssh, fingerprint, keyType, peer.address, now());
    return fromContact(peer, contact, keyType + " host key " + fingerprint);
}

Decision IdentityPolicy::decideTls(
    const Peer& peer, const std::vector<x509_st*>& presented, const TrustStore& trustStore)
{
    ChainVerdict chain;
    try {
        chain = trustStore.verify(presented);
    } catch (const CertificateError& e) {
        return refuse(peer, "", std::string("unusable certificate: ") + e.what());
    }
    if (chain.kind == ChainVerdict::Kind::Invalid) {
        std::string fp;
        try {
            fp = presented.empty() ? "" : inspect(presented.front()).fingerprint;
        } catch (const CertificateError&) { }
        return refuse(peer, fp, chain.reason);
    }
    const auto& leaf = chain.chain.front();
    inventory::TlsIdentity id;
    id.fingerprint = leaf.fingerprint;
    id.subject = leaf.subject;
    id.issuer = leaf.issuer;
    std::string what;
    if (chain.kind == ChainVerdict::Kind::Verified) {
        id.manufacturer = chain.manufacturer->name;
        try {
            id.serial = deviceSerial(leaf, chain.manufacturer->serialSource);
        } catch (const CertificateError& e) {
            return refuse(peer, leaf.fingerprint, e.what());
        }
        what = "IDevID " + id.manufacturer + "/" + id.serial;
    } else {
        what = "self-signed certificate " + id.fingerprint;
    }
    id.derivedName = certToName(m_certToName, chain.chain);
    auto contact = m_inventory.recordTlsContact(id, peer.address, now());
    if (!chain.warning.empty()) {
        warnRateLimited(peer, what, chain.warning);
    }
    return fromContact(peer, contact, what, chain.warning);
}

void IdentityPolicy::warnRateLimited(const Peer& peer, const std::string& what, const std::string& warning)
{
    constexpr auto interval = std::chrono::minutes(1);
    constexpr size_t maxKeys = 1024; // distinct warnings (stale CRLs), not devices: a bound never reached in practice
    const auto t = std::chrono::steady_clock::now();
    unsigned suppressed = 0;
    {
        std::lock_guard lock(m_warningsMutex);
        if (m_warnings.size() >= maxKeys) {
            m_warnings.clear();
        }
        // Keyed by the warning alone: one stale CRL gives one line a minute however many devices it covers.
        auto [it, created] = m_warnings.try_emplace(warning);
        if (!created && t - it->second.last < interval) {
            ++it->second.suppressed;
            return;
        }
        suppressed = std::exchange(it->second.suppressed, 0);
        it->second.last = t;
    }
    log::get(log::Identity)
        ->warn("[{} {}] {}: {}{}", peer.connectionId, peer.address, what, warning,
            suppressed ? " (and " + std::to_string(suppressed) + " more such acceptances in the last minute)" : "");
}

Decision IdentityPolicy::refuse(const Peer& peer, const std::string& fingerprint, const std::string& reason)
{
    m_inventory.addEvent(inventory::Event { .at = now(),
        .kind = EventKind::Refused,
        .connectionId = peer.connectionId,
        .address = peer.address,
        .fingerprint = fingerprint,
        .detail = reason });
    log::get(log::Identity)->warn("[{} {}] reject {}: {}", peer.connectionId, peer.address, fingerprint, reason);
    return Decision { Verdict::Reject, std::nullopt, reason };
}

Decision IdentityPolicy::fromContact(
    const Peer& peer, const inventory::Contact& contact, const std::string& what, const std::string& note)
{
    Decision d;
    d.device = contact.device;
    const auto& dev = contact.device;
    EventKind kind = EventKind::Refused;
    switch (dev.state) {
    case DeviceState::Approved:
        d.verdict = Verdict::Accept;
        d.reason = dev.decidedBy == "pre-provisioned" && dev.attempts <= 1 ? "expected device (pre-provisioned)"
                                                                           : "approved identity";
        kind = EventKind::Accepted;
        break;
    case DeviceState::Pending:
        d.verdict = Verdict::Pending;
        d.reason = contact.created ? "first contact, awaiting approval" : "awaiting approval";
        if (dev.sameAddressAs) {
            auto known = m_inventory.findById(*dev.sameAddressAs);
            std::string knownName = known && known->name ? *known->name : "#" + std::to_string(*dev.sameAddressAs);
            d.reason += "; new identity from the last address of known device " + knownName;
            if (dev.transport == inventory::Transport::Ssh) {
                d.reason += " (re-imaged, replaced, or an impostor: `callhomectl rekey " + knownName + " "
                    + dev.fingerprint + "`)";
            }
        }
        kind = EventKind::Pending;
        break;
    case DeviceState::Rejected:
        d.verdict = Verdict::Reject;
        d.reason = "identity rejected by operator";
        break;
    case DeviceState::Revoked:
        d.verdict = Verdict::Reject;
        d.reason = "identity revoked by operator";
        break;
    }
    if (!note.empty()) {
        d.reason += "; " + note;
    }
    m_inventory.addEvent(inventory::Event { .at = now(),
        .kind = kind,
        .deviceId = dev.id,
        .deviceName = dev.name.value_or(""),
        .connectionId = peer.connectionId,
        .address = peer.address,
        .fingerprint = dev.fingerprint,
        .detail = d.reason });
    auto level = d.verdict == Verdict::Accept ? spdlog::level::info : spdlog::level::warn;
    log::get(log::Identity)
        ->log(level, "[{} {}] {} {}{}: {} (attempt {})", peer.connectionId, peer.address, toString(d.verdict), what,
            dev.name ? " (" + *dev.name + ")" : "", d.reason, dev.attempts);
    return d;
}
} // namespace callhome::identity
