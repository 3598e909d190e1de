#pragma once
#include <string>
#include <string_view>

namespace callhome {
/**
 * Makes text a peer chose (certificate subject, SSH banner, disconnect reason, ...) safe for logs, the inventory and
 * a terminal: every C0 control character (U+0000..U+001F, tab and newline included), DEL (U+007F) and every byte
 * that is not part of valid UTF-8 becomes "\xNN" (two upper-case hex digits); every C1 control character
 * (U+0080..U+009F, "\xC2\x80".."\xC2\x9F" in UTF-8) becomes "\u0080".."\u009F", so that an 8-bit terminal never
 * sees a raw 0x9B (CSI). Other UTF-8 (accented names, CJK, emoji) is kept as it is. A backslash is not escaped: the
 * result is for display and comparison, not meant to be decoded again, and RFC 2253 subjects use backslashes
 * themselves ("CN=a\,b"). The function is idempotent: escaped text contains no control character.
 */
std::string escapeControl(std::string_view text);
/** True when escapeControl(text) would change it (cheap check before copying). */
bool needsEscape(std::string_view text);
} // namespace callhome
