#include "inventory/CredentialStore.h"
#include "common/Error.h"
#include "common/Log.h"
#include "inventory/Sqlite.h"
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace callhome::inventory {
namespace fs = std::filesystem;
namespace {
constexpr int64_t kApplicationId = 0x43484352; // "CHCR"
constexpr const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS credentials (
    device_id INTEGER PRIMARY KEY,
    password TEXT,
    private_key TEXT,
    updated_at INTEGER NOT NULL
);
)";

std::string modeText(mode_t mode)
{
    char text[8];
    std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
    return text;
}

/** Creates the file 0600 before SQLite sees it (SQLite would create it 0644 minus the umask); tightens an old one. */
void secureForDaemon(const std::string& path)
{
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) {
        ::fchmod(fd, 0600); // O_CREAT's mode is reduced by the umask only, never widened: this is belt and braces
        ::close(fd);
        return;
    }
    if (errno != EEXIST) {
        throw Error("cannot create the credentials store " + path + ": " + std::strerror(errno));
    }
    for (const auto& file : { path, path + "-journal" }) {
        struct stat st { };
        if (::lstat(file.c_str(), &st) != 0) {
            continue;
        }
        if (!S_ISREG(st.st_mode)) {
            throw Error("the credentials store " + file + " is not a regular file");
        }
        if ((st.st_mode & (S_IRWXG | S_IRWXO)) == 0) {
            continue;
        }
        if (::chmod(file.c_str(), 0600) != 0) {
            throw Error("the credentials store " + file + " is accessible by others (mode " + modeText(st.st_mode)
                + ") and cannot be changed: " + std::strerror(errno));
        }
        log::get(log::Inventory)
            ->warn(
                "credentials store {} was accessible by others (mode {}); changed to 0600", file, modeText(st.st_mode));
    }
}

void checkForClient(const std::string& path)
{
    struct stat st { };
    if (::stat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) {
            throw UsageError("no credentials store at " + path
                + " (callhomed creates it on start; use --config or --state-dir to select another)");
        }
        throw Error("cannot open the credentials store " + path + ": " + std::strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        throw UsageError("the credentials store " + path + " is not a regular file");
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        throw UsageError("the credentials store " + path + " has permissions " + modeText(st.st_mode)
            + "; it must be accessible by callhomed's user only (chmod 600)");
    }
    if (::access(path.c_str(), R_OK | W_OK) != 0) {
        throw Error("cannot open the credentials store " + path + ": " + std::strerror(errno)
            + " (it is readable by callhomed's user only: run callhomectl as that user)");
    }
}
} // namespace

std::string defaultCredentialsPath(const std::string& stateDir)
{
    return (fs::path(stateDir) / "credentials.db").string();
}

CredentialStore::CredentialStore(const std::string& path, Mode mode)
    : m_path(path)
{
    if (mode == Mode::Create) {
        secureForDaemon(path);
    } else {
        checkForClient(path);
    }
    try {
        m_db = std::make_unique<sqlite::Connection>(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW);
        m_db->exec("PRAGMA busy_timeout = 5000", "opening the credentials store");
        // A deleted or replaced secret is overwritten in the file, not left in a free page.
        m_db->exec("PRAGMA secure_delete = ON", "opening the credentials store");
        auto app = m_db->queryInteger("PRAGMA application_id", "reading the credentials store");
        if (app != kApplicationId) {
            auto tables = m_db->queryInteger("SELECT count(*) FROM sqlite_master", "reading the credentials store");
            if (app != 0 || tables != 0) {
                throw Error("not a callhome credentials store");
            }
            if (mode == Mode::ExistingOnly) {
                throw Error("an empty file, not a credentials store yet (start callhomed once)");
            }
            m_db->exec(std::string("BEGIN IMMEDIATE; ") + kSchema + "PRAGMA application_id = "
                    + std::to_string(kApplicationId) + "; PRAGMA user_version = 1; COMMIT;",
                "creating the credentials store");
        }
    } catch (const Error& e) {
        throw Error("credentials store " + path + ": " + e.what());
    }
}

