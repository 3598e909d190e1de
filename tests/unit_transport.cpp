#include "ScratchDir.h"
#include "transport/SshPtr.h"
#include "transport/StationKey.h"
#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sys/stat.h>

using namespace callhome::transport;
namespace fs = std::filesystem;

using callhome::test::ScratchDir;

namespace {
std::string run(const std::string& cmd)
{
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    REQUIRE(p);
    std::array<char, 512> buf;
    while (fgets(buf.data(), buf.size(), p)) {
        out += buf.data();
    }
    REQUIRE(pclose(p) == 0);
    return out;
}

std::string keygenFingerprint(const fs::path& pub)
{
    // "256 SHA256:abc... comment (ED25519)"
    auto out = run("ssh-keygen -l -E sha256 -f " + pub.string());
    auto start = out.find("SHA256:");
    REQUIRE(start != std::string::npos);
    return out.substr(start, out.find(' ', start) - start);
}
} // namespace

TEST_CASE("fingerprints match ssh-keygen -l -E sha256")
{
    ScratchDir dir;
    for (const char* type : { "ed25519", "ecdsa", "rsa" }) {
        INFO(type);
        auto key = dir.path / type;
        run(std::string("ssh-keygen -q -N '' -t ") + type + " -f " + key.string());
        ssh_key raw = nullptr;
        REQUIRE(ssh_pki_import_pubkey_file((key.string() + ".pub").c_str(), &raw) == SSH_OK);
        SshKeyPtr pub(raw);
        CHECK(fingerprintOf(pub.get()) == keygenFingerprint(key.string() + ".pub"));
    }
}

TEST_CASE("station key is generated private and reloaded")
{
    ScratchDir dir;
    auto path = (dir.path / "state" / "station-key").string();
    auto created = loadStationKey(path, true);
    struct stat st { };
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    REQUIRE(::stat((dir.path / "state").c_str(), &st) == 0);
    CHECK((st.st_mode & 0077) == 0);
    CHECK(created.publicKeyLine.rfind("ssh-ed25519 AAAA", 0) == 0);

    // ssh-keygen derives the same public key and fingerprint from the private key we wrote
    auto derived = run("ssh-keygen -y -f " + path);
    CHECK(created.publicKeyLine.substr(0, created.publicKeyLine.rfind(' '))
        == derived.substr(0, derived.find_last_not_of(" \n") + 1));
    std::ofstream(dir.path / "pub") << created.publicKeyLine << "\n";
    CHECK(created.fingerprint == keygenFingerprint(dir.path / "pub"));

    auto again = loadStationKey(path, true);
    CHECK(again.fingerprint == created.fingerprint);
}

TEST_CASE("key files accessible by others are refused")
{
    ScratchDir dir;
    auto path = (dir.path / "station-key").string();
    loadStationKey(path, true);
    ::chmod(path.c_str(), 0644);
    REQUIRE_THROWS_WITH(loadStationKey(path, false), Catch::Contains("too open") && Catch::Contains("0644"));
    ::chmod(path.c_str(), 0660);
    REQUIRE_THROWS_WITH(loadStationKey(path, false), Catch::Contains("0660"));
}

TEST_CASE("missing or garbage key files")
{
    ScratchDir dir;
    REQUIRE_THROWS_WITH(loadStationKey((dir.path / "nope").string(), false), Catch::Contains("nope"));
    auto garbage = dir.path / "garbage";
    std::ofstream(garbage) << "not a key\n";
    ::chmod(garbage.c_str(), 0600);
    REQUIRE_THROWS_WITH(loadStationKey(garbage.string(), false), Catch::Contains("not a usable"));
}
