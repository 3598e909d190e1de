// Log lines carry text devices chose; the sink escapes control characters before anything reaches stderr.
#include "common/Log.h"
#include "harness/TempDir.h"
#include "harness/Util.h"
#include <catch2/catch.hpp>
#include <fcntl.h>
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
