#include "cli/Cli.h"
#include "cli/Csv.h"
#include "cli/Json.h"
#include "cli/Table.h"
#include "common/Address.h"
#include "common/Error.h"
#include "common/Time.h"
#include "inventory/ExpectError.h"
#include "inventory/Inventory.h"
#include "transport/StationKey.h"
#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <ostream>
#include <sstream>

namespace callhome::cli {
namespace {
namespace fs = std::filesystem;
using inventory::Device;
using inventory::DeviceState;
using inventory::Inventory;
using inventory::Transport;

constexpr int ExitFailure = 1;
constexpr int ExitUsage = 2;
constexpr const char* Program = "callhomectl";

/** Everything the command line can set; one flat struct because each invocation runs exactly one subcommand. */
struct Options {
    std::string stateDir;
    std::string db;
    bool json = false;
    std::string stateFilter;
    std::string transportFilter;
    std::string device;
    std::string second; ///< NEWNAME for rename, FINGERPRINT for rekey
    std::string name;
    std::string user;
    bool yes = false;
    std::string eventDevice;
    std::string since;
    int64_t limit = 0;
    std::string keyPath;
    std::string serial;
    std::string manufacturer;
    std::string csvPath;
    std::string source; ///< ADDRESS for unblock
};

std::string oneLine(std::string text)
{
    for (auto& c : text) {
        if (c == '\n' || c == '\r') {
            c = ' ';
        }
    }
    text.erase(text.find_last_not_of(' ') + 1);
    return text;
}

std::string label(const Device& d)
{
    return "#" + std::to_string(d.id) + (d.name ? " " + *d.name : "");
}

std::string isoOrEmpty(const std::optional<TimePoint>& t)
{
    return t ? toIso8601(*t) : std::string {};
}

/** First/last seen of a device that has called home; empty (shown "-") for one pre-provisioned and never seen. */
std::string seenOrEmpty(const Device& d, TimePoint t)
{
    return d.attempts > 0 ? toIso8601(t) : std::string {};
}

/** What identifies the device besides its fingerprint: "manufacturer/serial" for 802.1AR TLS devices. */
std::string identity(const Device& d)
{
    if (d.transport != Transport::Tls) {
        return {};
    }
    return d.serial.empty() ? std::string("self-signed") : d.manufacturer + "/" + d.serial;
}

/** A blocked source as callhomectl's JSON output shows it (field names documented in lib/cli/README.md). */
nlohmann::json blockJson(const inventory::BlockedSource& b)
{
    return {
        { "source", b.source },
        { "since", toIso8601(b.since) },
        { "until", toIso8601(b.until) },
        { "reason", b.reason },
        { "failures", b.failures },
    };
}

/** Runs one parsed subcommand, writing to `out` (a buffer: nothing reaches stdout unless the whole command worked). */
class Command {
public:
    Command(const Options& options, std::ostream& out)
        : m_opt(options)
        , m_out(out)
    { }

    void devices()
    {
        auto inv = open();
        auto all = inv->devices();
        std::map<int64_t, const Device*> byId;
        for (const auto& d : all) {
            byId[d.id] = &d;
        }
        std::vector<const Device*> shown;
        for (const auto& d : all) {
            if ((m_opt.stateFilter.empty() || inventory::toString(d.state) == m_opt.stateFilter)
                && (m_opt.transportFilter.empty() || inventory::toString(d.transport) == m_opt.transportFilter)) {
                shown.push_back(&d);
            }
        }
        printDevices(shown, byId);
    }

    void expect()
    {
        std::vector<inventory::ExpectedDevice> expected;
        std::vector<std::size_t> lines; // CSV line of each entry, to name it in errors
        if (!m_opt.csvPath.empty()) {
            std::ifstream in(m_opt.csvPath);
            if (!in) {
                throw UsageError("cannot read " + m_opt.csvPath + ": " + std::strerror(errno));
            }
            for (auto& entry : parseShippingData(in, m_opt.csvPath)) {
                lines.push_back(entry.line);
                expected.push_back(std::move(entry.device));
            }
        } else {
            expected.push_back({ .serial = m_opt.serial,
                .manufacturer = m_opt.manufacturer,
                .name = m_opt.name.empty() ? std::nullopt : std::optional<std::string>(m_opt.name) });
        }
        auto inv = open();
        std::vector<Device> result;
        try {
            result = inv->expect(expected);
        } catch (const inventory::ExpectError& e) {
            if (lines.empty()) {
                throw UsageError(e.problem());
            }
            throw UsageError(
                fmt::format("{}:{}: {}; nothing was imported", m_opt.csvPath, lines.at(e.position() - 1), e.problem()));
        }
        // An idempotent re-import returns a device once per line that named it; list each device once.
        std::vector<const Device*> shown;
        std::map<int64_t, const Device*> byId;
        for (const auto& d : result) {
            if (byId.emplace(d.id, &d).second) {
                shown.push_back(&d);
            }
        }
        printDevices(shown, byId);
    }

