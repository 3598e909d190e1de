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

enum class Transport { Ssh, Tls };

/** One address:port to accept call home on. */
struct Endpoint {
    std::string name;
    Transport transport = Transport::Ssh;
    std::string address; ///< numeric IPv4 or IPv6, no brackets
    uint16_t port = 4334;
    /** "ssh:[::]:4334", "tls:127.0.0.1:4335" */
    std::string toString() const;
};

/** Options for one manufacturer directory of the trust store. */
struct ManufacturerOptions {
    std::string name;
    std::string serialSource = "subject-serial-number"; ///< subject-serial-number | hardware-module-name | common-name
    bool ignoreLifetime = false;
};

/** One RFC 7589 cert-to-name rule as configured. */
struct CertToName {
    uint32_t id = 0;
    std::string fingerprint; ///< "SHA256:AB:CD:..."
    std::string mapType; ///< specified | san-rfc822-name | san-dns-name | san-ip-address | san-any | common-name
    std::string name; ///< for specified
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
    std::optional<std::string> trustStore; ///< required when any endpoint is tls
    std::vector<ManufacturerOptions> manufacturers;
    std::vector<CertToName> certToName; ///< ascending id
    bool hasTls() const;
};

/** Command-line overrides; set fields win over the file. */
struct Overrides {
    std::optional<std::string> stateDir;
    std::optional<std::string> inventoryPath;
    std::vector<std::string>
        listen; ///< "ssh:ADDR:PORT" / "tls:ADDR:PORT" each; replaces the file's list when non-empty
    std::optional<std::string> trustStore;
};

/**
 * Loads and validates the configuration with libyang against the embedded callhome-config module; no file means
 * the embedded defaults. Throws ConfigError naming the file and the offending data path.
 */
Config load(const std::optional<std::string>& file, const Overrides& overrides);
/** Parses "ssh:127.0.0.1:4334" / "tls:[::1]:4335" / "ssh:[::]:4334"; throws ConfigError. */
Endpoint parseEndpoint(const std::string& text);
/** The embedded YANG module text (for `callhomed --print-schema`). */
std::string_view yangModule();
} // namespace callhome::config