CredentialStore::~CredentialStore() = default;

std::optional<DeviceSecrets> CredentialStore::get(int64_t deviceId)
{
    std::lock_guard lock(m_mutex);
    auto stmt = m_db->prepare(
        "SELECT password, private_key FROM credentials WHERE device_id = ?1", "reading a device's credentials");
    stmt.bind(1, deviceId);
    if (!stmt.step()) {
        return std::nullopt;
    }
    DeviceSecrets out;
    if (!stmt.isNull(0)) {
        out.password = Secret(stmt.text(0));
    }
    if (!stmt.isNull(1)) {
        out.privateKey = Secret(stmt.text(1));
    }
    if (!out.password && !out.privateKey) {
        return std::nullopt;
    }
    return out;
}

void CredentialStore::set(int64_t deviceId, const char* column, const std::optional<Secret>& value)
{
    std::lock_guard lock(m_mutex);
    const auto at
        = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
              .count();
    m_db->exec("BEGIN IMMEDIATE", "changing a device's credentials");
    try {
        auto upsert = m_db->prepare(std::string("INSERT INTO credentials (device_id, ") + column
                + ", updated_at) VALUES (?1, ?2, ?3) ON CONFLICT (device_id) DO UPDATE SET " + column + " = excluded."
                + column + ", updated_at = excluded.updated_at",
            "changing a device's credentials");
        upsert.bind(1, deviceId).bind(3, static_cast<int64_t>(at));
        if (value) {
            upsert.bind(2, value->reveal()); // SQLite copies it (SQLITE_TRANSIENT); no copy of ours to wipe
        } else {
            upsert.bind(2, std::nullopt);
        }
        upsert.run();
        m_db->prepare("DELETE FROM credentials WHERE device_id = ?1 AND password IS NULL AND private_key IS NULL",
                "changing a device's credentials")
            .bind(1, deviceId)
            .run();
        m_db->exec("COMMIT", "changing a device's credentials");
    } catch (...) {
        try {
            m_db->exec("ROLLBACK", "changing a device's credentials");
        } catch (const std::exception&) { }
        throw;
    }
}

void CredentialStore::setPassword(int64_t deviceId, const std::optional<Secret>& password)
{
    set(deviceId, "password", password);
}

void CredentialStore::setPrivateKey(int64_t deviceId, const std::optional<Secret>& privateKey)
{
    set(deviceId, "private_key", privateKey);
}

void CredentialStore::erase(int64_t deviceId)
{
    std::lock_guard lock(m_mutex);
    m_db->prepare("DELETE FROM credentials WHERE device_id = ?1", "deleting a device's credentials")
        .bind(1, deviceId)
        .run();
}

size_t CredentialStore::prune(const std::function<Wanted(int64_t)>& wanted)
{
    struct Stale {
        int64_t id;
        bool password;
        bool privateKey;
    };
    std::vector<Stale> stale;
    {
        std::lock_guard lock(m_mutex);
        auto stmt = m_db->prepare("SELECT device_id, password IS NOT NULL, private_key IS NOT NULL FROM credentials",
            "listing the credentials store");
        while (stmt.step()) {
            const auto id = stmt.integer(0);
            const auto want = wanted(id);
            const bool password = stmt.integer(1) != 0 && !want.password;
            const bool privateKey = stmt.integer(2) != 0 && !want.privateKey;
            if (password || privateKey) {
                stale.push_back({ id, password, privateKey });
            }
        }
    }
    for (const auto& s : stale) {
        if (s.password) {
            setPassword(s.id, std::nullopt);
        }
        if (s.privateKey) {
            setPrivateKey(s.id, std::nullopt);
        }
    }
    return stale.size();
}
} // namespace callhome::inventory
