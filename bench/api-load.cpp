// api-load: drives callhomed's control API for the benchmark: C clients, each on its own keep-alive connection to
// the UNIX socket, send GET /v1/devices/NAME/data (a <get-config> round trip to the device) back to back for a
// while, spreading over the given devices; prints requests, errors, rate and latency percentiles as JSON.
// Boost.Beast's synchronous client: one thread per client (a load generator, not a server).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>
#include <vector>

namespace {
namespace net = boost::asio;
namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;

struct Result {
    std::vector<double> latenciesMs;
    uint64_t errors = 0;
    std::string firstError;
};

double percentile(std::vector<double>& v, double p)
{
    if (v.empty()) {
        return 0;
    }
    auto k = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
    return v[k];
}
} // namespace

int main(int argc, char** argv)
{
    CLI::App app { "api-load: concurrent <get-config> round trips through callhomed's control API", "api-load" };
    std::string socket, devicesFile, path = "/v1/devices/{}/data?datastore=running", jsonOut;
    unsigned clients = 16;
    double duration = 10, warmup = 1;
    app.add_option("--socket", socket, "callhomed's control socket")->required();
    app.add_option("--devices", devicesFile, "File with one device name per line (first word)")->required();
    app.add_option("--path", path, "Request path; {} is replaced by the device name")->capture_default_str();
    app.add_option("--clients", clients, "Concurrent clients (connections)")->capture_default_str();
    app.add_option("--duration", duration, "Seconds of load after the warm-up")->capture_default_str();
    app.add_option("--warmup", warmup, "Seconds of load not counted")->capture_default_str();
    app.add_option("--json", jsonOut, "Write the result here too");
    CLI11_PARSE(app, argc, argv);

    std::vector<std::string> devices;
    std::ifstream in(devicesFile);
    for (std::string line; std::getline(in, line);) {
        auto word = line.substr(0, line.find(' '));
        auto name = line.find(' ') == std::string::npos ? word : line.substr(line.rfind(' ') + 1);
        if (!name.empty()) {
            devices.push_back(name);
        }
    }
    if (devices.empty()) {
        std::cerr << "api-load: no devices in " << devicesFile << "\n";
        return 2;
    }
    auto start = Clock::now();
    auto countFrom = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(warmup));
    auto end = countFrom + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration));
    std::vector<Result> results(clients);
    std::vector<std::thread> threads;
    std::atomic<size_t> next { 0 };
    for (unsigned c = 0; c < clients; ++c) {
        threads.emplace_back([&, c] {
            auto& r = results[c];
            net::io_context io;
            std::unique_ptr<net::local::stream_protocol::socket> s;
            boost::beast::flat_buffer buffer;
            while (Clock::now() < end) {
                try {
                    if (!s) {
                        s = std::make_unique<net::local::stream_protocol::socket>(io);
                        s->connect(net::local::stream_protocol::endpoint(socket));
                        buffer.clear();
                    }
                    const auto& device = devices[next++ % devices.size()];
                    auto target = path;
                    if (auto p = target.find("{}"); p != std::string::npos) {
                        target.replace(p, 2, device);
                    }
                    http::request<http::empty_body> req { http::verb::get, target, 11 };
                    req.set(http::field::host, "localhost");
                    auto t0 = Clock::now();
                    http::write(*s, req);
                    http::response<http::string_body> res;
                    http::read(*s, buffer, res);
                    auto t1 = Clock::now();
                    if (res.result() != http::status::ok) {
                        ++r.errors;
                        if (r.firstError.empty()) {
                            r.firstError = std::to_string(res.result_int()) + " " + res.body().substr(0, 200);
                        }
                    } else if (t0 >= countFrom) {
                        r.latenciesMs.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
                    }
                    if (!res.keep_alive()) {
                        s.reset();
                    }
                } catch (const std::exception& e) {
                    ++r.errors;
                    if (r.firstError.empty()) {
                        r.firstError = e.what();
                    }
                    s.reset();
                    std::this_thread::sleep_for(std::chrono::milliseconds(10));
                }
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    std::vector<double> all;
    uint64_t errors = 0;
    std::string firstError;
    for (auto& r : results) {
        all.insert(all.end(), r.latenciesMs.begin(), r.latenciesMs.end());
        errors += r.errors;
        if (firstError.empty()) {
            firstError = r.firstError;
        }
    }
    auto count = all.size();
    double p50 = percentile(all, 50), p99 = percentile(all, 99),
           max = all.empty() ? 0 : *std::max_element(all.begin(), all.end());
    std::string json = "{\"clients\": " + std::to_string(clients) + ", \"devices\": " + std::to_string(devices.size())
        + ", \"requests\": " + std::to_string(count) + ", \"errors\": " + std::to_string(errors) + ", \"rate\": "
        + std::to_string(static_cast<double>(count) / duration) + ", \"p50_ms\": " + std::to_string(p50)
        + ", \"p99_ms\": " + std::to_string(p99) + ", \"max_ms\": " + std::to_string(max) + ", \"first_error\": \""
        + (firstError.empty() ? "" : "see log") + "\"}";
    std::cout << json << "\n";
    if (!firstError.empty()) {
        std::cerr << "api-load: first error: " << firstError << "\n";
    }
    if (!jsonOut.empty()) {
        std::ofstream(jsonOut) << json << "\n";
    }
    return 0;
}
