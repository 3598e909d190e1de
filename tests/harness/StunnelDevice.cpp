#include "harness/StunnelDevice.h"
#include "harness/TempDir.h"
#include "harness/Util.h"
#include <cerrno>
#include <cstring>
#include <unistd.h>
#include <vector>

namespace callhome::test {
namespace {
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

// Debian's stunnel4 package installs both names; older ones only `stunnel4`.
std::string findStunnel()
{
    for (const char* candidate : { "/usr/bin/stunnel4", "/usr/bin/stunnel", "/usr/sbin/stunnel4" }) {
        if (::access(candidate, X_OK) == 0) {
            return candidate;
        }
    }
    throw HarnessError("stunnel not found (apt-get install stunnel4)");
}
} // namespace

StunnelDevice::StunnelDevice(const TempDir& dir, const TlsCredentials& identity, StunnelDeviceOptions options)
    : m_dir(makeSubdir(dir.path(), "stunnel"))
    , m_identity(identity)
    , m_config(m_dir + "/stunnel.conf")
    , m_log(m_dir + "/stunnel.log")
    , m_stunnel(findStunnel())
{
    m_netconfd = std::make_unique<YumaNetconfd>(m_dir, options.startDeadline);

    // No `accept =` and no [service] section: inetd mode, TLS on stdin/stdout (socat's socketpair). debug = 7 logs
    // every verification step that the counters below grep for.
    std::string config = "foreground = yes\n"
                         "syslog = no\n"
                         "debug = 7\n"
                         "output = "
        + m_log
        + "\n"
          "pid =\n"
          "cert = "
        + identity.chain + "\nkey = " + identity.key + "\n";
    if (!options.trustedCaPath.empty()) {
        // verifyChain implies requireCert: a station without a certificate fails the handshake.
        config += "CAfile = " + options.trustedCaPath + "\nverifyChain = yes\n";
    }
    if (options.tls10Only) {
        // OpenSSL 3 allows TLS 1.0 only at security level 0 (its handshake signatures use SHA-1); measured with
        // stunnel 5.68 on OpenSSL 3.0: without the ciphers line every handshake fails with an internal error.
        config += "sslVersion = TLSv1\nciphers = DEFAULT:@SECLEVEL=0\n";
    }
    config += "exec = " + m_netconfd->subsystemCommand() + "\nexecArgs = netconf-subsystem\n";
    writeFile(m_config, config);
}

StunnelDevice::~StunnelDevice()
{
    stopCallHomes();
}

Process& StunnelDevice::callHome(const std::string& host, uint16_t port)
{
    const auto n = std::to_string(m_callHomes.size());
    const auto target
        = (host.find(':') != std::string::npos ? "TCP6:[" + host + "]" : "TCP4:" + host) + ":" + std::to_string(port);
    m_callHomes.push_back(std::make_unique<Process>(ProcessSpec {
        .argv = { "socat", target, "EXEC:" + m_stunnel + " " + m_config },
        .stdoutPath = m_dir + "/callhome-" + n + ".out",
        .stderrPath = m_dir + "/callhome-" + n + ".err",
    }));
    return *m_callHomes.back();
}

void StunnelDevice::stopCallHomes()
{
    for (auto& p : m_callHomes) {
        p->stop();
    }
}

int StunnelDevice::tlsHandshakes() const
{
    return countLinesContaining(m_log, "TLS accepted:");
}

int StunnelDevice::handshakeFailures() const
{
    return countLinesContaining(m_log, "SSL_accept: ");
}

int StunnelDevice::rejectedPeerCertificates() const
{
    return countLinesContaining(m_log, "Rejected by CERT at depth=");
}

int StunnelDevice::missingPeerCertificates() const
{
    return countLinesContaining(m_log, "peer did not return a certificate");
}

int StunnelDevice::peerVerificationFailures() const
{
    return rejectedPeerCertificates() + missingPeerCertificates();
}

int StunnelDevice::netconfSessions() const
{
    return countLinesContaining(m_log, "Local mode child started");
}
} // namespace callhome::test
