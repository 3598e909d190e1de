#pragma once
#include "common/Error.h"
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace callhome::config {
/** The configuration file is invalid; the message names the file and the offending node. */
class ConfigError : public UsageError {
public:
    using UsageError::UsageError;
};

enum class Transport { Ssh };

/** One address:port to accept call home on. */
struct Endpoint {
    std::string name;
    Transport transport = Transport::Ssh;
    std::string address; ///< numeric IPv4 or IPv6, no brackets
    uint16_t port = 4334;
    /** "ssh:[::]:4334", "ssh:127.0.0.1:4334" */
    std::string toString() const;
};

struct Config {
    std::vector<Endpoint> listen;
    std::string stateDir = "state";
    std::string inventoryPath; ///< resolved: explicit or <stateDir>/inventory.db
    std::string listenerId; ///< resolved: explicit or host name
    std::string sshUser = "netconf";
    std::string sshKeyFile; ///< resolved: explicit or <stateDir>/station-key
    bool sshKeyFileExplicit = false; ///< false: generate it on first start
    std::optional<std::string> sshPassword;
    std::chrono::seconds handshakeTimeout { 15 };
    std::chrono::seconds keepaliveInterval { 30 };
    std::chrono::seconds deadPeer { 120 };
    unsigned handshakeWorkers = 16;
    unsigned maxPendingHandshakes = 1024;
    std::vector<std::string> yangSearchDirs;
};

/** Command-line overrides; set fields win over the file. */
struct Overrides {
    std::optional<std::string> stateDir;
    std::optional<std::string> inventoryPath;
    std::vector<std::string> listen; ///< "ssh:ADDR:PORT" each; replaces the file's list when non-empty
};

/**
 * Loads and validates the configuration with libyang against the embedded callhome-config module; no file means
 * the embedded defaults. Throws ConfigError naming the file and the offending data path.
 */
Config load(const std::optional<std::string>& file, const Overrides& overrides);
/** Parses "ssh:127.0.0.1:4334" / "ssh:[::1]:4334" / "ssh:[::]:4334"; throws ConfigError. */
Endpoint parseEndpoint(const std::string& text);
/** The embedded YANG module text (for `callhomed --print-schema`). */
std::string_view yangModule();
} // namespace callhome::config
