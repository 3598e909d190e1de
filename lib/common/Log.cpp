#include "common/Log.h"
#include "common/Error.h"
#include <mutex>
#include <spdlog/sinks/stdout_color_sinks.h>
#ifdef CALLHOME_HAVE_SYSTEMD
#include <spdlog/sinks/systemd_sink.h>
#endif

namespace callhome::log {
namespace {
std::mutex g_mutex;
spdlog::sink_ptr g_sink;
spdlog::level::level_enum g_level = spdlog::level::info;

spdlog::sink_ptr sink()
{
    if (!g_sink) {
        g_sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
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
        g_sink = std::make_shared<spdlog::sinks::systemd_sink_mt>("callhomed");
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
