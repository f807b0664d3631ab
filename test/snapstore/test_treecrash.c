// SPDX-License-Identifier: MIT
/*
 * Tree snapshots and crashes: a child process runs a fixed script of
 * namespace, metadata and data changes through the hooks (daemon order) and
 * is killed (SIGKILL) at its first commit point (an attribute or entry row
 * committed, or copied blocks committed, before the change they protect);
 * the parent reopens the store and the pinned tree must still read exactly
 * as at pin time, and store_check must be clean. Each run continues from
 * what the previous crash left (the rows committed then make the hook a
 * no-op now, so the change goes ahead), so the runs step through every
 * commit point of the script. Also: a pinned tree survives a clean close/reopen and a store kill
 * right after the pin; after release every row is gone.
 */
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include "tree_fx.h"

static long crash_at, points;

static void kill_hook(const char *point)
{
	if (strcmp(point, "ns:committed") && strcmp(point, "cow:committed"))
		return;
	if (++points == crash_at)
		raise(SIGKILL);
}

static void sp(char *out, size_t len, const char *rel)
{
	tu_path(out, len, fx_src, rel);
}

/* The daemon's step before changing the node at rel, if it exists: take its
 * write lock and save it when a tree snapshot needs it. *out gets the
 * store_file (write-locked; d_done() unlocks and puts it). */
