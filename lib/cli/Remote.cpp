#include "cli/Remote.h"
#include "cli/ApiClient.h"
#include "cli/Table.h"
#include "cli/Xml.h"
#include "common/Text.h"
#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

namespace callhome::cli {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

constexpr int ExitFailure = 1;
constexpr int ExitUsage = 2;
constexpr int ExitRpcError = 3;
constexpr int ExitNotConnected = 4;
constexpr const char* Program = "callhomectl";
constexpr const char* Xml = "application/xml";
constexpr const char* YangJson = "application/yang-data+json";
constexpr const char* StreamTypes = "application/x-ndjson, application/xml, application/json";
/** Lock, edit-config, commit, unlock: each step may take the device's whole timeout. */
constexpr int64_t EditSteps = 4;
/** What callhomed needs besides the device's time: queueing behind other requests to the same device. */
constexpr auto DeadlineMargin = 30s;

/** A failed command: its exit status, its stderr lines (usually one) and, for --json, a document for stdout. */
struct Failure {
    int status;
    std::vector<std::string> lines;
    std::string document;
};

std::string oneLine(std::string text)
{
    for (auto& c : text) {
        if (c == '\n' || c == '\r' || c == '\t') {
            c = ' ';
        }
    }
    text.erase(text.find_last_not_of(' ') + 1);
    text.erase(0, text.find_first_not_of(' ') == std::string::npos ? text.size() : text.find_first_not_of(' '));
    return text;
}

/** For stderr lines and table cells: one line, and nothing a device wrote reaches the terminal raw. */
std::string printable(const std::string& text)
{
    return escapeControl(oneLine(text));
}

/**
 * `doc` as JSON text that is safe for a terminal: dump() escapes C0 controls, and DEL and the C1 controls (which can
 * only occur inside strings) become \u escapes too; invalid UTF-8 is replaced rather than thrown.
 */
std::string dumpJson(const json& doc, int indent)
{
    static constexpr char Hex[] = "0123456789ABCDEF";
    const auto text = doc.dump(indent, ' ', false, json::error_handler_t::replace);
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c == 0x7F) {
            out += "\\u007f";
        } else if (c == 0xC2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80
            && static_cast<unsigned char>(text[i + 1]) <= 0x9F) {
            const auto low = static_cast<unsigned char>(text[++i]);
            out += std::string("\\u00") + Hex[low >> 4] + Hex[low & 0xF];
        } else {
            out += text[i];
        }
    }
    return out + "\n";
}

/** A JSON value as a table cell: strings as they are, null and absent as "" (shown "-"). */
std::string cell(const json& object, const char* key)
{
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) {
        return {};
    }
    if (it->is_string()) {
        return printable(it->get<std::string>());
    }
    if (it->is_boolean()) {
        return it->get<bool>() ? "yes" : "no";
    }
    return it->dump();
}

/** --socket, else $CALLHOME_CONTROL_SOCKET, else the configuration's control/socket (with --config), else
 * STATE-DIR/control.sock. */
std::string defaultSocket(const std::string& stateDir, const std::string& configSocket)
{
    const char* env = std::getenv("CALLHOME_CONTROL_SOCKET");
    if (env && *env) {
        return env;
    }
    if (!configSocket.empty()) {
        return configSocket;
    }
    return (fs::path(stateDir) / "control.sock").string();
}

/** Builds "?a=1&b=2" with percent-encoded values; empty values are left out. */
class Query {
public:
    explicit Query(ApiClient& client)
        : m_client(client)
    { }
    Query& add(const std::string& name, const std::string& value)
    {
        if (!value.empty()) {
            m_text += (m_text.empty() ? "?" : "&") + name + "=" + m_client.escape(value);
        }
        return *this;
    }
    const std::string& str() const { return m_text; }

private:
    ApiClient& m_client;
    std::string m_text;
};

/** Runs one parsed subcommand against callhomed's control API; failures are thrown as Failure or Error. */
class RemoteCommand {
public:
    RemoteCommand(
        const RemoteOptions& options, bool json, ApiClient& client, std::ostream& buffered, std::ostream& direct)
        : m_opt(options)
        , m_json(json)
        , m_client(client)
        , m_out(buffered)
        , m_direct(direct)
    { }

