// SPDX-License-Identifier: MIT
/*
 * Damage to a closed or crashed store is never served as data: a truncated
 * block file (to 0, to half, to one block), a bit flip in it, index rows
 * edited to point elsewhere or stripped of their checksums, and a deleted
 * WAL after a crash. Each snapshot then reads its exact bytes or fails with
 * EIO, and store_check reports the damage. Also: an index of schema 1 is
 * upgraded and its old snapshots stay readable.
 */
#include "fixture.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>

TestSuite(damage, .init = fx_setup, .fini = fx_teardown, .timeout = 60);

#define NB  16 /* blocks per file */
#define FSZ (NB * 4096)

static char orig[2][FSZ];

static void quiet(int level, const char *msg)
{
	(void)level, (void)msg;
}

/* Two files a and b, each pinned in its own snapshot and then wholly
 * overwritten through the hooks: a's old blocks first in the block file,
 * then b's. The store is closed. Snapshot ids 1 (a) and 2 (b), fids 1, 2. */
static void two_preserved_files(void)
{
	static const char *const names[2] = {"a", "b"};
	char nbuf[FSZ];
	for (int i = 0; i < 2; i++) {
		int fd = fx_file(names[i]);
		struct store_file *sf;
		cr_assert_eq(store_file_get(fx_st, fd, &sf), 0);
		tu_fill(orig[i], FSZ, 10 + 2 * (uint64_t)i); /* tu_fill ignores bit 0 */
		fx_pwrite(fd, orig[i], FSZ, 0);
		fx_pin1(sf, fd, names[i], STORE_PINNED);
		tu_fill(nbuf, FSZ, 20 + 2 * (uint64_t)i);
		cr_assert_eq(fx_cow_write(sf, fd, nbuf, FSZ, 0), 0);
		store_file_put(sf);
		close(fd);
	}
	store_close(fx_st);
	fx_st = NULL;
}

static int problems;
static int count_cb(void *arg, const char *p)
{
	(void)arg;
	fprintf(stderr, "check: %s\n", p);
	problems++;
	return 0;
}

/* Snapshot id of file k reads its exact bytes, or fails with EIO: 1 / 0. */
static int reads_right_or_eio(uint64_t id, uint64_t fid, int k)
{
	static char got[FSZ + 4096];
	struct store_snap s;
	int rc = store_snap_get(fx_st, id, &s);
	if (rc == -ENOENT)
		return 0; /* gone: not "right" either */
	cr_assert_eq(rc, 0);
	/* Whole, and in pieces that start and end inside blocks. */
	ssize_t n = store_snap_read(fx_st, id, fid, got, sizeof(got), 0);
	if (n == -EIO)
		return 0;
	cr_assert_eq(n, FSZ, "snapshot %lu: read %zd", (unsigned long)id, n);
	cr_assert(!memcmp(got, orig[k], FSZ), "snapshot %lu: WRONG BYTES served",
		  (unsigned long)id);
	for (uint64_t off = 100; off < FSZ; off += 5000) {
		n = store_snap_read(fx_st, id, fid, got, 3000, off);
		if (n == -EIO)
			return 0;
		cr_assert(n > 0 && !memcmp(got, orig[k] + off, (size_t)n),
			  "snapshot %lu: wrong bytes at %lu", (unsigned long)id,
			  (unsigned long)off);
	}
	return 1;
}

static void blocks_path(char *p, size_t len)
{
	tu_path(p, len, fx_dir, "blocks");
}

static void truncate_blocks_and_reopen(off_t size)
{
	two_preserved_files();
	char p[600];
	blocks_path(p, sizeof(p));
	cr_assert_eq(truncate(p, size), 0);
	store_set_logger(quiet);
	fx_open_bs(0, 0);
	int a = reads_right_or_eio(1, 1, 0), b = reads_right_or_eio(2, 2, 1);
	problems = 0;
	int n = store_check(fx_st, count_cb, NULL);
	cr_assert_gt(n, 0, "store_check is clean after the block file was truncated to %ld",
		     (long)size);
	/* What lies wholly below the cut stays readable. */
	if (size >= FSZ)
		cr_assert(a, "snapshot 1 (blocks below the cut) became unreadable");
	(void)b;
	/* Releasing the damaged snapshots cleans the store. */
	cr_assert_eq(store_release(fx_st, 1), 0);
	cr_assert_eq(store_release(fx_st, 2), 0);
	fx_check();
}

Test(damage, block_file_truncated_to_zero_is_never_read_as_zeros)
{
	truncate_blocks_and_reopen(0);
}

Test(damage, block_file_truncated_to_half_is_never_read_as_zeros)
{
	truncate_blocks_and_reopen(FSZ); /* a's blocks stay, b's go */
}

Test(damage, block_file_truncated_to_one_block_is_never_read_as_zeros)
{
	truncate_blocks_and_reopen(4096);
}

Test(damage, bit_flip_in_the_block_file_is_eio_and_found_by_check)
{
	two_preserved_files();
	char p[600];
	blocks_path(p, sizeof(p));
	int fd = open(p, O_RDWR);
	cr_assert(fd >= 0);
	unsigned char c;
	off_t at = FSZ + 3 * 4096 + 123; /* inside b's preserved block 3 */
	cr_assert_eq(pread(fd, &c, 1, at), 1);
	c ^= 0x10;
	cr_assert_eq(pwrite(fd, &c, 1, at), 1);
	close(fd);
	store_set_logger(quiet);
	fx_open_bs(0, 0);
	cr_assert(reads_right_or_eio(1, 1, 0), "snapshot 1 untouched but unreadable");
	cr_assert_not(reads_right_or_eio(2, 2, 1), "a flipped bit went unnoticed");
	char buf[10];
	cr_assert_eq(store_snap_read(fx_st, 2, 2, buf, sizeof(buf), 3 * 4096 + 120), -EIO);
	cr_assert_eq(store_snap_read(fx_st, 2, 2, buf, sizeof(buf), 2 * 4096), 10,
		     "the neighbouring block must stay readable");
	problems = 0;
	cr_assert_gt(store_check(fx_st, count_cb, NULL), 0, "check missed a flipped bit");
}

