# SPDX-License-Identifier: MIT
# Hardening flags on by default, as Debian's dpkg-buildflags sets them
# (hardening=+all): _FORTIFY_SOURCE=2 (needs optimisation: not in a -O0
# Debug build), -fstack-protector-strong, -fstack-clash-protection,
# -fcf-protection where the compiler has them, position-independent
# executables, and full RELRO with immediate binding. `hardening-check` on the installed daemon,
# snapctl and libsnapfs.so reports them all (test/install). Flags given by
# the packager (CFLAGS, LDFLAGS) come after these and win.
option(SNAPFS_HARDENING "Build with hardening flags (fortify, stack protector, PIE, RELRO)" ON)
if(SNAPFS_HARDENING)
	include(CheckPIESupported)
	check_pie_supported()
	set(CMAKE_POSITION_INDEPENDENT_CODE ON) # -fPIE for executables, -fPIC for libraries
	# glibc's fortified headers mark read(2), ftruncate(2) and the like
	# warn_unused_result, which a (void) cast does not silence in GCC; the
	# code ignores a few such results on purpose (best-effort cleanup), so
	# that warning stays off rather than differing between build types.
	add_compile_options(-fstack-protector-strong
		"$<$<NOT:$<CONFIG:Debug>>:-U_FORTIFY_SOURCE;-D_FORTIFY_SOURCE=2;-Wno-unused-result>")
	add_link_options(-Wl,-z,relro -Wl,-z,now)
	include(CheckCCompilerFlag)
	foreach(f -fstack-clash-protection -fcf-protection)
		string(MAKE_C_IDENTIFIER "HAVE${f}" v)
		check_c_compiler_flag(${f} ${v})
		if(${v})
			add_compile_options(${f})
		endif()
	endforeach()
endif()
