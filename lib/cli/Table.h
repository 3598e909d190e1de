#pragma once
#include <iosfwd>
#include <string>
#include <vector>

namespace callhome::cli {
/** A plain-text table with a header row and left-aligned columns; empty cells print as "-". */
class Table {
public:
    explicit Table(std::vector<std::string> headers);
    /** Adds a row; it must have as many cells as there are headers. */
    void addRow(std::vector<std::string> cells);
    std::size_t rows() const noexcept { return m_rows.size(); }
    /** Writes the header and every row; columns are separated by two spaces, lines have no trailing blanks. */
    void print(std::ostream& out) const;

private:
    std::vector<std::string> m_headers;
    std::vector<std::vector<std::string>> m_rows;
};
} // namespace callhome::cli
