// Proves the test peers are real call-home devices, using libnetconf2's own client-side call-home accept as an
// independent reference management station (not our listener).
#include "ReferenceClient.h"
#include "harness/HostKey.h"
#include "harness/Loopback.h"
#include "harness/Nc2Device.h"
#include "harness/SshdDevice.h"
#include "harness/TempDir.h"
#include "harness/Util.h"
#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <libyang/libyang.h>
#include <memory>
#include <nc_client.h>
#include <optional>

using namespace callhome::test;
using namespace std::chrono_literals;
using namespace callhome::test::reference;

namespace {
constexpr const char* kIetfModules = "/usr/share/yuma/modules/ietf";

int hostkeyCheck(const char*, ssh_session session, void* priv)
{
    try {
        ssh_key key = nullptr;
        if (ssh_get_server_publickey(session, &key) != SSH_OK) {
            return -1;
        }
        auto fingerprint = sshFingerprint(key);
        ssh_key_free(key);
        *static_cast<std::optional<std::string>*>(priv) = fingerprint;
        return 0;
    } catch (...) {
        return -1;
    }
}

char* passwordClb(const char*, const char*, void* priv)
{
    return strdup(static_cast<std::string*>(priv)->c_str());
}

/** The reference station: libnetconf2's call-home listener on 127.0.0.1 with a port picked at run time. */
class ReferenceClient {
public:
    ReferenceClient(const std::string& user, const KeyPair* key, const std::string& password)
        : m_password(password)
    {
        static NcClientLibrary library;
        nc_client_set_schema_searchpath(kIetfModules);
        nc_client_ssh_ch_set_username(user.c_str());
        nc_client_ssh_ch_set_auth_hostkey_check_clb(hostkeyCheck, &m_fingerprint);
        nc_client_ssh_ch_set_auth_password_clb(passwordClb, &m_password);
        nc_client_ssh_ch_set_auth_pref(NC_SSH_AUTH_INTERACTIVE, -1);
        nc_client_ssh_ch_set_auth_pref(NC_SSH_AUTH_PUBLICKEY, key ? 3 : -1);
        nc_client_ssh_ch_set_auth_pref(NC_SSH_AUTH_PASSWORD, password.empty() ? -1 : 2);
        if (key) {
            REQUIRE(nc_client_ssh_ch_add_keypair(key->publicKeyPath.c_str(), key->privateKeyPath.c_str()) == 0);
        }
        // libnetconf2 cannot listen on port 0 and report it: take a port the kernel just handed out.
        for (int attempt = 0; attempt < 5 && !m_port; ++attempt) {
            uint16_t candidate = TcpListener("127.0.0.1").port();
            if (nc_client_ssh_ch_add_bind_listen("127.0.0.1", candidate) == 0) {
                m_port = candidate;
            }
        }
        REQUIRE(m_port != 0);
    }

    ~ReferenceClient()
    {
        nc_client_ssh_ch_del_bind("127.0.0.1", m_port);
        while (nc_client_ssh_ch_get_keypair_count() > 0) {
            nc_client_ssh_ch_del_keypair(0);
        }
    }

    uint16_t port() const { return m_port; }
    const std::optional<std::string>& fingerprint() const { return m_fingerprint; }

    NcSessionPtr accept(std::chrono::milliseconds deadline)
    {
        nc_session* raw = nullptr;
        int rc = nc_accept_callhome(static_cast<int>(deadline.count()), nullptr, &raw);
        INFO("nc_accept_callhome returned " << rc);
        REQUIRE(rc == 1);
        return NcSessionPtr(raw);
    }

private:
    std::string m_password;
    std::optional<std::string> m_fingerprint;
    uint16_t m_port = 0;
};

} // namespace

TEST_CASE("sshd + netconfd device calls home and serves NETCONF")
{
    auto hostKeyType = GENERATE(KeyType::Ed25519, KeyType::Rsa);
    TempDir dir("callhome-peers");
    auto clientKey = generateHostKey(dir.path(), KeyType::Ed25519, "station_key");
    SshdDevice device(dir, hostKeyType, clientKey.publicKeyLine);
    ReferenceClient client(device.user(), &clientKey, "");

    device.callHome("127.0.0.1", client.port());
    auto session = client.accept(30s);

    REQUIRE(client.fingerprint() == device.hostKeyFingerprint());
    checkSession(session.get());
    REQUIRE(device.authAttempts() >= 1);
    REQUIRE(device.acceptedLogins() == 1);
    REQUIRE(device.netconfSessions() == 1);
}

