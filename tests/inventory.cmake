# inventory_*: real SQLite files in per-test temp dirs.
callhome_add_test(NAME inventory_schema SOURCES inventory_schema.cpp LIBS callhome-inventory PkgConfig::SQLITE3)
callhome_add_test(NAME inventory_durability SOURCES inventory_durability.cpp LIBS callhome-inventory PkgConfig::SQLITE3)

# The temporary PostgreSQL server of the tests (harness/PgServer.h) and the backend switch (TestInventory.h):
# NAME_pg runs NAME with CALLHOME_TEST_INVENTORY=postgresql, without its [sqlite] test cases.
pkg_check_modules(TEST_LIBPQ REQUIRED IMPORTED_TARGET libpq) # own prefix: lib/inventory has its own LIBPQ target
add_library(callhome-test-pg STATIC harness/PgServer.cpp)
target_include_directories(callhome-test-pg PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(callhome-test-pg PUBLIC callhome-common PkgConfig::TEST_LIBPQ)
callhome_add_test(NAME inventory_pg_server_selftest SOURCES inventory_pg_server_selftest.cpp LIBS callhome-test-pg)

# callhome_add_pg_variant(NAME): NAME_pg runs the test NAME against PostgreSQL (TestInventory.h), [sqlite] cases excluded.
# [pg-slow] marks cases left out there until the PostgreSQL backend is fast enough for them (see the case).
function(callhome_add_pg_variant NAME)
    add_test(NAME ${NAME}_pg COMMAND ${NAME} "~[sqlite]~[pg-slow]")
    set_tests_properties(${NAME}_pg PROPERTIES ENVIRONMENT CALLHOME_TEST_INVENTORY=postgresql)
endfunction()
callhome_add_test(NAME inventory_state SOURCES inventory_state.cpp LIBS callhome-inventory PkgConfig::SQLITE3 callhome-test-pg)
callhome_add_pg_variant(inventory_state)
callhome_add_test(NAME inventory_tls SOURCES inventory_tls.cpp LIBS callhome-inventory callhome-test-pg)
callhome_add_pg_variant(inventory_tls)
callhome_add_test(NAME inventory_blocked SOURCES inventory_blocked.cpp LIBS callhome-inventory PkgConfig::SQLITE3 callhome-test-pg)
callhome_add_pg_variant(inventory_blocked)
callhome_add_test(NAME inventory_fleet SOURCES inventory_fleet.cpp LIBS callhome-inventory callhome-identity callhome-test-pg)
callhome_add_pg_variant(inventory_fleet)
callhome_add_test(NAME inventory_trace SOURCES inventory_trace.cpp LIBS callhome-inventory PkgConfig::SQLITE3 callhome-test-pg)
callhome_add_pg_variant(inventory_trace)
callhome_add_test(NAME inventory_staged SOURCES inventory_staged.cpp LIBS callhome-inventory PkgConfig::SQLITE3 callhome-test-pg)
callhome_add_pg_variant(inventory_staged)
callhome_add_test(NAME inventory_writer SOURCES inventory_writer.cpp
    LIBS callhome-inventory callhome-identity PkgConfig::SQLITE3 callhome-test-pg)
callhome_add_pg_variant(inventory_writer)
# inventory_postgres: what is specific to the PostgreSQL backend, on the temporary server (harness/PgServer.h).
callhome_add_test(NAME inventory_postgres SOURCES inventory_postgres.cpp LIBS callhome-inventory callhome-test-pg)
