// SPDX-License-Identifier: MIT
/*
 * snapctl show, diff and restore of a tree snapshot through a real mount:
 * pin -r a project directory, change it heavily, and check that diff
 * names the changes with their types, that a dry run changes nothing,
 * that restore brings back the manifest taken at pin time (and diff is
 * empty afterwards), a diff between two snapshots, and the one-line
 * errors. Needs the daemon ($SNAPFS_BIN) with tree snapshots; skipped
 * when it is not built.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "testutil.h"
#include "tree.h"

static char *src, *mnt;
static struct tu_mount mount_;
static int mounted;
static int run_sigint; /* start snapctl with SIGINT pending */

static void setup(void)
{
	umask(022);
	const char *bin = getenv("SNAPFS_BIN");
	if (!bin || access(bin, X_OK))
		return; /* each test skips */
	src = tu_tmpdir("treesrc");
	mnt = tu_tmpdir("treemnt");
	cr_assert_eq(tu_mount(&mount_, src, mnt, NULL), 0, "snapfs did not mount");
	mounted = 1;
}

static void teardown(void)
{
	if (!mounted)
		return;
	tu_umount(&mount_);
	tu_rm_rf(src);
	tu_rm_rf(mnt);
	free(src);
	free(mnt);
}

TestSuite(treecmd, .init = setup, .fini = teardown, .timeout = 120);

#define NEED_DAEMON()                                                                              \
	do {                                                                                       \
		if (!mounted)                                                                      \
			cr_skip_test("no snapfs daemon built");                                    \
	} while (0)

struct res {
	int status;
	char out[1 << 18], err[8192];
};

