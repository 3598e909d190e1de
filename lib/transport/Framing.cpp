#include "transport/Framing.h"
#include <algorithm>

namespace callhome::transport {
namespace {
constexpr std::string_view kEndOfMessage = "]]>]]>";
constexpr size_t kMaxChunkHeader = 13; // "\n#" + 10 digits (4294967295) + "\n"
constexpr uint64_t kMaxChunkSize = 4294967295ULL; // RFC 6242 §4.2
} // namespace

void FrameDecoder::append(std::string_view bytes)
{
    if (buffered() + bytes.size() > m_maxMessage + kMaxChunkHeader + kEndOfMessage.size()) {
        // Whatever the framing, this much unconsumed data cannot all belong to complete messages of allowed size:
        // messages are taken out by next() as soon as they are complete, so the caller drains between appends.
        throw MessageTooLarge("message larger than " + std::to_string(m_maxMessage) + " bytes");
    }
    compact();
    m_buffer.append(bytes);
}

void FrameDecoder::compact()
{
    if (m_consumed > 0 && (m_consumed == m_buffer.size() || m_consumed > 65536)) {
        m_buffer.erase(0, m_consumed);
        m_consumed = 0;
    }
    if (m_buffer.empty() && m_buffer.capacity() > 65536) {
        std::string().swap(m_buffer); // a large message went through: give the memory back
    }
}

bool FrameDecoder::midMessage() const noexcept
{
    if (!m_message.empty() || m_chunkLeft > 0) {
        return true;
    }
    auto rest = std::string_view(m_buffer).substr(m_consumed);
    return rest.find_first_not_of(" \t\r\n") != std::string_view::npos;
}

std::optional<std::string> FrameDecoder::next()
{
    auto m = m_framing == Framing::EndOfMessage ? nextEndOfMessage() : nextChunked();
    compact();
    return m;
}

std::optional<std::string> FrameDecoder::nextEndOfMessage()
{
    std::string_view rest = std::string_view(m_buffer).substr(m_consumed);
    // Resume a few bytes back: the marker may straddle two appends.
    size_t from = m_scanFrom >= kEndOfMessage.size() ? m_scanFrom - (kEndOfMessage.size() - 1) : 0;
    auto pos = rest.find(kEndOfMessage, from);
    if (pos == std::string_view::npos) {
        m_scanFrom = rest.size();
        if (rest.size() > m_maxMessage) {
            throw MessageTooLarge("message larger than " + std::to_string(m_maxMessage) + " bytes");
        }
        return std::nullopt;
    }
    std::string message(rest.substr(0, pos));
    m_consumed += pos + kEndOfMessage.size();
    m_scanFrom = 0;
    if (message.size() > m_maxMessage) {
        throw MessageTooLarge("message larger than " + std::to_string(m_maxMessage) + " bytes");
    }
    return message;
}

std::optional<std::string> FrameDecoder::nextChunked()
{
    while (true) {
        std::string_view rest = std::string_view(m_buffer).substr(m_consumed);
        if (m_chunkLeft > 0) {
            auto n = std::min(m_chunkLeft, rest.size());
            if (n == 0) {
                return std::nullopt;
            }
            m_message.append(rest.substr(0, n));
            m_consumed += n;
            m_chunkLeft -= n;
            continue;
        }
        // A chunk header "\n#<size>\n" or the end of chunks "\n##\n".
        if (rest.size() < 4) {
            if (!rest.empty() && rest[0] != '\n') {
                throw FramingError("bad chunk header (expected LF #)");
            }
            return std::nullopt;
        }
        if (rest[0] != '\n' || rest[1] != '#') {
            throw FramingError("bad chunk header (expected LF #)");
        }
        if (rest[2] == '#') {
            if (rest[3] != '\n') {
                throw FramingError("bad end-of-chunks marker");
            }
            m_consumed += 4;
            if (m_message.empty()) {
                throw FramingError("empty chunked message");
            }
            std::string message;
            message.swap(m_message);
            return message;
        }
        auto lf = rest.find('\n', 2);
        if (lf == std::string_view::npos) {
            if (rest.size() >= kMaxChunkHeader) {
                throw FramingError("bad chunk size");
            }
            return std::nullopt;
        }
        auto digits = rest.substr(2, lf - 2);
        if (digits.empty() || digits.size() > 10 || digits[0] == '0'
            || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            throw FramingError("bad chunk size");
        }
        uint64_t size = std::stoull(std::string(digits));
        if (size > kMaxChunkSize) {
            throw FramingError("bad chunk size");
        }
        if (m_message.size() + size > m_maxMessage) {
            throw MessageTooLarge("message larger than " + std::to_string(m_maxMessage) + " bytes");
        }
        m_consumed += lf + 1;
        m_chunkLeft = static_cast<size_t>(size);
    }
}

std::string frame(Framing f, std::string_view message)
{
    std::string out;
    if (f == Framing::EndOfMessage) {
        out.reserve(message.size() + kEndOfMessage.size());
        out.append(message);
        out.append(kEndOfMessage);
        return out;
    }
    auto header = "\n#" + std::to_string(message.size()) + "\n";
    out.reserve(header.size() + message.size() + 4);
    out.append(header);
    out.append(message);
    out.append("\n##\n");
    return out;
}
} // namespace callhome::transport
