// SPDX-License-Identifier: MIT
/*
 * Directory permission corners, differential against a bare tmpfs: a
 * directory's owner may list (open O_RDONLY, readdir) a directory with read
 * but no search permission (0600), may neither list nor search 0300, 0100
 * or 0000, and may search but not list 0100 or 0300. The same script runs
 * as root and as an unprivileged owner: against a root daemon mounted with
 * allow_other (with and without default_permissions), and against a daemon
 * the unprivileged user mounted itself. Traces must be equal line by line.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define NOBODY 65534

static char *bare, *src, *mnt;
static struct tu_mount m;

static void teardown(void);

static void setup(void)
{
	umask(022);
	/* cr_skip_test() and a test's own exit leave without .fini: clean up
	 * at exit too (teardown runs once). */
	atexit(teardown);
	bare = tu_tmpdir("pbare");
	src = tu_tmpdir("psrc");
	mnt = tu_tmpdir("pmnt");
	cr_assert_eq(chmod(bare, 0755), 0);
	cr_assert_eq(chmod(src, 0755), 0);
	cr_assert_eq(chmod(mnt, 0755), 0);
}

static void teardown(void)
{
	if (!bare)
		return;
	tu_umount(&m);
	tu_rm_rf(bare);
	tu_rm_rf(src);
	rmdir(mnt);
	free(bare);
	free(src);
	free(mnt);
	bare = src = mnt = NULL;
}

TestSuite(dirperm, .init = setup, .fini = teardown, .timeout = 60);

/* ------------------------------------------------------------------ trace */

struct trace {
	char *buf;
	size_t len;
};

static void out(struct trace *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(struct trace *t, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	t->buf = realloc(t->buf, t->len + n + 2);
	memcpy(t->buf + t->len, line, n);
	t->len += n;
	t->buf[t->len++] = '\n';
	t->buf[t->len] = 0;
}

static const char *ename(int e)
{
	const char *s = strerrorname_np(e);
	return s ? s : "E?";
}

static long rec(struct trace *t, const char *what, long rc)
{
	if (rc < 0)
		out(t, "%s = -1 %s", what, ename(errno));
	else
		out(t, "%s = ok", what);
	return rc;
}
#define R(call) rec(t, #call, (long)(call))

static int cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* List a directory stream: sorted names with d_type, then stat of each as
 * `ls -l` would (fstatat relative to the stream, and by path). */
static void list(struct trace *t, const char *label, DIR *d, const char *path)
{
	char *names[16];
	int n = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d)) && n < 16) {
		char *s = malloc(strlen(de->d_name) + 8);
		sprintf(s, "%s:%d", de->d_name, de->d_type);
		names[n++] = s;
	}
	int e = errno;
	qsort(names, n, sizeof(*names), cmpstr);
	out(t, "%s: %d entries, end %s", label, n, e ? ename(e) : "ok");
	for (int i = 0; i < n; i++) {
		*strrchr(names[i], ':') = 0;
		/* DIR/. and DIR/.. are resolved by the kernel alone, and without
		 * default_permissions it checks no search permission for them
		 * (fuse_permission); they name objects the caller has reached
		 * already, and the difference is documented in snapfs(8). */
		if (!strcmp(names[i], ".") || !strcmp(names[i], "..")) {
			out(t, "  %s", names[i]);
			free(names[i]);
			continue;
		}
		struct stat st;
		char p[2048];
		snprintf(p, sizeof(p), "%s/%s", path, names[i]);
		int a = fstatat(dirfd(d), names[i], &st, AT_SYMLINK_NOFOLLOW);
		int ea = errno;
		int b = lstat(p, &st);
		int eb = errno;
		out(t, "  %s: fstatat %s, lstat %s", names[i], a ? ename(ea) : "ok",
		    b ? ename(eb) : "ok");
		free(names[i]);
	}
}

static const mode_t modes[] = {0700, 0600, 0500, 0400, 0300, 0200, 0100, 0000};

