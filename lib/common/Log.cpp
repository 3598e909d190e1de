#include "common/Log.h"
#include "common/Error.h"
#include "common/Text.h"
#include <mutex>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#ifdef CALLHOME_HAVE_SYSTEMD
#include <spdlog/sinks/systemd_sink.h>
#endif

namespace callhome::log {
namespace {
std::mutex g_mutex;
spdlog::sink_ptr g_sink;
spdlog::level::level_enum g_level = spdlog::level::info;

/**
 * Escapes control characters in every message before the real sink sees it (common/Text.h): log lines carry text
 * devices chose (disconnect reasons, banners, certificate fields, libssh/libnetconf2 errors quoting them), and no
 * peer may put an escape sequence on an operator's terminal or a forged line into the journal.
 */
class EscapingSink : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
public:
    explicit EscapingSink(spdlog::sink_ptr inner)
        : m_inner(std::move(inner))
    { }

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override
    {
        std::string_view payload(msg.payload.data(), msg.payload.size());
        if (!needsEscape(payload)) {
            m_inner->log(msg);
            return;
        }
        auto escaped = escapeControl(payload);
        spdlog::details::log_msg copy(msg);
        copy.payload = spdlog::string_view_t(escaped.data(), escaped.size());
        m_inner->log(copy);
    }
    void flush_() override { m_inner->flush(); }
    void set_pattern_(const std::string& pattern) override { m_inner->set_pattern(pattern); }
    void set_formatter_(std::unique_ptr<spdlog::formatter> f) override { m_inner->set_formatter(std::move(f)); }

private:
    spdlog::sink_ptr m_inner;
};

spdlog::sink_ptr sink()
{
    if (!g_sink) {
        g_sink = std::make_shared<EscapingSink>(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    }
    return g_sink;
}
} // namespace

void init(spdlog::level::level_enum level, bool journal)
{
    std::lock_guard lock(g_mutex);
    g_level = level;
#ifdef CALLHOME_HAVE_SYSTEMD
    if (journal) {
        g_sink = std::make_shared<EscapingSink>(std::make_shared<spdlog::sinks::systemd_sink_mt>("callhomed"));
    }
#else
    (void)journal;
#endif
    spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) {
        l->sinks() = { sink() };
        l->set_level(level);
    });
}

spdlog::level::level_enum parseLevel(const std::string& name)
{
    static const std::pair<const char*, spdlog::level::level_enum> names[]
        = { { "trace", spdlog::level::trace }, { "debug", spdlog::level::debug }, { "info", spdlog::level::info },
              { "warning", spdlog::level::warn }, { "warn", spdlog::level::warn }, { "error", spdlog::level::err },
              { "critical", spdlog::level::critical }, { "off", spdlog::level::off } };
    for (const auto& [n, l] : names) {
        if (name == n) {
            return l;
        }
    }
    throw UsageError("unknown log level '" + name + "' (trace, debug, info, warning, error, critical, off)");
}

std::shared_ptr<spdlog::logger> get(const char* name)
{
    std::lock_guard lock(g_mutex);
    if (auto l = spdlog::get(name)) {
        return l;
    }
    auto l = std::make_shared<spdlog::logger>(name, sink());
    l->set_level(g_level);
    l->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ %n: %v");
    spdlog::register_logger(l);
    return l;
}
} // namespace callhome::log
