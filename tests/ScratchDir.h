#pragma once
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace callhome::test {
/** A fresh directory under the system temp dir, removed with its contents; for tests that need only files. */
struct ScratchDir {
    std::filesystem::path path;

    ScratchDir()
    {
        std::string tmpl = (std::filesystem::temp_directory_path() / "callhome-test-XXXXXX").string();
        if (!::mkdtemp(tmpl.data())) {
            throw std::runtime_error("mkdtemp failed");
        }
        path = tmpl;
    }
    ~ScratchDir()
    {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;

    /** Where the tests keep their inventory. */
    std::string db() const { return (path / "inventory.sqlite").string(); }
};
} // namespace callhome::test
