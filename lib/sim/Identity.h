#pragma once
#include "common/Error.h"
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct ssh_key_struct;
struct evp_pkey_st;
struct x509_st;

namespace callhome::sim {
/** The device's name and serial number for index i (0-based): sim-000001, SIM-000001. */
std::string deviceName(size_t index);
std::string deviceSerial(size_t index);

/** SSH host keys of N devices, loaded from or written to a directory, or kept in memory only. */
class SshHostKeys {
public:
    /**
     * Reuses DIR/sim-NNNNNN.key (OpenSSH private key files) and generates the missing ones (ed25519), then writes
     * DIR/fingerprints.txt: "SHA256:<base64> sim-NNNNNN" per device, the fingerprint as `ssh-keygen -l -E sha256`
     * prints it. Without a directory the keys are generated in memory. Throws Error.
     */
    SshHostKeys(const std::optional<std::string>& dir, size_t count);
    ~SshHostKeys();
    SshHostKeys(const SshHostKeys&) = delete;
    SshHostKeys& operator=(const SshHostKeys&) = delete;
    size_t size() const noexcept { return m_keys.size(); }
    /** Borrowed; valid while this object lives. */
    ssh_key_struct* key(size_t index) const;
    const std::string& fingerprint(size_t index) const { return m_fingerprints.at(index); }

private:
    struct Entry;
    std::vector<std::unique_ptr<Entry>> m_keys;
    std::vector<std::string> m_fingerprints;
};

/**
 * A manufacturer CA and N IEEE 802.1AR IDevID-style device certificates (EC P-256; subject
 * O=callhome-sim, serialNumber=SIM-NNNNNN, CN=sim-NNNNNN; notAfter 99991231235959Z), reused from or written to DIR:
 * DIR/manufacturer/ca.pem (copy it to a trust store's manufacturers/<name>/ca.pem), DIR/manufacturer/ca.key,
 * DIR/devices/SIM-NNNNNN.{crt,key}, DIR/serials.csv ("SIM-NNNNNN,manufacturer,sim-tls-NNNNNN" lines for `callhomectl
 * expect
 * --csv`). Throws Error.
 */
class DevicePki {
public:
    DevicePki(const std::string& dir, size_t count, const std::string& manufacturer);
    ~DevicePki();
    DevicePki(const DevicePki&) = delete;
    DevicePki& operator=(const DevicePki&) = delete;
    size_t size() const noexcept { return m_devices.size(); }
    /** Borrowed; valid while this object lives. */
    x509_st* caCertificate() const;
    x509_st* certificate(size_t index) const;
    evp_pkey_st* privateKey(size_t index) const;

private:
    struct Device;
    struct Ca;
    std::unique_ptr<Ca> m_ca;
    std::vector<std::unique_ptr<Device>> m_devices;
};
} // namespace callhome::sim
