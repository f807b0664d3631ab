/* SPDX-License-Identifier: MIT */
/*
 * Private to the segment (snapseg.c: faults, reads, discard; snapseg_map.c:
 * the association map; snapseg_wb.c: write-back): its structures and the
 * helpers they share. See the top of
 * snapseg.c for the design and docs/SEGMENT.md.
 */
#ifndef SEGMENT_I_H
#define SEGMENT_I_H

#include "snapfs.h"
#include "snapseg_i.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PG	      4096UL
#define BOUNCE	      (1UL << 20) /* bounce buffers and the largest fill */
#define FILL_FIRST    16	  /* pages of the first sequential batch (64 KiB) */
#define FILL_MAX      (BOUNCE / PG)
#define WB_MIN_RUNS   8		    /* write-back: fewer runs go through write() */
#define WB_MAX_BYTES  (256UL << 20) /* and so do more bytes than this */
#define WB_KEEP_BYTES (32UL << 20)  /* a write-back buffer this small is kept */

/* One snapseg_read's snapshot and the pages that still show it. h and
 * delta are set before it is linked into seg->snaps and not changed after
 * (the fault handler reads h under seg->lock: one reader at a time). */
struct segsnap {
	struct snaphold h;
	int64_t delta;	      /* file offset of a byte = its address + delta */
	int advice;	      /* posix_fadvise mode set on h.view; handler only */
	uint64_t pages;	      /* pages still associated; protected by seg->lock */
	struct segsnap *next; /* protected by seg->lock */
};

/* Pages [s, e) (page indices from base) show snapshot r. */
struct segext {
	uintptr_t s, e;
	struct segsnap *r;
};

struct snapseg {
	char *base; /* base, size, uffd: set by snapseg_create, then constant */
	size_t size;
	int uffd;
	char *fillbuf;		   /* protected by lock */
	struct snapfs_req *relreq; /* releases in the fault handler; protected by lock */
	pthread_mutex_t wb_lock;   /* protects wbfd, wbsize */
	int wbfd;		   /* write-back buffer kept between calls, -1: none */
	uint64_t wbsize;
	pthread_mutex_t lock;
	struct segext *ext;	 /* sorted, disjoint; protected by lock */
	size_t next, aext;	 /* protected by lock */
	struct segsnap *snaps;	 /* protected by lock */
	struct segsnap *zombies; /* dropped, to be freed outside the handler; lock */
	uintptr_t seq_end;	 /* first page after the last fill; protected by lock */
	size_t seq_batch;	 /* size of the last fill in pages; protected by lock */
	struct snapseg_stats st; /* protected by lock */
};

/* ---- the association map (snapseg_map.c) ---- */
/* All of these are called with seg->lock held and are async-signal-safe. */

/* Index of the first extent with e > pg. */
size_t seg_ext_find(const struct snapseg *seg, uintptr_t pg);
/* The extent holding page pg, or NULL. */
struct segext *seg_ext_lookup(struct snapseg *seg, uintptr_t pg);
/* Room for more extents (mmap/mremap): 0 or -ENOMEM. */
int seg_ext_room(struct snapseg *seg, size_t more);
/* Detach pages [s, e). Needs room for one more extent (a split). */
void seg_ext_clear(struct snapseg *seg, uintptr_t s, uintptr_t e);
/* Pages [s, e) now show r (after seg_ext_clear of the same range). */
void seg_ext_insert(struct snapseg *seg, uintptr_t s, uintptr_t e, struct segsnap *r);
/* Release the snapshots no page shows any more; they become zombies. */
void seg_snaps_reap(struct snapseg *seg);
/* Free the zombies. Not in the fault handler (free). */
void seg_zombies_free(struct snapseg *seg);
/* The map's invariants hold (sorted, disjoint, counted): for assert(). */
bool seg_sanity(const struct snapseg *seg);

/* [p, p + len) lies inside the segment. */
bool seg_inside(const struct snapseg *seg, const void *p, size_t len);
/* Full pages of [p, p + len) as page indices [*s, *e); *e <= *s when none. */
void seg_full_pages(const struct snapseg *seg, const void *p, size_t len, uintptr_t *s,
		    uintptr_t *e);

#endif
