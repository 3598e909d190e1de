#include "harness/TempDir.h"
#include "harness/Util.h"
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

namespace callhome::test {
TempDir::TempDir(const std::string& prefix)
{
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/" + prefix + ".XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) {
        throw HarnessError("mkdtemp " + pattern + ": " + std::strerror(errno));
    }
    m_path = buf.data();
}

TempDir::~TempDir()
{
    if (std::getenv("CALLHOME_KEEP_TEST_DIRS")) {
        return;
    }
    std::error_code ec; // a destructor must not throw; a leftover directory is harmless
    std::filesystem::remove_all(m_path, ec);
}

std::string TempDir::file(const std::string& name) const
{
    return m_path + "/" + name;
}
} // namespace callhome::test
