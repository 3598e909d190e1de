#pragma once
#include <iosfwd>

namespace callhome::cli {
/**
 * Runs callhomectl with the given command line: parses it, does the work and writes the result to `out`.
 * Returns the process exit status: 0 on success, 1 when the command failed (unknown device, invalid transition,
 * missing or refused inventory, ...), 2 when the command line itself is wrong. On failure exactly one line
 * "callhomectl: <message>" goes to `err` and nothing to `out`. Never throws.
 */
int run(int argc, char** argv, std::ostream& out, std::ostream& err);
} // namespace callhome::cli
