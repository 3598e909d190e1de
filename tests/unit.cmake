callhome_add_test(NAME unit_config SOURCES unit_config.cpp LIBS callhome-config)
callhome_add_test(NAME unit_transport SOURCES unit_transport.cpp LIBS callhome-transport PkgConfig::LIBSSH)
callhome_add_test(NAME unit_listener SOURCES unit_listener.cpp LIBS callhome-server)
callhome_add_test(NAME unit_time SOURCES unit_time.cpp LIBS callhome-common)
