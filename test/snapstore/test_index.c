// SPDX-License-Identifier: MIT
/*
 * Unit tests of the extent index (extidx.c) through extidx_i.h: schema and
 * version checks, meta, file, snapshot and snap_files rows, extents and the
 * range queries the copy-on-write rule and snapshot reads use (checked
 * against a brute-force filter on random rows), transactions, mapping of
 * SQLite errors to -errno, and the keep-path VFS that leaves /proc/self/fd/N
 * paths as given.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "extidx_i.h"
#include "store_i.h"
#include "snapstore.h"
#include "testutil.h"

static char *t_root;
static char t_db[512];
static struct extidx *t_x;

static void quiet(int level, const char *msg)
{
	(void)level;
	(void)msg;
}

static void t_setup(void)
{
	t_root = tu_tmpdir("index");
	tu_path(t_db, sizeof(t_db), t_root, "index.db");
	uint32_t bs = 4096;
	int rc = extidx_open(t_db, 1, &bs, store_logf, &t_x);
	cr_assert_eq(rc, 0, "extidx_open(create): %d", rc);
}

static void t_teardown(void)
{
	extidx_close(t_x);
	t_x = NULL;
	store_set_logger(NULL);
	tu_rm_rf(t_root);
	free(t_root);
	t_root = NULL;
}

TestSuite(index, .init = t_setup, .fini = t_teardown, .timeout = 30);

static void reopen(void)
{
	extidx_close(t_x);
	t_x = NULL;
	uint32_t bs = 0;
	int rc = extidx_open(t_db, 0, &bs, store_logf, &t_x);
	cr_assert_eq(rc, 0, "extidx_open: %d", rc);
	cr_assert_eq(bs, 4096);
}

/* One integer from SQL on a separate, plain connection. */
static int64_t sql_int(const char *path, const char *sql)
{
	sqlite3 *db;
	cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
	cr_assert_eq(sqlite3_step(s), SQLITE_ROW, "%s: no row", sql);
	int64_t v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static void sql_exec(const char *path, const char *sql)
{
	sqlite3 *db;
	cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
		     SQLITE_OK);
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
	sqlite3_close(db);
}

static int64_t meta(const char *key)
{
	int64_t v = -12345;
	int rc = extidx_meta_get(t_x, key, &v);
	cr_assert_eq(rc, 0, "meta %s: %d", key, rc);
	return v;
}

/* ---- schema and opening ---- */

