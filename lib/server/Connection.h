#pragma once
#include "common/Time.h"
#include "common/UniqueFd.h"
#include "identity/Identity.h"
#include "netconf/Context.h"
#include "server/DeviceApi.h"
#include "server/EventLoop.h"
#include "server/Listener.h"
#include "transport/Framing.h"
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

namespace callhome::identity {
class TrustStore;
}
namespace callhome::transport {
class DeviceStream;
class SshHandshake;
struct Credentials;
class TlsHandshake;
class TlsClientContext;
} // namespace callhome::transport
namespace callhome::netconf {
class Session;
} // namespace callhome::netconf
namespace callhome::inventory {
class CredentialStore;
struct DeviceSecrets;
} // namespace callhome::inventory

namespace callhome::server {
class HookRunner;
class Metrics;
class SessionRegistry;
class WorkerPool;

/** Limits and timers of one connection (from the config). */
struct ConnectionLimits {
    std::chrono::milliseconds schemaFetch { 60000 }; ///< extra time for a first device's <get-schema> round trips
    std::chrono::milliseconds close { 2000 }; ///< wait for the <close-session> reply
    std::chrono::milliseconds keepaliveInterval { 30000 }; ///< 0: none
    unsigned keepaliveCountMax = 3;
    size_t maxMessage = 64 * 1024 * 1024;
    size_t maxHello = 1024 * 1024;
};

/** What connections share: the daemon's parts they call, all thread-safe. */
struct Services {
    ConnectionLimits limits;
    std::string sshUser;
    std::string sshKeyFile;
    std::optional<std::string> sshPassword; ///< fleet-wide: offered only to devices whose record allows fallback
    /** Per-device secrets, read on the inventory thread for a device whose record says it has some. */
    inventory::CredentialStore* credentials = nullptr;
    identity::IdentityPolicy* identity = nullptr;
    std::function<std::shared_ptr<const identity::TrustStore>()> trustStore;
    transport::TlsClientContext* tls = nullptr;
    netconf::ContextPool* contexts = nullptr;
    /** One thread, FIFO: identity decisions on new identities (they wait for their inventory record). */
    WorkerPool* inventory = nullptr;
    /** YANG context builds and nc_connect_inout: CPU only. */
    WorkerPool* setup = nullptr;
    /// one thread: SessionRegistry add/ended in order, off the loops (freeing a libnetconf2 session may wait on locks)
    WorkerPool* sessions = nullptr;
    SessionRegistry* registry = nullptr;
    Metrics* metrics = nullptr;
    /** A handshake ended (admission's per-source accounting); `failed` when it ended in a transport failure. */
    std::function<void(const std::string& address, bool failed)> handshakeEnded;
    /** Records a failed handshake (log line and event, at a bounded rate); called on the loop thread, never waits. */
    std::function<void(const std::string& connectionId, const std::string& address, const std::string& reason,
        const std::optional<inventory::Device>& device, const std::string& fingerprint)>
        recordFailure;
    /** Hooks (config hooks/...): on-pending and on-refused are submitted from the identity step; never waits. */
    HookRunner* hooks = nullptr;
};

/**
 * One device connection from accept to close, on one event loop: a state machine for the handshake (SSH key
 * exchange, identity, authentication, `netconf` channel; or TLS), then the device's transport pump. The pump owns
 * the device's socket and frames RFC 6242 messages both ways; libnetconf2 sits on a local socketpair and is handed
 * only whole messages, so it never waits on this device's network. Every phase has a deadline; buffers are bounded;
 * a device that exceeds a bound is disconnected alone, with the reason logged.
 */
class Connection : public Pollable {
public:
    /** `services` as of the accept; the connection keeps them (a reload publishes new ones for later connections). */
    Connection(EventLoop& loop, std::shared_ptr<Services> services, Accepted accepted, std::string id,
        TimePoint acceptedAt, std::chrono::steady_clock::time_point deadline);
    ~Connection() override;
    /** Starts the state machine; `token` is this connection's on its loop. */
    void begin(uint64_t token);
    void onEvents(uint32_t events) override;
    void onTimer() override;
    /** Re-arms the timer after work done outside onEvents/onTimer (a result posted to the loop). */
    void rearm() { armTimer(); }
    /** Ends a live session (<close-session>, bounded wait) or an unfinished handshake. */
    void requestClose(const std::string& reason);
    /** A control-API RPC: queued, then pipelined into the session (at most kRpcsInFlight at a time). */
    void submitRpc(std::shared_ptr<RpcCall> call);
    /** A notification follower; the first one subscribes the session (<create-subscription> to `stream`). */
    void follow(std::shared_ptr<NotificationSink> sink, const std::string& stream);
    void unfollow(const std::shared_ptr<NotificationSink>& sink);

