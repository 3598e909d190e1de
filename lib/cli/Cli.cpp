#include "cli/Cli.h"
#include "cli/Csv.h"
#include "cli/Json.h"
#include "cli/KnownHosts.h"
#include "cli/Remote.h"
#include "cli/Staged.h"
#include "cli/Table.h"
#include "common/Address.h"
#include "common/Error.h"
#include "common/Text.h"
#include "common/Time.h"
#include "config/Config.h"
#include "inventory/CredentialStore.h"
#include "inventory/ExpectError.h"
#include "inventory/Inventory.h"
#include "inventory/Open.h"
#include "transport/StationKey.h"
#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <map>
#include <ostream>
#include <pwd.h>
#include <set>
#include <sstream>
#include <string_view>
#include <unistd.h>
#include <unordered_map>

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
    std::string configPath; ///< --config: callhomed's configuration file (state dir, inventory, station key)
    std::string configKeyFile; ///< the station key the configuration names (resolved), when --config was given
    std::string configSocket; ///< the control socket the configuration names (resolved), when --config was given
    bool json = false;
    std::string stateFilter;
    std::string transportFilter;
    std::string nameGlob;
    std::string seenSince;
    bool connectedOnly = false;
    bool disconnectedOnly = false;
    int64_t after = 0; ///< --after ID: paging; 0 = from the start
    bool all = false; ///< bulk decision: every device the filters select
    std::string namePrefix; ///< approve --all: names of unnamed devices
    std::string hashedPrefix = "host-"; ///< expect --known-hosts: names of hashed entries
    std::string fingerprint;
    std::string knownHostsPath;
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
    std::string traceDevice;
    std::string traceClient;
    std::string traceId;
    bool jsonLines = false; ///< trace --jsonl
    // staged configuration: stage, staged, unstage, retry
    std::string stagedFile;
    std::string stagedTarget = "running";
    bool stagedCommit = false;
    std::string stagedFormat; ///< empty: detected
    int64_t stagedId = 0;
    bool stagedAll = false; ///< staged --all: dropped items too
    // Per-device credentials (credentials, approve): secrets only ever from files or stdin, never from argv.
    std::string credentialsPath; ///< the credentials store (from --config), else STATE-DIR/credentials.db
    std::string passwordFile;
    bool passwordStdin = false;
    std::string deviceKeyFile;
    bool clearPassword = false;
    bool clearKey = false;
    std::string passwordFallback; ///< credentials, approve: "yes" / "no"; empty = unchanged
};

/** Who runs this callhomectl, for the decisions it records: "uid 1000 (alice)". */
std::string processUser()
{
    auto uid = ::getuid();
    std::string out = "uid " + std::to_string(uid);
    passwd pw {};
    passwd* found = nullptr;
    char buf[1024];
    if (::getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found) {
        out += std::string(" (") + found->pw_name + ")";
    }
    return out;
}

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

/** For error lines and anything else printed that may quote a peer. */
std::string printable(const std::string& text)
{
    return escapeControl(oneLine(text));
}

/** JSON as nlohmann's dump(2) writes it; text that is not UTF-8 (an old row) is replaced, never an exception. */
std::string dumpJson(const nlohmann::json& doc, int indent = 2)
{
    return doc.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

/** `text` as a JSON string, exactly as dumpJson writes it; plain printable ASCII is copied without nlohmann. */
void appendJsonString(std::string& out, const std::string& text)
{
    const bool plain = std::all_of(text.begin(), text.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u >= 0x20 && u < 0x80 && c != '"' && c != '\\';
    });
    if (!plain) {
        out += dumpJson(nlohmann::json(text), -1);
        return;
    }
    out.push_back('"');
    out += text;
    out.push_back('"');
}

/**
 * The capability lists a listing wrote, as it wrote them: by the inventory's capability set id (a fleet has a few
 * lists, one per model and software release), else the last one (a device repeating its neighbour's).
 */
struct CapabilitiesJson {
    static constexpr std::size_t MaxSets = 1024; ///< beyond that, forgotten and written again: bounded memory
    std::unordered_map<int64_t, std::string> bySet;
    std::vector<std::string> capabilities;
    std::string text;
    bool valid = false;

    /** How `d`'s list was written before, if it was. */
    const std::string* find(const Device& d) const
    {
        if (d.capabilitySet) {
            auto it = bySet.find(d.capabilitySet);
            return it == bySet.end() ? nullptr : &it->second;
        }
        return valid && capabilities == d.capabilities ? &text : nullptr;
    }
};

/**
 * A device as dumpJson(toJson(d)) writes it, indented by `indent` more spaces: the same bytes (tests compare them),
 * made without building the nlohmann object, which is most of the cost of listing 100,000 devices. The keys are in
 * nlohmann's (sorted) order; a field added to toJson (cli/Json.cpp) must be added here too. With `last`, a
 * capability list equal to the previous device's is copied from there instead of being encoded again.
 */
void appendDeviceJson(std::string& out, const Device& d, const std::string& indent, CapabilitiesJson* last = nullptr)
{
    const std::string field = "\n" + indent + "  ";
    bool first = true;
    auto key = [&](std::string_view name) { // {"\n      "NAME": } without temporaries: 25 keys per device
        out.push_back(first ? '{' : ',');
        first = false;
        out += field;
        out.push_back('"');
        out += name;
        out += "\": ";
    };
    auto text = [&](std::string_view name, const std::string& value) {
        key(name);
        appendJsonString(out, value);
    };
    auto optionalText = [&](std::string_view name, const std::optional<std::string>& value) {
        key(name);
        if (value) {
            appendJsonString(out, *value);
        } else {
            out += "null";
        }
    };
    auto time = [&](std::string_view name, const std::optional<TimePoint>& t) {
        optionalText(name, t ? std::optional(toIso8601(*t)) : std::nullopt);
    };
    key("attempts");
    out += std::to_string(d.attempts);
    key("capabilities");
    if (d.capabilities.empty()) {
        out += "[]";
    } else if (const std::string* written = last ? last->find(d) : nullptr) {
        out += *written;
    } else {
        const auto start = out.size();
        out.push_back('[');
        for (std::size_t i = 0; i < d.capabilities.size(); ++i) {
            out += (i ? "," : "") + field + "  ";
            appendJsonString(out, d.capabilities[i]);
        }
        out += field + "]";
        if (last && d.capabilitySet) {
            if (last->bySet.size() >= CapabilitiesJson::MaxSets) {
                last->bySet.clear();
            }
            last->bySet.emplace(d.capabilitySet, out.substr(start));
        } else if (last) {
            last->capabilities = d.capabilities;
            last->text = out.substr(start);
            last->valid = true;
        }
    }
    text("cert_issuer", d.certIssuer);
    text("cert_subject", d.certSubject);
    key("connected");
    out += d.connected ? "true" : "false";
    time("decided_at", d.decidedAt);
    text("decided_by", d.decidedBy);
    text("fingerprint", d.fingerprint);
    time("first_seen", d.attempts > 0 ? std::optional(d.firstSeen) : std::nullopt);
    key("id");
    out += std::to_string(d.id);
    text("key_type", d.keyType);
    text("last_address", d.lastAddress);
    time("last_seen", d.attempts > 0 ? std::optional(d.lastSeen) : std::nullopt);
    optionalText("listener_id", d.listenerId);
    text("manufacturer", d.manufacturer);
    optionalText("name", d.name);
    key("password_fallback");
    out += d.passwordFallback ? "true" : "false";
    key("same_address_as");
    out += d.sameAddressAs ? std::to_string(*d.sameAddressAs) : std::string("null");
    text("serial", d.serial);
    time("session_start", d.sessionStart);
    text("ssh_key", d.keySet ? "set" : "none");
    text("ssh_password", d.passwordSet ? "set" : "none");
    optionalText("ssh_user", d.sshUser);
    text("state", inventory::toString(d.state));
    text("transport", inventory::toString(d.transport));
    out += "\n" + indent + "}";
}

