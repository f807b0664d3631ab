// SPDX-License-Identifier: MIT
/*
 * Opening stores: bad input (corrupt or truncated index, missing block file,
 * newer schema, block size mismatch, a second opener) fails cleanly and
 * changes no byte; a store reached through /proc/self/fd works; files changed
 * while the store was closed make their snapshots stale.
 */
#include "fixture.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>

TestSuite(open, .init = fx_setup, .fini = fx_teardown, .timeout = 30);

static void quiet(int level, const char *msg)
{
	(void)level;
	(void)msg;
}

/* A store holding one pinned snapshot with one preserved block; closed. */
static void make_store(void)
{
	char a[8192], b[4096];
	tu_fill(a, sizeof(a), 1);
	tu_fill(b, sizeof(b), 2);
	int fd = fx_file("f");
	fx_pwrite(fd, a, sizeof(a), 0);
	struct store_file *sf;
	cr_assert_eq(store_file_get(fx_st, fd, &sf), 0);
	fx_pin1(sf, fd, "f", STORE_PINNED);
	cr_assert_eq(fx_cow_write(sf, fd, b, sizeof(b), 0), 0);
	store_file_put(sf);
	close(fd);
	store_close(fx_st);
	fx_st = NULL;
}

static char *slurp(const char *name, size_t *len)
{
	char p[1024];
	tu_path(p, sizeof(p), fx_dir, name);
	static char buf[1 << 20];
	ssize_t n = tu_read_file(p, buf, sizeof(buf));
	if (n < 0) {
		*len = 0;
		return NULL;
	}
	char *c = malloc((size_t)n + 1);
	memcpy(c, buf, (size_t)n);
	*len = (size_t)n;
	return c;
}

static int try_open(uint32_t bs)
{
	struct store_opts o = {.block_size = bs};
	struct store *st = NULL;
	store_set_logger(quiet);
	int rc = store_open(fx_dir, fx_srcfd, &o, &st);
	store_set_logger(NULL);
	if (!rc)
		store_close(st);
	return rc;
}

/* Open must fail with want and leave index.db and blocks byte-identical. */
static void expect_refused(uint32_t bs, int want)
{
	size_t li, lb, li2, lb2;
	char *i1 = slurp("index.db", &li), *b1 = slurp("blocks", &lb);
	int rc = try_open(bs);
	cr_assert_eq(rc, want, "store_open: %d (%s), want %d", rc, strerror(-rc), want);
	char *i2 = slurp("index.db", &li2), *b2 = slurp("blocks", &lb2);
	cr_assert_eq(li, li2, "index.db changed size");
	cr_assert_eq(lb, lb2, "blocks changed size");
	if (li)
		cr_assert_arr_eq(i1, i2, li, "index.db changed");
	if (lb)
		cr_assert_arr_eq(b1, b2, lb, "blocks changed");
	free(i1);
	free(i2);
	free(b1);
	free(b2);
}

Test(open, corrupt_index_is_eio_and_untouched)
{
	make_store();
	char p[1024];
	tu_path(p, sizeof(p), fx_dir, "index.db");
	int fd = open(p, O_WRONLY);
	char junk[4096];
	tu_fill(junk, sizeof(junk), 3);
	cr_assert_eq(pwrite(fd, junk, sizeof(junk), 4096), (ssize_t)sizeof(junk)); /* page 2 */
	close(fd);
	expect_refused(0, -EIO);
}

Test(open, garbage_header_is_eio)
{
	make_store();
	char p[1024];
	tu_path(p, sizeof(p), fx_dir, "index.db");
	int fd = open(p, O_WRONLY);
	cr_assert_eq(pwrite(fd, "garbage!", 8, 0), 8);
	close(fd);
	expect_refused(0, -EIO);
}

Test(open, truncated_index_is_eio)
{
	make_store();
	char p[1024];
	tu_path(p, sizeof(p), fx_dir, "index.db");
	struct stat sb;
	stat(p, &sb);
	cr_assert_eq(truncate(p, sb.st_size / 2), 0);
	expect_refused(0, -EIO);
}