    enum class Phase {
        AwaitBanner, ///< SSH: no libssh state until the device says something
        SshKeyExchange,
        Identity, ///< the decision is made on the inventory thread
        SshAuthenticate,
        SshChannel,
        TlsHandshake,
        Hello, ///< pump running: waiting for the device's <hello>
        Context, ///< waiting for a YANG context (built by us or by another device of the same module set)
        Schemas, ///< <get-schema> round trips for a first device of a module set
        Setup, ///< nc_connect_inout on a setup thread
        Established,
        Closing,
        Done,
    };

private:
    using Clock = std::chrono::steady_clock;
    void advance();
    void handshakeStep();
    /** Runs the identity step on the inventory thread (it reads and writes SQLite); decided() gets the answer. */
    void decide(std::function<identity::Decision()> decideOnInventoryThread);
    void decided(identity::Decision decision);
    /** SSH, accepted: gathers what to authenticate with (the device's own secrets off the loop), then authenticates. */
    void prepareCredentials();
    void credentialsLoaded(std::optional<inventory::DeviceSecrets> secrets, const std::string& error);
    void startPump();
    void pump();
    /** Runs pump() soon, once, from the loop (work queued outside a pump pass). */
    void schedulePump();
    bool readDevice();
    bool readLibnetconf2();
    bool writeDevice();
    bool writeLibnetconf2();
    void onDeviceMessage(std::string message);
    void onLibnetconf2Message(std::string message);
    void onHello(const std::string& message);
    void haveContext(std::shared_ptr<netconf::Context> context);
    void buildContext();
    void built(std::shared_ptr<netconf::Context> context, std::set<netconf::SchemaRequest> fetch);
    void fetchSchemas(const std::set<netconf::SchemaRequest>& fetch);
    void onSchemaReply(const std::string& messageId, const std::string& message);
    void sessionReady(std::shared_ptr<netconf::Session> session);
    void maybeEstablished();
    void sendOwn(const std::string& messageId, const std::string& body);
    void queueToDevice(const std::string& message);
    void keepalive();
    void sendRpcs();
    void expireRpcs(Clock::time_point now);
    /** Answers the call (once) and forgets its deadline. */
    void complete(const std::shared_ptr<RpcCall>& call, RpcOutcome outcome);
    void onSubscriptionReply(const std::string& message);
    void onNotification(const std::string& message);
    /** The session ends: every queued and outstanding RPC gets `kind`, every follower ended(). */
    void endApi(RpcOutcome::Kind kind, const std::string& detail);
    void touched();
    void updateInterest();
    void armTimer();
    void fail(const std::string& reason);
    void finish(const std::string& reason, bool failure, bool destructing = false);
    void releaseAdmission(bool failed);
    bool pastHandshake() const noexcept { return m_phase == Phase::Established || m_phase == Phase::Closing; }
    std::string tag() const;
    int deviceFd() const;

    EventLoop& m_loop;
    std::shared_ptr<Services> m_servicesHeld; ///< keeps m_services alive
    Services& m_services;
    uint64_t m_token = 0;
    std::string m_id;
    std::string m_address;
    uint16_t m_port = 0;
    bool m_tls = false;
    TimePoint m_acceptedAt;
    Phase m_phase = Phase::AwaitBanner;
    Clock::time_point m_deadline;
    UniqueFd m_socket; ///< until a handshake object takes it
    std::unique_ptr<transport::SshHandshake> m_ssh;
    std::unique_ptr<transport::TlsHandshake> m_tlsHandshake;
    std::optional<inventory::Device> m_device;
    std::string m_fingerprint;
    /// what we authenticate with, from the accept until authentication ends (then wiped: Secret)
    std::unique_ptr<transport::Credentials> m_credentials;
    bool m_loadingCredentials = false;

