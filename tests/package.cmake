# Installation and packaging: `cmake --install` run without the source tree, the man pages and the bash completion
# against --help, the Debian package (package_deb: build, contents, Depends, lintian; package_deb_install: dpkg -i,
# remove, purge on this machine, only with CI=true or CALLHOME_TEST_DPKG=1 as root, else skipped).
callhome_add_test(NAME package_install SOURCES package_install.cpp harness/UnixHttp.cpp LIBS callhome-test-harness)
add_dependencies(package_install callhomed callhomectl callhome-sim callhome-docs)
set_tests_properties(package_install PROPERTIES TIMEOUT 120)

callhome_add_test(NAME package_docs SOURCES package_docs.cpp LIBS callhome-test-harness PkgConfig::LIBYANG)
add_dependencies(package_docs callhomed callhomectl callhome-sim)

callhome_add_test(NAME package_completion SOURCES package_completion.cpp
    LIBS callhome-test-harness callhome-inventory)
add_dependencies(package_completion callhomectl)

# The .deb is built once into the build tree and shared by both tests (a fixture).
set(CALLHOME_TEST_DEB_DIR ${PROJECT_BINARY_DIR}/tests/package-deb)
add_test(NAME package_deb COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/package_deb.sh build
    ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR} ${CALLHOME_TEST_DEB_DIR})
set_tests_properties(package_deb PROPERTIES TIMEOUT 240 FIXTURES_SETUP callhome-deb)
add_test(NAME package_deb_install COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/package_deb.sh install
    ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR} ${CALLHOME_TEST_DEB_DIR})
set_tests_properties(package_deb_install PROPERTIES TIMEOUT 180 FIXTURES_REQUIRED callhome-deb SKIP_RETURN_CODE 77
    RUN_SERIAL ON)
