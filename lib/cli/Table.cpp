#include "cli/Table.h"
#include <algorithm>
#include <ostream>
#include <stdexcept>

namespace callhome::cli {
namespace {
/** Display width in code points, so that a UTF-8 device name does not shift the columns after it. */
std::size_t width(const std::string& s)
{
    return static_cast<std::size_t>(
        std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}
} // namespace

Table::Table(std::vector<std::string> headers)
    : m_headers(std::move(headers))
{ }

void Table::addRow(std::vector<std::string> cells)
{
    if (cells.size() != m_headers.size()) {
        throw std::logic_error("Table::addRow: wrong number of cells");
    }
    for (auto& cell : cells) {
        if (cell.empty()) {
            cell.push_back('-'); // not `cell = "-"`: GCC 12 reports a false -Wrestrict for that
        }
    }
    m_rows.push_back(std::move(cells));
}

void Table::print(std::ostream& out) const
{
    std::vector<std::size_t> widths;
    for (const auto& h : m_headers) {
        widths.push_back(width(h));
    }
    for (const auto& row : m_rows) {
        for (std::size_t i = 0; i < row.size(); ++i) {
            widths[i] = std::max(widths[i], width(row[i]));
        }
    }
    auto line = [&](const std::vector<std::string>& cells) {
        std::string text;
        for (std::size_t i = 0; i < cells.size(); ++i) {
            if (i > 0) {
                text += "  ";
            }
            text += cells[i];
            if (i + 1 < cells.size()) {
                text.append(widths[i] - width(cells[i]), ' ');
            }
        }
        // The last column may be empty-ish padding from earlier columns only; never leave trailing blanks.
        text.erase(text.find_last_not_of(' ') + 1);
        out << text << '\n';
    };
    line(m_headers);
    for (const auto& row : m_rows) {
        line(row);
    }
}
} // namespace callhome::cli
