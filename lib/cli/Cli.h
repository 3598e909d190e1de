#pragma once
#include <iosfwd>

namespace callhome::cli {
/**
 * Runs callhomectl with the given command line: parses it, does the work and writes the result to `out`.
 * Returns the process exit status: 0 on success, 1 when the command failed (unknown device, invalid transition,
 * missing or refused inventory, callhomed not running, ...), 2 when the command line itself is wrong, 3 when the
 * device answered `<rpc-error>` (one stderr line per error; with --json the error document goes to `out`), 4 when the
 * device is not connected. On failure exactly one line "callhomectl: <message>" goes to `err` and nothing to `out`.
 * Output is buffered until the command succeeds, except for the streaming commands (`notifications`, `watch`), which
 * write and flush each message to `out` as it arrives; SIGINT ends them with status 0. The inventory listings
 * (`devices`, `events`) write their rows to `out` as they read them too (constant memory); a database error part way
 * leaves the rows printed before it. Never throws.
 */
int run(int argc, char** argv, std::ostream& out, std::ostream& err);
} // namespace callhome::cli
