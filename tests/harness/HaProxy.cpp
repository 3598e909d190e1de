#include "harness/HaProxy.h"
#include "common/UniqueFd.h"
#include "harness/Loopback.h"
#include "harness/TempDir.h"
#include "harness/Util.h"
#include <cerrno>
#include <cstring>
#include <poll.h>
#include <sstream>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace callhome::test {
namespace {
std::string makeSubdir(const std::string& parent)
{
    std::string pattern = parent + "/haproxy.XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) {
        throw HarnessError("mkdtemp " + pattern + ": " + std::strerror(errno));
    }
    return buf.data();
}

/** A port the kernel picked on 127.0.0.1, released for HAProxy to bind (HAProxy cannot report a port 0 bind). */
uint16_t freePort()
{
    TcpListener probe("127.0.0.1");
    return probe.port();
}

std::vector<std::string> splitCsv(const std::string& line)
{
    std::vector<std::string> out;
    std::string cell;
    std::istringstream in(line);
    while (std::getline(in, cell, ',')) {
        out.push_back(cell);
    }
    return out;
}
} // namespace

HaProxy::HaProxy(const TempDir& dir, std::vector<HaProxyServer> servers, HaProxyOptions options)
    : m_dir(makeSubdir(dir.path()))
    , m_config(m_dir + "/haproxy.cfg")
    , m_stats(m_dir + "/stats.sock")
    , m_log(m_dir + "/haproxy.log")
{
    if (::access("/usr/sbin/haproxy", X_OK) != 0) {
        throw HarnessError("/usr/sbin/haproxy not found (apt-get install haproxy)");
    }
    m_port = freePort();
    const auto inter = std::to_string(options.checkInterval.count()) + "ms";
    std::string cfg = "global\n"
                      "    stats socket "
        + m_stats
        + " mode 600 level admin\n"
          "    log stderr format short local0 info\n"
          "defaults\n"
          "    mode tcp\n"
          "    log global\n"
          "    option tcplog\n"
          "    option redispatch\n"
          "    retries 3\n"
          "    timeout connect 2s\n"
          "    timeout client 1h\n"
          "    timeout server 1h\n"
          "frontend callhome\n"
          "    bind 127.0.0.1:"
        + std::to_string(m_port)
        + "\n"
          "    default_backend instances\n"
          "backend instances\n"
          "    balance roundrobin\n";
    for (const auto& s : servers) {
        cfg += "    server " + s.name + " " + s.address + ":" + std::to_string(s.port) + " check inter " + inter
            + " fall 1 rise 1";
        if (s.checkPort) {
            cfg += " port " + std::to_string(s.checkPort);
        }
        if (s.backup) {
            cfg += " backup";
        }
        cfg += "\n";
    }
    writeFile(m_config, cfg);
    m_process = std::make_unique<Process>(
        ProcessSpec { { "/usr/sbin/haproxy", "-db", "-f", m_config }, m_dir + "/haproxy.out", m_log });
    waitFor(
        [&] {
            if (!m_process->running()) {
                throw HarnessError("haproxy exited at start: " + readFileIfExists(m_log));
            }
            try {
                return command("show info").find("Pid:") != std::string::npos;
            } catch (const HarnessError&) {
                return false; // the stats socket is not there yet
            }
        },
        options.startDeadline, "haproxy's stats socket");
}

HaProxy::~HaProxy()
{
    stop();
}

void HaProxy::stop()
{
    if (m_process) {
        m_process->stop();
        m_process.reset();
    }
}

std::string HaProxy::command(const std::string& line) const
{
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) {
        throw HarnessError(std::string("socket: ") + std::strerror(errno));
    }
    sockaddr_un sa {};
    sa.sun_family = AF_UNIX;
    if (m_stats.size() >= sizeof sa.sun_path) {
        throw HarnessError("stats socket path too long: " + m_stats);
    }
    std::memcpy(sa.sun_path, m_stats.c_str(), m_stats.size());
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        throw HarnessError("connect " + m_stats + ": " + std::strerror(errno));
    }
    const std::string request = line + "\n";
    if (::write(fd.get(), request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
        throw HarnessError("write to " + m_stats + ": " + std::strerror(errno));
    }
    // HAProxy answers and closes (non-interactive mode); bounded by a 5-s deadline.
    std::string out;
    auto end = Clock::now() + std::chrono::seconds(5);
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
        if (left <= 0) {
            throw HarnessError("haproxy stats socket: no answer to '" + line + "' within 5 s");
        }
        pollfd p { fd.get(), POLLIN, 0 };
        if (::poll(&p, 1, static_cast<int>(left)) <= 0) {
            continue;
        }
        char buf[4096];
        auto n = ::read(fd.get(), buf, sizeof buf);
        if (n <= 0) {
            return out;
        }
        out.append(buf, static_cast<size_t>(n));
    }
}

std::string HaProxy::status(const std::string& server) const
{
    // `show stat` is CSV: "# pxname,svname,...,status,..." then one line per proxy and server.
    std::istringstream in(command("show stat"));
    std::string line;
    size_t statusColumn = 17;
    while (std::getline(in, line)) {
        auto cells = splitCsv(line.rfind("# ", 0) == 0 ? line.substr(2) : line);
        if (line.rfind("# ", 0) == 0) {
            for (size_t i = 0; i < cells.size(); ++i) {
                if (cells[i] == "status") {
                    statusColumn = i;
                }
            }
            continue;
        }
        if (cells.size() > statusColumn && cells[0] == "instances" && cells[1] == server) {
            return cells[statusColumn];
        }
    }
    throw HarnessError("haproxy has no server " + server);
}

void HaProxy::waitStatus(const std::string& server, bool up, std::chrono::milliseconds deadline) const
{
    const std::string want = up ? "UP" : "DOWN";
    waitFor([&] { return status(server).rfind(want, 0) == 0; }, deadline, "haproxy server " + server + " " + want);
}
} // namespace callhome::test
