// SPDX-License-Identifier: MIT
/*
 * A tree pin is atomic (issue 10): it happens between two operations on the
 * mount, never inside one. A file renamed back and forth between a/ and b/
 * by a writer appears exactly once in each of 200 snapshots; a git
 * repository committed to in a loop (loose refs packed after every commit,
 * so refs/heads/ is often an empty directory)
 * passes `git fsck --full` in every snapshot, copied out with cp -a (the
 * view is never written); a SQLite database in WAL mode written by another
 * process passes `PRAGMA integrity_check` from every snapshot (db and -wal
 * copied out) and holds one of the row counts that were committed.
 */
#include "treeutil.h"

#include <signal.h>
#include <sqlite3.h>

TestSuite(atomic, .init = fx_setup, .fini = tr_teardown, .timeout = 600);

/* Shared with a forked writer. */
struct shared {
	volatile int stop;
	volatile long done; /* operations (renames, commits, transactions) completed */
	volatile int failed;
	char why[256];
};

static struct shared *shared_new(void)
{
	struct shared *s =
	    mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(s, MAP_FAILED);
	memset(s, 0, sizeof(*s));
	return s;
}

static void writer_stop(struct shared *s, pid_t pid)
{
	s->stop = 1;
	int st;
	for (int i = 0; i < 1000 && waitpid(pid, &st, WNOHANG) == 0; i++)
		msleep(10);
	if (waitpid(pid, &st, WNOHANG) == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
	tr_child = 0;
}

static void wait_progress(struct shared *s, long n)
{
	for (int i = 0; i < 3000 && s->done < n && !s->failed; i++)
		msleep(2);
	cr_assert(!s->failed, "writer failed: %s", s->why);
	cr_assert_geq(s->done, n, "writer made no progress");
}

static int exists(const char *p)
{
	struct stat st;
	if (lstat(p, &st) == 0)
		return 1;
	cr_assert_eq(errno, ENOENT, "lstat %s: %s", p, strerror(errno));
	return 0;
}

Test(atomic, file_renamed_between_dirs_is_in_every_snapshot_exactly_once)
{
	fx_mount(NULL);
	mkdir_p(MP("t"), 0755);
	mkdir_p(MP("t/a"), 0755);
	mkdir_p(MP("t/b"), 0755);
	put_file(MP("t/a/keep"), 10, 1, 0);
	put_file(MP("t/b/keep"), 10, 2, 0);
	put_file(MP("t/a/f"), 5000, 3, 0);
	unsigned char want[5000], got[5001];
	tu_fill(want, sizeof(want), 3);
	struct shared *s = shared_new();
	const char *fa = strdup(MP("t/a/f")), *fb = strdup(MP("t/b/f"));
	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		while (!s->stop) {
			if (rename(fa, fb) || rename(fb, fa)) {
				snprintf(s->why, sizeof(s->why), "rename: %s", strerror(errno));
				s->failed = 1;
				_exit(1);
			}
			s->done += 2;
		}
		_exit(0);
	}
	tr_child = pid;
	wait_progress(s, 10);
	int in_a = 0, in_b = 0;
	for (int i = 0; i < 200; i++) {
		long before = s->done;
		uint64_t id = try_pin_tree((const char *[]){"t"}, 1);
		int e = errno;
		if (!id) {
			writer_stop(s, pid);
			cr_assert_fail("pin %d of t failed: %s", i, strerror(e));
		}
		int a = exists(VR(id, "t/a/f")), b = exists(VR(id, "t/b/f"));
		if (a + b != 1) {
			writer_stop(s, pid);
			cr_assert_fail("snapshot %d (id %" PRIu64
				       ", writer at %ld): f is in a/: %d, "
				       "in b/: %d; it must be in exactly one of them",
				       i, id, before, a, b);
		}
		in_a += a;
		in_b += b;
		ssize_t n = read_path(VR(id, a ? "t/a/f" : "t/b/f"), got, sizeof(got));
		expect_bytes("f in the snapshot", got, n < 0 ? 0 : (size_t)n, want, sizeof(want));
		release(id);
	}
	writer_stop(s, pid);
	cr_assert(!s->failed, "writer: %s", s->why);
	cr_log_info("200 pins: f in a/ %d times, in b/ %d times; %ld renames", in_a, in_b,
		    (long)s->done);
	free((void *)fa);
	free((void *)fb);
}

/* ---- git ------------------------------------------------------------------ */

