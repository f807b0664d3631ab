// SPDX-License-Identifier: MIT
/*
 * Snapshots as a whole: pin of several files is one epoch, listing and
 * per-file metadata, bytes held, changed ranges, release and GC giving the
 * space back to the filesystem (st_blocks), O(1) pin of a huge sparse file.
 */
#include "fixture.h"

#include <time.h>

TestSuite(snap, .init = fx_setup, .fini = fx_teardown, .timeout = 60);

#define BS 4096

static struct store_file *get(int fd)
{
	struct store_file *sf;
	cr_assert_eq(store_file_get(fx_st, fd, &sf), 0);
	return sf;
}

static int count_files(void *arg, const struct store_snap_file *f)
{
	int *n = arg;
	cr_assert(S_ISREG(f->st.st_mode));
	cr_assert_eq(strcmp(f->path, *n ? "b" : "a"), 0, "files not in path order: %s", f->path);
	(*n)++;
	return 0;
}

Test(snap, pin_of_several_files_lists_them)
{
	int fa = fx_file("a"), fb = fx_file("b");
	char a[100], b[5000];
	tu_fill(a, sizeof(a), 1);
	tu_fill(b, sizeof(b), 2);
	fx_pwrite(fa, a, sizeof(a), 0);
	fx_pwrite(fb, b, sizeof(b), 0);
	struct store_file *sa = get(fa), *sb = get(fb);
	struct store_pin p = {.kind = STORE_PINNED, .uid = 7, .label = "two"};
	struct store_pin_file f[2] = {{sb, fb, "b"}, {sa, fa, "a"}};
	uint64_t id;
	cr_assert_eq(store_pin(fx_st, &p, f, 2, &id), 0);
	struct store_snap s;
	cr_assert_eq(store_snap_get(fx_st, id, &s), 0);
	cr_assert_eq(s.nfiles, 2);
	cr_assert_eq(s.uid, 7);
	cr_assert_str_eq(s.label, "two");
	cr_assert_eq(s.kind, STORE_PINNED);
	int n = 0;
	cr_assert_eq(store_snap_files(fx_st, id, count_files, &n), 0);
	cr_assert_eq(n, 2);
	struct store_snap_file sf;
	char pb[64];
	cr_assert_eq(store_snap_file(fx_st, id, "b", &sf, pb, sizeof(pb)), 0);
	cr_assert_eq(sf.st.st_size, 5000);
	cr_assert_eq(sf.fid, store_file_fid(sb));
	cr_assert_eq(store_snap_file(fx_st, id, "c", &sf, pb, sizeof(pb)), -ENOENT);
	cr_assert_eq(store_release(fx_st, id), 0);
	cr_assert_eq(store_release(fx_st, id), -ENOENT);
	cr_assert_eq(store_snap_get(fx_st, id, &s), -ENOENT);
	cr_assert_not(store_file_tracked(sa));
	cr_assert_eq(store_file_fid(sa), 0);
	store_file_put(sa);
	store_file_put(sb);
}

struct rng {
	uint64_t off[16], len[16];
	int n;
};

static int collect(void *arg, uint64_t off, uint64_t len)
{
	struct rng *r = arg;
	r->off[r->n] = off;
	r->len[r->n++] = len;
	return 0;
}

Test(snap, changed_reports_written_blocks_and_size_change)
{
	char a[10 * BS];
	tu_fill(a, sizeof(a), 3);
	int fd = fx_file("f");
	fx_pwrite(fd, a, sizeof(a), 0);
	struct store_file *sf = get(fd);
	uint64_t id = fx_pin1(sf, fd, "f", STORE_PINNED);
	char b[10];
	cr_assert_eq(fx_cow_write(sf, fd, b, 10, 2 * BS + 5), 0);
	cr_assert_eq(fx_cow_write(sf, fd, b, 10, 3 * BS), 0);
	cr_assert_eq(fx_cow_write(sf, fd, b, 10, 7 * BS), 0);
	cr_assert_eq(fx_cow_write(sf, fd, b, 10, 12 * BS), 0);
	struct rng r = {0};
	cr_assert_eq(store_snap_changed(fx_st, id, store_file_fid(sf), collect, &r), 0);
	cr_assert_eq(r.n, 3, "ranges: %d", r.n);
	cr_assert_eq(r.off[0], 2 * BS);
	cr_assert_eq(r.len[0], 2 * BS);
	cr_assert_eq(r.off[1], 7 * BS);
	cr_assert_eq(r.len[1], BS);
	cr_assert_eq(r.off[2], 10 * BS);
	cr_assert_eq(r.len[2], 2 * BS + 10);
	store_file_put(sf);
}