    void show()
    {
        auto inv = open();
        auto d = inv->resolve(m_opt.device);
        if (m_opt.json) {
            printJson(toJson(d));
            return;
        }
        std::string sameAddress;
        if (d.sameAddressAs) {
            auto other = inv->findById(*d.sameAddressAs);
            sameAddress = other ? label(*other) : "#" + std::to_string(*d.sameAddressAs) + " (forgotten)";
        }
        std::vector<std::pair<std::string, std::string>> fields {
            { "ID", std::to_string(d.id) },
            { "Name", d.name.value_or("") },
            { "State", inventory::toString(d.state) },
            { "Transport", inventory::toString(d.transport) },
        };
        if (d.transport == Transport::Tls) {
            fields.insert(fields.end(),
                {
                    { "Manufacturer",
                        d.manufacturer.empty() ? "(self-signed: identified by its fingerprint)" : d.manufacturer },
                    { "Serial", d.serial },
                    { "Cert subject", d.certSubject },
                    { "Cert issuer", d.certIssuer },
                    { "Fingerprint", d.fingerprint.empty() ? "(not called home yet)" : d.fingerprint },
                });
        } else {
            fields.insert(fields.end(),
                {
                    { "Fingerprint", d.fingerprint },
                    { "Key type", d.keyType },
                    { "SSH user", d.sshUser.value_or("(default)") },
                });
        }
        fields.insert(fields.end(),
            {
                { "Last address", d.lastAddress },
                { "First seen", seenOrEmpty(d, d.firstSeen) },
                { "Last seen", seenOrEmpty(d, d.lastSeen) },
                { "Attempts", std::to_string(d.attempts) },
                { "Same address as", sameAddress },
                { "Decided at", isoOrEmpty(d.decidedAt) },
                { "Decided by", d.decidedBy },
                { "Connection", d.connected ? "connected" : "disconnected" },
                { "Session start", isoOrEmpty(d.sessionStart) },
                { "Capabilities", d.capabilities.empty() ? "(none)" : std::to_string(d.capabilities.size()) },
            });
        for (const auto& [key, value] : fields) {
            std::string padded = key + ":";
            padded.resize(17, ' ');
            m_out << padded << (value.empty() ? "-" : value) << '\n';
        }
        for (const auto& cap : d.capabilities) {
            m_out << "  " << cap << '\n';
        }
    }

    void approve()
    {
        auto inv = open();
        auto d = inv->resolve(m_opt.device);
        auto name = m_opt.name.empty() ? std::nullopt : std::optional<std::string>(m_opt.name);
        auto user = m_opt.user.empty() ? std::nullopt : std::optional<std::string>(m_opt.user);
        auto result = inv->approve(d.id, name, user);
        confirm(result,
            "approved " + label(result) + " " + result.fingerprint + ": callhomed accepts it on its next call home");
    }

    void reject()
    {
        auto inv = open();
        auto result = inv->reject(inv->resolve(m_opt.device).id);
        confirm(result,
            "rejected " + label(result) + " " + result.fingerprint
                + ": callhomed refuses its calls before authentication");
    }

    void revoke()
    {
        auto inv = open();
        auto result = inv->revoke(inv->resolve(m_opt.device).id);
        confirm(result,
            "revoked " + label(result) + " " + result.fingerprint
                + ": callhomed refuses its calls before authentication");
    }

    void forget()
    {
        auto inv = open();
        auto d = inv->resolve(m_opt.device);
        inv->forget(d.id);
        confirm(d,
            "forgot " + label(d) + " " + d.fingerprint + " (" + inventory::toString(d.state)
                + "); its events stay in the log, a new call home from it is pending again");
    }

    void rename()
    {
        auto inv = open();
        auto d = inv->resolve(m_opt.device);
        auto result = inv->rename(d.id, m_opt.second);
        confirm(result,
            "renamed #" + std::to_string(result.id) + " from " + d.name.value_or("(unnamed)") + " to "
                + result.name.value_or(m_opt.second));
    }

