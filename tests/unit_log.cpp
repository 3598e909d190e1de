// Log lines carry text devices chose; the sink escapes control characters before anything reaches stderr.
#include "common/Error.h"
#include "common/Log.h"
#include "harness/TempDir.h"
#include "harness/Util.h"
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fcntl.h>
#include <functional>
#include <sys/stat.h>
#include <unistd.h>

using namespace callhome;

TEST_CASE("control characters in a log message are escaped before they reach stderr")
{
    test::TempDir dir("callhome-unit-log");
    auto path = dir.file("stderr");
    int saved = ::dup(2);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    ::dup2(fd, 2);
    ::close(fd);
    log::init(spdlog::level::info);
    auto logger = log::get(log::Ssh);
    logger->warn("peer said: {}", std::string("Bye\x1b[2J\r\nFAKE line\x9b"));
    logger->info("plain text stays as it is: caf\xc3\xa9");
    logger->flush();
    ::dup2(saved, 2);
    ::close(saved);
    auto text = test::readFileIfExists(path);
    INFO(text);
    CHECK(text.find('\x1b') == std::string::npos);
    CHECK(text.find("Bye\\x1B[2J\\x0D\\x0AFAKE line\\x9B") != std::string::npos);
    CHECK(text.find("caf\xc3\xa9") != std::string::npos);
    // one line per message: the device's CR LF did not start a forged line of its own
    CHECK(std::count(text.begin(), text.end(), '\n') == 2);
}

namespace {
/** Runs `fn` with stderr going to a file; returns what was written. */
std::string captureStderr(const test::TempDir& dir, const std::string& name, const std::function<void()>& fn)
{
    auto path = dir.file(name);
    int saved = ::dup(2);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    ::dup2(fd, 2);
    ::close(fd);
    fn();
    ::dup2(saved, 2);
    ::close(saved);
    return test::readFileIfExists(path);
}
} // namespace

TEST_CASE("log levels: LEVEL and SUBSYSTEM=LEVEL, comma-separated, later items win")
{
    log::Levels l;
    log::parseLevels("info", l);
    CHECK(l.all == spdlog::level::info);
    CHECK(l.subsystems.empty());
    log::parseLevels("inventory=debug,netconf=trace", l);
    log::parseLevels("warning,netconf=error", l); // a second --log-level merges
    CHECK(l.all == spdlog::level::warn);
    CHECK(l.of(log::Inventory) == spdlog::level::debug);
    CHECK(l.of(log::Netconf) == spdlog::level::err);
    CHECK(l.of(log::Ssh) == spdlog::level::warn);
    CHECK(l.toString() == "warning,inventory=debug,netconf=error");
    CHECK(log::Levels {}.of(log::Main) == spdlog::level::info);
    CHECK(log::Levels {}.toString() == "info");

    for (const char* bad : { "", "loud", "inventory=", "=debug", "info,", "database=debug", "inventory=loud" }) {
        INFO(bad);
        log::Levels untouched;
        CHECK_THROWS_AS(log::parseLevels(bad, untouched), UsageError);
    }
    CHECK_THROWS_WITH(log::parseLevels("database=debug", l),
        Catch::Contains("unknown subsystem 'database'") && Catch::Contains("listener, ssh, identity"));
    CHECK_THROWS_WITH(log::parseLevels("ssh=loud", l), Catch::Contains("unknown log level 'loud'"));
}

TEST_CASE("log levels: setLevels applies per subsystem at once, to existing and new loggers")
{
    test::TempDir dir("callhome-unit-log");
    auto text = captureStderr(dir, "levels", [] {
        log::init(spdlog::level::info);
        log::get(log::Inventory)->debug("inventory debug before");
        log::Levels l;
        log::parseLevels("warning,inventory=debug", l);
        log::setLevels(l);
        log::get(log::Inventory)->debug("inventory debug after");
        log::get(log::Ssh)->info("ssh info after");
        log::get(log::Ssh)->warn("ssh warning after");
        log::get("created-later")->info("new logger info");
        log::get("created-later")->warn("new logger warning");
        spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& logger) { logger->flush(); });
        CHECK(log::levels() == l);
        log::init(spdlog::level::info);
    });
    INFO(text);
    CHECK(text.find("inventory debug before") == std::string::npos);
    CHECK(text.find("inventory: inventory debug after") != std::string::npos);
    CHECK(text.find("ssh info after") == std::string::npos);
    CHECK(text.find("ssh: ssh warning after") != std::string::npos);
    CHECK(text.find("new logger info") == std::string::npos);
    CHECK(text.find("new logger warning") != std::string::npos);
}

TEST_CASE("journal: chosen when JOURNAL_STREAM names the file stderr is open on")
{
    test::TempDir dir("callhome-unit-log");
    auto path = dir.file("stream");
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    struct stat st { };
    REQUIRE(::fstat(fd, &st) == 0);
    auto match = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
    CHECK(log::isJournalStream(match.c_str(), fd));
    CHECK_FALSE(log::isJournalStream((std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1)).c_str(), fd));
    CHECK_FALSE(log::isJournalStream((match + "x").c_str(), fd));
    CHECK_FALSE(log::isJournalStream("garbage", fd));
    CHECK_FALSE(log::isJournalStream("", fd));
    CHECK_FALSE(log::isJournalStream(nullptr, fd));

    // Output::Auto reads JOURNAL_STREAM against fd 2: stderr redirected to the file
    std::optional<std::string> saved;
    if (const char* v = std::getenv("JOURNAL_STREAM")) {
        saved = v;
    }
    int savedErr = ::dup(2);
    ::dup2(fd, 2);
    ::setenv("JOURNAL_STREAM", match.c_str(), 1);
    auto chosen = log::init(log::Levels {}, log::Output::Auto);
    ::setenv("JOURNAL_STREAM", "1:1", 1);
    auto notChosen = log::init(log::Levels {}, log::Output::Auto);
    auto forced = log::init(log::Levels {}, log::Output::Stderr);
    ::dup2(savedErr, 2);
    ::close(savedErr);
    ::close(fd);
    if (saved) {
        ::setenv("JOURNAL_STREAM", saved->c_str(), 1);
    } else {
        ::unsetenv("JOURNAL_STREAM");
    }
    CHECK(chosen == log::Output::Journal);
    CHECK(notChosen == log::Output::Stderr);
    CHECK(forced == log::Output::Stderr);
}
