// SPDX-License-Identifier: MIT
/*
 * Unit tests of the block file and its allocator (blk.c) through blk_i.h:
 * first fit, coalescing, reuse before growth, truncation of trailing free
 * space, punching (st_blocks, SEEK_DATA/SEEK_HOLE), rebuild from used
 * extents, copy/read, and a randomized run against a bitmap model. blk has no
 * size limit of its own (store_max is checked in cow.c before blk_alloc): the
 * last suite checks through the store that a write refused at store_max
 * leaves the block file and the allocator as they were.
 */
#include "fixture.h"

#include <inttypes.h>

#include "blk_i.h"

/* The tree functions are static in blk.c: generate our own (same layout, same
 * order) to walk the free list. */
static int test_range_cmp(struct blk_free_range *a, struct blk_free_range *b)
{
	return a->start < b->start ? -1 : a->start > b->start;
}
STORE_RB_GENERATE(blk_tree, blk_free_range, node, test_range_cmp);

#define BS 4096u

static char *t_root;
static char t_path[512];
static int t_fd = -1;
static struct blk t_b;

static void open_blk(uint32_t bs)
{
	t_fd = open(t_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	cr_assert(t_fd >= 0, "open %s: %s", t_path, strerror(errno));
	blk_init(&t_b, t_fd, bs);
}

static void t_setup(void)
{
	t_root = tu_tmpdir("blk");
	tu_path(t_path, sizeof(t_path), t_root, "blocks");
	open_blk(BS);
}

static void t_teardown(void)
{
	blk_release(&t_b);
	if (t_fd >= 0)
		close(t_fd);
	t_fd = -1;
	tu_rm_rf(t_root);
	free(t_root);
	t_root = NULL;
}

TestSuite(blk, .init = t_setup, .fini = t_teardown, .timeout = 30);

/* ---- helpers ---- */

struct rng {
	uint64_t start, n;
};

/* Copy the free list into r (at most max); returns how many ranges. */
static size_t free_list(struct rng *r, size_t max)
{
	size_t k = 0;
	struct blk_free_range *f;
	RB_FOREACH(f, blk_tree, &t_b.free)
	{
		if (k < max)
			r[k] = (struct rng){f->start, f->n};
		k++;
	}
	return k;
}

static uint64_t file_size(void)
{
	struct stat sb;
	cr_assert_eq(fstat(t_fd, &sb), 0);
	return (uint64_t)sb.st_size;
}

/* Bytes the file really occupies. */
static uint64_t file_alloc(void)
{
	struct stat sb;
	cr_assert_eq(fstat(t_fd, &sb), 0);
	return (uint64_t)sb.st_blocks * 512;
}

/* The allocator's invariants (blk_sanity, the checker blk.c runs under
 * assert() in debug builds; here in every build), plus what holds of the file
 * when every allocated block has been written: it is end blocks long, and
 * free space is punched. */
static void check_invariants(const char *when)
{
	cr_assert(blk_sanity(&t_b), "%s: blk_sanity failed (free ranges: see blk_i.h)", when);
	cr_assert_eq(file_size(), t_b.end * t_b.bs,
		     "%s: file is %" PRIu64 " bytes, end is %" PRIu64 " blocks of %u", when,
		     file_size(), t_b.end, t_b.bs);
	/* Free space is punched: with page-sized blocks the file holds exactly
	 * the used ones. */
	if (t_b.bs == 4096)
		cr_assert_eq(file_alloc(), (t_b.end - t_b.nfree) * t_b.bs,
			     "%s: %" PRIu64 " bytes allocated, %" PRIu64 " used blocks", when,
			     file_alloc(), t_b.end - t_b.nfree);
}

static void fill_blocks(uint64_t start, uint64_t n);

/* Allocate and write the blocks, as the store does (blk_alloc itself does not
 * grow the file: the copy into the blocks does). */
static uint64_t alloc(uint64_t n)
{
	uint64_t s = UINT64_MAX;
	int rc = blk_alloc(&t_b, n, &s);
	cr_assert_eq(rc, 0, "blk_alloc(%" PRIu64 "): %d", n, rc);
	fill_blocks(s, n);
	return s;
}

static void expect_alloc(uint64_t n, uint64_t want)
{
	uint64_t got = alloc(n);
	cr_assert_eq(got, want, "blk_alloc(%" PRIu64 ") gave %" PRIu64 ", want %" PRIu64, n, got,
		     want);
}

static void expect_free_list(const struct rng *want, size_t nwant)
{
	struct rng got[64];
	size_t n = free_list(got, 64);
	cr_assert_eq(n, nwant, "%zu free ranges, want %zu", n, nwant);
	for (size_t i = 0; i < n; i++)
		cr_assert(got[i].start == want[i].start && got[i].n == want[i].n,
			  "free range %zu is [%" PRIu64 ", +%" PRIu64 "), want [%" PRIu64
			  ", +%" PRIu64 ")",
			  i, got[i].start, got[i].n, want[i].start, want[i].n);
}

/* Fill blocks [start, start + n) with a pattern derived from each block number. */
static void fill_blocks(uint64_t start, uint64_t n)
{
	char buf[BS];
	for (uint64_t i = start; i < start + n; i++) {
		tu_fill(buf, t_b.bs, 1000 + i);
		cr_assert_eq(pwrite(t_fd, buf, t_b.bs, (off_t)(i * t_b.bs)), (ssize_t)t_b.bs);
	}
}

static void expect_block_data(uint64_t blk, int zero)
{
	char want[BS], got[BS];
	if (zero)
		memset(want, 0, t_b.bs);
	else
		tu_fill(want, t_b.bs, 1000 + blk);
	cr_assert_eq(blk_read(&t_b, got, t_b.bs, blk * t_b.bs), 0);
	cr_assert(!memcmp(got, want, t_b.bs), "block %" PRIu64 " is not %s", blk,
		  zero ? "zero" : "its data");
}

/* Data extents of the file as [start, n) block ranges (SEEK_DATA/SEEK_HOLE). */
static size_t data_map(struct rng *r, size_t max)
{
	size_t k = 0;
	off_t off = 0;
	for (;;) {
		off_t d = lseek(t_fd, off, SEEK_DATA);
		if (d < 0) {
			cr_assert_eq(errno, ENXIO, "SEEK_DATA: %s", strerror(errno));
			break;
		}
		off_t h = lseek(t_fd, d, SEEK_HOLE);
		cr_assert(h > d);
		cr_assert(k < max);
		r[k++] = (struct rng){(uint64_t)d / t_b.bs, (uint64_t)(h - d) / t_b.bs};
		off = h;
	}
	return k;
}

static void expect_data_map(const struct rng *want, size_t nwant)
{
	struct rng got[64];
	size_t n = data_map(got, 64);
	cr_assert_eq(n, nwant, "%zu data ranges in the file, want %zu", n, nwant);
	for (size_t i = 0; i < n; i++)
		cr_assert(got[i].start == want[i].start && got[i].n == want[i].n,
			  "data range %zu is [%" PRIu64 ", +%" PRIu64 "), want [%" PRIu64
			  ", +%" PRIu64 ")",
			  i, got[i].start, got[i].n, want[i].start, want[i].n);
}

/* ---- allocation ---- */

Test(blk, alloc_on_empty_file_appends_contiguously)
{
	expect_alloc(3, 0);
	expect_alloc(5, 3);
	expect_alloc(1, 8);
	cr_assert_eq(t_b.end, 9);
	cr_assert_eq(t_b.nfree, 0);
	expect_free_list(NULL, 0);
}

Test(blk, alloc_is_first_fit_from_lowest_address)
{
	for (int i = 0; i < 12; i++)
		alloc(1);
	blk_free(&t_b, 2, 1); /* too small for 2 */
	blk_free(&t_b, 5, 3); /* first that fits 2 */
	blk_free(&t_b, 9, 2); /* also fits 2, but higher */
	check_invariants("after frees");
	expect_alloc(2, 5); /* front of [5, +3) */
	expect_free_list((struct rng[]){{2, 1}, {7, 1}, {9, 2}}, 3);
	expect_alloc(1, 2);
	expect_alloc(2, 9);
	expect_alloc(1, 7);
	cr_assert_eq(t_b.nfree, 0);
	expect_alloc(1, 12); /* nothing free: grows */
	check_invariants("at the end");
}

Test(blk, alloc_larger_than_every_free_range_grows_the_file)
{
	for (int i = 0; i < 6; i++)
		alloc(1);
	blk_free(&t_b, 1, 2);
	expect_alloc(3, 6);
	cr_assert_eq(t_b.end, 9);
	expect_free_list((struct rng[]){{1, 2}}, 1);
	cr_assert_eq(t_b.nfree, 2);
}

Test(blk, freed_space_is_reused_before_growing)
{
	expect_alloc(4, 0);
	expect_alloc(4, 4);
	expect_alloc(4, 8);
	fill_blocks(0, 12);
	blk_free(&t_b, 4, 4);
	uint64_t size = file_size();
	expect_alloc(4, 4);
	cr_assert_eq(t_b.end, 12);
	cr_assert_eq(file_size(), size, "file grew from %" PRIu64 " to %" PRIu64, size,
		     file_size());
	cr_assert_eq(t_b.nfree, 0);
	check_invariants("after reuse");
}

/* ---- free: coalescing ---- */

Test(blk, free_coalesces_with_left_neighbour)
{
	for (int i = 0; i < 10; i++)
		alloc(1);
	blk_free(&t_b, 2, 1);
	blk_free(&t_b, 3, 2);
	expect_free_list((struct rng[]){{2, 3}}, 1);
	cr_assert_eq(t_b.nfree, 3);
	check_invariants("left");
}

Test(blk, free_coalesces_with_right_neighbour)
{
	for (int i = 0; i < 10; i++)
		alloc(1);
	blk_free(&t_b, 5, 2);
	blk_free(&t_b, 3, 2);
	expect_free_list((struct rng[]){{3, 4}}, 1);
	cr_assert_eq(t_b.nfree, 4);
	check_invariants("right");
}

Test(blk, free_coalesces_with_both_neighbours_into_one_range)
{
	for (int i = 0; i < 10; i++)
		alloc(1);
	blk_free(&t_b, 1, 2);
	blk_free(&t_b, 5, 3);
	expect_free_list((struct rng[]){{1, 2}, {5, 3}}, 2);
	blk_free(&t_b, 3, 2);
	expect_free_list((struct rng[]){{1, 7}}, 1);
	cr_assert_eq(t_b.nfree, 7);
	check_invariants("both");
	expect_alloc(7, 1); /* the merged range serves a request none of its parts could */
	cr_assert_eq(t_b.end, 10);
}

Test(blk, free_of_non_adjacent_ranges_keeps_them_apart)
{
	for (int i = 0; i < 10; i++)
		alloc(1);
	blk_free(&t_b, 1, 1);
	blk_free(&t_b, 3, 1);
	blk_free(&t_b, 6, 2);
	expect_free_list((struct rng[]){{1, 1}, {3, 1}, {6, 2}}, 3);
	cr_assert_eq(t_b.nfree, 4);
	blk_free(&t_b, 5, 0); /* zero length: nothing */
	cr_assert_eq(t_b.nfree, 4);
	check_invariants("apart");
}

/* ---- free: trailing space and punching ---- */

Test(blk, trailing_free_space_truncates_the_file)
{
	expect_alloc(10, 0);
	fill_blocks(0, 10);
	blk_free(&t_b, 7, 3);
	cr_assert_eq(t_b.end, 7, "end %" PRIu64 ", want 7", t_b.end);
	cr_assert_eq(file_size(), 7 * BS, "file %" PRIu64 " bytes, want %u", file_size(), 7 * BS);
	expect_free_list(NULL, 0);
	cr_assert_eq(t_b.nfree, 0);
}

Test(blk, trailing_free_merged_with_lower_free_range_truncates_below_both)
{
	expect_alloc(10, 0);
	fill_blocks(0, 10);
	blk_free(&t_b, 3, 2);
	cr_assert_eq(t_b.end, 10);
	blk_free(&t_b, 5, 5);
	cr_assert_eq(t_b.end, 3, "end %" PRIu64 ", want 3", t_b.end);
	cr_assert_eq(t_b.nfree, 0, "nfree %" PRIu64 ", want 0", t_b.nfree);
	expect_free_list(NULL, 0);
	check_invariants("truncated");
	expect_alloc(1, 3);
}

Test(blk, freeing_everything_empties_the_file)
{
	expect_alloc(2, 0);
	expect_alloc(3, 2);
	fill_blocks(0, 5);
	blk_free(&t_b, 0, 2);
	blk_free(&t_b, 2, 3);
	cr_assert_eq(t_b.end, 0);
	cr_assert_eq(t_b.nfree, 0);
	cr_assert_eq(file_size(), 0);
	cr_assert_eq(file_alloc(), 0, "%" PRIu64 " bytes still allocated", file_alloc());
}

Test(blk, free_punches_the_freed_blocks)
{
	expect_alloc(8, 0);
	fill_blocks(0, 8);
	uint64_t before = file_alloc();
	cr_assert_eq(before, 8 * BS, "allocated %" PRIu64 ", want %u", before, 8 * BS);
	blk_free(&t_b, 2, 3);
	cr_assert_eq(file_alloc(), 5 * BS, "allocated %" PRIu64 " after free, want %u",
		     file_alloc(), 5 * BS);
	expect_data_map((struct rng[]){{0, 2}, {5, 3}}, 2);
	for (uint64_t i = 0; i < 8; i++)
		expect_block_data(i, i >= 2 && i < 5);
}

Test(blk, small_blocks_free_a_page_only_when_the_whole_page_is_free)
{
	/* 1 KiB blocks, 4 per page. */
	blk_release(&t_b);
	close(t_fd);
	open_blk(1024);
	expect_alloc(12, 0);
	fill_blocks(0, 12);
	cr_assert_eq(file_alloc(), 12 * 1024);
	blk_free(&t_b, 5, 1); /* one block of page 1: the page stays */
	cr_assert_eq(file_alloc(), 12 * 1024, "allocated %" PRIu64 ", want %u", file_alloc(),
		     12 * 1024);
	expect_block_data(5, 1);
	expect_block_data(4, 0);
	blk_free(&t_b, 6, 2);
	blk_free(&t_b, 4, 1); /* page 1 (blocks 4-7) now wholly free */
	cr_assert_eq(file_alloc(), 8 * 1024, "allocated %" PRIu64 ", want %u", file_alloc(),
		     8 * 1024);
	expect_data_map((struct rng[]){{0, 4}, {8, 4}}, 2);
	expect_free_list((struct rng[]){{4, 4}}, 1);
	check_invariants("small blocks");
}

/* ---- rebuild ---- */

Test(blk, rebuild_frees_and_punches_everything_not_used)
{
	fill_blocks(0, 24);			      /* a block file with stale data everywhere */
	uint64_t st[] = {12, 2, 10}, n[] = {4, 3, 1}; /* any order */
	cr_assert_eq(blk_rebuild(&t_b, st, n, 3), 0);
	cr_assert_eq(t_b.end, 16, "end %" PRIu64 ", want 16", t_b.end);
	cr_assert_eq(t_b.nfree, 8, "nfree %" PRIu64 ", want 8", t_b.nfree);
	expect_free_list((struct rng[]){{0, 2}, {5, 5}, {11, 1}}, 3);
	check_invariants("rebuilt");
	cr_assert_eq(file_alloc(), 8 * BS, "allocated %" PRIu64 ", want %u", file_alloc(), 8 * BS);
	expect_data_map((struct rng[]){{2, 3}, {10, 1}, {12, 4}}, 3);
	for (uint64_t i = 0; i < 16; i++) {
		int used = (i >= 2 && i < 5) || i == 10 || (i >= 12 && i < 16);
		expect_block_data(i, !used);
	}
	/* The rebuilt allocator hands out the gaps first. */
	expect_alloc(5, 5);
	expect_alloc(2, 0);
	expect_alloc(1, 11);
	expect_alloc(1, 16);
}

Test(blk, rebuild_replaces_the_previous_state)
{
	for (int i = 0; i < 10; i++)
		alloc(1);
	blk_free(&t_b, 1, 1);
	blk_free(&t_b, 4, 2);
	uint64_t st[] = {2}, n[] = {2};
	cr_assert_eq(blk_rebuild(&t_b, st, n, 1), 0);
	cr_assert_eq(t_b.end, 4);
	cr_assert_eq(t_b.nfree, 2);
	expect_free_list((struct rng[]){{0, 2}}, 1);
	check_invariants("replaced");
}

Test(blk, rebuild_with_touching_ranges_leaves_no_gap)
{
	uint64_t st[] = {3, 0, 1}, n[] = {2, 1, 2};
	cr_assert_eq(blk_rebuild(&t_b, st, n, 3), 0);
	cr_assert_eq(t_b.end, 5);
	cr_assert_eq(t_b.nfree, 0);
	expect_free_list(NULL, 0);
}

Test(blk, rebuild_with_nothing_used_empties_the_file)
{
	fill_blocks(0, 6);
	cr_assert_eq(blk_rebuild(&t_b, NULL, NULL, 0), 0);
	cr_assert_eq(t_b.end, 0);
	cr_assert_eq(t_b.nfree, 0);
	cr_assert_eq(file_size(), 0);
	expect_alloc(2, 0);
}

Test(blk, rebuild_rejects_overlapping_ranges_with_eio)
{
	uint64_t st[] = {0, 4, 2}, n[] = {2, 2, 3}; /* [2,5) overlaps [4,6) */
	cr_assert_eq(blk_rebuild(&t_b, st, n, 3), -EIO);
	expect_free_list(NULL, 0);
	cr_assert_eq(t_b.nfree, 0);
	uint64_t st2[] = {7, 7}, n2[] = {1, 1}; /* the same range twice */
	cr_assert_eq(blk_rebuild(&t_b, st2, n2, 2), -EIO);
	expect_free_list(NULL, 0);
}

/* ---- copy and read ---- */

Test(blk, copy_then_read_round_trips)
{
	char src[3 * BS], got[3 * BS];
	tu_fill(src, sizeof(src), 7);
	char p[600];
	tu_path(p, sizeof(p), t_root, "src");
	cr_assert_eq(tu_write_file(p, src, sizeof(src)), 0);
	int sfd = open(p, O_RDONLY);
	cr_assert(sfd >= 0);
	uint64_t s = alloc(2);
	cr_assert_eq(blk_copy(&t_b, sfd, BS, s * BS, 2 * BS), 0);
	cr_assert_eq(blk_read(&t_b, got, 2 * BS, s * BS), 0);
	cr_assert_arr_eq(got, src + BS, 2 * BS);
	close(sfd);
}

Test(blk, copy_past_source_end_writes_zeros_for_the_rest)
{
	char src[BS + 100], got[2 * BS], want[2 * BS];
	tu_fill(src, sizeof(src), 8);
	char p[600];
	tu_path(p, sizeof(p), t_root, "src");
	cr_assert_eq(tu_write_file(p, src, sizeof(src)), 0);
	int sfd = open(p, O_RDONLY);
	cr_assert(sfd >= 0);
	uint64_t s = alloc(2);
	memset(got, 0xee, sizeof(got));
	cr_assert_eq(pwrite(t_fd, got, sizeof(got), (off_t)(s * BS)), (ssize_t)sizeof(got));
	cr_assert_eq(blk_copy(&t_b, sfd, BS, s * BS, 2 * BS), 0);
	memset(want, 0, sizeof(want));
	memcpy(want, src + BS, 100);
	cr_assert_eq(blk_read(&t_b, got, sizeof(got), s * BS), 0);
	cr_assert_arr_eq(got, want, sizeof(want));
	cr_assert_eq(file_size(), 2 * BS, "the block file covers the extent: %" PRIu64,
		     file_size());
	close(sfd);
}

Test(blk, gather_packs_ranges_in_order_with_zeros_past_the_end)
{
	/* A source of 6 MiB + 100 bytes; ranges: two scattered blocks, one
	 * larger than the gather buffer (4 MiB), one straddling the end. */
	size_t slen = (6u << 20) + 100;
	char *src = malloc(slen);
	tu_fill(src, slen, 9);
	char p[600];
	tu_path(p, sizeof(p), t_root, "gsrc");
	cr_assert_eq(tu_write_file(p, src, slen), 0);
	int sfd = open(p, O_RDONLY);
	cr_assert(sfd >= 0);
	const uint64_t r[][2] = {
	    {7 * BS, BS}, {2 * BS, 2 * BS}, {BS, (5u << 20)}, {(6u << 20), 2 * BS}};
	uint64_t total = 0;
	for (size_t i = 0; i < 4; i++)
		total += r[i][1];
	uint64_t s = alloc(total / BS);
	cr_assert_eq(blk_gather(&t_b, sfd, r, 4, s * BS), 0);
	char *want = calloc(1, total), *got = malloc(total);
	uint64_t at = 0;
	for (size_t i = 0; i < 4; i++) {
		uint64_t n = r[i][0] + r[i][1] <= slen ? r[i][1] : slen - r[i][0];
		memcpy(want + at, src + r[i][0], n);
		at += r[i][1];
	}
	cr_assert_eq(blk_read(&t_b, got, total, s * BS), 0);
	for (uint64_t i = 0; i < total; i++)
		if (got[i] != want[i])
			cr_assert_fail("byte %" PRIu64 " of the gathered copy differs", i);
	close(sfd);
	free(src);
	free(want);
	free(got);
}

Test(blk, read_past_end_of_file_gives_zeros)
{
	expect_alloc(1, 0);
	fill_blocks(0, 1);
	char got[2 * BS], want[2 * BS];
	tu_fill(want, BS, 1000);
	memset(want + BS, 0, BS);
	memset(got, 0xaa, sizeof(got));
	cr_assert_eq(blk_read(&t_b, got, sizeof(got), 0), 0);
	cr_assert_arr_eq(got, want, sizeof(want));
	cr_assert_eq(blk_sync(&t_b), 0);
}

/* ---- randomized, against a bitmap ---- */

#define MODEL_MAX 16384 /* blocks */
#define MAXLIVE	  256

static void model_run(uint64_t seed, int steps)
{
	static unsigned char used[MODEL_MAX];
	struct rng live[MAXLIVE];
	size_t nlive = 0;
	memset(used, 0, sizeof(used));
	uint64_t rs = seed, hi = 0; /* hi: highest end so far, bounds the scans */
	char when[96];
	for (int step = 0; step < steps; step++) {
		uint64_t r = tu_rand(&rs);
		int do_alloc = nlive == 0 || (nlive < MAXLIVE && r % 100 < 55);
		if (do_alloc) {
			uint64_t n =
			    1 + (tu_rand(&rs) % 100 < 80 ? tu_rand(&rs) % 4 : tu_rand(&rs) % 40);
			/* Model: the lowest free run of n blocks below end, else end. */
			uint64_t want = t_b.end;
			for (uint64_t s = 0, run = 0; s < t_b.end; s++) {
				run = used[s] ? 0 : run + 1;
				if (run == n) {
					want = s + 1 - n;
					break;
				}
			}
			uint64_t got = alloc(n);
			cr_assert(got + n <= MODEL_MAX, "seed %" PRIu64 " step %d: file too big",
				  seed, step);
			for (uint64_t i = got; i < got + n; i++)
				cr_assert(!used[i],
					  "seed %" PRIu64 " step %d: alloc(%" PRIu64 ") = %" PRIu64
					  " overlaps used block %" PRIu64,
					  seed, step, n, got, i);
			cr_assert_eq(got, want,
				     "seed %" PRIu64 " step %d: alloc(%" PRIu64 ") = %" PRIu64
				     ", first fit is %" PRIu64,
				     seed, step, n, got, want);
			memset(used + got, 1, n);
			if (got + n > hi)
				hi = got + n;
			live[nlive++] = (struct rng){got, n};
		} else {
			size_t k = tu_rand(&rs) % nlive;
			struct rng f = live[k];
			live[k] = live[--nlive];
			blk_free(&t_b, f.start, f.n);
			memset(used + f.start, 0, f.n);
		}
		/* Model: end is one past the highest used block; nfree the unused below. */
		uint64_t end = 0, nfree = 0;
		for (uint64_t i = 0; i < hi; i++)
			if (used[i])
				end = i + 1;
		for (uint64_t i = 0; i < end; i++)
			nfree += !used[i];
		cr_assert_eq(t_b.end, end,
			     "seed %" PRIu64 " step %d: end %" PRIu64 ", model %" PRIu64, seed,
			     step, t_b.end, end);
		cr_assert_eq(t_b.nfree, nfree,
			     "seed %" PRIu64 " step %d: nfree %" PRIu64 ", model %" PRIu64, seed,
			     step, t_b.nfree, nfree);
		/* Every free range is unused in the model and every unused block
		 * below end is in a free range. */
		static unsigned char infree[MODEL_MAX];
		memset(infree, 0, hi);
		struct blk_free_range *fr;
		RB_FOREACH(fr, blk_tree, &t_b.free)
		{
			for (uint64_t i = fr->start; i < fr->start + fr->n; i++) {
				cr_assert(i < end && !used[i],
					  "seed %" PRIu64 " step %d: free range [%" PRIu64
					  ", +%" PRIu64 ") holds used block %" PRIu64,
					  seed, step, fr->start, fr->n, i);
				infree[i] = 1;
			}
		}
		for (uint64_t i = 0; i < end; i++)
			cr_assert(used[i] || infree[i],
				  "seed %" PRIu64 " step %d: block %" PRIu64
				  " is neither used nor free (leaked)",
				  seed, step, i);
		snprintf(when, sizeof(when), "seed %" PRIu64 " step %d", seed, step);
		check_invariants(when);
	}
	/* Free the rest: the file ends empty. */
	while (nlive) {
		struct rng f = live[--nlive];
		blk_free(&t_b, f.start, f.n);
	}
	cr_assert_eq(t_b.end, 0, "seed %" PRIu64 ": end %" PRIu64 " after freeing all", seed,
		     t_b.end);
	cr_assert_eq(t_b.nfree, 0);
	cr_assert_eq(file_size(), 0);
}

Test(blk, random_alloc_free_matches_bitmap_model)
{
	static const uint64_t seeds[] = {1, 42, 0x5eed, 0xdeadbeef};
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		blk_release(&t_b);
		cr_assert_eq(ftruncate(t_fd, 0), 0);
		blk_init(&t_b, t_fd, BS);
		model_run(seeds[i], 3000);
	}
}

