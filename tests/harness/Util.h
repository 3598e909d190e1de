#pragma once
#include "common/Error.h"
#include <chrono>
#include <functional>
#include <string>

namespace callhome::test {
/** A harness step failed (a peer did not start, a deadline passed, a file could not be written). */
class HarnessError : public callhome::Error {
public:
    using Error::Error;
};

using Clock = std::chrono::steady_clock;

/** Polls `condition` every ~20 ms until it holds; throws HarnessError naming `what` when `deadline` passes first. */
void waitFor(const std::function<bool()>& condition, std::chrono::milliseconds deadline, const std::string& what);
/** The whole file; throws HarnessError when it cannot be read. */
std::string readFile(const std::string& path);
/** Like readFile, but an absent file reads as "" (logs that a peer has not created yet). */
std::string readFileIfExists(const std::string& path);
/** Writes `content` to `path` with `mode`; throws HarnessError. */
void writeFile(const std::string& path, const std::string& content, unsigned mode = 0644);
/** Number of lines of the file at `path` that contain `needle` (0 when the file does not exist). */
int countLinesContaining(const std::string& path, const std::string& needle);
/** Login name of the current uid (getpwuid(getuid())): the SSH user the peers accept. */
std::string currentUserName();
/** Ignores SIGPIPE in this process, so that a peer dropping a connection cannot kill a test. Idempotent. */
void ignoreSigpipe();
} // namespace callhome::test
