#include "cli/ApiClient.h"
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <curl/curl.h>
#include <exception>
#include <sys/un.h>

namespace callhome::cli {
namespace {
/** libcurl's process-wide state, set up once before the first handle (curl_global_init is not thread-safe). */
struct CurlGlobal {
    CurlGlobal()
    {
        if (auto rc = curl_global_init(CURL_GLOBAL_DEFAULT); rc != CURLE_OK) {
            throw LibraryError("curl_global_init", curl_easy_strerror(rc));
        }
    }
    ~CurlGlobal() { curl_global_cleanup(); }
    CurlGlobal(const CurlGlobal&) = delete;
    CurlGlobal& operator=(const CurlGlobal&) = delete;
};

struct CurlSlistFree {
    void operator()(curl_slist* p) const noexcept { curl_slist_free_all(p); }
};
using CurlSlistPtr = std::unique_ptr<curl_slist, CurlSlistFree>;

struct CurlStringFree {
    void operator()(char* p) const noexcept { curl_free(p); }
};

volatile std::sig_atomic_t g_interrupted = 0;

extern "C" void onSigint(int)
{
    g_interrupted = 1;
}

/** Catches SIGINT for its lifetime (without SA_RESTART, so that curl's poll wakes up) and restores the old action. */
class SigintGuard {
public:
    SigintGuard()
    {
        g_interrupted = 0;
        struct sigaction action { };
        action.sa_handler = onSigint;
        sigemptyset(&action.sa_mask);
        sigaction(SIGINT, &action, &m_previous);
    }
    ~SigintGuard()
    {
        sigaction(SIGINT, &m_previous, nullptr);
        g_interrupted = 0;
    }
    SigintGuard(const SigintGuard&) = delete;
    SigintGuard& operator=(const SigintGuard&) = delete;

private:
    struct sigaction m_previous { };
};

template<class T>
void setopt(CURL* curl, CURLoption option, T value)
{
    if (auto rc = curl_easy_setopt(curl, option, value); rc != CURLE_OK) {
        throw LibraryError("curl_easy_setopt", curl_easy_strerror(rc));
    }
}

constexpr const char* SocketHint = "start callhomed, or select its socket with --socket PATH or --state-dir DIR";
} // namespace

/** What the C callbacks of one transfer share; they never throw (an exception is kept and rethrown afterwards). */
struct ApiClient::Transfer {
    CURL* curl = nullptr;
    bool streaming = false;
    std::function<void()> onOpen;
    std::function<void(std::string_view)> onLine;
    bool opened = false;
    std::string body;
    std::string partial; ///< a streamed line still waiting for its newline
    std::exception_ptr failure;

    long status() const
    {
        long code = 0;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
        return code;
    }

    bool streamingLines() const { return streaming && opened; }

    void deliver(std::string_view line)
    {
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        if (!line.empty()) {
            onLine(line);
        }
    }

    static size_t onHeader(char* data, size_t size, size_t count, void* self) noexcept
    {
        auto* t = static_cast<Transfer*>(self);
        std::string_view line(data, size * count);
        // The blank line ends a header block; 1xx blocks (100 Continue) are followed by the real one.
        if (t->streaming && !t->opened && (line == "\r\n" || line == "\n")) {
            auto code = t->status();
            if (code >= 200 && code < 300) {
                t->opened = true;
                try {
                    if (t->onOpen) {
                        t->onOpen();
                    }
                } catch (...) {
                    t->failure = std::current_exception();
                    return 0;
                }
            }
        }
        return size * count;
    }

