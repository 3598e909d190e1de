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
# inventory_postgres: a real PostgreSQL server in a temp dir (initdb + postgres, as user postgres when root).
pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET libpq)
callhome_add_test(NAME inventory_postgres SOURCES inventory_postgres.cpp LIBS callhome-inventory PkgConfig::LIBPQ)