    void sessions()
    {
        auto doc = okJson(m_client.request({ .target = "/v1/sessions", .deadline = DeadlineMargin }));
        if (m_json) {
            m_out << dumpJson(doc, 2);
            return;
        }
        Table table({ "DEVICE", "ID", "CONN", "TRANSPORT", "ADDRESS", "SINCE", "NETCONF", "SESSION-ID", "RPCS",
            "LAST-ACTIVITY" });
        for (const auto& s : doc.value("sessions", json::array())) {
            table.addRow({ cell(s, "device"), cell(s, "device_id"), cell(s, "connection_id"), cell(s, "transport"),
                cell(s, "address"), cell(s, "since"), cell(s, "netconf_version"), cell(s, "session_id"),
                cell(s, "rpcs"), cell(s, "last_activity") });
        }
        table.print(m_out);
    }

    void rpc()
    {
        auto body = readInput(m_opt.file.empty() ? "-" : m_opt.file);
        Query query(m_client);
        query.add("timeout", timeoutParam());
        auto r = m_client.request({ .method = "POST",
            .target = devicePath("rpc") + query.str(),
            .body = std::move(body),
            .contentType = Xml,
            .accept = m_json ? YangJson : Xml,
            .deadline = deadline(1) });
        printReply(r);
    }

    void get() { data("operational"); }

    void getConfig() { data(m_opt.source); }

    void editConfig()
    {
        auto body = readInput(m_opt.file);
        auto first = body.find_first_not_of(" \t\r\n");
        const bool isJson = first != std::string::npos && body[first] == '{';
        Query query(m_client);
        query.add("target", m_opt.target)
            .add("default-operation", m_opt.defaultOperation)
            .add("test-option", m_opt.testOption)
            .add("error-option", m_opt.errorOption)
            .add("commit", m_opt.commit ? "true" : "")
            .add("lock", m_opt.lock ? "true" : "")
            .add("timeout", timeoutParam());
        auto doc = okJson(m_client.request({ .method = "POST",
            .target = devicePath("edit") + query.str(),
            .body = std::move(body),
            .contentType = isJson ? YangJson : Xml,
            .deadline = deadline(EditSteps) }));
        if (m_json) {
            m_out << dumpJson(doc, 2);
            return;
        }
        std::string steps;
        for (const auto& step : doc.value("steps", json::array())) {
            steps
                += (steps.empty() ? "" : ", ") + (step.is_string() ? printable(step.get<std::string>()) : step.dump());
        }
        m_out << "edited the " << m_opt.target << " datastore of " << m_opt.device
              << (steps.empty() ? "" : " (" + steps + ")") << '\n';
    }

    void notifications()
    {
        Query query(m_client);
        query.add("stream", m_opt.stream).add("format", m_json ? "json" : "xml");
        follow(devicePath("notifications") + query.str(), nullptr, [this](std::string_view line) {
            if (m_json) {
                m_direct << jsonLine(line);
            } else {
                m_direct << prettyXml(line);
            }
            m_direct << std::flush;
        });
    }

    void watch()
    {
        Query query(m_client);
        query.add("follow", "true")
            .add("device", m_opt.watchDevice)
            .add("after", m_opt.after > 0 ? std::to_string(m_opt.after) : "");
        auto onOpen = [this] {
            if (!m_json) {
                m_direct << eventLine({ "TIME", "KIND", "DEVICE", "CONN", "ADDRESS", "DETAIL" }) << std::flush;
            }
        };
        follow("/v1/events" + query.str(), onOpen, [this](std::string_view line) {
            auto event = json::parse(line, nullptr, false);
            if (m_json || !event.is_object()) {
                m_direct << jsonLine(line);
            } else {
                auto device = cell(event, "device_name");
                if (device.empty() && !cell(event, "device_id").empty()) {
                    device = "#" + cell(event, "device_id");
                }
                m_direct << eventLine({ cell(event, "at"), cell(event, "kind"), device, cell(event, "connection_id"),
                    cell(event, "address"), cell(event, "detail") });
            }
            m_direct << std::flush;
        });
    }

    void close()
    {
        auto doc = okJson(m_client.request({ .method = "POST", .target = devicePath("close") }));
        if (m_json) {
            m_out << dumpJson(doc, 2);
            return;
        }
        m_out << "closed the session of " << m_opt.device << '\n';
    }

private:
    void data(const std::string& datastore)
    {
        Query query(m_client);
        query.add("datastore", datastore).add("xpath", m_opt.xpath).add("timeout", timeoutParam());
        printReply(m_client.request({ .target = devicePath("data") + query.str(),
            .accept = m_json ? YangJson : Xml,
            .deadline = deadline(1) }));
    }

    std::string devicePath(const char* action) const
    {
        return "/v1/devices/" + m_client.escape(m_opt.device) + "/" + action;
    }

