# callhomectl: run() is called in-process with string streams.
callhome_add_test(NAME unit_cli SOURCES unit_cli_table.cpp unit_cli_csv.cpp LIBS callhome-cli)
callhome_add_test(NAME inventory_cli SOURCES inventory_cli_commands.cpp
    LIBS callhome-cli callhome-inventory callhome-transport callhome-test-pg)
callhome_add_pg_variant(inventory_cli)
callhome_add_test(NAME inventory_cli_fleet SOURCES inventory_cli_fleet.cpp
    LIBS callhome-cli callhome-inventory callhome-transport callhome-test-pg)
callhome_add_pg_variant(inventory_cli_fleet)
