#include "harness/UnixHttp.h"
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace callhome::test {
namespace {
std::string lower(std::string s)
{
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

std::string trim(const std::string& s)
{
    auto b = s.find_first_not_of(" \t");
    auto e = s.find_last_not_of(" \t\r");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

int remainingMs(Clock::time_point deadline)
{
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1000));
}

/** A connected UNIX stream socket; -1 with errno EAGAIN when the listen backlog is full (non-blocking only). */
int connectUnix(const std::string& path, bool nonBlocking)
{
    sockaddr_un a {};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof a.sun_path) {
        throw HarnessError("socket path too long: " + path);
    }
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonBlocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) {
        throw HarnessError(std::string("socket(AF_UNIX): ") + std::strerror(errno));
    }
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        int e = errno;
        ::close(fd);
        if (nonBlocking && e == EAGAIN) {
            errno = EAGAIN;
            return -1;
        }
        throw HarnessError("connect " + path + ": " + std::strerror(e));
    }
    return fd;
}

std::string serialize(const HttpRequest& r)
{
    std::string out = r.method + " " + r.target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
    for (const auto& [k, v] : r.headers) {
        out += k + ": " + v + "\r\n";
    }
    if (!r.body.empty() || r.method == "POST") {
        out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
    }
    return out + "\r\n" + r.body;
}

void writeAll(int fd, const std::string& data, Clock::time_point deadline)
{
    size_t off = 0;
    while (off < data.size()) {
        auto n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            pollfd p { fd, POLLOUT, 0 };
            if (Clock::now() >= deadline) {
                throw HarnessError("timed out writing an HTTP request");
            }
            ::poll(&p, 1, remainingMs(deadline));
            continue;
        }
        throw HarnessError(std::string("writing an HTTP request: ") + std::strerror(errno));
    }
}

/** Parses the head in `raw` (up to the blank line); nullopt until it is all there. Removes it from `raw`. */
std::optional<HttpResponse> parseHead(std::string& raw)
{
    auto end = raw.find("\r\n\r\n");
    if (end == std::string::npos) {
        return std::nullopt;
    }
    HttpResponse r;
    auto head = raw.substr(0, end);
    raw.erase(0, end + 4);
    auto lineEnd = head.find("\r\n");
    auto statusLine = head.substr(0, lineEnd);
    if (statusLine.rfind("HTTP/1.", 0) != 0 || statusLine.size() < 12) {
        throw HarnessError("not an HTTP response: " + statusLine);
    }
    r.status = std::stoi(statusLine.substr(9, 3));
    size_t pos = lineEnd == std::string::npos ? head.size() : lineEnd + 2;
    while (pos < head.size()) {
        auto next = head.find("\r\n", pos);
        auto line = head.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
        auto colon = line.find(':');
        if (colon != std::string::npos) {
            r.headers[lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
        }
        pos = next == std::string::npos ? head.size() : next + 2;
    }
    return r;
}

/**
 * Decodes as much of a chunked body as `raw` holds into `out`; true once the last chunk was read. Throws on a bad
 * chunk header.
 */
bool decodeChunks(std::string& raw, std::string& out)
{
    for (;;) {
        auto lineEnd = raw.find("\r\n");
        if (lineEnd == std::string::npos) {
            return false;
        }
        auto sizeText = raw.substr(0, raw.find_first_of(";\r"));
        size_t size = 0;
        try {
            size = std::stoul(sizeText, nullptr, 16);
        } catch (const std::exception&) {
            throw HarnessError("bad chunk header: " + raw.substr(0, std::min<size_t>(raw.size(), 40)));
        }
        if (size == 0) {
            // last chunk, no trailers expected: "0\r\n\r\n"
            if (raw.size() < lineEnd + 4) {
                return false;
            }
            raw.erase(0, lineEnd + 4);
            return true;
        }
        if (raw.size() < lineEnd + 2 + size + 2) {
            return false;
        }
        out += raw.substr(lineEnd + 2, size);
        raw.erase(0, lineEnd + 2 + size + 2);
    }
}

/** One whole response out of `raw` if it is complete (`eof`: the server closed). */
std::optional<HttpResponse> parseComplete(const std::string& raw, bool eof)
{
    std::string rest = raw;
    auto head = parseHead(rest);
    if (!head) {
        if (eof) {
            throw HarnessError("the connection closed before a whole HTTP head: '" + raw.substr(0, 200) + "'");
        }
        return std::nullopt;
    }
    if (lower(head->header("transfer-encoding")).find("chunked") != std::string::npos) {
        if (!decodeChunks(rest, head->body)) {
            if (eof) {
                throw HarnessError("the connection closed in the middle of a chunked body");
            }
            return std::nullopt;
        }
        return head;
    }
    if (auto cl = head->header("content-length"); !cl.empty()) {
        auto n = std::stoul(cl);
        if (rest.size() < n) {
            if (eof) {
                throw HarnessError("the connection closed before the whole body");
            }
            return std::nullopt;
        }
        head->body = rest.substr(0, n);
        return head;
    }
    if (!eof) {
        return std::nullopt;
    }
    head->body = rest;
    return head;
}

/** Reads what is there; false on EOF. */
bool readSome(int fd, std::string& raw)
{
    char buf[65536];
    for (;;) {
        auto n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            raw.append(buf, static_cast<size_t>(n));
            continue;
        }
        if (n == 0) {
            return false;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            return true;
        }
        if (errno == ECONNRESET) {
            return false;
        }
        throw HarnessError(std::string("reading an HTTP response: ") + std::strerror(errno));
    }
}
} // namespace

