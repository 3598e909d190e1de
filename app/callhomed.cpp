// callhomed: the NETCONF Call Home listener. Wiring only; the work is in lib/.
#include "api/ControlApi.h"
#include "common/Log.h"
#include "config/Config.h"
#include "server/Daemon.h"
#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>
#include <pthread.h>

int main(int argc, char** argv)
{
    CLI::App app {
        "callhomed: NETCONF Call Home (RFC 8071) listener. Devices connect to us over SSH (4334) or TLS (4335); we\n"
        "identify them by their SSH host key or IEEE 802.1AR certificate, record first contacts as pending for an\n"
        "operator to approve (callhomectl), accept pre-provisioned ones, and hold a NETCONF session to every\n"
        "approved device. Runs on embedded defaults without --config.",
        "callhomed"
    };
    app.set_version_flag("--version", std::string("callhomed ") + CALLHOME_VERSION);
    std::optional<std::string> configFile;
    callhome::config::Overrides overrides;
    std::string logLevel = "info";
    bool journal = false;
    bool checkOnly = false;
    app.add_option(
        "--config", configFile, "Configuration file (JSON, RFC 7951) validated against schemas/callhome-config.yang");
    app.add_option("--state-dir", overrides.stateDir,
        "Directory for inventory.db and the station SSH key (default from config, else ./state)");
    app.add_option("--db", overrides.inventoryPath, "SQLite inventory file (default STATE-DIR/inventory.db)");
    app.add_option("--listen", overrides.listen,
        "Endpoint ssh:ADDR:PORT or tls:ADDR:PORT, e.g. ssh:127.0.0.1:4334 or tls:[::1]:4335; repeatable; "
        "replaces the config's list (default ssh:[::]:4334)");
    app.add_option("--trust-store", overrides.trustStore,
        "TLS trust store directory: station/cert.pem + key.pem, manufacturers/<name>/ca.pem (see "
        "trust-store/README.md); needed for tls endpoints");
    app.add_option("--control-socket", overrides.controlSocket,
        "UNIX socket of the control API (default from config, else STATE-DIR/control.sock; \"\" for none)");
    app.add_option("--log-level", logLevel, "trace, debug, info, warning, error, critical or off")
        ->capture_default_str();
    app.add_flag("--journal", journal, "Log to the systemd journal instead of stderr");
    app.add_flag("--check-config", checkOnly, "Validate the configuration, print the effective settings and exit");
    CLI11_PARSE(app, argc, argv);

    try {
        callhome::log::init(callhome::log::parseLevel(logLevel), journal);
        auto config = callhome::config::load(configFile, overrides);
        if (checkOnly) {
            std::cout << "configuration ok\n";
            for (const auto& e : config.listen) {
                std::cout << "listen " << e.toString() << "\n";
            }
            std::cout << "state-dir " << config.stateDir << "\ninventory " << config.inventoryPath << "\nssh-user "
                      << config.sshUser << "\nssh-key " << config.sshKeyFile << "\ncontrol-socket "
                      << (config.control.socket.empty() ? "(none)" : config.control.socket) << "\n";
            if (config.control.tcp) {
                std::cout << "control-tcp " << config.control.tcp->address << " " << config.control.tcp->port << "\n";
            }
            return 0;
        }

        // A device that drops its connection must not kill us with SIGPIPE.
        std::signal(SIGPIPE, SIG_IGN);
        // Signals are taken by sigwait below; every thread started from here on inherits the mask.
        sigset_t signals;
        sigemptyset(&signals);
        sigaddset(&signals, SIGTERM);
        sigaddset(&signals, SIGINT);
        sigaddset(&signals, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &signals, nullptr);

        auto control = config.control;
        callhome::server::Daemon daemon(std::move(config));
        daemon.start();
        callhome::api::ControlApi api(daemon, control);
        api.start();
        int sig = 0;
        while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) {
            // SIGHUP (systemctl reload): trust anchors and CRLs; the config file itself needs a restart for now.
            callhome::log::get(callhome::log::Main)->info("SIGHUP received, reloading the trust store");
            daemon.reloadTrustStore();
        }
        callhome::log::get(callhome::log::Main)
            ->info("{} received, closing sessions", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        daemon.stop(); // first: device connections answer API requests until they end
        api.stop();
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "callhomed: " << e.what() << std::endl;
        return 1;
    }
}
