#pragma once
#include "common/Error.h"
#include <cstddef>
#include <string>

namespace callhome::inventory {
/**
 * Inventory::expect refused one entry of its list (bad serial or name, serial or name already taken): what() says
 * "entry N: <problem>"; position() and problem() let a caller name its own source instead (a CSV file's line).
 */
class ExpectError : public UsageError {
public:
    ExpectError(std::size_t position, const std::string& problem)
        : UsageError("entry " + std::to_string(position) + ": " + problem)
        , m_position(position)
        , m_problem(problem)
    { }
    std::size_t position() const noexcept { return m_position; } ///< 1-based index into expect()'s argument
    const std::string& problem() const noexcept { return m_problem; }

private:
    std::size_t m_position;
    std::string m_problem;
};
} // namespace callhome::inventory
