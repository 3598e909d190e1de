#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace callhome::sim {
/** What the simulated device announces and answers with; shared by every device of a run. */
struct DeviceModel {
    bool notifications = false; ///< announce :notification:1.0 and accept <create-subscription>
};

/** The YANG modules the simulator announces and serves with <get-schema>: (name, revision, namespace, text). */
struct Module {
    std::string_view name;
    std::string_view revision;
    std::string_view ns;
    std::string_view text;
};
const std::vector<Module>& announcedModules();

/**
 * RFC 6242 framing, one direction: end-of-message (`]]>]]>`, NETCONF 1.0 and every <hello>) or chunked
 * (`\n#LEN\n...\n##\n`, NETCONF 1.1). Bounded: a message larger than the limit is a protocol error.
 */
class FrameDecoder {
public:
    enum class Result { NeedMore, Message, Error };
    explicit FrameDecoder(size_t maxMessage = 1 << 20)
        : m_max(maxMessage)
    { }
    void feed(std::string_view bytes) { m_in.append(bytes); }
    /** Extracts the next complete message into `out`. */
    Result next(std::string& out);
    void setChunked(bool chunked) noexcept { m_chunked = chunked; }
    size_t buffered() const noexcept { return m_in.size(); }

private:
    Result nextEom(std::string& out);
    Result nextChunked(std::string& out);
    std::string m_in;
    std::string m_message; ///< chunks collected so far (chunked framing)
    size_t m_max;
    bool m_chunked = false;
};

/** Frames one outgoing message. */
std::string frame(std::string_view message, bool chunked);

/**
 * The device side of one NETCONF session, with no I/O: feed it the station's bytes, collect what to send.
 * Serves <hello> (base 1.0 and 1.1), <get>, <get-config>, <edit-config> (replaces the running tree with the
 * <config> content; filters are ignored), <lock>/<unlock>/<commit>/<discard-changes>/<validate> (ok),
 * <get-schema> for the announced modules, <create-subscription> and <close-session>; anything else gets an
 * <rpc-error> operation-not-supported.
 */
class NetconfServer {
public:
    NetconfServer(const DeviceModel& model, uint32_t sessionId, uint32_t deviceIndex, std::string serial);
    /** Our <hello>, framed; send it as soon as the transport is up. */
    std::string hello() const;
    /**
     * Consumes bytes from the station and appends framed replies to `out`. Returns false on a protocol error
     * (bad framing, oversized message, no <hello> first): close the transport.
     */
    bool receive(std::string_view bytes, std::string& out);
    /** The station's <hello> has arrived: the session is up. */
    bool established() const noexcept { return m_gotHello; }
    bool chunked() const noexcept { return m_chunked; }
    /** The station sent <close-session> and got its reply: close once `out` is flushed. */
    bool closing() const noexcept { return m_closing; }
    /** The station sent <create-subscription>: notifications may be sent. */
    bool subscribed() const noexcept { return m_subscribed; }
    /** A framed <notification>. */
    std::string notification(uint64_t sequence) const;
    uint64_t rpcs() const noexcept { return m_rpcs; }

private:
    void handle(const std::string& message, std::string& out);
    std::string reply(const std::string& rpcAttributes, const std::string& body) const;
    std::string stateXml() const;

    const DeviceModel& m_model;
    FrameDecoder m_decoder;
    std::string m_running;
    std::string m_serial;
    uint32_t m_sessionId;
    uint32_t m_deviceIndex;
    uint64_t m_rpcs = 0;
    int64_t m_startedAt;
    bool m_gotHello = false;
    bool m_chunked = false;
    bool m_closing = false;
    bool m_subscribed = false;
};

/** XML character escaping for text nodes. */
std::string xmlEscape(std::string_view text);
} // namespace callhome::sim
