// `cmake --install` into a temporary DESTDIR: exactly the files of the install layout (no test program, no bench
// tool), a unit and a configuration that name the installed paths, and installed binaries that run -- --version,
// --help, callhomed on its embedded defaults with a temporary state directory -- without opening any path under the
// source or the build tree (every file system call traced with strace).
#include "Binaries.h"
#include "harness/Process.h"
#include "harness/TempDir.h"
#include "harness/UnixHttp.h"
#include "harness/Util.h"
#include <arpa/inet.h>
#include <catch2/catch.hpp>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <poll.h>
#include <regex>
#include <set>
#include <sstream>
#include <sys/socket.h>
#include <unistd.h>

using namespace callhome::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {
const std::string kSourceDir = CALLHOME_SOURCE_DIR;
const std::string kBinaryDir = CALLHOME_BINARY_DIR;

/** Every file (and symlink) under `root`, as "/usr/sbin/callhomed". */
std::set<std::string> filesUnder(const std::string& root)
{
    std::set<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
        if (e.is_regular_file() || e.is_symlink()) {
            out.insert("/" + fs::relative(e.path(), root).string());
        }
    }
    return out;
}

/** The installation `cmake --install BUILD --prefix /usr` makes under DESTDIR=`root`. */
void install(const TempDir& dir, const std::string& root)
{
    ProcessSpec spec { { "cmake", "--install", kBinaryDir, "--prefix", "/usr" }, dir.file("install.out"),
        dir.file("install.err"), { { "DESTDIR", root } } };
    Process p(spec);
    auto status = p.waitExit(60s);
    INFO(readFileIfExists(spec.stdoutPath) << readFileIfExists(spec.stderrPath));
    REQUIRE(status == 0);
}

/** `argv` run under strace (every file system call, all threads, into `trace`), from `cwd`. */
ProcessSpec traced(const TempDir& dir, const std::string& trace, std::vector<std::string> argv)
{
    static int n = 0;
    auto tag = std::to_string(++n);
    std::vector<std::string> full { "strace", "-f", "-qq", "-e", "trace=%file", "-o", trace };
    full.insert(full.end(), argv.begin(), argv.end());
    // PWD as a shell sets it for that directory (glibc's get_current_dir_name, which libyang calls, trusts it).
    // LeakSanitizer cannot run under ptrace: a sanitizer build's traced binaries keep ASan's other checks only.
    const char* asan = std::getenv("ASAN_OPTIONS");
    return ProcessSpec { full, dir.file("traced" + tag + ".out"), dir.file("traced" + tag + ".err"),
        { { "PWD", dir.path() }, { "ASAN_OPTIONS", std::string(asan ? asan : "") + ":detect_leaks=0" } }, dir.path() };
}

/** Runs a traced command to its end (at most 20 s). */
CommandResult runTraced(const TempDir& dir, const std::string& trace, std::vector<std::string> argv)
{
    auto spec = traced(dir, trace, std::move(argv));
    Process p(spec);
    auto status = p.waitExit(20s);
    REQUIRE(status.has_value());
    return { *status, readFileIfExists(spec.stdoutPath), readFileIfExists(spec.stderrPath) };
}

/** The lines of a strace log that name a path under the source or the build tree (the build tree is inside the
 * source tree here, but need not be). */
std::vector<std::string> treeAccesses(const std::string& trace)
{
    std::vector<std::string> hits;
    std::istringstream in(readFile(trace));
    for (std::string line; std::getline(in, line);) {
        if (line.find(kSourceDir) != std::string::npos || line.find(kBinaryDir) != std::string::npos) {
            hits.push_back(line);
        }
    }
    return hits;
}

/** The first child of `pid` (strace's tracee), read from /proc; 0 while there is none. */
pid_t firstChild(pid_t pid)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
    pid_t child = 0;
    in >> child;
    return child;
}

/** Connects to 127.0.0.1:`port` as a device calling home, sends an SSH identification line (callhomed starts its SSH
 * client once the device speaks) and reads until callhomed's own (at most `deadline`). */
std::string sshBanner(uint16_t port, std::chrono::milliseconds deadline)
{
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in sa {};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    const std::string hello = "SSH-2.0-callhome_package_test\r\n";
    REQUIRE(::write(fd, hello.data(), hello.size()) == static_cast<ssize_t>(hello.size()));
    std::string got;
    auto end = Clock::now() + deadline;
    while (got.find('\n') == std::string::npos && Clock::now() < end) {
        pollfd p { fd, POLLIN, 0 };
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
        if (::poll(&p, 1, static_cast<int>(std::max<long>(left, 1))) <= 0) {
            continue;
        }
        char buf[256];
        auto n = ::read(fd, buf, sizeof buf);
        if (n <= 0) {
            break;
        }
        got.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return got;
}
} // namespace