Test(open, missing_block_file_is_eio)
{
	make_store();
	char p[1024];
	tu_path(p, sizeof(p), fx_dir, "blocks");
	cr_assert_eq(unlink(p), 0);
	expect_refused(0, -EIO);
	cr_assert_neq(access(p, F_OK), 0, "open recreated the block file");
}

Test(open, newer_schema_is_eproto)
{
	make_store();
	char p[1024];
	tu_path(p, sizeof(p), fx_dir, "index.db");
	sqlite3 *db;
	cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, "PRAGMA user_version = 4", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	expect_refused(0, -EPROTO);
}

Test(open, block_size_mismatch_is_einval)
{
	make_store();
	expect_refused(16384, -EINVAL);
	cr_assert_eq(try_open(4096), 0);
	cr_assert_eq(try_open(0), 0);
}

Test(open, bad_block_size_option_is_einval)
{
	struct store_opts o = {.block_size = 3000, .create = 1};
	struct store *st;
	char d[1024];
	tu_path(d, sizeof(d), fx_root, "other");
	cr_assert_eq(store_open(d, fx_srcfd, &o, &st), -EINVAL);
	cr_assert_neq(access(d, F_OK), 0);
}

Test(open, missing_store_without_create_is_enoent)
{
	struct store_opts o = {0};
	struct store *st;
	char d[1024];
	tu_path(d, sizeof(d), fx_root, "nothing");
	cr_assert_eq(store_open(d, fx_srcfd, &o, &st), -ENOENT);
}

Test(open, second_opener_is_ebusy)
{
	struct store_opts o = {0};
	struct store *st;
	store_set_logger(quiet);
	cr_assert_eq(store_open(fx_dir, fx_srcfd, &o, &st), -EBUSY);
	store_set_logger(NULL);
}

Test(open, store_reached_through_proc_self_fd)
{
	make_store();
	int dfd = open(fx_dir, O_DIRECTORY | O_RDONLY);
	char p[64];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", dfd);
	struct store_opts o = {0};
	cr_assert_eq(store_open(p, fx_srcfd, &o, &fx_st), 0);
	cr_assert_eq(fx_stats().snapshots, 1);
	cr_assert_eq(fx_stats().extents, 1);
	fx_check();
	store_close(fx_st);
	fx_st = NULL;
	close(dfd);
}

static uint64_t the_snap(void)
{
	struct store_snap s;
	cr_assert_eq(store_snap_get(fx_st, 1, &s), 0);
	return s.state;
}

Test(open, change_while_closed_makes_snapshot_stale)
{
	make_store();
	char p[1024];
	tu_path(p, sizeof(p), fx_src, "f");
	int fd = open(p, O_WRONLY);
	cr_assert_eq(pwrite(fd, "x", 1, 5000), 1);
	close(fd);
	fx_open_bs(0, 0);
	cr_assert_eq(the_snap(), STORE_STALE);
	char buf[16];
	cr_assert_eq(store_snap_read(fx_st, 1, 1, buf, sizeof(buf), 0), -EIO);
	cr_assert_eq(store_release(fx_st, 1), 0);
	cr_assert_eq(fx_stats().extents, 0);
	fx_check();
}

Test(open, untouched_files_stay_valid_across_reopen)
{
	make_store();
	fx_open_bs(0, 0);
	cr_assert_eq(the_snap(), STORE_VALID);
	fx_reopen();
	cr_assert_eq(the_snap(), STORE_VALID);
}

Test(open, deleted_file_makes_snapshot_stale)
{
	make_store();
	char p[1024];
	tu_path(p, sizeof(p), fx_src, "f");
	cr_assert_eq(unlink(p), 0);
	fx_open_bs(0, 0);
	cr_assert_eq(the_snap(), STORE_STALE);
}