Test(blk, rebuild_from_random_live_set_matches_the_allocator)
{
	/* What recovery does: after random churn, rebuilding from the live
	 * ranges gives the same free list as the running allocator. */
	uint64_t rs = 99;
	struct rng live[MAXLIVE];
	size_t nlive = 0;
	for (int step = 0; step < 2000; step++) {
		if (nlive == 0 || (nlive < MAXLIVE && tu_rand(&rs) % 100 < 55)) {
			uint64_t n = 1 + tu_rand(&rs) % 8;
			live[nlive++] = (struct rng){alloc(n), n};
		} else {
			size_t k = tu_rand(&rs) % nlive;
			blk_free(&t_b, live[k].start, live[k].n);
			live[k] = live[--nlive];
		}
	}
	struct rng before[64];
	size_t nb = free_list(before, 64);
	cr_assert(nb <= 64);
	uint64_t end = t_b.end, nfree = t_b.nfree;
	uint64_t st[MAXLIVE], n[MAXLIVE];
	for (size_t i = 0; i < nlive; i++) {
		st[i] = live[i].start;
		n[i] = live[i].n;
	}
	cr_assert_eq(blk_rebuild(&t_b, st, n, nlive), 0);
	cr_assert_eq(t_b.end, end, "rebuilt end %" PRIu64 ", was %" PRIu64, t_b.end, end);
	cr_assert_eq(t_b.nfree, nfree, "rebuilt nfree %" PRIu64 ", was %" PRIu64, t_b.nfree, nfree);
	expect_free_list(before, nb);
	check_invariants("rebuilt");
}