    std::string timeoutParam() const { return m_opt.timeout > 0 ? std::to_string(m_opt.timeout) : std::string {}; }

    /** With --timeout, callhomed's own bound plus a margin; without, callhomed's control/rpc-timeout bounds it. */
    std::chrono::seconds deadline(int64_t steps) const
    {
        return m_opt.timeout > 0 ? std::chrono::seconds(m_opt.timeout * steps) + DeadlineMargin : 0s;
    }

    /** Streams `target` until callhomed ends it or SIGINT; a refused stream fails like any request. */
    void follow(const std::string& target, const std::function<void()>& onOpen,
        const std::function<void(std::string_view)>& onLine)
    {
        auto r = m_client.stream(target, StreamTypes, onOpen, onLine);
        if (r.status < 200 || r.status >= 300) {
            fail(r);
        }
    }

    /** A streamed JSON line as one compact line again, made safe like every JSON output; not JSON: escaped. */
    static std::string jsonLine(std::string_view line)
    {
        auto doc = json::parse(line, nullptr, false);
        return doc.is_discarded() ? escapeControl(line) + "\n" : dumpJson(doc, -1);
    }

    /** One row of `watch`: the columns of `events`, padded so that rows line up without knowing what follows. */
    static std::string eventLine(std::vector<std::string> cells)
    {
        static constexpr std::size_t Widths[] = { 24, 16, 16, 6, 15 };
        std::string text;
        for (std::size_t i = 0; i < cells.size(); ++i) {
            auto value = cells[i].empty() ? std::string("-") : cells[i];
            text += value;
            if (i < std::size(Widths)) {
                text.append(value.size() < Widths[i] ? Widths[i] - value.size() : 0, ' ');
                text += "  ";
            }
        }
        text.erase(text.find_last_not_of(' ') + 1);
        return text + "\n";
    }

    std::string readInput(const std::string& file) const
    {
        std::ostringstream text;
        const std::string name = file == "-" ? std::string("stdin") : file;
        if (file == "-") {
            text << std::cin.rdbuf();
            if (std::cin.bad()) {
                throw Error("cannot read stdin");
            }
        } else {
            std::ifstream in(file, std::ios::binary);
            if (!in) {
                throw Error("cannot read " + file + ": " + std::strerror(errno));
            }
            text << in.rdbuf();
        }
        auto body = text.str();
        if (body.find_first_not_of(" \t\r\n") == std::string::npos) {
            throw Error(name + " is empty: nothing to send to " + m_opt.device);
        }
        return body;
    }

    /** A 2xx response printed as it came: XML indented, JSON as an indented document. */
    void printReply(const ApiResponse& r)
    {
        if (r.status < 200 || r.status >= 300) {
            fail(r);
        }
        if (r.contentType.find("json") != std::string::npos) {
            auto doc = json::parse(r.body, nullptr, false);
            m_out << (doc.is_discarded() ? prettyXml(r.body) : dumpJson(doc, 2));
        } else {
            m_out << prettyXml(r.body);
        }
    }

    json okJson(const ApiResponse& r)
    {
        if (r.status < 200 || r.status >= 300) {
            fail(r);
        }
        auto doc = json::parse(r.body, nullptr, false);
        if (doc.is_discarded()) {
            throw Error("callhomed answered something that is not JSON: " + r.body.substr(0, 200));
        }
        return doc;
    }

    /** Turns an error response (lib/api/README.md, "Errors") into the exit status and stderr lines. */
    [[noreturn]] void fail(const ApiResponse& r)
    {
        auto doc = json::parse(r.body, nullptr, false);
        if (!doc.is_object() || !doc.contains("error")) {
            auto body = printable(r.body.substr(0, 200));
            throw Failure { ExitFailure,
                { "callhomed answered HTTP " + std::to_string(r.status) + (body.empty() ? "" : ": " + body) } };
        }
        const auto code = cell(doc, "error");
        auto message = cell(doc, "message");
        if (message.empty()) {
            message = code + " (HTTP " + std::to_string(r.status) + ")";
        }
        if (code == "rpc-error") {
            Failure failure { ExitRpcError, {}, m_json ? dumpJson(doc, 2) : std::string {} };
            const auto prefix = m_opt.device + " answered <rpc-error>: ";
            for (const auto& e : doc.value("rpc_errors", json::array())) {
                std::string fields;
                for (const char* key : { "tag", "type", "severity", "app_tag", "path", "info", "message" }) {
                    if (auto value = cell(e, key); !value.empty()) {
                        fields += (fields.empty() ? "" : " ") + std::string(key) + "=" + value;
                    }
                }
                failure.lines.push_back(prefix + (fields.empty() ? message : fields));
            }
            if (failure.lines.empty()) {
                failure.lines.push_back(prefix + message);
            }
            throw failure;
        }
        throw Failure { code == "not-connected" ? ExitNotConnected : ExitFailure, { message } };
    }