/**
 * Writes {"KEY": [ITEM, ...]} item by item, byte for byte as dump(2) of the whole document would, so a listing of
 * any size needs the memory of one chunk. Items are gathered into chunks of about ChunkBytes, each written at once:
 * a write per item was most of the system time of listing 100,000 devices. Nothing is written before the first
 * chunk is full or finish(): a listing that fails early leaves the output empty.
 */
class JsonListWriter {
public:
    JsonListWriter(std::ostream& out, std::string key)
        : m_out(out)
        , m_key(std::move(key))
    { }
    void add(const nlohmann::json& item)
    {
        // The item indented by 4 more spaces (a newline inside a string is "\n" in JSON: every raw one is a line break)
        separator();
        for (char c : dumpJson(item)) {
            m_chunk.push_back(c);
            if (c == '\n') {
                m_chunk.append(4, ' ');
            }
        }
        flushFull();
    }
    void add(const Device& d)
    {
        separator();
        appendDeviceJson(m_chunk, d, "    ", &m_lastCapabilities);
        flushFull();
    }
    void finish()
    {
        m_chunk += m_count == 0 ? "{\n  " + dumpJson(m_key) + ": []\n}\n" : std::string("\n  ]\n}\n");
        m_out.write(m_chunk.data(), static_cast<std::streamsize>(m_chunk.size()));
        m_chunk.clear();
        m_out << std::flush;
    }

private:
    static constexpr std::size_t ChunkBytes = 256 * 1024;

    void separator() { m_chunk += m_count++ == 0 ? "{\n  " + dumpJson(m_key) + ": [\n    " : std::string(",\n    "); }
    void flushFull()
    {
        if (m_chunk.size() >= ChunkBytes) {
            m_out.write(m_chunk.data(), static_cast<std::streamsize>(m_chunk.size()));
            m_chunk.clear();
        }
    }

    std::ostream& m_out;
    std::string m_key;
    std::size_t m_count = 0;
    std::string m_chunk;
    CapabilitiesJson m_lastCapabilities;
};

const std::vector<std::string> DeviceColumns { "ID", "NAME", "STATE", "CONN", "HELD-BY", "TRANSPORT", "IDENTITY",
    "FINGERPRINT", "KEY-TYPE", "ADDRESS", "FIRST-SEEN", "LAST-SEEN", "ATTEMPTS", "FLAGS" };
const std::vector<std::string> TraceColumns { "RECEIVED", "CLIENT", "TRACE-ID", "DEVICE", "CONN", "MESSAGE-ID",
    "OPERATION", "DATASTORE", "OUTCOME", "ERROR", "MS" };
const std::vector<std::string> EventColumns { "TIME", "KIND", "DEVICE", "CONN", "ADDRESS", "FINGERPRINT", "DETAIL" };

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

/** One row of the `devices` table. */
std::vector<std::string> deviceRow(const Device& d)
{
    std::string flags;
    if (d.sameAddressAs) {
        flags = "same-address-as:" + d.sameAddressAsName.value_or("#" + std::to_string(*d.sameAddressAs));
    }
    return { std::to_string(d.id), d.name.value_or(""), inventory::toString(d.state), d.connected ? "yes" : "no",
        d.listenerId.value_or(""), inventory::toString(d.transport), identity(d), d.fingerprint, d.keyType,
        d.lastAddress, seenOrEmpty(d, d.firstSeen), seenOrEmpty(d, d.lastSeen), std::to_string(d.attempts), flags };
}

std::vector<std::string> eventRow(const inventory::Event& e)
{
    std::string device = !e.deviceName.empty() ? e.deviceName
        : e.deviceId                           ? "#" + std::to_string(*e.deviceId)
                                               : std::string {};
    return { toIso8601(e.at), inventory::toString(e.kind), device, e.connectionId, e.address, e.fingerprint,
        oneLine(e.detail) };
}

