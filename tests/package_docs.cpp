// The man pages (man/*.scd) kept in step with the binaries and the configuration module: the options of
// callhomed(8), callhome-sim(1) and callhomectl(1) are exactly those of their --help (globally and per subcommand,
// every subcommand documented), and callhome-config(5) documents every leaf of schemas/callhome-config.yang and
// nothing else.
#include "Binaries.h"
#include "harness/TempDir.h"
#include "harness/Util.h"
#include <catch2/catch.hpp>
#include <libyang/libyang.h>
#include <map>
#include <regex>
#include <set>
#include <sstream>

using namespace callhome::test;

namespace {
const std::string kSourceDir = CALLHOME_SOURCE_DIR;
const std::string kCallhomeSim = std::string(CALLHOME_BINARY_DIR) + "/app/callhome-sim";

using Names = std::set<std::string>;

/** CLI11's help output: the option names ("-h", "--help", ...) of its "Options:" section and the subcommand names
 * of its "Subcommands:" section. Entries start in column 3; deeper lines continue a description. */
struct Help {
    Names options;
    Names subcommands;
};

Help parseHelp(const std::string& text)
{
    Help h;
    std::istringstream in(text);
    std::string section;
    for (std::string line; std::getline(in, line);) {
        if (!line.empty() && line[0] != ' ') {
            section = line;
            continue;
        }
        if (line.size() < 3 || line.compare(0, 2, "  ") != 0 || line[2] == ' ') {
            continue;
        }
        auto first = line.substr(2, line.find(' ', 2) == std::string::npos ? std::string::npos : line.find(' ', 2) - 2);
        if (section == "Options:") {
            std::istringstream names(first);
            for (std::string n; std::getline(names, n, ',');) {
                h.options.insert(n);
            }
        } else if (section == "Subcommands:") {
            h.subcommands.insert(first);
        }
    }
    return h;
}

Help helpOf(const TempDir& dir, std::vector<std::string> argv)
{
    argv.push_back("--help");
    auto r = runCommand(dir, argv);
    INFO(r.err);
    REQUIRE(r.status == 0);
    auto h = parseHelp(r.out);
    REQUIRE(h.options.count("--help") == 1); // the parser understood this output
    return h;
}

/** An scdoc page split at "# " sections; `sub` splits each section at "## " subsections. */
struct ManPage {
    std::map<std::string, std::string> sections;
    std::map<std::string, std::map<std::string, std::string>> sub;
};

ManPage parseMan(const std::string& file)
{
    ManPage m;
    std::istringstream in(readFile(kSourceDir + "/man/" + file));
    std::string section, subsection;
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("# ", 0) == 0) {
            section = line.substr(2);
            subsection.clear();
            continue;
        }
        if (line.rfind("## ", 0) == 0) {
            subsection = line.substr(3);
            m.sub[section][subsection];
            continue;
        }
        m.sections[section] += line + "\n";
        if (!subsection.empty()) {
            m.sub[section][subsection] += line + "\n";
        }
    }
    return m;
}

/** The options a man page text names in bold: *--state-dir*, *-y*. */
Names boldOptions(const std::string& text)
{
    static const std::regex option(R"(\*(--?[A-Za-z0-9][A-Za-z0-9-]*)\*)");
    Names out;
    for (std::sregex_iterator it(text.begin(), text.end(), option), end; it != end; ++it) {
        out.insert((*it)[1]);
    }
    return out;
}

Names minus(Names a, const Names& b)
{
    for (const auto& x : b) {
        a.erase(x);
    }
    return a;
}
} // namespace

TEST_CASE("callhomed(8) documents exactly callhomed's options")
{
    TempDir dir("callhome-docs");
    auto help = helpOf(dir, { kCallhomed });
    auto man = parseMan("callhomed.8.scd");
    REQUIRE(man.sections.count("OPTIONS"));
    CHECK(boldOptions(man.sections["OPTIONS"]) == help.options);
    // The synopsis shows every option too.
    CHECK(minus(help.options, { "-h" }) == boldOptions(man.sections["SYNOPSIS"]));
}

