// callhomed: the NETCONF Call Home listener. Wiring only; the work is in lib/.
#include "api/ControlApi.h"
#include "common/Log.h"
#include "common/Systemd.h"
#include "config/Config.h"
#include "inventory/Open.h"
#include "server/Daemon.h"
#include "server/Watchdog.h"
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
    std::vector<std::string> logLevels;
    bool journal = false;
    bool noJournal = false;
    bool checkOnly = false;
    bool stallOnSigusr2 = false;
    app.add_option(
        "--config", configFile, "Configuration file (JSON, RFC 7951) validated against schemas/callhome-config.yang");
    app.add_option("--state-dir", overrides.stateDir,
        "Directory for inventory.db and the station SSH key (default from config, else ./state)");
    app.add_option("--db", overrides.inventoryPath,
        "The inventory: SQLite file (default STATE-DIR/inventory.db) or PostgreSQL URL (postgresql://...) or libpq "
        "connection string");
    app.add_option("--listen", overrides.listen,
        "Endpoint ssh:ADDR:PORT or tls:ADDR:PORT, e.g. ssh:127.0.0.1:4334 or tls:[::1]:4335; repeatable; "
        "replaces the config's list (default ssh:[::]:4334)");
    app.add_option("--trust-store", overrides.trustStore,
        "TLS trust store directory: station/cert.pem + key.pem, manufacturers/<name>/ca.pem (see "
        "trust-store/README.md); needed for tls endpoints");
    app.add_option("--control-socket", overrides.controlSocket,
        "UNIX socket of the control API (default from config, else STATE-DIR/control.sock; \"\" for none)");
    app.add_option("--log-level", logLevels,
        "LEVEL or SUBSYSTEM=LEVEL, comma-separated, repeatable (--log-level info --log-level "
        "inventory=debug,netconf=trace); levels trace, debug, info, warning, error, critical, off; subsystems main, "
        "listener, ssh, identity, netconf, inventory. Wins over the config's log/level and log/subsystem (default "
        "info)");
    auto* journalFlag = app.add_flag("--journal", journal,
        "Log to the systemd journal (the default when stderr is the journal's stream, see JOURNAL_STREAM)");
    app.add_flag("--no-journal", noJournal, "Log to stderr even when it is the journal's stream")
        ->excludes(journalFlag);
    app.add_flag("--check-config", checkOnly, "Validate the configuration, print the effective settings and exit");
    // Hidden (no group): lets a test prove that a stalled event loop stops the watchdog pings.
    app.add_flag("--test-stall-loop-on-sigusr2", stallOnSigusr2)->group("");
    CLI11_PARSE(app, argc, argv);

    try {
        callhome::log::Levels cliLevels;
        for (const auto& l : logLevels) {
            callhome::log::parseLevels(l, cliLevels);
        }
        namespace log = callhome::log;
        namespace systemd = callhome::systemd;
        log::init(cliLevels, journal ? log::Output::Journal : noJournal ? log::Output::Stderr : log::Output::Auto);
        auto config = callhome::config::load(configFile, overrides);
        log::setLevels(config.logLevels.overriddenBy(cliLevels));
        if (checkOnly) {
            std::cout << "configuration ok\n";
            for (const auto& e : config.listen) {
                std::cout << "listen " << e.toString() << "\n";
            }
            std::cout << "state-dir " << config.stateDir << "\ninventory "
                      << callhome::inventory::redactSpec(config.inventoryPath) << "\nssh-user " << config.sshUser
                      << "\nssh-key " << config.sshKeyFile << "\nssh-credentials " << config.credentialsPath
                      << "\ncontrol-socket " << (config.control.socket.empty() ? "(none)" : config.control.socket)
                      << "\n";
            if (config.control.tcp) {
                std::cout << "control-tcp " << config.control.tcp->address << " " << config.control.tcp->port << "\n";
            }
            for (const auto& [hook, argv] :
                { std::pair { "on-pending", &config.hooks.onPending }, { "on-connect", &config.hooks.onConnect },
                    { "on-disconnect", &config.hooks.onDisconnect }, { "on-refused", &config.hooks.onRefused } }) {
                if (!argv->empty()) {
                    std::cout << "hook " << hook;
                    for (const auto& a : *argv) {
                        std::cout << " " << a;
                    }
                    std::cout << "\n";
                }
            }
            std::cout << "log-level " << log::levels().toString() << "\n";
            const bool refuse = config.duplicateSessions == callhome::config::DuplicateSessions::Refuse;
            std::cout << "sessions-duplicate " << (refuse ? "refuse" : "replace") << "\n";
            for (const auto& rule : config.autoApprove) {
                std::cout << "auto-approve " << rule.name << " name-prefix " << rule.namePrefix << "\n";
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
        if (stallOnSigusr2) {
            sigaddset(&signals, SIGUSR2);
        }
        pthread_sigmask(SIG_BLOCK, &signals, nullptr);

        systemd::notify("STATUS=starting: opening the inventory, binding the endpoints");
        auto control = config.control;
        callhome::server::Daemon daemon(std::move(config));
        daemon.start();
        callhome::api::ControlApi api(daemon, control);
        api.start();
        // Every endpoint is bound and accepting, the inventory open and the control API listening.
        systemd::notify("READY=1\nSTATUS=" + daemon.statusLine());
        std::unique_ptr<callhome::server::ServiceNotifier> notifier;
        if (systemd::notifying()) {
            notifier = std::make_unique<callhome::server::ServiceNotifier>(
                callhome::server::ServiceNotifier::Options { .watchdog = systemd::watchdogInterval() },
                daemon.heartbeat(), [&daemon] { return daemon.statusLine(); });
        }
        int sig = 0;
        while (sigwait(&signals, &sig) == 0 && (sig == SIGHUP || sig == SIGUSR2)) {
            if (sig == SIGUSR2) {
                daemon.stallEventLoopForTest();
                continue;
            }
            // SIGHUP (systemctl reload): the config file, the trust store and CRLs; sessions stay up.
            systemd::notify(systemd::reloadingState());
            log::get(log::Main)->info("SIGHUP received, reloading {}", configFile ? *configFile : "(no config file)");
            try {
                auto next = callhome::config::load(configFile, overrides);
                daemon.reload(next);
                auto levels = next.logLevels.overriddenBy(cliLevels);
                if (levels != log::levels()) {
                    log::setLevels(levels);
                    log::get(log::Main)->info("log levels now {}", levels.toString());
                }
            } catch (const std::exception& e) {
                log::get(log::Main)->error("reload refused, the running configuration stays: {}", e.what());
            }
            systemd::notify("READY=1\nSTATUS=" + daemon.statusLine());
            if (notifier) {
                notifier->refresh();
            }
        }
        systemd::notify("STOPPING=1\nSTATUS=stopping: closing sessions");
        log::get(log::Main)->info("{} received, closing sessions", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        if (notifier) {
            notifier->stop();
        }
        daemon.stop(); // first: device connections answer API requests until they end
        api.stop();
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "callhomed: " << e.what() << std::endl;
        return 1;
    }
}
