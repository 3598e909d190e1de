# inventory_*: real SQLite files in per-test temp dirs.
callhome_add_test(NAME inventory_state SOURCES inventory_state.cpp LIBS callhome-inventory PkgConfig::SQLITE3)
callhome_add_test(NAME inventory_schema SOURCES inventory_schema.cpp LIBS callhome-inventory PkgConfig::SQLITE3)
callhome_add_test(NAME inventory_durability SOURCES inventory_durability.cpp LIBS callhome-inventory PkgConfig::SQLITE3)
callhome_add_test(NAME inventory_tls SOURCES inventory_tls.cpp LIBS callhome-inventory)
callhome_add_test(NAME inventory_blocked SOURCES inventory_blocked.cpp LIBS callhome-inventory PkgConfig::SQLITE3)
callhome_add_test(NAME inventory_fleet SOURCES inventory_fleet.cpp LIBS callhome-inventory callhome-identity)
callhome_add_test(NAME inventory_writer SOURCES inventory_writer.cpp LIBS callhome-inventory callhome-identity PkgConfig::SQLITE3)
callhome_add_test(NAME inventory_trace SOURCES inventory_trace.cpp LIBS callhome-inventory PkgConfig::SQLITE3)
callhome_add_test(NAME inventory_staged SOURCES inventory_staged.cpp LIBS callhome-inventory PkgConfig::SQLITE3)

# The temporary PostgreSQL server of the tests (harness/PgServer.h) and the backend switch (TestInventory.h):
# NAME_pg runs NAME with CALLHOME_TEST_INVENTORY=postgresql, without its [sqlite] test cases.
if(NOT TARGET PkgConfig::LIBPQ)
    pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET GLOBAL libpq)
endif()
add_library(callhome-test-pg STATIC harness/PgServer.cpp)
target_include_directories(callhome-test-pg PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(callhome-test-pg PUBLIC callhome-common PkgConfig::LIBPQ)
callhome_add_test(NAME inventory_pg_server_selftest SOURCES inventory_pg_server_selftest.cpp LIBS callhome-test-pg)
