#include "identity/Identity.h"
#include "common/Address.h"
#include "common/Error.h"
#include "common/Log.h"
#include "common/Text.h"
#include "common/Time.h"
#include "identity/AutoApprove.h"
#include "identity/IdentityIndex.h"
#include "identity/TrustStore.h"
#include "inventory/Inventory.h"
#include "inventory/Writer.h"
#include <algorithm>
#include <fmt/format.h>
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

namespace {
/** A contact recorded by the identity step, and what an auto-approve rule made of it. */
struct RecordedContact {
    inventory::Contact contact;
    std::string note; ///< "auto-approved by rule lab", or why the rule could not approve it; empty: no rule applied
};

/**
 * Runs inside the same writer call as the contact that created the device: a device approved by a rule is never
 * seen pending. Only a first contact qualifies (a known pending, rejected or revoked identity is the operator's), and
 * not a new identity from the last address of a known device (re-keyed, or an impostor: callhomectl rekey).
 */
void autoApprove(inventory::Inventory& inv, RecordedContact& r, const std::optional<config::AutoApproveRule>& rule)
{
    auto& d = r.contact.device;
    if (!rule || !r.contact.created || d.state != DeviceState::Pending || d.sameAddressAs) {
        return;
    }
    const auto actor = "auto-approve rule " + rule->name;
    try {
        inv.setActor(actor);
        auto name = d.name ? std::nullopt : std::optional<std::string>(rule->namePrefix + std::to_string(d.id));
        d = inv.approve(d.id, name, d.transport == inventory::Transport::Ssh ? rule->sshUser : std::nullopt);
        r.note = "auto-approved by rule " + rule->name;
    } catch (const UsageError& e) {
        // e.g. the name is taken: the device stays pending for an operator, the reason says why
        r.note = actor + " could not approve it: " + e.what();
    }
    inv.setActor("operator");
}
} // namespace

std::string CappedCounts::describe(const PendingCaps& caps) const
{
    auto text = fmt::format("{} new identities not stored: pending cap reached ({} at the global cap of {}, {} at the "
                            "cap of {} per source)",
        total(), global, caps.global, perSource, caps.perSource);
    if (!topSources.empty()) {
        text += "; most from:";
        for (size_t i = 0; i < topSources.size(); ++i) {
            text += fmt::format("{} {} ({})", i ? "," : "", topSources[i].first, topSources[i].second);
        }
    }
    return text;
}

IdentityPolicy::IdentityPolicy(inventory::Inventory& inventory, std::vector<CertToNameRule> certToName)
    : m_inventory(inventory)
    , m_certToName(std::move(certToName))
{ }

IdentityPolicy::IdentityPolicy(inventory::Inventory& inventory, IdentityIndex& index, inventory::Writer& writer,
    PendingCaps caps, std::vector<CertToNameRule> certToName)
    : m_inventory(inventory)
    , m_index(&index)
    , m_writer(&writer)
    , m_caps(caps)
    , m_certToName(std::move(certToName))
{ }

void IdentityPolicy::setAutoApprove(std::vector<config::AutoApproveRule> rules)
{
    auto next = std::make_shared<const std::vector<config::AutoApproveRule>>(std::move(rules));
    std::lock_guard lock(m_autoApproveMutex);
    m_autoApprove = std::move(next);
}

std::optional<config::AutoApproveRule> IdentityPolicy::autoApproveRule(
    config::Transport transport, const std::string& address, const std::string& manufacturer)
{
    std::shared_ptr<const std::vector<config::AutoApproveRule>> rules;
    {
        std::lock_guard lock(m_autoApproveMutex);
        rules = m_autoApprove;
    }
    if (auto* rule = matchAutoApprove(*rules, { transport, address, manufacturer })) {
        return *rule;
    }
    return std::nullopt;
}

void IdentityPolicy::record(const inventory::Event& event)
{
    if (!m_writer) {
        m_inventory.addEvent(event);
        return;
    }
    m_writer->post("recording a " + inventory::toString(event.kind) + " event", [event](inventory::Inventory& inv) {
        inv.addEvent(event);
        return std::function<void()> {};
    });
}

