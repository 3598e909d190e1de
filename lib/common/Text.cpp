#include "common/Text.h"
#include <cstddef>
#include <cstdint>

namespace callhome {
namespace {
/**
 * Length of the valid UTF-8 sequence at text[i] (1..4), or 0 when the bytes there are not valid UTF-8 (stray
 * continuation byte, overlong form, surrogate, beyond U+10FFFF, truncated). Only sequences of two or more bytes
 * are asked for: ASCII is handled by the caller.
 */
std::size_t utf8Length(std::string_view text, std::size_t i)
{
    const auto b0 = static_cast<unsigned char>(text[i]);
    std::size_t n = 0;
    uint32_t min = 0;
    uint32_t cp = 0;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        n = 2;
        min = 0x80;
        cp = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        n = 3;
        min = 0x800;
        cp = b0 & 0x0F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        n = 4;
        min = 0x10000;
        cp = b0 & 0x07;
    } else {
        return 0;
    }
    if (i + n > text.size()) {
        return 0;
    }
    for (std::size_t k = 1; k < n; ++k) {
        const auto b = static_cast<unsigned char>(text[i + k]);
        if ((b & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return n;
}

constexpr char Hex[] = "0123456789ABCDEF";

bool isC0OrDel(unsigned char c)
{
    return c < 0x20 || c == 0x7F;
}

/** The second byte of a two-byte sequence starting with 0xC2 that encodes U+0080..U+009F. */
bool isC1(std::string_view text, std::size_t i, std::size_t n)
{
    return n == 2 && static_cast<unsigned char>(text[i]) == 0xC2 && static_cast<unsigned char>(text[i + 1]) <= 0x9F;
}
} // namespace

bool needsEscape(std::string_view text)
{
    for (std::size_t i = 0; i < text.size();) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x80) {
            if (isC0OrDel(c)) {
                return true;
            }
            ++i;
            continue;
        }
        const auto n = utf8Length(text, i);
        if (n == 0 || isC1(text, i, n)) {
            return true;
        }
        i += n;
    }
    return false;
}

std::string escapeControl(std::string_view text)
{
    if (!needsEscape(text)) {
        return std::string(text);
    }
    std::string out;
    out.reserve(text.size() + 16);
    for (std::size_t i = 0; i < text.size();) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x80) {
            if (isC0OrDel(c)) {
                out += "\\x";
                out.push_back(Hex[c >> 4]);
                out.push_back(Hex[c & 0xF]);
            } else {
                out.push_back(static_cast<char>(c));
            }
            ++i;
            continue;
        }
        const auto n = utf8Length(text, i);
        if (n == 0) {
            out += "\\x";
            out.push_back(Hex[c >> 4]);
            out.push_back(Hex[c & 0xF]);
            ++i;
        } else if (isC1(text, i, n)) {
            const auto cp = static_cast<unsigned char>(text[i + 1]); // U+0080..U+009F: the second byte is the value
            out += "\\u00";
            out.push_back(Hex[cp >> 4]);
            out.push_back(Hex[cp & 0xF]);
            i += 2;
        } else {
            out.append(text.substr(i, n));
            i += n;
        }
    }
    return out;
}
} // namespace callhome
