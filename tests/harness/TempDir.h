#pragma once
#include <string>

namespace callhome::test {
/** A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction unless CALLHOME_KEEP_TEST_DIRS
 * is set. */
class TempDir {
public:
    explicit TempDir(const std::string& prefix = "callhome-test");
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir();

    const std::string& path() const noexcept { return m_path; }
    /** path() + "/" + name */
    std::string file(const std::string& name) const;

private:
    std::string m_path;
};
} // namespace callhome::test
