#pragma once
#include "common/Address.h"
#include "common/Error.h"
#include "common/Log.h"
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
    bool operator==(const Endpoint&) const = default;
};

/** Options for one manufacturer directory of the trust store. */
struct ManufacturerOptions {
    std::string name;
    std::string serialSource = "subject-serial-number"; ///< subject-serial-number | hardware-module-name | common-name
    bool ignoreLifetime = false;
    bool operator==(const ManufacturerOptions&) const = default;
};

/** What to do with a device chain whose manufacturer CRL is past its nextUpdate (tls/crl-expired). */
enum class CrlExpired {
    FailClosed, ///< refuse the device, the reason says the CRL expired (default)
    Ignore, ///< use the stale CRL anyway and log a warning
};

/** One RFC 7589 cert-to-name rule as configured. */
struct CertToName {
    uint32_t id = 0;
    std::string fingerprint; ///< "SHA256:AB:CD:..."
    std::string mapType; ///< specified | san-rfc822-name | san-dns-name | san-ip-address | san-any | common-name
    std::string name; ///< for specified
    bool operator==(const CertToName&) const = default;
};

/** The `admission` container of the configuration: limits applied before any cryptography (server/Admission.h). */
struct AdmissionSettings {
    uint32_t maxHandshakes = 0; ///< 0 = derived from the open-file limit (server::handshakeCapacityFromFdLimit)
    uint32_t perSourceHandshakes = 64; ///< 0 = no per-source cap
    double perSourceRate = 50; ///< connections per second; 0 = no rate limit
    uint32_t perSourceBurst = 200;
    uint32_t blockAfterFailures = 50; ///< 0 = never block
    std::chrono::seconds failureWindow { 60 };
    std::chrono::seconds blockDuration { 600 };
    std::chrono::seconds summaryInterval { 10 };
    uint32_t maxPending = 10'000; ///< devices pending approval in all; 0 = no cap
    uint32_t maxPendingPerSource = 100; ///< pending devices last seen at one source key; 0 = no cap
    bool operator==(const AdmissionSettings&) const = default;
};

/** The `retention` container: how long the event log keeps history. */
struct RetentionSettings {
    std::chrono::days eventMaxAge { 90 }; ///< 0 = no age limit
    uint64_t eventMaxRows = 0; ///< 0 = no row limit
    bool operator==(const RetentionSettings&) const = default;
};

/** The `control` container: the control API (lib/api). */
struct ControlSettings {
    std::string socket; ///< resolved: explicit or <stateDir>/control.sock; empty: none
    std::optional<std::string> group;
    std::chrono::seconds rpcTimeout { 60 };
    size_t maxRequest = 16 * 1024 * 1024;
    size_t maxStreams = 1024;
    size_t streamBuffer = 4 * 1024 * 1024;
    unsigned threads = 2;
    struct Tcp {
        std::string address = "::1";
        uint16_t port = 4336;
        std::string certificate;
        std::string key;
        std::string clientCa;
        bool operator==(const Tcp&) const = default;
    };
    std::optional<Tcp> tcp;
    /** control/forward: requests for a device another instance holds go to that instance (mutual TLS). */
    struct Forward {
        std::string advertise; ///< resolved: explicit or tcp->address; the port is the one control/tcp bound
        std::string certificate;
        std::string key;
        std::string ca;
        bool operator==(const Forward&) const = default;
    };
    std::optional<Forward> forward;
    bool operator==(const ControlSettings&) const = default;
};

/** sessions/duplicate: a device that has a live session calls home again. */
enum class DuplicateSessions {
    Replace, ///< close the older session, keep the new one (default)
    Refuse, ///< refuse the new connection right after identity, before user authentication
};

/** One admission/auto-approve/rule: approves a first-contact device that matches, without an operator. */
struct AutoApproveRule {
    std::string name;
    std::vector<AddressPrefix> sources; ///< the peer address in any of them; empty: any source
    std::optional<Transport> transport; ///< nullopt: either
    std::optional<std::string> manufacturer; ///< TLS: the trust-store manufacturer that verified the chain
    std::string namePrefix; ///< an unnamed device is named namePrefix + its id
    std::optional<std::string> sshUser; ///< SSH: the user to authenticate as; nullopt: ssh/user
    bool operator==(const AutoApproveRule&) const = default;
};

