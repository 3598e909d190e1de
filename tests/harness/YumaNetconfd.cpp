#include "harness/YumaNetconfd.h"
#include "harness/Util.h"
#include <cerrno>
#include <cstring>
#include <sys/stat.h>
#include <unistd.h>

namespace callhome::test {
namespace {
constexpr const char* kNetconfd = "/usr/sbin/netconfd";
constexpr const char* kNetconfSubsystem = "/usr/sbin/netconf-subsystem";
// netconf-subsystem picks its netconfd socket by the server port in SSH_CONNECTION, and netconfd refuses ports
// not in its --port list; the wrapper always reports this one.
constexpr const char* kNetconfPort = "830";
} // namespace

YumaNetconfd::YumaNetconfd(const std::string& dir, std::chrono::milliseconds startDeadline)
    : m_wrapper(dir + "/netconf-subsystem.sh")
    , m_log(dir + "/netconfd.log")
    , m_socket(dir + "/ncxserver.sock")
{
    // netconfd 2.13 aborts when the client address is not an IP. `sshd -i` on socat's socketpair reports
    // SSH_CONNECTION="UNKNOWN 65535 ...", and stunnel's exec sets no SSH_CONNECTION at all: hand the subsystem a
    // numeric one either way. netconf-subsystem also quits at once without USER, which sshd sets and stunnel (or a
    // container's environment) may not; it names netconfd's --superuser, as an sshd login of this user would.
    writeFile(m_wrapper,
        "#!/bin/sh\n"
        "SSH_CONNECTION=\"127.0.0.1 65535 127.0.0.1 "
            + std::string(kNetconfPort)
            + "\"\n"
              "USER=\""
            + currentUserName()
            + "\"\n"
              "export SSH_CONNECTION USER\n"
              "exec "
            + kNetconfSubsystem + " --ncxserver-sockname=" + kNetconfPort + "@" + m_socket + "\n",
        0755);

    auto yumaHome = dir + "/yuma";
    // netconfd writes its transaction-id file into <yuma-home>/data and must not fall back to /etc/yuma.
    if (::mkdir(yumaHome.c_str(), 0755) != 0 || ::mkdir((yumaHome + "/data").c_str(), 0755) != 0) {
        throw HarnessError("cannot create " + yumaHome + "/data: " + std::strerror(errno));
    }
    const auto emptyConf = dir + "/netconfd.conf";
    writeFile(emptyConf, ""); // otherwise netconfd reads /etc/yuma/netconfd.conf
    m_netconfd = std::make_unique<Process>(ProcessSpec {
        .argv = { kNetconfd, "--config=" + emptyConf, "--ncxserver-sockname=" + m_socket, "--no-startup",
            "--log=" + m_log, "--log-level=info", "--superuser=" + currentUserName(),
            "--port=" + std::string(kNetconfPort), "--yuma-home=" + yumaHome },
        .stdoutPath = dir + "/netconfd.out",
        .stderrPath = dir + "/netconfd.err",
        .env = { { "HOME", dir } },
        .cwd = dir,
    });
    waitFor(
        [&] {
            if (!m_netconfd->running()) {
                throw HarnessError("netconfd exited during start: " + readFileIfExists(m_log));
            }
            return ::access(m_socket.c_str(), F_OK) == 0;
        },
        startDeadline, "netconfd socket " + m_socket);
}

YumaNetconfd::~YumaNetconfd()
{
    m_netconfd->stop();
}
} // namespace callhome::test
