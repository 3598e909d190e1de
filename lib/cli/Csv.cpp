#include "cli/Csv.h"
#include "common/Error.h"
#include <algorithm>
#include <array>
#include <cctype>
#include <fmt/format.h>
#include <functional>
#include <istream>
#include <optional>
#include <utility>

namespace callhome::cli {
namespace {
constexpr std::string_view Utf8Bom = "\xEF\xBB\xBF";

bool isBlank(char c)
{
    return c == ' ' || c == '\t';
}

std::string trim(const std::string& s)
{
    auto begin = std::find_if_not(s.begin(), s.end(), isBlank);
    auto end = std::find_if_not(s.rbegin(), s.rend(), isBlank).base();
    return begin < end ? std::string(begin, end) : std::string {};
}

std::string lower(std::string s)
{
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

/** Column positions of serial, manufacturer, name; name is optional. */
struct Columns {
    std::size_t serial = 0;
    std::size_t manufacturer = 1;
    std::optional<std::size_t> name = 2;
    std::size_t count = 0; ///< fields a line must have; 0 = 2 or 3 (no header)
};

constexpr std::array<const char*, 3> ColumnNames { "serial", "manufacturer", "name" };

/** A header line names at least one of our columns; it must then name only ours, each once, serial and manufacturer. */
std::optional<Columns> headerColumns(const std::vector<std::string>& fields)
{
    auto known = [](const std::string& f) {
        return std::find(ColumnNames.begin(), ColumnNames.end(), lower(f)) != ColumnNames.end();
    };
    if (std::none_of(fields.begin(), fields.end(),
            [](const std::string& f) { return lower(f) == "serial" || lower(f) == "manufacturer"; })) {
        return std::nullopt;
    }
    Columns c { .name = std::nullopt, .count = fields.size() };
    std::array<bool, 3> seen {};
    for (std::size_t i = 0; i < fields.size(); ++i) {
        if (!known(fields[i])) {
            throw UsageError(
                fmt::format("unknown column \"{}\" in the header (columns: serial, manufacturer, name)", fields[i]));
        }
        auto which = static_cast<std::size_t>(
            std::find(ColumnNames.begin(), ColumnNames.end(), lower(fields[i])) - ColumnNames.begin());
        if (seen[which]) {
            throw UsageError(fmt::format("column \"{}\" appears twice in the header", ColumnNames[which]));
        }
        seen[which] = true;
        switch (which) {
        case 0:
            c.serial = i;
            break;
        case 1:
            c.manufacturer = i;
            break;
        default:
            c.name = i;
        }
    }
    if (!seen[0] || !seen[1]) {
        throw UsageError("the header needs both a serial and a manufacturer column");
    }
    return c;
}
} // namespace

std::vector<std::string> splitCsvRecord(const std::string& record)
{
    std::vector<std::string> fields;
    std::size_t i = 0;
    while (true) {
        while (i < record.size() && isBlank(record[i])) {
            ++i;
        }
        std::string field;
        if (i < record.size() && record[i] == '"') {
            ++i;
            bool closed = false;
            while (i < record.size()) {
                if (record[i] == '"') {
                    if (i + 1 < record.size() && record[i + 1] == '"') {
                        field.push_back('"');
                        i += 2;
                        continue;
                    }
                    closed = true;
                    ++i;
                    break;
                }
                field.push_back(record[i++]);
            }
            if (!closed) {
                throw UsageError(fmt::format(
                    "field {} has no closing quote (line breaks inside fields are not supported)", fields.size() + 1));
            }
            while (i < record.size() && isBlank(record[i])) {
                ++i;
            }
            if (i < record.size() && record[i] != ',') {
                throw UsageError(fmt::format("field {}: text after the closing quote", fields.size() + 1));
            }
        } else {
            auto end = record.find(',', i);
            field = record.substr(i, end == std::string::npos ? std::string::npos : end - i);
            if (field.find('"') != std::string::npos) {
                throw UsageError(fmt::format(
                    "field {}: a quote inside an unquoted field (quote the whole field, double inner quotes)",
                    fields.size() + 1));
            }
            field = trim(field);
            i = end == std::string::npos ? record.size() : end;
        }
        fields.push_back(std::move(field));
        if (i >= record.size()) {
            return fields;
        }
        ++i; // the comma
    }
}

namespace {
/**
 * The line loop both CSV formats share: a UTF-8 BOM on the first line and CR line ends are dropped, blank lines and
 * '#' comments skipped, each record split into fields and handed to `record` with its line number. An error from a
 * line is prefixed with FILE:LINE; a read error is an error too.
 */
void forEachRecord(std::istream& in, const std::string& fileName,
    const std::function<void(std::size_t line, std::vector<std::string> fields)>& record)
{
    std::size_t lineNumber = 0;
    for (std::string line; std::getline(in, line);) {
        ++lineNumber;
        if (lineNumber == 1 && line.starts_with(Utf8Bom)) {
            line.erase(0, Utf8Bom.size()); // spreadsheet exports often start with one
        }
        if (!line.empty() && line.back() == '\r') {
            line.pop_back();
        }
        auto content = trim(line);
        if (content.empty() || content.front() == '#') {
            continue;
        }
        try {
            record(lineNumber, splitCsvRecord(line));
        } catch (const UsageError& e) {
            throw UsageError(fmt::format("{}:{}: {}", fileName, lineNumber, e.what()));
        }
    }
    if (in.bad()) {
        throw UsageError(fmt::format("{}: read error after line {}", fileName, lineNumber));
    }
}
} // namespace

std::vector<ShippingEntry> parseShippingData(std::istream& in, const std::string& fileName)
{
    std::vector<ShippingEntry> out;
    std::optional<Columns> columns;
    forEachRecord(in, fileName, [&](std::size_t lineNumber, std::vector<std::string> fields) {
        if (!columns) {
            if ((columns = headerColumns(fields))) {
                return; // the header
            }
            columns = Columns {};
        }
        if (columns->count == 0 ? (fields.size() < 2 || fields.size() > 3) : fields.size() != columns->count) {
            throw UsageError(fmt::format("expected {} fields ({}), found {}",
                columns->count == 0 ? std::string("2 or 3") : std::to_string(columns->count),
                columns->count == 0 ? "serial, manufacturer, optional name" : "as in the header", fields.size()));
        }
        ShippingEntry entry { .line = lineNumber };
        entry.device.serial = fields[columns->serial];
        entry.device.manufacturer = fields[columns->manufacturer];
        if (columns->name && *columns->name < fields.size() && !fields[*columns->name].empty()) {
            entry.device.name = fields[*columns->name];
        }
        if (entry.device.serial.empty()) {
            throw UsageError("the serial number is empty");
        }
        if (entry.device.manufacturer.empty()) {
            throw UsageError("the manufacturer is empty");
        }
        out.push_back(std::move(entry));
    });
    if (out.empty()) {
        throw UsageError(fileName + ": no devices in the file (expected lines of serial,manufacturer[,name])");
    }
    return out;
}

std::vector<ShippingEntry> parseImportData(std::istream& in, const std::string& fileName)
{
    std::vector<ShippingEntry> out;
    bool first = true;
    forEachRecord(in, fileName, [&](std::size_t lineNumber, std::vector<std::string> fields) {
        if (std::exchange(first, false) && !fields.empty()
            && (lower(fields[0]) == "identity" || lower(fields[0]) == "fingerprint")) {
            return; // the header
        }
        if (fields.size() < 2 || fields.size() > 3) {
            throw UsageError(
                fmt::format("expected 2 or 3 fields (identity, name, optional user), found {}", fields.size()));
        }
        ShippingEntry entry { .line = lineNumber };
        const auto& identity = fields[0];
        if (identity.empty()) {
            throw UsageError("the identity is empty (an SSH fingerprint SHA256:... or MANUFACTURER/SERIAL)");
        }
        if (fields[1].empty()) {
            throw UsageError("the name is empty");
        }
        entry.device.name = fields[1];
        const bool ssh = identity.starts_with("SHA256:");
        if (fields.size() == 3 && !fields[2].empty()) {
            if (!ssh) {
                throw UsageError("a user is for SSH devices only; " + identity + " is a TLS device");
            }
            entry.device.sshUser = fields[2];
        }
        if (ssh) {
            entry.device.fingerprint = identity;
        } else {
            auto slash = identity.find('/');
            if (slash == std::string::npos || slash == 0 || slash + 1 == identity.size()) {
                throw UsageError("\"" + identity
                    + "\" is neither an SSH fingerprint (SHA256:...) nor MANUFACTURER/SERIAL of a TLS device");
            }
            entry.device.manufacturer = identity.substr(0, slash);
            entry.device.serial = identity.substr(slash + 1);
        }
        out.push_back(std::move(entry));
    });
    if (out.empty()) {
        throw UsageError(fileName + ": no devices in the file (expected lines of identity,name[,user])");
    }
    return out;
}
} // namespace callhome::cli
