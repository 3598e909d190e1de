#pragma once
#include "inventory/Types.h"
#include <cstddef>
#include <iosfwd>
#include <string>
#include <vector>

namespace callhome::cli {
/** Splits one CSV record: commas separate fields, RFC 4180 quoting ("a,b", "say ""hi"""); throws UsageError. */
std::vector<std::string> splitCsvRecord(const std::string& record);

/** One device of a shipping-data or import file and the line it came from (for error messages). */
struct ShippingEntry {
    std::size_t line = 0; ///< 1-based line number in the file
    inventory::ExpectedDevice device;
};

/**
 * Reads shipping data for `callhomectl expect --csv`: lines of serial,manufacturer[,name]; an optional header line
 * naming those columns (in any order) is detected; blank lines and lines starting with '#' are skipped; unquoted
 * fields are trimmed; an empty name means none. Throws UsageError "<fileName>:<line>: <problem>" on the first bad
 * line, and when there is no device at all.
 */
std::vector<ShippingEntry> parseShippingData(std::istream& in, const std::string& fileName);

/**
 * Reads a bulk import for `callhomectl import --csv`: lines of IDENTITY,NAME[,USER], where IDENTITY is an SSH host
 * key fingerprint ("SHA256:...", as ssh-keygen -l -E sha256 prints it) or a TLS device's MANUFACTURER/SERIAL (split
 * at the first '/': manufacturer names are trust-store directory names), NAME is required and USER (the SSH user
 * callhomed authenticates as) is for SSH devices only. An optional first line "identity,name[,user]" is a header;
 * blank lines and lines starting with '#' are skipped; fields may be double-quoted. Throws UsageError
 * "<fileName>:<line>: <problem>" on the first bad line, and when there is no device at all.
 */
std::vector<ShippingEntry> parseImportData(std::istream& in, const std::string& fileName);
} // namespace callhome::cli