static void git_ok(const char *dir, const char *what, const char *script)
{
	struct tr_out *r = xmalloc(sizeof(*r));
	int rc = tr_run(r, dir, 0, "sh", "-ec", script, NULL);
	cr_assert_eq(rc, 0, "%s: exit %d: %s%s", what, rc, r->out, r->err);
	free(r);
}

Test(atomic, git_repository_committed_to_is_valid_in_every_snapshot)
{
	if (!have_prog("git"))
		cr_skip_test("git is not installed");
	fx_mount(NULL);
	const char *repo = strdup(MP("repo"));
	mkdir_p(repo, 0755);
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	setenv("HOME", mnt, 1);
	git_ok(repo, "git init",
	       "git init -q -b main . && git config user.email t@e && git config user.name t && "
	       "git config gc.auto 0 && for i in 1 2 3 4 5; do echo $i > f$i; done && "
	       "mkdir -p sub/deep && echo x > sub/deep/y && git add -A && "
	       "git commit -qm init && git tag v0 && git gc -q");
	struct shared *s = shared_new();
	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		for (long i = 1; !s->stop; i++) {
			char script[512];
			snprintf(script, sizeof(script),
				 "echo %ld >> f%ld && mkdir -p d%ld && echo %ld > d%ld/n && "
				 "git add -A && git commit -qm c%ld && git tag t%ld && "
				 "git pack-refs --all && "
				 "if [ $((%ld %% 11)) = 0 ]; then git rm -rq d%ld && git commit "
				 "-qm rm; fi",
				 i, i % 5 + 1, i % 13, i, i % 13, i, i, i, i % 13);
			struct tr_out r;
			if (tr_run(&r, repo, 0, "sh", "-ec", script, NULL)) {
				snprintf(s->why, sizeof(s->why), "commit %ld: %.200s", i, r.err);
				s->failed = 1;
				_exit(1);
			}
			s->done = i;
		}
		_exit(0);
	}
	tr_child = pid;
	wait_progress(s, 1);
	int npins = tr_long() ? 100 : 15;
	const char *out = tr_tmpdir("trgit");
	for (int i = 0; i < npins; i++) {
		msleep(i % 3 * 40);
		uint64_t id = try_pin_tree((const char *[]){"repo"}, 1);
		int e = errno;
		if (!id) {
			writer_stop(s, pid);
			cr_assert_fail("pin %d of repo failed: %s", i, strerror(e));
		}
		char copy[600];
		snprintf(copy, sizeof(copy), "%s/c%d", out, i);
		struct tr_out *r = xmalloc(sizeof(*r));
		int rc = tr_run(r, NULL, 0, "cp", "-a", VR(id, "repo"), copy, NULL);
		if (rc == 0)
			rc = tr_run(r, copy, 0, "git", "fsck", "--full", "--no-progress", NULL);
		if (rc == 0)
			rc = tr_run(r, copy, 0, "git", "rev-parse", "--verify", "HEAD", NULL);
		if (rc) {
			writer_stop(s, pid);
			cr_assert_fail("snapshot %d (id %" PRIu64 ", writer at commit %ld) of the "
				       "repository: cp -a + git fsck --full fails: %.1500s%.1500s",
				       i, id, (long)s->done, r->out, r->err);
		}
		free(r);
		tu_rm_rf(copy);
		release(id);
	}
	writer_stop(s, pid);
	cr_assert(!s->failed, "writer: %s", s->why);
	cr_assert_gt(s->done, 2, "the writer made only %ld commits", (long)s->done);
	cr_log_info("%d snapshots during %ld commits", npins, (long)s->done);
	free((void *)repo);
}

/* ---- SQLite --------------------------------------------------------------- */

/* Rows committed by the first n transactions: transaction j inserts j%7+1. */
static long rows_after(long n)
{
	long r = 0;
	for (long j = 0; j < n; j++)
		r += j % 7 + 1;
	return r;
}

static void sql(sqlite3 *db, const char *q)
{
	char *err = NULL;
	if (sqlite3_exec(db, q, NULL, NULL, &err) != SQLITE_OK) {
		fprintf(stderr, "sqlite: %s: %s\n", q, err);
		_exit(1);
	}
}

static void sqlite_writer(const char *path, struct shared *s)
{
	sqlite3 *db;
	if (sqlite3_open(path, &db) != SQLITE_OK)
		_exit(1);
	sqlite3_busy_timeout(db, 5000);
	for (long j = 0; !s->stop; j++) {
		sql(db, "BEGIN IMMEDIATE");
		for (long k = 0; k <= j % 7; k++)
			sql(db, "INSERT INTO t(x, pad) VALUES (1, randomblob(700))");
		sql(db, "COMMIT");
		s->done = j + 1;
	}
	sqlite3_close(db);
	_exit(0);
}