    void rekey()
    {
        auto inv = open();
        auto d = inv->resolve(m_opt.device);
        auto pending = inv->resolve(m_opt.second);
        auto result = inv->rekey(d.id, pending.id);
        confirm(result,
            "rekeyed " + label(result) + " from " + d.fingerprint + " to " + result.fingerprint
                + ": callhomed accepts the new key on its next call home");
    }

    void events()
    {
        auto inv = open();
        inventory::EventFilter filter;
        if (!m_opt.eventDevice.empty()) {
            filter.deviceId = inv->resolve(m_opt.eventDevice).id;
        }
        if (!m_opt.since.empty()) {
            // Already validated while parsing; parsed again here against the same clock.
            filter.since = parseTime(m_opt.since, now());
        }
        if (m_opt.limit > 0) {
            filter.limit = m_opt.limit;
        }
        auto events = inv->events(filter);
        if (m_opt.json) {
            auto list = nlohmann::json::array();
            for (const auto& e : events) {
                list.push_back(toJson(e));
            }
            printJson({ { "events", list } });
            return;
        }
        Table table({ "TIME", "KIND", "DEVICE", "CONN", "ADDRESS", "FINGERPRINT", "DETAIL" });
        for (const auto& e : events) {
            std::string device = !e.deviceName.empty() ? e.deviceName
                : e.deviceId                           ? "#" + std::to_string(*e.deviceId)
                                                       : std::string {};
            table.addRow({ toIso8601(e.at), inventory::toString(e.kind), device, e.connectionId, e.address,
                e.fingerprint, oneLine(e.detail) });
        }
        table.print(m_out);
    }

    void stationKey()
    {
        auto path = m_opt.keyPath.empty() ? transport::defaultStationKeyPath(m_opt.stateDir) : m_opt.keyPath;
        std::error_code ec;
        if (!fs::exists(path, ec)) {
            throw UsageError("no station key at " + path
                + "; start callhomed once with this state directory (it generates the key), or pass --key");
        }
        auto key = transport::loadStationKey(path, false);
        if (m_opt.json) {
            printJson({ { "public_key", key.publicKeyLine }, { "fingerprint", key.fingerprint }, { "path", path } });
            return;
        }
        m_out << key.publicKeyLine << '\n';
    }

    void blocked()
    {
        auto inv = open();
        auto list = inv->blockedSources(now());
        if (m_opt.json) {
            auto out = nlohmann::json::array();
            for (const auto& b : list) {
                out.push_back(blockJson(b));
            }
            printJson({ { "blocked", out } });
            return;
        }
        Table table({ "SOURCE", "SINCE", "UNTIL", "FAILURES", "REASON" });
        for (const auto& b : list) {
            table.addRow(
                { b.source, toIso8601(b.since), toIso8601(b.until), std::to_string(b.failures), oneLine(b.reason) });
        }
        table.print(m_out);
    }

    void unblock()
    {
        // Already validated while parsing; an address becomes the source it belongs to (an IPv6 address its /64).
        const auto source = sourceKey(m_opt.source);
        auto inv = open();
        std::optional<inventory::BlockedSource> block;
        for (auto& b : inv->blockedSources(now())) {
            if (b.source == source) {
                block = std::move(b);
            }
        }
        // The block may also have ended between the two calls: unblockSource() decides.
        if (!block || !inv->unblockSource(source, "operator")) {
            throw UsageError(source + " is not blocked ('" + std::string(Program) + " blocked' lists blocked sources)");
        }
        if (m_opt.json) {
            printJson(blockJson(*block));
            return;
        }
        m_out << "unblocked " << source << " (was blocked until " << toIso8601(block->until) << ": "
              << oneLine(block->reason) << "): a running callhomed admits it again within a second\n";
    }

private:
    /** The `devices` table (or `{"devices": [...]}`); `byId` resolves same-address-as ids to names. */
    void printDevices(const std::vector<const Device*>& shown, const std::map<int64_t, const Device*>& byId)
    {
        if (m_opt.json) {
            auto list = nlohmann::json::array();
            for (const auto* d : shown) {
                list.push_back(toJson(*d));
            }
            printJson({ { "devices", list } });
            return;
        }
        Table table({ "ID", "NAME", "STATE", "CONN", "TRANSPORT", "IDENTITY", "FINGERPRINT", "KEY-TYPE", "ADDRESS",
            "FIRST-SEEN", "LAST-SEEN", "ATTEMPTS", "FLAGS" });
        for (const auto* d : shown) {
            std::string flags;
            if (d->sameAddressAs) {
                auto other = byId.find(*d->sameAddressAs);
                flags = "same-address-as:"
                    + (other != byId.end() && other->second->name ? *other->second->name
                                                                  : "#" + std::to_string(*d->sameAddressAs));
            }
            table.addRow({ std::to_string(d->id), d->name.value_or(""), inventory::toString(d->state),
                d->connected ? "yes" : "no", inventory::toString(d->transport), identity(*d), d->fingerprint,
                d->keyType, d->lastAddress, seenOrEmpty(*d, d->firstSeen), seenOrEmpty(*d, d->lastSeen),
                std::to_string(d->attempts), flags });
        }
        table.print(m_out);
    }