static int d_save(const char *rel, struct store_file **out)
{
	char p[1024];
	sp(p, sizeof(p), rel);
	int fd = open(p, O_PATH | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	struct store_file *sf;
	cr_assert_eq(store_file_get(fx_st, fd, &sf), 0);
	store_file_wrlock(sf);
	cr_assert_eq(tf_save(sf, fd), 0);
	close(fd);
	*out = sf;
	return 0;
}

/* After the change: the unlock records it (marks), then the reference goes. */
static void d_done(struct store_file *sf)
{
	if (!sf)
		return;
	store_file_unlock(sf);
	store_file_put(sf);
}

static struct store_file *d_get(const char *rel)
{
	char p[1024];
	sp(p, sizeof(p), rel);
	int fd = open(p, O_PATH | O_NOFOLLOW);
	if (fd < 0)
		return NULL;
	struct store_file *sf;
	cr_assert_eq(store_file_get(fx_st, fd, &sf), 0);
	close(fd);
	return sf;
}

/* Entry name of directory dir (relative paths) is about to change. */
static void d_entry(const char *dir, const char *name)
{
	char rel[1024];
	struct store_file *d = d_get(dir), *c;
	snprintf(rel, sizeof(rel), "%s/%s", dir, name);
	c = d_get(rel);
	struct stat sb;
	char p[1024];
	sp(p, sizeof(p), rel);
	uint32_t type = c && !lstat(p, &sb) ? (sb.st_mode & S_IFMT) : 0;
	cr_assert_eq(store_ns_entry(fx_st, d, name, c, type), 0);
	store_file_put(c);
	store_file_put(d);
}

static void d_write(const char *rel, off_t off, size_t len, int seed)
{
	char p[1024], buf[8192];
	sp(p, sizeof(p), rel);
	struct store_file *sf;
	if (d_save(rel, &sf))
		return;
	int fd = open(p, O_RDWR);
	cr_assert(fd >= 0);
	cr_assert_eq(store_cow_range(sf, fd, (uint64_t)off, len), 0);
	tu_fill(buf, len, (uint64_t)seed);
	fx_pwrite(fd, buf, len, off);
	close(fd);
	d_done(sf);
}

static void d_unlink(const char *dir, const char *name)
{
	char rel[1024], p[1024];
	snprintf(rel, sizeof(rel), "%s/%s", dir, name);
	sp(p, sizeof(p), rel);
	struct stat sb;
	if (lstat(p, &sb))
		return;
	struct store_file *sf, *d;
	d_save(dir, &d);
	d_save(rel, &sf);
	d_entry(dir, name);
	if (S_ISREG(sb.st_mode) && sb.st_nlink == 1) {
		int fd = open(p, O_RDONLY);
		cr_assert_eq(store_cow_unlink(sf, fd), 0);
		close(fd);
	}
	cr_assert_eq(S_ISDIR(sb.st_mode) ? rmdir(p) : unlink(p), 0);
	d_done(sf);
	d_done(d);
}

static void d_rename(const char *sd, const char *sn, const char *dd, const char *dn)
{
	char sr[1024], dr[1024], s[1024], d[1024];
	snprintf(sr, sizeof(sr), "%s/%s", sd, sn);
	snprintf(dr, sizeof(dr), "%s/%s", dd, dn);
	sp(s, sizeof(s), sr);
	sp(d, sizeof(d), dr);
	struct stat sb, db;
	if (lstat(s, &sb))
		return;
	int over = !lstat(d, &db);
	struct store_file *a, *b = NULL, *x, *y = NULL;
	d_save(sd, &a);
	if (strcmp(sd, dd))
		d_save(dd, &b);
	d_save(sr, &x);
	if (over)
		d_save(dr, &y);
	d_entry(sd, sn);
	d_entry(dd, dn);
	if (over && S_ISREG(db.st_mode) && db.st_nlink == 1) {
		int fd = open(d, O_RDONLY);
		cr_assert_eq(store_cow_unlink(y, fd), 0);
		close(fd);
	}
	cr_assert_eq(rename(s, d), 0, "rename %s %s: %s", s, d, strerror(errno));
	d_done(y);
	d_done(x);
	d_done(b);
	d_done(a);
}

static void d_create(const char *dir, const char *name, int type)
{
	char rel[1024], p[1024];
	snprintf(rel, sizeof(rel), "%s/%s", dir, name);
	sp(p, sizeof(p), rel);
	struct stat sb;
	if (!lstat(p, &sb))
		return;
	struct store_file *d;
	d_save(dir, &d);
	d_entry(dir, name);
	if (type == 'd')
		cr_assert_eq(mkdir(p, 0750), 0);
	else if (type == 'l')
		cr_assert_eq(symlink("new-target", p), 0);
	else
		cr_assert_eq(tu_write_file(p, "new file\n", 9), 0);
	struct store_file *sf = d_get(rel);
	store_ns_born(sf);
	store_file_put(sf);
	d_done(d);
}

static void d_meta(const char *rel)
{
	char p[1024];
	sp(p, sizeof(p), rel);
	struct store_file *sf;
	if (d_save(rel, &sf))
		return;
	cr_assert_eq(chmod(p, 0700), 0);
	cr_assert_eq(setxattr(p, "trusted.crash", "yes", 3, 0), 0);
	cr_assert_eq(lchown(p, 1000, 1000), 0);
	d_done(sf);
}

static void d_truncate(const char *rel, off_t size)
{
	char p[1024];
	sp(p, sizeof(p), rel);
	struct store_file *sf;
	if (d_save(rel, &sf))
		return;
	int fd = open(p, O_RDWR);
	cr_assert_eq(store_cow_truncate(sf, fd, (uint64_t)size), 0);
	cr_assert_eq(ftruncate(fd, size), 0);
	close(fd);
	d_done(sf);
}

/* The child's script: every kind of change, each tolerant of a state a
 * previous crash left half-way. */
static void script(void)
{
	d_write("d1/f1", 100, 5000, 7);
	d_meta("d1/f1");
	d_rename("d1", "f1", "d2", "f1moved");
	d_unlink("d2", "hard");
	d_unlink(".", "link");
	d_create(".", "link", 'l');
	d_create(".", "d3", 'd');
	d_create("d3", "n", 'f');
	d_meta("d1");
	d_truncate("d2/f2", 10);
	d_unlink(".", "empty");
	d_rename(".", "d2", "d1", "d2moved");
	d_rename(".", "top", "d1", "f0"); /* over an existing file */
	d_write("d1/d2moved/f2", 0, 3000, 9);
	d_unlink("d1", "f0");
}

static void build_tree(void)
{
	char p[1024];
	umask(0);
	const char *dirs[] = {"d1", "d2", "empty"};
	for (size_t i = 0; i < 3; i++) {
		sp(p, sizeof(p), dirs[i]);
		cr_assert_eq(mkdir(p, 0755), 0);
	}
	const char *files[] = {"d1/f1", "d1/f0", "d2/f2", "top"};
	for (size_t i = 0; i < 4; i++) {
		char buf[9000];
		tu_fill(buf, sizeof(buf) - i * 1000, i + 1);
		sp(p, sizeof(p), files[i]);
		cr_assert_eq(tu_write_file(p, buf, sizeof(buf) - i * 1000), 0);
	}
	char q[1024];
	sp(p, sizeof(p), "d1/f1");
	sp(q, sizeof(q), "d2/hard");
	cr_assert_eq(link(p, q), 0);
	sp(p, sizeof(p), "link");
	cr_assert_eq(symlink("d1/f1", p), 0);
	sp(p, sizeof(p), "d2");
	cr_assert_eq(setxattr(p, "trusted.a", "1", 1, 0), 0);
}

static uint64_t pin_root(void)
{
	struct store_file *root = d_get(".");
	struct store_pin p = {.kind = STORE_PINNED, .label = "tree"};
	uint64_t id;
	cr_assert_eq(store_pin_tree(fx_st, &p, root, "", &id), 0);
	store_file_put(root);
	return id;
}

TestSuite(treecrash, .init = fx_setup, .fini = fx_teardown, .timeout = 300);

Test(treecrash, killed_at_every_commit_point_reads_as_pinned)
{
	build_tree();
	uint64_t id = pin_root();
	char *want = tf_live_manifest(fx_src);
	char *got = tf_snap_manifest(fx_st, id, "after pin");
	tf_expect_same(want, got, "after pin");
	free(got);
	store_close(fx_st);
	fx_st = NULL;
	int finished = 0;
	long k;
	for (k = 1; k < 200 && !finished; k++) {
		pid_t pid = fork();
		cr_assert(pid >= 0);
		if (pid == 0) {
			fx_open_bs(4096, 0);
			crash_at = 1; /* the first point left: the run before got past its own */
			points = 0;
			store_set_test_hook(kill_hook);
			script();
			_exit(3); /* the script ran to its end: no point left */
		}
		int status;
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		if (WIFEXITED(status))
			cr_assert_eq(WEXITSTATUS(status), 3, "child failed at k=%ld", k);
		else
			cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
				  "child died otherwise at k=%ld", k);
		finished = WIFEXITED(status);
		fx_open_bs(4096, 0);
		char ctx[64];
		snprintf(ctx, sizeof(ctx), "killed at commit point %ld", k);
		got = tf_snap_manifest(fx_st, id, ctx);
		tf_expect_same(want, got, ctx);
		free(got);
		fx_check();
		store_close(fx_st);
		fx_st = NULL;
	}
	cr_assert(finished, "the script never ran to its end");
	cr_log_info("%ld crash runs", k - 1);
	cr_assert(k > 15, "too few commit points (%ld): the script changes too little", k);
	fx_open_bs(4096, 0);
	/* The live tree did change. */
	got = tf_live_manifest(fx_src);
	cr_assert(strcmp(want, got), "the script changed nothing");
	free(got);
	cr_assert_eq(store_release(fx_st, id), 0);
	fx_check();
	struct store_stats s = fx_stats();
	cr_assert_eq(s.extents, 0);
	free(want);
}

