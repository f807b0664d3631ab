// SPDX-License-Identifier: MIT
/*
 * The segment's association map (docs/SEGMENT.md): a sorted array of
 * extents "pages [s, e) show snapshot r", and the snapshots they count.
 * Everything here runs with seg->lock held, in the SIGBUS handler too, so
 * it must stay async-signal-safe: the array grows with mmap/mremap, a
 * snapshot whose last page detaches is released with the segment's
 * preallocated request and parked on the zombie list, freed later outside
 * the handler. seg_sanity() checks the invariants; callers assert() it at
 * the end of each locked section.
 */
#include "snapfs.h"
#include "snapseg_i.h"
#include "segment_i.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Index of the first extent with e > pg. */
size_t seg_ext_find(const struct snapseg *seg, uintptr_t pg)
{
	size_t lo = 0, hi = seg->next;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (seg->ext[mid].e <= pg)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct segext *seg_ext_lookup(struct snapseg *seg, uintptr_t pg)
{
	size_t i = seg_ext_find(seg, pg);
	return i < seg->next && seg->ext[i].s <= pg ? &seg->ext[i] : NULL;
}

/* Grows with mmap/mremap: called in the fault handler too. */
int seg_ext_room(struct snapseg *seg, size_t more)
{
	if (seg->next + more <= seg->aext)
		return 0;
	size_t na = seg->aext ? seg->aext * 2 : PG / sizeof(*seg->ext);
	while (na < seg->next + more)
		na *= 2;
	void *v = seg->ext ? mremap(seg->ext, seg->aext * sizeof(*seg->ext), na * sizeof(*seg->ext),
				    MREMAP_MAYMOVE)
			   : mmap(NULL, na * sizeof(*seg->ext), PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (v == MAP_FAILED)
		return -ENOMEM;
	seg->ext = v;
	seg->aext = na;
	return 0;
}

static void snap_unlink(struct snapseg *seg, struct segsnap *r)
{
	struct segsnap **pp = &seg->snaps;
	while (*pp != r)
		pp = &(*pp)->next;
	*pp = r->next;
	snaphold_drop(&r->h, seg->relreq);
	r->next = seg->zombies;
	seg->zombies = r;
	seg->st.snapshots_held--;
}

/* Drop snapshots no page shows any more. */
void seg_snaps_reap(struct snapseg *seg)
{
	for (struct segsnap *r = seg->snaps, *n; r; r = n) {
		n = r->next;
		if (!r->pages)
			snap_unlink(seg, r);
	}
}

/* Detach pages [s, e). Needs room for one more extent (a split). */
void seg_ext_clear(struct snapseg *seg, uintptr_t s, uintptr_t e)
{
	size_t i = seg_ext_find(seg, s);
	while (i < seg->next && seg->ext[i].s < e) {
		struct segext *x = &seg->ext[i];
		if (x->s < s && x->e > e) { /* split */
			memmove(x + 1, x, (seg->next - i) * sizeof(*x));
			seg->next++;
			x[1].s = e;
			x->e = s;
			x->r->pages -= e - s;
			return;
		}
		if (x->s < s) {
			x->r->pages -= x->e - s;
			x->e = s;
			i++;
		} else if (x->e > e) {
			x->r->pages -= e - x->s;
			x->s = e;
			return;
		} else {
			x->r->pages -= x->e - x->s;
			memmove(x, x + 1, (seg->next - i - 1) * sizeof(*x));
			seg->next--;
		}
	}
}

/* Pages [s, e) now show r (after ext_clear of the same range). */
void seg_ext_insert(struct snapseg *seg, uintptr_t s, uintptr_t e, struct segsnap *r)
{
	size_t i = seg_ext_find(seg, s);
	memmove(&seg->ext[i + 1], &seg->ext[i], (seg->next - i) * sizeof(seg->ext[0]));
	seg->ext[i] = (struct segext){s, e, r};
	seg->next++;
	r->pages += e - s;
}

/* Free the snapshots dropped in the fault handler. Called with seg->lock
 * held, outside the handler. */
void seg_zombies_free(struct snapseg *seg)
{
	while (seg->zombies) {
		struct segsnap *r = seg->zombies;
		seg->zombies = r->next;
		free(r);
	}
}

bool seg_inside(const struct snapseg *seg, const void *p, size_t len)
{
	uintptr_t a = (uintptr_t)p, b = (uintptr_t)seg->base;
	return a >= b && len <= seg->size && a - b <= seg->size - len;
}

/* Full pages of [p, p + len) as page indices [*s, *e); *e <= *s when none. */
void seg_full_pages(const struct snapseg *seg, const void *p, size_t len, uintptr_t *s,
		    uintptr_t *e)
{
	uintptr_t a = (uintptr_t)p - (uintptr_t)seg->base;
	*s = (a + PG - 1) / PG;
	*e = (a + len) / PG;
}

/*
 * The map's invariants: extents are non-empty, inside the segment, sorted
 * and disjoint, each names a snapshot; every page an extent holds is
 * counted by its snapshot (the sum of the extents' pages is the sum of the
 * linked snapshots' counts), and snapshots_held counts the linked
 * snapshots. O(extents + snapshots); for assert() only.
 */
bool seg_sanity(const struct snapseg *seg)
{
	uint64_t pages = 0, counted = 0, nsnaps = 0;
	if (seg->next > seg->aext || (seg->next && !seg->ext))
		return false;
	for (size_t i = 0; i < seg->next; i++) {
		const struct segext *x = &seg->ext[i];
		if (x->s >= x->e || x->e > seg->size / PG || !x->r)
			return false;
		if (i && seg->ext[i - 1].e > x->s)
			return false;
		pages += x->e - x->s;
	}
	for (const struct segsnap *r = seg->snaps; r; r = r->next) {
		counted += r->pages;
		nsnaps++;
	}
	return pages == counted && nsnaps == seg->st.snapshots_held;
}
