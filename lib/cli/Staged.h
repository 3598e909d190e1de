#pragma once
#include <string>

namespace callhome::cli {
/**
 * A staged edit read from a file (`callhomectl stage`): `format` "xml" or "json", or empty to detect it (a file
 * named *.json or *.xml, else the first character: '{' is JSON). Checks the syntax now, so that a typo is found when
 * staging, not when the device calls: XML must be a sequence of well-formed elements (the content of <config>; an
 * XML declaration is dropped, a DTD refused), JSON one object (RFC 7951; converted with the device's schemas when
 * applied). Throws UsageError naming the problem.
 */
struct StagedContent {
    std::string format;
    std::string content;
};
StagedContent readStagedContent(const std::string& file, const std::string& format);
} // namespace callhome::cli