std::vector<std::string> traceRow(const inventory::TraceRecord& r)
{
    std::string device = !r.deviceName.empty() ? r.deviceName
        : r.deviceId                           ? "#" + std::to_string(*r.deviceId)
                                               : std::string {};
    std::string error = r.errorTag;
    if (!r.errorPath.empty()) {
        error += " at " + r.errorPath;
    }
    if (error.empty()) {
        error = r.detail;
    }
    return { toIso8601(r.receivedAt), r.client, r.traceId, device, r.connectionId, r.messageId, r.operation,
        r.datastore, r.outcome, oneLine(error), std::to_string(r.durationMs) };
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
    /** `out` is the buffer printed on success; the listings (devices, events) stream to `direct` instead. */
    Command(const Options& options, std::ostream& out, std::ostream& direct)
        : m_opt(options)
        , m_out(out)
        , m_direct(direct)
    { }

    /** Streams: each device is written as it is read (JSON item by item, the table after sizing its columns). */
    void devices()
    {
        auto inv = open();
        const auto filter = deviceFilter();
        if (m_opt.json) {
            JsonListWriter list(m_direct, "devices");
            inv->forEachDevice(filter, [&](const Device& d) { list.add(d); });
            list.finish();
            return;
        }
        StreamingTable table(DeviceColumns, m_direct);
        auto rows = filter;
        rows.withCapabilities = false; // the table does not show them: not decoding them is most of its cost
        inv->forEachDevice(rows, [&](const Device& d) { table.addRow(deviceRow(d)); });
        table.finish();
    }

    void import()
    {
        std::ifstream in(m_opt.csvPath);
        if (!in) {
            throw UsageError("cannot read " + m_opt.csvPath + ": " + std::strerror(errno));
        }
        std::vector<inventory::ExpectedDevice> expected;
        std::vector<std::size_t> lines;
        for (auto& entry : parseImportData(in, m_opt.csvPath)) {
            lines.push_back(entry.line);
            expected.push_back(std::move(entry.device));
        }
        auto inv = open();
        inventory::ExpectResult result;
        try {
            result = inv->expectAll(expected);
        } catch (const inventory::ExpectError& e) {
            throw UsageError(
                fmt::format("{}:{}: {}; nothing was imported", m_opt.csvPath, lines.at(e.position() - 1), e.problem()));
        }
        const auto unchanged = result.devices.size() - result.created;
        if (m_opt.json) {
            printJson({ { "file", m_opt.csvPath }, { "devices", result.devices.size() }, { "created", result.created },
                { "unchanged", unchanged } });
            return;
        }
        m_out << fmt::format("imported {} devices from {}: {} new, {} already expected; callhomed accepts them on "
                             "their first call home\n",
            result.devices.size(), m_opt.csvPath, result.created, unchanged);
    }

    /** Runs the whole-file integrity check (PRAGMA quick_check and foreign keys) that plain commands skip. */
    void check()
    {
        auto inv = open();
        auto problems = inv->checkIntegrity();
        if (!problems.empty()) {
            throw Error(fmt::format("inventory {} is damaged: {}{}; restore it from a backup", dbName(),
                problems.front(),
                problems.size() > 1 ? fmt::format(" (and {} more problems)", problems.size() - 1) : std::string {}));
        }
        if (m_opt.json) {
            printJson({ { "path", dbName() }, { "ok", true } });
            return;
        }
        m_out << "inventory " << dbName() << ": ok (quick_check and foreign keys)\n";
    }

    void expect()
    {
        std::vector<inventory::ExpectedDevice> expected;
        std::vector<std::size_t> lines; // CSV line of each entry, to name it in errors
        std::string source = m_opt.csvPath; // the file named in errors
        auto user = m_opt.user.empty() ? std::nullopt : std::optional<std::string>(m_opt.user);
        if (!m_opt.knownHostsPath.empty()) {
            source = m_opt.knownHostsPath;
            std::ifstream in(m_opt.knownHostsPath);
            if (!in) {
                throw UsageError("cannot read " + m_opt.knownHostsPath + ": " + std::strerror(errno));
            }
            for (auto& key : parseKnownHosts(in, m_opt.knownHostsPath, m_opt.hashedPrefix)) {
                lines.push_back(key.line);
                expected.push_back(
                    { .name = key.name, .fingerprint = key.fingerprint, .keyType = key.keyType, .sshUser = user });
            }
        } else if (!m_opt.fingerprint.empty()) {
            expected.push_back({ .name = m_opt.name, .fingerprint = m_opt.fingerprint, .sshUser = user });
        } else if (!m_opt.csvPath.empty()) {
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
                fmt::format("{}:{}: {}; nothing was imported", source, lines.at(e.position() - 1), e.problem()));
        }
        // An idempotent re-import returns a device once per line that named it; list each device once.
        std::vector<const Device*> shown;
        std::set<int64_t> seen;
        for (const auto& d : result) {
            if (seen.insert(d.id).second) {
                shown.push_back(&d);
            }
        }
        printDevices(shown);
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
                    { "SSH key", d.keySet ? "set (its own, instead of the station key)" : "the station key" },
                    { "SSH password", d.passwordSet ? "set" : "none" },
                    { "Fallback", d.passwordFallback ? "the fleet-wide password may be offered" : "no" },
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
                { "Held by", d.listenerId ? "instance " + *d.listenerId : std::string {} },
                { "Capabilities", d.capabilities.empty() ? "(none)" : std::to_string(d.capabilities.size()) },
            });
        for (const auto& [key, value] : fields) {
            std::string padded = key + ":";
            padded.resize(17, ' ');
            m_out << padded << (value.empty() ? "-" : escapeControl(value)) << '\n';
        }
        for (const auto& cap : d.capabilities) {
            m_out << "  " << escapeControl(cap) << '\n';
        }
    }

    void approve()
    {
        if (m_opt.all) {
            return bulk(inventory::BulkDecision::Action::Approve, "approve", "approved");
        }
        auto inv = open();
        auto d = inv->resolve(m_opt.device);
        auto name = m_opt.name.empty() ? std::nullopt : std::optional<std::string>(m_opt.name);
        auto user = m_opt.user.empty() ? std::nullopt : std::optional<std::string>(m_opt.user);
        // Secrets are read and checked, and the store opened, before anything changes: a bad file approves nothing.
        auto secrets = readSecrets(d);
        auto fallback = passwordFallback();
        auto result = inv->approve(d.id, name, user);
        if (secrets.any() || fallback) {
            result = applyCredentials(*inv, result, secrets, std::nullopt, fallback);
        }
        confirm(result,
            "approved " + label(result) + " " + result.fingerprint + ": callhomed accepts it on its next call home"
                + (secrets.any() || fallback ? " (" + credentialsSummary(result) + ")" : ""));
    }

    /** Sets or clears a device's SSH user, own password, own private key and password fallback. */
    void credentials()
    {
        auto inv = open();
        auto d = inv->resolve(m_opt.device);
        auto secrets = readSecrets(d);
        auto fallback = passwordFallback();
        auto user = m_opt.user.empty() ? std::nullopt : std::optional<std::string>(m_opt.user);
        if (!secrets.any() && !fallback && !user) {
            if (d.transport != Transport::Ssh) {
                throw UsageError(label(d) + " calls home over TLS: it has no SSH credentials");
            }
            // Nothing to change: show what the device has (never the secrets).
            confirm(d, "credentials of " + label(d) + ": " + credentialsSummary(d));
            return;
        }
        auto result = applyCredentials(*inv, d, secrets, user, fallback);
        confirm(result,
            "credentials of " + label(result) + ": " + credentialsSummary(result)
                + "; callhomed uses them from the device's next call home");
    }

    void reject()
    {
        if (m_opt.all) {
            return bulk(inventory::BulkDecision::Action::Reject, "reject", "rejected");
        }
        auto inv = open();
        auto result = inv->reject(inv->resolve(m_opt.device).id);
        confirm(result,
            "rejected " + label(result) + " " + result.fingerprint
                + ": callhomed refuses its calls before authentication");
    }

    void revoke()
    {
        if (m_opt.all) {
            return bulk(inventory::BulkDecision::Action::Revoke, "revoke", "revoked");
        }
        auto inv = open();
        auto result = inv->revoke(inv->resolve(m_opt.device).id);
        confirm(result,
            "revoked " + label(result) + " " + result.fingerprint
                + ": callhomed refuses its calls before authentication");
    }

    void forget()
    {
        if (m_opt.all) {
            return bulk(inventory::BulkDecision::Action::Forget, "forget", "forgot");
        }
        auto inv = open();
        auto d = inv->resolve(m_opt.device);
        inv->forget(d.id);
        if (d.passwordSet || d.keySet) {
            // Its secrets go too; when this user cannot open the store, callhomed deletes them at its next start.
            try {
                inventory::CredentialStore(credentialsPath(), inventory::CredentialStore::Mode::ExistingOnly)
                    .erase(d.id);
            } catch (const Error&) { }
        }
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
        if (m_opt.after > 0) {
            filter.afterId = m_opt.after;
        }
        if (m_opt.json) {
            JsonListWriter list(m_direct, "events");
            inv->forEachEvent(filter, [&](const inventory::Event& e) { list.add(toJson(e)); });
            list.finish();
            return;
        }
        StreamingTable table(EventColumns, m_direct);
        inv->forEachEvent(filter, [&](const inventory::Event& e) { table.addRow(eventRow(e)); });
        table.finish();
    }

    void trace()
    {
        auto inv = open();
        inventory::TraceFilter filter;
        if (!m_opt.traceDevice.empty()) {
            filter.deviceId = inv->resolve(m_opt.traceDevice).id;
        }
        if (!m_opt.traceClient.empty()) {
            filter.client = m_opt.traceClient;
        }
        if (!m_opt.traceId.empty()) {
            filter.traceId = m_opt.traceId;
        }
        if (!m_opt.since.empty()) {
            filter.since = parseTime(m_opt.since, now());
        }
        if (m_opt.limit > 0) {
            filter.limit = m_opt.limit;
        }
        if (m_opt.after > 0) {
            filter.afterId = m_opt.after;
        }
        if (m_opt.jsonLines) {
            // One record per line, nothing around it: what a SIEM's file or pipe input reads.
            inv->forEachTrace(
                filter, [&](const inventory::TraceRecord& r) { m_direct << dumpJson(toJson(r), -1) << '\n'; });
            m_direct << std::flush;
            return;
        }
        if (m_opt.json) {
            JsonListWriter list(m_direct, "trace");
            inv->forEachTrace(filter, [&](const inventory::TraceRecord& r) { list.add(toJson(r)); });
            list.finish();
            return;
        }
        StreamingTable table(TraceColumns, m_direct);
        inv->forEachTrace(filter, [&](const inventory::TraceRecord& r) { table.addRow(traceRow(r)); });
        table.finish();
    }

    void stationKey()
    {
        // --key, else the key callhomed's configuration names (--config), else the one in the state directory.
        auto path = !m_opt.keyPath.empty() ? m_opt.keyPath
            : !m_opt.configKeyFile.empty() ? m_opt.configKeyFile
                                           : transport::defaultStationKeyPath(m_opt.stateDir);
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
        if (!block || !inv->unblockSource(source, processUser())) {
            throw UsageError(source + " is not blocked ('" + std::string(Program) + " blocked' lists blocked sources)");
        }
        if (m_opt.json) {
            printJson(blockJson(*block));
            return;
        }
        m_out << "unblocked " << source << " (was blocked until " << toIso8601(block->until) << ": "
              << oneLine(block->reason) << "): a running callhomed admits it again within a second\n";
    }

    // --- staged configuration ---
    void stage()
    {
        auto content = readStagedContent(m_opt.stagedFile, m_opt.stagedFormat);
        auto inv = open();
        auto d = inv->resolve(m_opt.device);
        auto e = inv->stage(d.id,
            { .target = m_opt.stagedTarget,
                .commit = m_opt.stagedCommit,
                .format = content.format,
                .content = content.content });
        if (m_opt.json) {
            printJson(toJson(e));
            return;
        }
        m_out << "staged edit #" << e.id << " for " << describeDevice(d) << ": " << e.format << " edit of " << e.target
              << (e.commit ? " with commit" : "") << "; "
              << (d.connected ? "a running callhomed applies it within a second"
                              : "applied when the device's session is up")
              << "\n";
    }

    void staged()
    {
        auto inv = open();
        std::optional<int64_t> deviceId;
        if (!m_opt.device.empty()) {
            deviceId = inv->resolve(m_opt.device).id;
        }
        auto list = inv->stagedEdits(deviceId, m_opt.stagedAll);
        if (m_opt.json) {
            auto out = nlohmann::json::array();
            for (const auto& e : list) {
                out.push_back(toJson(e));
            }
            printJson({ { "staged", out } });
            return;
        }
        Table table(
            { "ID", "DEVICE", "STATE", "TARGET", "COMMIT", "FORMAT", "BYTES", "CREATED", "BY", "ATTEMPTS", "DETAIL" });
        for (const auto& e : list) {
            table.addRow({ std::to_string(e.id), e.deviceName.empty() ? idLabel(e.deviceId) : e.deviceName,
                toString(e.state), e.target, e.commit ? "yes" : "no", e.format, std::to_string(e.content.size()),
                toIso8601(e.createdAt), e.createdBy, std::to_string(e.attempts), oneLine(e.detail) });
        }
        table.print(m_out);
    }

    void unstage()
    {
        auto e = open()->unstage(m_opt.stagedId);
        if (m_opt.json) {
            printJson(toJson(e));
            return;
        }
        m_out << "staged edit #" << e.id << " dropped: it will not be applied\n";
    }

    void retry()
    {
        auto e = open()->retryStaged(m_opt.stagedId);
        if (m_opt.json) {
            printJson(toJson(e));
            return;
        }
        m_out << "staged edit #" << e.id << " queued again: applied (with the items behind it) when "
              << (e.deviceName.empty() ? "the device" : e.deviceName) << "'s session is up\n";
    }