/* The script: run in the directory base, as its owner. */
static void script(struct trace *t, const char *base)
{
	char d[1024], p[1100];
	int home = open(".", O_PATH | O_DIRECTORY);
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		snprintf(d, sizeof(d), "%s/d%04o", base, modes[i]);
		R(mkdir(d, 0700));
		snprintf(p, sizeof(p), "%s/f", d);
		R(tu_write_file(p, "x", 1));
		snprintf(p, sizeof(p), "%s/s", d);
		R(mkdir(p, 0700));
		R(chmod(d, modes[i]));
	}
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		snprintf(d, sizeof(d), "%s/d%04o", base, modes[i]);
		out(t, "-- mode %04o", modes[i]);
		/* opendir(3) and readdir, twice: the second listing may come from
		 * what the kernel cached from the first */
		for (int pass = 0; pass < 2; pass++) {
			DIR *dp = opendir(d);
			rec(t, "opendir", dp ? 0 : -1);
			if (dp) {
				list(t, pass ? "readdir again" : "readdir", dp, d);
				closedir(dp);
			}
		}
		int fd = (int)R(open(d, O_RDONLY | O_DIRECTORY));
		if (fd >= 0) {
			/* not openat(fd, "."): a dot, see list() */
			R(openat(fd, "s", O_RDONLY | O_DIRECTORY));
			R(openat(fd, "f", O_RDONLY));
			R(fchdir(fd));
			R(fchdir(home));
			close(fd);
		}
		R(open(d, O_PATH | O_DIRECTORY));
		snprintf(p, sizeof(p), "%s/f", d);
		R(open(p, O_RDONLY));
		struct stat st;
		R(stat(p, &st));
		snprintf(p, sizeof(p), "%s/s", d);
		R(stat(p, &st));
		R(chdir(d));
		R(fchdir(home));
		R(access(d, R_OK));
		R(access(d, W_OK));
		R(access(d, X_OK));
		snprintf(p, sizeof(p), "%s/new", d);
		R(mkdir(p, 0700));
		R(rmdir(p));
		snprintf(p, sizeof(p), "%s/f", d);
		R(unlink(p));
	}
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		snprintf(d, sizeof(d), "%s/d%04o", base, modes[i]);
		R(chmod(d, 0700));
	}
	close(home);
}

/* Run the script in root/sub as uid (sub made and given to uid by root). */
static char *run_as(const char *root, const char *sub, uid_t uid)
{
	char base[1024];
	snprintf(base, sizeof(base), "%s/%s", root, sub);
	cr_assert_eq(mkdir(base, 0755), 0, "mkdir %s: %s", base, strerror(errno));
	cr_assert_eq(chown(base, uid, uid), 0);
	int pfd[2];
	cr_assert(pipe(pfd) == 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		alarm(30);
		gid_t g = uid;
		if (uid && (setgroups(1, &g) || setgid(uid) || setuid(uid)))
			_exit(126);
		struct trace tr = {0}, *t = &tr;
		script(t, base);
		if (tr.len && write(pfd[1], tr.buf, tr.len) != (ssize_t)tr.len)
			_exit(125);
		_exit(0);
	}
	close(pfd[1]);
	char *res = NULL;
	size_t got = 0, cap = 0;
	ssize_t r;
	do {
		if (got + 4096 > cap)
			res = realloc(res, cap = cap * 2 + 8192);
		r = read(pfd[0], res + got, cap - got - 1);
		if (r > 0)
			got += r;
	} while (r > 0);
	res[got] = 0;
	close(pfd[0]);
	int st;
	waitpid(pid, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "script as %u failed: %d", uid, st);
	return res;
}

static void compare(const char *what, uid_t uid)
{
	char sub[32];
	snprintf(sub, sizeof(sub), "u%u", uid);
	char *want = run_as(bare, sub, uid);
	char *got = run_as(mnt, sub, uid);
	const char *x = want, *y = got;
	int line = 1;
	const char *mode = "";
	while (*x && *y) {
		const char *ex = strchr(x, '\n'), *ey = strchr(y, '\n');
		if (!strncmp(x, "-- mode", 7))
			mode = x;
		if (ex - x != ey - y || memcmp(x, y, ex - x)) {
			cr_expect_fail("%s, as uid %u: line %d differs (%.12s)\n  tmpfs:  %.*s\n  "
				       "snapfs: %.*s",
				       what, uid, line, mode, (int)(ex - x), x, (int)(ey - y), y);
			goto out;
		}
		x = ex + 1;
		y = ey + 1;
		line++;
	}
	cr_expect(*x == 0 && *y == 0, "%s, as uid %u: trace lengths differ at line %d", what, uid,
		  line);
out:
	free(want);
	free(got);
}