static struct res *run_v(const char *const *args)
{
	static struct res r;
	const char *argv[32];
	int argc = 0;
	const char *bin = getenv("SNAPCTL_BIN");
	cr_assert_not_null(bin, "SNAPCTL_BIN not set");
	argv[argc++] = bin;
	for (; *args && argc < 31; args++)
		argv[argc++] = *args;
	argv[argc] = NULL;
	char outp[] = "/dev/shm/treeout.XXXXXX", errp[] = "/dev/shm/treeerr.XXXXXX";
	int ofd = mkstemp(outp), efd = mkstemp(errp);
	cr_assert(ofd >= 0 && efd >= 0);
	unlink(outp);
	unlink(errp);
	pid_t pid = fork();
	if (pid == 0) {
		if (run_sigint) {
			sigset_t ss;
			sigemptyset(&ss);
			sigaddset(&ss, SIGINT);
			sigprocmask(SIG_BLOCK, &ss, NULL);
			raise(SIGINT); /* pending across exec, delivered when snapctl unblocks it */
		}
		if (chdir(mnt))
			_exit(126);
		dup2(ofd, 1);
		dup2(efd, 2);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	int st;
	waitpid(pid, &st, 0);
	r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	ssize_t n = pread(ofd, r.out, sizeof(r.out) - 1, 0);
	r.out[n > 0 ? n : 0] = 0;
	n = pread(efd, r.err, sizeof(r.err) - 1, 0);
	r.err[n > 0 ? n : 0] = 0;
	close(ofd);
	close(efd);
	return &r;
}

#define run(...) run_v((const char *const[]){__VA_ARGS__, NULL})

static void ok(const struct res *r)
{
	cr_assert_eq(r->status, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", r->status, r->out, r->err);
}

static void has(const struct res *r, const char *line)
{
	cr_assert(strstr(r->out, line), "no line \"%s\" in:\n%s", line, r->out);
}

static const char *P(const char *rel)
{
	static char buf[8][PATH_MAX];
	static int i;
	char *p = buf[i++ & 7];
	tu_path(p, PATH_MAX, mnt, rel);
	return p;
}

static void put(const char *rel, size_t n, uint64_t seed)
{
	char *b = malloc(n + 1);
	tu_fill(b, n, seed);
	cr_assert_eq(tu_write_file(P(rel), b, n), 0, "%s", rel);
	free(b);
}

/* ---- manifest (path, type and mode, owner, size, mtime, target, xattrs, bytes) ---- */

struct man {
	const char *root;
	char *t;
	size_t len, cap;
};

static int man_cb(void *arg, const char *path, const struct stat *st, const char *target)
{
	struct man *m = arg;
	char full[PATH_MAX], x[1024] = "", line[PATH_MAX + 2048];
	tu_path(full, sizeof(full), m->root, path);
	uint64_t h = 1469598103934665603ull;
	if (S_ISREG(st->st_mode)) {
		char *b = malloc((size_t)st->st_size + 1);
		ssize_t n = tu_read_file(full, b, (size_t)st->st_size + 1);
		for (ssize_t i = 0; i < n; i++)
			h = (h ^ (unsigned char)b[i]) * 1099511628211ull;
		free(b);
	}
	if (!S_ISLNK(st->st_mode)) {
		char names[512], v[256];
		ssize_t n = llistxattr(full, names, sizeof(names));
		size_t at = 0;
		for (char *p = names; n > 0 && p < names + n; p += strlen(p) + 1) {
			if (strncmp(p, "user.", 5))
				continue;
			ssize_t vl = lgetxattr(full, p, v, sizeof(v) - 1);
			v[vl < 0 ? 0 : vl] = 0;
			at += (size_t)snprintf(x + at, sizeof(x) - at, "%s=%s;", p, v);
		}
	}
	int n =
	    snprintf(line, sizeof(line), "%s|%o|%u:%u|%lld|%lld.%09ld|%s|%s|%016" PRIx64 "|%lu\n",
		     path, (unsigned)st->st_mode, st->st_uid, st->st_gid,
		     S_ISDIR(st->st_mode) ? 0LL : (long long)st->st_size,
		     (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec, target ? target : "", x, h,
		     S_ISDIR(st->st_mode) ? 0UL : (unsigned long)st->st_nlink);
	if (m->len + (size_t)n + 1 > m->cap) {
		m->cap = (m->cap + (size_t)n + 1) * 2;
		m->t = realloc(m->t, m->cap);
	}
	memcpy(m->t + m->len, line, (size_t)n + 1);
	m->len += (size_t)n;
	return 0;
}

static char *manifest(const char *root, const char *sub)
{
	struct man m = {.root = root};
	cr_assert_eq(tree_walk(root, &sub, 1, NULL, man_cb, &m), 0, "walk %s/%s", root, sub);
	return m.t ? m.t : strdup("");
}

static uint64_t pin_tree(const char *what)
{
	struct res *r = run("pin", "-r", what);
	ok(r);
	return strtoull(r->out, NULL, 10);
}

static void build(void)
{
	cr_assert_eq(mkdir(P("proj"), 0755), 0);
	cr_assert_eq(mkdir(P("proj/d1"), 0755), 0);
	cr_assert_eq(mkdir(P("proj/d1/sub"), 0750), 0);
	cr_assert_eq(mkdir(P("proj/gone"), 0755), 0);
	put("proj/a.txt", 3 * 4096 + 10, 1);
	put("proj/b.txt", 100, 2);
	put("proj/d1/x", 10, 3);
	put("proj/d1/sub/z", 20, 4);
	put("proj/gone/q", 30, 5);
	put("proj/hl1", 40, 6);
	cr_assert_eq(link(P("proj/hl1"), P("proj/hl2")), 0);
	cr_assert_eq(symlink("a.txt", P("proj/ln")), 0);
	cr_assert_eq(mkfifo(P("proj/fifo"), 0640), 0);
	cr_assert_eq(setxattr(P("proj/b.txt"), "user.k", "v1", 2, 0), 0);
	cr_assert_eq(mkdir(P("other"), 0755), 0);
	put("other/o", 5, 7);
}

static void mutate(void)
{
	cr_assert_eq(rename(P("proj/d1"), P("proj/d1new")), 0);
	cr_assert_eq(unlink(P("proj/gone/q")), 0);
	cr_assert_eq(rmdir(P("proj/gone")), 0);
	put("proj/new.txt", 50, 8);
	cr_assert_eq(chmod(P("proj/b.txt"), 0600), 0);
	cr_assert_eq(setxattr(P("proj/b.txt"), "user.k", "v2", 2, 0), 0);
	int fd = open(P("proj/a.txt"), O_WRONLY);
	cr_assert_eq(pwrite(fd, "ZZ", 2, 4096 + 5), 2);
	close(fd);
	cr_assert_eq(unlink(P("proj/ln")), 0);
	cr_assert_eq(symlink("b.txt", P("proj/ln")), 0);
	cr_assert_eq(unlink(P("proj/hl2")), 0);
	put("other/o", 6, 9); /* outside the pinned tree */
}

Test(treecmd, diff_names_changes_and_restore_brings_the_tree_back)
{
	NEED_DAEMON();
	build();
	char *before = manifest(mnt, "proj");
	uint64_t id = pin_tree("proj");
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRIu64, id);
	mutate();

	struct res *r = run("diff", "-H", ids);
	ok(r);
	has(r, "R\tproj/d1 -> proj/d1new\t");
	has(r, "-\tproj/gone\tdir");
	has(r, "-\tproj/gone/q\tfile");
	has(r, "+\tproj/new.txt\tfile");
	has(r, "M\tproj/b.txt\tmode,xattr");
	has(r, "M\tproj/a.txt\tmtime,data 4K+4K");
	has(r, "M\tproj/ln\tmtime,target");
	has(r, "-\tproj/hl2\tfile");
	cr_assert_null(strstr(r->out, "other/"), "outside the pinned tree:\n%s", r->out);
	cr_assert_null(strstr(r->out, "d1new/x"), "a renamed directory's entries follow it");

	r = run("diff", "--json", ids);
	ok(r);
	has(r, "\"output_version\"");
	has(r, "\"path\": \"proj/d1new\",\n");
	has(r, "\"from\": \"proj/d1\",\n");
	has(r, "\"ranges\": \"4096+4096\"\n");
	/* a path filter: what moved into it from outside is new there */
	r = run("diff", "-H", ids, P("proj/d1new"));
	ok(r);
	has(r, "+\tproj/d1new\tdir\n");
	has(r, "+\tproj/d1new/x\tfile\n");

	r = run("show", "-H", ids);
	ok(r);
	has(r, "d\t0755\t");
	has(r, "l\t0777\t");
	has(r, "\tproj/gone/q\n");
	r = run("show", "-H", "-o", "PATH,TARGET", ids);
	ok(r);
	has(r, "proj/ln\ta.txt\n");

	char *mutated = manifest(mnt, "proj");
	r = run("restore", "--dry-run", ids);
	ok(r);
	has(r, "rename\tproj/d1new -> proj/d1\n");
	char *after_dry = manifest(mnt, "proj");
	cr_assert_str_eq(mutated, after_dry, "a dry run changed the tree");

	r = run("restore", ids);
	ok(r);
	has(r, "rename\tproj/d1new -> proj/d1\n");
	has(r, "link\tproj/hl1 -> proj/hl2\n");
	char *after = manifest(mnt, "proj");
	cr_assert_str_eq(before, after, "restored tree differs:\n%s\nvs\n%s", before, after);
	r = run("diff", "-H", ids);
	ok(r);
	cr_assert_str_eq(r->out, "", "left after restore:\n%s", r->out);
	free(before);
	free(mutated);
	free(after_dry);
	free(after);
}

Test(treecmd, diff_between_two_snapshots)
{
	NEED_DAEMON();
	build();
	uint64_t a = pin_tree("proj");
	cr_assert_eq(rename(P("proj/b.txt"), P("proj/c.txt")), 0);
	uint64_t b = pin_tree("proj");
	put("proj/later", 1, 1);
	char ia[24], ib[24];
	snprintf(ia, sizeof(ia), "%" PRIu64, a);
	snprintf(ib, sizeof(ib), "%" PRIu64, b);
	struct res *r = run("diff", "-H", ia, ib);
	ok(r);
	has(r, "R\tproj/b.txt -> proj/c.txt\t");
	cr_assert_null(strstr(r->out, "later"), "the live tree is not compared:\n%s", r->out);
}

Test(treecmd, one_line_errors)
{
	NEED_DAEMON();
	build();
	uint64_t id = pin_tree("proj");
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRIu64, id);
	struct res *r = run("restore", "999999");
	cr_assert_eq(r->status, 1, "%s", r->err);
	cr_assert(strstr(r->err, "no such snapshot"), "%s", r->err);
	r = run("diff", ids, P("other"));
	cr_assert_eq(r->status, 1, "%s", r->err);
	cr_assert(strstr(r->err, "not in snapshot"), "%s", r->err);
	r = run("restore", ids, "/");
	cr_assert_eq(r->status, 1, "%s", r->err);
	cr_assert_eq(strchr(r->err, '\n'), r->err + strlen(r->err) - 1, "one line: %s", r->err);
}

Test(treecmd, sigint_stops_show_diff_and_restore_without_damage)
{
	NEED_DAEMON();
	build();
	uint64_t id = pin_tree("proj");
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRIu64, id);
	mutate();
	char *mutated = manifest(mnt, "proj");
	run_sigint = 1;
	struct res *r = run("show", ids);
	cr_assert_eq(r->status, 130, "%s", r->err);
	cr_assert_str_eq(r->err, "snapctl: show: interrupted\n");
	r = run("diff", ids);
	cr_assert_eq(r->status, 130, "%s", r->err);
	r = run("restore", ids);
	cr_assert_eq(r->status, 130, "%s", r->err);
	cr_assert_str_eq(r->err, "snapctl: restore: interrupted\n");
	run_sigint = 0;
	char *after = manifest(mnt, "proj");
	cr_assert_str_eq(mutated, after, "an interrupted restore changed the tree");
	ok(run("restore", ids));
	r = run("diff", "-H", ids);
	ok(r);
	cr_assert_str_eq(r->out, "", "left after restore:\n%s", r->out);
	free(mutated);
	free(after);
}
