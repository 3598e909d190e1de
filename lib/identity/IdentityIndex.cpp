#include "identity/IdentityIndex.h"
#include "common/Address.h"
#include "common/Error.h"
#include "inventory/Inventory.h"
#include <mutex>
#include <set>

namespace callhome::identity {
using inventory::Device;
using inventory::DeviceState;

namespace {
/** The change log is read in pages of this many rows. */
constexpr int64_t ChangePage = 10'000;
} // namespace

std::string IdentityIndex::serialKey(const std::string& manufacturer, const std::string& serial)
{
    std::string key = manufacturer;
    key += '\0';
    key += serial;
    return key;
}

std::string IdentityIndex::sourceOf(const Device& d)
{
    try {
        return sourceKey(d.lastAddress);
    } catch (const UsageError&) {
        return d.lastAddress;
    }
}

void IdentityIndex::load(inventory::Inventory& inventory)
{
    // The position first: a change committed during the load is read again by follow(), never missed.
    const auto seq = inventory.lastChange();
    std::vector<Device> all;
    inventory.forEachDevice({ .withCapabilities = false }, [&](const Device& d) {
        Device copy = d;
        copy.capabilities.clear();
        copy.certSubject.clear();
        copy.certIssuer.clear();
        all.push_back(std::move(copy));
    });
    std::unique_lock lock(m_mutex);
    m_byId.clear();
    m_byFingerprint.clear();
    m_bySerial.clear();
    m_pendingBySource.clear();
    m_pending = 0;
    for (auto& d : all) {
        putLocked(std::move(d));
    }
    m_changeSeq = seq;
}

std::optional<Device> IdentityIndex::byFingerprint(const std::string& fingerprint) const
{
    std::shared_lock lock(m_mutex);
    auto it = m_byFingerprint.find(fingerprint);
    if (it == m_byFingerprint.end()) {
        return std::nullopt;
    }
    return m_byId.at(it->second);
}

std::optional<Device> IdentityIndex::bySerial(const std::string& manufacturer, const std::string& serial) const
{
    std::shared_lock lock(m_mutex);
    auto it = m_bySerial.find(serialKey(manufacturer, serial));
    if (it == m_bySerial.end()) {
        return std::nullopt;
    }
    return m_byId.at(it->second);
}

std::optional<Device> IdentityIndex::byId(int64_t id) const
{
    std::shared_lock lock(m_mutex);
    auto it = m_byId.find(id);
    if (it == m_byId.end()) {
        return std::nullopt;
    }
    return it->second;
}

void IdentityIndex::put(const Device& device)
{
    Device copy = device;
    copy.capabilities.clear();
    copy.certSubject.clear();
    copy.certIssuer.clear();
    std::unique_lock lock(m_mutex);
    putLocked(std::move(copy));
}

void IdentityIndex::putIfAbsent(const Device& device)
{
    Device copy = device;
    copy.capabilities.clear();
    copy.certSubject.clear();
    copy.certIssuer.clear();
    std::unique_lock lock(m_mutex);
    if (!m_byId.contains(copy.id)) {
        putLocked(std::move(copy));
    }
}

void IdentityIndex::erase(int64_t id)
{
    std::unique_lock lock(m_mutex);
    eraseLocked(id);
}

void IdentityIndex::eraseLocked(int64_t id)
{
    auto it = m_byId.find(id);
    if (it == m_byId.end()) {
        return;
    }
    const auto& d = it->second;
    if (auto f = m_byFingerprint.find(d.fingerprint); f != m_byFingerprint.end() && f->second == id) {
        m_byFingerprint.erase(f);
    }
    if (!d.serial.empty()) {
        if (auto s = m_bySerial.find(serialKey(d.manufacturer, d.serial)); s != m_bySerial.end() && s->second == id) {
            m_bySerial.erase(s);
        }
    }
    if (d.state == DeviceState::Pending) {
        --m_pending;
        auto p = m_pendingBySource.find(sourceOf(d));
        if (p != m_pendingBySource.end() && --p->second == 0) {
            m_pendingBySource.erase(p);
        }
    }
    m_byId.erase(it);
}

void IdentityIndex::putLocked(Device device)
{
    eraseLocked(device.id);
    const auto id = device.id;
    if (!device.fingerprint.empty()) {
        m_byFingerprint[device.fingerprint] = id;
    }
    if (!device.serial.empty()) {
        m_bySerial[serialKey(device.manufacturer, device.serial)] = id;
    }
    if (device.state == DeviceState::Pending) {
        ++m_pending;
        ++m_pendingBySource[sourceOf(device)];
    }
    m_byId.emplace(id, std::move(device));
}

std::vector<std::pair<int64_t, std::optional<Device>>> IdentityIndex::follow(inventory::Inventory& inventory)
{
    int64_t from;
    {
        std::shared_lock lock(m_mutex);
        from = m_changeSeq;
    }
    std::vector<std::pair<int64_t, std::optional<Device>>> out;
    const auto first = inventory.firstChange();
    if (from > 0 && first > from + 1) {
        // Rows we have not read were pruned (a long stall): start over from a full load.
        std::set<int64_t> before;
        {
            std::shared_lock lock(m_mutex);
            for (const auto& [id, d] : m_byId) {
                before.insert(id);
            }
        }
        load(inventory);
        std::shared_lock lock(m_mutex);
        for (const auto& [id, d] : m_byId) {
            before.erase(id);
            out.emplace_back(id, d);
        }
        for (auto id : before) {
            out.emplace_back(id, std::nullopt);
        }
        return out;
    }
    std::set<int64_t> changed;
    int64_t seq = from;
    for (;;) {
        auto page = inventory.changesAfter(seq, ChangePage);
        for (const auto& c : page) {
            changed.insert(c.deviceId);
            seq = c.seq;
        }
        if (static_cast<int64_t>(page.size()) < ChangePage) {
            break;
        }
    }
    for (auto id : changed) {
        auto fresh = inventory.findById(id);
        std::unique_lock lock(m_mutex);
        if (fresh) {
            fresh->capabilities.clear();
            fresh->certSubject.clear();
            fresh->certIssuer.clear();
            putLocked(*fresh);
        } else {
            eraseLocked(id);
        }
        out.emplace_back(id, std::move(fresh));
    }
    std::unique_lock lock(m_mutex);
    m_changeSeq = std::max(m_changeSeq, seq);
    return out;
}

size_t IdentityIndex::size() const
{
    std::shared_lock lock(m_mutex);
    return m_byId.size();
}

size_t IdentityIndex::pending() const
{
    std::shared_lock lock(m_mutex);
    return m_pending;
}

size_t IdentityIndex::pendingFrom(const std::string& key) const
{
    std::shared_lock lock(m_mutex);
    auto it = m_pendingBySource.find(key);
    return it == m_pendingBySource.end() ? 0 : it->second;
}
} // namespace callhome::identity
