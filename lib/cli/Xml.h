#pragma once
#include <string>
#include <string_view>

namespace callhome::cli {
/**
 * `xml` indented two spaces per level, each top-level node on its own line(s), ending in a newline; also a forest
 * (the content of a `<data>` with several roots). Safe for a terminal and still equivalent XML: tab, DEL and C1
 * controls in the content are written as character references. Text that is not well-formed XML is returned line by
 * line with control characters escaped (escapeControl), plus a final newline; blank text returns "".
 */
std::string prettyXml(std::string_view xml);
} // namespace callhome::cli
