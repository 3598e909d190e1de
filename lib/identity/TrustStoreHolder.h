#pragma once
#include "config/Config.h"
#include "identity/TrustStore.h"
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace callhome::identity {
/** What a reload did. */
struct ReloadResult {
    bool ok = false; ///< true: the freshly loaded store is current; false: the previous one stays in use
    std::string message; ///< ok: what is now loaded; otherwise why not (names the file)
};

/**
 * The daemon's current TrustStore, replaced as a whole when the manufacturers' anchors or CRLs change on disk
 * (trust-store/README.md, "Live reload"). Every method may be called from any thread.
 *
 * Identity decisions take a snapshot with current() and use only it: a reload during a handshake never changes the
 * store under a verification, and the old store lives until its last snapshot is dropped. The station's own
 * certificate and key (station/) are read only at start; the TLS client context is not rebuilt by a reload.
 */
class TrustStoreHolder {
public:
    /** Loads the store as TrustStore::load does and logs each manufacturer; throws Error when it is malformed. */
    TrustStoreHolder(std::string directory, std::vector<config::ManufacturerOptions> options,
        config::CrlExpired crlExpired = config::CrlExpired::FailClosed);

    /** The store to verify against; never null. */
    std::shared_ptr<const TrustStore> current() const;

    /**
     * Re-reads every manufacturer's ca.pem and crl.pem (and finds added or removed manufacturer folders). On
     * success the new store becomes current; on any error the previous one stays current. Both are logged. For
     * SIGHUP.
     */
    ReloadResult reload();

    /**
     * Cheap change check for a periodic timer (every few seconds): stats manufacturers/ and its ca.pem and crl.pem
     * files (inode, size, mtime, ctime) and reloads only if any of that differs from what the current store, or the
     * last failed attempt, was read from. True when a new store became current; a failed reload is logged once and
     * retried only after the files change again.
     */
    bool reloadIfChanged();

private:
    /** What stat() says about one file (or folder) the store is read from. */
    struct FileState {
        std::string path;
        bool exists = false;
        unsigned long long device = 0, inode = 0, size = 0;
        long long mtimeNs = 0, ctimeNs = 0;
        bool operator==(const FileState&) const = default;
    };
    static FileState stateOf(const std::string& path);
    std::vector<FileState> scan() const;
    ReloadResult reloadFrom(std::vector<FileState> files);

    const std::string m_directory;
    const std::vector<config::ManufacturerOptions> m_options;
    const config::CrlExpired m_crlExpired;

    mutable std::mutex m_currentMutex; ///< guards m_current only; never held while loading
    std::shared_ptr<const TrustStore> m_current;

    std::mutex m_reloadMutex; ///< one reload at a time; guards m_seen
    std::vector<FileState> m_seen; ///< as last loaded or attempted
};
} // namespace callhome::identity
