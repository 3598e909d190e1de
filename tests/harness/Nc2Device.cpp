#include "harness/Nc2Device.h"
#include "harness/TempDir.h"
#include "harness/Util.h"
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace callhome::test {
namespace {
std::string makeSubdir(const std::string& parent)
{
    std::string pattern = parent + "/nc2.XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) {
        throw HarnessError("mkdtemp " + pattern + ": " + std::strerror(errno));
    }
    return buf.data();
}
} // namespace

Nc2Device::Nc2Device(const TempDir& dir, const std::string& host, uint16_t port, Nc2DeviceOptions options)
    : m_dir(makeSubdir(dir.path()))
    , m_user(options.user.empty() ? currentUserName() : options.user)
{
    m_authLog = m_dir + "/auth.log";
    m_sessionsLog = m_dir + "/sessions.log";
    std::vector<std::string> argv { CALLHOME_NC2_DEVICE_PATH, "--host", host, "--port", std::to_string(port), "--user",
        m_user, "--auth-log", m_authLog, "--sessions-log", m_sessionsLog, "--retry-ms",
        std::to_string(options.retryMs) };
    if (options.tls) {
        if (options.certPath.empty() || options.keyPath.empty() || options.trustedCaPath.empty()) {
            throw HarnessError("Nc2Device over TLS needs certPath, keyPath and trustedCaPath (libnetconf2 2.0.24 "
                               "always demands a client certificate)");
        }
        argv.insert(argv.end(),
            { "--tls", "--cert", options.certPath, "--key", options.keyPath, "--trusted-ca", options.trustedCaPath });
        if (!options.chainPath.empty()) {
            argv.insert(argv.end(), { "--chain", options.chainPath });
        }
    } else {
        m_hostKey = generateHostKey(m_dir, options.hostKeyType, "ssh_host_key");
        argv.insert(argv.end(), { "--hostkey", m_hostKey.privateKeyPath });
    }
    if (!options.password.empty()) {
        argv.insert(argv.end(), { "--password", options.password });
    }
    if (!options.authorizedKeyLine.empty()) {
        const auto keyFile = m_dir + "/authorized_key.pub";
        writeFile(keyFile, options.authorizedKeyLine + "\n");
        argv.insert(argv.end(), { "--authorized-key", keyFile });
    }
    if (!options.schemasDir.empty()) {
        argv.insert(argv.end(), { "--schemas", options.schemasDir });
    }
    m_process = std::make_unique<Process>(ProcessSpec {
        .argv = argv,
        .stdoutPath = m_dir + "/device.out",
        .stderrPath = m_dir + "/device.err",
    });
}

Nc2Device::~Nc2Device() = default;

int Nc2Device::stop(std::chrono::milliseconds deadline)
{
    return m_process->stop(deadline);
}

int Nc2Device::authAttempts() const
{
    return countLinesContaining(m_authLog, " ");
}

int Nc2Device::acceptedAuths() const
{
    return countLinesContaining(m_authLog, " accepted");
}

int Nc2Device::sessionsEstablished() const
{
    return countLinesContaining(m_sessionsLog, "established ");
}

int Nc2Device::sessionsEnded() const
{
    return countLinesContaining(m_sessionsLog, "ended ");
}

int Nc2Device::tlsHandshakeFailures() const
{
    return countLinesContaining(m_sessionsLog, "tls-failed ");
}
} // namespace callhome::test
