#pragma once
#include <stdexcept>
#include <string>

namespace callhome {
/** Base of every exception callhome throws; what() is one line fit for an operator. */
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message);
};

/** A C library call failed: carries the call's name and the library's own message. */
class LibraryError : public Error {
public:
    LibraryError(const std::string& call, const std::string& libraryMessage);
    const std::string& call() const noexcept { return m_call; }

private:
    std::string m_call;
};

/** The operator's input (CLI argument, config file, database reference) is wrong. */
class UsageError : public Error {
public:
    using Error::Error;
};
} // namespace callhome