Test(treecrash, clean_reopen_keeps_the_tree)
{
	build_tree();
	uint64_t id = pin_root();
	char *want = tf_live_manifest(fx_src);
	script();
	fx_reopen();
	char *got = tf_snap_manifest(fx_st, id, "after reopen");
	tf_expect_same(want, got, "after reopen");
	free(got);
	/* A second pin after the changes, then more changes and a reopen. */
	uint64_t id2 = pin_root();
	char *want2 = tf_live_manifest(fx_src);
	d_write("d3/n", 0, 100, 3);
	d_unlink("d3", "n");
	d_rename("d1", "d2moved", ".", "d2");
	fx_reopen();
	got = tf_snap_manifest(fx_st, id2, "second");
	tf_expect_same(want2, got, "second");
	free(got);
	got = tf_snap_manifest(fx_st, id, "first");
	tf_expect_same(want, got, "first");
	free(got);
	fx_check();
	cr_assert_eq(store_release(fx_st, id), 0);
	fx_check();
	got = tf_snap_manifest(fx_st, id2, "second after release of first");
	tf_expect_same(want2, got, "second after release of first");
	free(got);
	cr_assert_eq(store_release(fx_st, id2), 0);
	fx_check();
	cr_assert_eq(fx_stats().extents, 0);
	free(want);
	free(want2);
}

