#pragma once
#include "common/Error.h"
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace callhome::sim {
/** hold: establish and keep; once: establish, then close; silent: TCP only, say nothing; junk: send garbage, close. */
enum class Mode { Hold, Once, Silent, Junk };
enum class Transport { Ssh, Tls };
std::string toString(Mode m);
std::string toString(Transport t);
/** Throws UsageError. */
Mode modeFromString(const std::string& s);
Transport transportFromString(const std::string& s);

/** Everything a run needs; the CLI fills it. */
struct Options {
    std::string stationAddress = "127.0.0.1"; ///< numeric IPv4 or IPv6
    uint16_t stationPort = 4334;
    Transport transport = Transport::Ssh;
    Mode mode = Mode::Hold;
    size_t count = 1; ///< devices (silent/junk: distinct source addresses)
    double rate = 0; ///< attempts per second; 0 = all at once
    unsigned threads = 0; ///< event loops; 0 = one per core
    std::optional<std::string> sshKeysDir; ///< reuse/write host keys and fingerprints.txt; none = in memory
    std::optional<std::string> caDir; ///< TLS: reuse/create the device PKI here (required for tls)
    std::string manufacturer = "sim"; ///< name written to serials.csv
    std::optional<std::string> stationCa; ///< TLS: the station's certificate must verify against this CA file
    std::optional<std::string> authorizedKey; ///< SSH: accept only this public key (authorized_keys line or .pub)
    std::optional<std::string> sourceBase; ///< first source address, incremented per device; "none" = kernel's
    bool reconnect = false; ///< call again after the station drops (or refuses) us
    std::chrono::milliseconds reconnectDelay { 1000 };
    std::chrono::milliseconds duration { 60000 }; ///< the whole run ends by then
    std::chrono::milliseconds timeout { 30000 }; ///< per attempt: TCP connect start → station's <hello>
    std::chrono::milliseconds linger { 1000 }; ///< once: how long an established session stays before we close it
    double notifyRate = 0; ///< notifications per second per subscribed session
    size_t junkBytes = 512;
    std::optional<std::string> readyFile; ///< write the report here once every device's first attempt has ended
};

/** Result of a run (also the JSON document). */
struct Report {
    std::string mode;
    std::string transport;
    std::string station;
    size_t devices = 0;
    unsigned threads = 0;
    uint64_t attempts = 0; ///< TCP connects started
    uint64_t established = 0; ///< sessions that received the station's <hello>
    uint64_t failed = 0; ///< attempts that ended before <hello> (refused, closed, timeout, handshake error)
    uint64_t dropped = 0; ///< established sessions the station ended before we did
    uint64_t heldAtEnd = 0; ///< sessions still up when the run ended
    uint64_t silentOpened = 0;
    uint64_t closedByStation = 0; ///< silent/junk connections the station closed
    uint64_t junkSent = 0;
    uint64_t rpcs = 0;
    uint64_t notifications = 0;
    double elapsedSeconds = 0;
    double sessionsPerSecond = 0; ///< established / (last <hello> - first connect start)
    double p50Ms = 0, p90Ms = 0, p99Ms = 0, maxMs = 0; ///< time to session
    std::map<std::string, uint64_t> failures; ///< reason → count
    std::string toJson() const;
    std::string summary() const;
};

/** N simulated devices calling home, driven by a few event loops (not a thread per device). */
class Simulator {
public:
    /** Loads or creates identities (host keys, device PKI). Throws Error / UsageError. */
    explicit Simulator(Options options);
    ~Simulator();
    Simulator(const Simulator&) = delete;
    Simulator& operator=(const Simulator&) = delete;
    /** Runs until the run is over (duration, all done, or stop()); returns the merged report. */
    Report run();
    /** Ends the run from another thread or a signal handler (async-signal-safe). */
    void stop() noexcept { m_stop.store(true); }
    const std::vector<std::string>& fingerprints() const;

    struct Shared;
    class Loop;

private:
    Options m_options;
    std::unique_ptr<Shared> m_shared;
    std::atomic<bool> m_stop { false };
};
} // namespace callhome::sim
