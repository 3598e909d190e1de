// reference-station: the libnetconf2 way of running a call-home station, as a yardstick for callhomed.
// libnetconf2 2.0.24's client call home (nc_client_{ssh,tls}_ch_add_bind_listen + nc_accept_callhome in a loop),
// accepting any SSH host key, authenticating with the station key (publickey) or certificate, holding every session.
// One thread, as libnetconf2's API is meant to be used: nc_accept_callhome handles one connection at a time, each
// up to libnetconf2's transport timeout.
//
// The one change from a plain loop: libnetconf2 listens with a backlog of 5 (NC_REVERSE_QUEUE), so 1,000 devices
// calling at once would mostly be refused by the kernel and measure nothing but retries. We call listen() again
// with a backlog of 4096 on its listening socket, found by scanning /proc/self/fd for the socket in LISTEN state
// bound to our port (listen() on a listening socket only changes its backlog).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fstream>
#include <iostream>
#include <libnetconf2/log.h>
#include <libnetconf2/session_client.h>
#include <libnetconf2/session_client_ch.h>
#include <libyang/libyang.h>
#include <netinet/in.h>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {
std::atomic<bool> g_stop { false };

void onSignal(int)
{
    g_stop.store(true);
}

int acceptAnyHostKey(const char*, ssh_session, void*)
{
    return 0; // a benchmark peer: every device is "known"
}

/** Re-listens every listening TCP socket of ours bound to `port` with a larger backlog; returns how many. */
int raiseBacklog(uint16_t port, int backlog)
{
    int raised = 0;
    DIR* d = ::opendir("/proc/self/fd");
    if (!d) {
        return 0;
    }
    while (auto* e = ::readdir(d)) {
        int fd = std::atoi(e->d_name);
        if (fd <= 2 || fd == ::dirfd(d)) {
            continue;
        }
        int listening = 0;
        socklen_t len = sizeof listening;
        if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) {
            continue;
        }
        sockaddr_storage a {};
        len = sizeof a;
        if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
            continue;
        }
        uint16_t p = a.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&a)->sin_port)
            : a.ss_family == AF_INET6       ? ntohs(reinterpret_cast<sockaddr_in6*>(&a)->sin6_port)
                                            : 0;
        if (p == port && ::listen(fd, backlog) == 0) {
            ++raised;
        }
    }
    ::closedir(d);
    return raised;
}

/** VmRSS in KiB and user+system CPU seconds of this process, from /proc and getrusage. */
std::pair<long, double> usage()
{
    long rss = 0;
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);) {
        if (line.rfind("VmRSS:", 0) == 0) {
            rss = std::atol(line.c_str() + 6);
        }
    }
    rusage ru {};
    ::getrusage(RUSAGE_SELF, &ru);
    double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec)
        + static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    return { rss, cpu };
}

void writeStats(const std::string& path, size_t sessions, size_t failed, double firstS, double lastS)
{
    auto [rss, cpu] = usage();
    std::ofstream f(path + ".tmp", std::ios::trunc);
    f << "{\"sessions\": " << sessions << ", \"failed_accepts\": " << failed << ", \"rss_kb\": " << rss
      << ", \"cpu_s\": " << cpu << ", \"first_session_s\": " << firstS << ", \"last_session_s\": " << lastS << "}\n";
    f.close();
    std::rename((path + ".tmp").c_str(), path.c_str());
}
/**
 * libnetconf2's client API used directly: `clients` threads, each sending <get-config> to its share of the sessions
 * round-robin (nc_send_rpc + nc_recv_reply: one outstanding RPC per thread), the same load api-load puts on
 * callhomed's control API.
 */
