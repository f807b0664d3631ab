// SPDX-License-Identifier: MIT
/*
 * The installed snapfs, used the way a user or a packager would: each test
 * installs the build ($SNAPFS_BUILDDIR) into a fresh prefix under /dev/shm
 * with `cmake --install --prefix`, then checks the tree, builds programs
 * against the installed library with pkg-config only and with
 * find_package(snapfs) only, mounts through mount(8) and fstab, and lints
 * the man pages and units. mount(8) looks for helpers in /sbin only: the
 * helper-link tests run in a private mount namespace (unshare -m) where
 * /sbin is replaced by a copy holding the installed links, so the real
 * /sbin is never touched. Every mount is lazily unmounted in .fini, also
 * when a test fails.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include "testutil.h"

static char *pfx, *work, *src, *mnt;
static char out[16384];

/* Run a shell command (stdout and stderr into out); its exit status. */
static int __attribute__((format(printf, 1, 2))) sh(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	cr_assert(n > 0 && n + 5 < (int)sizeof(cmd), "command too long");
	memcpy(cmd + n, " 2>&1", 6);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	/* Read everything (a writer must never get SIGPIPE); keep the tail. */
	size_t len = 0, got;
	while ((got = fread(out + len, 1, sizeof(out) - 1 - len, p)) > 0) {
		len += got;
		if (len == sizeof(out) - 1) {
			memmove(out, out + len / 2, len - len / 2);
			len -= len / 2;
		}
	}
	out[len] = 0;
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#define SH_OK(...)                                                                                 \
	do {                                                                                       \
		int rc_ = sh(__VA_ARGS__);                                                         \
		cr_assert_eq(rc_, 0, "exit %d from: %s\n%s", rc_, #__VA_ARGS__, out);              \
	} while (0)

static void setup(void)
{
	const char *build = getenv("SNAPFS_BUILDDIR");
	cr_assert_not_null(build, "SNAPFS_BUILDDIR is not set (run the tests through ctest)");
	pfx = tu_tmpdir("inst-pfx");
	work = tu_tmpdir("inst-work");
	src = tu_tmpdir("inst-src");
	mnt = tu_tmpdir("inst-mnt");
	SH_OK("cmake --install '%s' --prefix '%s' >/dev/null", build, pfx);
}

static void teardown(void)
{
	if (mnt && tu_is_snapfs_mount(mnt))
		sh("umount -l '%s'", mnt);
	if (src && tu_is_snapfs_mount(src))
		sh("umount -l '%s'", src);
	const char *dirs[] = {pfx, work, src, mnt};
	for (int i = 0; i < 4; i++)
		if (dirs[i]) {
			tu_rm_rf(dirs[i]);
			free((void *)dirs[i]);
		}
	pfx = work = src = mnt = NULL;
}

TestSuite(install, .init = setup, .fini = teardown, .timeout = 60);

/* Copy out (a command's output) into dst; fails the test if it does not fit. */
static void take(char *dst, size_t len)
{
	size_t n = strlen(out);
	cr_assert(n < len, "output too long: %zu bytes", n);
	memcpy(dst, out, n + 1);
}

/* The installed library directory (lib, lib64 or lib/<multiarch>). */
static const char *libdir(void)
{
	static char dir[1024];
	SH_OK("dirname \"$(find '%s' -name libsnapfs.so -print -quit)\"", pfx);
	out[strcspn(out, "\n")] = 0;
	take(dir, sizeof(dir));
	cr_assert(dir[0] == '/', "libsnapfs.so not installed under %s", pfx);
	return dir;
}

Test(install, tree_has_binaries_library_header_pc_cmake_man_helpers_units)
{
	const char *files[] = {
	    "sbin/snapfs",
	    "sbin/snapctl",
	    "include/snapfs.h",
	    "share/man/man8/snapfs.8",
	    "share/man/man8/snapctl.8",
	    "share/man/man3/libsnapfs.3",
	    "share/man/man3/snapfs_pin.3",
	    "share/man/man3/snapseg_read.3",
	    "share/man/man3/snapfs_pread.3",
	    "lib/systemd/system/snapfs@.service",
	    "lib/systemd/system/snapfs-check@.service",
	    "lib/systemd/system/snapfs-check@.timer",
	    "lib/systemd/system/snapfs-snapshot@.service",
	    "lib/systemd/system/snapfs-snapshot@.timer",
	    "share/bash-completion/completions/snapctl",
	    "share/doc/snapfs/examples/srv-data.mount",
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		SH_OK("test -f '%s/%s' || { echo missing %s; false; }", pfx, files[i], files[i]);
	SH_OK("test -x '%s/sbin/snapfs' && test -x '%s/sbin/snapctl'", pfx, pfx);
	/* The helpers are relative links to the daemon, as sshfs installs them. */
	for (int i = 0; i < 2; i++) {
		SH_OK("readlink '%s/sbin/%s'", pfx, i ? "mount.snapfs" : "mount.fuse.snapfs");
		cr_assert_str_eq(out, "snapfs\n");
	}
	const char *lib = libdir();
	SH_OK("test -f '%s/pkgconfig/snapfs.pc'", lib);
	SH_OK("test -f '%s/cmake/snapfs/snapfsConfig.cmake' && "
	      "test -f '%s/cmake/snapfs/snapfsConfigVersion.cmake' && "
	      "test -f '%s/cmake/snapfs/snapfsTargets.cmake'",
	      lib, lib, lib);
	/* libsnapfs.so -> libsnapfs.so.MAJOR (the SONAME) -> the real file. */
	SH_OK("readelf -d '%s/libsnapfs.so' | sed -n 's/.*(SONAME).*\\[\\(.*\\)\\]/\\1/p'", lib);
	cr_assert_str_eq(out, "libsnapfs.so.0\n");
	SH_OK("test -L '%s/libsnapfs.so' && test -L '%s/libsnapfs.so.0'", lib, lib);
}

Test(install, library_exports_exactly_the_api_of_the_header)
{
	const char *srcdir = getenv("SNAPFS_SRCDIR");
	cr_assert_not_null(srcdir);
	char api[4096], exported[4096];
	SH_OK("sed -n 's/^SNAPFS_API[^(]*[ *]\\([a-z_]*\\)(.*/\\1/p' '%s/include/snapfs.h' | sort",
	      srcdir);
	take(api, sizeof(api));
	SH_OK("nm -D --defined-only '%s/libsnapfs.so' | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sort",
	      libdir());
	take(exported, sizeof(exported));
	cr_assert(strstr(api, "snapfs_pin\n"), "no API parsed from snapfs.h:\n%s", api);
	cr_assert_str_eq(exported, api, "exported:\n%s\nsnapfs.h:\n%s", exported, api);
	/* the ABI: exactly the symbols of the checked-in list (the Debian
	 * symbols file, which also says in which version each appeared) */
	char listed[4096];
	SH_OK("sed -n 's/^ \\([a-z_]*\\)@Base .*/\\1/p' '%s/debian/libsnapfs0.symbols' | sort",
	      srcdir);
	take(listed, sizeof(listed));
	cr_assert_str_eq(exported, listed, "exported:\n%s\ndebian/libsnapfs0.symbols:\n%s",
			 exported, listed);
}

Test(install, installed_binaries_pass_hardening_check)
{
	if (system("command -v hardening-check >/dev/null 2>&1"))
		cr_skip_test("hardening-check (devscripts) is not installed: make deps");
	const char *h = getenv("SNAPFS_TEST_HARDENED");
	if (!h || strcmp(h, "1"))
		cr_skip_test("not a hardened build (Debug, sanitizers or SNAPFS_HARDENING=OFF)");
	/* PIE, stack protector, fortify, RELRO and BIND_NOW on each; fortify
	 * needs an optimised build (not Debug), as in the release build.
	 * Control-flow integrity is not asked: we compile with -fcf-protection,
	 * but the linker keeps the IBT/SHSTK note only when every object has
	 * it, and Debian 12's crt files and libc_nonshared.a do not (dpkg
	 * enables it from Debian 13 on). */
	SH_OK("hardening-check --nocfprotection '%s/sbin/snapfs' '%s/sbin/snapctl' "
	      "'%s/libsnapfs.so' 2>&1 || { hardening-check -v '%s/sbin/snapfs' '%s/sbin/snapctl' "
	      "'%s/libsnapfs.so'; false; }",
	      pfx, pfx, libdir(), pfx, pfx, libdir());
}

/* A program that pins a file on a mount and reads it back through the
 * snapshot view after the live file changed, and reads the live file with
 * snapfs_pread (large and small); argv[1] is the file. */
static const char prog[] =
    "#include <snapfs.h>\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include <string.h>\n"
    "int main(int argc, char **argv) {\n"
    "	const char *p[] = {argv[1]}; uint64_t id; char buf[64] = \"\";\n"
    "	if (snapfs_pin(p, 1, \"install-test\", &id)) { perror(\"pin\"); return 1; }\n"
    "	FILE *f = fopen(argv[1], \"w\"); fputs(\"after\", f); fclose(f);\n"
    "	char *s = snapfs_snapshot_path(argv[1], id); if (!s) return 2;\n"
    "	f = fopen(s, \"r\"); if (!f) { perror(s); return 3; }\n"
    "	fgets(buf, sizeof(buf), f); fclose(f); free(s);\n"
    "	printf(\"%s\\n\", buf);\n"
    "	static char big[1 << 20]; f = fopen(argv[1], \"r\");\n"
    "	if (snapfs_pread(fileno(f), big, sizeof(big), 0) != 5 ||\n"
    "	    snapfs_pread(fileno(f), buf, 3, 2) != 3 || memcmp(big, \"after\", 5) ||\n"
    "	    memcmp(buf, \"ter\", 3)) { perror(\"snapfs_pread\"); return 5; }\n"
    "	fclose(f);\n"
    "	return snapfs_release(argv[1], id) ? 4 : 0;\n"
    "}\n";

/* Mount with the installed daemon, run the program built at exe, unmount. */
static void run_against_mount(const char *exe)
{
	char bin[1024], file[1024];
	snprintf(bin, sizeof(bin), "%s/sbin/snapfs", pfx);
	setenv("SNAPFS_BIN", bin, 1);
	struct tu_mount m;
	cr_assert_eq(tu_mount(&m, src, mnt, NULL), 0, "installed snapfs did not mount");
	tu_path(file, sizeof(file), mnt, "f");
	cr_assert_eq(tu_write_file(file, "before", 6), 0);
	int rc = sh("LD_LIBRARY_PATH='%s' '%s' '%s'", libdir(), exe, file);
	tu_umount(&m);
	cr_assert_eq(rc, 0, "%s failed (%d): %s", exe, rc, out);
	cr_assert_str_eq(out, "before\n");
}

Test(install, program_builds_with_pkg_config_only_and_runs)
{
	char c[1024];
	tu_path(c, sizeof(c), work, "prog.c");
	cr_assert_eq(tu_write_file(c, prog, strlen(prog)), 0);
	const char *lib = libdir();
	SH_OK("PKG_CONFIG_PATH='%s/pkgconfig' pkg-config --cflags --libs snapfs", lib);
	cr_assert(strstr(out, pfx), "pkg-config does not point into the prefix: %s", out);
	SH_OK("cd '%s' && cc -Wall -Werror $SNAPFS_TEST_CFLAGS -o prog prog.c "
	      "$(PKG_CONFIG_PATH='%s/pkgconfig' pkg-config --cflags --libs snapfs)",
	      work, lib);
	char exe[1024];
	tu_path(exe, sizeof(exe), work, "prog");
	run_against_mount(exe);
}

Test(install, libsnapfs_3_examples_build_and_the_segment_one_runs)
{
	/* every literal block of the installed libsnapfs(3) with a main(),
	 * its mdoc escapes undone (\e is a backslash) */
	const char *lib = libdir();
	SH_OK("cd '%s' && '%s/test/install/man_examples.sh' '%s/share/man/man3/libsnapfs.3'", work,
	      getenv("SNAPFS_SRCDIR"), pfx);
	cr_assert_eq(atoi(out), 2, "examples with a main(): %s", out);
	SH_OK("cd '%s' && for f in ex*.c; do cc -Wall -Werror $SNAPFS_TEST_CFLAGS -o ${f%%.c} $f "
	      "$(PKG_CONFIG_PATH='%s/pkgconfig' pkg-config --cflags --libs snapfs) || exit 1; done",
	      work, lib);
	/* the segment example on a plain file (snapseg_read is then pread):
	 * the sum of every 4096th byte */
	SH_OK("cd '%s' && printf 'a%%4095sb%%4095s' x y > in && LD_LIBRARY_PATH='%s' ./ex2 in",
	      work, lib);
	cr_assert_str_eq(out, "195\n", "ex2: %s", out);
}

Test(install, program_builds_with_find_package_and_runs)
{
	char path[1024];
	tu_path(path, sizeof(path), work, "main.c");
	cr_assert_eq(tu_write_file(path, prog, strlen(prog)), 0);
	const char cml[] = "cmake_minimum_required(VERSION 3.20)\n"
			   "project(usesnapfs C)\n"
			   "find_package(snapfs 0.1 REQUIRED)\n"
			   "add_executable(prog main.c)\n"
			   "target_link_libraries(prog PRIVATE snapfs::snapfs)\n";
	tu_path(path, sizeof(path), work, "CMakeLists.txt");
	cr_assert_eq(tu_write_file(path, cml, strlen(cml)), 0);
	SH_OK("cmake -S '%s' -B '%s/b' -DCMAKE_PREFIX_PATH='%s' "
	      "-DCMAKE_C_FLAGS=\"$SNAPFS_TEST_CFLAGS\" "
	      ">/dev/null && "
	      "cmake --build '%s/b' >/dev/null",
	      work, work, pfx, work);
	/* The imported target, not a path that happens to work. */
	SH_OK("grep -l 'snapfs::snapfs' '%s/b/CMakeCache.txt' '%s/CMakeLists.txt' >/dev/null", work,
	      work);
	snprintf(path, sizeof(path), "%s/b/prog", work);
	run_against_mount(path);
}

/* Wait (at most 10 s) until no snapfs serves src any more, i.e. the daemon
 * has released the store: a mount of the same store then succeeds. */
static int wait_unmounted(const char *where)
{
	for (int i = 0; i < 100; i++) {
		if (!tu_is_snapfs_mount(where))
			return 0;
		usleep(100 * 1000);
	}
	return -1;
}

/* Wait (at most 10 s) until no process holds the store of src open: umount
 * returns before the daemon has exited. */
static int wait_store_free(const char *source)
{
	return sh("i=0; while ls -l /proc/[0-9]*/fd 2>/dev/null | grep -qF -- '%s/.snapfs/'; do "
		  "i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.1; done",
		  source);
}

/*
 * Without the helper links in /sbin, `mount -t fuse.snapfs` runs
 * /sbin/mount.fuse (mount.fuse3) as below, which runs `snapfs` from PATH.
 * mount(8) itself resets PATH to the standard one (/usr/local/sbin:...), so
 * it would not find a daemon in this test's prefix: run the fallback
 * helper directly, with mount(8)'s arguments, and the prefix in PATH.
 */
Test(install, mount_fuse3_fallback_runs_installed_daemon_from_path)
{
	SH_OK("PATH='%s/sbin':$PATH /sbin/mount.fuse '%s' '%s' -o rw,allow_other -t fuse.snapfs",
	      pfx, src, mnt);
	cr_assert(tu_is_snapfs_mount(mnt));
	char f[1024], g[1024];
	tu_path(f, sizeof(f), mnt, "through");
	tu_path(g, sizeof(g), src, "through");
	cr_assert_eq(tu_write_file(f, "x", 1), 0);
	SH_OK("umount '%s'", mnt);
	cr_assert_eq(wait_unmounted(mnt), 0);
	char b[4];
	cr_assert_eq(tu_read_file(g, b, sizeof(b)), 1, "write through the mount not in SOURCE");
	/* A bad option: mount fails, nothing mounted. */
	cr_assert_eq(wait_store_free(src), 0, "daemon still holds the store after umount");
	cr_assert_neq(
	    sh("PATH='%s/sbin':$PATH /sbin/mount.fuse '%s' '%s' -o rw,bogus_opt -t fuse.snapfs",
	       pfx, src, mnt),
	    0);
	cr_assert(strstr(out, "bogus_opt"), "%s", out);
	cr_assert(!tu_is_snapfs_mount(mnt));
}

/*
 * The installed helper links as mount(8) finds them, in a private mount
 * namespace whose /sbin is a copy of the real one plus the prefix's links.
 * PATH there lacks every snapfs, so only the links can have mounted it.
 * Runs: mount -t fuse.snapfs, an fstab line, mount -t snapfs, a bad option,
 * a fake mount (-f), SOURCE == MOUNTPOINT, and umount after each.
 */
Test(install, mount_and_fstab_through_installed_helper_links)
{
	char script[1024];
	tu_path(script, sizeof(script), work, "helper.sh");
	char body[8192];
	snprintf(body, sizeof(body),
		 "set -eu\nrc=1\n"
		 "P='%s' S='%s' M='%s' W='%s'\n"
		 "sbin=$(readlink -f /sbin)\n"
		 "mkdir \"$W/sbin\"\n"
		 "set +x; for f in \"$sbin\"/*; do ln -s \"$f\" \"$W/sbin/\"; done; set -x\n"
		 "ln -sf \"$P/sbin/mount.fuse.snapfs\" \"$P/sbin/mount.snapfs\" \"$W/sbin/\"\n"
		 "mount --bind \"$W/sbin\" \"$sbin\"\n"
		 "trap 'set +e; umount -l \"$M\" 2>/dev/null; umount -l \"$S\" 2>/dev/null; exit "
		 "$rc' EXIT\n"
		 "export PATH=/usr/bin:/bin\n"
		 "! command -v snapfs\n"
		 "mounted() { awk -v m=\"$1\" '$2 == m && $3 == \"fuse.snapfs\" {f=1} END {exit "
		 "!f}' /proc/self/mounts; }\n"
		 "busy() { ls -l /proc/[0-9]*/fd 2>/dev/null | grep -qF -- \"$S/.snapfs/\"; }\n"
		 "gone() { i=0; while mounted \"$1\" || busy; do i=$((i+1)); [ $i -lt 100 ] || "
		 "return 1; sleep 0.1; done; }\n"
		 "echo == mount -t fuse.snapfs\n"
		 "mount -t fuse.snapfs \"$S\" \"$M\" -o allow_other\n"
		 "mounted \"$M\"\n"
		 "grep \" $M fuse.snapfs .*allow_other\" /proc/self/mounts\n"
		 "echo one > \"$M/one\"\n"
		 "umount \"$M\"; gone \"$M\"\n"
		 "test \"$(cat \"$S/one\")\" = one\n"
		 "echo == fstab\n"
		 "echo \"$S $M fuse.snapfs defaults,allow_other 0 0\" > \"$W/fstab\"\n"
		 "mount -T \"$W/fstab\" \"$M\"\n"
		 "mounted \"$M\"; test \"$(cat \"$M/one\")\" = one\n"
		 "umount \"$M\"; gone \"$M\"\n"
		 "echo == mount -t snapfs\n"
		 "mount -t snapfs \"$S\" \"$M\"\n"
		 "mounted \"$M\"; umount \"$M\"; gone \"$M\"\n"
		 "echo == bad option\n"
		 "! mount -t fuse.snapfs \"$S\" \"$M\" -o bogus_opt\n"
		 "! mounted \"$M\"\n"
		 "echo == fake\n"
		 "mount -f -t fuse.snapfs \"$S\" \"$M\"\n"
		 "! mounted \"$M\"\n"
		 "echo == on top of itself\n"
		 "mount -t fuse.snapfs \"$S\" \"$S\"\n"
		 "mounted \"$S\"; test \"$(cat \"$S/one\")\" = one\n"
		 "! ls -a \"$S\" | grep -qx .snapfs\n"
		 "umount \"$S\"; gone \"$S\"\n"
		 "test -d \"$S/.snapfs\"\n"
		 "echo == ok; rc=0\n",
		 pfx, src, mnt, work);
	cr_assert_eq(tu_write_file(script, body, strlen(body)), 0);
	int rc = sh("unshare -m --propagation private sh -x '%s'", script);
	cr_assert_eq(rc, 0, "helper script failed (%d):\n%s", rc, out);
	cr_assert(strstr(out, "== ok"), "%s", out);
	cr_assert(!tu_is_snapfs_mount(mnt), "the namespace's mount leaked out");
}

/* Type=notify: READY=1 once mounted, STOPPING=1 when leaving, on an
 * abstract $NOTIFY_SOCKET, from the installed daemon. */
Test(install, daemon_notifies_ready_after_mount_and_stopping_at_exit)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert(fd >= 0);
	char name[64];
	snprintf(name, sizeof(name), "@snapfs-install-test-%d", (int)getpid());
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path + 1, name + 1, strlen(name) - 1);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa,
			  (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name))),
		     0, "bind: %s", strerror(errno));
	struct timeval tv = {.tv_sec = 10};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setenv("NOTIFY_SOCKET", name, 1);
	char bin[1024];
	snprintf(bin, sizeof(bin), "%s/sbin/snapfs", pfx);
	setenv("SNAPFS_BIN", bin, 1);
	struct tu_mount m;
	cr_assert_eq(tu_mount(&m, src, mnt, NULL), 0);
	unsetenv("NOTIFY_SOCKET");
	char msg[256];
	ssize_t n = recv(fd, msg, sizeof(msg) - 1, 0);
	cr_assert(n > 0, "no READY=1: %s", strerror(errno));
	msg[n] = 0;
	cr_assert(strncmp(msg, "READY=1\n", 8) == 0, "got '%s'", msg);
	cr_assert(tu_is_snapfs_mount(mnt), "READY=1 before the mount");
	cr_assert_eq(tu_umount(&m), 0);
	n = recv(fd, msg, sizeof(msg) - 1, 0);
	cr_assert(n > 0, "no STOPPING=1: %s", strerror(errno));
	msg[n] = 0;
	cr_assert(strncmp(msg, "STOPPING=1\n", 11) == 0, "got '%s'", msg);
	close(fd);
}

