#pragma once
#include <cstddef>
#include <iosfwd>
#include <string>
#include <vector>

namespace callhome::cli {
/**
 * A plain-text table with a header row and left-aligned columns; empty cells print as "-" and control characters
 * in cells are escaped (common/Text.h), so text a device chose cannot drive the operator's terminal.
 */
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

/**
 * A Table for listings of any length, in constant memory: the first `sizingRows` rows are held to size the columns
 * (so a listing of up to that many rows prints exactly as Table would), then printed, and every later row is
 * written as soon as it is added, with those widths. A later cell wider than its column is printed whole and
 * shifts the rest of its own row only (columns stay separated by at least two spaces).
 */
class StreamingTable {
public:
    static constexpr std::size_t DefaultSizingRows = 1000;
    StreamingTable(std::vector<std::string> headers, std::ostream& out, std::size_t sizingRows = DefaultSizingRows);
    void addRow(std::vector<std::string> cells);
    /** Prints what is still held (at least the header). Call once, after the last row. */
    void finish();

private:
    void flushHeld();

    std::vector<std::string> m_headers;
    std::ostream& m_out;
    std::size_t m_sizingRows;
    std::vector<std::vector<std::string>> m_held;
    std::vector<std::size_t> m_widths; ///< empty until the columns are sized
};
} // namespace callhome::cli