Test(treecrash, change_behind_the_store_is_stale_not_live)
{
	build_tree();
	uint64_t id = pin_root();
	store_close(fx_st);
	fx_st = NULL;
	usleep(20000);
	char p[1024];
	sp(p, sizeof(p), "d2/f2");
	cr_assert_eq(chmod(p, 0600), 0); /* no hook: the store never saw it */
	fx_open_bs(4096, 0);
	struct store_file *sf = d_get("d2/f2");
	struct store_attr a;
	char buf[4096];
	cr_assert_eq(store_tree_attr(fx_st, id, sf, &a, buf, sizeof(buf)), -EIO);
	struct stat sb;
	cr_assert_eq(lstat(p, &sb), 0);
	cr_assert_eq(store_tree_attr_st(fx_st, id, sf, &sb, &a, buf, sizeof(buf)), -EIO);
	store_file_put(sf);
	/* an unchanged node still reads live */
	sf = d_get("d1/f0");
	cr_assert_eq(store_tree_attr(fx_st, id, sf, &a, buf, sizeof(buf)), 1);
	sp(p, sizeof(p), "d1/f0");
	cr_assert_eq(lstat(p, &sb), 0);
	cr_assert_eq(store_tree_attr_st(fx_st, id, sf, &sb, &a, buf, sizeof(buf)), 1);
	store_file_put(sf);
}

/* A save records the regular file's stat in its files row in the same commit
 * (as a pin does): a crash right after it finds the file as recorded, so
 * recovery cannot take the unchanged file for one changed behind its back,
 * whatever the clock says. */
Test(treecrash, save_records_the_file_stat)
{
	build_tree();
	uint64_t id = pin_root();
	store_close(fx_st);
	fx_st = NULL;
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		fx_open_bs(4096, 0);
		crash_at = 1;
		points = 0;
		store_set_test_hook(kill_hook);
		d_meta("d2/f2"); /* killed after the row's commit, before the chmod */
		_exit(3);
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFSIGNALED(status), "the save committed nothing?");
	char p[1024], db[1024];
	struct stat sb;
	sp(p, sizeof(p), "d2/f2");
	cr_assert_eq(lstat(p, &sb), 0);
	cr_assert_eq(sb.st_mode & 07777, 0644, "the chmod ran before the commit");
	tu_path(db, sizeof(db), fx_dir, "index.db");
	sqlite3 *h;
	sqlite3_stmt *q;
	cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
	cr_assert_eq(
	    sqlite3_prepare_v2(h, "SELECT size, ctime_ns FROM files WHERE ino = ?1", -1, &q, NULL),
	    SQLITE_OK);
	sqlite3_bind_int64(q, 1, (int64_t)sb.st_ino);
	cr_assert_eq(sqlite3_step(q), SQLITE_ROW, "no files row for the saved file");
	cr_assert_eq(sqlite3_column_int64(q, 0), sb.st_size);
	cr_assert_eq(sqlite3_column_int64(q, 1),
		     (int64_t)sb.st_ctim.tv_sec * 1000000000 + sb.st_ctim.tv_nsec);
	sqlite3_finalize(q);
	sqlite3_close(h);
	fx_open_bs(4096, 0);
	struct store_snap_meta sm;
	cr_assert_eq(store_snap_meta(fx_st, id, &sm), 0);
	cr_assert_eq(sm.state, STORE_VALID);
}

/* ---- schema versions: the tree tables came with schema 3 ---- */

static void index_sql(const char *sql)
{
	char db[1024];
	sqlite3 *h;
	tu_path(db, sizeof(db), fx_dir, "index.db");
	cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
	char *msg = NULL;
	cr_assert_eq(sqlite3_exec(h, sql, NULL, NULL, &msg), SQLITE_OK, "%s: %s", sql, msg);
	sqlite3_close(h);
}

static int64_t index_int(const char *sql)
{
	char db[1024];
	sqlite3 *h;
	sqlite3_stmt *q;
	tu_path(db, sizeof(db), fx_dir, "index.db");
	cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(h, sql, -1, &q, NULL), SQLITE_OK, "%s", sql);
	cr_assert_eq(sqlite3_step(q), SQLITE_ROW, "%s", sql);
	int64_t v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	sqlite3_close(h);
	return v;
}

#define NS_TABLES                                                                                  \
	"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('ns_trees', "        \
	"'ns_attr', 'ns_entry')"