    const RemoteOptions& m_opt;
    bool m_json;
    ApiClient& m_client;
    std::ostream& m_out; ///< a buffer, written to stdout only when the command worked
    std::ostream& m_direct; ///< stdout itself, for the streaming commands
};

constexpr const char* DeviceHelp = "The device, as for 'show': name, id, fingerprint or its unambiguous prefix, a TLS "
                                   "device's serial number or MANUFACTURER/SERIAL";
constexpr const char* TimeoutHelp
    = "Give the device this long to answer (default: callhomed's control/rpc-timeout, 60 s)";
} // namespace

Remote::Remote(CLI::App& app)
{
    app.add_option("--socket", m_opt.socket,
           "callhomed's control socket, for the commands that talk to a running callhomed (sessions, rpc, get, "
           "get-config, edit-config, notifications, watch, close); default: $CALLHOME_CONTROL_SOCKET, else the "
           "configuration's control/socket (--config), else STATE-DIR/control.sock")
        ->type_name("PATH");

    m_sessions = app.add_subcommand("sessions",
        "List the NETCONF sessions callhomed holds now (needs a running callhomed): device, device id, connection "
        "id, transport, peer address, since when (UTC), NETCONF version, session id, RPCs sent and last activity");

    m_rpc = app.add_subcommand("rpc",
        "Send one NETCONF operation to a connected device and print its <rpc-reply> (indented XML; with --json the "
        "reply's output as RFC 7951 JSON). FILE holds what goes inside <rpc>, e.g. <get-schema .../>; '-' or no FILE "
        "reads it from stdin. Exit status 3 when the device answers <rpc-error>, 4 when it is not connected");
    m_rpc->add_option("DEVICE", m_opt.device, DeviceHelp)->required()->type_name("");
    m_rpc->add_option("FILE", m_opt.file, "The operation as XML; '-' (the default): stdin")->type_name("");
    m_rpc->add_option("--timeout", m_opt.timeout, TimeoutHelp)
        ->type_name("SECONDS")
        ->check(CLI::PositiveNumber.description(""));

    m_get = app.add_subcommand("get",
        "Print a connected device's operational state and configuration (<get>), as XML or with --json as RFC 7951 "
        "JSON");
    m_get->add_option("DEVICE", m_opt.device, DeviceHelp)->required()->type_name("");
    m_get
        ->add_option("--xpath", m_opt.xpath,
            "Only what this XPath selects; prefixes are module names (/ietf-interfaces:interfaces)")
        ->type_name("XPATH");
    m_get->add_option("--timeout", m_opt.timeout, TimeoutHelp)
        ->type_name("SECONDS")
        ->check(CLI::PositiveNumber.description(""));

    m_getConfig = app.add_subcommand("get-config",
        "Print a connected device's configuration (<get-config>), as XML or with --json as RFC 7951 JSON");
    m_getConfig->add_option("DEVICE", m_opt.device, DeviceHelp)->required()->type_name("");
    m_getConfig->add_option("--source,--datastore", m_opt.source, "The datastore to read (default: running)")
        ->type_name("DATASTORE")
        ->check(CLI::IsMember({ "running", "candidate", "startup" }));
    m_getConfig
        ->add_option("--xpath", m_opt.xpath,
            "Only what this XPath selects; prefixes are module names (/ietf-interfaces:interfaces)")
        ->type_name("XPATH");
    m_getConfig->add_option("--timeout", m_opt.timeout, TimeoutHelp)
        ->type_name("SECONDS")
        ->check(CLI::PositiveNumber.description(""));

    m_editConfig = app.add_subcommand("edit-config",
        "Change a connected device's configuration (<edit-config>) with the content of <config> from FILE, as XML or "
        "RFC 7951 JSON (a file starting with '{' is JSON); '-' reads stdin. With --lock the target is locked around "
        "the edit; with --commit (target candidate) the candidate is committed. Exit status 3 when the device answers "
        "<rpc-error>, 4 when it is not connected");
    m_editConfig->add_option("DEVICE", m_opt.device, DeviceHelp)->required()->type_name("");
    m_editConfig->add_option("FILE", m_opt.file, "The new configuration; '-': stdin")->required()->type_name("");
    m_editConfig->add_option("--target", m_opt.target, "The datastore to edit (default: running)")
        ->type_name("DATASTORE")
        ->check(CLI::IsMember({ "running", "candidate" }));
    m_editConfig->add_flag("--commit", m_opt.commit, "Commit the candidate after the edit (needs --target candidate)");
    m_editConfig->add_flag("--lock", m_opt.lock, "Lock the target before the edit and unlock it afterwards");
    m_editConfig
        ->add_option("--default-operation", m_opt.defaultOperation, "The <default-operation> (device default: merge)")
        ->type_name("OPERATION")
        ->check(CLI::IsMember({ "merge", "replace", "none" }));
    m_editConfig->add_option("--test-option", m_opt.testOption, "The <test-option> (:validate capability)")
        ->type_name("OPTION")
        ->check(CLI::IsMember({ "test-then-set", "set", "test-only" }));
    m_editConfig->add_option("--error-option", m_opt.errorOption, "The <error-option>")
        ->type_name("OPTION")
        ->check(CLI::IsMember({ "stop-on-error", "continue-on-error", "rollback-on-error" }));
    m_editConfig->add_option("--timeout", m_opt.timeout, TimeoutHelp + std::string(", for each step"))
        ->type_name("SECONDS")
        ->check(CLI::PositiveNumber.description(""));

    m_notifications = app.add_subcommand("notifications",
        "Subscribe to a connected device's notifications (RFC 5277, if callhomed has not yet) and print each as it "
        "arrives, as indented XML or with --json as one JSON object per line, until interrupted (Ctrl-C: exit status "
        "0) or the session ends");
    m_notifications->add_option("DEVICE", m_opt.device, DeviceHelp)->required()->type_name("");
    m_notifications->add_option("--stream", m_opt.stream, "The event stream to subscribe to (default: NETCONF)")
        ->type_name("STREAM");

    m_watch = app.add_subcommand("watch",
        "Follow callhomed's event log live: one line per event (time, kind, device, connection, address, detail, as "
        "'events' shows them) or with --json one JSON object per line, until interrupted (Ctrl-C: exit status 0)");
    m_watch->add_option("--device", m_opt.watchDevice, "Only events of this device")->type_name("DEVICE");
    m_watch->add_option("--after", m_opt.after, "Start after the event with this id (default: now)")
        ->type_name("ID")
        ->check(CLI::PositiveNumber.description(""));

    m_close = app.add_subcommand("close",
        "End a device's live NETCONF session now (<close-session>); the device calls home again as it is configured "
        "to");
    m_close->add_option("DEVICE", m_opt.device, DeviceHelp)->required()->type_name("");
}