/* ---- the store_max limit (checked before blk_alloc, in cow.c) ---- */

TestSuite(blk_limit, .init = fx_setup, .fini = fx_teardown, .timeout = 30);

static uint64_t blocks_file_size(void)
{
	char p[1024];
	tu_path(p, sizeof(p), fx_dir, "blocks");
	struct stat sb;
	cr_assert_eq(stat(p, &sb), 0);
	return (uint64_t)sb.st_size;
}

Test(blk_limit, enospc_at_store_max_leaves_allocator_and_block_file_unchanged)
{
	store_close(fx_st);
	fx_open_bs(BS, 2 * BS);
	char a[4 * BS], b[4 * BS];
	tu_fill(a, sizeof(a), 31);
	tu_fill(b, sizeof(b), 32);
	int fd = fx_file("f");
	fx_pwrite(fd, a, sizeof(a), 0);
	struct store_file *sf;
	cr_assert_eq(store_file_get(fx_st, fd, &sf), 0);
	uint64_t id = fx_pin1(sf, fd, "f", STORE_PINNED);
	cr_assert_eq(blocks_file_size(), 0);
	cr_assert_eq(fx_cow_write(sf, fd, b, 3 * BS, 0), -ENOSPC);
	cr_assert_eq(blocks_file_size(), 0, "block file grew to %" PRIu64 " on ENOSPC",
		     blocks_file_size());
	/* Had the refused write moved the allocator's end, this copy would land
	 * past block 0 and the file would be longer than two blocks. */
	cr_assert_eq(fx_cow_write(sf, fd, b, 2 * BS, 0), 0);
	cr_assert_eq(blocks_file_size(), 2 * BS, "block file is %" PRIu64 ", want %u",
		     blocks_file_size(), 2 * BS);
	cr_assert_eq(fx_cow_write(sf, fd, b, BS, 2 * BS), -ENOSPC);
	cr_assert_eq(blocks_file_size(), 2 * BS);
	fx_expect_snap(id, store_file_fid(sf), a, sizeof(a));
	fx_check();
	store_file_put(sf);
	close(fd);
}