std::string HttpResponse::header(const std::string& lowerName) const
{
    auto it = headers.find(lowerName);
    return it == headers.end() ? std::string() : it->second;
}

std::string percentEncode(const std::string& text)
{
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

HttpResponse httpRequest(const std::string& socketPath, const HttpRequest& request, std::chrono::milliseconds deadline)
{
    auto until = Clock::now() + deadline;
    int fd = connectUnix(socketPath, false);
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer { fd };
    writeAll(fd, serialize(request), until);
    std::string raw;
    for (;;) {
        bool open = readSome(fd, raw);
        if (auto r = parseComplete(raw, !open)) {
            return *r;
        }
        if (Clock::now() >= until) {
            throw HarnessError(request.method + " " + request.target + ": no whole response within "
                + std::to_string(deadline.count()) + " ms (got '" + raw.substr(0, 200) + "')");
        }
        pollfd p { fd, POLLIN, 0 };
        ::poll(&p, 1, remainingMs(until));
    }
}

std::vector<HttpResponse> httpConcurrent(
    const std::string& socketPath, const std::vector<HttpRequest>& requests, std::chrono::milliseconds deadline)
{
    auto until = Clock::now() + deadline;
    struct Slot {
        int fd = -1;
        std::string out;
        size_t written = 0;
        std::string raw;
        std::optional<HttpResponse> response;
    };
    std::vector<Slot> slots(requests.size());
    for (size_t i = 0; i < requests.size(); ++i) {
        slots[i].out = serialize(requests[i]);
    }
    struct CloseAll {
        std::vector<Slot>& slots;
        ~CloseAll()
        {
            for (auto& s : slots) {
                if (s.fd >= 0) {
                    ::close(s.fd);
                }
            }
        }
    } closeAll { slots };

    size_t done = 0;
    while (done < slots.size()) {
        if (Clock::now() >= until) {
            throw HarnessError(std::to_string(slots.size() - done) + " of " + std::to_string(slots.size())
                + " concurrent requests had no whole response within " + std::to_string(deadline.count()) + " ms");
        }
        std::vector<pollfd> fds;
        std::vector<size_t> index;
        for (size_t i = 0; i < slots.size(); ++i) {
            auto& s = slots[i];
            if (s.response) {
                continue;
            }
            if (s.fd < 0) {
                s.fd = connectUnix(socketPath, true); // -1: backlog full, try again on the next round
                if (s.fd < 0) {
                    continue;
                }
            }
            if (s.written < s.out.size()) {
                auto n = ::send(s.fd, s.out.data() + s.written, s.out.size() - s.written, MSG_NOSIGNAL);
                if (n > 0) {
                    s.written += static_cast<size_t>(n);
                } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                    throw HarnessError(std::string("writing a concurrent request: ") + std::strerror(errno));
                }
            }
            fds.push_back({ s.fd, static_cast<short>(POLLIN | (s.written < s.out.size() ? POLLOUT : 0)), 0 });
            index.push_back(i);
        }
        ::poll(fds.data(), fds.size(), fds.size() < slots.size() - done ? 20 : remainingMs(until));
        for (size_t k = 0; k < fds.size(); ++k) {
            if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) {
                continue;
            }
            auto& s = slots[index[k]];
            bool open = readSome(s.fd, s.raw);
            if ((s.response = parseComplete(s.raw, !open))) {
                ::close(s.fd);
                s.fd = -1;
                ++done;
            }
        }
    }
    std::vector<HttpResponse> out;
    out.reserve(slots.size());
    for (auto& s : slots) {
        out.push_back(std::move(*s.response));
    }
    return out;
}

