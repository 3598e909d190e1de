#include "harness/HostKey.h"
#include "harness/Process.h"
#include "harness/Util.h"
#include <chrono>
#include <sstream>

namespace callhome::test {
namespace {
std::string runTool(const std::vector<std::string>& argv, const std::string& scratchPrefix)
{
    const auto out = scratchPrefix + ".out";
    const auto err = scratchPrefix + ".err";
    Process p({ .argv = argv, .stdoutPath = out, .stderrPath = err });
    auto status = p.waitExit(std::chrono::seconds(60));
    if (!status || *status != 0) {
        throw HarnessError(
            argv[0] + " failed (" + (status ? std::to_string(*status) : "timeout") + "): " + readFileIfExists(err));
    }
    return readFile(out);
}

std::string trimmed(std::string s)
{
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) {
        s.pop_back();
    }
    return s;
}
} // namespace

std::string toString(KeyType type)
{
    switch (type) {
    case KeyType::Ed25519:
        return "ed25519";
    case KeyType::Ecdsa:
        return "ecdsa";
    case KeyType::Rsa:
        return "rsa";
    }
    return "?";
}

KeyPair generateHostKey(const std::string& dir, KeyType type, const std::string& name)
{
    KeyPair key;
    key.type = type;
    key.privateKeyPath = dir + "/" + (name.empty() ? toString(type) + "_key" : name);
    key.publicKeyPath = key.privateKeyPath + ".pub";
    std::vector<std::string> argv { "ssh-keygen", "-q", "-N", "", "-t", toString(type) };
    if (type == KeyType::Ecdsa) {
        argv.insert(argv.end(), { "-b", "256" });
    } else if (type == KeyType::Rsa) {
        argv.insert(argv.end(), { "-b", "3072" });
    }
    argv.insert(argv.end(), { "-f", key.privateKeyPath });
    runTool(argv, key.privateKeyPath + ".keygen");
    key.publicKeyLine = trimmed(readFile(key.publicKeyPath));

    // "256 SHA256:abc... comment (ED25519)": the second token is the fingerprint.
    std::istringstream listing(
        runTool({ "ssh-keygen", "-l", "-E", "sha256", "-f", key.publicKeyPath }, key.privateKeyPath + ".fingerprint"));
    std::string bits;
    listing >> bits >> key.fingerprint;
    if (key.fingerprint.rfind("SHA256:", 0) != 0) {
        throw HarnessError("unexpected ssh-keygen -l output for " + key.publicKeyPath);
    }
    return key;
}
} // namespace callhome::test
