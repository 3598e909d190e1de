#pragma once
// Helpers shared by the control-API tests (callhome_api*.cpp): the in-process station with its API, requests with
// the harness's own HTTP client, and callhomectl as a process against the same socket.
#include "Binaries.h"
#include "CallhomeFixture.h"
#include "harness/Process.h"
#include "harness/UnixHttp.h"
#include "harness/Util.h"
#include <catch2/catch.hpp>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace callhome::test::api {
using nlohmann::json;

/**
 * Restarts the fixture's station with a handshake deadline that a loaded machine meets (netconfd behind sshd can take
 * seconds for its <hello>; the fixture's 3 s is for the handshake tests) and starts its control API.
 */
inline void startWithApi(CallhomeFixture& f)
{
    f.config.handshakeTimeout = std::chrono::seconds(15);
    f.stop();
    f.start();
    f.startApi();
}

/** The path of a device's endpoint: the reference percent-encoded (fingerprints hold '/' and '+'). */
inline std::string deviceUrl(const std::string& ref, const std::string& rest = {})
{
    return "/v1/devices/" + percentEncode(ref) + (rest.empty() ? "" : "/" + rest);
}

inline HttpResponse call(CallhomeFixture& f, const std::string& method, const std::string& target,
    const std::string& body = {}, std::vector<std::pair<std::string, std::string>> headers = {},
    std::chrono::milliseconds deadline = std::chrono::seconds(30))
{
    return httpRequest(f.apiSocket(), HttpRequest { method, target, body, std::move(headers) }, deadline);
}

/** The body as JSON; fails the test (with the body) when it is not. */
inline json bodyJson(const HttpResponse& r)
{
    INFO("HTTP " << r.status << " " << r.body);
    auto doc = json::parse(r.body, nullptr, false);
    REQUIRE(!doc.is_discarded());
    return doc;
}

/** A GET that must answer 200 with JSON. */
inline json getJson(CallhomeFixture& f, const std::string& target)
{
    auto r = call(f, "GET", target);
    INFO("GET " << target << ": HTTP " << r.status << " " << r.body);
    REQUIRE(r.status == 200);
    return bodyJson(r);
}

/** Approves a device through the API (by its percent-encoded fingerprint) with a name and SSH user. */
inline json approve(CallhomeFixture& f, const std::string& fingerprint, const std::string& name,
    const std::optional<std::string>& user = std::nullopt)
{
    json body { { "name", name } };
    if (user) {
        body["user"] = *user;
    }
    auto r
        = call(f, "POST", deviceUrl(fingerprint, "approve"), body.dump(), { { "Content-Type", "application/json" } });
    INFO("approve: HTTP " << r.status << " " << r.body);
    REQUIRE(r.status == 200);
    auto d = bodyJson(r);
    CHECK(d["state"] == "approved");
    CHECK(d["name"] == name);
    return d;
}

/** callhomectl with `--socket` of the fixture's API, run to its end (at most 20 s). */
inline CommandResult ctl(CallhomeFixture& f, std::vector<std::string> args)
{
    std::vector<std::string> argv { kCallhomectl, "--socket", f.apiSocket() };
    argv.insert(argv.end(), args.begin(), args.end());
    return runCommand(f.dir, std::move(argv));
}

/** One JSON document per line of `text`, skipping blank lines. */
inline std::vector<json> jsonLines(const std::string& text)
{
    std::vector<json> out;
    size_t pos = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        auto line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        pos = nl == std::string::npos ? text.size() : nl + 1;
        if (line.find_first_not_of(" \r\t") == std::string::npos) {
            continue;
        }
        auto doc = json::parse(line, nullptr, false);
        if (!doc.is_discarded()) {
            out.push_back(std::move(doc));
        }
    }
    return out;
}

/**
 * The next line of `stream` that `matches`, reading past others; fails the test when the stream ends first, throws
 * HarnessError when `deadline` passes.
 */
inline std::string lineMatching(HttpStream& stream, const std::function<bool(const std::string&)>& matches,
    std::chrono::milliseconds deadline, const std::string& what)
{
    auto until = Clock::now() + deadline;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
        if (left.count() <= 0) {
            throw HarnessError("timed out waiting for " + what);
        }
        auto line = stream.readLine(left);
        INFO("waiting for " << what);
        REQUIRE(line.has_value()); // the stream must not end first
        if (matches(*line)) {
            return *line;
        }
    }
}

/** Writes `content` to a file in the fixture's dir and returns its path. */
inline std::string tempFile(CallhomeFixture& f, const std::string& name, const std::string& content)
{
    auto path = f.dir.file(name);
    writeFile(path, content);
    return path;
}
} // namespace callhome::test::api
