#include "common/Secret.h"
#include <cstring>
#include <string.h>

namespace callhome {
void wipe(std::string& secret) noexcept
{
    if (!secret.empty()) {
        ::explicit_bzero(secret.data(), secret.size());
    }
    secret.clear();
}
} // namespace callhome