private:
    static std::string idLabel(int64_t id)
    {
        std::string out = "#"; // not "#" + ...: GCC 12 -O3 warns falsely (-Wrestrict)
        out += std::to_string(id);
        return out;
    }

    static std::string describeDevice(const Device& d) { return d.name ? *d.name : idLabel(d.id); }

    /** The `devices` table (or `{"devices": [...]}`) of devices already in memory (expect's result). */
    void printDevices(const std::vector<const Device*>& shown)
    {
        if (m_opt.json) {
            auto list = nlohmann::json::array();
            for (const auto* d : shown) {
                list.push_back(toJson(*d));
            }
            printJson({ { "devices", list } });
            return;
        }
        Table table(DeviceColumns);
        for (const auto* d : shown) {
            table.addRow(deviceRow(*d));
        }
        table.print(m_out);
    }

    inventory::DeviceFilter deviceFilter() const
    {
        inventory::DeviceFilter f;
        if (!m_opt.stateFilter.empty()) {
            f.state = inventory::deviceStateFromString(m_opt.stateFilter);
        }
        if (!m_opt.transportFilter.empty()) {
            f.transport = inventory::transportFromString(m_opt.transportFilter);
        }
        if (m_opt.connectedOnly || m_opt.disconnectedOnly) {
            f.connected = m_opt.connectedOnly;
        }
        if (!m_opt.nameGlob.empty()) {
            f.nameGlob = m_opt.nameGlob;
        }
        if (!m_opt.seenSince.empty()) {
            f.seenSince = parseTime(m_opt.seenSince, now()); // validated while parsing
        }
        if (m_opt.after > 0) {
            f.afterId = m_opt.after;
        }
        if (m_opt.limit > 0) {
            f.limit = m_opt.limit;
        }
        return f;
    }

    /**
     * approve/reject/revoke/forget --all: one decision for every device the filters select, in one transaction.
     * Without --yes nothing changes and the command fails, saying how many devices it would change.
     */
    void bulk(inventory::BulkDecision::Action action, const char* verb, const char* done)
    {
        auto inv = open();
        inventory::BulkDecision decision { .action = action };
        if (!m_opt.namePrefix.empty()) {
            decision.namePrefix = m_opt.namePrefix;
        }
        if (!m_opt.user.empty()) {
            decision.sshUser = m_opt.user;
        }
        const auto filter = deviceFilter();
        if (!m_opt.yes) {
            decision.dryRun = true;
            auto count = inv->decideAll(filter, decision);
            throw UsageError(fmt::format("this would {} {} device{}{}; nothing was changed: repeat with --yes to do it",
                verb, count, count == 1 ? "" : "s", describeFilter()));
        }
        auto count = inv->decideAll(filter, decision);
        if (m_opt.json) {
            printJson({ { "action", verb }, { "count", count } });
            return;
        }
        m_out << fmt::format("{} {} device{}{}\n", done, count, count == 1 ? "" : "s", describeFilter());
    }

    /** " (state pending, transport ssh)": the filters a bulk decision used, for its confirmation line. */
    std::string describeFilter() const
    {
        std::vector<std::string> parts;
        if (!m_opt.stateFilter.empty()) {
            parts.push_back("state " + m_opt.stateFilter);
        }
        if (!m_opt.transportFilter.empty()) {
            parts.push_back("transport " + m_opt.transportFilter);
        }
        if (m_opt.connectedOnly) {
            parts.push_back("connected");
        }
        if (m_opt.disconnectedOnly) {
            parts.push_back("disconnected");
        }
        if (!m_opt.seenSince.empty()) {
            parts.push_back("seen since " + m_opt.seenSince);
        }
        std::string text;
        for (const auto& p : parts) {
            text += (text.empty() ? " (" : ", ") + p;
        }
        return text.empty() ? text : text + ")";
    }

    /** What credentials/approve were asked to change in the credentials store, read before anything changes. */
    struct SecretChanges {
        std::optional<Secret> password;
        std::optional<Secret> privateKey;
        bool clearPassword = false;
        bool clearKey = false;
        std::unique_ptr<inventory::CredentialStore> store; ///< opened when any of the above is asked for
        bool any() const { return password || privateKey || clearPassword || clearKey; }
    };

    std::optional<bool> passwordFallback() const
    {
        if (m_opt.passwordFallback.empty()) {
            return std::nullopt;
        }
        return m_opt.passwordFallback == "yes";
    }

    /** A secret file: only its owner may read it (as OpenSSH wants of a key), at most 64 KiB. */
    static Secret readSecretFile(const std::string& path)
    {
        transport::checkPrivateFilePermissions(path);
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            throw UsageError("cannot read " + path + ": " + std::strerror(errno));
        }
        std::string text(64 * 1024 + 1, '\0');
        in.read(text.data(), static_cast<std::streamsize>(text.size()));
        text.resize(static_cast<size_t>(in.gcount()));
        Secret secret(std::move(text));
        if (secret.reveal().size() > 64 * 1024) {
            throw UsageError(path + ": larger than 64 KiB");
        }
        return secret;
    }

    /** A password as written in a file or on stdin: one line; its line end is not part of it. */
    static Secret passwordOf(Secret text, const std::string& source)
    {
        std::string value = text.reveal();
        if (!value.empty() && value.back() == '\n') {
            value.pop_back();
            if (!value.empty() && value.back() == '\r') {
                value.pop_back();
            }
        }
        Secret password(std::move(value));
        if (password.empty()) {
            throw UsageError(source + ": the password is empty");
        }
        const auto& p = password.reveal();
        if (p.find('\n') != std::string::npos || p.find('\0') != std::string::npos) {
            throw UsageError(source + ": a password is one line (no newline or NUL inside)");
        }
        return password;
    }

    SecretChanges readSecrets(const Device& d) const
    {
        SecretChanges out;
        if (!m_opt.passwordFile.empty()) {
            out.password = passwordOf(readSecretFile(m_opt.passwordFile), m_opt.passwordFile);
        } else if (m_opt.passwordStdin) {
            std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
            out.password = passwordOf(Secret(std::move(text)), "stdin");
        }
        if (!m_opt.deviceKeyFile.empty()) {
            out.privateKey = readSecretFile(m_opt.deviceKeyFile);
            transport::checkPrivateKeyText(*out.privateKey, m_opt.deviceKeyFile);
        }
        out.clearPassword = m_opt.clearPassword;
        out.clearKey = m_opt.clearKey;
        if ((out.any() || !m_opt.passwordFallback.empty()) && d.transport != Transport::Ssh) {
            throw UsageError(label(d)
                + " calls home over TLS: it has no SSH credentials (callhomed presents the station's certificate)");
        }
        if (out.any()) {
            out.store = std::make_unique<inventory::CredentialStore>(
                credentialsPath(), inventory::CredentialStore::Mode::ExistingOnly);
        }
        return out;
    }

    /** Secrets first when set (the record never says "set" for a secret that is not stored), last when cleared. */
    Device applyCredentials(Inventory& inv, const Device& d, SecretChanges& secrets,
        const std::optional<std::string>& user, const std::optional<bool>& fallback) const
    {
        inventory::CredentialsUpdate update { .sshUser = user, .passwordFallback = fallback };
        if (secrets.password) {
            secrets.store->setPassword(d.id, secrets.password);
            update.passwordSet = true;
        } else if (secrets.clearPassword) {
            update.passwordSet = false;
        }
        if (secrets.privateKey) {
            secrets.store->setPrivateKey(d.id, secrets.privateKey);
            update.keySet = true;
        } else if (secrets.clearKey) {
            update.keySet = false;
        }
        auto result = inv.setCredentials(d.id, update);
        if (secrets.clearPassword) {
            secrets.store->setPassword(d.id, std::nullopt);
        }
        if (secrets.clearKey) {
            secrets.store->setPrivateKey(d.id, std::nullopt);
        }
        return result;
    }

    static std::string credentialsSummary(const Device& d)
    {
        return fmt::format("user {}, key {}, password {}, password fallback {}", d.sshUser.value_or("(default)"),
            d.keySet ? "its own" : "the station key", d.passwordSet ? "set" : "none",
            d.passwordFallback ? "yes" : "no");
    }

    std::string credentialsPath() const
    {
        return m_opt.credentialsPath.empty() ? inventory::defaultCredentialsPath(m_opt.stateDir)
                                             : m_opt.credentialsPath;
    }

    std::string dbPath() const
    {
        return m_opt.db.empty() ? (fs::path(m_opt.stateDir) / "inventory.db").string() : m_opt.db;
    }

    /** dbPath() fit for output: a PostgreSQL password never printed. */
    std::string dbName() const { return inventory::redactSpec(dbPath()); }

    /** Opens an existing inventory only: a typo in --state-dir must not leave an empty database behind. */
    std::unique_ptr<Inventory> open() const
    {
        auto path = dbPath();
        std::error_code ec;
        if (!inventory::isPostgresSpec(path) && !fs::exists(path, ec)) {
            throw UsageError("no inventory at " + path
                + " (callhomed creates it on its first start; use --state-dir or --db to select another)");
        }
        auto inv = inventory::openInventory(path, inventory::OpenMode::ExistingOnly);
        // Decisions made here carry who made them (devices' decided_by, the events' detail).
        inv->setActor(processUser());
        return inv;
    }

    void printJson(const nlohmann::json& doc) { m_out << dumpJson(doc) << '\n'; }

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
    std::ostream& m_direct;
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
        return "invalid time '" + escapeControl(text)
            + "': expected YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]Z (UTC, a real date in the years 1970-9999) or a "
              "relative 15m, 2h, 7d (at most 100 years, 36525d)";
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
      "unambiguous prefix of the fingerprint of at least 16 base64 characters (SSH) or 24 hex digits (TLS), with or "
      "without \"SHA256:\"; shorter prefixes are refused, an impostor's key could match them";

