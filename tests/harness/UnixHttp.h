#pragma once
#include "harness/Util.h"
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace callhome::test {
/** One HTTP/1.1 response as the client read it: status, headers (names lower-cased), the (de-chunked) body. */
struct HttpResponse {
    int status = 0;
    std::map<std::string, std::string> headers;
    std::string body;
    std::string header(const std::string& lowerName) const;
};

/** One request for httpRequest / httpConcurrent; `headers` are sent as they are (Host and Connection are added). */
struct HttpRequest {
    std::string method = "GET";
    std::string target; ///< "/v1/sessions?x=y", already percent-encoded
    std::string body = {};
    std::vector<std::pair<std::string, std::string>> headers = {};
};

/** Percent-encodes one path segment or query value (everything but unreserved characters). */
std::string percentEncode(const std::string& text);

/**
 * An independent HTTP/1.1 client on a UNIX socket (plain POSIX sockets, `Connection: close`): written for the control
 * API tests, so it shares no code with the server or with callhomectl. Throws HarnessError when the socket cannot be
 * reached, the response is malformed, or `deadline` passes.
 */
HttpResponse httpRequest(const std::string& socketPath, const HttpRequest& request,
    std::chrono::milliseconds deadline = std::chrono::seconds(30));

/**
 * Every request on its own connection, all open at the same time (non-blocking sockets and one poll loop; a connect
 * the listen backlog refuses for now is retried): the responses in the order of `requests`. Throws HarnessError when
 * `deadline` passes before every response is complete.
 */
std::vector<HttpResponse> httpConcurrent(
    const std::string& socketPath, const std::vector<HttpRequest>& requests, std::chrono::milliseconds deadline);

/**
 * A streamed response (chunked transfer encoding, as /notifications and /events?follow=true send): the head is read
 * in the constructor, then lines as they arrive. The connection closes on destruction, which ends the stream on the
 * server's side.
 */
class HttpStream {
public:
    HttpStream(const std::string& socketPath, const HttpRequest& request,
        std::chrono::milliseconds headDeadline = std::chrono::seconds(30));
    HttpStream(const HttpStream&) = delete;
    HttpStream& operator=(const HttpStream&) = delete;
    ~HttpStream();

    int status() const noexcept { return m_head.status; }
    const HttpResponse& head() const noexcept { return m_head; }
    /**
     * The next whole line (without its '\n'); nullopt when the stream ended (last chunk, or the server closed).
     * Throws HarnessError when `deadline` passes first.
     */
    std::optional<std::string> readLine(std::chrono::milliseconds deadline);
    /** For a response that is not a stream (an error answer): the rest of its body. */
    std::string readAll(std::chrono::milliseconds deadline);

private:
    bool fill(Clock::time_point deadline);
    bool decode();

    int m_fd = -1;
    HttpResponse m_head;
    bool m_chunked = false;
    std::optional<size_t> m_length;
    std::string m_raw; ///< bytes read, not yet decoded
    std::string m_data; ///< decoded body, not yet returned
    bool m_ended = false;
    bool m_eof = false;
};
} // namespace callhome::test