static void index_sql(const char *sql)
{
	char p[600];
	tu_path(p, sizeof(p), fx_dir, "index.db");
	sqlite3 *db;
	cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
	char *err = NULL;
	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &err), SQLITE_OK, "%s: %s", sql,
		     err ? err : "");
	sqlite3_close(db);
}

Test(damage, index_row_pointing_at_other_bytes_is_eio_and_found_by_check)
{
	two_preserved_files();
	/* a's extent now points at b's preserved blocks and the other way round. */
	index_sql("UPDATE extents SET loc = CASE fid WHEN 1 THEN 65536 ELSE 0 END");
	store_set_logger(quiet);
	fx_open_bs(0, 0);
	cr_assert_not(reads_right_or_eio(1, 1, 0), "snapshot 1 read b's bytes as its own");
	cr_assert_not(reads_right_or_eio(2, 2, 1), "snapshot 2 read a's bytes as its own");
	problems = 0;
	cr_assert_gt(store_check(fx_st, count_cb, NULL), 0, "check missed the edited rows");
}

Test(damage, index_row_with_other_epochs_or_no_checksums_is_eio)
{
	two_preserved_files();
	index_sql("UPDATE extents SET eto = eto + 1 WHERE fid = 1;"
		  "UPDATE extents SET sums = NULL WHERE fid = 2");
	store_set_logger(quiet);
	fx_open_bs(0, 0);
	cr_assert_not(reads_right_or_eio(2, 2, 1), "an extent stripped of checksums was read");
	problems = 0;
	cr_assert_gt(store_check(fx_st, count_cb, NULL), 1, "check missed the edited rows");
}

Test(damage, schema_1_index_is_upgraded_and_its_snapshots_stay_readable)
{
	two_preserved_files();
	index_sql("ALTER TABLE extents DROP COLUMN sums; DELETE FROM meta WHERE key = 'sums';"
		  "PRAGMA user_version = 1");
	fx_open_bs(0, 0);
	cr_assert(reads_right_or_eio(1, 1, 0));
	cr_assert(reads_right_or_eio(2, 2, 1));
	fx_check();
	/* New copies carry checksums. */
	fx_reopen();
	cr_assert(reads_right_or_eio(1, 1, 0));
}

/* A child pins n snapshots of f, each after a write through the hooks, and is
 * killed: everything it did is in the WAL only. */
static void crashed_with_snapshots(int n)
{
	store_close(fx_st);
	fx_st = NULL;
	int fd = fx_file("f");
	tu_fill(orig[0], FSZ, 5);
	fx_pwrite(fd, orig[0], FSZ, 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		struct store_opts o = {0};
		struct store *st;
		struct store_file *sf;
		char buf[4096];
		if (store_open(fx_dir, fx_srcfd, &o, &st) || store_file_get(st, fd, &sf))
			_exit(1);
		for (int i = 0; i < n; i++) {
			struct store_pin p = {.kind = STORE_PINNED};
			struct store_pin_file f = {.sf = sf, .fd = fd, .path = "f"};
			uint64_t id;
			memset(buf, 'a' + i, sizeof(buf));
			store_file_wrlock(sf);
			int rc = store_cow_range(sf, fd, (uint64_t)i * 4096, sizeof(buf));
			if (!rc && pwrite(fd, buf, sizeof(buf), (off_t)i * 4096) != sizeof(buf))
				rc = -EIO;
			store_file_unlock(sf);
			if (rc || store_pin(st, &p, &f, 1, &id))
				_exit(1);
		}
		raise(SIGKILL);
	}
	int status;
	waitpid(pid, &status, 0);
	cr_assert(WIFSIGNALED(status), "child failed: %#x", status);
	close(fd);
}

static int count_snaps(void *arg, const struct store_snap *s)
{
	(void)s;
	++*(int *)arg;
	return 0;
}

Test(damage, deleted_wal_after_a_crash_is_detected_not_silent)
{
	crashed_with_snapshots(6);
	char p[600];
	tu_path(p, sizeof(p), fx_dir, "index.db-wal");
	struct stat sb;
	cr_assert_eq(stat(p, &sb), 0, "the crashed store has no WAL to delete");
	cr_assert_eq(unlink(p), 0);
	tu_path(p, sizeof(p), fx_dir, "index.db-shm");
	unlink(p);
	store_set_logger(quiet);
	struct store_opts o = {0};
	int rc = store_open(fx_dir, fx_srcfd, &o, &fx_st);
	if (rc)
		return; /* refusing is fine */
	int n = 0;
	cr_assert_eq(store_snap_list(fx_st, count_snaps, &n), 0);
	problems = 0;
	int k = store_check(fx_st, count_cb, NULL);
	cr_assert_gt(k, 0, "6 snapshots lost (%d listed) and check is clean", n);
}

Test(damage, wal_kept_after_a_crash_loses_nothing)
{
	crashed_with_snapshots(6);
	fx_open_bs(0, 0);
	int n = 0;
	cr_assert_eq(store_snap_list(fx_st, count_snaps, &n), 0);
	cr_assert_eq(n, 6);
	fx_check();
}