Test(index, create_writes_schema_version_application_id_and_wal)
{
	extidx_close(t_x);
	t_x = NULL;
	int64_t v = sql_int(t_db, "PRAGMA user_version");
	cr_assert_eq(v, EXTIDX_SCHEMA_VERSION, "user_version %" PRId64 ", want %d", v,
		     EXTIDX_SCHEMA_VERSION);
	int64_t app = sql_int(t_db, "PRAGMA application_id");
	cr_assert_eq(app, EXTIDX_APP_ID, "application_id %#" PRIx64 ", want %#x", app,
		     EXTIDX_APP_ID);
	int64_t tables = sql_int(t_db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
				       "AND name IN ('meta', 'files', 'snapshots', 'snap_files', "
				       "'extents')");
	cr_assert_eq(tables, 5, "%" PRId64 " of the 5 tables", tables);
	sqlite3 *db;
	cr_assert_eq(sqlite3_open_v2(t_db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_stmt *s;
	cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
	cr_assert_str_eq((const char *)sqlite3_column_text(s, 0), "wal");
	sqlite3_finalize(s);
	sqlite3_close(db);
	reopen();
	cr_assert_eq(meta("block_size"), 4096);
	cr_assert_eq(meta("epoch"), 1);
	cr_assert_eq(meta("clean"), 1);
	cr_assert_eq(meta("alive_until"), 0);
}

Test(index, reopen_reports_the_block_size_and_rejects_another)
{
	extidx_close(t_x);
	t_x = NULL;
	uint32_t bs = 0;
	cr_assert_eq(extidx_open(t_db, 0, &bs, store_logf, &t_x), 0);
	cr_assert_eq(bs, 4096, "block size %u, want 4096", bs);
	extidx_close(t_x);
	t_x = NULL;
	bs = 4096;
	cr_assert_eq(extidx_open(t_db, 0, &bs, store_logf, &t_x), 0);
	extidx_close(t_x);
	t_x = NULL;
	store_set_logger(quiet);
	bs = 8192;
	int rc = extidx_open(t_db, 0, &bs, store_logf, &t_x);
	cr_assert_eq(rc, -EINVAL, "open with another block size: %d, want -EINVAL", rc);
	cr_assert_null(t_x);
}

Test(index, newer_schema_version_is_eproto)
{
	extidx_close(t_x);
	t_x = NULL;
	sql_exec(t_db, "PRAGMA user_version = 4");
	store_set_logger(quiet);
	uint32_t bs = 0;
	int rc = extidx_open(t_db, 0, &bs, store_logf, &t_x);
	cr_assert_eq(rc, -EPROTO, "newer schema: %d, want -EPROTO", rc);
}

Test(index, missing_schema_version_is_eio)
{
	extidx_close(t_x);
	t_x = NULL;
	sql_exec(t_db, "PRAGMA user_version = 0");
	store_set_logger(quiet);
	uint32_t bs = 0;
	int rc = extidx_open(t_db, 0, &bs, store_logf, &t_x);
	cr_assert_eq(rc, -EIO, "version 0: %d, want -EIO", rc);
}

Test(index, bad_block_size_in_index_is_eio)
{
	cr_assert_eq(extidx_meta_set(t_x, "block_size", 1000), 0);
	extidx_close(t_x);
	t_x = NULL;
	store_set_logger(quiet);
	uint32_t bs = 0;
	int rc = extidx_open(t_db, 0, &bs, store_logf, &t_x);
	cr_assert_eq(rc, -EIO, "block size 1000: %d, want -EIO", rc);
}

/* ---- meta ---- */

Test(index, meta_set_then_get_round_trips_and_survives_reopen)
{
	cr_assert_eq(extidx_meta_set(t_x, "k", 7), 0);
	cr_assert_eq(meta("k"), 7);
	cr_assert_eq(extidx_meta_set(t_x, "k", -1), 0); /* replaces */
	cr_assert_eq(meta("k"), -1);
	cr_assert_eq(extidx_meta_set(t_x, "big", INT64_MAX), 0);
	cr_assert_eq(extidx_meta_set(t_x, "small", INT64_MIN), 0);
	reopen();
	cr_assert_eq(meta("k"), -1);
	cr_assert_eq(meta("big"), INT64_MAX);
	cr_assert_eq(meta("small"), INT64_MIN);
}

Test(index, meta_get_of_missing_key_is_enoent_and_leaves_value)
{
	int64_t v = 99;
	int rc = extidx_meta_get(t_x, "nope", &v);
	cr_assert_eq(rc, -ENOENT, "missing key: %d, want -ENOENT", rc);
	cr_assert_eq(v, 99);
}

/* ---- files ---- */

static uint64_t add_file(const char *h, uint64_t ino)
{
	struct extidx_file f = {.hlen = (uint32_t)strlen(h), .ino = ino, .size = ino * 10};
	memcpy(f.handle, h, f.hlen);
	f.mtime_ns = (int64_t)ino * 100;
	f.ctime_ns = (int64_t)ino * 1000;
	uint64_t fid = 0;
	int rc = extidx_file_insert(t_x, &f, &fid);
	cr_assert_eq(rc, 0, "file insert %s: %d", h, rc);
	cr_assert(fid > 0);
	return fid;
}

static int by_handle(const char *h, uint32_t hlen, uint64_t *fid, int *state)
{
	return extidx_file_by_handle(t_x, (const unsigned char *)h, hlen, fid, state);
}

Test(index, file_insert_then_lookup_by_handle)
{
	uint64_t a = add_file("handle-a", 1), b = add_file("handle-b", 2);
	cr_assert_neq(a, b);
	uint64_t fid = 0;
	int state = -1;
	cr_assert_eq(by_handle("handle-b", 8, &fid, &state), 0);
	cr_assert_eq(fid, b, "fid %" PRIu64 ", want %" PRIu64, fid, b);
	cr_assert_eq(state, 0);
	int rc = by_handle("handle-c", 8, &fid, &state);
	cr_assert_eq(rc, -ENOENT, "unknown handle: %d", rc);
	rc = by_handle("handle-a", 7, &fid, &state); /* a prefix is another handle */
	cr_assert_eq(rc, -ENOENT, "handle prefix: %d", rc);
}

Test(index, file_handles_are_binary_and_full_length)
{
	struct extidx_file f = {.hlen = sizeof(f.handle)};
	for (size_t i = 0; i < sizeof(f.handle); i++)
		f.handle[i] = (unsigned char)(i * 7); /* includes NUL bytes */
	uint64_t fid;
	cr_assert_eq(extidx_file_insert(t_x, &f, &fid), 0);
	uint64_t got;
	int state;
	cr_assert_eq(extidx_file_by_handle(t_x, f.handle, f.hlen, &got, &state), 0);
	cr_assert_eq(got, fid);
	struct extidx_file *all;
	size_t n;
	cr_assert_eq(extidx_files_all(t_x, &all, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(all[0].hlen, sizeof(f.handle));
	cr_assert_arr_eq(all[0].handle, f.handle, sizeof(f.handle));
	free(all);
}

Test(index, duplicate_handle_is_eexist)
{
	add_file("same", 1);
	struct extidx_file f = {.hlen = 4};
	memcpy(f.handle, "same", 4);
	uint64_t fid;
	int rc = extidx_file_insert(t_x, &f, &fid);
	cr_assert_eq(rc, -EEXIST, "duplicate handle: %d, want -EEXIST", rc);
}

Test(index, file_set_state_and_stat_show_in_files_all)
{
	uint64_t a = add_file("a", 1), b = add_file("b", 2);
	cr_assert_eq(extidx_file_set_state(t_x, b, 1), 0);
	cr_assert_eq(extidx_file_set_stat(t_x, a, 77, 1ull << 40, -5, INT64_MAX), 0);
	uint64_t fid;
	int state = -1;
	cr_assert_eq(by_handle("b", 1, &fid, &state), 0);
	cr_assert_eq(state, 1, "state %d, want 1", state);
	struct extidx_file *all;
	size_t n;
	cr_assert_eq(extidx_files_all(t_x, &all, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(all[0].fid, a);
	cr_assert_eq(all[0].ino, 77);
	cr_assert_eq(all[0].size, 1ull << 40);
	cr_assert_eq(all[0].mtime_ns, -5);
	cr_assert_eq(all[0].ctime_ns, INT64_MAX);
	cr_assert_eq(all[0].state, 0);
	cr_assert_eq(all[1].fid, b);
	cr_assert_eq(all[1].ino, 2);
	cr_assert_eq(all[1].size, 20);
	cr_assert_eq(all[1].mtime_ns, 200);
	cr_assert_eq(all[1].ctime_ns, 2000);
	cr_assert_eq(all[1].state, 1);
	free(all);
}

Test(index, file_delete_removes_only_that_row)
{
	uint64_t a = add_file("a", 1), b = add_file("b", 2);
	cr_assert_eq(extidx_file_delete(t_x, a), 0);
	uint64_t fid;
	int state;
	cr_assert_eq(by_handle("a", 1, &fid, &state), -ENOENT);
	cr_assert_eq(by_handle("b", 1, &fid, &state), 0);
	cr_assert_eq(fid, b);
	struct extidx_file *all;
	size_t n;
	cr_assert_eq(extidx_files_all(t_x, &all, &n), 0);
	cr_assert_eq(n, 1, "%zu rows left, want 1", n);
	free(all);
	cr_assert_eq(extidx_file_delete(t_x, 12345), 0); /* no row: nothing to do */
}

/* ---- snapshots and snap_files ---- */

static uint64_t add_snap(uint64_t epoch, const char *label)
{
	struct extidx_snap s = {
	    .epoch = epoch, .created = 111, .expires = -1, .uid = 1000, .kind = 2};
	strlcpy(s.label, label, sizeof(s.label));
	uint64_t id = 0;
	int rc = extidx_snap_insert(t_x, &s, &id);
	cr_assert_eq(rc, 0, "snap insert: %d", rc);
	return id;
}

Test(index, snapshot_insert_get_round_trips_every_field)
{
	char label[257];
	memset(label, 'L', 256);
	label[256] = 0;
	uint64_t id = add_snap(9, label);
	struct extidx_snap g;
	cr_assert_eq(extidx_snap_get(t_x, id, &g), 0);
	cr_assert_eq(g.id, id);
	cr_assert_eq(g.epoch, 9);
	cr_assert_eq(g.created, 111);
	cr_assert_eq(g.expires, -1);
	cr_assert_eq(g.uid, 1000);
	cr_assert_eq(g.kind, 2);
	cr_assert_eq(g.state, 0);
	cr_assert_str_eq(g.label, label);
	cr_assert_eq(extidx_snap_set_state(t_x, id, 3), 0);
	cr_assert_eq(extidx_snap_get(t_x, id, &g), 0);
	cr_assert_eq(g.state, 3, "state %d, want 3", g.state);
	int rc = extidx_snap_get(t_x, id + 1, &g);
	cr_assert_eq(rc, -ENOENT, "missing snapshot: %d", rc);
}

Test(index, snapshot_ids_increase_and_are_never_reused)
{
	uint64_t a = add_snap(1, "a"), b = add_snap(2, "b");
	cr_assert(b > a);
	cr_assert_eq(extidx_snap_delete(t_x, b), 0);
	uint64_t c = add_snap(3, "c");
	cr_assert(c > b, "id %" PRIu64 " reused after deleting %" PRIu64, c, b);
	struct extidx_snap *all;
	size_t n;
	cr_assert_eq(extidx_snaps_all(t_x, &all, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(all[0].id, a);
	cr_assert_str_eq(all[0].label, "a");
	cr_assert_eq(all[1].id, c);
	cr_assert_str_eq(all[1].label, "c");
	free(all);
}

static void add_sfile(uint64_t snap, const char *path, uint64_t fid)
{
	struct extidx_sfile f = {.snap = snap,
				 .fid = fid,
				 .path = (char *)path,
				 .size = 4096 * fid,
				 .ino = 100 + fid,
				 .mode = 0100644,
				 .uid = 1,
				 .gid = 2,
				 .atime_ns = 3,
				 .mtime_ns = 4,
				 .ctime_ns = -5};
	int rc = extidx_sfile_insert(t_x, &f);
	cr_assert_eq(rc, 0, "sfile insert %s: %d", path, rc);
}

Test(index, snap_files_list_by_snapshot_in_path_order)
{
	uint64_t s1 = add_snap(1, "one"), s2 = add_snap(2, "two");
	add_sfile(s1, "z/file", 1);
	add_sfile(s1, "a", 2);
	add_sfile(s2, "m", 1);
	struct extidx_sfile *a;
	size_t n;
	cr_assert_eq(extidx_sfiles(t_x, s1, &a, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(a[0].path, "a");
	cr_assert_eq(a[0].fid, 2);
	cr_assert_str_eq(a[1].path, "z/file");
	cr_assert_eq(a[1].snap, s1);
	cr_assert_eq(a[1].size, 4096);
	cr_assert_eq(a[1].ino, 101);
	cr_assert_eq(a[1].mode, 0100644);
	cr_assert_eq(a[1].uid, 1);
	cr_assert_eq(a[1].gid, 2);
	cr_assert_eq(a[1].atime_ns, 3);
	cr_assert_eq(a[1].mtime_ns, 4);
	cr_assert_eq(a[1].ctime_ns, -5);
	extidx_sfiles_free(a, n);
	cr_assert_eq(extidx_sfiles(t_x, 0, &a, &n), 0); /* every snapshot, by (snap, path) */
	cr_assert_eq(n, 3);
	cr_assert(a[0].snap == s1 && !strcmp(a[0].path, "a"));
	cr_assert(a[1].snap == s1 && !strcmp(a[1].path, "z/file"));
	cr_assert(a[2].snap == s2 && !strcmp(a[2].path, "m"));
	extidx_sfiles_free(a, n);
	uint64_t cnt = 0;
	cr_assert_eq(extidx_sfile_count(t_x, s1, &cnt), 0);
	cr_assert_eq(cnt, 2);
	cr_assert_eq(extidx_sfile_fid_refs(t_x, 1, &cnt), 0);
	cr_assert_eq(cnt, 2, "fid 1 named by %" PRIu64 " rows, want 2", cnt);
	cr_assert_eq(extidx_sfile_fid_refs(t_x, 3, &cnt), 0);
	cr_assert_eq(cnt, 0);
}

Test(index, snap_file_by_path_fills_row_and_checks_buffer)
{
	uint64_t s = add_snap(1, "s");
	add_sfile(s, "dir/name", 4);
	struct extidx_sfile f;
	char buf[64];
	cr_assert_eq(extidx_sfile_by_path(t_x, s, "dir/name", &f, buf, sizeof(buf)), 0);
	cr_assert_eq(f.fid, 4);
	cr_assert_eq(f.path, buf);
	cr_assert_str_eq(buf, "dir/name");
	int rc = extidx_sfile_by_path(t_x, s, "dir/name", &f, buf, 4);
	cr_assert_eq(rc, -ENAMETOOLONG, "short buffer: %d", rc);
	rc = extidx_sfile_by_path(t_x, s, "dir/other", &f, buf, sizeof(buf));
	cr_assert_eq(rc, -ENOENT, "missing path: %d", rc);
	rc = extidx_sfile_by_path(t_x, s + 1, "dir/name", &f, buf, sizeof(buf));
	cr_assert_eq(rc, -ENOENT, "other snapshot: %d", rc);
}

Test(index, duplicate_snap_file_path_is_eexist)
{
	uint64_t s = add_snap(1, "s");
	add_sfile(s, "p", 1);
	struct extidx_sfile f = {.snap = s, .fid = 2, .path = "p"};
	int rc = extidx_sfile_insert(t_x, &f);
	cr_assert_eq(rc, -EEXIST, "duplicate (snap, path): %d", rc);
}

Test(index, snapshot_delete_removes_its_snap_files_only)
{
	uint64_t s1 = add_snap(1, "one"), s2 = add_snap(2, "two");
	add_sfile(s1, "a", 1);
	add_sfile(s1, "b", 1);
	add_sfile(s2, "a", 1);
	cr_assert_eq(extidx_snap_delete(t_x, s1), 0);
	struct extidx_snap g;
	cr_assert_eq(extidx_snap_get(t_x, s1, &g), -ENOENT);
	uint64_t cnt = 9;
	cr_assert_eq(extidx_sfile_count(t_x, s1, &cnt), 0);
	cr_assert_eq(cnt, 0, "%" PRIu64 " snap_files rows of the deleted snapshot", cnt);
	cr_assert_eq(extidx_sfile_count(t_x, s2, &cnt), 0);
	cr_assert_eq(cnt, 1);
	cr_assert_eq(extidx_sfile_fid_refs(t_x, 1, &cnt), 0);
	cr_assert_eq(cnt, 1);
}

/* ---- extents ---- */

static void add_ext(uint64_t fid, uint64_t blk, uint32_t nblk, uint64_t efrom, uint64_t eto,
		    int64_t loc)
{
	struct ext e = {
	    .fid = fid, .blk = blk, .nblk = nblk, .efrom = efrom, .eto = eto, .loc = loc};
	int rc = extidx_ext_insert(t_x, &e, NULL);
	cr_assert_eq(rc, 0, "ext insert %" PRIu64 "/%" PRIu64 "/%" PRIu64 ": %d", fid, blk, efrom,
		     rc);
}

struct exts {
	struct ext *a;
	size_t n, cap;
};

static void exts_free(struct exts *e)
{
	free(e->a);
	*e = (struct exts){0};
}

static struct exts range(uint64_t fid, uint64_t b0, uint64_t b1, uint64_t at, uint32_t maxn)
{
	struct exts e = {0};
	int rc = extidx_ext_range(t_x, fid, b0, b1, at, maxn, &e.a, &e.n, &e.cap);
	cr_assert_eq(rc, 0, "ext_range: %d", rc);
	return e;
}

/* The blk of each result, in order, must be exactly want[]. */
static void expect_blks(struct exts *e, const uint64_t *want, size_t nwant, const char *what)
{
	cr_assert_eq(e->n, nwant, "%s: %zu extents, want %zu", what, e->n, nwant);
	for (size_t i = 0; i < nwant; i++)
		cr_assert_eq(e->a[i].blk, want[i],
			     "%s: extent %zu at blk %" PRIu64 ", want %" PRIu64, what, i,
			     e->a[i].blk, want[i]);
	exts_free(e);
}

Test(index, ext_insert_round_trips_location_and_hole)
{
	add_ext(1, 0, 4, 1, 3, 0);     /* at offset 0: not a hole */
	add_ext(1, 4, 2, 1, 5, -1);    /* a hole */
	add_ext(1, 6, 1, 2, 3, 81920); /* somewhere */
	struct exts e = range(1, 0, 100, UINT64_MAX, 4);
	cr_assert_eq(e.n, 3);
	cr_assert(e.a[0].fid == 1 && e.a[0].blk == 0 && e.a[0].nblk == 4 && e.a[0].efrom == 1 &&
		      e.a[0].eto == 3,
		  "first extent fields differ");
	cr_assert_eq(e.a[0].loc, 0, "loc %" PRId64 ", want 0", e.a[0].loc);
	cr_assert_eq(e.a[1].loc, -1, "hole loc %" PRId64 ", want -1", e.a[1].loc);
	cr_assert_eq(e.a[2].loc, 81920);
	exts_free(&e);
	uint64_t count = 0, data = 0;
	cr_assert_eq(extidx_ext_stats(t_x, &count, &data), 0);
	cr_assert_eq(count, 3);
	cr_assert_eq(data, 5, "data blocks %" PRIu64 ", want 5 (holes excluded)", data);
}

Test(index, duplicate_extent_key_is_eexist)
{
	add_ext(1, 0, 1, 1, 2, 0);
	struct ext e = {.fid = 1, .blk = 0, .nblk = 2, .efrom = 1, .eto = 3, .loc = 4096};
	int rc = extidx_ext_insert(t_x, &e, NULL);
	cr_assert_eq(rc, -EEXIST, "duplicate (fid, blk, efrom): %d", rc);
}

Test(index, ext_range_returns_extents_overlapping_the_block_range)
{
	add_ext(1, 0, 4, 1, 3, 0);     /* [0, 4) */
	add_ext(1, 4, 2, 1, 5, -1);    /* [4, 6) */
	add_ext(1, 10, 1, 2, 3, 4096); /* [10, 11) */
	add_ext(1, 10, 3, 3, 7, 8192); /* [10, 13), later epochs */
	add_ext(2, 5, 1, 1, 9, 0);     /* another file */
	struct exts e;
	e = range(1, 3, 4, UINT64_MAX, 4);
	expect_blks(&e, (uint64_t[]){0}, 1, "[3, 4)");
	e = range(1, 4, 5, UINT64_MAX, 4);
	expect_blks(&e, (uint64_t[]){4}, 1, "[4, 5)");
	e = range(1, 6, 10, UINT64_MAX, 4);
	expect_blks(&e, NULL, 0, "[6, 10): between extents");
	e = range(1, 3, 5, UINT64_MAX, 4);
	expect_blks(&e, (uint64_t[]){0, 4}, 2, "[3, 5)");
	e = range(1, 12, 20, UINT64_MAX, 4);
	expect_blks(&e, (uint64_t[]){10}, 1, "[12, 20): tail of the longer extent");
	e = range(1, 0, 100, UINT64_MAX, 4);
	expect_blks(&e, (uint64_t[]){0, 4, 10, 10}, 4, "everything");
	e = range(2, 0, 100, UINT64_MAX, 1);
	expect_blks(&e, (uint64_t[]){5}, 1, "fid 2");
}

Test(index, ext_range_at_epoch_keeps_extents_covering_it)
{
	add_ext(1, 0, 4, 1, 3, 0);     /* epochs [1, 3) */
	add_ext(1, 4, 2, 1, 5, -1);    /* [1, 5) */
	add_ext(1, 10, 1, 2, 3, 4096); /* [2, 3) */
	add_ext(1, 10, 3, 3, 7, 8192); /* [3, 7) */
	struct exts e;
	e = range(1, 0, 100, 1, 4);
	expect_blks(&e, (uint64_t[]){0, 4}, 2, "at 1 (efrom included)");
	e = range(1, 0, 100, 3, 4);
	expect_blks(&e, (uint64_t[]){4, 10}, 2, "at 3 (eto excluded)");
	cr_assert_eq(range(1, 0, 100, 3, 4).a[1].efrom, 3);
	e = range(1, 0, 100, 7, 4);
	expect_blks(&e, NULL, 0, "at 7");
	/* The same through ext_fid. */
	struct exts f = {0};
	cr_assert_eq(extidx_ext_fid(t_x, 1, 2, &f.a, &f.n, &f.cap), 0);
	expect_blks(&f, (uint64_t[]){0, 4, 10}, 3, "ext_fid at 2");
	cr_assert_eq(extidx_ext_fid(t_x, 1, UINT64_MAX, &f.a, &f.n, &f.cap), 0);
	expect_blks(&f, (uint64_t[]){0, 4, 10, 10}, 4, "ext_fid all");
}

Test(index, ext_range_appends_to_the_callers_array)
{
	add_ext(1, 0, 1, 1, 2, 0);
	add_ext(1, 5, 1, 1, 2, 4096);
	struct exts e = {0};
	cr_assert_eq(extidx_ext_range(t_x, 1, 0, 1, UINT64_MAX, 1, &e.a, &e.n, &e.cap), 0);
	cr_assert_eq(extidx_ext_range(t_x, 1, 5, 6, UINT64_MAX, 1, &e.a, &e.n, &e.cap), 0);
	expect_blks(&e, (uint64_t[]){0, 5}, 2, "two calls");
}

/* Brute force over random rows: what ext_range must return. */
Test(index, ext_range_matches_brute_force_on_random_rows)
{
	enum { N = 400 };
	static struct ext rows[N];
	uint32_t maxn[4] = {0};
	uint64_t rs = 7;
	size_t nr = 0;
	cr_assert_eq(extidx_begin(t_x, 0), 0);
	while (nr < N) {
		struct ext e;
		e.fid = 1 + tu_rand(&rs) % 3;
		e.blk = tu_rand(&rs) % 600;
		e.efrom = 1 + tu_rand(&rs) % 20;
		e.eto = e.efrom + 1 + tu_rand(&rs) % 10;
		/* fid 3 has one extent of the maximal length */
		e.nblk = (uint32_t)(1 + tu_rand(&rs) % (e.fid == 1 ? 4 : 40));
		if (e.fid == 3 && nr == 0)
			e.nblk = EXTIDX_MAX_NBLK;
		e.loc = tu_rand(&rs) % 4 ? (int64_t)(tu_rand(&rs) % 1000) * 4096 : -1;
		int dup = 0;
		for (size_t i = 0; i < nr; i++)
			dup |= rows[i].fid == e.fid && rows[i].blk == e.blk &&
			       rows[i].efrom == e.efrom;
		if (dup)
			continue;
		rows[nr++] = e;
		if (e.nblk > maxn[e.fid])
			maxn[e.fid] = e.nblk;
		int rc = extidx_ext_insert(t_x, &e, NULL);
		cr_assert_eq(rc, 0, "insert: %d", rc);
	}
	cr_assert_eq(extidx_commit(t_x), 0);
	for (int q = 0; q < 600; q++) {
		uint64_t fid = 1 + tu_rand(&rs) % 3;
		uint64_t b0 = tu_rand(&rs) % 700, b1 = b0 + 1 + tu_rand(&rs) % 64;
		uint64_t at = tu_rand(&rs) % 3 ? 1 + tu_rand(&rs) % 32 : UINT64_MAX;
		struct exts e = range(fid, b0, b1, at, maxn[fid]);
		size_t want = 0;
		for (size_t i = 0; i < nr; i++) {
			const struct ext *r = &rows[i];
			if (r->fid != fid || r->blk >= b1 || r->blk + r->nblk <= b0)
				continue;
			if (at != UINT64_MAX && !(r->efrom <= at && at < r->eto))
				continue;
			want++;
			int found = 0;
			for (size_t j = 0; j < e.n && !found; j++)
				found = e.a[j].blk == r->blk && e.a[j].efrom == r->efrom &&
					e.a[j].nblk == r->nblk && e.a[j].eto == r->eto &&
					e.a[j].loc == r->loc;
			cr_assert(found,
				  "query %d fid %" PRIu64 " [%" PRIu64 ", %" PRIu64 ") at %" PRIu64
				  ": extent blk %" PRIu64 " nblk %u epochs [%" PRIu64 ", %" PRIu64
				  ") missing",
				  q, fid, b0, b1, at, r->blk, r->nblk, r->efrom, r->eto);
		}
		cr_assert_eq(e.n, want,
			     "query %d fid %" PRIu64 " [%" PRIu64 ", %" PRIu64 ") at %" PRIu64
			     ": %zu extents, want %zu",
			     q, fid, b0, b1, at, e.n, want);
		for (size_t j = 1; j < e.n; j++)
			cr_assert(e.a[j - 1].blk <= e.a[j].blk, "query %d: not sorted by blk", q);
		exts_free(&e);
	}
}

struct each_ctx {
	struct ext seen[16];
	size_t n, stop_after;
};

static int each_cb(void *arg, const struct ext *e)
{
	struct each_ctx *c = arg;
	c->seen[c->n++] = *e;
	return c->n == c->stop_after ? 42 : 0;
}

Test(index, ext_each_visits_in_key_order_and_stops_on_nonzero)
{
	add_ext(2, 0, 1, 1, 2, 0);
	add_ext(1, 5, 1, 2, 3, 4096);
	add_ext(1, 5, 1, 1, 2, 8192);
	add_ext(1, 0, 1, 1, 2, -1);
	struct each_ctx c = {.stop_after = 100};
	cr_assert_eq(extidx_ext_each(t_x, each_cb, &c), 0);
	cr_assert_eq(c.n, 4);
	uint64_t want[4][3] = {{1, 0, 1}, {1, 5, 1}, {1, 5, 2}, {2, 0, 1}};
	for (size_t i = 0; i < 4; i++)
		cr_assert(c.seen[i].fid == want[i][0] && c.seen[i].blk == want[i][1] &&
			      c.seen[i].efrom == want[i][2],
			  "row %zu is (%" PRIu64 ", %" PRIu64 ", %" PRIu64 ")", i, c.seen[i].fid,
			  c.seen[i].blk, c.seen[i].efrom);
	struct each_ctx s = {.stop_after = 2};
	int rc = extidx_ext_each(t_x, each_cb, &s);
	cr_assert_eq(rc, 42, "callback's stop value: %d", rc);
	cr_assert_eq(s.n, 2);
}

Test(index, ext_delete_removes_exactly_the_keyed_row)
{
	add_ext(1, 0, 1, 1, 2, 0);
	add_ext(1, 0, 1, 2, 3, 4096);
	add_ext(1, 1, 1, 1, 2, 8192);
	cr_assert_eq(extidx_ext_delete(t_x, 1, 0, 1), 0);
	struct exts e = {0};
	cr_assert_eq(extidx_ext_fid(t_x, 1, UINT64_MAX, &e.a, &e.n, &e.cap), 0);
	cr_assert_eq(e.n, 2);
	cr_assert(e.a[0].blk == 0 && e.a[0].efrom == 2, "left (%" PRIu64 ", %" PRIu64 ")",
		  e.a[0].blk, e.a[0].efrom);
	cr_assert(e.a[1].blk == 1 && e.a[1].efrom == 1);
	exts_free(&e);
	cr_assert_eq(extidx_ext_delete(t_x, 1, 0, 1), 0); /* already gone: no error */
	uint64_t count, data;
	cr_assert_eq(extidx_ext_stats(t_x, &count, &data), 0);
	cr_assert_eq(count, 2);
	cr_assert_eq(data, 2);
}

/* ---- transactions ---- */

Test(index, rollback_leaves_nothing)
{
	cr_assert_eq(extidx_begin(t_x, 0), 0);
	uint64_t fid = add_file("f", 1);
	uint64_t s = add_snap(2, "s");
	add_sfile(s, "p", fid);
	add_ext(fid, 0, 1, 1, 2, 0);
	cr_assert_eq(extidx_meta_set(t_x, "epoch", 2), 0);
	extidx_rollback(t_x);
	cr_assert_eq(meta("epoch"), 1);
	struct extidx_file *fa;
	struct extidx_snap *sa;
	struct extidx_sfile *sfa;
	size_t n;
	cr_assert_eq(extidx_files_all(t_x, &fa, &n), 0);
	cr_assert_eq(n, 0, "%zu file rows after rollback", n);
	free(fa);
	cr_assert_eq(extidx_snaps_all(t_x, &sa, &n), 0);
	cr_assert_eq(n, 0, "%zu snapshot rows after rollback", n);
	free(sa);
	cr_assert_eq(extidx_sfiles(t_x, 0, &sfa, &n), 0);
	cr_assert_eq(n, 0, "%zu snap_files rows after rollback", n);
	extidx_sfiles_free(sfa, n);
	uint64_t count, data;
	cr_assert_eq(extidx_ext_stats(t_x, &count, &data), 0);
	cr_assert_eq(count, 0, "%" PRIu64 " extents after rollback", count);
	reopen();
	cr_assert_eq(meta("epoch"), 1);
	cr_assert_eq(extidx_ext_stats(t_x, &count, &data), 0);
	cr_assert_eq(count, 0);
}

Test(index, commit_is_durable_across_reopen)
{
	cr_assert_eq(extidx_begin(t_x, 1), 0);
	uint64_t fid = add_file("f", 1);
	add_ext(fid, 3, 2, 1, 2, 4096);
	cr_assert_eq(extidx_meta_set(t_x, "epoch", 5), 0);
	cr_assert_eq(extidx_commit(t_x), 0);
	extidx_rollback(t_x); /* no transaction open: harmless */
	reopen();
	cr_assert_eq(meta("epoch"), 5);
	uint64_t got;
	int state;
	cr_assert_eq(by_handle("f", 1, &got, &state), 0);
	cr_assert_eq(got, fid);
	struct exts e = range(fid, 0, 10, UINT64_MAX, 2);
	expect_blks(&e, (uint64_t[]){3}, 1, "after reopen");
	cr_assert(extidx_db_bytes(t_x) > 0);
}

Test(index, begin_inside_a_transaction_fails_with_an_errno)
{
	store_set_logger(quiet);
	cr_assert_eq(extidx_begin(t_x, 0), 0);
	int rc = extidx_begin(t_x, 0);
	cr_assert(rc < 0 && rc > -4096, "nested begin: %d, want -errno", rc);
	cr_assert_eq(rc, -EIO, "nested begin: %d, want -EIO", rc);
	extidx_rollback(t_x);
	cr_assert_eq(extidx_begin(t_x, 0), 0); /* usable again */
	cr_assert_eq(extidx_commit(t_x), 0);
}

/* ---- error mapping on open ---- */

static int open_existing(const char *path)
{
	struct extidx *x = NULL;
	uint32_t bs = 0;
	store_set_logger(quiet);
	int rc = extidx_open(path, 0, &bs, store_logf, &x);
	extidx_close(x);
	return rc;
}

Test(index, non_database_file_is_eio_and_unchanged)
{
	char p[600], buf[8192], after[8192];
	tu_path(p, sizeof(p), t_root, "junk.db");
	tu_fill(buf, sizeof(buf), 3);
	cr_assert_eq(tu_write_file(p, buf, sizeof(buf)), 0);
	int rc = open_existing(p);
	cr_assert_eq(rc, -EIO, "non-database: %d, want -EIO", rc);
	cr_assert_eq(tu_read_file(p, after, sizeof(after)), (ssize_t)sizeof(after));
	cr_assert_arr_eq(after, buf, sizeof(buf));
}

Test(index, foreign_sqlite_database_is_eio)
{
	char p[600];
	tu_path(p, sizeof(p), t_root, "other.db");
	sql_exec(p, "CREATE TABLE t(x); INSERT INTO t VALUES (1)");
	int rc = open_existing(p);
	cr_assert_eq(rc, -EIO, "foreign database: %d, want -EIO", rc);
	cr_assert_eq(sql_int(p, "SELECT count(*) FROM t"), 1);
}

Test(index, empty_file_is_eio)
{
	char p[600];
	tu_path(p, sizeof(p), t_root, "empty.db");
	cr_assert_eq(tu_write_file(p, "", 0), 0);
	int rc = open_existing(p);
	cr_assert_eq(rc, -EIO, "empty file: %d, want -EIO", rc);
}

Test(index, missing_file_without_create_is_an_errno)
{
	char p[600];
	tu_path(p, sizeof(p), t_root, "absent.db");
	int rc = open_existing(p);
	cr_assert_eq(rc, -EIO, "missing file: %d, want -EIO", rc);
	cr_assert_eq(access(p, F_OK), -1, "open without create made the file");
}

/* Checkpoint everything into index.db and close, so its pages hold the data. */
static void close_checkpointed(void)
{
	extidx_close(t_x);
	t_x = NULL;
	sql_exec(t_db, "PRAGMA wal_checkpoint(TRUNCATE)");
}

Test(index, corrupt_page_is_eio)
{
	cr_assert_eq(extidx_begin(t_x, 0), 0);
	for (uint64_t i = 0; i < 2000; i++)
		add_ext(1, i, 1, 1, 2, (int64_t)i * 4096);
	cr_assert_eq(extidx_commit(t_x), 0);
	close_checkpointed();
	struct stat sb;
	cr_assert_eq(stat(t_db, &sb), 0);
	int64_t psize = sql_int(t_db, "PRAGMA page_size");
	cr_assert(sb.st_size >= 6 * psize, "index only %jd bytes", (intmax_t)sb.st_size);
	/* Garbage over a page in the middle (not page 1: keep the header). */
	char junk[65536];
	tu_fill(junk, (size_t)psize, 77);
	int fd = open(t_db, O_WRONLY);
	cr_assert(fd >= 0);
	off_t off = (off_t)(sb.st_size / psize / 2) * psize;
	cr_assert_eq(pwrite(fd, junk, (size_t)psize, off), psize);
	close(fd);
	int rc = open_existing(t_db);
	cr_assert_eq(rc, -EIO, "corrupt page: %d, want -EIO", rc);
}

Test(index, truncated_index_is_eio)
{
	cr_assert_eq(extidx_begin(t_x, 0), 0);
	for (uint64_t i = 0; i < 2000; i++)
		add_ext(1, i, 1, 1, 2, (int64_t)i * 4096);
	cr_assert_eq(extidx_commit(t_x), 0);
	close_checkpointed();
	struct stat sb;
	cr_assert_eq(stat(t_db, &sb), 0);
	cr_assert_eq(truncate(t_db, sb.st_size / 2), 0);
	int rc = open_existing(t_db);
	cr_assert_eq(rc, -EIO, "truncated index: %d, want -EIO", rc);
}

/* ---- the keep-path VFS ---- */

Test(index, proc_self_fd_path_is_kept_as_given)
{
	int dfd = open(t_root, O_DIRECTORY | O_RDONLY);
	cr_assert(dfd >= 0);
	char p[128];
	snprintf(p, sizeof(p), "/proc/self/fd/%d/index.db", dfd);
	sqlite3_vfs *v = sqlite3_vfs_find("snapfs-keep-path");
	cr_assert_not_null(v, "the keep-path VFS is registered by extidx_open");
	char out[512];
	cr_assert_eq(v->xFullPathname(v, p, sizeof(out), out), SQLITE_OK);
	cr_assert_str_eq(out, p, "full pathname of %s became %s", p, out);
	/* Too long for the buffer: refused, not truncated. */
	cr_assert_eq(v->xFullPathname(v, p, 10, out), SQLITE_CANTOPEN);
	/* Relative paths still go through the default VFS (made absolute). */
	cr_assert_eq(v->xFullPathname(v, "rel.db", sizeof(out), out), SQLITE_OK);
	cr_assert_eq(out[0], '/', "relative path became %s", out);
	close(dfd);
}

Test(index, index_opened_through_proc_self_fd_works)
{
	cr_assert_eq(extidx_meta_set(t_x, "k", 3), 0);
	extidx_close(t_x);
	t_x = NULL;
	int dfd = open(t_root, O_DIRECTORY | O_RDONLY);
	cr_assert(dfd >= 0);
	char p[128];
	snprintf(p, sizeof(p), "/proc/self/fd/%d/index.db", dfd);
	uint32_t bs = 0;
	int rc = extidx_open(p, 0, &bs, store_logf, &t_x);
	cr_assert_eq(rc, 0, "open %s: %d", p, rc);
	cr_assert_eq(bs, 4096);
	cr_assert_eq(meta("k"), 3);
	cr_assert_eq(extidx_meta_set(t_x, "k", 4), 0);
	/* The WAL sits next to the index, reached the same way. */
	cr_assert_eq(faccessat(dfd, "index.db-wal", F_OK, 0), 0, "no WAL beside the index");
	extidx_close(t_x);
	t_x = NULL;
	/* A new index created through /proc/self/fd lands in that directory. */
	snprintf(p, sizeof(p), "/proc/self/fd/%d/new.db", dfd);
	bs = 512;
	cr_assert_eq(extidx_open(p, 1, &bs, store_logf, &t_x), 0);
	extidx_close(t_x);
	t_x = NULL;
	cr_assert_eq(faccessat(dfd, "new.db", F_OK, 0), 0);
	close(dfd);
	reopen();
	cr_assert_eq(meta("k"), 4);
}
