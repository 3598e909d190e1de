#include "transport/StationKey.h"
#include "common/Error.h"
#include "transport/SshPtr.h"
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <libssh/libssh.h>
#include <sys/stat.h>
#include <unistd.h>

namespace callhome::transport {
namespace fs = std::filesystem;

std::string defaultStationKeyPath(const std::string& stateDir)
{
    return (fs::path(stateDir) / "station-key").string();
}

void checkPrivateFilePermissions(const std::string& path)
{
    struct stat st { };
    if (::stat(path.c_str(), &st) != 0) {
        throw Error(path + ": " + std::strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        throw UsageError(path + ": not a regular file");
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        throw UsageError(path + ": permissions " + mode
            + " are too open; a private key must not be accessible by others (chmod 600)");
    }
}

namespace {
std::string hostName()
{
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0) {
        return "localhost";
    }
    return buf;
}

void generate(const std::string& path)
{
    auto dir = fs::path(path).parent_path();
    if (!dir.empty() && !fs::exists(dir)) {
        fs::create_directories(dir);
        fs::permissions(dir, fs::perms::owner_all);
    }
    ssh_key raw = nullptr;
    if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &raw) != SSH_OK) {
        throw LibraryError("ssh_pki_generate", "cannot generate an ed25519 key");
    }
    SshKeyPtr key(raw);
    // Create the file 0600 before libssh writes it, so the key is never briefly readable by others.
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        throw Error(path + ": cannot create station key: " + std::strerror(errno));
    }
    ::close(fd);
    if (ssh_pki_export_privkey_file(key.get(), nullptr, nullptr, nullptr, path.c_str()) != SSH_OK) {
        ::unlink(path.c_str());
        throw LibraryError("ssh_pki_export_privkey_file", path);
    }
    ::chmod(path.c_str(), 0600);
}
} // namespace

StationKey loadStationKey(const std::string& path, bool create)
{
    if (create && !fs::exists(path)) {
        generate(path);
    }
    checkPrivateFilePermissions(path);
    ssh_key raw = nullptr;
    if (ssh_pki_import_privkey_file(path.c_str(), nullptr, nullptr, nullptr, &raw) != SSH_OK) {
        throw Error(path + ": not a usable unencrypted SSH private key");
    }
    SshKeyPtr key(raw);
    char* b64 = nullptr;
    if (ssh_pki_export_pubkey_base64(key.get(), &b64) != SSH_OK) {
        throw LibraryError("ssh_pki_export_pubkey_base64", path);
    }
    SshStringPtr b64Owned(b64);
    StationKey out;
    out.privateKeyPath = path;
    out.publicKeyLine
        = std::string(ssh_key_type_to_char(ssh_key_type(key.get()))) + " " + b64 + " callhome@" + hostName();
    out.fingerprint = fingerprintOf(key.get());
    return out;
}
std::string checkPrivateKeyText(const Secret& text, const std::string& source)
{
    ssh_key raw = nullptr;
    if (ssh_pki_import_privkey_base64(text.reveal().c_str(), nullptr, nullptr, nullptr, &raw) != SSH_OK || !raw) {
        throw UsageError(source + ": not a usable unencrypted SSH private key (OpenSSH or PEM format)");
    }
    SshKeyPtr key(raw);
    return fingerprintOf(key.get());
}
} // namespace callhome::transport