void rpcLoad(
    const std::vector<nc_session*>& sessions, unsigned clients, double warmup, double duration, const std::string& json)
{
    using Clock = std::chrono::steady_clock;
    auto countFrom = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(warmup));
    auto end = countFrom + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration));
    std::vector<std::vector<double>> latencies(clients);
    std::vector<uint64_t> errors(clients, 0);
    std::vector<std::thread> threads;
    for (unsigned c = 0; c < clients; ++c) {
        threads.emplace_back([&, c] {
            std::vector<nc_session*> mine;
            for (size_t i = c; i < sessions.size(); i += clients) {
                mine.push_back(sessions[i]);
            }
            if (mine.empty()) {
                return;
            }
            nc_rpc* rpc = nc_rpc_getconfig(NC_DATASTORE_RUNNING, nullptr, NC_WD_UNKNOWN, NC_PARAMTYPE_CONST);
            for (size_t i = 0; Clock::now() < end; ++i) {
                auto* s = mine[i % mine.size()];
                uint64_t id = 0;
                auto t0 = Clock::now();
                if (nc_send_rpc(s, rpc, 10000, &id) != NC_MSG_RPC) {
                    ++errors[c];
                    continue;
                }
                lyd_node* envp = nullptr;
                lyd_node* op = nullptr;
                auto r = nc_recv_reply(s, rpc, id, 10000, &envp, &op);
                auto t1 = Clock::now();
                lyd_free_all(envp);
                lyd_free_all(op);
                if (r != NC_MSG_REPLY) {
                    ++errors[c];
                } else if (t0 >= countFrom) {
                    latencies[c].push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
                }
            }
            nc_rpc_free(rpc);
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    std::vector<double> all;
    uint64_t errs = 0;
    for (unsigned c = 0; c < clients; ++c) {
        all.insert(all.end(), latencies[c].begin(), latencies[c].end());
        errs += errors[c];
    }
    std::sort(all.begin(), all.end());
    auto pct = [&](double p) {
        return all.empty() ? 0.0 : all[static_cast<size_t>(p / 100.0 * static_cast<double>(all.size() - 1))];
    };
    std::ofstream f(json);
    f << "{\"clients\": " << clients << ", \"devices\": " << sessions.size() << ", \"requests\": " << all.size()
      << ", \"errors\": " << errs << ", \"rate\": " << static_cast<double>(all.size()) / duration
      << ", \"p50_ms\": " << pct(50) << ", \"p99_ms\": " << pct(99) << "}\n";
}
} // namespace

int main(int argc, char** argv)
{
    CLI::App app { "reference-station: libnetconf2 nc_accept_callhome loop holding every session (benchmark yardstick)",
        "reference-station" };
    std::string address = "127.0.0.1", transport = "ssh", user = "netconf", stats;
    uint16_t port = 4334;
    std::string sshKey, cert, key, ca;
    double duration = 60;
    int backlog = 4096;
    size_t rpcAfter = 0;
    std::vector<unsigned> rpcClients { 16 };
    double rpcDuration = 10, rpcWarmup = 1;
    std::string rpcJson;
    app.add_option("--address", address, "Listen address")->capture_default_str();
    app.add_option("--port", port, "Listen port")->capture_default_str();
    app.add_option("--transport", transport, "ssh or tls")->capture_default_str();
    app.add_option("--ssh-key", sshKey, "SSH: the station's private key (FILE.pub next to it)");
    app.add_option("--user", user, "SSH user")->capture_default_str();
    app.add_option("--cert", cert, "TLS: the station's certificate");
    app.add_option("--key", key, "TLS: its private key");
    app.add_option("--ca", ca, "TLS: the devices' manufacturer CA");
    app.add_option("--backlog", backlog, "listen() backlog set on libnetconf2's socket (0: leave libnetconf2's 5)")
        ->capture_default_str();
    app.add_option("--duration", duration, "Exit after this many seconds")->capture_default_str();
    app.add_option("--stats", stats, "Write {sessions, rss_kb, cpu_s, ...} as JSON here every second and at exit")
        ->required();
    app.add_option("--rpc-after", rpcAfter,
        "Once this many sessions are held, stop accepting and run <get-config> round trips over them (the yardstick of "
        "the control-API scenario)");
    app.add_option("--rpc-clients", rpcClients,
        "Threads sending RPCs, each over its share of the sessions; several values run one after the other");
    app.add_option("--rpc-duration", rpcDuration, "Seconds of RPC load after the warm-up")->capture_default_str();
    app.add_option("--rpc-json", rpcJson, "Write {requests, rate, p50_ms, p99_ms} here; {} is replaced by the clients");
    CLI11_PARSE(app, argc, argv);

    std::signal(SIGPIPE, SIG_IGN);
    std::signal(SIGTERM, onSignal);
    std::signal(SIGINT, onSignal);
    rlimit r {};
    if (::getrlimit(RLIMIT_NOFILE, &r) == 0) {
        r.rlim_cur = r.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &r);
    }

    nc_client_init();
    nc_verbosity(NC_VERB_ERROR);
    if (transport == "ssh") {
        nc_client_ssh_ch_set_username(user.c_str());
        if (nc_client_ssh_ch_add_keypair((sshKey + ".pub").c_str(), sshKey.c_str()) != 0) {
            std::cerr << "reference-station: cannot use the key pair " << sshKey << "\n";
            return 1;
        }
        nc_client_ssh_ch_set_auth_pref(NC_SSH_AUTH_PUBLICKEY, 10);
        nc_client_ssh_ch_set_auth_pref(NC_SSH_AUTH_PASSWORD, -1);
        nc_client_ssh_ch_set_auth_pref(NC_SSH_AUTH_INTERACTIVE, -1);
        nc_client_ssh_ch_set_auth_hostkey_check_clb(acceptAnyHostKey, nullptr);
        if (nc_client_ssh_ch_add_bind_listen(address.c_str(), port) != 0) {
            std::cerr << "reference-station: cannot listen on " << address << ":" << port << "\n";
            return 1;
        }
    } else {
        if (nc_client_tls_ch_set_cert_key_paths(cert.c_str(), key.c_str()) != 0
            || nc_client_tls_ch_set_trusted_ca_paths(ca.c_str(), nullptr) != 0) {
            std::cerr << "reference-station: cannot use the certificate, key or CA\n";
            return 1;
        }
        if (nc_client_tls_ch_add_bind_listen(address.c_str(), port) != 0) {
            std::cerr << "reference-station: cannot listen on " << address << ":" << port << "\n";
            return 1;
        }
    }
    if (backlog > 0 && raiseBacklog(port, backlog) == 0) {
        std::cerr << "reference-station: libnetconf2's listening socket not found; backlog left at 5\n";
    }

    // One context shared by every session (libnetconf2 fills it from the first device's modules), as a station
    // managing identical devices would; nullptr would build a fresh context per session.
    ly_ctx* ctx = nullptr;
    if (ly_ctx_new(nullptr, 0, &ctx) != LY_SUCCESS) {
        std::cerr << "reference-station: ly_ctx_new failed\n";
        return 1;
    }
    std::vector<nc_session*> sessions;
    size_t failed = 0;
    auto start = std::chrono::steady_clock::now();
    auto lastWrite = start;
    double firstS = 0, lastS = 0;
    auto since
        = [&](std::chrono::steady_clock::time_point t) { return std::chrono::duration<double>(t - start).count(); };
    writeStats(stats, 0, 0, 0, 0);
    while (!g_stop.load()) {
        auto now = std::chrono::steady_clock::now();
        if (since(now) >= duration) {
            break;
        }
        nc_session* s = nullptr;
        int rc = nc_accept_callhome(100, ctx, &s);
        now = std::chrono::steady_clock::now();
        if (rc == 1 && s) {
            if (sessions.empty()) {
                firstS = since(now);
            }
            lastS = since(now);
            sessions.push_back(s);
            if (rpcAfter > 0 && sessions.size() >= rpcAfter) {
                writeStats(stats, sessions.size(), failed, firstS, lastS);
                for (auto clients : rpcClients) {
                    auto path = rpcJson;
                    if (auto p = path.find("{}"); p != std::string::npos) {
                        path.replace(p, 2, std::to_string(clients));
                    }
                    rpcLoad(sessions, clients, rpcWarmup, rpcDuration, path);
                }
                break;
            }
        } else if (rc < 0) {
            ++failed;
        }
        if (now - lastWrite >= std::chrono::seconds(1)) {
            lastWrite = now;
            writeStats(stats, sessions.size(), failed, firstS, lastS);
        }
    }
    writeStats(stats, sessions.size(), failed, firstS, lastS);
    // Leave without freeing: nc_session_free sends <close-session> and waits per session; the devices see the
    // connections close when the process exits.
    std::fflush(nullptr);
    ::_exit(0);
}
