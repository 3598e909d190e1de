#include "harness/SshdDevice.h"
#include "harness/TempDir.h"
#include "harness/Util.h"
#include <cerrno>
#include <cstring>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace callhome::test {
namespace {
constexpr const char* kSshd = "/usr/sbin/sshd";
constexpr const char* kNetconfd = "/usr/sbin/netconfd";
constexpr const char* kNetconfSubsystem = "/usr/sbin/netconf-subsystem";
// netconf-subsystem picks its netconfd socket by the server port in SSH_CONNECTION, and netconfd refuses ports
// not in its --port list; the wrapper always reports this one.
constexpr const char* kNetconfPort = "830";

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
    m_netconfdLog = m_dir + "/netconfd.log";
    m_socket = m_dir + "/ncxserver.sock";

    const auto wrapper = m_dir + "/netconf-subsystem.sh";
    // netconfd 2.13 aborts when the client address is not an IP, and `sshd -i` on socat's socketpair reports
    // SSH_CONNECTION="UNKNOWN 65535 ...": hand the subsystem a numeric one.
    writeFile(wrapper,
        "#!/bin/sh\n"
        "SSH_CONNECTION=\"127.0.0.1 65535 127.0.0.1 "
            + std::string(kNetconfPort)
            + "\"\n"
              "export SSH_CONNECTION\n"
              "exec "
            + kNetconfSubsystem + " --ncxserver-sockname=" + kNetconfPort + "@" + m_socket + "\n",
        0755);

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
            + wrapper + "\n");

    auto yumaHome = m_dir + "/yuma";
    // netconfd writes its transaction-id file into <yuma-home>/data and must not fall back to /etc/yuma.
    if (::mkdir(yumaHome.c_str(), 0755) != 0 || ::mkdir((yumaHome + "/data").c_str(), 0755) != 0) {
        throw HarnessError("cannot create " + yumaHome + "/data: " + std::strerror(errno));
    }
    const auto emptyConf = m_dir + "/netconfd.conf";
    writeFile(emptyConf, ""); // otherwise netconfd reads /etc/yuma/netconfd.conf
    m_netconfd = std::make_unique<Process>(ProcessSpec {
        .argv = { kNetconfd, "--config=" + emptyConf, "--ncxserver-sockname=" + m_socket, "--no-startup",
            "--log=" + m_netconfdLog, "--log-level=info", "--superuser=" + m_user,
            "--port=" + std::string(kNetconfPort), "--yuma-home=" + yumaHome },
        .stdoutPath = m_dir + "/netconfd.out",
        .stderrPath = m_dir + "/netconfd.err",
        .env = { { "HOME", m_dir } },
        .cwd = m_dir,
    });
    waitFor(
        [&] {
            if (!m_netconfd->running()) {
                throw HarnessError("netconfd exited during start: " + readFileIfExists(m_netconfdLog));
            }
            return ::access(m_socket.c_str(), F_OK) == 0;
        },
        startDeadline, "netconfd socket " + m_socket);
}

SshdDevice::~SshdDevice()
{
    stopCallHomes();
    if (m_netconfd) {
        m_netconfd->stop();
    }
}

Process& SshdDevice::callHome(const std::string& host, uint16_t port)
{
    const auto n = std::to_string(m_callHomes.size());
    const auto target
        = (host.find(':') != std::string::npos ? "TCP6:[" + host + "]" : "TCP4:" + host) + ":" + std::to_string(port);
    m_callHomes.push_back(std::make_unique<Process>(ProcessSpec {
        .argv = { "socat", target, "EXEC:" + std::string(kSshd) + " -i -f " + m_sshdConfig + " -E " + m_sshdLog },
        .stdoutPath = m_dir + "/callhome-" + n + ".out",
        .stderrPath = m_dir + "/callhome-" + n + ".err",
    }));
    return *m_callHomes.back();
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