/* A store of schema 2 as the build before schema 3 left it when no tree had
 * been pinned: no tree tables. Opening it upgrades it; tree pins then work
 * and survive a reopen. */
Test(treecrash, schema_2_store_without_tree_tables_is_upgraded)
{
	build_tree();
	store_close(fx_st);
	fx_st = NULL;
	index_sql("DROP TABLE ns_trees; DROP TABLE ns_attr; DROP TABLE ns_entry;"
		  "PRAGMA user_version = 2");
	cr_assert_eq(index_int(NS_TABLES), 0);
	fx_open_bs(4096, 0);
	store_close(fx_st);
	fx_st = NULL;
	cr_assert_eq(index_int("PRAGMA user_version"), 3, "the open did not upgrade to 3");
	cr_assert_eq(index_int(NS_TABLES), 3, "the upgrade did not create the tree tables");
	fx_open_bs(4096, 0);
	uint64_t id = pin_root();
	char *want = tf_live_manifest(fx_src);
	script();
	fx_reopen();
	char *got = tf_snap_manifest(fx_st, id, "upgraded store");
	tf_expect_same(want, got, "upgraded store");
	free(got);
	free(want);
	fx_check();
}

/* A store of schema 2 made by a build that created the tree tables at its
 * first tree pin: the upgrade keeps its trees and their rows. */
Test(treecrash, schema_2_store_with_tree_rows_keeps_its_trees)
{
	build_tree();
	uint64_t id = pin_root();
	char *want = tf_live_manifest(fx_src);
	script();
	store_close(fx_st);
	fx_st = NULL;
	int64_t rows = index_int("SELECT (SELECT count(*) FROM ns_attr) + "
				 "(SELECT count(*) FROM ns_entry)");
	cr_assert_gt(rows, 10, "the script saved too little (%lld rows)", (long long)rows);
	index_sql("PRAGMA user_version = 2");
	fx_open_bs(4096, 0);
	char *got = tf_snap_manifest(fx_st, id, "schema 2 store");
	tf_expect_same(want, got, "schema 2 store");
	free(got);
	free(want);
	fx_check();
	store_close(fx_st);
	fx_st = NULL;
	cr_assert_eq(index_int("PRAGMA user_version"), 3);
	cr_assert_eq(index_int("SELECT (SELECT count(*) FROM ns_attr) + "
			       "(SELECT count(*) FROM ns_entry)"),
		     rows, "the upgrade lost rows");
}

/* Schema 3 without its tree tables is a damaged index: refused, not
 * served as a store without trees. */
Test(treecrash, schema_3_store_without_tree_tables_is_refused)
{
	store_close(fx_st);
	fx_st = NULL;
	index_sql("DROP TABLE ns_entry");
	store_set_logger(NULL);
	struct store_opts o = {.block_size = 4096};
	int rc = store_open(fx_dir, fx_srcfd, &o, &fx_st);
	cr_assert_eq(rc, -EIO, "open of a schema 3 index without ns_entry: %d", rc);
	fx_st = NULL;
}

static char logged[8][512];
static int nlogged;

static void capture(int level, const char *msg)
{
	(void)level;
	if (nlogged < 8)
		strlcpy(logged[nlogged], msg, sizeof(logged[0]));
	nlogged++;
}

/* A store of a schema this build does not know: -EPROTO and one line that
 * names both versions. */
Test(treecrash, newer_schema_is_refused_in_one_line)
{
	store_close(fx_st);
	fx_st = NULL;
	index_sql("PRAGMA user_version = 4");
	store_set_logger(capture);
	struct store_opts o = {.block_size = 4096};
	int rc = store_open(fx_dir, fx_srcfd, &o, &fx_st);
	store_set_logger(NULL);
	fx_st = NULL;
	cr_assert_eq(rc, -EPROTO, "open of a schema 4 store: %d", rc);
	cr_assert_eq(nlogged, 1, "%d log lines, want 1 (first: %s)", nlogged, logged[0]);
	cr_assert_null(strchr(logged[0], '\n'), "not one line: %s", logged[0]);
	cr_assert(strstr(logged[0], "schema version 4") && strstr(logged[0], "(3)") &&
		      strstr(logged[0], "upgrade snapfs"),
		  "the line does not name both versions: %s", logged[0]);
	cr_assert_eq(index_int("PRAGMA user_version"), 4, "the refused open wrote the version");
}
