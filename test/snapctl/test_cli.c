// SPDX-License-Identifier: MIT
/*
 * snapctl through a real mount on tmpfs: every command and error path with
 * its exact output and exit status, -H and --json parsed, diff on
 * truncated, extended and untouched files, restore writing only the blocks
 * that differ (its report and the store's COW counters), --expire releasing
 * on time; options anywhere, help, mount discovery, libsmartcols tables
 * (-o, -s, -r) and JSON for non-UTF-8 names, labels, prune, progress on a
 * terminal and SIGINT. Each snapctl runs in its own mount namespace where
 * the only snapfs mounts are this test's (other suites mount in parallel),
 * so the mount discovery it does is deterministic. The binary comes from
 * $SNAPCTL_BIN, the daemon from $SNAPFS_BIN.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pty.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "snapfs.h"
#include "snapfs_proto.h"
#include "testutil.h"

static char *src, *mnt;
static struct tu_mount m;
static int run_uid = -1;    /* run snapctl as this user (and group) when >= 0 */
static const char *mnt2;    /* a second mount of the test's, kept visible too */
static int run_tty;	    /* stderr on a pseudo-terminal */
static int run_sigint;	    /* start with SIGINT pending */
static const char *run_exe; /* run this instead of snapctl (argv[0] stays snapctl's) */

static void setup(void)
{
	umask(022);
	src = tu_tmpdir("ctlsrc");
	mnt = tu_tmpdir("ctlmnt");
	char err[512] = "";
	cr_assert_eq(tu_mount(&m, src, mnt, NULL), 0, "snapfs did not mount: %s", err);
}

static void teardown(void)
{
	tu_umount(&m);
	tu_rm_rf(src);
	tu_rm_rf(mnt);
	free(src);
	free(mnt);
}

TestSuite(snapctl, .init = setup, .fini = teardown, .timeout = 60);

struct res {
	int status;
	char out[1 << 21], err[8192];
};

/* In the child: a private mount namespace without the snapfs mounts of
 * other tests (mnt and mnt2 stay). */
static void only_our_mounts(void)
{
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		_exit(124);
	for (int pass = 0; pass < 16; pass++) {
		FILE *f = fopen("/proc/self/mountinfo", "re");
		char line[4096], mp[4096], type[64];
		int again = 0;
		while (f && fgets(line, sizeof(line), f)) {
			char *sep = strstr(line, " - ");
			if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1 ||
			    sscanf(sep + 3, "%63s", type) != 1 || strcmp(type, "fuse.snapfs"))
				continue;
			if (!strcmp(mp, mnt) || (mnt2 && !strcmp(mp, mnt2)))
				continue;
			if (umount2(mp, MNT_DETACH) == 0)
				again = 1;
		}
		if (f)
			fclose(f);
		if (!again)
			break;
	}
}

/* Run snapctl with the NULL-terminated arguments in cwd (NULL: the mount). */
static struct res *run_in(const char *cwd, ...)
{
	static struct res r;
	const char *argv[32];
	int argc = 0;
	const char *bin = getenv("SNAPCTL_BIN");
	cr_assert_not_null(bin, "SNAPCTL_BIN not set");
	argv[argc++] = bin;
	va_list ap;
	va_start(ap, cwd);
	const char *a;
	while ((a = va_arg(ap, const char *)) && argc < 31)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	char outp[] = "/dev/shm/ctlout.XXXXXX", errp[] = "/dev/shm/ctlerr.XXXXXX";
	int ofd = mkstemp(outp), efd = mkstemp(errp);
	cr_assert(ofd >= 0 && efd >= 0);
	unlink(outp);
	unlink(errp);
	int master = -1, slave = -1;
	if (run_tty)
		cr_assert_eq(openpty(&master, &slave, NULL, NULL, NULL), 0);
	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		only_our_mounts();
		if (run_sigint) {
			sigset_t ss;
			sigemptyset(&ss);
			sigaddset(&ss, SIGINT);
			sigprocmask(SIG_BLOCK, &ss, NULL);
			raise(SIGINT); /* pending across exec, delivered when snapctl unblocks it */
		}
		if (run_uid >= 0 &&
		    (setgroups(0, NULL) || setgid((gid_t)run_uid) || setuid((uid_t)run_uid)))
			_exit(125);
		if (chdir(cwd ? cwd : mnt))
			_exit(126);
		dup2(ofd, 1);
		dup2(run_tty ? slave : efd, 2);
		execv(run_exe ? run_exe : bin, (char *const *)argv);
		_exit(127);
	}
	int st;
	size_t got = 0;
	if (run_tty) {
		/* drain the terminal while snapctl runs */
		close(slave);
		for (;;) {
			struct pollfd pf = {master, POLLIN, 0};
			if (poll(&pf, 1, 100) > 0) {
				ssize_t k = read(master, r.err + got, sizeof(r.err) - 1 - got);
				if (k > 0) {
					got += (size_t)k;
					continue;
				}
			}
			if (waitpid(pid, &st, WNOHANG) == pid)
				break;
		}
		close(master);
	} else {
		waitpid(pid, &st, 0);
	}
	r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	ssize_t n = pread(ofd, r.out, sizeof(r.out) - 1, 0);
	r.out[n > 0 ? n : 0] = 0;
	n = run_tty ? (ssize_t)got : pread(efd, r.err, sizeof(r.err) - 1, 0);
	r.err[n > 0 ? n : 0] = 0;
	close(ofd);
	close(efd);
	return &r;
}

#define run(...) run_in(NULL, __VA_ARGS__, (const char *)NULL)

/* Exact status, stdout and stderr. */
#define expect(r, st, o, e)                                                                        \
	do {                                                                                       \
		struct res *r_ = (r);                                                              \
		cr_assert_eq(r_->status, st, "exit %d, expected %d; stdout:\n%s\nstderr:\n%s",     \
			     r_->status, st, r_->out, r_->err);                                    \
		cr_assert_str_eq(r_->out, o, "stdout:\n%s\nexpected:\n%s", r_->out, (char *)(o));  \
		cr_assert_str_eq(r_->err, e, "stderr:\n%s\nexpected:\n%s", r_->err, (char *)(e));  \
	} while (0)

/* The first line of stderr, for usage errors (the usage line follows). */
static void expect_usage(struct res *r, const char *first)
{
	cr_assert_eq(r->status, 2, "exit %d, expected 2; stderr:\n%s", r->status, r->err);
	cr_assert_str_eq(r->out, "", "stdout: %s", r->out);
	size_t n = strlen(first);
	cr_assert(!strncmp(r->err, first, n) && r->err[n] == '\n',
		  "stderr:\n%s\nexpected first line:\n%s", r->err, first);
	cr_assert(strstr(r->err, "usage: snapctl"), "no usage line: %s", r->err);
}

static const char *J(const char *a, const char *b)
{
	static char buf[8][1024];
	static int i;
	char *p = buf[i++ & 7];
	tu_path(p, 1024, a, b);
	return p;
}

static void mkfile(const char *rel, size_t len, uint64_t seed)
{
	char *buf = malloc(len + 1);
	tu_fill(buf, len, seed);
	cr_assert_eq(tu_write_file(J(mnt, rel), buf, len), 0, "write %s", rel);
	free(buf);
}

