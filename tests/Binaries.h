#pragma once
// The real callhomed and callhomectl binaries of this build, run as processes by the end-to-end tests.
#include "harness/Process.h"
#include "harness/TempDir.h"
#include "harness/Util.h"
#include <catch2/catch.hpp>
#include <string>
#include <vector>

namespace callhome::test {
inline const std::string kCallhomed = std::string(CALLHOME_BINARY_DIR) + "/app/callhomed";
inline const std::string kCallhomectl = std::string(CALLHOME_BINARY_DIR) + "/app/callhomectl";

/** How a command ended, and what it printed. */
struct CommandResult {
    int status;
    std::string out;
    std::string err;
};

/** Runs `argv` to its end (at most 20 s), its output kept in files under `dir`. */
inline CommandResult runCommand(const TempDir& dir, std::vector<std::string> argv)
{
    static int n = 0;
    auto tag = std::to_string(++n);
    ProcessSpec spec { std::move(argv), dir.file("cmd" + tag + ".out"), dir.file("cmd" + tag + ".err") };
    Process p(spec);
    auto status = p.waitExit(std::chrono::seconds(20));
    REQUIRE(status.has_value());
    return { *status, readFileIfExists(spec.stdoutPath), readFileIfExists(spec.stderrPath) };
}
} // namespace callhome::test
