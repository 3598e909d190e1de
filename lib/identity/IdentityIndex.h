#pragma once
#include "inventory/Types.h"
#include <cstdint>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace callhome::inventory {
class Inventory;
}

namespace callhome::identity {
/**
 * Every device's identity and state, in memory, so that the listener decides on a known identity without touching
 * SQLite: an SSH host key by fingerprint, a TLS device by (manufacturer, serial) or certificate fingerprint, the
 * same lookups recordContact()/recordTlsContact() make. Kept current from the daemon's own writes (put()) and from
 * the inventory's change log (follow()), which every writer's changes reach through the schema's triggers; so an
 * operator's decision is seen within one poll of the change log (100 ms). Counts pending devices, in total and per
 * source key, for the pending caps. Thread-safe (a shared mutex: lookups from every event loop).
 *
 * Memory: one Device without capabilities or certificate text per device, about 0.5 KB (50 MB at 100,000).
 */
class IdentityIndex {
public:
    /** Loads every device (one pass over the inventory) and starts following the change log from now. */
    void load(inventory::Inventory& inventory);
    std::optional<inventory::Device> byFingerprint(const std::string& fingerprint) const;
    std::optional<inventory::Device> bySerial(const std::string& manufacturer, const std::string& serial) const;
    std::optional<inventory::Device> byId(int64_t id) const;
    /** Stores (replaces) a device as the inventory returned it. */
    void put(const inventory::Device& device);
    /**
     * Stores a device we have just created, unless the change log brought it in already (that copy is as new or
     * newer). Writes of ours to known devices are not put: their decision-relevant changes come through follow().
     */
    void putIfAbsent(const inventory::Device& device);
    void erase(int64_t id);
    /**
     * Reads the change log after the last position seen and refreshes those devices from the inventory. Returns
     * them, with their new record (nullopt: deleted), so that the caller can act on held sessions. A reader that
     * fell behind the log's pruning reloads everything (and returns every device).
     */
    std::vector<std::pair<int64_t, std::optional<inventory::Device>>> follow(inventory::Inventory& inventory);
    size_t size() const;
    size_t pending() const;
    /** Pending devices whose last address has this source key (callhome::sourceKey). */
    size_t pendingFrom(const std::string& sourceKey) const;

private:
    void putLocked(inventory::Device device);
    void eraseLocked(int64_t id);
    static std::string serialKey(const std::string& manufacturer, const std::string& serial);
    static std::string sourceOf(const inventory::Device& d);

    mutable std::shared_mutex m_mutex;
    std::unordered_map<int64_t, inventory::Device> m_byId;
    std::unordered_map<std::string, int64_t> m_byFingerprint;
    std::unordered_map<std::string, int64_t> m_bySerial;
    std::unordered_map<std::string, size_t> m_pendingBySource;
    size_t m_pending = 0;
    int64_t m_changeSeq = 0;
};
} // namespace callhome::identity