Test(install, man_pages_are_clean_under_mandoc_lint)
{
	SH_OK("command -v mandoc");
	/* the footer names the project and its version, not "BSD" */
	SH_OK("v=$('%s/sbin/snapctl' --version | cut -d' ' -f2); for p in man8/snapctl.8 "
	      "man3/libsnapfs.3; do mandoc -Tascii '%s/share/man/'$p | tail -1 | "
	      "grep -q \"^snapfs $v .* snapfs $v\\$\" || { echo $p; exit 1; }; done",
	      pfx, pfx);
	SH_OK("set -e; n=0; for f in $(find '%s/share/man' -type f -name '*.[0-9]'); do "
	      "mandoc -Tlint -Wwarning \"$f\"; n=$((n+1)); done; test $n -ge 3",
	      pfx);
	/* Every link resolves to a page. */
	SH_OK("for f in '%s'/share/man/man3/*.3; do test -f \"$f\" || exit 1; done", pfx);
}

Test(install, systemd_units_pass_systemd_analyze_verify)
{
	SH_OK("command -v systemd-analyze");
	/* Installed copies, with ExecStart= naming the installed daemon; the
	 * templates are verified with a made-up instance. MANPATH: so the
	 * Documentation=man: references resolve to the installed pages. */
	SH_OK(
	    "cd '%s/lib/systemd/system' && grep -q '^ExecStart=%s/sbin/snapfs ' snapfs@.service && "
	    "MANPATH='%s/share/man:' systemd-analyze verify snapfs@.service "
	    "snapfs-check@.service snapfs-check@.timer snapfs-snapshot@.service "
	    "snapfs-snapshot@.timer",
	    pfx, pfx, pfx);
	cr_assert(!strstr(out, "snapfs"), "verify complained:\n%s", out);
	SH_OK("systemd-analyze verify --man=no '%s/share/doc/snapfs/examples/srv-data.mount'", pfx);
	cr_assert(!strstr(out, "srv-data"), "verify complained:\n%s", out);
}

