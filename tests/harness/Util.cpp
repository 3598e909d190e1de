#include "harness/Util.h"
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <pwd.h>
#include <sstream>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace callhome::test {
void waitFor(const std::function<bool()>& condition, std::chrono::milliseconds deadline, const std::string& what)
{
    const auto until = Clock::now() + deadline;
    while (true) {
        if (condition()) {
            return;
        }
        if (Clock::now() >= until) {
            throw HarnessError("timed out after " + std::to_string(deadline.count()) + " ms waiting for " + what);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

std::string readFile(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw HarnessError("cannot read " + path + ": " + std::strerror(errno));
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string readFileIfExists(const std::string& path)
{
    if (::access(path.c_str(), F_OK) != 0) {
        return {};
    }
    return readFile(path);
}

void writeFile(const std::string& path, const std::string& content, unsigned mode)
{
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        if (!out) {
            throw HarnessError("cannot write " + path + ": " + std::strerror(errno));
        }
        out << content;
        if (!out.flush()) {
            throw HarnessError("cannot write " + path);
        }
    }
    if (::chmod(path.c_str(), mode) != 0) {
        throw HarnessError("cannot chmod " + path + ": " + std::strerror(errno));
    }
}

int countLinesContaining(const std::string& path, const std::string& needle)
{
    std::istringstream in(readFileIfExists(path));
    int count = 0;
    for (std::string line; std::getline(in, line);) {
        if (line.find(needle) != std::string::npos) {
            ++count;
        }
    }
    return count;
}

std::string currentUserName()
{
    const auto* pw = ::getpwuid(::getuid());
    if (!pw) {
        throw HarnessError("getpwuid(" + std::to_string(::getuid()) + ") found no user");
    }
    return pw->pw_name;
}

void ignoreSigpipe()
{
    struct sigaction sa { };
    sa.sa_handler = SIG_IGN;
    ::sigemptyset(&sa.sa_mask);
    ::sigaction(SIGPIPE, &sa, nullptr);
}
} // namespace callhome::test