/** The `hooks` container: commands run on device events (server/HookRunner.h). Applied live on reload. */
struct HookSettings {
    std::vector<std::string> onPending; ///< argv; empty: no hook
    std::vector<std::string> onConnect;
    std::vector<std::string> onDisconnect;
    std::vector<std::string> onRefused;
    unsigned maxConcurrent = 4;
    size_t maxQueued = 1024;
    std::chrono::seconds timeout { 30 };
    size_t maxOutput = 4096; ///< bytes of stdout+stderr kept
    bool operator==(const HookSettings&) const = default;
};

struct Config {
    std::vector<Endpoint> listen;
    std::string stateDir = "state";
    std::string inventoryPath; ///< resolved: explicit or <stateDir>/inventory.db; or a PostgreSQL URL/libpq string
                               ///< (inventory::isPostgresSpec)
    std::optional<std::string> inventoryGroup; ///< files 0640 with this group instead of 0600
    std::string listenerId; ///< resolved: explicit or host name
    std::string sshUser = "netconf";
    std::string sshKeyFile; ///< resolved: explicit or <stateDir>/station-key
    bool sshKeyFileExplicit = false; ///< false: generate it on first start
    std::optional<std::string> sshPassword;
    std::string credentialsPath; ///< resolved: explicit ssh/credentials-file or <stateDir>/credentials.db
    std::chrono::seconds handshakeTimeout { 15 };
    std::chrono::seconds keepaliveInterval { 30 };
    std::chrono::seconds deadPeer { 120 };
    unsigned keepaliveCountMax = 3;
    std::chrono::seconds closeTimeout { 2 };
    std::chrono::seconds schemaFetchTimeout { 60 };
    unsigned eventLoops = 0; ///< 0: one per core
    size_t maxMessage = 64 * 1024 * 1024;
    size_t maxContexts = 64;
    AdmissionSettings admission;
    RetentionSettings retention;
    ControlSettings control;
    HookSettings hooks;
    std::vector<std::string> yangSearchDirs;
    std::optional<std::string> trustStore; ///< required when any endpoint is tls
    std::vector<ManufacturerOptions> manufacturers;
    CrlExpired crlExpired = CrlExpired::FailClosed; ///< tls/crl-expired
    std::vector<CertToName> certToName; ///< ascending id
    log::Levels logLevels; ///< log/level and log/subsystem (before the command line's --log-level)
    DuplicateSessions duplicateSessions = DuplicateSessions::Replace; ///< sessions/duplicate
    std::vector<AutoApproveRule> autoApprove; ///< admission/auto-approve/rule, in the file's order; empty: off
    bool hasTls() const;
};

/** Command-line overrides; set fields win over the file. */
struct Overrides {
    std::optional<std::string> stateDir;
    std::optional<std::string> inventoryPath;
    std::vector<std::string>
        listen; ///< "ssh:ADDR:PORT" / "tls:ADDR:PORT" each; replaces the file's list when non-empty
    std::optional<std::string> trustStore;
    std::optional<std::string> controlSocket;
};

/**
 * Loads and validates the configuration with libyang against the embedded callhome-config module; no file means
 * the embedded defaults. Throws ConfigError naming the file and the offending data path.
 */
Config load(const std::optional<std::string>& file, const Overrides& overrides);
/**
 * What differs between the running configuration and `next` that a reload cannot apply (SIGHUP): the config paths
 * ("state-dir", "limits/event-loops", "tls/manufacturer", ...), in the module's order; empty when all of it is live.
 */
std::vector<std::string> restartNeeded(const Config& running, const Config& next);
/** Parses "ssh:127.0.0.1:4334" / "tls:[::1]:4335" / "ssh:[::]:4334"; throws ConfigError. */
Endpoint parseEndpoint(const std::string& text);
/** The embedded YANG module text (for `callhomed --print-schema`). */
std::string_view yangModule();
} // namespace callhome::config
