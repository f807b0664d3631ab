// SPDX-License-Identifier: MIT
/*
 * The segment's association map (src/client/snapseg_map.c) on its own, no
 * mount: random detaches and associations keep it sorted, disjoint and
 * counted (seg_sanity) and equal to a page-by-page model, and seg_sanity
 * catches each broken invariant.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <sys/mman.h>

#include "segment_i.h"

#define NPG 256

static struct snapseg seg;

static void setup(void)
{
	seg = (struct snapseg){.size = NPG * PG};
}

static void teardown(void)
{
	while (seg.snaps) {
		struct segsnap *r = seg.snaps;
		seg.snaps = r->next;
		free(r);
	}
	seg_zombies_free(&seg);
	if (seg.ext)
		munmap(seg.ext, seg.aext * sizeof(*seg.ext));
}

TestSuite(map, .init = setup, .fini = teardown, .timeout = 60);

/* A snapshot that holds nothing (no descriptors), linked into seg. */
static struct segsnap *snap_new(void)
{
	struct segsnap *r = calloc(1, sizeof(*r));
	cr_assert_not_null(r);
	r->h.holder = r->h.view = r->h.direct = r->h.conn = -1;
	r->next = seg.snaps;
	seg.snaps = r;
	seg.st.snapshots_held++;
	return r;
}

Test(map, random_detaches_and_associations_match_a_model)
{
	struct segsnap *model[NPG] = {0};
	unsigned seed = 1234;
	for (int step = 0; step < 20000; step++) {
		uintptr_t s = (uintptr_t)(rand_r(&seed) % NPG);
		uintptr_t e = s + 1 + (uintptr_t)(rand_r(&seed) % (NPG - s < 40 ? NPG - s : 40));
		cr_assert_eq(seg_ext_room(&seg, 2), 0);
		seg_ext_clear(&seg, s, e);
		struct segsnap *r = NULL;
		if (rand_r(&seed) % 3) {
			r = snap_new();
			seg_ext_insert(&seg, s, e, r);
		}
		for (uintptr_t p = s; p < e; p++)
			model[p] = r;
		seg_snaps_reap(&seg);
		seg_zombies_free(&seg);
		cr_assert(seg_sanity(&seg), "step %d: [%lu, %lu)", step, (unsigned long)s,
			  (unsigned long)e);
		if (step % 97)
			continue;
		for (uintptr_t p = 0; p < NPG; p++) {
			struct segext *x = seg_ext_lookup(&seg, p);
			cr_assert_eq(x ? x->r : NULL, model[p], "step %d, page %lu", step,
				     (unsigned long)p);
		}
	}
}

/* Two snapshots a, b and extents [0,4) a, [4,8) b, [10,12) a. */
static struct segsnap *a, *b;

static void three_extents(void)
{
	b = snap_new();
	a = snap_new();
	cr_assert_eq(seg_ext_room(&seg, 4), 0);
	seg_ext_insert(&seg, 0, 4, a);
	seg_ext_insert(&seg, 4, 8, b);
	seg_ext_insert(&seg, 10, 12, a);
	cr_assert(seg_sanity(&seg));
}

Test(map, sanity_catches_each_broken_invariant)
{
	three_extents();
	struct segext *x = seg.ext;

	x[1].s = 3; /* overlaps the first; the counts still add up */
	b->pages++;
	cr_expect_not(seg_sanity(&seg), "overlapping extents");
	x[1].s = 4;
	b->pages--;
	cr_assert(seg_sanity(&seg));

	struct segext t = x[0]; /* out of order */
	x[0] = x[2];
	x[2] = t;
	cr_expect_not(seg_sanity(&seg), "unsorted extents");
	x[2] = x[0];
	x[0] = t;

	x[2].e = 10; /* empty */
	a->pages -= 2;
	cr_expect_not(seg_sanity(&seg), "empty extent");
	x[2].e = NPG + 2; /* past the segment's end */
	a->pages += NPG + 2 - 10;
	cr_expect_not(seg_sanity(&seg), "extent past the end");
	x[2].e = 12;
	a->pages -= NPG + 2 - 12;
	cr_assert(seg_sanity(&seg));

	x[1].r = NULL;
	cr_expect_not(seg_sanity(&seg), "extent without a snapshot");
	x[1].r = b;

	b->pages++; /* a page counted that no extent holds */
	cr_expect_not(seg_sanity(&seg), "miscounted pages");
	b->pages--;

	seg.st.snapshots_held++;
	cr_expect_not(seg_sanity(&seg), "snapshots_held off by one");
	seg.st.snapshots_held--;
	cr_assert(seg_sanity(&seg));
}

Test(map, a_snapshot_whose_last_page_detaches_is_reaped)
{
	three_extents();
	seg_ext_clear(&seg, 4, 8);
	cr_expect_eq(b->pages, 0);
	seg_snaps_reap(&seg);
	cr_expect_eq(seg.snaps, a);
	cr_expect_eq(seg.zombies, b);
	cr_expect_eq(seg.st.snapshots_held, 1);
	seg_zombies_free(&seg);
	cr_assert(seg_sanity(&seg));
	/* a split keeps both halves counted */
	cr_assert_eq(seg_ext_room(&seg, 1), 0);
	seg_ext_clear(&seg, 1, 2);
	cr_expect_eq(seg.next, 3);
	cr_expect_eq(a->pages, 5);
	cr_assert(seg_sanity(&seg));
}
