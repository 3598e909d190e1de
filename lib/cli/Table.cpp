#include "cli/Table.h"
#include "common/Text.h"
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

/** Escapes control characters and writes "-" for an empty cell; throws on a wrong number of cells. */
void prepare(std::vector<std::string>& cells, std::size_t columns)
{
    if (cells.size() != columns) {
        throw std::logic_error("Table::addRow: wrong number of cells");
    }
    for (auto& cell : cells) {
        cell = escapeControl(cell);
        if (cell.empty()) {
            cell.push_back('-'); // not `cell = "-"`: GCC 12 reports a false -Wrestrict for that
        }
    }
}

std::vector<std::size_t> widthsOf(
    const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows)
{
    std::vector<std::size_t> widths;
    for (const auto& h : headers) {
        widths.push_back(width(h));
    }
    for (const auto& row : rows) {
        for (std::size_t i = 0; i < row.size(); ++i) {
            widths[i] = std::max(widths[i], width(row[i]));
        }
    }
    return widths;
}

void printLine(std::ostream& out, const std::vector<std::string>& cells, const std::vector<std::size_t>& widths)
{
    std::string text;
    for (std::size_t i = 0; i < cells.size(); ++i) {
        if (i > 0) {
            text += "  ";
        }
        text += cells[i];
        if (i + 1 < cells.size()) {
            const auto w = width(cells[i]);
            text.append(widths[i] > w ? widths[i] - w : 0, ' ');
        }
    }
    // The last column may be empty-ish padding from earlier columns only; never leave trailing blanks.
    text.erase(text.find_last_not_of(' ') + 1);
    out << text << '\n';
}
} // namespace

Table::Table(std::vector<std::string> headers)
    : m_headers(std::move(headers))
{ }

void Table::addRow(std::vector<std::string> cells)
{
    prepare(cells, m_headers.size());
    m_rows.push_back(std::move(cells));
}

void Table::print(std::ostream& out) const
{
    const auto widths = widthsOf(m_headers, m_rows);
    printLine(out, m_headers, widths);
    for (const auto& row : m_rows) {
        printLine(out, row, widths);
    }
}

StreamingTable::StreamingTable(std::vector<std::string> headers, std::ostream& out, std::size_t sizingRows)
    : m_headers(std::move(headers))
    , m_out(out)
    , m_sizingRows(std::max<std::size_t>(sizingRows, 1))
{ }

void StreamingTable::addRow(std::vector<std::string> cells)
{
    prepare(cells, m_headers.size());
    if (!m_widths.empty()) {
        printLine(m_out, cells, m_widths);
        return;
    }
    m_held.push_back(std::move(cells));
    if (m_held.size() >= m_sizingRows) {
        flushHeld();
    }
}

void StreamingTable::finish()
{
    if (m_widths.empty()) {
        flushHeld();
    }
    m_out.flush();
}

void StreamingTable::flushHeld()
{
    m_widths = widthsOf(m_headers, m_held);
    printLine(m_out, m_headers, m_widths);
    for (const auto& row : m_held) {
        printLine(m_out, row, m_widths);
    }
    m_held.clear();
    m_held.shrink_to_fit();
}
} // namespace callhome::cli