TEST_CASE("cmake --install: the layout, and installed binaries that never touch the source or build tree")
{
    ignoreSigpipe();
    TempDir dir("callhome-install");
    const std::string root = dir.file("root");
    install(dir, root);

    std::set<std::string> expected { "/usr/sbin/callhomed", "/usr/bin/callhomectl", "/usr/bin/callhome-sim",
        "/usr/share/man/man8/callhomed.8.gz", "/usr/share/man/man1/callhomectl.1.gz",
        "/usr/share/man/man5/callhome-config.5.gz", "/usr/share/man/man1/callhome-sim.1.gz",
        "/usr/share/bash-completion/completions/callhomectl", "/usr/share/callhome/yang/callhome-config.yang",
        "/usr/share/doc/callhome/copyright", "/usr/share/doc/callhome/changelog.gz",
        "/lib/systemd/system/callhomed.service", "/etc/callhome/callhomed.json", "/etc/callhome/example-config.json",
        "/etc/callhome/trust-store/README.md" };
    std::vector<std::string> migrations;
    for (const auto& e : fs::directory_iterator(kSourceDir + "/schemas/sql")) {
        if (e.path().extension() == ".sql") {
            migrations.push_back(e.path().filename().string());
            expected.insert("/usr/share/callhome/sql/" + e.path().filename().string());
        }
    }
    REQUIRE(migrations.size() >= 3);

    SECTION("exactly the installed files: no test program, no bench tool")
    {
        REQUIRE(filesUnder(root) == expected);
        for (const auto& m : migrations) {
            CHECK(readFile(root + "/usr/share/callhome/sql/" + m) == readFile(kSourceDir + "/schemas/sql/" + m));
        }
        CHECK(readFile(root + "/usr/share/callhome/yang/callhome-config.yang")
            == readFile(kSourceDir + "/schemas/callhome-config.yang"));
        CHECK(fs::status(root + "/usr/sbin/callhomed").permissions() == fs::perms(0755));
        CHECK(fs::status(root + "/etc/callhome/callhomed.json").permissions() == fs::perms(0644));
    }

    SECTION("the unit starts the installed binary with the installed configuration, as the packaged service")
    {
        auto unit = readFile(root + "/lib/systemd/system/callhomed.service");
        CHECK_THAT(
            unit, Catch::Contains("\nExecStart=/usr/sbin/callhomed --config /etc/callhome/callhomed.json --journal\n"));
        for (const char* line : { "\nType=notify\n", "\nNotifyAccess=main\n", "\nWatchdogSec=30s\n",
                 "\nExecReload=/bin/kill -HUP $MAINPID\n", "\nUser=callhome\n", "\nGroup=callhome\n",
                 "\nStateDirectory=callhome\n", "\nStateDirectoryMode=0700\n", "\nWantedBy=multi-user.target\n" }) {
            CHECK_THAT(unit, Catch::Contains(line));
        }
        CHECK_THAT(unit, !Catch::Contains("\nDynamicUser=") && !Catch::Contains("@CALLHOME"));

        // The shipped configuration is valid and is the one the unit's paths assume.
        auto check = runCommand(
            dir, { root + "/usr/sbin/callhomed", "--config", root + "/etc/callhome/callhomed.json", "--check-config" });
        INFO(check.err);
        REQUIRE(check.status == 0);
        CHECK_THAT(check.out,
            Catch::Contains("configuration ok\n") && Catch::Contains("listen ssh:[::]:4334")
                && Catch::Contains("state-dir /var/lib/callhome\n")
                && Catch::Contains("control-socket /run/callhome/control.sock\n"));
        auto example = runCommand(dir,
            { root + "/usr/sbin/callhomed", "--config", root + "/etc/callhome/example-config.json", "--check-config" });
        INFO(example.err);
        CHECK(example.status == 0);
    }

    SECTION("another prefix: the unit and /etc follow it")
    {
        const std::string other = dir.file("other");
        ProcessSpec spec { { "cmake", "--install", kBinaryDir, "--prefix", other + "/opt" }, dir.file("other.out"),
            dir.file("other.err") };
        Process p(spec);
        REQUIRE(p.waitExit(60s) == 0);
        auto unit = readFile(other + "/opt/lib/systemd/system/callhomed.service");
        CHECK_THAT(unit,
            Catch::Contains(
                "ExecStart=" + other + "/opt/sbin/callhomed --config " + other + "/opt/etc/callhome/callhomed.json "));
        CHECK(fs::exists(other + "/opt/etc/callhome/callhomed.json"));
    }

    SECTION("--version and --help of each installed binary, traced")
    {
        const std::string trace = dir.file("short.trace");
        auto v = runTraced(dir, trace, { root + "/usr/sbin/callhomed", "--version" });
        REQUIRE(v.status == 0);
        CHECK_THAT(v.out, Catch::StartsWith("callhomed " + std::string(CALLHOME_TEST_VERSION)));
        CHECK(v.out == runCommand(dir, { kCallhomed, "--version" }).out);
        // The trace really records this binary's file system calls (so an empty result below means something).
        REQUIRE_THAT(readFile(trace), Catch::Contains("execve(\"" + root + "/usr/sbin/callhomed\""));
        CHECK(treeAccesses(trace).empty());

        for (const auto& [binary, needle] : std::vector<std::pair<std::string, std::string>> {
                 { "/usr/sbin/callhomed", "--check-config" },
                 { "/usr/bin/callhomectl", "station-key" },
                 { "/usr/bin/callhome-sim", "--station" },
             }) {
            auto t = dir.file(fs::path(binary).filename().string() + ".trace");
            auto h = runTraced(dir, t, { root + binary, "--help" });
            INFO(binary << ": " << h.err);
            CHECK(h.status == 0);
            CHECK_THAT(h.out, Catch::Contains(needle));
            CHECK(treeAccesses(t).empty());
        }
        auto t = dir.file("ctl-version.trace");
        auto cv = runTraced(dir, t, { root + "/usr/bin/callhomectl", "--version" });
        CHECK(cv.status == 0);
        CHECK_THAT(cv.out, Catch::StartsWith("callhomectl " + std::string(CALLHOME_TEST_VERSION)));
        CHECK(treeAccesses(t).empty());
    }

    SECTION("callhomed on embedded defaults from the installation: listens, migrates, answers, stops on SIGTERM")
    {
        const std::string state = dir.file("state");
        const std::string socket = state + "/control.sock";
        const std::string trace = dir.file("daemon.trace");
        auto spec = traced(dir, trace,
            { root + "/usr/sbin/callhomed", "--state-dir", state, "--listen", "ssh:127.0.0.1:0", "--control-socket",
                socket });
        Process strace(spec);
        uint16_t port = 0;
        std::smatch m;
        static const std::regex listening(R"(listening for call home on ssh:127\.0\.0\.1:(\d+))");
        waitFor(
            [&] {
                auto text = readFileIfExists(spec.stderrPath);
                if (std::regex_search(text, m, listening)) {
                    port = static_cast<uint16_t>(std::stoi(m[1]));
                    return true;
                }
                INFO(text);
                REQUIRE(strace.running());
                return false;
            },
            30s, "the installed callhomed listening");
        pid_t daemon = 0;
        waitFor([&] { return (daemon = firstChild(strace.pid())) > 0; }, 5s, "strace's tracee");

        // A call-home connection gets our SSH identification (we are the SSH client on it).
        CHECK_THAT(sshBanner(port, 10s), Catch::StartsWith("SSH-2.0-"));
        // The control API answers, and the installed callhomectl reads the inventory callhomed made.
        waitFor([&] { return fs::exists(socket); }, 10s, "the control socket");
        auto health = httpRequest(socket, { "GET", "/v1/health" }, 10s);
        CHECK(health.status == 200);
        CHECK_THAT(health.body, Catch::Contains("\"status\":\"ok\""));
        const std::string ctlTrace = dir.file("ctl.trace");
        auto devices = runTraced(dir, ctlTrace, { root + "/usr/bin/callhomectl", "--state-dir", state, "devices" });
        INFO(devices.err);
        CHECK(devices.status == 0);
        auto sessions = runTraced(dir, ctlTrace, { root + "/usr/bin/callhomectl", "--state-dir", state, "sessions" });
        INFO(sessions.err);
        CHECK(sessions.status == 0);
        CHECK(treeAccesses(ctlTrace).empty());

        // Stopped by its own pid; strace exits with callhomed's status.
        REQUIRE(::kill(daemon, SIGTERM) == 0);
        auto status = strace.waitExit(20s);
        INFO(readFileIfExists(spec.stderrPath));
        REQUIRE(status == 0);

        auto text = readFile(trace);
        CHECK_THAT(text, Catch::Contains(state + "/inventory.db"));
        auto hits = treeAccesses(trace);
        INFO((hits.empty() ? std::string() : hits.front()));
        CHECK(hits.empty());
    }
}