static void root_daemon(const char *opts)
{
	cr_assert_eq(tu_mount(&m, src, mnt, opts), 0, "mount -o %s failed", opts ? opts : "");
	compare(opts ? opts : "no options", 0);
	if (opts) /* without allow_other only root may enter the mount */
		compare(opts, NOBODY);
	cr_expect_eq(tu_umount(&m), 0);
}

Test(dirperm, root_owner_lists_and_searches_as_on_tmpfs)
{
	root_daemon(NULL);
}

Test(dirperm, user_lists_0600_dir_as_on_tmpfs_root_daemon_allow_other)
{
	root_daemon("allow_other");
}

Test(dirperm, user_lists_0600_dir_as_on_tmpfs_root_daemon_default_permissions)
{
	root_daemon("allow_other,default_permissions");
}

/* The daemon run by the unprivileged owner itself, through fusermount3. */
Test(dirperm, user_lists_0600_dir_as_on_tmpfs_user_daemon)
{
	cr_assert_eq(chown(src, NOBODY, NOBODY), 0);
	cr_assert_eq(chown(mnt, NOBODY, NOBODY), 0);
	cr_assert_eq(chown(bare, NOBODY, NOBODY), 0);
	struct stat before;
	cr_assert_eq(stat(mnt, &before), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		gid_t g = NOBODY;
		if (setgroups(1, &g) || setgid(NOBODY) || setuid(NOBODY))
			_exit(126);
		int fuse = open("/dev/fuse", O_RDWR);
		if (fuse < 0)
			_exit(77); /* no FUSE for unprivileged users here */
		close(fuse);
		execl(getenv("SNAPFS_BIN"), "snapfs", "-f", src, mnt, (char *)NULL);
		_exit(127);
	}
	snprintf(m.source, sizeof(m.source), "%s", src);
	snprintf(m.mnt, sizeof(m.mnt), "%s", mnt);
	m.pid = pid;
	struct stat now;
	int i;
	for (i = 0; i < 1000; i++) {
		if (tu_is_snapfs_mount(mnt) && stat(mnt, &now) == 0 && now.st_dev != before.st_dev)
			break;
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			m.pid = 0;
			if (WIFEXITED(st) && WEXITSTATUS(st) == 77)
				cr_skip_test("/dev/fuse is not open to unprivileged users");
			cr_assert_fail("daemon as nobody exited: %d", st);
		}
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	cr_assert_lt(i, 1000, "daemon as nobody did not mount");
	/* Only the mounting user may enter: run the script in mnt itself. */
	char *want = NULL, *got = NULL;
	int pfd[2][2];
	const char *roots[2] = {bare, mnt};
	for (int k = 0; k < 2; k++) {
		cr_assert(pipe(pfd[k]) == 0);
		pid_t c = fork();
		if (c == 0) {
			close(pfd[k][0]);
			alarm(30);
			gid_t gg = NOBODY;
			if (setgroups(1, &gg) || setgid(NOBODY) || setuid(NOBODY))
				_exit(126);
			struct trace tr = {0};
			script(&tr, roots[k]);
			if (tr.len && write(pfd[k][1], tr.buf, tr.len) != (ssize_t)tr.len)
				_exit(125);
			_exit(0);
		}
		close(pfd[k][1]);
		char *res = calloc(1, 1 << 20);
		size_t got_n = 0;
		ssize_t r;
		while ((r = read(pfd[k][0], res + got_n, (1 << 20) - 1 - got_n)) > 0)
			got_n += r;
		close(pfd[k][0]);
		int st;
		waitpid(c, &st, 0);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "script failed: %d", st);
		*(k ? &got : &want) = res;
	}
	const char *x = want, *y = got;
	int line = 1;
	while (*x && *y) {
		const char *ex = strchr(x, '\n'), *ey = strchr(y, '\n');
		if (ex - x != ey - y || memcmp(x, y, ex - x)) {
			cr_expect_fail(
			    "user daemon: line %d differs\n  tmpfs:  %.*s\n  snapfs: %.*s", line,
			    (int)(ex - x), x, (int)(ey - y), y);
			break;
		}
		x = ex + 1;
		y = ey + 1;
		line++;
	}
	free(want);
	free(got);
	cr_expect_eq(tu_umount(&m), 0);
}
