# SPDX-License-Identifier: MIT
# What `make install` / `cmake --install` puts in place besides the targets'
# own install rules (src/*/CMakeLists.txt): the pkg-config file, the CMake
# package (find_package(snapfs) -> snapfs::snapfs), man pages, the mount(8)
# helper links and the systemd units. Files that name installed paths (the
# .pc file, the units) are configured at install time, so an install into
# another prefix (`cmake --install build --prefix P`) names paths under P.
include(CMakePackageConfigHelpers)

set(SNAPFS_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
	"systemd system unit directory (relative to the prefix unless absolute)")
find_program(SNAPFS_FUSERMOUNT3 fusermount3 PATHS /usr/bin /bin)
if(NOT SNAPFS_FUSERMOUNT3)
	set(SNAPFS_FUSERMOUNT3 /usr/bin/fusermount3)
endif()

# install_configured(TEMPLATE DEST): configure TEMPLATE at install time (see
# cmake/ConfigureInstalled.cmake) and install it into DEST under its name
# without the .in suffix.
function(snapfs_install_configured template dest)
	get_filename_component(name "${template}" NAME)
	string(REGEX REPLACE "\\.in$" "" name "${name}")
	install(CODE "
		set(_template \"${template}\")
		set(_dest \"${dest}\")
		set(_name \"${name}\")
		set(_work \"${PROJECT_BINARY_DIR}/configured-at-install\")
		set(_libdir \"${CMAKE_INSTALL_LIBDIR}\")
		set(_includedir \"${CMAKE_INSTALL_INCLUDEDIR}\")
		set(_sbindir \"${CMAKE_INSTALL_SBINDIR}\")
		set(_bindir \"${CMAKE_INSTALL_BINDIR}\")
		set(_datadir \"${CMAKE_INSTALL_DATADIR}\")
		set(_version \"${PROJECT_VERSION}\")
		set(_fusermount3 \"${SNAPFS_FUSERMOUNT3}\")
		include(\"${PROJECT_SOURCE_DIR}/cmake/ConfigureInstalled.cmake\")")
endfunction()

# pkg-config: snapfs.pc
snapfs_install_configured(${PROJECT_SOURCE_DIR}/contrib/pkgconfig/snapfs.pc.in
	${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# CMake package: find_package(snapfs) gives snapfs::snapfs.
set(SNAPFS_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/snapfs)
install(EXPORT snapfsTargets NAMESPACE snapfs:: FILE snapfsTargets.cmake
	DESTINATION ${SNAPFS_CMAKEDIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/snapfsConfig.cmake.in
	${PROJECT_BINARY_DIR}/snapfsConfig.cmake INSTALL_DESTINATION ${SNAPFS_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/snapfsConfigVersion.cmake
	VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/snapfsConfig.cmake
	${PROJECT_BINARY_DIR}/snapfsConfigVersion.cmake DESTINATION ${SNAPFS_CMAKEDIR})

# Man pages (snapctl.8 is installed with snapctl, src/client/CMakeLists.txt),
# and one link per libsnapfs function, so `man snapfs_pin` works.
install(FILES ${PROJECT_SOURCE_DIR}/man/snapfs.8 DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${PROJECT_SOURCE_DIR}/man/libsnapfs.3 ${PROJECT_SOURCE_DIR}/man/snapfs_pread.3
	DESTINATION ${CMAKE_INSTALL_MANDIR}/man3)
set(SNAPFS_MAN3_LINKS snapfs_pin snapfs_pin_ex snapfs_release snapfs_relabel snapfs_freeze
	snapfs_snapshot_path snapfs_mount_root snapfs_map snapfs_unmap snapfs_version snapfs_list
	snapfs_show snapfs_diff snapfs_lookup snapseg_create
	snapseg_base snapseg_read snapseg_write snapseg_discard snapseg_stats snapseg_destroy)

# Links created at install time: DIR NAME TARGET (relative symlinks).
function(snapfs_install_link dir name target)
	install(CODE "
		if(IS_ABSOLUTE \"${dir}\")
			set(_d \"\$ENV{DESTDIR}${dir}\")
		else()
			set(_d \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${dir}\")
		endif()
		file(MAKE_DIRECTORY \"\${_d}\")
		message(STATUS \"Installing: \${_d}/${name} -> ${target}\")
		file(CREATE_LINK \"${target}\" \"\${_d}/${name}\" SYMBOLIC)
		list(APPEND CMAKE_INSTALL_MANIFEST_FILES \"\${_d}/${name}\")")
endfunction()
foreach(f ${SNAPFS_MAN3_LINKS})
	snapfs_install_link(${CMAKE_INSTALL_MANDIR}/man3 ${f}.3 libsnapfs.3)
endforeach()

# mount(8) helpers, as sshfs installs them: `mount -t fuse.snapfs` runs
# /sbin/mount.fuse.snapfs, `mount -t snapfs` runs /sbin/mount.snapfs; both
# are the daemon, which then follows the helper conventions (helper.c).
# mount(8) only looks in /sbin: with a prefix other than /usr (merged /usr)
# it falls back to mount.fuse3, which runs `snapfs` from $PATH.
snapfs_install_link(${CMAKE_INSTALL_SBINDIR} mount.snapfs snapfs)
snapfs_install_link(${CMAKE_INSTALL_SBINDIR} mount.fuse.snapfs snapfs)
foreach(h mount.snapfs mount.fuse.snapfs) # `man mount.fuse.snapfs`
	snapfs_install_link(${CMAKE_INSTALL_MANDIR}/man8 ${h}.8 snapfs.8)
endforeach()

# bash completion, where bash-completion looks for it: its completionsdir
# (/usr/share/bash-completion/completions for the /usr prefix), here taken
# relative to the prefix so that an install into another prefix stays in it.
set(SNAPFS_BASH_COMPLETIONDIR "${CMAKE_INSTALL_DATADIR}/bash-completion/completions" CACHE STRING
	"bash completion directory (relative to the prefix unless absolute)")
install(FILES ${PROJECT_SOURCE_DIR}/contrib/bash-completion/snapctl
	DESTINATION ${SNAPFS_BASH_COMPLETIONDIR})

# systemd: the per-mount service, the periodic store check and the
# periodic snapshot with retention; the .mount unit and the per-instance
# configuration are examples.
foreach(u snapfs@.service snapfs-check@.service snapfs-check@.timer snapfs-snapshot@.service
		snapfs-snapshot@.timer)
	snapfs_install_configured(${PROJECT_SOURCE_DIR}/contrib/systemd/${u}.in
		${SNAPFS_SYSTEMD_UNITDIR})
endforeach()
snapfs_install_configured(${PROJECT_SOURCE_DIR}/contrib/systemd/srv-data.mount.in
	${CMAKE_INSTALL_DOCDIR}/examples)
install(FILES ${PROJECT_SOURCE_DIR}/contrib/systemd/snapfs.conf.example
	DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