Test(snap, bytes_held_counts_only_exclusive_extents)
{
	char a[4 * BS], b[4 * BS];
	tu_fill(a, sizeof(a), 4);
	int fd = fx_file("f");
	fx_pwrite(fd, a, sizeof(a), 0);
	struct store_file *sf = get(fd);
	uint64_t s1 = fx_pin1(sf, fd, "f", STORE_PINNED);
	uint64_t s2 = fx_pin1(sf, fd, "f", STORE_PINNED);
	cr_assert_eq(fx_cow_write(sf, fd, b, BS, 0), 0); /* needed by both */
	uint64_t s3 = fx_pin1(sf, fd, "f", STORE_PINNED);
	cr_assert_eq(fx_cow_write(sf, fd, b, BS, BS), 0); /* needed by s1, s2, s3 */
	cr_assert_eq(fx_cow_write(sf, fd, b, BS, 0), 0);  /* block 0 again: only s3 */
	struct store_snap s;
	cr_assert_eq(store_snap_get(fx_st, s1, &s), 0);
	cr_assert_eq(s.bytes_held, 0);
	cr_assert_eq(store_snap_get(fx_st, s3, &s), 0);
	cr_assert_eq(s.bytes_held, BS);
	cr_assert_eq(store_release(fx_st, s1), 0);
	cr_assert_eq(store_snap_get(fx_st, s2, &s), 0);
	cr_assert_eq(s.bytes_held, BS, "block 0's first copy is s2's alone now");
	store_file_put(sf);
	(void)s2;
}

Test(snap, release_all_returns_space_to_filesystem)
{
	int fd = fx_file("f");
	size_t sz = 4 << 20;
	char *a = malloc(sz), *b = malloc(sz);
	tu_fill(a, sz, 5);
	tu_fill(b, sz, 6);
	fx_pwrite(fd, a, sz, 0);
	struct store_file *sf = get(fd);
	uint64_t ids[4];
	for (int i = 0; i < 4; i++) {
		ids[i] = fx_pin1(sf, fd, "f", i % 2 ? STORE_EPHEMERAL : STORE_PINNED);
		cr_assert_eq(fx_cow_write(sf, fd, i % 2 ? a : b, sz / 2, (off_t)(i * BS * 7)), 0);
	}
	char p[1024];
	tu_path(p, sizeof(p), fx_dir, "blocks");
	struct stat sb;
	stat(p, &sb);
	cr_assert_gt(sb.st_blocks * 512, 4 << 20, "copies not in the block file?");
	fx_check();
	for (int i = 0; i < 4; i++)
		cr_assert_eq(store_release(fx_st, ids[i]), 0);
	stat(p, &sb);
	cr_assert_leq(sb.st_blocks * 512, 64 << 10, "block file still holds %ld bytes",
		      (long)sb.st_blocks * 512);
	struct store_stats s = fx_stats();
	cr_assert_eq(s.extents, 0);
	cr_assert_eq(s.bytes_preserved, 0);
	fx_check();
	store_file_put(sf);
	free(a);
	free(b);
}

Test(snap, freed_space_is_reused)
{
	int fd = fx_file("f");
	char a[64 * BS];
	tu_fill(a, sizeof(a), 7);
	fx_pwrite(fd, a, sizeof(a), 0);
	struct store_file *sf = get(fd);
	char p[1024];
	tu_path(p, sizeof(p), fx_dir, "blocks");
	off_t high = 0;
	for (int round = 0; round < 50; round++) {
		uint64_t keep = fx_pin1(sf, fd, "f", STORE_PINNED);
		cr_assert_eq(fx_cow_write(sf, fd, a, 8 * BS, (off_t)(round % 8) * 8 * BS), 0);
		cr_assert_eq(store_release(fx_st, keep), 0);
		struct stat sb;
		stat(p, &sb);
		if (sb.st_size > high)
			high = sb.st_size;
	}
	cr_assert_leq(high, 8 * BS, "the block file grew to %ld under a steady workload",
		      (long)high);
	store_file_put(sf);
}

Test(snap, pin_is_constant_time_in_file_size)
{
	int fd = fx_file("big");
	cr_assert_eq(ftruncate(fd, (off_t)4 << 40), 0); /* 4 TiB sparse */
	cr_assert_eq(pwrite(fd, "x", 1, ((off_t)4 << 40) - 1), 1);
	struct store_file *sf = get(fd);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint64_t id = fx_pin1(sf, fd, "big", STORE_EPHEMERAL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	cr_assert_lt(ms, 50.0, "pinning a 4 TiB file took %.1f ms", ms);
	char c;
	cr_assert_eq(store_snap_read(fx_st, id, store_file_fid(sf), &c, 1, ((uint64_t)4 << 40) - 1),
		     1);
	cr_assert_eq(c, 'x');
	store_file_put(sf);
}

Test(snap, expired_snapshot_released_by_tick)
{
	int fd = fx_file("f");
	fx_pwrite(fd, "abc", 3, 0);
	struct store_file *sf = get(fd);
	struct store_pin p = {.kind = STORE_PINNED, .expires = time(NULL) - 1};
	struct store_pin_file f = {sf, fd, "f"};
	uint64_t id;
	cr_assert_eq(store_pin(fx_st, &p, &f, 1, &id), 0);
	cr_assert_eq(store_tick(fx_st), 0);
	struct store_snap s;
	cr_assert_eq(store_snap_get(fx_st, id, &s), -ENOENT);
	store_file_put(sf);
}
