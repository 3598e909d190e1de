#include "harness/SshdDevice.h"
#include "harness/TempDir.h"
#include "harness/Util.h"
#include <cerrno>
#include <cstring>
#include <sys/stat.h>
#include <tuple>
#include <unistd.h>
#include <utility>
#include <vector>

namespace callhome::test {
namespace {
constexpr const char* kSshd = "/usr/sbin/sshd";

std::string makeSubdir(const std::string& parent, const std::string& prefix)
{
    std::string pattern = parent + "/" + prefix + ".XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) {
        throw HarnessError("mkdtemp " + pattern + ": " + std::strerror(errno));
    }
    return buf.data();
}

// sshd running as root insists on its privilege-separation directory; Debian creates /run/sshd only from the
// ssh service unit, which never ran in a container or CI job.
void ensurePrivsepDir()
{
    if (::geteuid() != 0 || ::access("/run/sshd", F_OK) == 0) {
        return;
    }
    if (::mkdir("/run/sshd", 0755) != 0 && errno != EEXIST) {
        throw HarnessError(std::string("cannot create /run/sshd for sshd: ") + std::strerror(errno));
    }
}
} // namespace

SshdDevice::SshdDevice(
    const TempDir& dir, KeyType hostKeyType, const std::string& authorizedKeys, std::chrono::milliseconds startDeadline)
    : m_dir(makeSubdir(dir.path(), "sshd"))
    , m_user(currentUserName())
{
    ensurePrivsepDir();
    m_hostKey = generateHostKey(m_dir, hostKeyType, "ssh_host_key");
    m_authorizedKeys = m_dir + "/authorized_keys";
    setAuthorizedKeys(authorizedKeys);
    m_sshdLog = m_dir + "/sshd.log";
    m_netconfd = std::make_unique<YumaNetconfd>(m_dir, startDeadline);

    m_sshdConfig = m_dir + "/sshd_config";
    writeFile(m_sshdConfig,
        "HostKey " + m_hostKey.privateKeyPath + "\n" + "AuthorizedKeysFile " + m_authorizedKeys + "\n"
            + "PubkeyAuthentication yes\n"
              "PasswordAuthentication no\n"
              "KbdInteractiveAuthentication no\n"
              "UsePAM no\n"
              "StrictModes no\n"
              "PermitRootLogin prohibit-password\n"
              "LogLevel DEBUG1\n"
              "PidFile none\n"
              "LoginGraceTime 30\n"
              "Subsystem netconf "
            + m_netconfd->subsystemCommand() + "\n");
}

SshdDevice::~SshdDevice()
{
    stopCallHomes();
}

Process& SshdDevice::callHome(const std::string& host, uint16_t port)
{
    return callHome(host, port, "");
}

Process& SshdDevice::callHome(const std::string& host, uint16_t port, const std::string& source)
{
    const auto n = std::to_string(m_callHomes.size());
    const auto target = (host.find(':') != std::string::npos ? "TCP6:[" + host + "]" : "TCP4:" + host) + ":"
        + std::to_string(port)
        + (source.empty() ? "" : ",bind=" + (source.find(':') != std::string::npos ? "[" + source + "]" : source));
    m_callHomes.push_back(std::make_unique<Process>(ProcessSpec {
        .argv = { "socat", target, "EXEC:" + std::string(kSshd) + " -i -f " + m_sshdConfig + " -E " + m_sshdLog },
        .stdoutPath = m_dir + "/callhome-" + n + ".out",
        .stderrPath = m_dir + "/callhome-" + n + ".err",
    }));
    return *m_callHomes.back();
}

void SshdDevice::copyHostKeyFrom(const SshdDevice& other)
{
    // sshd reads its HostKey file on every call home: the paths stay, the contents and what we know of them change
    writeFile(m_hostKey.privateKeyPath, readFile(other.m_hostKey.privateKeyPath), 0600);
    writeFile(m_hostKey.publicKeyPath, readFile(other.m_hostKey.publicKeyPath), 0644);
    auto paths = std::make_pair(m_hostKey.privateKeyPath, m_hostKey.publicKeyPath);
    m_hostKey = other.m_hostKey;
    std::tie(m_hostKey.privateKeyPath, m_hostKey.publicKeyPath) = paths;
}

void SshdDevice::stopCallHomes()
{
    for (auto& p : m_callHomes) {
        p->stop();
    }
}

void SshdDevice::setAuthorizedKeys(const std::string& authorizedKeys)
{
    writeFile(m_authorizedKeys,
        authorizedKeys.empty() || authorizedKeys.back() == '\n' ? authorizedKeys : authorizedKeys + "\n", 0600);
}

int SshdDevice::authAttempts() const
{
    return countLinesContaining(m_sshdLog, "userauth-request for user");
}

int SshdDevice::acceptedLogins() const
{
    return countLinesContaining(m_sshdLog, "Accepted publickey for");
}

int SshdDevice::netconfSessions() const
{
    return countLinesContaining(m_sshdLog, "Starting session: subsystem 'netconf'");
}

int SshdDevice::keyExchanges() const
{
    return countLinesContaining(m_sshdLog, "SSH2_MSG_NEWKEYS received");
}
} // namespace callhome::test
