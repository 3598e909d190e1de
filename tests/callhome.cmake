# Real peers on loopback: OpenSSH sshd + yuma123 netconfd, libnetconf2's call-home server.
callhome_add_test(NAME callhome_ssh SOURCES callhome_ssh.cpp CallhomeFixture.cpp LIBS callhome-server callhome-test-harness)
set_tests_properties(callhome_ssh PROPERTIES TIMEOUT 600)

callhome_add_test(NAME callhome_e2e SOURCES callhome_e2e.cpp LIBS callhome-test-harness nlohmann_json::nlohmann_json)
add_dependencies(callhome_e2e callhomed callhomectl)
set_tests_properties(callhome_e2e PROPERTIES TIMEOUT 300)

callhome_add_test(NAME callhome_tls SOURCES callhome_tls.cpp CallhomeFixture.cpp
    LIBS callhome-server callhome-identity callhome-test-harness)
set_tests_properties(callhome_tls PROPERTIES TIMEOUT 600)
