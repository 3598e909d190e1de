#pragma once
// callhomectl run in-process (cli::run) by the CLI tests, and the checks they share.
#include "ScratchDir.h"
#include "TestInventory.h"
#include "cli/Cli.h"
#include "inventory/Inventory.h"
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace callhome::test {
/** How one callhomectl run ended and what it printed. */
struct CliResult {
    int code;
    std::string out;
    std::string err;
};

inline CliResult ctl(std::vector<std::string> args)
{
    args.insert(args.begin(), "callhomectl");
    std::vector<char*> argv;
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    std::ostringstream out, err;
    int code = cli::run(static_cast<int>(args.size()), argv.data(), out, err);
    return { code, out.str(), err.str() };
}

/** A failed command: non-zero, nothing on stdout, exactly one "callhomectl: ..." line on stderr. */
inline void requireOneLineError(const CliResult& r, const std::string& mentions)
{
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    REQUIRE(r.code != 0);
    REQUIRE(r.out.empty());
    REQUIRE(r.err.rfind("callhomectl: ", 0) == 0);
    REQUIRE(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    REQUIRE(r.err.back() == '\n');
    REQUIRE_THAT(r.err, Catch::Contains(mentions, Catch::CaseSensitive::No));
}

/** The lines of `text`, without their newlines. */
inline std::vector<std::string> lines(const std::string& text)
{
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        out.push_back(line);
    }
    return out;
}
/**
 * A fresh inventory in a scratch state directory, and callhomectl run against it. The backend as TestInventory.h
 * chooses: STATE/inventory.db, or a database of the test process's PostgreSQL server (then run() adds --db).
 */
struct CliInventory {
    ScratchDir dir;
    std::string state = (dir.path / "state").string();
    bool postgres = testBackend() == TestBackend::Postgres;
    std::string db = postgres ? PgServer::shared().createDatabase() : (dir.path / "state" / "inventory.db").string();
    std::unique_ptr<inventory::Inventory> inv;

    CliInventory()
    {
        std::filesystem::create_directories(state);
        inv = inventory::openInventory(db, inventory::OpenMode::CreateAndMigrate);
    }

    /** callhomectl with --state-dir of this inventory (and --db on PostgreSQL) before `args`. */
    CliResult run(std::vector<std::string> args)
    {
        if (postgres) {
            args.insert(args.begin(), { "--db", db });
        }
        args.insert(args.begin(), { "--state-dir", state });
        return ctl(std::move(args));
    }
};
} // namespace callhome::test
