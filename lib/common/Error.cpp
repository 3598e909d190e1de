#include "common/Error.h"

namespace callhome {
Error::Error(const std::string& message)
    : std::runtime_error(message)
{ }

LibraryError::LibraryError(const std::string& call, const std::string& libraryMessage)
    : Error(call + ": " + libraryMessage)
    , m_call(call)
{ }
} // namespace callhome
