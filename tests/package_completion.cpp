// The bash completion of callhomectl (packaging/bash-completion/callhomectl), run by bash itself: the completion file
// is sourced, COMP_WORDS / COMP_CWORD set as readline would, the function called and COMPREPLY printed. Subcommands
// and options are compared with callhomectl's --help; device names come from a real inventory made with callhomectl.
#include "Binaries.h"
#include "harness/TempDir.h"
#include "harness/Util.h"
#include "inventory/Inventory.h"
#include <catch2/catch.hpp>
#include <filesystem>
#include <set>
#include <sstream>

using namespace callhome::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {
const std::string kCompletion = std::string(CALLHOME_SOURCE_DIR) + "/packaging/bash-completion/callhomectl";

using Words = std::set<std::string>;

/** Single-quotes `s` for bash. */
std::string quote(const std::string& s)
{
    std::string out = "'";
    for (char c : s) {
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    return out + "'";
}

struct Completion {
    int status;
    Words words;
    std::string err;
};

/** Completes the last of `words` (the one being typed) as bash would for `callhomectl words...`, with the build's
 * callhomectl first in PATH and `env` set. */
Completion complete(
    const TempDir& dir, const std::vector<std::string>& words, std::map<std::string, std::string> env = {})
{
    std::string script = "set -u\nsource " + quote(kCompletion) + "\nCOMP_WORDS=(callhomectl";
    for (const auto& w : words) {
        script += " " + quote(w);
    }
    script += ")\nCOMP_CWORD=" + std::to_string(words.size()) + "\n";
    script += "_callhomectl callhomectl " + quote(words.back()) + " "
        + quote(words.size() > 1 ? words[words.size() - 2] : std::string("callhomectl")) + "\n";
    script += "printf '%s\\n' \"${COMPREPLY[@]}\"\n";
    writeFile(dir.file("complete.sh"), script);

    env["PATH"] = fs::path(kCallhomectl).parent_path().string() + ":" + std::getenv("PATH");
    static int n = 0;
    auto tag = std::to_string(++n);
    ProcessSpec spec { { "bash", "--norc", "--noprofile", dir.file("complete.sh") }, dir.file("c" + tag + ".out"),
        dir.file("c" + tag + ".err"), env, dir.path() };
    Process p(spec);
    auto status = p.waitExit(20s);
    REQUIRE(status.has_value());
    Completion c { *status, {}, readFileIfExists(spec.stderrPath) };
    std::istringstream in(readFileIfExists(spec.stdoutPath));
    for (std::string line; std::getline(in, line);) {
        if (!line.empty()) {
            c.words.insert(line);
        }
    }
    return c;
}

/** Option names ("--state", "-y") and subcommand names in CLI11's --help output (entries start in column 3). */
std::pair<Words, Words> helpOf(const TempDir& dir, std::vector<std::string> argv)
{
    argv.push_back("--help");
    auto r = runCommand(dir, argv);
    REQUIRE(r.status == 0);
    Words options, subcommands;
    std::istringstream in(r.out);
    std::string section;
    for (std::string line; std::getline(in, line);) {
        if (!line.empty() && line[0] != ' ') {
            section = line;
        } else if (line.size() > 2 && line.compare(0, 2, "  ") == 0 && line[2] != ' ') {
            auto first = line.substr(2, line.find(' ', 2) - 2);
            if (section == "Options:") {
                std::istringstream names(first);
                for (std::string name; std::getline(names, name, ',');) {
                    options.insert(name);
                }
            } else if (section == "Subcommands:") {
                subcommands.insert(first);
            }
        }
    }
    REQUIRE(options.count("--help"));
    return { options, subcommands };
}

/** A real inventory with three named devices in the state directory of `dir`: the file created as callhomed creates
 * it (callhomectl never creates one), the devices added by the callhomectl binary. */
std::string makeInventory(const TempDir& dir)
{
    auto state = dir.file("state");
    fs::create_directories(state);
    callhome::inventory::openSqlite(state + "/inventory.db");
    for (const auto& args : std::vector<std::vector<std::string>> {
             { "expect", "--fingerprint", "SHA256:w3QUYXeWI5ztTav76GcAtTyK1eD8w28WbaC/8v5lfh0", "--name", "edge-7" },
             { "expect", "--fingerprint", "SHA256:x3QUYXeWI5ztTav76GcAtTyK1eD8w28WbaC/8v5lfh0", "--name", "edge-8" },
             { "expect", "--serial", "SN0001", "--manufacturer", "example", "--name", "core-1" },
         }) {
        std::vector<std::string> argv { kCallhomectl, "--state-dir", state };
        argv.insert(argv.end(), args.begin(), args.end());
        auto r = runCommand(dir, argv);
        INFO(r.err);
        REQUIRE(r.status == 0);
    }
    return state;
}
} // namespace

TEST_CASE("bash completion of callhomectl")
{
    TempDir dir("callhome-completion");
    auto [globalOptions, subcommands] = helpOf(dir, { kCallhomectl });
    REQUIRE(subcommands.size() >= 20);

    SECTION("subcommands and global options: exactly those of --help")
    {
        auto c = complete(dir, { "" });
        INFO(c.err);
        REQUIRE(c.status == 0);
        CHECK(c.words == subcommands);
        CHECK(complete(dir, { "get" }).words == Words { "get", "get-config" });
        Words globals = globalOptions;
        globals.erase("-h");
        CHECK(complete(dir, { "--" }).words == globals);
    }

    SECTION("each subcommand's options: exactly its --help's, plus the global ones")
    {
        Words globals = globalOptions;
        globals.erase("-h");
        for (const auto& command : subcommands) {
            INFO("callhomectl " << command);
            auto [options, unused] = helpOf(dir, { kCallhomectl, command });
            options.erase("-h");
            Words want = options;
            want.insert(globals.begin(), globals.end());
            auto c = complete(dir, { command, "-" });
            CHECK(c.words == want);
            CHECK(c.err.empty());
        }
    }

    SECTION("option values")
    {
        CHECK(complete(dir, { "devices", "--state", "" }).words
            == Words { "pending", "approved", "rejected", "revoked" });
        CHECK(complete(dir, { "devices", "--transport", "t" }).words == Words { "tls" });
        CHECK(
            complete(dir, { "get-config", "r1", "--source", "" }).words == Words { "running", "candidate", "startup" });
        CHECK(complete(dir, { "devices", "--limit", "" }).words.empty());
    }

    SECTION("device names from the inventory the command line or the environment names")
    {
        auto state = makeInventory(dir);
        const Words all { "edge-7", "edge-8", "core-1" };
        CHECK(complete(dir, { "--state-dir", state, "show", "" }).words == all);
        CHECK(complete(dir, { "--state-dir", state, "approve", "e" }).words == Words { "edge-7", "edge-8" });
        // Global options after the subcommand, as callhomectl allows them.
        CHECK(complete(dir, { "rename", "--state-dir", state, "" }).words == all);
        CHECK(complete(dir, { "rename", "--state-dir", state, "edge-7", "" }).words.empty()); // NEWNAME
        CHECK(
            complete(dir, { "--db", state + "/inventory.db", "events", "--device", "c" }).words == Words { "core-1" });
        CHECK(complete(dir, { "close", "c" }, { { "CALLHOME_STATE_DIR", state } }).words == Words { "core-1" });
        CHECK(complete(dir, { "--state-dir", state, "devices", "--state", "pending", "" }).words.empty());

        // rpc DEVICE FILE: the second argument is a file.
        writeFile(dir.file("op.xml"), "<get/>");
        CHECK(complete(dir, { "--state-dir", state, "rpc", "edge-7", "op" }).words == Words { "op.xml" });
    }

    SECTION("no inventory: no device names, no error")
    {
        auto c = complete(dir, { "--state-dir", dir.file("nowhere"), "show", "" });
        CHECK(c.status == 0);
        CHECK(c.words.empty());
        CHECK(c.err.empty());
        // The default ./state of the directory completion runs in does not exist either.
        auto d = complete(dir, { "show", "" });
        CHECK(d.words.empty());
        CHECK(d.err.empty());
    }
}
