# Run by `cmake --install` (and CPack) with the prefix of that installation: installs what lives outside the
# prefix on a system install (/etc, the systemd unit directory) and the unit with the installed paths filled in.
# Prefix /usr (the Debian package): /etc/callhome and /lib/systemd/system, Debian 12's unit directory; any other
# prefix P: P/etc/callhome and P/lib/systemd/system (systemd also reads /usr/local/lib/systemd/system).
# Set before it by packaging/CMakeLists.txt: CALLHOME_UNIT_TEMPLATE, CALLHOME_SBINDIR, CALLHOME_ETC_FILES,
# CALLHOME_TRUST_STORE_FILES.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
    set(etc "/etc")
    set(unitdir "/lib/systemd/system")
else()
    set(etc "${CMAKE_INSTALL_PREFIX}/etc")
    set(unitdir "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
endif()

# The unit, written straight into this installation (no shared file in the build tree: installations with other
# prefixes may run at the same time).
set(CALLHOME_SBINDIR "${CMAKE_INSTALL_PREFIX}/${CALLHOME_SBINDIR}")
set(CALLHOME_CONFIG "${etc}/callhome/callhomed.json")
file(READ "${CALLHOME_UNIT_TEMPLATE}" unit)
string(CONFIGURE "${unit}" unit @ONLY)
set(unit_file "$ENV{DESTDIR}${unitdir}/callhomed.service")
message(STATUS "Installing: ${unit_file}")
file(WRITE "${unit_file}" "${unit}")
list(APPEND CMAKE_INSTALL_MANIFEST_FILES "${unitdir}/callhomed.service")

# file(INSTALL) puts $DESTDIR in front of absolute destinations, as install() does.
file(INSTALL DESTINATION "${etc}/callhome" TYPE FILE FILES ${CALLHOME_ETC_FILES})
file(INSTALL DESTINATION "${etc}/callhome/trust-store" TYPE FILE FILES ${CALLHOME_TRUST_STORE_FILES})