    std::string dbPath() const
    {
        return m_opt.db.empty() ? (fs::path(m_opt.stateDir) / "inventory.db").string() : m_opt.db;
    }

    /** Opens an existing inventory only: a typo in --state-dir must not leave an empty database behind. */
    std::unique_ptr<Inventory> open() const
    {
        auto path = dbPath();
        std::error_code ec;
        if (!fs::exists(path, ec)) {
            throw UsageError("no inventory at " + path
                + " (callhomed creates it on its first start; use --state-dir or --db to select another)");
        }
        return inventory::openSqliteExisting(path);
    }

    void printJson(const nlohmann::json& doc) { m_out << doc.dump(2) << '\n'; }

    void confirm(const Device& d, const std::string& line)
    {
        if (m_opt.json) {
            printJson(toJson(d));
        } else {
            m_out << line << '\n';
        }
    }

    const Options& m_opt;
    std::ostream& m_out;
};

std::string defaultStateDir()
{
    const char* env = std::getenv("CALLHOME_STATE_DIR");
    return env && *env ? env : "./state";
}

const CLI::Validator TimeValidator(
    [](std::string& text) -> std::string {
        if (parseTime(text, now())) {
            return {};
        }
        return "invalid time '" + text
            + "': expected YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS]Z (UTC) or a relative 15m, 2h, 7d";
    },
    "");

const CLI::Validator SourceValidator(
    [](std::string& text) -> std::string {
        try {
            sourceKey(text);
            return {};
        } catch (const UsageError& e) {
            return e.what();
        }
    },
    "");

constexpr const char* DeviceHelp
    = "The device: its name, numeric id, full fingerprint, a TLS device's serial number or MANUFACTURER/SERIAL, or an "
      "unambiguous prefix of the fingerprint (at least 4 characters, with or without \"SHA256:\")";
} // namespace

int run(int argc, char** argv, std::ostream& out, std::ostream& err)
{
    Options o;
    o.stateDir = defaultStateDir();

    CLI::App app { "Operator and script CLI for the callhome NETCONF Call Home listener (callhomed): lists the devices "
                   "that called home, approves, rejects, revokes, renames and re-keys them, pre-provisions TLS devices "
                   "from shipping data, and shows the event log. "
                   "It works on callhomed's inventory (SQLite) directly, also while callhomed runs; decisions take "
                   "effect on the device's next call home, without restarting callhomed.",
        Program };
    app.fallthrough();
    app.require_subcommand(1);
    app.footer("Global options (--state-dir DIR, --db PATH, --json) may be given before or after the subcommand. "
               "Human-readable tables by default; "
               "--json prints one JSON document (fields: lib/cli/README.md). Exit status: 0 success, 1 the command "
               "failed (one line on stderr), 2 bad command line. Run 'callhomectl SUBCOMMAND --help' for details.");
    app.add_option("--state-dir", o.stateDir,
           "callhomed's state directory (inventory.db, station-key); default: $CALLHOME_STATE_DIR, else ./state")
        ->type_name("DIR");
    app.add_option("--db", o.db,
           "The inventory database; default: STATE-DIR/inventory.db. Never created by "
           "callhomectl (callhomed creates it)")
        ->type_name("PATH");
    app.add_flag("--json", o.json, "Print one JSON document instead of a table or a confirmation line");

    auto* devices = app.add_subcommand("devices",
        "List the devices in the inventory: id, name, state, connected, transport, identity (a TLS device's "
        "MANUFACTURER/SERIAL), full fingerprint (SSH host key: compare with 'ssh-keygen -l -E sha256'; TLS: "
        "the certificate's SHA-256, '-' for an expected device that has not called home yet), key type, last "
        "address, first/last seen (UTC), "
        "call-home attempts and flags (same-address-as:NAME marks a new key that came from the last "
        "address of a known device: re-imaged, replaced or an impostor)");
    devices->add_option("--state", o.stateFilter, "Only devices in this state")
        ->type_name("STATE")
        ->check(CLI::IsMember({ "pending", "approved", "rejected", "revoked" }));
    devices->add_option("--transport", o.transportFilter, "Only devices calling home over this transport")
        ->type_name("TRANSPORT")
        ->check(CLI::IsMember({ "ssh", "tls" }));

    auto* show = app.add_subcommand("show",
        "Show every field of one device: identity, state and who decided it when, the SSH user callhomed "
        "authenticates as, whether a NETCONF session is open and since when, and the capabilities from the "
        "device's last <hello>");
    show->add_option("DEVICE", o.device, DeviceHelp)->required()->type_name("");

    auto* approve = app.add_subcommand("approve",
        "Approve a device's current key (from pending, rejected or revoked): callhomed accepts it on "
        "the device's next call home, authenticates and opens a NETCONF session; no restart needed. A "
        "device without a name needs --name");
    approve->add_option("DEVICE", o.device, DeviceHelp)->required()->type_name("");
    approve->add_option("--name", o.name, "Name the device (unique; required when it has none yet)")->type_name("NAME");
    approve
        ->add_option("--user", o.user,
            "SSH user callhomed authenticates as on this device (default: the one in "
            "callhomed's configuration)")
        ->type_name("USER");

    auto* reject = app.add_subcommand("reject",
        "Reject a pending (or approved) device's identity: a running callhomed ends its live session at once, and "
        "from its next call home on closes the connection after key exchange, before authenticating, and logs a "
        "refused event");
    reject->add_option("DEVICE", o.device, DeviceHelp)->required()->type_name("");

    auto* revoke = app.add_subcommand("revoke",
        "Revoke an approved device's identity (e.g. a decommissioned or compromised device): a running callhomed "
        "ends its live session at once and refuses it before authentication from then on. 'approve' re-admits it");
    revoke->add_option("DEVICE", o.device, DeviceHelp)->required()->type_name("");

    auto* forget = app.add_subcommand("forget",
        "Delete a device from the inventory (its events stay in the log); a running callhomed ends its live "
        "session at once. If it calls home again it is recorded as a new pending device. Does not prompt; prints "
        "what was forgotten");
    forget->add_option("DEVICE", o.device, DeviceHelp)->required()->type_name("");
    forget->add_flag("--yes,-y", o.yes, "Accepted for scripts; callhomectl never prompts");

    auto* rename = app.add_subcommand("rename", "Give a device a new name (names are unique)");
    rename->add_option("DEVICE", o.device, DeviceHelp)->required()->type_name("");
    rename->add_option("NEWNAME", o.second, "The new name")->required()->type_name("");

    auto* rekey = app.add_subcommand("rekey",
        "Move a known device to a new host key after it was re-imaged or replaced: the pending device "
        "with FINGERPRINT is merged into DEVICE, which keeps its id, name, SSH user and approval; the old "
        "key is retired. callhomed accepts the new key on the device's next call home. SSH only: a TLS device keeps "
        "its identity (manufacturer and serial) when its certificate is renewed");
    rekey->add_option("DEVICE", o.device, DeviceHelp)->required()->type_name("");
    rekey
        ->add_option(
            "FINGERPRINT", o.second, "The pending device with the new key (fingerprint, unambiguous prefix, or its id)")
        ->required()
        ->type_name("");

    auto* expect = app.add_subcommand("expect",
        "Pre-provision TLS devices from shipping data (IEEE 802.1AR): a device whose certificate chain verifies to "
        "MANUFACTURER's trust anchor and carries SERIAL is accepted on its first call home, with no approve step. "
        "Either one device (--serial, --manufacturer, optional --name) or a whole file (--csv). All or nothing: on any "
        "error nothing is imported. Importing the same data again changes nothing. Prints the pre-provisioned "
        "devices");
    auto* serialOpt
        = expect->add_option("--serial", o.serial, "The device's serial number as in its IDevID certificate")
              ->type_name("SERIAL");
    auto* manufacturerOpt = expect
                                ->add_option("--manufacturer", o.manufacturer,
                                    "The manufacturer, as named in callhomed's trust store configuration")
                                ->type_name("MANUFACTURER");
    auto* expectNameOpt = expect->add_option("--name", o.name, "Name the device (unique; optional)")->type_name("NAME");
    expect
        ->add_option("--csv", o.csvPath,
            "Shipping data: one device per line, 'serial,manufacturer[,name]'; an optional header line naming these "
            "columns (any order) is recognised; blank lines and lines starting with '#' are skipped; fields with "
            "commas go in double quotes. An error names the file and line")
        ->type_name("FILE")
        ->excludes(serialOpt)
        ->excludes(manufacturerOpt)
        ->excludes(expectNameOpt);

    auto* events = app.add_subcommand("events",
        "Show the event log, oldest first: call-home attempts (pending, accepted, refused, handshake "
        "failures), NETCONF sessions opened/closed and operator decisions, with time (UTC), connection "
        "id, peer address, fingerprint and detail");
    events->add_option("--device", o.eventDevice, "Only events of this device (name, id or fingerprint prefix)")
        ->type_name("DEVICE");
    events
        ->add_option("--since", o.since,
            "Only events at or after T: YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS]Z (UTC) or "
            "relative to now: 15m, 2h, 7d")
        ->type_name("T")
        ->check(TimeValidator);
    events->add_option("--limit", o.limit, "Only the newest N events (still printed oldest first)")
        ->type_name("N")
        ->check(CLI::PositiveNumber.description(""));

    auto* stationKey = app.add_subcommand("station-key",
        "Print the management station's SSH public key in authorized_keys format: add it to each "
        "device's NETCONF user so that callhomed can authenticate. callhomed generates the key on "
        "its first start; this command never creates it");
    stationKey->add_option("--key", o.keyPath, "The station's private key file; default: STATE-DIR/station-key")
        ->type_name("PATH");

    auto* blocked = app.add_subcommand("blocked",
        "List the sources callhomed refuses because their handshakes failed too often (RFC 8071 section 9): the "
        "source (an IPv4 address, or an IPv6 /64), since and until when (UTC), the failures that led to it and why. "
        "Blocks end by themselves; 'unblock' lifts one earlier");

    auto* unblock = app.add_subcommand("unblock",
        "Lift the block of a source now: a running callhomed admits it again within a second. Fails when the source "
        "is not blocked");
    unblock
        ->add_option("SOURCE", o.source,
            "The blocked source as 'blocked' lists it, or an address in it (an IPv6 address stands for its /64)")
        ->required()
        ->type_name("")
        ->check(SourceValidator);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e, out, err);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e, out, err);
    } catch (const CLI::ParseError& e) {
        std::string message = oneLine(e.what());
        // With fallthrough, an unknown subcommand lands on the main app as a stray positional; say so plainly.
        if (app.get_subcommands().empty() && !app.remaining().empty()) {
            message = "unknown subcommand '" + app.remaining().front() + "'";
        }
        err << Program << ": " << message << " (see " << Program << " --help)" << std::endl;
        return ExitUsage;
    }
    if (expect->parsed() && o.csvPath.empty() && (o.serial.empty() || o.manufacturer.empty())) {
        err << Program << ": expect needs --serial and --manufacturer, or --csv FILE (see " << Program
            << " expect --help)" << std::endl;
        return ExitUsage;
    }

    std::ostringstream buffer;
    Command command(o, buffer);
    try {
        const std::pair<CLI::App*, void (Command::*)()> dispatch[] = {
            { devices, &Command::devices },
            { show, &Command::show },
            { approve, &Command::approve },
            { reject, &Command::reject },
            { revoke, &Command::revoke },
            { forget, &Command::forget },
            { rename, &Command::rename },
            { rekey, &Command::rekey },
            { expect, &Command::expect },
            { events, &Command::events },
            { stationKey, &Command::stationKey },
            { blocked, &Command::blocked },
            { unblock, &Command::unblock },
        };
        for (const auto& [sub, handler] : dispatch) {
            if (sub->parsed()) {
                (command.*handler)();
            }
        }
    } catch (const std::exception& e) {
        // Library errors (callhome::Error) are already worded for operators; anything else (filesystem, bad_alloc)
        // still gets exactly one line and no partial output.
        err << Program << ": " << oneLine(e.what()) << std::endl;
        return ExitFailure;
    }
    out << buffer.str() << std::flush;
    return 0;
}
} // namespace callhome::cli
