#include "harness/DevPki.h"
#include "harness/Process.h"
#include "harness/TempDir.h"
#include "harness/Util.h"
#include <unistd.h>

namespace callhome::test {
namespace {
std::string existing(const std::string& path)
{
    if (::access(path.c_str(), R_OK) != 0) {
        throw HarnessError("the dev PKI has no " + path);
    }
    return path;
}
} // namespace

DevPki::DevPki(const TempDir& dir, std::chrono::milliseconds deadline)
    : m_root(dir.file("pki"))
{
    const auto log = dir.file("dev-pki.log");
    Process script({
        .argv = { CALLHOME_SOURCE_DIR "/scripts/dev-pki", m_root },
        .stdoutPath = log,
        .stderrPath = log,
    });
    const auto status = script.waitExit(deadline);
    if (status != 0) {
        script.stop();
        throw HarnessError("scripts/dev-pki " + m_root
            + (status ? " exited with " + std::to_string(*status) : " did not finish in time") + ": "
            + readFileIfExists(log));
    }
}

TlsCredentials DevPki::device(const std::string& name) const
{
    const auto dir = m_root + "/devices/" + name;
    TlsCredentials out { .cert = existing(dir + "/cert.pem"), .key = existing(dir + "/key.pem") };
    // A self-signed certificate is its own chain.
    out.chain = ::access((dir + "/chain.pem").c_str(), R_OK) == 0 ? dir + "/chain.pem" : out.cert;
    return out;
}

std::string DevPki::manufacturerCa() const
{
    return existing(m_root + "/manufacturer/ca.pem");
}

std::string DevPki::manufacturerCrl() const
{
    return existing(m_root + "/manufacturer/crl.pem");
}

std::string DevPki::otherCa() const
{
    return existing(m_root + "/other-ca/ca.pem");
}

std::string DevPki::stationCa() const
{
    return existing(m_root + "/station-ca/ca.pem");
}

TlsCredentials DevPki::station() const
{
    const auto dir = m_root + "/station";
    return {
        .cert = existing(dir + "/cert.pem"), .key = existing(dir + "/key.pem"), .chain = existing(dir + "/chain.pem")
    };
}

std::string DevPki::trustStore() const
{
    return existing(m_root + "/trust-store");
}
} // namespace callhome::test