/* snapfs@.service's first ExecStartPre, run as systemd would with %f the
 * mount point: it detaches a dead snapfs mount (its daemon killed), so a
 * restart mounts again instead of failing in a loop, and leaves a live one
 * alone. */
Test(install, unit_detaches_a_dead_mount_and_leaves_a_live_one)
{
	char bin[1024];
	snprintf(bin, sizeof(bin), "%s/sbin/snapfs", pfx);
	setenv("SNAPFS_BIN", bin, 1);
	SH_OK("sed -n \"s/^ExecStartPre=\\/bin\\/sh -c '\\(.*\\)' sh %%f$/\\1/p\" "
	      "'%s/lib/systemd/system/snapfs@.service' > '%s/pre.sh' && test -s '%s/pre.sh'",
	      pfx, work, work);
	struct tu_mount m;
	cr_assert_eq(tu_mount(&m, src, mnt, NULL), 0, "installed snapfs did not mount");
	SH_OK(
	    "sh -c \"$(cat '%s/pre.sh')\" sh '%s' 2>&1 && grep -q ' %s fuse.snapfs ' /proc/mounts",
	    work, mnt, mnt);
	cr_assert_str_eq(out, "", "a live mount: %s", out);
	cr_assert_eq(kill(m.pid, SIGKILL), 0);
	waitpid(m.pid, NULL, 0);
	m.pid = -1;
	/* statfs always asks the daemon; stat of the root may be cached */
	struct statvfs vfs;
	cr_assert_eq(statvfs(mnt, &vfs), -1, "the mount is not dead");
	cr_assert_eq(errno, ENOTCONN);
	SH_OK(
	    "sh -c \"$(cat '%s/pre.sh')\" sh '%s' 2>&1; ! grep -q ' %s fuse.snapfs ' /proc/mounts",
	    work, mnt, mnt);
	char want[1200];
	snprintf(want, sizeof(want),
		 "snapfs: %s: dead snapfs mount (its daemon is gone); detaching it\n", mnt);
	cr_assert_str_eq(out, want);
	cr_assert_eq(statvfs(mnt, &vfs), 0, "still dead: %s", strerror(errno));
	tu_umount(&m);
}