std::optional<Decision> IdentityPolicy::capped(const Peer& peer, const std::string& what)
{
    if (!m_index) {
        return std::nullopt;
    }
    std::string key;
    try {
        key = sourceKey(peer.address);
    } catch (const UsageError&) {
        key = peer.address;
    }
    const bool global = m_caps.global && m_index->pending() >= m_caps.global;
    const bool source = !global && m_caps.perSource && m_index->pendingFrom(key) >= m_caps.perSource;
    if (!global && !source) {
        return std::nullopt;
    }
    {
        std::lock_guard lock(m_cappedMutex);
        ++(global ? m_capped.global : m_capped.perSource);
        constexpr size_t maxSources = 10'000; // per interval; beyond it sources are only counted in the totals
        if (auto it = m_cappedBySource.find(key); it != m_cappedBySource.end()) {
            ++it->second;
        } else if (m_cappedBySource.size() < maxSources) {
            m_cappedBySource.emplace(key, 1);
        }
    }
    auto reason = global
        ? fmt::format("new identity not recorded: {} devices are pending approval (the cap)", m_caps.global)
        : fmt::format("new identity not recorded: {} devices from {} are pending approval (the cap per source)",
            m_caps.perSource, key);
    log::get(log::Identity)->debug("[{} {}] reject {}: {}", peer.connectionId, peer.address, what, reason);
    return Decision { Verdict::Reject, std::nullopt, reason };
}

