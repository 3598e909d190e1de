#include "common/Log.h"
#include "common/Error.h"
#include "common/Text.h"
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/systemd_sink.h>
#include <sys/stat.h>

namespace callhome::log {
namespace {
std::mutex g_mutex;
spdlog::sink_ptr g_sink;
Levels g_levels;
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

spdlog::sink_ptr stderrSink()
{
    auto s = std::make_shared<EscapingSink>(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    s->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ %n: %v");
    return s;
}

spdlog::sink_ptr journalSink()
{
    // The journal has its own time stamp and priority (from the level); the subsystem leads the message.
    auto s = std::make_shared<EscapingSink>(std::make_shared<spdlog::sinks::systemd_sink_mt>("callhomed", true));
    s->set_pattern("%n: %v");
    return s;
}

spdlog::sink_ptr sink()
{
    if (!g_sink) {
        g_sink = stderrSink();
    }
    return g_sink;
}

std::string_view levelName(spdlog::level::level_enum l)
{
    auto v = spdlog::level::to_string_view(l);
    return { v.data(), v.size() };
}

bool knownSubsystem(const std::string& name)
{
    for (const auto* s : Subsystems) {
        if (name == s) {
            return true;
        }
    }
    return false;
}
} // namespace

spdlog::level::level_enum Levels::of(const std::string& subsystem) const
{
    if (auto it = subsystems.find(subsystem); it != subsystems.end()) {
        return it->second;
    }
    return all.value_or(spdlog::level::info);
}

Levels Levels::overriddenBy(const Levels& over) const
{
    Levels out = *this;
    if (over.all) {
        out.all = over.all;
    }
    for (const auto& [name, level] : over.subsystems) {
        out.subsystems[name] = level;
    }
    return out;
}

std::string Levels::toString() const
{
    std::string out(levelName(all.value_or(spdlog::level::info)));
    for (const auto& [name, level] : subsystems) {
        out += "," + name + "=" + std::string(levelName(level));
    }
    return out;
}

void parseLevels(const std::string& text, Levels& into)
{
    size_t start = 0;
    while (true) {
        auto comma = text.find(',', start);
        auto item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (item.empty()) {
            throw UsageError(
                "log level '" + text + "': empty item (expected LEVEL or SUBSYSTEM=LEVEL, comma-separated)");
        }
        if (auto eq = item.find('='); eq == std::string::npos) {
            into.all = parseLevel(item);
        } else {
            auto name = item.substr(0, eq);
            if (!knownSubsystem(name)) {
                std::string names;
                for (const auto* s : Subsystems) {
                    names += names.empty() ? s : std::string(", ") + s;
                }
                throw UsageError("log level '" + text + "': unknown subsystem '" + name + "' (" + names + ")");
            }
            into.subsystems[name] = parseLevel(item.substr(eq + 1));
        }
        if (comma == std::string::npos) {
            return;
        }
        start = comma + 1;
    }
}

bool isJournalStream(const char* journalStream, int fd)
{
    if (!journalStream) {
        return false;
    }
    unsigned long long device = 0, inode = 0;
    int consumed = 0;
    if (std::sscanf(journalStream, "%llu:%llu%n", &device, &inode, &consumed) != 2 || journalStream[consumed]) {
        return false;
    }
    struct stat st { };
    return ::fstat(fd, &st) == 0 && static_cast<unsigned long long>(st.st_dev) == device
        && static_cast<unsigned long long>(st.st_ino) == inode;
}

Output init(const Levels& levels, Output output)
{
    if (output == Output::Auto) {
        // systemd sets JOURNAL_STREAM when stderr is connected to the journal; a redirected stderr no longer matches.
        output = isJournalStream(std::getenv("JOURNAL_STREAM"), 2) ? Output::Journal : Output::Stderr;
    }
    std::lock_guard lock(g_mutex);
    g_levels = levels;
    g_sink = output == Output::Journal ? journalSink() : stderrSink();
    spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) {
        l->sinks() = { g_sink };
        l->set_level(g_levels.of(l->name()));
    });
    return output;
}

Output init(spdlog::level::level_enum level, bool journal)
{
    Levels levels;
    levels.all = level;
    return init(levels, journal ? Output::Journal : Output::Stderr);
}

void setLevels(const Levels& levels)
{
    std::lock_guard lock(g_mutex);
    g_levels = levels;
    // spdlog's level is an atomic: threads logging meanwhile see the old or the new level, never a torn one.
    spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) { l->set_level(g_levels.of(l->name())); });
}

Levels levels()
{
    std::lock_guard lock(g_mutex);
    return g_levels;
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
    l->set_level(g_levels.of(name));
    spdlog::register_logger(l);
    return l;
}
} // namespace callhome::log