constexpr const char* BulkDeviceHelp
    = "The device: its name, numeric id, full fingerprint, a TLS device's serial number or MANUFACTURER/SERIAL, or an "
      "unambiguous prefix of the fingerprint of at least 16 base64 characters (SSH) or 24 hex digits (TLS); or --all "
      "with filters instead";

/** --all, --yes and the filters of a bulk decision (approve/reject/revoke/forget --all). */
void addBulkOptions(CLI::App* sub, Options& o, CLI::Option* deviceOption)
{
    auto* all = sub->add_flag("--all", o.all,
        "Decide for every device the filters select (all devices without filters) instead of one DEVICE; only "
        "devices for which it is a change count. One transaction: all or nothing. Needs --yes; without it, prints "
        "nothing and fails saying how many devices it would change");
    all->excludes(deviceOption);
    sub->add_option("--state", o.stateFilter, "With --all: only devices in this state")
        ->type_name("STATE")
        ->check(CLI::IsMember({ "pending", "approved", "rejected", "revoked" }))
        ->needs(all);
    sub->add_option("--transport", o.transportFilter, "With --all: only devices calling home over this transport")
        ->type_name("TRANSPORT")
        ->check(CLI::IsMember({ "ssh", "tls" }))
        ->needs(all);
    sub->add_option("--seen-since", o.seenSince, "With --all: only devices that called home at or after T")
        ->type_name("T")
        ->check(TimeValidator)
        ->needs(all);
}
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
    app.set_version_flag("--version", std::string(Program) + " " + CALLHOME_VERSION);
    app.require_subcommand(1);
    app.footer("Global options (--state-dir DIR, --db PATH, --socket PATH, --json) may be given before or after the "
               "subcommand. sessions, rpc, get, get-config, edit-config, notifications, watch and close talk to a "
               "running callhomed over its control socket; the other commands work without it. "
               "Human-readable tables by default; "
               "--json prints one JSON document (fields: lib/cli/README.md). Exit status: 0 success, 1 the command "
               "failed (one line on stderr), 2 bad command line, 3 the device answered <rpc-error>, 4 the device is "
               "not connected. Run 'callhomectl SUBCOMMAND --help' for details.");
    app.add_option("--state-dir", o.stateDir,
           "callhomed's state directory (inventory.db, station-key); default: $CALLHOME_STATE_DIR, else ./state")
        ->type_name("DIR");
    app.add_option("--db", o.db,
           "The inventory database: a SQLite file (default: STATE-DIR/inventory.db) or a PostgreSQL URL "
           "(postgresql://...) or libpq connection string. Never created by callhomectl (callhomed creates it)")
        ->type_name("PATH|URL");
    app.add_flag("--json", o.json, "Print one JSON document instead of a table or a confirmation line");
    app.add_option("--config", o.configPath,
           "callhomed's configuration file, read as callhomed reads it: its state directory, "
           "inventory and ssh/key-file are then used (--state-dir and --db still win; "
           "$CALLHOME_STATE_DIR does not). Like callhomed, none by default")
        ->type_name("FILE");
    auto* stateDirOption = app.get_option("--state-dir");
    auto* dbOption = app.get_option("--db");

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
    auto* connectedFlag = devices->add_flag(
        "--connected", o.connectedOnly, "Only devices with a NETCONF session open on a live callhomed");
    devices->add_flag("--disconnected", o.disconnectedOnly, "Only devices without one")->excludes(connectedFlag);
    devices
        ->add_option("--name", o.nameGlob,
            "Only devices whose name matches GLOB (case-sensitive; *, ?, [abc]; quote it for the shell); unnamed "
            "devices never match")
        ->type_name("GLOB");
    devices->add_option("--seen-since", o.seenSince, "Only devices that called home at or after T (as for events)")
        ->type_name("T")
        ->check(TimeValidator);
    devices->add_option("--limit", o.limit, "At most N devices (lowest ids first); page on with --after")
        ->type_name("N")
        ->check(CLI::PositiveNumber.description(""));
    devices->add_option("--after", o.after, "Only devices with an id greater than ID: the last id of the previous page")
        ->type_name("ID")
        ->check(CLI::PositiveNumber.description(""));

    auto* show = app.add_subcommand("show",
        "Show every field of one device: identity, state and who decided it when, the SSH user callhomed "
        "authenticates as, whether a NETCONF session is open and since when, and the capabilities from the "
        "device's last <hello>");
    show->add_option("DEVICE", o.device, DeviceHelp)->required()->type_name("");

    auto* approve = app.add_subcommand("approve",
        "Approve a device's current key (from pending, rejected or revoked): callhomed accepts it on "
        "the device's next call home, authenticates and opens a NETCONF session; no restart needed. A "
        "device without a name needs --name");
    auto* approveDevice = approve->add_option("DEVICE", o.device, BulkDeviceHelp)->type_name("");
    auto* approveName = approve->add_option("--name", o.name, "Name the device (unique; required when it has none yet)")
                            ->type_name("NAME");
    approve
        ->add_option("--user", o.user,
            "SSH user callhomed authenticates as on this device (default: the one in "
            "callhomed's configuration)")
        ->type_name("USER");
    addBulkOptions(approve, o, approveDevice);
    approve
        ->add_option("--name-prefix", o.namePrefix,
            "With --all: name each unnamed device PREFIX followed by its id (edge- names device 42 edge-42); without "
            "it, an unnamed device among the selected fails the whole decision")
        ->type_name("PREFIX")
        ->needs(approve->get_option("--all"))
        ->excludes(approveName);
    approve->add_flag("--yes,-y", o.yes, "With --all: really do it");
    {
        // One DEVICE only: per-device secrets (the same as 'credentials' sets), read from files, never from argv.
        auto* pw = approve
                       ->add_option("--password-file", o.passwordFile,
                           "Give the device its own SSH password, read from FILE (first line; mode 0600)")
                       ->type_name("FILE")
                       ->excludes(approve->get_option("--all"));
        approve->add_flag("--password-stdin", o.passwordStdin, "Read the device's own SSH password from stdin")
            ->excludes(pw)
            ->excludes(approve->get_option("--all"));
        approve
            ->add_option("--key-file", o.deviceKeyFile,
                "Give the device its own SSH private key (unencrypted, mode 0600), used instead of the station key")
            ->type_name("FILE")
            ->excludes(approve->get_option("--all"));
        approve
            ->add_option("--password-fallback", o.passwordFallback,
                "yes: the fleet-wide password (ssh/password) may be offered to this device; no (the default): it is "
                "never sent to it")
            ->type_name("yes|no")
            ->check(CLI::IsMember({ "yes", "no" }))
            ->excludes(approve->get_option("--all"));
    }

    auto* reject = app.add_subcommand("reject",
        "Reject a pending (or approved) device's identity: a running callhomed ends its live session at once, and "
        "from its next call home on closes the connection after key exchange, before authenticating, and logs a "
        "refused event");
    addBulkOptions(reject, o, reject->add_option("DEVICE", o.device, BulkDeviceHelp)->type_name(""));
    reject->add_flag("--yes,-y", o.yes, "With --all: really do it");

    auto* revoke = app.add_subcommand("revoke",
        "Revoke an approved device's identity (e.g. a decommissioned or compromised device): a running callhomed "
        "ends its live session at once and refuses it before authentication from then on. 'approve' re-admits it");
    addBulkOptions(revoke, o, revoke->add_option("DEVICE", o.device, BulkDeviceHelp)->type_name(""));
    revoke->add_flag("--yes,-y", o.yes, "With --all: really do it");

    auto* forget = app.add_subcommand("forget",
        "Delete a device from the inventory (its events stay in the log); a running callhomed ends its live "
        "session at once. If it calls home again it is recorded as a new pending device. Does not prompt; prints "
        "what was forgotten");
    addBulkOptions(forget, o, forget->add_option("DEVICE", o.device, BulkDeviceHelp)->type_name(""));
    forget->add_flag(
        "--yes,-y", o.yes, "With --all: really do it; for one DEVICE accepted for scripts (callhomectl never prompts)");

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
        "Pre-provision devices so that callhomed accepts them on their first call home, with no approve step. TLS "
        "(IEEE 802.1AR): a device whose certificate chain verifies to MANUFACTURER's trust anchor and carries SERIAL; "
        "one device (--serial, --manufacturer, optional --name) or shipping data (--csv). SSH: a host key by its "
        "fingerprint (--fingerprint, --name, optional --user) or every key of an OpenSSH known_hosts file "
        "(--known-hosts). All or nothing: on any error nothing is imported. Importing the same data again changes "
        "nothing. Prints the pre-provisioned devices");
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
    auto* fingerprintOpt
        = expect
              ->add_option("--fingerprint", o.fingerprint,
                  "SSH: the device's host key fingerprint, SHA256:... as 'ssh-keygen -l -E sha256 -f KEY.pub' prints "
                  "it on the device; needs --name")
              ->type_name("SHA256:...")
              ->excludes(serialOpt)
              ->excludes(manufacturerOpt)
              ->excludes(expect->get_option("--csv"));
    auto* knownHostsOpt
        = expect
              ->add_option("--known-hosts", o.knownHostsPath,
                  "SSH: every host key of an OpenSSH known_hosts file. A plain entry's device is named after its "
                  "first host name ([host]:port gives host; ':' of an IPv6 address becomes '-'); a host's further "
                  "keys get NAME-TYPE (router1-rsa). A hashed entry (|1|..., ssh-keygen -H) hides its host name: "
                  "it is named PREFIX (--name-prefix, default host-) and the first 12 characters of its fingerprint "
                  "('+' and '/' as '-' and '_'). @cert-authority and @revoked lines are skipped")
              ->type_name("FILE")
              ->excludes(serialOpt)
              ->excludes(manufacturerOpt)
              ->excludes(expectNameOpt)
              ->excludes(fingerprintOpt)
              ->excludes(expect->get_option("--csv"));
    expect
        ->add_option("--user", o.user,
            "SSH: the user callhomed authenticates as on the device(s) (default: the one in callhomed's "
            "configuration)")
        ->type_name("USER")
        ->excludes(serialOpt)
        ->excludes(manufacturerOpt)
        ->excludes(expect->get_option("--csv"));
    expect
        ->add_option(
            "--name-prefix", o.hashedPrefix, "With --known-hosts: the prefix of hashed entries' generated names")
        ->type_name("PREFIX")
        ->needs(knownHostsOpt)
        ->capture_default_str();

    auto* import = app.add_subcommand("import",
        "Pre-provision many devices at once, SSH and TLS, from a CSV file: one device per line, "
        "'IDENTITY,NAME[,USER]' where IDENTITY is an SSH host key fingerprint (SHA256:...) or a TLS device's "
        "MANUFACTURER/SERIAL, NAME its device name and USER (SSH only) the user callhomed authenticates as. An "
        "optional first line 'identity,name,user' is a header; blank lines and lines starting with '#' are "
        "skipped; fields with commas go in double quotes. One transaction: all or nothing, an error names the file "
        "and line. Importing the same file again changes nothing. Prints how many devices were imported");
    import->add_option("--csv", o.csvPath, "The file to import")->type_name("FILE")->required();

    auto* check = app.add_subcommand("check",
        "Check the whole inventory file for damage (SQLite PRAGMA quick_check and foreign keys), which the other "
        "commands skip so that they cost the same for any inventory size; callhomed runs the check when it opens "
        "the inventory. Exit status 1 with the first problem when it is damaged");

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
    events
        ->add_option("--limit", o.limit,
            "Only the newest N events (still printed oldest first); with --after, the first N after ID")
        ->type_name("N")
        ->check(CLI::PositiveNumber.description(""));
    events
        ->add_option("--after", o.after,
            "Only events with an id greater than ID (paging: the last id printed; ids increase in the order events "
            "were recorded)")
        ->type_name("ID")
        ->check(CLI::PositiveNumber.description(""));

    auto* trace = app.add_subcommand("trace",
        "Show the operation trace, oldest first: every NETCONF operation callhomed sent to a device for a client of "
        "its control API, with who asked (uid or certificate), the client's trace id, device, connection, "
        "message-id, operation, datastore, outcome and duration; never the request's content (its size and "
        "SHA-256 only)");
    trace->add_option("--device", o.traceDevice, "Only operations sent to this device (name, id or fingerprint prefix)")
        ->type_name("DEVICE");
    trace
        ->add_option("--client", o.traceClient,
            "Only operations asked for by this client: a uid, a user name, a certificate subject or fingerprint")
        ->type_name("C");
    trace->add_option("--trace-id", o.traceId, "Only operations of requests that sent this X-Callhome-Trace-Id")
        ->type_name("ID");
    trace
        ->add_option("--since", o.since,
            "Only operations received at or after T: YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS]Z (UTC) or relative to now: "
            "15m, 2h, 7d")
        ->type_name("T")
        ->check(TimeValidator);
    trace
        ->add_option("--limit", o.limit,
            "Only the newest N records (still printed oldest first); with --after, the first N after ID")
        ->type_name("N")
        ->check(CLI::PositiveNumber.description(""));
    trace->add_option("--after", o.after, "Only records with an id greater than ID (paging, or a SIEM's position)")
        ->type_name("ID")
        ->check(CLI::PositiveNumber.description(""));
    trace->add_flag("--jsonl", o.jsonLines, "JSON lines: one record per line, for a SIEM (the fields of --json)");

    auto* stationKey = app.add_subcommand("station-key",
        "Print the management station's SSH public key in authorized_keys format: add it to each "
        "device's NETCONF user so that callhomed can authenticate. callhomed generates the key on "
        "its first start; this command never creates it");
    stationKey
        ->add_option("--key", o.keyPath,
            "The station's private key file; default: the configuration's ssh/key-file with --config, else "
            "STATE-DIR/station-key")
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

    // --- staged configuration (works on the inventory; a running callhomed notices within a second) ---
    auto* stage = app.add_subcommand("stage",
        "Queue an <edit-config> for a device, also one that is offline, pending or expected and never called home: "
        "callhomed applies the device's queued edits in order as soon as its NETCONF session is up (at once if it "
        "is connected), and records each as applied or failed with the device's <rpc-error>. A failed edit stops "
        "the device's queue until 'retry' or 'unstage'. Stored in the inventory: survives restarts");
    stage->add_option("DEVICE", o.device, DeviceHelp)->required()->type_name("");
    stage
        ->add_option("FILE", o.stagedFile,
            "The configuration: XML (the content of <config>) or RFC 7951 JSON (converted with the device's own "
            "schemas when applied); '-' reads stdin")
        ->required()
        ->type_name("");
    stage->add_option("--target", o.stagedTarget, "The datastore to edit (default running)")
        ->type_name("DATASTORE")
        ->check(CLI::IsMember({ "running", "candidate" }));
    stage->add_flag("--commit", o.stagedCommit, "Send <commit/> after the edit (needs --target candidate)");
    stage
        ->add_option("--format", o.stagedFormat,
            "xml or json; default: from the file name (.xml, .json), else from its first character")
        ->type_name("FORMAT")
        ->check(CLI::IsMember({ "xml", "json" }));

    auto* stagedList = app.add_subcommand("staged",
        "List the staged edits (of one DEVICE, or all) in the order they are applied: id, device, state (queued, "
        "applying, applied, failed, dropped), target, commit, format, size, when and by whom staged, attempts, and "
        "the result (how it was applied, or the device's error)");
    stagedList->add_option("DEVICE", o.device, DeviceHelp)->type_name("");
    stagedList->add_flag("--all", o.stagedAll, "Also the dropped (unstaged) edits");

    auto* unstage = app.add_subcommand("unstage",
        "Drop a queued or failed staged edit: it is never applied (kept in the list as dropped, see staged --all); "
        "the device's queue moves on to the next edit");
    unstage->add_option("ID", o.stagedId, "The staged edit's id (as 'staged' lists it)")
        ->required()
        ->type_name("")
        ->check(CLI::PositiveNumber.description(""));

    auto* retry = app.add_subcommand("retry",
        "Queue a failed staged edit again: callhomed sends it (and the edits behind it) again on the device's "
        "session, at once if it is connected");
    retry->add_option("ID", o.stagedId, "The failed staged edit's id (as 'staged' lists it)")
        ->required()
        ->type_name("")
        ->check(CLI::PositiveNumber.description(""));
    auto* credentials = app.add_subcommand("credentials",
        "Set or clear what callhomed authenticates to an SSH device with: its SSH user, a password and a private "
        "key of its own, and whether the fleet-wide password (ssh/password) may be offered to it (password "
        "fallback, off by default). Secrets go to callhomed's credentials store (STATE-DIR/credentials.db, mode "
        "0600; run callhomectl as callhomed's user), never to the inventory, and are never printed: without options "
        "it shows what the device has ('set'). Used from the device's next call home");
    credentials->add_option("DEVICE", o.device, DeviceHelp)->required()->type_name("");
    credentials->add_option("--user", o.user, "SSH user callhomed authenticates as on this device")->type_name("USER");
    auto* credPassword = credentials
                             ->add_option("--password-file", o.passwordFile,
                                 "The device's own password, the first line of FILE (mode 0600: only its owner may "
                                 "read it)")
                             ->type_name("FILE");
    auto* credStdin
        = credentials
              ->add_flag("--password-stdin", o.passwordStdin, "The device's own password, read from stdin (one line)")
              ->excludes(credPassword);
    credentials->add_flag("--clear-password", o.clearPassword, "Delete the device's own password")
        ->excludes(credPassword)
        ->excludes(credStdin);
    auto* credKey = credentials
                        ->add_option("--key-file", o.deviceKeyFile,
                            "The device's own SSH private key (unencrypted OpenSSH or PEM, mode 0600), used instead of "
                            "the station key")
                        ->type_name("FILE");
    credentials->add_flag("--clear-key", o.clearKey, "Delete the device's own key (the station key is used again)")
        ->excludes(credKey);
    credentials
        ->add_option("--password-fallback", o.passwordFallback,
            "yes: the fleet-wide password may be offered to this device after its own key and password; no (the "
            "default for every device): it is never sent to it")
        ->type_name("yes|no")
        ->check(CLI::IsMember({ "yes", "no" }));

    Remote remote(app); // the subcommands that talk to a running callhomed (lib/cli/Remote.h)

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e, out, err);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e, out, err);
    } catch (const CLI::CallForVersion& e) {
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
    auto usage = [&](const std::string& message, const std::string& sub) {
        err << Program << ": " << message << " (see " << Program << " " << sub << " --help)" << std::endl;
        return ExitUsage;
    };
    if (expect->parsed() && o.csvPath.empty() && o.fingerprint.empty() && o.knownHostsPath.empty()
        && (o.serial.empty() || o.manufacturer.empty())) {
        return usage(
            "expect needs --serial and --manufacturer, --csv FILE, --fingerprint SHA256:... or --known-hosts FILE",
            "expect");
    }
    if (expect->parsed() && !o.fingerprint.empty() && o.name.empty()) {
        return usage("expect --fingerprint needs --name", "expect");
    }
    for (auto* sub : { approve, reject, revoke, forget }) {
        if (sub->parsed() && !o.all && o.device.empty()) {
            return usage(
                sub->get_name() + " needs DEVICE, or --all (with filters) for a bulk decision", sub->get_name());
        }
    }
    if (stage->parsed() && o.stagedCommit && o.stagedTarget != "candidate") {
        return usage("stage --commit needs --target candidate", "stage");
    }
    if (approve->parsed() && o.all && !o.name.empty()) {
        return usage("approve --all gives no single --name; --name-prefix names the unnamed devices", "approve");
    }
    // callhomed's configuration decides where its files are, as it does for callhomed; explicit options still win.
    if (!o.configPath.empty()) {
        try {
            config::Overrides overrides;
            if (stateDirOption->count() > 0) {
                overrides.stateDir = o.stateDir;
            }
            if (dbOption->count() > 0) {
                overrides.inventoryPath = o.db;
            }
            auto cfg = config::load(o.configPath, overrides);
            o.stateDir = cfg.stateDir;
            o.db = cfg.inventoryPath;
            o.configKeyFile = cfg.sshKeyFile;
            o.credentialsPath = cfg.credentialsPath;
            o.configSocket = cfg.control.socket;
        } catch (const std::exception& e) {
            err << Program << ": " << printable(e.what()) << std::endl;
            return ExitFailure;
        }
    }

    if (remote.parsed()) {
        return remote.run(o.stateDir, o.configSocket, o.json, out, err);
    }
    std::ostringstream buffer;
    // The listings stream to `out` as they read; a failure part way (a database error) leaves what was printed.
    Command command(o, buffer, out);
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
            { import, &Command::import },
            { check, &Command::check },
            { events, &Command::events },
            { trace, &Command::trace },
            { stationKey, &Command::stationKey },
            { blocked, &Command::blocked },
            { unblock, &Command::unblock },
            { stage, &Command::stage },
            { stagedList, &Command::staged },
            { unstage, &Command::unstage },
            { retry, &Command::retry },
            { credentials, &Command::credentials },
        };
        for (const auto& [sub, handler] : dispatch) {
            if (sub->parsed()) {
                (command.*handler)();
            }
        }
    } catch (const std::exception& e) {
        // Library errors (callhome::Error) are already worded for operators; anything else (filesystem, bad_alloc)
        // still gets exactly one line and no partial output.
        err << Program << ": " << printable(e.what()) << std::endl;
        return ExitFailure;
    }
    out << buffer.str() << std::flush;
    return 0;
}
} // namespace callhome::cli