    // The pump.
    std::unique_ptr<transport::DeviceStream> m_stream;
    UniqueFd m_local; ///< our end of the socketpair; the other is libnetconf2's
    UniqueFd m_ncEnd; ///< libnetconf2's end until the setup thread takes it
    transport::FrameDecoder m_fromDevice;
    transport::FrameDecoder m_fromNc;
    transport::Framing m_deviceFraming = transport::Framing::EndOfMessage;
    std::string m_toDevice;
    size_t m_toDeviceOffset = 0;
    std::string m_toNc;
    size_t m_toNcOffset = 0;
    bool m_ncHelloSeen = false; ///< libnetconf2's own <hello> (swallowed: ours already went out)
    bool m_ourHelloFlushed = false;
    size_t m_ourHelloEnd = 0; ///< m_toDevice offset where our <hello> ends
    Clock::time_point m_holdUntil {}; ///< nothing after our <hello> goes out before then (see kHelloSettle)
    std::vector<std::string> m_held; ///< messages waiting for m_holdUntil
    std::vector<std::string> m_capabilities;
    std::optional<uint32_t> m_deviceSessionId;
    std::string m_contextKey;
    bool m_building = false;
    bool m_waitingContext = false;
    std::shared_ptr<netconf::Context> m_context;
    uint64_t m_waiterId = 0;
    std::set<netconf::SchemaRequest> m_fetched; ///< asked for already (answered or not): never asked twice
    std::map<std::string, netconf::SchemaRequest> m_pendingSchemas; ///< by message-id
    std::vector<std::pair<netconf::SchemaRequest, std::string>> m_schemaTexts; ///< served this round
    unsigned m_schemaRounds = 0;
    std::shared_ptr<netconf::Session> m_session; ///< ready, not yet handed to the registry
    bool m_admissionReleased = false;
    bool m_repumpPosted = false;
    bool m_inPump = false;
    uint64_t m_registryToken = 0;
    bool m_registered = false;
    std::set<std::string> m_ncOutstanding; ///< message-ids of libnetconf2's RPCs awaiting replies
    bool m_subscribed = false;
    uint64_t m_ownSequence = 0;
    std::string m_closeId;
    std::string m_closeReason;
    Clock::time_point m_lastHeard {};
    Clock::time_point m_lastWriteProgress {};
    Clock::time_point m_nextKeepalive = Clock::time_point::max();
    std::string m_probeId; ///< outstanding NETCONF probe (TLS)
    bool m_sshProbeOutstanding = false;
    Clock::time_point m_closeDeadline = Clock::time_point::max();
    unsigned m_unanswered = 0;
    uint64_t m_dropped = 0; ///< device messages nobody asked for (dropped)
    // The control API's requests and followers.
    std::deque<std::shared_ptr<RpcCall>> m_rpcQueue; ///< not sent yet
    std::map<uint64_t, std::shared_ptr<RpcCall>> m_rpcOutstanding; ///< sent, by sequence (message-id callhome-api-N)
    std::set<std::pair<Clock::time_point, RpcCall*>> m_rpcDeadlines; ///< of every queued and outstanding call
    uint64_t m_rpcSequence = 0;
    std::vector<std::shared_ptr<NotificationSink>> m_followers;
    enum class Subscription { None, Requested, Active } m_subscription = Subscription::None;
    std::string m_subscriptionId; ///< message-id of our <create-subscription>
    std::string m_subscriptionStream;
    std::shared_ptr<SessionStats> m_stats = std::make_shared<SessionStats>();
    uint32_t m_watchedDevice = UINT32_MAX; ///< events last set on the device socket
    uint32_t m_watchedLocal = UINT32_MAX;
    int m_watchedDeviceFd = -1;
};
} // namespace callhome::server
