#pragma once
// callhomectl run in-process (cli::run) by the CLI tests, and the checks they share.
#include "cli/Cli.h"
#include <algorithm>
#include <catch2/catch.hpp>
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
} // namespace callhome::test
