#pragma once
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace callhome::transport {
/** The peer broke RFC 6242 framing, or a message exceeded the size limit. */
class FramingError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/** A message over the size limit: the stream cannot skip it, so the session ends. */
class MessageTooLarge : public FramingError {
public:
    using FramingError::FramingError;
};

/** RFC 6242 framing: end-of-message "]]>]]>" (<hello> and NETCONF 1.0) or chunked (NETCONF 1.1). */
enum class Framing { EndOfMessage, Chunked };

/**
 * Splits a NETCONF byte stream into whole messages, so that libnetconf2 is only ever handed complete messages and
 * never waits on a device's network for the rest of one. Bytes are appended as they arrive; next() returns one
 * message at a time, so the caller can switch the framing right after the <hello> exchange. Cost is linear in the
 * bytes appended (the end-of-message search resumes where it stopped); memory is bounded by `maxMessage`.
 */
class FrameDecoder {
public:
    explicit FrameDecoder(size_t maxMessage)
        : m_maxMessage(maxMessage)
    { }
    void setFraming(Framing f) noexcept { m_framing = f; }
    /** Changes the size limit (e.g. a small one for the <hello>, the configured one after it). */
    void setMaxMessage(size_t maxMessage) noexcept { m_maxMessage = maxMessage; }
    Framing framing() const noexcept { return m_framing; }
    /** Takes bytes from the stream. Throws FramingError when the partial message would exceed the limit. */
    void append(std::string_view bytes);
    /** The next complete message (its content, without framing), or nullopt when more bytes are needed. */
    std::optional<std::string> next();
    /** Bytes held that do not make a whole message yet. */
    size_t buffered() const noexcept { return m_buffer.size() - m_consumed + m_message.size(); }
    /** True when a message has started but is not complete (the peer is "half way"). */
    bool midMessage() const noexcept;

private:
    std::optional<std::string> nextEndOfMessage();
    std::optional<std::string> nextChunked();
    void compact();

    size_t m_maxMessage;
    Framing m_framing = Framing::EndOfMessage;
    std::string m_buffer; ///< raw bytes not yet consumed, from m_consumed on
    size_t m_consumed = 0;
    size_t m_scanFrom = 0; ///< end-of-message search resumes here (relative to m_consumed)
    std::string m_message; ///< chunked: content of the chunks of the current message so far
    size_t m_chunkLeft = 0; ///< chunked: bytes of the current chunk still to come
};

/** One message framed for the wire. */
std::string frame(Framing f, std::string_view message);
} // namespace callhome::transport
