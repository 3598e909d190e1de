#pragma once
#include "common/Secret.h"
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace callhome::inventory {
namespace sqlite {
class Connection;
}

/** One device's own SSH secrets, as the credentials store holds them (wiped from memory when dropped). */
struct DeviceSecrets {
    std::optional<Secret> password;
    std::optional<Secret> privateKey; ///< OpenSSH or PEM private key text, unencrypted
};

/** Default location of the credentials store inside a state directory. */
std::string defaultCredentialsPath(const std::string& stateDir);

/**
 * Per-device SSH secrets (passwords, private keys), in their own SQLite file that only callhomed's user can read:
 * mode 0600, whatever inventory-group does to the inventory (which says only *whether* a device has a secret). Rows
 * are keyed by device id. Thread-safe (one mutex). Secrets deleted are overwritten on disk (secure_delete).
 */
class CredentialStore {
public:
    enum class Mode {
        Create, ///< callhomed: create the file (0600) when missing; an existing file that others can access is
                ///< made 0600 (with a warning)
        ExistingOnly, ///< callhomectl: never create; refuse a file that group or others can access
    };
    /** Throws Error naming the path and what to do (missing, not readable by us, too open, not a store). */
    CredentialStore(const std::string& path, Mode mode);
    ~CredentialStore();
    CredentialStore(const CredentialStore&) = delete;
    CredentialStore& operator=(const CredentialStore&) = delete;

    const std::string& path() const noexcept { return m_path; }
    /** The device's secrets; nullopt when it has none. */
    std::optional<DeviceSecrets> get(int64_t deviceId);
    /** Sets (a value) or clears (nullopt) one secret; the other is left as it is. */
    void setPassword(int64_t deviceId, const std::optional<Secret>& password);
    void setPrivateKey(int64_t deviceId, const std::optional<Secret>& privateKey);
    /** Deletes every secret of the device (it was forgotten). */
    void erase(int64_t deviceId);
    /** Which of a device's secrets the inventory says it has; none for a device that does not exist. */
    struct Wanted {
        bool password = false;
        bool privateKey = false;
    };
    /**
     * Deletes every secret the inventory does not say its device has: the device was forgotten, the secret cleared
     * where this file could not be written, or the id (which SQLite may give again after a forget) now belongs to
     * another device. Returns how many devices lost a secret.
     */
    size_t prune(const std::function<Wanted(int64_t)>& wanted);

private:
    void set(int64_t deviceId, const char* column, const std::optional<Secret>& value);

    std::string m_path;
    std::mutex m_mutex;
    std::unique_ptr<sqlite::Connection> m_db;
};
} // namespace callhome::inventory
