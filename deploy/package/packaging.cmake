# The Debian package (deploy/package.sh): CPack's DEB generator over the install() rules of the
# top-level CMakeLists.txt, so the package holds exactly what `cmake --install` installs.
# Run-time dependencies come from dpkg-shlibdeps (the libraries the programs link) plus nftables
# (finwave runs nft to restore a table deleted under it).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME finwave)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_CONTACT "finwave maintainers <maintainers@users.noreply.r-seed-07376b3d.example>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "fault-injecting TCP teardown proxy")
# Debian's lines: at most 79 characters (lintian's extended-description-line-too-long).
set(CPACK_PACKAGE_DESCRIPTION
    "finwave sits between a TCP client and server (as a router or on either\n"
    "host) and, through NFQUEUE, drops, delays, duplicates or resets the FINs\n"
    "and final ACKs of their connections on the rules it is given. For every\n"
    "connection it reports how the teardown ended: which side closed, which\n"
    "segments were retransmitted, what finwave did, and whether the close\n"
    "completed, timed out or ended in a reset.\n"
    "\n"
    "Rules come from a TOML file and can be added, enabled and disabled at run\n"
    "time through a control socket (finwavectl). The package also has\n"
    "finwave-ladder, which draws ladder diagrams of reported teardowns,\n"
    "finwave-peer, a scripted TCP peer for tests, systemd units and example\n"
    "rules.")
string(REPLACE ";" "" CPACK_PACKAGE_DESCRIPTION "${CPACK_PACKAGE_DESCRIPTION}")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "nftables")
# The units' user and group (postinst); dpkg's own modes for the maintainer scripts.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_CURRENT_LIST_DIR}/postinst
                                       ${CMAKE_CURRENT_LIST_DIR}/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Debian ships binaries stripped (their debug information would belong in a -dbgsym package).
set(CPACK_STRIP_FILES ON)
include(CPack)
