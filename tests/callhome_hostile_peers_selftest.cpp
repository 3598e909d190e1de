// Proves the hostile peers of tests/hostile/ do what they claim, against independent clients on loopback: libssh as
// the SSH client, OpenSSL as the TLS client, plain sockets for the TCP-level peers (not our listener).
#include "harness/DevPki.h"
#include "harness/HostKey.h"
#include "harness/HostilePeer.h"
#include "harness/Loopback.h"
#include "harness/TempDir.h"
#include "harness/Util.h"
#include <catch2/catch.hpp>
#include <cerrno>
#include <fcntl.h>
#include <iostream>
#include <libssh/libssh.h>
#include <memory>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace callhome;
using namespace callhome::test;
using namespace std::chrono_literals;

namespace {
const std::string kClientHello11 = R"(<?xml version="1.0" encoding="UTF-8"?>)"
                                   R"(<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities>)"
                                   R"(<capability>urn:ietf:params:netconf:base:1.0</capability>)"
                                   R"(<capability>urn:ietf:params:netconf:base:1.1</capability>)"
                                   R"(</capabilities></hello>]]>]]>)";
const std::string kClientHello10 = R"(<?xml version="1.0" encoding="UTF-8"?>)"
                                   R"(<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities>)"
                                   R"(<capability>urn:ietf:params:netconf:base:1.0</capability>)"
                                   R"(</capabilities></hello>]]>]]>)";

std::string chunk(const std::string& message)
{
    return "\n#" + std::to_string(message.size()) + "\n" + message + "\n##\n";
}

std::string rpc(int id, const std::string& operation)
{
    return R"(<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id=")" + std::to_string(id) + R"(">)"
        + operation + "</rpc>";
}

size_t occurrences(const std::string& haystack, const std::string& needle)
{
    size_t n = 0;
    for (auto pos = haystack.find(needle); pos != std::string::npos; pos = haystack.find(needle, pos + needle.size())) {
        ++n;
    }
    return n;
}

struct SshFree {
    void operator()(ssh_session s) const noexcept
    {
        ssh_disconnect(s);
        ssh_free(s);
    }
};
using SshPtr = std::unique_ptr<std::remove_pointer_t<ssh_session>, SshFree>;
struct ChannelFree {
    void operator()(ssh_channel c) const noexcept { ssh_channel_free(c); }
};
using ChannelPtr = std::unique_ptr<std::remove_pointer_t<ssh_channel>, ChannelFree>;
struct KeyFree {
    void operator()(ssh_key k) const noexcept { ssh_key_free(k); }
};
using KeyPtr = std::unique_ptr<std::remove_pointer_t<ssh_key>, KeyFree>;

/** A libssh client on an accepted call-home socket: what a management station does, written independently. */
class SshClient {
public:
    SshClient(UniqueFd socket, const KeyPair& clientKey, long timeoutSeconds = 10)
        : m_fd(std::move(socket))
        , m_session(ssh_new())
    {
        ssh_session s = m_session.get();
        int noConfig = 0;
        int fd = m_fd.get();
        REQUIRE(ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &noConfig) == SSH_OK);
        REQUIRE(ssh_options_set(s, SSH_OPTIONS_HOST, "127.0.0.1") == SSH_OK);
        REQUIRE(ssh_options_set(s, SSH_OPTIONS_USER, "netconf") == SSH_OK);
        REQUIRE(ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, "/dev/null") == SSH_OK);
        REQUIRE(ssh_options_set(s, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null") == SSH_OK);
        REQUIRE(ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &timeoutSeconds) == SSH_OK);
        REQUIRE(ssh_options_set(s, SSH_OPTIONS_FD, &fd) == SSH_OK);
        INFO(ssh_get_error(s));
        REQUIRE(ssh_connect(s) == SSH_OK);
        ssh_key raw = nullptr;
        REQUIRE(ssh_get_server_publickey(s, &raw) == SSH_OK);
        KeyPtr hostKey(raw);
        m_fingerprint = sshFingerprint(hostKey.get());
        ssh_key priv = nullptr;
        REQUIRE(
            ssh_pki_import_privkey_file(clientKey.privateKeyPath.c_str(), nullptr, nullptr, nullptr, &priv) == SSH_OK);
        KeyPtr key(priv);
        REQUIRE(ssh_userauth_publickey(s, nullptr, key.get()) == SSH_AUTH_SUCCESS);
    }

    const std::string& serverFingerprint() const { return m_fingerprint; }
    ssh_session session() { return m_session.get(); }
    ssh_channel channel() { return m_channel.get(); }

