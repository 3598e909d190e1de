// callhome-sim: N simulated NETCONF Call Home devices in one process. Wiring only; the work is in lib/sim.
#include "common/Log.h"
#include "sim/Simulator.h"
#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <ctime>
#include <fstream>
#include <iostream>
#include <pthread.h>
#include <thread>

namespace {
/** "ADDR", "ADDR:PORT" or "[V6]:PORT" into the options; the port defaults to 4334 (ssh) / 4335 (tls). */
void parseStation(const std::string& text, callhome::sim::Options& o, bool portGiven)
{
    std::string addr = text;
    std::optional<std::string> port;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string::npos) {
            throw callhome::UsageError("--station " + text + ": missing ']'");
        }
        addr = text.substr(1, close - 1);
        if (close + 1 < text.size() && text[close + 1] == ':') {
            port = text.substr(close + 2);
        }
    } else if (auto colon = text.rfind(':'); colon != std::string::npos && text.find(':') == colon) {
        addr = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    o.stationAddress = addr;
    if (port) {
        try {
            auto p = std::stoul(*port);
            if (p == 0 || p > 65535) {
                throw std::out_of_range("port");
            }
            o.stationPort = static_cast<uint16_t>(p);
        } catch (const std::exception&) {
            throw callhome::UsageError("--station " + text + ": bad port");
        }
    } else if (!portGiven) {
        o.stationPort = o.transport == callhome::sim::Transport::Tls ? 4335 : 4334;
    }
}
} // namespace

int main(int argc, char** argv)
{
    CLI::App app {
        "callhome-sim: simulated NETCONF Call Home (RFC 8071) devices. N devices in one process, each with its own\n"
        "identity (SSH host key, or an IEEE 802.1AR-style certificate under a CA it makes), call home to a station,\n"
        "serve a minimal NETCONF server (<hello>, <get>, <get-config>, <edit-config>, <get-schema>, <close-session>,\n"
        "notifications after <create-subscription>), or open silent / junk connections. Prints a summary\n"
        "(established, rate, time-to-session percentiles) and optionally writes it as JSON. Every run ends by itself\n"
        "(--duration).",
        "callhome-sim"
    };
    callhome::sim::Options o;
    std::string station = "127.0.0.1";
    std::string transport = "ssh", mode = "hold", logLevel = "warning";
    double durationS = 60, timeoutS = 30, reconnectDelayS = 1;
    bool allAtOnce = false;
    std::optional<std::string> jsonFile;
    app.add_option("--station", station, "Station to call: ADDR[:PORT] or [V6ADDR]:PORT (port 4334 ssh, 4335 tls)")
        ->capture_default_str();
    app.add_option("--transport", transport, "ssh or tls")->capture_default_str();
    app.add_option("--mode", mode,
           "hold (establish, keep until the end of the run), once (establish, then close), silent (TCP connect, say "
           "nothing), junk (connect, send garbage, close)")
        ->capture_default_str();
    app.add_option("--count,-n", o.count, "Devices (silent/junk: connections / distinct source addresses)")
        ->capture_default_str();
    auto* rate = app.add_option("--rate", o.rate, "Call-home attempts per second (junk: for the whole --duration)");
    app.add_flag("--all-at-once", allAtOnce, "Every device calls at once (the default without --rate)")->excludes(rate);
    app.add_option("--threads", o.threads, "Event loops (default: one per core)");
    app.add_option("--ssh-keys", o.sshKeysDir,
        "Reuse or generate (ed25519) the devices' host keys in DIR; writes DIR/fingerprints.txt (without it, keys "
        "live in memory only)");
    app.add_option("--make-ca", o.caDir,
        "TLS: reuse or create a manufacturer CA (DIR/manufacturer/ca.pem) and device certificates "
        "(serialNumber SIM-000001...) in DIR; writes DIR/serials.csv for `callhomectl expect --csv`");
    app.add_option("--manufacturer", o.manufacturer, "Manufacturer name written to serials.csv")->capture_default_str();
    app.add_option("--station-ca", o.stationCa, "TLS: the station's certificate must verify against this CA (PEM)");
    app.add_option("--authorized-key", o.authorizedKey,
        "SSH: accept only this station public key (authorized_keys line); default: any key");
    app.add_option("--source-base", o.sourceBase,
        "First source address, one per device, incremented (default 127.1.0.1 hold/once, 127.2.0.1 silent, "
        "127.3.0.1 junk when the station is on 127/8; 'none' lets the kernel choose)");
    app.add_flag("--reconnect", o.reconnect, "Call again after the station drops or refuses us");
    app.add_option("--reconnect-delay", reconnectDelayS, "Seconds before calling again")->capture_default_str();
    app.add_option("--duration", durationS, "The run ends after this many seconds")->capture_default_str();
    app.add_option("--timeout", timeoutS, "Per attempt: seconds from TCP connect to the station's <hello>")
        ->capture_default_str();
    double lingerS = 1;
    app.add_option("--linger", lingerS, "once: seconds an established session is kept before we close it")
        ->capture_default_str();
    app.add_option("--notify-rate", o.notifyRate,
        "Notifications per second per session, after the station's <create-subscription>");
    app.add_option("--junk-bytes", o.junkBytes, "Bytes of garbage per junk connection")->capture_default_str();
    app.add_option("--json", jsonFile, "Write the summary as JSON to FILE");
    app.add_option("--ready-file", o.readyFile,
        "Write FILE once every device's first attempt has ended (established or failed), for scripts");
    bool prepareOnly = false;
    app.add_flag("--prepare-only", prepareOnly,
        "Create or reuse the identities (--ssh-keys, --make-ca) for --count devices, then exit without calling");
    app.add_option("--log-level", logLevel, "trace, debug, info, warning, error, critical or off")
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    try {
        callhome::log::init(callhome::log::parseLevel(logLevel));
        o.transport = callhome::sim::transportFromString(transport);
        o.mode = callhome::sim::modeFromString(mode);
        parseStation(station, o, false);
        if (allAtOnce) {
            o.rate = 0;
        }
        auto toMs = [](double s) { return std::chrono::milliseconds(static_cast<int64_t>(s * 1000)); };
        o.duration = toMs(durationS);
        o.timeout = toMs(timeoutS);
        o.reconnectDelay = toMs(reconnectDelayS);
        o.linger = toMs(lingerS);

        // A station that drops a connection must not kill us with SIGPIPE.
        std::signal(SIGPIPE, SIG_IGN);
        sigset_t signals;
        sigemptyset(&signals);
        sigaddset(&signals, SIGTERM);
        sigaddset(&signals, SIGINT);
        pthread_sigmask(SIG_BLOCK, &signals, nullptr);

        callhome::sim::Simulator sim(o);
        if (prepareOnly) {
            return 0;
        }
        std::atomic<bool> done { false };
        std::thread signalWaiter([&] {
            timespec tick { 0, 100'000'000 };
            while (!done.load()) {
                if (sigtimedwait(&signals, nullptr, &tick) > 0) {
                    sim.stop();
                }
            }
        });
        auto report = sim.run();
        done.store(true);
        signalWaiter.join();
        std::cout << report.summary() << std::flush;
        if (jsonFile) {
            std::ofstream f(*jsonFile, std::ios::trunc);
            f << report.toJson();
            if (!f.flush()) {
                std::cerr << "callhome-sim: cannot write " << *jsonFile << std::endl;
                return 1;
            }
        }
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "callhome-sim: " << e.what() << std::endl;
        return 1;
    }
}
