#pragma once
// The real callhomed and callhomectl binaries of this build, run as processes by the end-to-end tests.
#include "harness/Process.h"
#include "harness/TempDir.h"
#include "harness/Util.h"
#include <catch2/catch.hpp>
#include <chrono>
#include <regex>
#include <string>
#include <vector>

namespace callhome::test {
inline const std::string kCallhomed = std::string(CALLHOME_BINARY_DIR) + "/app/callhomed";
inline const std::string kCallhomectl = std::string(CALLHOME_BINARY_DIR) + "/app/callhomectl";

/**
 * Waits until the callhomed of `process` (started with --listen ssh:127.0.0.1:0, logging to `log`) says which port
 * it listens on, and returns it; fails the test if callhomed exits first or takes more than 10 s.
 */
inline uint16_t waitListening(Process& process, const std::string& log)
{
    static const std::regex listening(R"(listening for call home on ssh:127\.0\.0\.1:(\d+))");
    uint16_t port = 0;
    waitFor(
        [&] {
            std::smatch m;
            auto text = readFileIfExists(log);
            if (std::regex_search(text, m, listening)) {
                port = static_cast<uint16_t>(std::stoi(m[1]));
                return true;
            }
            REQUIRE(process.running());
            return false;
        },
        std::chrono::seconds(10), "callhomed listening");
    return port;
}

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