    void openNetconf()
    {
        m_channel.reset(ssh_channel_new(m_session.get()));
        REQUIRE(m_channel);
        REQUIRE(ssh_channel_open_session(m_channel.get()) == SSH_OK);
        REQUIRE(ssh_channel_request_subsystem(m_channel.get(), "netconf") == SSH_OK);
    }

    /** Reads channel data into `received` until `done(received)` or `deadline`; false on timeout or EOF. */
    bool readUntil(const std::function<bool(const std::string&)>& done, std::chrono::milliseconds deadline)
    {
        const auto until = Clock::now() + deadline;
        char buf[65536];
        while (!done(received)) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
            if (left <= 0 || ssh_channel_is_eof(m_channel.get())) {
                return false;
            }
            int n
                = ssh_channel_read_timeout(m_channel.get(), buf, sizeof buf, 0, static_cast<int>(std::min(left, 200L)));
            if (n == SSH_ERROR) {
                return false;
            }
            received.append(buf, static_cast<size_t>(n));
        }
        return true;
    }

    bool readContaining(const std::string& needle, std::chrono::milliseconds deadline)
    {
        return readUntil([&](const std::string& r) { return r.find(needle) != std::string::npos; }, deadline);
    }

    void write(const std::string& data)
    {
        REQUIRE(ssh_channel_write(m_channel.get(), data.data(), static_cast<uint32_t>(data.size()))
            == static_cast<int>(data.size()));
    }

    std::string received;

private:
    UniqueFd m_fd; // libssh does not close an SSH_OPTIONS_FD socket: it goes after the session
    SshPtr m_session;
    ChannelPtr m_channel;
    std::string m_fingerprint;
};

struct SslCtxFree {
    void operator()(SSL_CTX* c) const noexcept { SSL_CTX_free(c); }
};
struct SslFree {
    void operator()(SSL* s) const noexcept { SSL_free(s); }
};