CappedCounts IdentityPolicy::takeCapped()
{
    std::lock_guard lock(m_cappedMutex);
    CappedCounts out = std::exchange(m_capped, {});
    std::vector<std::pair<std::string, uint64_t>> sources(m_cappedBySource.begin(), m_cappedBySource.end());
    m_cappedBySource.clear();
    const auto top = std::min<size_t>(sources.size(), 5);
    std::partial_sort(sources.begin(), sources.begin() + static_cast<std::ptrdiff_t>(top), sources.end(),
        [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
    sources.resize(top);
    out.topSources = std::move(sources);
    return out;
}

std::optional<Decision> IdentityPolicy::fromIndexSsh(
    const Peer& peer, const std::string& fingerprint, const std::string& keyType)
{
    if (!m_index) {
        return std::nullopt;
    }
    auto known = m_index->byFingerprint(fingerprint);
    // Only an approval is taken from memory. Any other state may have just been approved by an operator (the index
    // follows within one poll), so the inventory decides those: a device approved a moment ago gets in at once.
    if (!known || known->transport != inventory::Transport::Ssh || known->state != DeviceState::Approved) {
        return std::nullopt;
    }
    // What recordContact() will store, decided now; the write follows through the writer, in order.
    inventory::Contact contact { .device = *known };
    auto& d = contact.device;
    ++d.attempts;
    d.lastAddress = peer.address;
    if (d.keyType.empty()) {
        d.keyType = keyType;
    }
    const auto at = now();
    const auto address = peer.address;
    m_writer->post("recording a contact from " + fingerprint, [=](inventory::Inventory& inv) {
        inv.recordContact(inventory::Transport::Ssh, fingerprint, keyType, address, at);
        return std::function<void()> {};
    });
    return fromContact(peer, contact, keyType + " host key " + fingerprint);
}

std::optional<Decision> IdentityPolicy::quickSsh(
    const Peer& peer, const std::string& fingerprint, const std::string& keyType)
{
    return fromIndexSsh(peer, fingerprint, keyType);
}

Decision IdentityPolicy::decideSsh(const Peer& peer, const std::string& fingerprint, const std::string& keyType)
{
    if (auto d = fromIndexSsh(peer, fingerprint, keyType)) {
        return *d; // known since the quick look (the change log brought it in)
    }
    const auto what = keyType + " host key " + fingerprint;
    auto rule = autoApproveRule(config::Transport::Ssh, peer.address, "");
    // An identity an auto-approve rule takes is not held to the pending caps: it will not be pending.
    if (m_index && !rule && !m_index->byFingerprint(fingerprint)) {
        if (auto d = capped(peer, what)) {
            return *d;
        }
    }
    auto record = [=, address = peer.address, at = now()](inventory::Inventory& inv) {
        RecordedContact r { inv.recordContact(inventory::Transport::Ssh, fingerprint, keyType, address, at) };
        autoApprove(inv, r, rule);
        return r;
    };
    auto r = m_writer ? m_writer->call<RecordedContact>("recording a contact from " + fingerprint, record)
                      : record(m_inventory);
    if (m_index) {
        m_index->putIfAbsent(r.contact.device);
    }
    return fromContact(peer, r.contact, what, r.note);
}

IdentityPolicy::TlsCheck IdentityPolicy::checkTls(
    const Peer& peer, const std::vector<x509_st*>& presented, const TrustStore& trustStore)
{
    TlsCheck out;
    ChainVerdict chain;
    try {
        chain = trustStore.verify(presented);
    } catch (const CertificateError& e) {
        out.refusal = refuse(peer, "", std::string("unusable certificate: ") + e.what());
        return out;
    }
    if (chain.kind == ChainVerdict::Kind::Invalid) {
        std::string fp;
        try {
            fp = presented.empty() ? "" : inspect(presented.front()).fingerprint;
        } catch (const CertificateError&) { }
        out.refusal = refuse(peer, fp, chain.reason);
        return out;
    }
    const auto& leaf = chain.chain.front();
    auto& id = out.identity;
    id.fingerprint = leaf.fingerprint;
    id.subject = leaf.subject;
    id.issuer = leaf.issuer;
    if (chain.kind == ChainVerdict::Kind::Verified) {
        id.manufacturer = chain.manufacturer->name;
        try {
            id.serial = deviceSerial(leaf, chain.manufacturer->serialSource);
        } catch (const CertificateError& e) {
            out.refusal = refuse(peer, leaf.fingerprint, e.what());
            return out;
        }
        out.what = "IDevID " + id.manufacturer + "/" + id.serial;
    } else {
        out.what = "self-signed certificate " + id.fingerprint;
    }
    id.derivedName = certToName(m_certToName, chain.chain);
    out.warning = chain.warning;
    return out;
}

std::optional<Decision> IdentityPolicy::fromIndexTls(const Peer& peer, const TlsCheck& check)
{
    if (!m_index) {
        return std::nullopt;
    }
    const auto& id = check.identity;
    // The inventory stores the certificate's text escaped, and matches the serial escaped.
    const auto serial = escapeControl(id.serial);
    std::optional<inventory::Device> known;
    if (!serial.empty()) {
        known = m_index->bySerial(id.manufacturer, serial);
    }
    if (!known) {
        known = m_index->byFingerprint(id.fingerprint);
        // Found by fingerprint, first seen with a serial now: recordTlsContact() adopts the serial. Let it decide.
        if (known && !serial.empty() && known->serial.empty()) {
            return std::nullopt;
        }
    }
    // An SSH fingerprint, or an unnamed device that cert-to-name would name: the inventory decides (and refuses or
    // names it), so that the session carries the name.
    if (!known || known->transport != inventory::Transport::Tls || known->state != DeviceState::Approved
        || (id.derivedName && !known->name)) {
        return std::nullopt;
    }
    inventory::Contact contact { .device = *known };
    auto& d = contact.device;
    ++d.attempts;
    d.lastAddress = peer.address;
    d.fingerprint = id.fingerprint;
    const auto at = now();
    const auto address = peer.address;
    m_writer->post("recording a TLS contact from " + check.what, [=](inventory::Inventory& inv) {
        inv.recordTlsContact(id, address, at);
        return std::function<void()> {};
    });
    if (!check.warning.empty()) {
        warnRateLimited(peer, check.what, check.warning);
    }
    return fromContact(peer, contact, check.what, check.warning);
}

std::optional<Decision> IdentityPolicy::quickTls(
    const Peer& peer, const std::vector<x509_st*>& presented, const TrustStore& trustStore)
{
    if (!m_index) {
        return std::nullopt;
    }
    auto check = checkTls(peer, presented, trustStore);
    if (check.refusal) {
        return check.refusal;
    }
    return fromIndexTls(peer, check);
}

Decision IdentityPolicy::decideTls(
    const Peer& peer, const std::vector<x509_st*>& presented, const TrustStore& trustStore)
{
    auto check = checkTls(peer, presented, trustStore);
    if (check.refusal) {
        return *check.refusal;
    }
    if (auto d = fromIndexTls(peer, check)) {
        return *d;
    }
    const auto serial = escapeControl(check.identity.serial);
    const bool known = m_index
        && ((!serial.empty() && m_index->bySerial(check.identity.manufacturer, serial))
            || m_index->byFingerprint(check.identity.fingerprint));
    auto rule = autoApproveRule(config::Transport::Tls, peer.address, check.identity.manufacturer);
    if (m_index && !known && !rule) {
        // A pre-provisioned (manufacturer, serial) is in the index, so an expected device is never capped.
        if (auto d = capped(peer, check.what)) {
            return *d;
        }
    }
    auto record = [id = check.identity, address = peer.address, at = now(), rule](inventory::Inventory& inv) {
        RecordedContact r { inv.recordTlsContact(id, address, at) };
        autoApprove(inv, r, rule);
        return r;
    };
    auto r = m_writer ? m_writer->call<RecordedContact>("recording a TLS contact from " + check.what, record)
                      : record(m_inventory);
    if (m_index) {
        m_index->putIfAbsent(r.contact.device);
    }
    if (!check.warning.empty()) {
        warnRateLimited(peer, check.what, check.warning);
    }
    auto note = r.note;
    if (!check.warning.empty()) {
        note += (note.empty() ? "" : "; ") + check.warning;
    }
    return fromContact(peer, r.contact, check.what, note);
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
    record(inventory::Event { .at = now(),
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
            auto known = m_index ? m_index->byId(*dev.sameAddressAs) : m_inventory.findById(*dev.sameAddressAs);
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
    record(inventory::Event { .at = now(),
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