HttpStream::HttpStream(
    const std::string& socketPath, const HttpRequest& request, std::chrono::milliseconds headDeadline)
{
    auto until = Clock::now() + headDeadline;
    m_fd = connectUnix(socketPath, false);
    try {
        writeAll(m_fd, serialize(request), until);
        for (;;) {
            std::optional<HttpResponse> head;
            if ((head = parseHead(m_raw))) {
                m_head = std::move(*head);
                break;
            }
            if (!fill(until)) {
                throw HarnessError(
                    request.method + " " + request.target + ": the connection closed before a whole HTTP head");
            }
        }
    } catch (...) {
        ::close(m_fd);
        throw;
    }
    m_chunked = lower(m_head.header("transfer-encoding")).find("chunked") != std::string::npos;
    if (auto cl = m_head.header("content-length"); !cl.empty()) {
        m_length = std::stoul(cl);
    }
    decode();
}

HttpStream::~HttpStream()
{
    ::close(m_fd);
}

bool HttpStream::fill(Clock::time_point deadline)
{
    if (m_eof) {
        return false;
    }
    for (;;) {
        auto before = m_raw.size();
        if (!readSome(m_fd, m_raw)) {
            m_eof = true;
            return m_raw.size() > before;
        }
        if (m_raw.size() > before) {
            return true;
        }
        if (Clock::now() >= deadline) {
            throw HarnessError(
                "HTTP stream: nothing new before the deadline (decoded so far: '" + m_data.substr(0, 300) + "')");
        }
        pollfd p { m_fd, POLLIN, 0 };
        ::poll(&p, 1, remainingMs(deadline));
    }
}

bool HttpStream::decode()
{
    if (m_ended) {
        return true;
    }
    if (m_chunked) {
        m_ended = decodeChunks(m_raw, m_data);
    } else {
        m_data += m_raw;
        m_raw.clear();
        m_ended = m_length && m_data.size() >= *m_length;
    }
    return m_ended;
}

std::optional<std::string> HttpStream::readLine(std::chrono::milliseconds deadline)
{
    auto until = Clock::now() + deadline;
    for (;;) {
        auto nl = m_data.find('\n');
        if (nl != std::string::npos) {
            auto line = m_data.substr(0, nl);
            m_data.erase(0, nl + 1);
            return line;
        }
        if (m_ended || m_eof) {
            if (!m_data.empty()) {
                auto line = std::move(m_data);
                m_data.clear();
                return line;
            }
            return std::nullopt;
        }
        if (!fill(until)) {
            decode();
            continue;
        }
        decode();
    }
}

std::string HttpStream::readAll(std::chrono::milliseconds deadline)
{
    auto until = Clock::now() + deadline;
    while (!decode() && !m_eof) {
        fill(until);
    }
    decode();
    auto out = std::move(m_data);
    m_data.clear();
    return out;
}
} // namespace callhome::test
