#include "harness/HostilePeer.h"
#include "harness/TempDir.h"
#include "harness/Util.h"
#include <cerrno>
#include <cstring>
#include <sstream>
#include <thread>

namespace callhome::test {
namespace {
// Debian's interpreter, explicitly: python3-paramiko is installed for it, not for a python3 earlier in PATH.
const char* const kPython = "/usr/bin/python3";

std::string makeSubdir(const std::string& parent)
{
    std::string pattern = parent + "/hostile.XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) {
        throw HarnessError("mkdtemp " + pattern + ": " + std::strerror(errno));
    }
    return buf.data();
}

bool matches(const std::string& line, const std::string& marker)
{
    return line == marker || line.rfind(marker + " ", 0) == 0;
}

std::string tail(const std::string& text, size_t n)
{
    return text.size() <= n ? text : "..." + text.substr(text.size() - n);
}
} // namespace

std::string hostilePeerScript(HostileKind kind)
{
    const std::string dir = std::string(CALLHOME_SOURCE_DIR) + "/tests/hostile/";
    switch (kind) {
    case HostileKind::Ssh:
        return dir + "hostile_ssh.py";
    case HostileKind::Tls:
        return dir + "hostile_tls.py";
    case HostileKind::Tcp:
        return dir + "tcp_peers.py";
    }
    return {};
}

TlsCredentials selfSignedTlsIdentity(const std::string& dir, const std::string& commonName)
{
    TlsCredentials id;
    id.cert = dir + "/" + commonName + ".pem";
    id.key = dir + "/" + commonName + ".key";
    id.chain = id.cert;
    Process openssl({ .argv = { "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                          "-nodes", "-keyout", id.key, "-out", id.cert, "-days", "30", "-subj", "/CN=" + commonName,
                          "-addext", "basicConstraints=critical,CA:FALSE", "-addext",
                          "keyUsage=critical,digitalSignature", "-addext", "extendedKeyUsage=serverAuth,clientAuth" },
        .stdoutPath = id.cert + ".openssl.out",
        .stderrPath = id.cert + ".openssl.err" });
    auto status = openssl.waitExit(std::chrono::seconds(30));
    if (!status || *status != 0) {
        throw HarnessError("openssl req -x509 failed: " + readFileIfExists(id.cert + ".openssl.err"));
    }
    return id;
}

HostileAttempt::HostileAttempt(ProcessSpec spec, std::string statusPath)
    : m_statusPath(std::move(statusPath))
    , m_process(std::move(spec))
{ }

std::vector<std::string> HostileAttempt::markers() const
{
    std::vector<std::string> out;
    std::istringstream in(readFileIfExists(m_statusPath));
    for (std::string line; std::getline(in, line);) {
        out.push_back(line);
    }
    return out;
}

std::optional<std::string> HostileAttempt::find(const std::string& marker) const
{
    for (const auto& line : markers()) {
        if (matches(line, marker)) {
            return line;
        }
    }
    return std::nullopt;
}

int HostileAttempt::count(const std::string& marker) const
{
    int n = 0;
    for (const auto& line : markers()) {
        n += matches(line, marker) ? 1 : 0;
    }
    return n;
}

std::string HostileAttempt::describe() const
{
    std::string out = "markers of " + m_statusPath + ":";
    for (const auto& line : markers()) {
        out += "\n  " + line;
    }
    return out + "\nstderr tail:\n" + tail(readFileIfExists(stderrPath()), 2000);
}

std::string HostileAttempt::waitFor(const std::string& marker, std::chrono::milliseconds deadline)
{
    const auto until = Clock::now() + deadline;
    while (true) {
        // Read before looking at the process: a marker written just before exiting still counts.
        bool exited = !m_process.running();
        if (auto line = find(marker)) {
            return *line;
        }
        if (exited) {
            throw HarnessError("hostile peer exited (" + std::to_string(m_process.exitStatus().value_or(-1))
                + ") without '" + marker + "'; " + describe());
        }
        if (Clock::now() >= until) {
            throw HarnessError("timed out after " + std::to_string(deadline.count()) + " ms waiting for hostile peer '"
                + marker + "'; " + describe());
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

HostilePeer::HostilePeer(const TempDir& dir, HostileKind kind, HostilePeerOptions options)
    : m_dir(makeSubdir(dir.path()))
    , m_kind(kind)
    , m_options(std::move(options))
{
    if (m_kind == HostileKind::Ssh) {
        m_hostKey = generateHostKey(m_dir, m_options.hostKeyType, "ssh_host_key");
    }
    if (m_kind == HostileKind::Tls && (m_options.tlsIdentity.key.empty() || m_options.tlsIdentity.cert.empty())) {
        throw HarnessError("a TLS HostilePeer needs tlsIdentity (cert and key)");
    }
}

HostilePeer::~HostilePeer() = default;

HostileAttempt& HostilePeer::callHome(
    const std::string& mode, const std::string& host, uint16_t port, const std::vector<std::string>& extraArgs)
{
    const auto tag = m_dir + "/run" + std::to_string(m_attempts.size() + 1) + "-" + mode;
    const auto hostPort = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
    std::vector<std::string> argv { kPython, hostilePeerScript(m_kind), "--connect", hostPort, "--mode", mode,
        "--status", tag + ".status" };
    if (!m_options.source.empty()) {
        argv.insert(argv.end(), { "--source", m_options.source });
    }
    if (m_kind == HostileKind::Ssh) {
        argv.insert(argv.end(), { "--host-key", m_hostKey.privateKeyPath });
        if (!m_options.authorizedKeyLine.empty()) {
            argv.insert(argv.end(), { "--authorized-key", m_options.authorizedKeyLine });
        }
    } else if (m_kind == HostileKind::Tls) {
        const auto& id = m_options.tlsIdentity;
        argv.insert(argv.end(), { "--cert", id.chain.empty() ? id.cert : id.chain, "--key", id.key });
        if (!m_options.trustedCaPath.empty()) {
            argv.insert(argv.end(), { "--ca", m_options.trustedCaPath });
        }
    }
    if (!m_options.base11 && m_kind != HostileKind::Tcp) {
        argv.emplace_back("--no-base11");
    }
    argv.insert(argv.end(), extraArgs.begin(), extraArgs.end());
    m_attempts.push_back(std::make_unique<HostileAttempt>(
        ProcessSpec {
            .argv = argv,
            .stdoutPath = tag + ".out",
            .stderrPath = tag + ".err",
            // no __pycache__ in the source tree; unbuffered for the stderr log
            .env = { { "PYTHONDONTWRITEBYTECODE", "1" }, { "PYTHONUNBUFFERED", "1" } },
        },
        tag + ".status"));
    return *m_attempts.back();
}

void HostilePeer::stopAll()
{
    for (auto& a : m_attempts) {
        a->stop();
    }
}
} // namespace callhome::test
