#pragma once
#include <cstdint>
#include <iosfwd>
#include <string>

namespace CLI {
class App;
} // namespace CLI

namespace callhome::cli {
/** What the command line sets for the subcommands that talk to callhomed; one struct, one subcommand per run. */
struct RemoteOptions {
    std::string socket; ///< empty: $CALLHOME_CONTROL_SOCKET, else STATE-DIR/control.sock
    std::string device;
    std::string file; ///< rpc / edit-config input; "-" or empty (rpc): stdin
    std::string xpath;
    std::string source = "running";
    std::string target = "running";
    std::string defaultOperation;
    std::string testOption;
    std::string errorOption;
    bool commit = false;
    bool lock = false;
    std::string stream;
    int64_t timeout = 0; ///< seconds; 0: callhomed's control/rpc-timeout
    std::string watchDevice;
    int64_t after = 0;
};

/**
 * The subcommands that work on a running callhomed over its control API (lib/api/README.md): sessions, rpc, get,
 * get-config, edit-config, notifications, watch, close. They need callhomed; the inventory commands do not.
 */
class Remote {
public:
    /** Adds the subcommands and the global --socket option to `app` (before it parses). */
    explicit Remote(CLI::App& app);
    /** Whether the parsed command line chose one of these subcommands. */
    bool parsed() const;
    /**
     * Runs the chosen subcommand; returns the exit status: 0 ok, 1 failure, 2 usage, 3 the device answered
     * `<rpc-error>`, 4 the device is not connected. Never throws. Output is buffered until success, except that the
     * streaming commands (notifications, watch) write and flush each message as it arrives. `configSocket`: the
     * control/socket of the configuration given with --config (empty without one).
     */
    int run(
        const std::string& stateDir, const std::string& configSocket, bool json, std::ostream& out, std::ostream& err);

private:
    RemoteOptions m_opt;
    CLI::App* m_sessions;
    CLI::App* m_rpc;
    CLI::App* m_get;
    CLI::App* m_getConfig;
    CLI::App* m_editConfig;
    CLI::App* m_notifications;
    CLI::App* m_watch;
    CLI::App* m_close;
};
} // namespace callhome::cli