TEST_CASE("callhome-sim(1) documents exactly callhome-sim's options")
{
    TempDir dir("callhome-docs");
    auto help = helpOf(dir, { kCallhomeSim });
    REQUIRE(help.options.size() >= 20);
    auto man = parseMan("callhome-sim.1.scd");
    CHECK(boldOptions(man.sections["OPTIONS"]) == help.options);
}

TEST_CASE("callhomectl(1) documents exactly callhomectl's global options, subcommands and their options")
{
    TempDir dir("callhome-docs");
    auto help = helpOf(dir, { kCallhomectl });
    REQUIRE(help.subcommands.size() >= 20);
    auto man = parseMan("callhomectl.1.scd");
    CHECK(boldOptions(man.sections["OPTIONS"]) == help.options);

    Names documented;
    for (const auto& [name, text] : man.sub["COMMANDS"]) {
        documented.insert(name);
    }
    CHECK(documented == help.subcommands);

    for (const auto& command : help.subcommands) {
        auto sub = helpOf(dir, { kCallhomectl, command });
        INFO("callhomectl " << command);
        // A command's text may mention global options (--json); its own are exactly those of its --help.
        CHECK(minus(boldOptions(man.sub["COMMANDS"][command]), help.options) == minus(sub.options, { "-h", "--help" }));
    }
}

TEST_CASE("callhome-config(5) documents every leaf of the configuration module, and only those")
{
    ly_ctx* ctx = nullptr;
    REQUIRE(ly_ctx_new(nullptr, 0, &ctx) == LY_SUCCESS);
    lys_module* module = nullptr;
    REQUIRE(lys_parse_path(ctx, (kSourceDir + "/schemas/callhome-config.yang").c_str(), LYS_IN_YANG, &module)
        == LY_SUCCESS);

    // Every data node, as its path under /callhome-config:callhome ("tls/manufacturer/name").
    Names leaves, nodes;
    auto collect = [](lysc_node* node, void* data, ly_bool*) -> LY_ERR {
        auto* sets = static_cast<std::pair<Names*, Names*>*>(data);
        char buf[1024];
        if (!lysc_path(node, LYSC_PATH_DATA, buf, sizeof buf)) {
            return LY_EMEM;
        }
        std::string path = buf;
        const std::string top = "/callhome-config:callhome/";
        if (path.rfind(top, 0) != 0) {
            return LY_SUCCESS;
        }
        path = path.substr(top.size());
        sets->second->insert(path);
        if (node->nodetype & (LYS_LEAF | LYS_LEAFLIST)) {
            sets->first->insert(path);
        }
        return LY_SUCCESS;
    };
    std::pair<Names*, Names*> sets { &leaves, &nodes };
    REQUIRE(lysc_module_dfs_full(module, collect, &sets) == LY_SUCCESS);
    ly_ctx_destroy(ctx);
    REQUIRE(leaves.size() >= 45);
    REQUIRE(leaves.count("tls/cert-to-name/map-type"));

    auto page = readFile(kSourceDir + "/man/callhome-config.5.scd");
    for (const auto& leaf : leaves) {
        INFO(leaf);
        CHECK_THAT(page, Catch::Contains("\n*" + leaf + "*\n"));
    }
    // Each definition term (a bold path alone on its line) is a node of the module: nothing stale stays documented.
    static const std::regex term(R"(\n\*([a-z0-9/-]+)\*\n)");
    int terms = 0;
    for (std::sregex_iterator it(page.begin(), page.end(), term), end; it != end; ++it) {
        INFO((*it)[1]);
        CHECK(nodes.count((*it)[1]) == 1);
        ++terms;
    }
    CHECK(terms >= static_cast<int>(leaves.size()));
}
