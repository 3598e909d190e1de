# Real peers on loopback: OpenSSH sshd + yuma123 netconfd, libnetconf2's call-home server.
callhome_add_test(NAME callhome_ssh SOURCES callhome_ssh.cpp CallhomeFixture.cpp LIBS callhome-server callhome-test-harness)
set_tests_properties(callhome_ssh PROPERTIES TIMEOUT 600)