    static size_t onData(char* data, size_t size, size_t count, void* self) noexcept
    {
        auto* t = static_cast<Transfer*>(self);
        try {
            if (!t->streamingLines()) {
                t->body.append(data, size * count);
                return size * count;
            }
            t->partial.append(data, size * count);
            std::size_t start = 0;
            for (auto end = t->partial.find('\n'); end != std::string::npos; end = t->partial.find('\n', start)) {
                t->deliver(std::string_view(t->partial).substr(start, end - start));
                start = end + 1;
            }
            t->partial.erase(0, start);
            return size * count;
        } catch (...) {
            t->failure = std::current_exception();
            return 0; // makes curl end the transfer with CURLE_WRITE_ERROR
        }
    }

    static int onProgress(void*, curl_off_t, curl_off_t, curl_off_t, curl_off_t) noexcept
    {
        return g_interrupted ? 1 : 0;
    }
};

void ApiClient::CurlFree::operator()(CURL* p) const noexcept
{
    curl_easy_cleanup(p);
}

ApiClient::ApiClient(std::string socketPath)
    : m_socket(std::move(socketPath))
{
    static CurlGlobal global;
    if (m_socket.size() >= sizeof(sockaddr_un::sun_path)) {
        throw UsageError("control socket path too long (" + std::to_string(m_socket.size())
            + " bytes; a UNIX socket path has at most " + std::to_string(sizeof(sockaddr_un::sun_path) - 1)
            + "): " + m_socket);
    }
    m_curl.reset(curl_easy_init());
    if (!m_curl) {
        throw LibraryError("curl_easy_init", "out of memory");
    }
}

ApiClient::~ApiClient() = default;

std::string ApiClient::escape(std::string_view text)
{
    std::unique_ptr<char, CurlStringFree> escaped(
        curl_easy_escape(m_curl.get(), text.data(), static_cast<int>(text.size())));
    if (!escaped) {
        throw LibraryError("curl_easy_escape", "out of memory");
    }
    return escaped.get();
}

ApiResponse ApiClient::request(const ApiRequest& request)
{
    Transfer transfer;
    return perform(request, transfer);
}

ApiResponse ApiClient::stream(const std::string& target, const std::string& accept, const std::function<void()>& onOpen,
    const std::function<void(std::string_view)>& onLine)
{
    Transfer transfer;
    transfer.streaming = true;
    transfer.onOpen = onOpen;
    transfer.onLine = onLine;
    SigintGuard sigint;
    auto response = perform({ .target = target, .accept = accept }, transfer);
    if (transfer.opened && !transfer.partial.empty()) {
        transfer.deliver(transfer.partial); // a last line without its newline
    }
    return response;
}

ApiResponse ApiClient::perform(const ApiRequest& request, Transfer& transfer)
{
    CURL* curl = m_curl.get();
    curl_easy_reset(curl);
    transfer.curl = curl;
    char error[CURL_ERROR_SIZE] = "";
    const auto url = "http://localhost" + request.target;

    setopt(curl, CURLOPT_ERRORBUFFER, error);
    setopt(curl, CURLOPT_UNIX_SOCKET_PATH, m_socket.c_str());
    setopt(curl, CURLOPT_URL, url.c_str());
    // A proxy from the environment must not capture requests meant for the local socket.
    setopt(curl, CURLOPT_PROXY, "");
    setopt(curl, CURLOPT_NOSIGNAL, 1L);
    setopt(curl, CURLOPT_USERAGENT, "callhomectl");
    setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
    setopt(curl, CURLOPT_TIMEOUT, static_cast<long>(request.deadline.count()));
    setopt(curl, CURLOPT_HEADERFUNCTION, &Transfer::onHeader);
    setopt(curl, CURLOPT_HEADERDATA, &transfer);
    setopt(curl, CURLOPT_WRITEFUNCTION, &Transfer::onData);
    setopt(curl, CURLOPT_WRITEDATA, &transfer);
    if (transfer.streaming) {
        // curl calls this at least once a second, also while no data flows: the bound on noticing SIGINT.
        setopt(curl, CURLOPT_NOPROGRESS, 0L);
        setopt(curl, CURLOPT_XFERINFOFUNCTION, &Transfer::onProgress);
    }

    CurlSlistPtr headers;
    auto addHeader = [&](const std::string& header) {
        auto* list = curl_slist_append(headers.get(), header.c_str());
        if (!list) {
            throw LibraryError("curl_slist_append", "out of memory");
        }
        (void)headers.release(); // curl_slist_append returns the same list, now one longer
        headers.reset(list);
    };
    addHeader("Accept: " + request.accept);
    // Without this, curl waits up to a second for "100 Continue" before sending a large body.
    addHeader("Expect:");
    if (!request.contentType.empty()) {
        addHeader("Content-Type: " + request.contentType);
    }
    if (const char* traceId = std::getenv("CALLHOME_TRACE_ID"); traceId && *traceId) {
        // The script's own id for what it asks (change ticket, job id): carried into callhomed's trace records.
        // callhomed refuses an id that is not 1 to 128 printable characters, with a message saying so.
        std::string id(traceId);
        if (id.find_first_of("\r\n") != std::string::npos) {
            throw UsageError("CALLHOME_TRACE_ID must be one line of printable characters");
        }
        addHeader("X-Callhome-Trace-Id: " + id);
    }
    setopt(curl, CURLOPT_HTTPHEADER, headers.get());
    if (request.method == "POST") {
        setopt(curl, CURLOPT_POST, 1L);
        setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
        setopt(curl, CURLOPT_POSTFIELDS, request.body.c_str());
    } else if (request.method != "GET") {
        setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }

    auto rc = curl_easy_perform(curl);
    if (transfer.failure) {
        std::rethrow_exception(transfer.failure);
    }
    ApiResponse response;
    response.status = transfer.status();
    if (char* type = nullptr; curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type) == CURLE_OK && type) {
        response.contentType = type;
    }
    response.body = std::move(transfer.body);
    if (rc == CURLE_ABORTED_BY_CALLBACK && g_interrupted) {
        response.interrupted = true;
        return response;
    }
    if (rc == CURLE_OK) {
        return response;
    }
    const std::string detail = *error ? error : curl_easy_strerror(rc);
    if (rc == CURLE_COULDNT_CONNECT) {
        long osErrno = 0;
        curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &osErrno);
        if (osErrno == ENOENT) {
            throw ApiUnavailable(
                "callhomed is not running (no control socket at " + m_socket + "; " + SocketHint + ")");
        }
        if (osErrno == ECONNREFUSED) {
            throw ApiUnavailable("callhomed is not running (nothing listens on the control socket " + m_socket + "; "
                + SocketHint + ")");
        }
        if (osErrno == EACCES || osErrno == EPERM) {
            throw ApiUnavailable("cannot connect to callhomed's control socket " + m_socket + ": "
                + std::strerror(EACCES)
                + " (only callhomed's user and the group in its control/group setting may use it)");
        }
        throw ApiUnavailable("cannot connect to callhomed's control socket " + m_socket + ": "
            + (osErrno ? std::strerror(static_cast<int>(osErrno)) : detail));
    }
    curl_off_t connected = 0;
    curl_easy_getinfo(curl, CURLINFO_CONNECT_TIME_T, &connected);
    if (rc == CURLE_OPERATION_TIMEDOUT && connected == 0) {
        throw ApiUnavailable("callhomed did not answer on its control socket " + m_socket + " (connection timed out)");
    }
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        throw Error(
            "no answer from callhomed within " + std::to_string(request.deadline.count()) + " s on " + m_socket);
    }
    if (transfer.opened) {
        throw Error("the stream from callhomed ended abruptly (callhomed stopped, or dropped this reader for being "
                    "too slow): "
            + detail);
    }
    if (rc == CURLE_GOT_NOTHING) {
        throw Error("callhomed closed the connection on " + m_socket + " without an answer");
    }
    throw Error("request to callhomed on " + m_socket + " failed: " + detail);
}
} // namespace callhome::cli