/** An OpenSSL client with the station's certificate on an accepted call-home socket. */
class TlsClient {
public:
    TlsClient(UniqueFd socket, const DevPki& pki)
        : m_fd(std::move(socket))
        , m_ctx(SSL_CTX_new(TLS_client_method()))
    {
        REQUIRE(m_ctx);
        auto station = pki.station();
        REQUIRE(SSL_CTX_use_certificate_chain_file(m_ctx.get(), station.chain.c_str()) == 1);
        REQUIRE(SSL_CTX_use_PrivateKey_file(m_ctx.get(), station.key.c_str(), SSL_FILETYPE_PEM) == 1);
        REQUIRE(SSL_CTX_load_verify_locations(m_ctx.get(), pki.manufacturerCa().c_str(), nullptr) == 1);
        SSL_CTX_set_verify(m_ctx.get(), SSL_VERIFY_PEER, nullptr);
        m_ssl.reset(SSL_new(m_ctx.get()));
        SSL_set_fd(m_ssl.get(), m_fd.get());
        timeval tv { 10, 0 };
        ::setsockopt(m_fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        INFO(ERR_error_string(ERR_peek_last_error(), nullptr));
        REQUIRE(SSL_connect(m_ssl.get()) == 1);
        tv = { 0, 200000 };
        ::setsockopt(m_fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }

    bool readContaining(const std::string& needle, std::chrono::milliseconds deadline)
    {
        return readUntil([&](const std::string& r) { return r.find(needle) != std::string::npos; }, deadline);
    }

    bool readUntil(const std::function<bool(const std::string&)>& done, std::chrono::milliseconds deadline)
    {
        const auto until = Clock::now() + deadline;
        char buf[65536];
        while (!done(received)) {
            if (Clock::now() >= until) {
                return false;
            }
            int n = SSL_read(m_ssl.get(), buf, sizeof buf);
            if (n > 0) {
                received.append(buf, static_cast<size_t>(n));
            } else if (SSL_get_error(m_ssl.get(), n) != SSL_ERROR_WANT_READ) {
                return false;
            }
        }
        return true;
    }

    void write(const std::string& data)
    {
        REQUIRE(SSL_write(m_ssl.get(), data.data(), static_cast<int>(data.size())) > 0);
    }

    /** Writes non-blocking until nothing more goes out for `stall`; returns the bytes written (bounded by `cap`). */
    size_t writeUntilStalled(std::chrono::milliseconds stall, size_t cap)
    {
        ::fcntl(m_fd.get(), F_SETFL, ::fcntl(m_fd.get(), F_GETFL) | O_NONBLOCK);
        std::string block(65536, 'x');
        size_t total = 0;
        failed = false;
        while (total < cap) {
            int n = SSL_write(m_ssl.get(), block.data(), static_cast<int>(block.size()));
            if (n > 0) {
                total += static_cast<size_t>(n);
                continue;
            }
            if (auto e = SSL_get_error(m_ssl.get(), n); e != SSL_ERROR_WANT_WRITE) {
                UNSCOPED_INFO("SSL_write: error " << e << " " << ERR_error_string(ERR_get_error(), nullptr));
                failed = true;
                break;
            }
            pollfd p { m_fd.get(), POLLOUT, 0 };
            if (::poll(&p, 1, static_cast<int>(stall.count())) == 0) {
                break; // the peer has not read a byte for `stall`
            }
        }
        return total;
    }

    std::string received;
    bool failed = false; ///< writeUntilStalled ended on an error, not on a stall

private:
    UniqueFd m_fd;
    std::unique_ptr<SSL_CTX, SslCtxFree> m_ctx;
    std::unique_ptr<SSL, SslFree> m_ssl;
};

/** Nothing more arrives on the channel for `window`: reads for that long and returns what came. */
std::string quietFor(SshClient& c, std::chrono::milliseconds window)
{
    auto before = c.received.size();
    c.readUntil([](const std::string&) { return false; }, window);
    return c.received.substr(before);
}
} // namespace

TEST_CASE("SSH hostile peer: first contact closed after key exchange; the station sees the harness fingerprint")
{
    TempDir dir("hostile-selftest");
    TcpListener l;
    HostilePeer peer(dir, HostileKind::Ssh);
    auto& attempt = peer.callHome("normal", "127.0.0.1", l.port());
    CHECK(sshKeyExchangeOnly(l.accept(10s), 10s) == peer.hostKeyFingerprint());
    REQUIRE(attempt.waitExit(10s) == 0);
    CHECK(attempt.has("closed"));
    CHECK_FALSE(attempt.has("auth"));
}

TEST_CASE("SSH hostile peer: half-message sends the start of a message and then nothing")
{
    TempDir dir("hostile-selftest");
    TcpListener l;
    const bool base11 = GENERATE(true, false);
    INFO("base:1.1 " << base11);
    auto key = generateHostKey(dir.path(), KeyType::Ed25519, "client");
    HostilePeer peer(dir, HostileKind::Ssh, { .base11 = base11 });
    auto& attempt = peer.callHome("half-message", "127.0.0.1", l.port());
    SshClient c(l.accept(10s), key);
    CHECK(c.serverFingerprint() == peer.hostKeyFingerprint());
    c.openNetconf();
    REQUIRE(c.readContaining("]]>]]>", 5s));
    CHECK(occurrences(c.received, "urn:ietf:params:netconf:base:1.1") == (base11 ? 1 : 0));
    c.received.clear();
    c.write(kClientHello11);
    attempt.waitFor("partial-sent", 5s);
    const std::string expected = base11 ? "\n#1000\n<rpc-reply mess" : R"(<rpc-reply message-id="1")";
    REQUIRE(c.readContaining(expected, 5s));
    CHECK(quietFor(c, 1s).empty()); // and nothing more: the message stays unfinished
    CHECK(c.received.find("]]>]]>") == std::string::npos);
    CHECK(c.received.find("\n##\n") == std::string::npos);
    CHECK(attempt.process().running()); // connection kept open
}

TEST_CASE("SSH hostile peer: zero-window advertises a channel window of 0 and never grows it")
{
    TempDir dir("hostile-selftest");
    TcpListener l;
    auto key = generateHostKey(dir.path(), KeyType::Ed25519, "client");
    HostilePeer peer(dir, HostileKind::Ssh);
    auto& attempt = peer.callHome("zero-window", "127.0.0.1", l.port());
    SshClient c(l.accept(10s), key);
    c.openNetconf();
    CHECK(ssh_channel_window_size(c.channel()) == 0);
    REQUIRE(c.readContaining("]]>]]>", 5s)); // the peer's own <hello> still comes
    attempt.waitFor("window-zero", 5s);
    quietFor(c, 500ms); // processes whatever the peer sends meanwhile (no window adjust ever comes)
    CHECK(ssh_channel_window_size(c.channel()) == 0);
}

TEST_CASE("SSH hostile peer: notification-flood floods")
{
    TempDir dir("hostile-selftest");
    TcpListener l;
    auto key = generateHostKey(dir.path(), KeyType::Ed25519, "client");
    HostilePeer peer(dir, HostileKind::Ssh);
    auto& attempt = peer.callHome("notification-flood", "127.0.0.1", l.port());
    SshClient c(l.accept(10s), key);
    c.openNetconf();
    REQUIRE(c.readContaining("]]>]]>", 5s));
    CHECK(c.received.find("urn:ietf:params:netconf:capability:notification:1.0") != std::string::npos);
    c.received.clear();
    c.write(kClientHello11);
    const auto start = Clock::now();
    // counted from the raw chunked stream, so the parser here is independent of the peer's framer
    REQUIRE(c.readUntil([](const std::string& r) { return occurrences(r, "</notification>") >= 5000; }, 10s));
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    std::cerr << "flood: 5000 notifications in " << took.count() << " ms\n";
    CHECK(c.received.rfind("\n#", 0) == 0); // chunked after the base:1.1 hello
    attempt.waitFor("flooding", 1s);
}

TEST_CASE("SSH hostile peer: huge-message sends one message of the announced size")
{
    TempDir dir("hostile-selftest");
    TcpListener l;
    auto key = generateHostKey(dir.path(), KeyType::Ed25519, "client");
    HostilePeer peer(dir, HostileKind::Ssh);
    const size_t size = 8 * 1024 * 1024; // the isolation suite uses the default 100 MB
    auto& attempt = peer.callHome("huge-message", "127.0.0.1", l.port(), { "--huge-size", std::to_string(size) });
    SshClient c(l.accept(10s), key);
    c.openNetconf();
    REQUIRE(c.readContaining("]]>]]>", 5s));
    c.received.clear();
    c.write(kClientHello11);
    REQUIRE(c.readContaining("</rpc-reply>\n##\n", 20s));
    CHECK(c.received.rfind("\n#" + std::to_string(size) + "\n<rpc-reply", 0) == 0); // one chunk, the whole message
    CHECK(c.received.size() == size + std::to_string(size).size() + 3 + 4);
    attempt.waitFor("huge-sent", 5s);
}

TEST_CASE("SSH hostile peer: no-close-reply answers nothing, <close-session> included")
{
    TempDir dir("hostile-selftest");
    TcpListener l;
    auto key = generateHostKey(dir.path(), KeyType::Ed25519, "client");
    HostilePeer peer(dir, HostileKind::Ssh);
    auto& attempt = peer.callHome("no-close-reply", "127.0.0.1", l.port());
    SshClient c(l.accept(10s), key);
    c.openNetconf();
    REQUIRE(c.readContaining("]]>]]>", 5s));
    c.received.clear();
    c.write(kClientHello11);
    c.write(chunk(rpc(7, "<close-session/>")));
    attempt.waitFor("close-session-ignored", 5s);
    CHECK(quietFor(c, 1s).empty());
    CHECK(attempt.process().running());
}

TEST_CASE("SSH hostile peer: no-keepalive-reply leaves SSH requests unanswered but NETCONF working")
{
    TempDir dir("hostile-selftest");
    TcpListener l;
    auto key = generateHostKey(dir.path(), KeyType::Ed25519, "client");
    HostilePeer peer(dir, HostileKind::Ssh);
    const bool hostile = GENERATE(false, true);
    INFO((hostile ? "no-keepalive-reply" : "normal"));
    auto& attempt = peer.callHome(hostile ? "no-keepalive-reply" : "normal", "127.0.0.1", l.port());
    SshClient c(l.accept(10s), key, 2);
    c.openNetconf();
    REQUIRE(c.readContaining("]]>]]>", 5s));
    c.received.clear();
    c.write(kClientHello10);
    attempt.waitFor("hello-received", 5s);

    // A channel request that wants a reply: the normal peer refuses it at once, the hung one never answers
    // (libssh gives up at the session timeout, 2 s).
    const auto start = Clock::now();
    ssh_channel_request_env(c.channel(), "HOSTILE", "1");
    const auto took = Clock::now() - start;
    if (hostile) {
        CHECK(took >= 1500ms);
        attempt.waitFor("request-ignored", 2s);
    } else {
        CHECK(took < 1s);
        CHECK_FALSE(attempt.has("request-ignored"));
    }
    // the NETCONF layer still answers
    c.write(rpc(3, "<get/>") + "]]>]]>");
    REQUIRE(c.readContaining(R"(message-id="3"><ok/>)", 5s));
}

TEST_CASE("TLS hostile peer: half-message and never-read, against an OpenSSL client with the station certificate")
{
    TempDir dir("hostile-selftest");
    DevPki pki(dir);
    TcpListener l;
    HostilePeer peer(
        dir, HostileKind::Tls, { .tlsIdentity = pki.device("unknown-0005"), .trustedCaPath = pki.stationCa() });
    SECTION("half-message")
    {
        auto& attempt = peer.callHome("half-message", "127.0.0.1", l.port());
        TlsClient c(l.accept(10s), pki);
        attempt.waitFor("tls-handshake-done", 5s);
        CHECK_THAT(*attempt.find("tls-handshake-done"), Catch::Contains("TLSv1.3"));
        REQUIRE(c.readContaining("]]>]]>", 5s));
        c.received.clear();
        c.write(kClientHello11);
        REQUIRE(c.readContaining("\n#1000\n<rpc-reply mess", 5s));
        CHECK_FALSE(c.readContaining("\n##\n", 1s));
        CHECK(attempt.process().running());
    }
    SECTION("never-read: writes to it stall after a bounded amount")
    {
        auto& attempt = peer.callHome("never-read", "127.0.0.1", l.port());
        TlsClient c(l.accept(10s), pki);
        REQUIRE(c.readContaining("]]>]]>", 5s));
        attempt.waitFor("never-reading", 5s);
        auto written = c.writeUntilStalled(500ms, 64u << 20);
        std::cerr << "never-read: stalled after " << written << " bytes\n";
        CHECK_FALSE(c.failed);
        CHECK(written > 0);
        CHECK(written < (32u << 20)); // socket buffers only; the peer read none of it
    }
    SECTION("notification-flood")
    {
        auto& attempt = peer.callHome("notification-flood", "127.0.0.1", l.port());
        TlsClient c(l.accept(10s), pki);
        REQUIRE(c.readContaining("]]>]]>", 5s));
        c.received.clear();
        c.write(kClientHello11);
        REQUIRE(c.readUntil([](const std::string& r) { return occurrences(r, "</notification>") >= 5000; }, 10s));
        attempt.waitFor("flooding", 1s);
    }
}

TEST_CASE("TCP peers: silent sockets, garbage, reset storm")
{
    TempDir dir("hostile-selftest");
    TcpListener l;
    HostilePeer peer(dir, HostileKind::Tcp);
    SECTION("64 silent sockets send nothing and the peer exits once they are all closed")
    {
        auto& attempt = peer.callHome("silent", "127.0.0.1", l.port(), { "--count", "64" });
        std::vector<UniqueFd> accepted;
        for (int i = 0; i < 64; ++i) {
            accepted.push_back(l.accept(10s));
        }
        attempt.waitFor("all-connected", 5s);
        CHECK(*attempt.find("all-connected") == "all-connected 64");
        std::vector<pollfd> fds;
        for (auto& fd : accepted) {
            fds.push_back({ fd.get(), POLLIN, 0 });
        }
        CHECK(::poll(fds.data(), fds.size(), 500) == 0); // not a byte from any of them
        accepted.clear();
        REQUIRE(attempt.waitExit(10s) == 0);
        CHECK(attempt.has("all-closed 64"));
    }
    SECTION("garbage: a bogus banner and random bytes")
    {
        auto& attempt = peer.callHome("garbage", "127.0.0.1", l.port(), { "--bytes", "10000" });
        auto fd = l.accept(10s);
        std::string got;
        char buf[65536];
        waitFor(
            [&] {
                pollfd p { fd.get(), POLLIN, 0 };
                if (::poll(&p, 1, 100) > 0) {
                    auto n = ::read(fd.get(), buf, sizeof buf);
                    got.append(buf, n > 0 ? static_cast<size_t>(n) : 0);
                }
                return got.size() >= 10000;
            },
            5s, "garbage");
        CHECK(got.rfind("SSH-2.0-\x7fhostile", 0) == 0);
        fd.reset();
        REQUIRE(attempt.waitExit(5s) == 0);
    }
    SECTION("reset storm: every connection arrives reset")
    {
        auto& attempt = peer.callHome("reset-storm", "127.0.0.1", l.port(), { "--count", "20", "--rate", "200" });
        int resets = 0;
        for (int i = 0; i < 20; ++i) {
            auto fd = l.accept(10s);
            char c;
            pollfd p { fd.get(), POLLIN, 0 };
            REQUIRE(::poll(&p, 1, 5000) == 1);
            if (::read(fd.get(), &c, 1) < 0 && errno == ECONNRESET) {
                ++resets;
            }
        }
        CHECK(resets == 20);
        REQUIRE(attempt.waitExit(10s) == 0);
        CHECK(attempt.has("storm-done 20 resets, 0 failed connects"));
    }
}
