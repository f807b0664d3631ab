# SPDX-License-Identifier: MIT
# Runs at install time (from install(CODE) in SnapfsInstall.cmake): configure
# the template _template with the paths of the prefix being installed into,
# so `cmake --install build --prefix P` writes files that name paths under P,
# and install it into _dest (relative to the prefix unless absolute).
# In: _template, _dest, _name, _work, _libdir, _includedir, _sbindir, _bindir,
# _datadir, _version, _fusermount3.
set(prefix "${CMAKE_INSTALL_PREFIX}")
foreach(v libdir includedir sbindir bindir datadir dest)
	if(IS_ABSOLUTE "${_${v}}")
		set(${v} "${_${v}}")
	else()
		set(${v} "${prefix}/${_${v}}")
	endif()
endforeach()
# pkg-config style: ${prefix}-relative where possible.
set(pc_libdir "${libdir}")
set(pc_includedir "${includedir}")
string(REGEX REPLACE "^${prefix}/" "\${prefix}/" pc_libdir "${libdir}")
string(REGEX REPLACE "^${prefix}/" "\${prefix}/" pc_includedir "${includedir}")
set(VERSION "${_version}")
set(FUSERMOUNT3 "${_fusermount3}")
string(MD5 _h "${prefix}|${dest}|${_name}")
set(_out "${_work}/${_h}/${_name}")
configure_file("${_template}" "${_out}" @ONLY)
file(INSTALL DESTINATION "${dest}" TYPE FILE FILES "${_out}")