static void pwrite_at(const char *rel, const void *buf, size_t len, off_t off)
{
	int fd = open(J(mnt, rel), O_WRONLY);
	cr_assert_geq(fd, 0, "open %s: %s", rel, strerror(errno));
	cr_assert_eq(pwrite(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

static uint64_t stat_value(const char *name)
{
	struct res *r = run("stats", "-H", "-p");
	cr_assert_eq(r->status, 0, "stats: %s", r->err);
	char key[64];
	snprintf(key, sizeof(key), "%s\t", name);
	char *p = strstr(r->out, key);
	cr_assert_not_null(p, "no %s in\n%s", name, r->out);
	return strtoull(p + strlen(key), NULL, 10);
}

static void same_file(const char *a, const char *b)
{
	static char x[1 << 20], y[1 << 20];
	ssize_t n = tu_read_file(a, x, sizeof(x)), k = tu_read_file(b, y, sizeof(y));
	cr_assert(n >= 0 && n == k, "%s: %zd bytes, %s: %zd", a, n, b, k);
	cr_assert(!memcmp(x, y, (size_t)n), "%s and %s differ", a, b);
}

/* A minimal JSON syntax check: one value, then only whitespace. */
static const char *js_ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	return p;
}

static const char *js_value(const char *p)
{
	p = js_ws(p);
	if (*p == '{' || *p == '[') {
		char close = *p == '{' ? '}' : ']';
		int obj = *p == '{';
		p = js_ws(p + 1);
		if (*p == close)
			return p + 1;
		for (;;) {
			if (obj) {
				p = js_ws(p);
				if (*p != '"' || !(p = js_value(p)))
					return NULL;
				p = js_ws(p);
				if (*p++ != ':')
					return NULL;
			}
			if (!(p = js_value(p)))
				return NULL;
			p = js_ws(p);
			if (*p == close)
				return p + 1;
			if (*p++ != ',')
				return NULL;
		}
	}
	if (*p == '"') {
		for (p++; *p && *p != '"'; p++)
			if (*p == '\\' && !*++p)
				return NULL;
		return *p ? p + 1 : NULL;
	}
	if (*p == '-' || (*p >= '0' && *p <= '9')) {
		char *e;
		strtod(p, &e);
		return e;
	}
	for (const char *const *w = (const char *const[]){"true", "false", "null", NULL}; *w; w++)
		if (!strncmp(p, *w, strlen(*w)))
			return p + strlen(*w);
	return NULL;
}

static void expect_json(const char *s, const char *command)
{
	const char *e = js_value(s);
	cr_assert(e && !*js_ws(e), "not one JSON value:\n%s", s);
	char head[128];
	snprintf(head, sizeof(head),
		 "{\"output_version\": {\"command\": \"snapctl %s\", \"vers_major\": 1, "
		 "\"vers_minor\": 0},",
		 command);
	cr_assert(!strncmp(s, head, strlen(head)), "no output_version:\n%s", s);
}

/* ---- usage ---- */

Test(snapctl, help_version_and_usage_errors)
{
	struct res *r = run("--help");
	cr_assert_eq(r->status, 0);
	cr_assert(!strncmp(r->out, "usage: snapctl [-m MNT] COMMAND [ARGS]\n", 39), "%s", r->out);
	cr_assert(strstr(r->out, "  restore [-n] ID|LABEL [PATH...]\n"), "%s", r->out);
	cr_assert_str_eq(r->err, "");
	expect(run("--version"), 0, "snapctl 0.2.0\n", "");
	expect_usage(run_in(NULL, (const char *)NULL), "snapctl: missing COMMAND");
	expect_usage(run("frob"), "snapctl: frob: unknown command");
	expect_usage(run("-x", "list"), "snapctl: -x: unknown option");
	expect_usage(run("-m"), "snapctl: -m: missing argument");
	expect_usage(run("list", "-x"), "snapctl: list: -x: unknown option");
	expect_usage(run("list", "--jsn"), "snapctl: list: --jsn: unknown option");
	expect_usage(run("list", "extra"), "snapctl: list: extra: unexpected argument");
	expect_usage(run("pin"), "snapctl: pin: missing PATH");
	expect_usage(run("pin", "-l"), "snapctl: pin: -l: missing argument");
	expect_usage(run("pin", "--expire"), "snapctl: pin: --expire: missing argument");
	expect_usage(run("pin", "--expire", "5x", "f"),
		     "snapctl: pin: 5x: invalid expiry (a duration such as 90m, 12h, 7d or 1w, or "
		     "a time such as 2026-12-31T23:00)");
	expect_usage(run("pin", "--expire", "0s", "f"),
		     "snapctl: pin: 0s: invalid expiry (a duration such as 90m, 12h, 7d or 1w, or "
		     "a time such as 2026-12-31T23:00)");
	expect_usage(run("pin", "--expire", "2000-01-01", "f"),
		     "snapctl: pin: 2000-01-01: expiry in the past");
	expect_usage(run("pin", "--expire", "2030-13-01", "f"),
		     "snapctl: pin: 2030-13-01: invalid expiry (a duration such as 90m, 12h, 7d or "
		     "1w, or a time such as 2026-12-31T23:00)");
	expect_usage(run("pin", "--keep", "2", "f"), "snapctl: pin: --keep needs a label (-l)");
	expect_usage(run("prune", "-l", "x"), "snapctl: prune: missing --keep N");
	expect_usage(run("prune", "--keep", "x", "-l", "x"),
		     "snapctl: prune: --keep x: not a count (0 to 1000000)");
	expect_usage(run("list", "-o", "ID,BOGUS"), "snapctl: list: BOGUS: unknown column");
	expect_usage(run("list", "-s", "nope"), "snapctl: list: nope: unknown column");
	expect_usage(run("help", "frob"), "snapctl: help: frob: unknown command");
	expect_usage(run("release"), "snapctl: release: missing ID");
	expect_usage(run("release", "abc"), "snapctl: release: abc: invalid snapshot ID");
	expect_usage(run("release", "0"), "snapctl: release: 0: invalid snapshot ID");
	expect_usage(run("show"), "snapctl: show: missing ID");
	expect_usage(run("show", "1", "2"), "snapctl: show: 2: unexpected argument");
	expect_usage(run("diff", "-1"), "snapctl: diff: -1: unknown option");
	expect_usage(run("restore"), "snapctl: restore: missing ID");
	expect_usage(run("check", "x"), "snapctl: check: x: unexpected argument");
	char label[300];
	memset(label, 'a', sizeof(label) - 1);
	label[sizeof(label) - 1] = 0;
	expect_usage(run("pin", "-l", label, "f"), "snapctl: pin: label longer than 255 bytes");
}

/* ---- errors ---- */

Test(snapctl, outside_a_mount_and_unknown_ids_fail_with_one_line)
{
	char *out = tu_tmpdir("ctlout");
	cr_assert_eq(tu_write_file(J(out, "f"), "x", 1), 0);
	char line[1200];
	/* outside, the only snapfs mount is used; -m names one that is not */
	expect(run_in(out, "list", "-H", (const char *)NULL), 0, "", "");
	snprintf(line, sizeof(line), "snapctl: stats: %s: not on a snapfs mount\n", out);
	expect(run("-m", out, "stats"), 1, "", line);
	snprintf(line, sizeof(line), "snapctl: pin: %s: not on a snapfs mount\n", J(out, "f"));
	expect(run("pin", J(out, "f")), 1, "", line);
	mkfile("f", 100, 1);
	snprintf(line, sizeof(line), "snapctl: pin: %s: not on a snapfs mount\n", J(out, "f"));
	expect(run("pin", "f", J(out, "f")), 1, "", line);
	tu_rm_rf(out);
	free(out);

	expect(run("pin", "nope"), 1, "", "snapctl: pin: nope: No such file or directory\n");
	cr_assert_eq(mkdir(J(mnt, "d"), 0755), 0);
	expect(run("pin", "d"), 1, "", "snapctl: pin: d: is a directory (use -r)\n");
	expect(run("release", "99"), 1, "", "snapctl: release: 99: no such snapshot\n");
	expect(run("show", "99"), 1, "", "snapctl: show: 99: no such snapshot\n");
	expect(run("diff", "99"), 1, "", "snapctl: diff: 99: no such snapshot\n");
	expect(run("restore", "99"), 1, "", "snapctl: restore: 99: no such snapshot\n");
	expect(run("pin", "f"), 0, "1\n", "");
	expect(run("diff", "1", "nope"), 1, "", "snapctl: diff: nope: not in snapshot 1\n");
	expect(run("restore", "1", "d"), 1, "", "snapctl: restore: d: not in snapshot 1\n");
	/* several IDs: each is tried, the unknown one reported */
	expect(run("release", "7", "1"), 1, "", "snapctl: release: 7: no such snapshot\n");
	expect(run("list", "-H"), 0, "", "");
}

/* ---- pin, list, release, show ---- */

Test(snapctl, pin_list_show_release)
{
	cr_assert_eq(mkdir(J(mnt, "d"), 0755), 0);
	cr_assert_eq(mkdir(J(mnt, "d/e"), 0755), 0);
	mkfile("d/a", 8192, 1);
	mkfile("d/e/b", 1536, 2);
	mkfile("top", 3, 3);
	cr_assert_eq(chmod(J(mnt, "top"), 0600), 0);
	expect(run("pin", "-l", "both", "top", "d/a"), 0, "1\n", "");
	expect(run("pin", "--expire", "7d", "d/a", "d/e/b"), 0, "2\n", "");
	expect(run("-m", mnt, "pin", J(mnt, "top")), 0, "3\n", "");

	struct res *r = run("list");
	cr_assert_eq(r->status, 0);
	char *nl = strchr(r->out, '\n');
	cr_assert_not_null(nl);
	*nl = 0;
	cr_assert_str_eq(r->out,
			 "ID  EPOCH  CREATED              EXPIRES              FILES  HELD  "
			 "LABEL  OWNER  STATE");
	cr_assert_str_eq(r->err, "");

	/* -H -p: tab-separated, no header, ID first, exact numbers */
	r = run("list", "-H", "-p");
	cr_assert_eq(r->status, 0);
	char *save = NULL, *ln;
	int n = 0;
	long long now = time(NULL);
	const char *want[3][9] = {{"1", "1", "", "-", "2", "0", "both", "root", "valid"},
				  {"2", "2", "", "", "2", "0", "-", "root", "expiring"},
				  {"3", "3", "", "-", "1", "0", "-", "root", "valid"}};
	for (ln = strtok_r(r->out, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save), n++) {
		cr_assert_lt(n, 3, "extra line %s", ln);
		char *f[10], *fs = NULL;
		int k = 0;
		for (char *t = strtok_r(ln, "\t", &fs); t && k < 10; t = strtok_r(NULL, "\t", &fs))
			f[k++] = t;
		cr_assert_eq(k, 9, "%d fields in line %d", k, n);
		for (int i = 0; i < 9; i++)
			if (i != 2 && *want[n][i])
				cr_assert_str_eq(f[i], want[n][i], "line %d field %d", n, i);
		cr_assert(llabs(atoll(f[2]) - now) < 60, "created %s, now %lld", f[2], now);
		if (n == 1) /* --expire 7d */
			cr_assert(llabs(atoll(f[3]) - now - 7 * 86400) < 60, "expires %s", f[3]);
	}
	cr_assert_eq(n, 3);

	r = run("list", "--json");
	cr_assert_eq(r->status, 0);
	expect_json(r->out, "list");
	cr_assert(strstr(r->out, "\"snapshots\": [\n      {\n         \"id\": 1,\n         "
				 "\"epoch\": 1,\n         \"created\": "),
		  "%s", r->out);
	cr_assert(strstr(r->out, ",\n         \"expires\": null,\n         \"files\": 2,\n"
				 "         \"held\": 0,\n         \"label\": \"both\",\n         "
				 "\"owner\": \"root\",\n         \"uid\": 0,\n         "
				 "\"state\": \"valid\"\n      }"),
		  "%s", r->out);
	cr_assert(strstr(r->out, "\"state\": \"expiring\""), "%s", r->out);

	expect(run("show", "2"), 0, "PATH    SIZE  MODE\nd/a       8K  0644\nd/e/b  1.50K  0644\n",
	       "");
	expect(run("show", "-H", "-p", "1"), 0, "d/a\t8192\t0644\ntop\t3\t0600\n", "");
	r = run("show", "--json", "1");
	cr_assert_eq(r->status, 0);
	expect_json(r->out, "show");
	cr_assert(strstr(r->out, "\"files\": [\n      {\n         \"path\": \"d/a\",\n         "
				 "\"size\": 8192,\n         \"mode\": \"0644\",\n         "
				 "\"uid\": 0,\n         \"gid\": 0,\n         \"mtime\": "),
		  "%s", r->out);

	expect(run("release", "1", "3"), 0, "", "");
	r = run("list", "-H", "-p");
	cr_assert_eq(r->status, 0);
	cr_assert(!strncmp(r->out, "2\t2\t", 4) && !strchr(r->out, '\n')[1], "%s", r->out);
	expect(run("show", "1"), 1, "", "snapctl: show: 1: no such snapshot\n");
}

/* ---- diff ---- */

Test(snapctl, diff_truncated_extended_untouched_and_overwritten)
{
	mkfile("same", 8192, 1);
	mkfile("trunc", 12288, 2);
	mkfile("ext", 4096, 3);
	mkfile("over", 16384, 4);
	cr_assert_eq(mkdir(J(mnt, "d"), 0755), 0);
	mkfile("d/x", 4096, 5);
	expect(run("pin", "same", "trunc", "ext", "over", "d/x"), 0, "1\n", "");
	expect(run("diff", "1"), 0, "PATH  OFFSET  LENGTH\n", "");
	cr_assert_eq(truncate(J(mnt, "trunc"), 5000), 0);
	char buf[5904];
	tu_fill(buf, sizeof(buf), 9);
	pwrite_at("ext", buf, 5904, 4096);
	pwrite_at("over", buf, 4096, 4096);
	pwrite_at("d/x", buf, 1, 4095);

	expect(run("diff", "-H", "-p", "1"), 0,
	       "d/x\t0\t4096\next\t4096\t5904\nover\t4096\t4096\ntrunc\t4096\t8192\n", "");
	expect(run("diff", "1"), 0,
	       "PATH   OFFSET  LENGTH\nd/x        0B      4K\next        4K   5.77K\n"
	       "over       4K      4K\ntrunc      4K      8K\n",
	       "");
	/* a PATH: that file, or the files under a directory */
	expect(run("diff", "-H", "-p", "1", "over"), 0, "over\t4096\t4096\n", "");
	expect(run("diff", "-p", "-H", "1", J(mnt, "d")), 0, "d/x\t0\t4096\n", "");
	expect(run("diff", "-H", "1", "same"), 0, "", "");
	struct res *r = run("diff", "--json", "1");
	cr_assert_eq(r->status, 0);
	expect_json(r->out, "diff");
	cr_assert_str_eq(r->out,
			 "{\"output_version\": {\"command\": \"snapctl diff\", \"vers_major\": 1, "
			 "\"vers_minor\": 0},\n   \"ranges\": [\n"
			 "      {\n         \"path\": \"d/x\",\n         \"offset\": 0,\n         "
			 "\"length\": 4096,\n         \"size\": 4096\n      },"
			 "{\n         \"path\": \"ext\",\n         \"offset\": 4096,\n         "
			 "\"length\": 5904,\n         \"size\": 4096\n      },"
			 "{\n         \"path\": \"over\",\n         \"offset\": 4096,\n         "
			 "\"length\": 4096,\n         \"size\": 16384\n      },"
			 "{\n         \"path\": \"trunc\",\n         \"offset\": 4096,\n         "
			 "\"length\": 8192,\n         \"size\": 12288\n      }\n   ]\n}\n");
	/* an unlinked file: all of it differs from nothing */
	cr_assert_eq(unlink(J(mnt, "same")), 0);
	expect(run("diff", "-H", "-p", "1", "same"), 0, "same\t0\t8192\n", "");
}

Test(snapctl, diff_pages_many_ranges_and_files)
{
	/* 1200 changed blocks, one apart: more ranges than one answer holds */
	size_t len = 2400 * 4096;
	mkfile("big", len, 1);
	for (int i = 0; i < 20; i++) {
		char name[32];
		snprintf(name, sizeof(name), "f%02d", i);
		mkfile(name, 100, (uint64_t)i + 2);
	}
	/* a file-list snapshot (a tree's diff walks the view: test/treecli) */
	struct res *r = run("pin", "big", "f00", "f01", "f02", "f03", "f04", "f05", "f06", "f07",
			    "f08", "f09", "f10", "f11", "f12", "f13", "f14", "f15", "f16", "f17",
			    "f18", "f19", (const char *)NULL);
	cr_assert_eq(r->status, 0, "%s", r->err);
	int fd = open(J(mnt, "big"), O_WRONLY);
	for (int i = 0; i < 1200; i++)
		cr_assert_eq(pwrite(fd, "z", 1, (off_t)i * 8192), 1);
	close(fd);
	r = run("diff", "-H", "-p", "1");
	cr_assert_eq(r->status, 0, "%s", r->err);
	int n = 0;
	for (char *p = r->out; (p = strchr(p, '\n')); p++, n++)
		;
	cr_assert_eq(n, 1200, "%d lines", n);
	cr_assert(strstr(r->out, "big\t9822208\t4096\n"), "last range missing");
	r = run("diff", "--json", "1");
	cr_assert_eq(r->status, 0);
	expect_json(r->out, "diff");
	cr_assert(strstr(r->out, "\"offset\": 9822208,\n         \"length\": 4096,\n         "
				 "\"size\": 9830400\n      }\n   ]\n}\n"),
		  "JSON end: %s", r->out + strlen(r->out) - 80);
	n = 0;
	for (char *p = r->out; (p = strstr(p, "\"path\": \"big\"")); p++)
		n++;
	cr_assert_eq(n, 1200, "%d ranges in JSON", n);
}

/* ---- restore ---- */

Test(snapctl, restore_writes_only_differing_blocks_and_keeps_later_snapshots)
{
	size_t len = 16 * 4096;
	mkfile("f", len, 1);
	mkfile("g", 3000, 2);
	expect(run("pin", "f", "g"), 0, "1\n", "");
	char blk[4096], orig[4096];
	tu_fill(blk, sizeof(blk), 77);
	pwrite_at("f", blk, 4096, 2 * 4096);
	pwrite_at("f", blk, 100, 5 * 4096 + 10);
	/* block 7 rewritten with the bytes it already had: COWed, not different */
	int fd = open(J(mnt, "f"), O_RDWR);
	cr_assert_eq(pread(fd, orig, 4096, 7 * 4096), 4096);
	cr_assert_eq(pwrite(fd, orig, 4096, 7 * 4096), 4096);
	close(fd);
	expect(run("pin", "f"), 0, "2\n", "");
	char later[2][1 << 17];
	cr_assert_eq(tu_read_file(J(mnt, ".snapshots/2/f"), later[0], sizeof(later[0])),
		     (ssize_t)len);
	expect(run("diff", "-H", "-p", "1", "f"), 0,
	       "f\t8192\t4096\nf\t20480\t4096\nf\t28672\t4096\n", "");

	uint64_t cow0 = stat_value("cow_bytes"), copies0 = stat_value("cow_copies");
	expect(run("restore", "1"), 0, "f: 8192 bytes written\n", "");
	same_file(J(mnt, "f"), J(mnt, ".snapshots/1/f"));
	same_file(J(mnt, "g"), J(mnt, ".snapshots/1/g"));
	/* snapshot 2 needed the two blocks restore overwrote: preserved, 8 KiB */
	cr_assert_eq(stat_value("cow_bytes") - cow0, 8192);
	cr_assert_gt(stat_value("cow_copies"), copies0);
	cr_assert_eq(tu_read_file(J(mnt, ".snapshots/2/f"), later[1], sizeof(later[1])),
		     (ssize_t)len);
	cr_assert(!memcmp(later[0], later[1], len), "snapshot 2 changed by the restore");
	/* restoring again writes nothing */
	expect(run("restore", "1"), 0, "", "");
	cr_assert_eq(stat_value("cow_bytes") - cow0, 8192);
}

Test(snapctl, restore_fixes_size_and_recreates_unlinked_files)
{
	mkfile("t", 12288, 1);
	mkfile("e", 4096, 2);
	cr_assert_eq(mkdir(J(mnt, "d"), 0755), 0);
	mkfile("d/gone", 5000, 3);
	cr_assert_eq(chmod(J(mnt, "d/gone"), 0640), 0);
	mkfile("keep", 10, 4);
	expect(run("pin", "t", "e", "d/gone", "keep"), 0, "1\n", "");
	cr_assert_eq(truncate(J(mnt, "t"), 100), 0);
	cr_assert_eq(truncate(J(mnt, "e"), 9000), 0);
	cr_assert_eq(unlink(J(mnt, "d/gone")), 0);
	mkfile("keep", 10, 99);
	/* one path only; block 0 differs past byte 100, so all 3 blocks are written */
	expect(run("restore", "1", "t"), 0, "t: 12288 bytes written\n", "");
	same_file(J(mnt, "t"), J(mnt, ".snapshots/1/t"));
	expect(run("restore", "1", J(mnt, "d/gone"), "e"), 0,
	       "d/gone: 5000 bytes written (recreated)\ne: 0 bytes written\n", "");
	same_file(J(mnt, "d/gone"), J(mnt, ".snapshots/1/d/gone"));
	same_file(J(mnt, "e"), J(mnt, ".snapshots/1/e"));
	struct stat st;
	cr_assert_eq(stat(J(mnt, "d/gone"), &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0640);
	cr_assert_eq(st.st_size, 5000);
	/* the rest: keep was replaced by another file (rewritten in place here) */
	expect(run("restore", "1"), 0, "keep: 10 bytes written\n", "");
	same_file(J(mnt, "keep"), J(mnt, ".snapshots/1/keep"));
	/* a directory where the file was: that file fails, exit 1 */
	cr_assert_eq(unlink(J(mnt, "t")), 0);
	cr_assert_eq(mkdir(J(mnt, "t"), 0755), 0);
	expect(run("restore", "1"), 1, "", "snapctl: restore: t: Is a directory\n");
}

/* ---- expire, stats, check ---- */

Test(snapctl, expire_releases_on_time)
{
	mkfile("f", 100, 1);
	time_t t0 = time(NULL);
	expect(run("pin", "--expire", "2s", "f"), 0, "1\n", "");
	expect(run("pin", "f"), 0, "2\n", "");
	struct res *r = run("list", "-H");
	cr_assert(strstr(r->out, "\texpiring\n"), "%s", r->out);
	for (;;) {
		r = run("list", "-H", "-p");
		if (strncmp(r->out, "1\t", 2))
			break;
		cr_assert_leq(time(NULL) - t0, 5, "snapshot 1 still listed after %ld s",
			      (long)(time(NULL) - t0));
		usleep(100 * 1000);
	}
	cr_assert_geq(time(NULL) - t0, 1, "released before it expired");
	cr_assert(!strncmp(r->out, "2\t", 2) && !strchr(r->out, '\n')[1], "%s", r->out);
	expect(run("show", "1"), 1, "", "snapctl: show: 1: no such snapshot\n");
}

Test(snapctl, stats_and_check)
{
	mkfile("f", 8192, 1);
	expect(run("pin", "f"), 0, "1\n", "");
	pwrite_at("f", "x", 1, 0);
	struct res *r = run("stats", "-H", "-p");
	cr_assert_eq(r->status, 0);
	const char *names[] = {"bytes_on_disk", "bytes_preserved", "extents",	 "snapshots",
			       "epoch",		"block_size",	   "cow_copies", "cow_bytes",
			       "store_reads",	"store_read_bytes"};
	char *save = NULL, *ln = strtok_r(r->out, "\n", &save);
	for (size_t i = 0; i < 10; i++, ln = strtok_r(NULL, "\n", &save)) {
		cr_assert_not_null(ln, "line %zu missing", i);
		char *tab = strchr(ln, '\t');
		cr_assert_not_null(tab, "%s", ln);
		*tab = 0;
		cr_assert_str_eq(ln, names[i]);
		char *e;
		strtoull(tab + 1, &e, 10);
		cr_assert(*e == 0 && e > tab + 1, "value %s", tab + 1);
	}
	cr_assert_null(ln);
	cr_assert_eq(stat_value("snapshots"), 1);
	cr_assert_eq(stat_value("cow_bytes"), 4096);
	cr_assert_eq(stat_value("block_size"), 4096);
	r = run("stats");
	cr_assert_eq(r->status, 0);
	cr_assert(!strncmp(r->out, "PROPERTY          VALUE\n", 24), "%s", r->out);
	cr_assert(strstr(r->out, "\nblock_size           4K\n"), "%s", r->out);
	cr_assert(strstr(r->out, "\ncow_bytes            4K\n"), "%s", r->out);
	r = run("stats", "--json");
	cr_assert_eq(r->status, 0);
	expect_json(r->out, "stats");
	cr_assert(strstr(r->out, "\"stats\": [\n      {\n         \"bytes_on_disk\": "), "%s",
		  r->out);
	cr_assert(strstr(r->out, "\"snapshots\": 1,\n         \"epoch\": 2,\n         "
				 "\"block_size\": 4096,\n         \"cow_copies\": 1,\n         "
				 "\"cow_bytes\": 4096,"),
		  "%s", r->out);
	expect(run("check"), 0, "", "");
	expect(run("release", "1"), 0, "", "");
	expect(run("check"), 0, "", "");
}

/* ---- the protocol: malformed requests are refused, the daemon lives ---- */

static int raw(struct snapfs_req *r)
{
	int fd = open(mnt, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(fd, 0);
	r->version = SNAPFS_PROTO_VERSION;
	int rc = ioctl(fd, SNAPFS_IOC_CALL, r);
	cr_assert_eq(rc, 0, "ioctl: %s", strerror(errno));
	close(fd);
	return r->status;
}

Test(snapctl, malformed_requests_get_einval)
{
	mkfile("f", 100, 1);
	struct res *res = run("pin", "f");
	cr_assert_eq(res->status, 0, "%s", res->err);
	static struct snapfs_req r;
	const struct {
		uint32_t op, flags, count, len;
		uint64_t cursor;
		const char *data;
		size_t dlen;
	} bad[] = {
	    {SNAPFS_OP_SHOW, 0, 0, 4, 0, "abc", 4},		      /* SHOW takes no data */
	    {SNAPFS_OP_SHOW, 1, 0, 0, 0, NULL, 0},		      /* unknown flag */
	    {SNAPFS_OP_SHOW, 0, 0, 0, 2, NULL, 0},		      /* cursor past the files */
	    {SNAPFS_OP_DIFF, 0, 1, 0, 0, NULL, 0},		      /* a filter without data */
	    {SNAPFS_OP_DIFF, 0, 0, 2, 0, "f", 2},		      /* data without a count */
	    {SNAPFS_OP_DIFF, 0, 2, 2, 0, "f", 2},		      /* fewer strings than count */
	    {SNAPFS_OP_DIFF, 0, 1, 4, 0, "f\0g", 4},		      /* not NUL-terminated */
	    {SNAPFS_OP_DIFF, 0, 1, 4, 0, "f\0g\0", 4},		      /* more strings than count */
	    {SNAPFS_OP_DIFF, 0, 0, 0, (uint64_t)5 << 32, NULL, 0},    /* cursor past the files */
	    {SNAPFS_OP_DIFF, 0, 1, SNAPFS_PROTO_DATA + 1, 0, "f", 2}, /* len too long */
	    {SNAPFS_OP_RESTORE, 0, 1, 3, 0, "abc", 3},		      /* not NUL-terminated */
	    {SNAPFS_OP_RESTORE, 0, 0, 0, 9, NULL, 0},		      /* cursor past the files */
	    {SNAPFS_OP_RESTORE, 4, 0, 0, 0, NULL, 0},		      /* unknown flag */
	    {SNAPFS_OP_CHECK, 1, 0, 0, 0, NULL, 0},		      /* unknown flag */
	    {SNAPFS_OP_CHECK, 0, 1, 0, 0, NULL, 0},		      /* CHECK takes no data */
	    {99, 0, 0, 0, 0, NULL, 0},				      /* unknown op */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&r, 0, sizeof(r));
		r.op = bad[i].op;
		r.id = 1;
		r.flags = bad[i].flags;
		r.count = bad[i].count;
		r.len = bad[i].len;
		r.cursor = bad[i].cursor;
		if (bad[i].data)
			memcpy(r.data, bad[i].data, bad[i].dlen);
		cr_assert_eq(raw(&r), -EINVAL, "case %zu: status %d", i, r.status);
	}
	memset(&r, 0, sizeof(r));
	r.op = SNAPFS_OP_SHOW;
	r.id = 1;
	cr_assert_eq(raw(&r), 0);
	cr_assert_eq(r.count, 1);
	cr_assert_eq(r.cursor, 0);
	expect(run("diff", "-H", "1"), 0, "", "");
}

/* ---- ownership ---- */

Test(snapctl, users_see_and_change_only_their_own_snapshots)
{
	cr_assert_eq(tu_umount(&m), 0);
	cr_assert_eq(chmod(src, 0755), 0);
	cr_assert_eq(tu_mount(&m, src, mnt, "allow_other"), 0, "remount with allow_other");
	mkfile("f", 5000, 1);
	expect(run("pin", "f"), 0, "1\n", "");
	run_uid = 65534;
	expect(run("list", "-H"), 0, "", "");
	expect(run("show", "1"), 1, "", "snapctl: show: 1: no such snapshot\n");
	expect(run("diff", "1"), 1, "", "snapctl: diff: 1: no such snapshot\n");
	expect(run("restore", "1"), 1, "", "snapctl: restore: 1: no such snapshot\n");
	expect(run("release", "1"), 1, "", "snapctl: release: 1: no such snapshot\n");
	expect(run("check"), 1, "", "snapctl: check: only root can check the store\n");
	expect(run("pin", "f"), 0, "2\n", "");
	struct res *r = run("list", "-H", "-p");
	cr_assert_eq(r->status, 0);
	cr_assert(!strncmp(r->out, "2\t2\t", 4) && strstr(r->out, "\t-\tnobody\tvalid\n") &&
		      !strchr(r->out, '\n')[1],
		  "%s", r->out);
	run_uid = -1;
	pwrite_at("f", "xyz", 3, 10);
	run_uid = 65534;
	/* the snapshot is theirs, the file is not writable by them */
	expect(run("restore", "2"), 1, "", "snapctl: restore: f: Permission denied\n");
	run_uid = -1;
	r = run("list", "-H", "-p");
	cr_assert(strstr(r->out, "1\t1\t") && strstr(r->out, "\n2\t2\t"), "%s", r->out);
	expect(run("restore", "2"), 0, "f: 4096 bytes written\n", "");
	expect(run("release", "2", "1"), 0, "", "");
}

/* ---- the command line as GNU tools have it ---- */

Test(snapctl, options_anywhere_and_double_dash)
{
	mkfile("over", 8192, 1);
	expect(run("pin", "over", "-l", "x"), 0, "1\n", "");
	pwrite_at("over", "z", 1, 4096);
	expect(run("diff", "1", "-H", "-p"), 0, "over\t4096\t4096\n", "");
	expect(run("diff", "1", "over", "-p", "-H"), 0, "over\t4096\t4096\n", "");
	expect(run("list", "-o", "ID,LABEL", "-H", "-m", mnt), 0, "1\tx\n", "");
	expect(run("list", "--output=ID", "--mount", mnt, "-H"), 0, "1\n", "");
	struct res *r = run("diff", "1", "--json");
	cr_assert_eq(r->status, 0, "%s", r->err);
	expect_json(r->out, "diff");
	expect_usage(run("diff", "1", "--jsn"), "snapctl: diff: --jsn: unknown option");
	expect_usage(run("diff", "1", "-x"), "snapctl: diff: -x: unknown option");
	expect_usage(run("list", "-o"), "snapctl: list: -o: missing argument");
	expect_usage(run("list", "--sort"), "snapctl: list: --sort: missing argument");
	/* after --, an operand even when it looks like an option */
	expect(run("release", "--", "1"), 0, "", "");
	expect_usage(run("release", "--", "-1"), "snapctl: release: -1: invalid snapshot ID");
	cr_assert_eq(mkdir(J(mnt, "-d"), 0755), 0);
	mkfile("-d/f", 10, 2);
	expect(run("pin", "-r", "--", "-d"), 0, "2\n", "");
	expect(run("show", "-H", "-o", "TYPE,PATH", "2"), 0, "d\t-d\n-\t-d/f\n", "");
}

Test(snapctl, help_per_command)
{
	for (const char *const *c =
		 (const char *const[]){"pin", "release", "prune", "list", "show", "diff", "restore",
				       "stats", "check", "mounts", "help", NULL};
	     *c; c++) {
		struct res *r = run("help", *c);
		cr_assert_eq(r->status, 0, "help %s: %s", *c, r->err);
		char *a = strdup(r->out);
		r = run(*c, "--help");
		cr_assert_eq(r->status, 0);
		cr_assert_str_eq(r->out, a, "%s --help differs from help %s", *c, *c);
		char first[128];
		snprintf(first, sizeof(first), "usage: snapctl [-m MNT] %s", *c);
		cr_assert(!strncmp(a, first, strlen(first)), "%s", a);
		cr_assert(strstr(a, "\noptions:\n") && strstr(a, "\nexamples:\n  snapctl "), "%s",
			  a);
		cr_assert(strstr(a, "  -m, --mount MNT "), "%s", a);
		free(a);
	}
	struct res *r = run("help", "pin");
	cr_assert(strstr(r->out, "  -e, --expire WHEN the daemon releases it then"), "%s", r->out);
	r = run("list", "-h");
	cr_assert(strstr(r->out, "\ncolumns (* shown by default):\n  *ID         snapshot ID\n"),
		  "%s", r->out);
	cr_assert(strstr(r->out, "\n   UID        the owner's user ID\n"), "%s", r->out);
	r = run("help");
	cr_assert_eq(r->status, 0);
	cr_assert(!strncmp(r->out, "usage: snapctl [-m MNT] COMMAND [ARGS]\n", 39), "%s", r->out);
}

/* ---- mount discovery ---- */

Test(snapctl, outside_a_mount_the_only_one_is_used_several_are_named)
{
	char *out = tu_tmpdir("ctlout");
	mkfile("f", 10, 1);
	expect(run("pin", "f"), 0, "1\n", "");
	expect(run_in(out, "list", "-H", "-o", "ID", (const char *)NULL), 0, "1\n", "");
	expect(run_in(out, "show", "-H", "-p", "1", (const char *)NULL), 0, "f\t10\t0644\n", "");
	char line[4096];
	snprintf(line, sizeof(line), "%s\t%s\t%s/.snapfs\t1\t0\n", mnt, src, src);
	expect(run_in(out, "mounts", "-H", "-p", (const char *)NULL), 0, line, "");

	char *src2 = tu_tmpdir("ctlsrc2"), *m2 = tu_tmpdir("ctlmnt2");
	struct tu_mount mm;
	cr_assert_eq(tu_mount(&mm, src2, m2, NULL), 0);
	mnt2 = m2;
	snprintf(line, sizeof(line),
		 "snapctl: list: %s: not on a snapfs mount, and there are 2 (%s, %s): choose one "
		 "with -m\n",
		 out, mnt, m2);
	struct res *r = run_in(out, "list", (const char *)NULL);
	/* mount order decides which comes first */
	if (r->status == 1 && strcmp(r->err, line))
		snprintf(line, sizeof(line),
			 "snapctl: list: %s: not on a snapfs mount, and there are 2 (%s, %s): "
			 "choose one with -m\n",
			 out, m2, mnt);
	expect(r, 1, "", line);
	expect(run_in(out, "list", "-H", "-o", "ID", "-m", m2, (const char *)NULL), 0, "", "");
	expect(run_in(out, "list", "-H", "-o", "ID", "-m", mnt, (const char *)NULL), 0, "1\n", "");
	r = run_in(out, "mounts", "-o", "MOUNTPOINT,SNAPSHOTS", "-s", "SNAPSHOTS",
		   (const char *)NULL);
	size_t w = strlen(mnt) > strlen(m2) ? strlen(mnt) : strlen(m2);
	snprintf(line, sizeof(line), "%-*s  SNAPSHOTS\n%-*s          0\n%-*s          1\n", (int)w,
		 "MOUNTPOINT", (int)w, m2, (int)w, mnt);
	expect(r, 0, line, "");
	r = run_in(out, "mounts", "--json", (const char *)NULL);
	cr_assert_eq(r->status, 0);
	expect_json(r->out, "mounts");
	mnt2 = NULL;
	tu_umount(&mm);
	tu_rm_rf(src2);
	tu_rm_rf(m2);
	tu_rm_rf(out);
	free(src2);
	free(m2);
	free(out);
}

/* ---- tables: columns, sorting, raw, JSON of any name ---- */

Test(snapctl, columns_sort_raw_and_json_of_non_utf8_names)
{
	mkfile("b", 3000, 1);
	mkfile("a", 100, 2);
	mkfile("c", 9000, 3);
	mkfile("bad\377name", 5, 4);
	mkfile("sp ace", 7, 5);
	expect(run("pin", "-l", "one", "a", "b", "c"), 0, "1\n", "");
	expect(run("pin", "-l", "two", "bad\377name", "sp ace"), 0, "2\n", "");
	expect(run("show", "1", "-s", "SIZE", "-H", "-p", "-o", "SIZE,PATH"), 0,
	       "100\ta\n3000\tb\n9000\tc\n", "");
	expect(run("show", "1", "-s", "size", "-o", "path,size"), 0,
	       "PATH   SIZE\na      100B\nb     2.93K\nc     8.79K\n", "");
	expect(run("list", "-o", "ID,LABEL", "-s", "LABEL", "-H"), 0, "1\tone\n2\ttwo\n", "");
	expect(run("list", "-o", "LABEL,FILES", "-s", "FILES", "-H"), 0, "two\t2\none\t3\n", "");
	expect(run("list", "-o", "+UID", "-H", "-l", "two", "-o", "ID,UID"), 0, "2\t0\n", "");
	struct res *r = run("list", "-H", "-o", "+UID", "-l", "two");
	cr_assert(!strncmp(r->out, "2\t2\t", 4) && strstr(r->out, "\troot\tvalid\t0\n"), "%s",
		  r->out);
	/* -r: libsmartcols raw, space-separated with a header, bytes encoded */
	expect(run("show", "2", "-r", "-p"), 0,
	       "PATH SIZE MODE\nbad\\xffname 5 0644\nsp\\x20ace 7 0644\n", "");
	/* -H: the bytes as they are */
	expect(run("show", "2", "-H", "-p"), 0, "bad\377name\t5\t0644\nsp ace\t7\t0644\n", "");
	r = run("show", "2", "--json");
	cr_assert_eq(r->status, 0);
	expect_json(r->out, "show");
	cr_assert(strstr(r->out, "\"path\": \"bad\\\\xffname\","), "%s", r->out);
	for (const unsigned char *p = (const unsigned char *)r->out; *p; p++)
		cr_assert_lt(*p, 0x80, "a raw byte in JSON: %s", r->out);
	r = run("show", "2", "-J", "-o", "PATH");
	cr_assert(strstr(r->out, "{\n         \"path\": \"sp ace\"\n      }"), "%s", r->out);
	/* an empty table still has its header */
	expect(run("list", "-l", "none"), 0,
	       "ID  EPOCH  CREATED  EXPIRES  FILES  HELD  LABEL  OWNER  STATE\n", "");
}

/* ---- labels, expiry times, retention ---- */

Test(snapctl, labels_select_and_release)
{
	mkfile("f", 8192, 1);
	expect(run("pin", "-l", "nightly", "f"), 0, "1\n", "");
	pwrite_at("f", "a", 1, 0);
	expect(run("pin", "-l", "nightly", "f"), 0, "2\n", "");
	expect(run("pin", "-l", "other", "f"), 0, "3\n", "");
	pwrite_at("f", "b", 1, 4096);
	expect(run("list", "-l", "nightly", "-H", "-o", "ID"), 0, "1\n2\n", "");
	/* a LABEL is the newest snapshot with it */
	expect(run("diff", "nightly", "-H", "-p"), 0, "f\t4096\t4096\n", "");
	expect(run("show", "nightly", "-H", "-p", "-o", "PATH"), 0, "f\n", "");
	expect(run("show", "nope"), 1, "", "snapctl: show: nope: no such snapshot\n");
	expect(run("release", "-l", "nightly"), 0, "", "");
	expect(run("list", "-H", "-o", "ID,LABEL"), 0, "3\tother\n", "");
	expect(run("release", "-l", "nightly"), 1, "",
	       "snapctl: release: nightly: no such snapshot\n");
	expect(run("restore", "other"), 0, "f: 4096 bytes written\n", "");
}

Test(snapctl, expire_accepts_weeks_minutes_and_iso_8601)
{
	mkfile("f", 10, 1);
	long long now = time(NULL);
	expect(run("pin", "--expire", "1w", "f"), 0, "1\n", "");
	expect(run("pin", "-e", "90m", "f"), 0, "2\n", "");
	expect(run("pin", "--expire=2099-01-01T00:00:00Z", "f"), 0, "3\n", "");
	expect(run("pin", "--expire", "2099-01-01T01:30+01:30", "f"), 0, "4\n", "");
	expect(run("pin", "--expire", "2099-01-01", "f"), 0, "5\n", "");
	struct res *r = run("list", "-H", "-p", "-o", "EXPIRES");
	cr_assert_eq(r->status, 0);
	long long e[5];
	cr_assert_eq(
	    sscanf(r->out, "%lld\n%lld\n%lld\n%lld\n%lld\n", &e[0], &e[1], &e[2], &e[3], &e[4]), 5,
	    "%s", r->out);
	cr_assert(llabs(e[0] - now - 7 * 86400) < 60, "1w: %lld", e[0]);
	cr_assert(llabs(e[1] - now - 90 * 60) < 60, "90m: %lld", e[1]);
	cr_assert_eq(e[2], 4070908800LL);
	cr_assert_eq(e[3], 4070908800LL);
	struct tm tm = {.tm_year = 199, .tm_mday = 1, .tm_isdst = -1};
	cr_assert_eq(e[4], (long long)mktime(&tm), "local midnight");
}

Test(snapctl, relabel_changes_the_label_and_refuses_unknown_ids)
{
	mkfile("f", 10, 1);
	expect(run("pin", "-l", "old", "f"), 0, "1\n", "");
	expect(run("relabel", "1", "new"), 0, "", "");
	expect(run("list", "-H", "-o", "LABEL"), 0, "new\n", "");
	expect(run("show", "-H", "-p", "new"), 0, "f\t10\t0644\n", "");
	expect(run("relabel", "1", ""), 0, "", "");
	expect(run("list", "-H", "-o", "LABEL"), 0, "-\n", "");
	expect(run("relabel", "9", "x"), 1, "", "snapctl: relabel: 9: no such snapshot\n");
	struct res *r = run("relabel", "1");
	cr_assert_eq(r->status, 2, "a missing operand is a usage error (%d)", r->status);
}

Test(snapctl, prune_keeps_the_newest_n_of_a_label)
{
	mkfile("f", 10, 1);
	for (int i = 1; i <= 5; i++) {
		char id[8];
		snprintf(id, sizeof(id), "%d\n", i);
		expect(run("pin", "-l", "hourly", "f"), 0, id, "");
	}
	expect(run("pin", "-l", "keepme", "f"), 0, "6\n", "");
	expect(run("prune", "--keep", "2", "-l", "hourly", "-n"), 0, "1\n2\n3\n", "");
	expect(run("list", "-H", "-o", "ID"), 0, "1\n2\n3\n4\n5\n6\n", "");
	expect(run("prune", "--keep", "2", "-l", "hourly"), 0, "1\n2\n3\n", "");
	expect(run("list", "-H", "-o", "ID"), 0, "4\n5\n6\n", "");
	expect(run("prune", "--keep", "2", "-l", "hourly"), 0, "", "");
	/* pin --keep: the new one counts */
	expect(run("pin", "-l", "hourly", "--keep", "2", "f"), 0, "7\n", "");
	expect(run("list", "-H", "-o", "ID,LABEL"), 0, "5\thourly\n6\tkeepme\n7\thourly\n", "");
	expect(run("prune", "--keep", "0", "-l", "hourly"), 0, "5\n7\n", "");
	expect(run("list", "-H", "-o", "ID"), 0, "6\n", "");
}

/* ---- long commands: progress on a terminal, SIGINT between pages ---- */

static void many_files(int n)
{
	cr_assert_eq(mkdir(J(mnt, "m"), 0755), 0);
	for (int i = 0; i < n; i++) {
		char name[32];
		snprintf(name, sizeof(name), "m/f%05d", i);
		cr_assert_eq(tu_write_file(J(mnt, name), "x", 1), 0);
	}
	/* a snapshot of the files (pin -r would make a tree snapshot, which
	 * snapctl walks in the view rather than asking the daemon in pages) */
	const char **paths = calloc((size_t)n, sizeof(*paths));
	for (int i = 0; i < n; i++) {
		char name[32];
		snprintf(name, sizeof(name), "m/f%05d", i);
		paths[i] = strdup(J(mnt, name));
	}
	uint64_t id;
	cr_assert_eq(snapfs_pin(paths, (size_t)n, NULL, &id), 0, "pin: %s", strerror(errno));
	cr_assert_eq(id, 1);
	for (int i = 0; i < n; i++)
		free((char *)paths[i]);
	free(paths);
}

Test(snapctl, progress_only_on_a_terminal)
{
	many_files(1100);
	struct res *r = run("show", "1", "-H");
	cr_assert_eq(r->status, 0);
	cr_assert_str_eq(r->err, "", "progress into a file: %s", r->err);
	run_tty = 1;
	r = run("show", "1", "-H");
	run_tty = 0;
	cr_assert_eq(r->status, 0, "%s", r->err);
	cr_assert(!strncmp(r->err, "\rsnapctl: show: 1024 files\033[K", 29), "%s", r->err);
	size_t n = strlen(r->err);
	cr_assert(n >= 4 && !strcmp(r->err + n - 4, "\r\033[K"), "not erased: %s", r->err);
	int lines = 0;
	for (char *p = r->out; (p = strchr(p, '\n')); p++)
		lines++;
	cr_assert_eq(lines, 1100);
}

Test(snapctl, sigint_stops_between_pages_without_damage)
{
	many_files(1100);
	run_sigint = 1;
	expect(run("show", "1"), 130, "", "snapctl: show: interrupted\n");
	expect(run("diff", "1"), 130, "", "snapctl: diff: interrupted\n");
	mkfile("m/f00000", 1, 7);
	expect(run("restore", "1"), 130, "",
	       "snapctl: restore: interrupted (the files listed are restored; run it again to "
	       "finish)\n");
	run_sigint = 0;
	expect(run("diff", "1", "-H", "-p"), 0, "m/f00000\t0\t1\n", "");
	expect(run("restore", "1"), 0, "m/f00000: 1 bytes written\n", "");
	expect(run("check"), 0, "", "");
}

/* ---- bash completion ---- */

/* What _snapctl offers for the words (the last one is completed). */
static const char *complete(const char *words)
{
	static char script[4096];
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s", getenv("SNAPCTL_BIN"));
	*strrchr(dir, '/') = 0;
	snprintf(script, sizeof(script),
		 "PATH='%s':$PATH; . '%s/contrib/bash-completion/snapctl'; "
		 "COMP_WORDS=(%s); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); "
		 "[[ '%s' == *' ' ]] && { COMP_WORDS+=(''); COMP_CWORD=$((COMP_CWORD + 1)); }; "
		 "_snapctl; printf '%%s\\n' \"${COMPREPLY[@]}\" | sort",
		 dir, getenv("SNAPFS_SRCDIR"), words, words);
	run_exe = "/bin/bash";
	struct res *r = run("--norc", "-c", script);
	run_exe = NULL;
	cr_assert_eq(r->status, 0, "%s", r->err);
	return r->out;
}

Test(snapctl, bash_completion_offers_commands_options_ids_labels_columns_paths)
{
	mkfile("file1", 10, 1);
	mkfile("file2", 10, 2);
	expect(run("pin", "-l", "nightly", "file1"), 0, "1\n", "");
	expect(run("pin", "-l", "weekly", "file2"), 0, "2\n", "");
	cr_assert_str_eq(complete("snapctl "), "check\ndiff\nhelp\nlist\nmounts\npin\nprune\n"
					       "relabel\nrelease\nrestore\nshow\nstats\n");
	cr_assert_str_eq(complete("snapctl pr"), "prune\n");
	cr_assert_str_eq(complete("snapctl list --js"), "--json\n");
	cr_assert_str_eq(complete("snapctl pin --ex"), "--expire\n");
	cr_assert_str_eq(complete("snapctl show "), "1\n2\nnightly\nweekly\n");
	cr_assert_str_eq(complete("snapctl diff w"), "weekly\n");
	cr_assert_str_eq(complete("snapctl release "), "1\n2\n");
	cr_assert_str_eq(complete("snapctl list -l "), "nightly\nweekly\n");
	cr_assert_str_eq(complete("snapctl list -o ID,LA"), "ID,LABEL\n");
	cr_assert_str_eq(complete("snapctl show 1 -s S"), "SIZE\n");
	cr_assert_str_eq(complete("snapctl pin fi"), "file1\nfile2\n");
	cr_assert_str_eq(complete("snapctl diff 1 fi"), "file1\nfile2\n");
	cr_assert_str_eq(complete("snapctl help re"), "relabel\nrelease\nrestore\n");
	char want[1100];
	snprintf(want, sizeof(want), "%s\n", mnt);
	cr_assert_str_eq(complete("snapctl -m "), want);
}