TEST_CASE("libnetconf2 device calls home and serves NETCONF")
{
    TempDir dir("callhome-peers");
    auto clientKey = generateHostKey(dir.path(), KeyType::Ed25519, "station_key");
    std::string password;
    Nc2DeviceOptions options;
    SECTION("ecdsa host key, public key auth")
    {
        options.hostKeyType = KeyType::Ecdsa;
        options.authorizedKeyLine = clientKey.publicKeyLine;
    }
    SECTION("ed25519 host key, password auth")
    {
        options.hostKeyType = KeyType::Ed25519;
        options.password = password = "s3cret-test-only";
    }
    ReferenceClient client(currentUserName(), options.password.empty() ? &clientKey : nullptr, password);
    Nc2Device device(dir, "127.0.0.1", client.port(), options);

    auto session = client.accept(30s);
    REQUIRE(client.fingerprint() == device.hostKeyFingerprint());
    checkSession(session.get());

    NcRpcPtr getSchema(nc_rpc_getschema("ietf-netconf-monitoring", nullptr, "yang", NC_PARAMTYPE_CONST));
    auto schema = call(session.get(), getSchema.get());
    REQUIRE(schema.find("module ietf-netconf-monitoring") != std::string::npos);
    REQUIRE(schema.find("namespace \"urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring\"") != std::string::npos);

    const auto method = options.password.empty() ? "publickey " : "password ";
    REQUIRE(countLinesContaining(device.authLogPath(), method + currentUserName() + " accepted") >= 1);
    waitFor([&] { return device.sessionsEstablished() == 1; }, 5s, "the device to log its session");

    session.reset(); // sends <close-session>
    waitFor([&] { return device.sessionsEnded() == 1; }, 10s, "the device to log the session end");
    REQUIRE(device.stop() == 0);
}

TEST_CASE("a station that closes right after key exchange causes no authentication attempt")
{
    TempDir dir("callhome-peers");
    SshdDevice device(dir, KeyType::Ed25519, "");
    TcpListener listener(GENERATE(as<std::string> {}, "127.0.0.1", "::1"));

    auto& callHome = device.callHome(listener.address(), listener.port());
    auto fingerprint = sshKeyExchangeOnly(listener.accept(10s), 10s);
    REQUIRE(fingerprint == device.hostKeyFingerprint());
    REQUIRE(callHome.waitExit(10s).has_value());

    REQUIRE(device.keyExchanges() == 1);
    REQUIRE(device.authAttempts() == 0);
}

TEST_CASE("libnetconf2 device keeps calling home and logs no auth when closed after key exchange")
{
    TempDir dir("callhome-peers");
    TcpListener listener(GENERATE(as<std::string> {}, "127.0.0.1", "::1"));
    Nc2Device device(dir, listener.address(), listener.port(), { .hostKeyType = KeyType::Rsa });

    REQUIRE(sshKeyExchangeOnly(listener.accept(10s), 10s) == device.hostKeyFingerprint());
    // The device dials again (libnetconf2 retries a failed attempt after 1 s).
    REQUIRE(sshKeyExchangeOnly(listener.accept(10s), 10s) == device.hostKeyFingerprint());
    REQUIRE(device.authAttempts() == 0);
    REQUIRE(device.sessionsEstablished() == 0);
    REQUIRE(device.stop() == 0);
}

TEST_CASE("libnetconf2 device calls home again after a session ends")
{
    TempDir dir("callhome-peers");
    auto clientKey = generateHostKey(dir.path(), KeyType::Ed25519, "station_key");
    ReferenceClient client(currentUserName(), &clientKey, "");
    Nc2Device device(dir, "127.0.0.1", client.port(),
        { .hostKeyType = KeyType::Ed25519, .authorizedKeyLine = clientKey.publicKeyLine, .retryMs = 200 });

    for (int round = 1; round <= 2; ++round) {
        auto session = client.accept(30s);
        REQUIRE(client.fingerprint() == device.hostKeyFingerprint());
        checkSession(session.get());
        session.reset();
        waitFor([&] { return device.sessionsEnded() == round; }, 10s, "the device to log the session end");
    }
    REQUIRE(device.sessionsEstablished() == 2);
    REQUIRE(device.stop() == 0);
}
