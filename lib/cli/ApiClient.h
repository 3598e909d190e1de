#pragma once
#include "common/Error.h"
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

typedef void CURL; // NOLINT: libcurl's own declaration of its easy handle, so that curl.h stays in ApiClient.cpp

namespace callhome::cli {
/** callhomed's control socket cannot be reached: callhomed is not running, or listens on another socket. */
class ApiUnavailable : public Error {
public:
    using Error::Error;
};

/** An HTTP response from the control API; `body` is empty for a stream that was answered 2xx. */
struct ApiResponse {
    long status = 0;
    std::string contentType;
    std::string body;
    bool interrupted = false; ///< a stream ended by SIGINT rather than by callhomed
};

/** One request to the control API; `target` is the path and query, e.g. "/v1/sessions". */
struct ApiRequest {
    std::string method = "GET";
    std::string target;
    std::string body;
    std::string contentType; ///< of `body`; empty: no Content-Type header
    std::string accept = "application/json";
    /** Client-side bound on the whole exchange; zero: none (callhomed bounds device replies itself). */
    std::chrono::seconds deadline { 0 };
};

/** A small libcurl client for callhomed's control API (HTTP/1.1 on a UNIX socket, lib/api/README.md). */
class ApiClient {
public:
    explicit ApiClient(std::string socketPath);
    ~ApiClient();
    ApiClient(const ApiClient&) = delete;
    ApiClient& operator=(const ApiClient&) = delete;

    /**
     * Sends one request and returns the whole response, whatever its status. Throws ApiUnavailable when nothing
     * listens on the socket and Error for other transport failures and an exceeded deadline.
     */
    ApiResponse request(const ApiRequest& request);

    /**
     * GETs a stream of lines (JSON lines, or one XML message per line): `onOpen` runs once when the response is 2xx,
     * then `onLine` for each line as it arrives (without its newline; empty lines skipped), until callhomed ends the
     * stream or SIGINT interrupts it (`interrupted`; SIGINT is caught only during this call). A response that is not
     * 2xx is returned whole, without calling either function. An exception from them ends the stream and propagates.
     * Throws like request(), and Error when the stream breaks.
     */
    ApiResponse stream(const std::string& target, const std::string& accept, const std::function<void()>& onOpen,
        const std::function<void(std::string_view)>& onLine);

    /** Percent-encodes `text` for a URL path segment or query value (curl_easy_escape). */
    std::string escape(std::string_view text);

    const std::string& socketPath() const noexcept { return m_socket; }

private:
    struct CurlFree {
        void operator()(CURL* p) const noexcept;
    };
    struct Transfer;
    /** Resets the handle and sets what every request shares: socket, URL, headers, callbacks into `transfer`. */
    ApiResponse perform(const ApiRequest& request, Transfer& transfer);

    std::string m_socket;
    std::unique_ptr<CURL, CurlFree> m_curl;
};
} // namespace callhome::cli
