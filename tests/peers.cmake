# Device-side peers that call home (OpenSSH or stunnel + yuma123, libnetconf2 over SSH or TLS), the dev PKI wrapper,
# and the harness callhome_* tests drive them with.

add_executable(callhome-test-nc2-device peers/Nc2Device.cpp)
target_link_libraries(callhome-test-nc2-device PRIVATE
    PkgConfig::LIBNETCONF2 PkgConfig::LIBYANG PkgConfig::LIBSSH OpenSSL::Crypto CLI11::CLI11 Threads::Threads)

add_library(callhome-test-harness STATIC
    harness/DevPki.cpp
    harness/HaProxy.cpp
    harness/HostKey.cpp
    harness/HostilePeer.cpp
    harness/Loopback.cpp
    harness/Nc2Device.cpp
    harness/Process.cpp
    harness/SshdDevice.cpp
    harness/StunnelDevice.cpp
    harness/TempDir.cpp
    harness/Util.cpp
    harness/YumaNetconfd.cpp
)
target_include_directories(callhome-test-harness PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(callhome-test-harness PUBLIC callhome-common PRIVATE PkgConfig::LIBSSH)
target_compile_definitions(callhome-test-harness PRIVATE
    CALLHOME_NC2_DEVICE_PATH="$<TARGET_FILE:callhome-test-nc2-device>" CALLHOME_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
# Tests that link the harness start the device program, so it must be built with them.
add_dependencies(callhome-test-harness callhome-test-nc2-device)

callhome_add_test(NAME callhome_peers_selftest
    SOURCES callhome_peers_selftest.cpp
    LIBS callhome-test-harness PkgConfig::LIBNETCONF2 PkgConfig::LIBYANG PkgConfig::LIBSSH)
set_tests_properties(callhome_peers_selftest PROPERTIES TIMEOUT 300)

callhome_add_test(NAME callhome_tls_peers_selftest
    SOURCES callhome_tls_peers_selftest.cpp
    LIBS callhome-test-harness callhome-libnetconf2 PkgConfig::LIBYANG OpenSSL::SSL)
set_tests_properties(callhome_tls_peers_selftest PROPERTIES TIMEOUT 300)

# The hostile device-side peers of tests/hostile/ (Python: Debian python3-paramiko and ssl) against independent
# clients: libssh for SSH, OpenSSL for TLS, plain sockets.
callhome_add_test(NAME callhome_hostile_peers_selftest
    SOURCES callhome_hostile_peers_selftest.cpp
    LIBS callhome-test-harness PkgConfig::LIBSSH OpenSSL::SSL)
set_tests_properties(callhome_hostile_peers_selftest PROPERTIES TIMEOUT 120)
