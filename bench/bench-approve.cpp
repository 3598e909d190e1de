// bench-approve: pre-provisions callhome-sim's devices in a callhomed inventory, so a benchmark measures sessions,
// not operator steps. SSH: each fingerprint of the sim's fingerprints.txt is recorded as a contact and approved
// (two inventory transactions per device: the Inventory interface has no bulk approval). TLS: the serials.csv
// lines are expected (pre-provisioned) in one transaction. Idempotent: approved devices are left alone.
#include "common/Time.h"
#include "inventory/Inventory.h"
#include "inventory/Open.h"
#include <CLI/CLI.hpp>
#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>

using namespace callhome;

int main(int argc, char** argv)
{
    CLI::App app { "bench-approve: approve callhome-sim devices in a callhomed inventory", "bench-approve" };
    std::string db;
    std::optional<std::string> fingerprints, serials;
    std::string address = "127.1.0.1";
    app.add_option("--db", db,
           "callhomed's inventory: SQLite file (STATE-DIR/inventory.db) or PostgreSQL URL; created when missing")
        ->required();
    app.add_option("--fingerprints", fingerprints, "SSH: the sim's fingerprints.txt (\"SHA256:... NAME\" lines)");
    app.add_option("--serials", serials, "TLS: the sim's serials.csv (\"SERIAL,MANUFACTURER,NAME\" lines)");
    app.add_option("--address", address, "Address recorded as the first contact's")->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    try {
        auto started = std::chrono::steady_clock::now();
        auto inv = inventory::openInventory(db, inventory::OpenMode::CreateAndMigrate);
        size_t approved = 0, already = 0;
        if (fingerprints) {
            std::ifstream f(*fingerprints);
            if (!f) {
                throw Error("cannot read " + *fingerprints);
            }
            for (std::string line; std::getline(f, line);) {
                std::istringstream words(line);
                std::string fp, name;
                if (!(words >> fp >> name)) {
                    continue;
                }
                if (auto d = inv->findByFingerprint(fp); d && d->state == inventory::DeviceState::Approved) {
                    ++already;
                    continue;
                }
                auto contact
                    = inv->recordContact(inventory::Transport::Ssh, fp, "ssh-ed25519", address, callhome::now());
                inv->approve(contact.device.id, contact.device.name ? std::nullopt : std::optional(name), std::nullopt);
                ++approved;
            }
        }
        if (serials) {
            std::ifstream f(*serials);
            if (!f) {
                throw Error("cannot read " + *serials);
            }
            std::vector<inventory::ExpectedDevice> expected;
            for (std::string line; std::getline(f, line);) {
                std::istringstream fields(line);
                std::string serial, manufacturer, name;
                if (std::getline(fields, serial, ',') && std::getline(fields, manufacturer, ',')
                    && std::getline(fields, name)) {
                    expected.push_back({ serial, manufacturer, name });
                }
            }
            approved += inv->expect(expected).size();
        }
        std::cout << "bench-approve: " << approved << " approved, " << already << " already approved in "
                  << std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() << " s\n";
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "bench-approve: " << e.what() << std::endl;
        return 1;
    }
}