/* A child "daemon" pins f, writes through the hooks, ticks (before or after
 * its write), and is killed. */
static void crashed_daemon_ex(int tick_before_write)
{
	store_close(fx_st);
	fx_st = NULL;
	char a[8192], b[100];
	tu_fill(a, sizeof(a), 4);
	tu_fill(b, sizeof(b), 5);
	int fd = fx_file("f");
	fx_pwrite(fd, a, sizeof(a), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		struct store *st;
		struct store_opts o = {0};
		if (store_open(fx_dir, fx_srcfd, &o, &st))
			_exit(1);
		struct store_file *sf;
		if (store_file_get(st, fd, &sf))
			_exit(1);
		struct store_pin p = {.kind = STORE_PINNED};
		struct store_pin_file f = {.sf = sf, .fd = fd, .path = "f"};
		uint64_t id;
		if (store_pin(st, &p, &f, 1, &id))
			_exit(1);
		if (tick_before_write && store_tick(st))
			_exit(1);
		usleep(20000);
		/* As the daemon writes: under the file's write lock, hook first. */
		store_file_wrlock(sf);
		if (store_cow_range(sf, fd, 0, sizeof(b)) ||
		    pwrite(fd, b, sizeof(b), 0) != (ssize_t)sizeof(b))
			_exit(1);
		store_file_unlock(sf);
		if (!tick_before_write && store_tick(st))
			_exit(1);
		raise(SIGKILL);
	}
	int status;
	waitpid(pid, &status, 0);
	cr_assert(WIFSIGNALED(status), "child failed: %#x", status);
	close(fd);
}

static void crashed_daemon(void)
{
	crashed_daemon_ex(0);
}

Test(open, after_crash_daemon_writes_are_not_stale)
{
	crashed_daemon();
	fx_open_bs(0, 0);
	cr_assert_eq(the_snap(), STORE_VALID);
	char a[8192];
	tu_fill(a, sizeof(a), 4);
	fx_expect_snap(1, 1, a, sizeof(a));
}

Test(open, after_crash_writes_after_the_last_tick_are_not_stale)
{
	crashed_daemon_ex(1);
	fx_open_bs(0, 0);
	cr_assert_eq(the_snap(), STORE_VALID);
	char a[8192];
	tu_fill(a, sizeof(a), 4);
	fx_expect_snap(1, 1, a, sizeof(a));
}

Test(open, after_crash_later_change_is_stale_by_ctime)
{
	crashed_daemon();
	usleep(2200000); /* past the 2 s promise of the last tick (STORE_ALIVE_GRACE_NS) */
	char p[1024];
	tu_path(p, sizeof(p), fx_src, "f");
	int fd = open(p, O_WRONLY);
	cr_assert_eq(pwrite(fd, "y", 1, 5000), 1);
	close(fd);
	fx_open_bs(0, 0);
	cr_assert_eq(the_snap(), STORE_STALE);
}

/* A write made to the source directly, not through the daemon, moments after
 * the daemon was killed: the snapshot is stale (or exact), never wrong. */
Test(open, after_crash_foreign_write_within_the_grace_is_stale_not_wrong)
{
	crashed_daemon();
	char p[1024];
	tu_path(p, sizeof(p), fx_src, "f");
	int fd = open(p, O_WRONLY);
	cr_assert_eq(pwrite(fd, "y", 1, 5000), 1); /* a block the daemon never touched */
	close(fd);
	fx_open_bs(0, 0);
	char a[8192], got[8192];
	tu_fill(a, sizeof(a), 4);
	ssize_t n = store_snap_read(fx_st, 1, 1, got, sizeof(got), 0);
	if (n == -EIO) {
		cr_assert_eq(the_snap(), STORE_STALE);
		return;
	}
	cr_assert_eq(n, (ssize_t)sizeof(a));
	cr_assert(!memcmp(got, a, sizeof(a)), "wrong bytes: the foreign write went unseen");
}