static void copy_file(const char *from, const char *to)
{
	struct stat st;
	if (lstat(from, &st)) {
		cr_assert_eq(errno, ENOENT, "lstat %s: %s", from, strerror(errno));
		return;
	}
	cr_assert(S_ISREG(st.st_mode), "%s is not a regular file", from);
	unsigned char *b = xmalloc((size_t)st.st_size);
	ssize_t n = read_path(from, b, (size_t)st.st_size);
	cr_assert_eq(n, st.st_size, "read %s: %zd of %lld", from, n, (long long)st.st_size);
	write_path(to, b, (size_t)n);
	free(b);
}

Test(atomic, sqlite_wal_database_is_consistent_in_every_snapshot)
{
	fx_mount(NULL);
	mkdir_p(MP("db"), 0755);
	const char *path = strdup(MP("db/t.db"));
	sqlite3 *db;
	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db,
				  "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=64; "
				  "CREATE TABLE t(id INTEGER PRIMARY KEY, x INTEGER, pad BLOB);",
				  NULL, NULL, NULL),
		     SQLITE_OK, "%s", sqlite3_errmsg(db));
	sqlite3_close(db);
	struct shared *s = shared_new();
	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0)
		sqlite_writer(path, s);
	tr_child = pid;
	wait_progress(s, 5);
	int npins = tr_long() ? 200 : 25;
	const char *out = tr_tmpdir("trsql");
	long counts_seen = 0, last = -1;
	for (int i = 0; i < npins; i++) {
		msleep(i % 4 * 15);
		long before = s->done; /* transactions committed before the pin */
		uint64_t id = try_pin_tree((const char *[]){"db"}, 1);
		int e = errno;
		long done = s->done;
		if (!id) {
			writer_stop(s, pid);
			cr_assert_fail("pin %d of db/ failed: %s", i, strerror(e));
		}
		char c[600], cw[600];
		snprintf(c, sizeof(c), "%s/c%d.db", out, i);
		snprintf(cw, sizeof(cw), "%s/c%d.db-wal", out, i);
		copy_file(VR(id, "db/t.db"), c);
		copy_file(VR(id, "db/t.db-wal"), cw);
		release(id);
		sqlite3 *cdb;
		cr_assert_eq(sqlite3_open(c, &cdb), SQLITE_OK);
		sqlite3_stmt *st;
		const char *ic = "(no row)";
		char icbuf[512] = "";
		int rc = sqlite3_prepare_v2(cdb, "PRAGMA integrity_check", -1, &st, NULL);
		if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
			snprintf(icbuf, sizeof(icbuf), "%s", sqlite3_column_text(st, 0));
			ic = icbuf;
		} else {
			snprintf(icbuf, sizeof(icbuf), "error: %s", sqlite3_errmsg(cdb));
			ic = icbuf;
		}
		sqlite3_finalize(st);
		long count = -1;
		if (!strcmp(ic, "ok") &&
		    sqlite3_prepare_v2(cdb, "SELECT count(*) FROM t", -1, &st, NULL) == SQLITE_OK) {
			if (sqlite3_step(st) == SQLITE_ROW)
				count = sqlite3_column_int64(st, 0);
			sqlite3_finalize(st);
		}
		sqlite3_close(cdb);
		if (strcmp(ic, "ok")) {
			writer_stop(s, pid);
			cr_assert_fail("snapshot %d (writer at transaction %ld): PRAGMA "
				       "integrity_check says: %s",
				       i, done, ic);
		}
		/* one of the committed counts, at least all committed before the
		 * pin, and not before the previous snapshot */
		long n = 0;
		while (n <= done + 1 && rows_after(n) < count)
			n++;
		if (rows_after(n) != count || count < last || n < before) {
			writer_stop(s, pid);
			cr_assert_fail(
			    "snapshot %d: %ld rows (after transaction %ld), but that is no "
			    "commit, or not at least the %ld transactions (%ld rows) "
			    "committed before the pin, or fewer than the previous "
			    "snapshot's %ld rows; writer at transaction %ld after the pin",
			    i, count, rows_after(n) == count ? n : -1, before, rows_after(before),
			    last, done);
		}
		counts_seen += count != last;
		last = count;
		unlink(c);
		unlink(cw);
	}
	writer_stop(s, pid);
	cr_assert(!s->failed, "writer: %s", s->why);
	cr_assert_gt(counts_seen, 2, "the snapshots saw only %ld different counts", counts_seen);
	free((void *)path);
}