bool Remote::parsed() const
{
    for (const auto* sub : { m_sessions, m_rpc, m_get, m_getConfig, m_editConfig, m_notifications, m_watch, m_close }) {
        if (sub->parsed()) {
            return true;
        }
    }
    return false;
}

int Remote::run(
    const std::string& stateDir, const std::string& configSocket, bool json, std::ostream& out, std::ostream& err)
{
    if (m_editConfig->parsed() && m_opt.commit && m_opt.target != "candidate") {
        err << Program << ": --commit needs --target candidate (see " << Program << " edit-config --help)" << std::endl;
        return ExitUsage;
    }
    std::ostringstream buffer;
    try {
        ApiClient client(m_opt.socket.empty() ? defaultSocket(stateDir, configSocket) : m_opt.socket);
        RemoteCommand command(m_opt, json, client, buffer, out);
        const std::pair<CLI::App*, void (RemoteCommand::*)()> dispatch[] = {
            { m_sessions, &RemoteCommand::sessions },
            { m_rpc, &RemoteCommand::rpc },
            { m_get, &RemoteCommand::get },
            { m_getConfig, &RemoteCommand::getConfig },
            { m_editConfig, &RemoteCommand::editConfig },
            { m_notifications, &RemoteCommand::notifications },
            { m_watch, &RemoteCommand::watch },
            { m_close, &RemoteCommand::close },
        };
        for (const auto& [sub, handler] : dispatch) {
            if (sub->parsed()) {
                (command.*handler)();
            }
        }
    } catch (const Failure& f) {
        out << f.document << std::flush;
        for (const auto& line : f.lines) {
            err << Program << ": " << printable(line) << '\n';
        }
        err << std::flush;
        return f.status;
    } catch (const std::exception& e) {
        err << Program << ": " << printable(e.what()) << std::endl;
        return ExitFailure;
    }
    out << buffer.str() << std::flush;
    return 0;
}
} // namespace callhome::cli
