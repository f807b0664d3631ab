// SPDX-License-Identifier: MIT
/*
 * store_check: an fsck of the index against the block file, and a scrub of
 * every preserved block against its checksum. Read-only. The index checks
 * run under the store mutex, so they see no half-done release; the scrub,
 * which reads the whole block file, runs after it under the space read lock
 * alone (writers go on; releases wait). Space a hook has allocated but not
 * yet committed is allocated-but-unreferenced: that is only a problem when
 * no hook is in flight.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_i.h"

struct chk {
	struct store *st;
	int (*fn)(void *arg, const char *problem);
	void *arg;
	int problems;
	int stop;
	struct ext *a;
	size_t n, cap;
};

static void problem(struct chk *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct chk *k, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	k->problems++;
	if (!k->stop && k->fn && k->fn(k->arg, buf))
		k->stop = 1;
}

static void ns_problem(void *arg, const char *msg)
{
	problem(arg, "%s", msg);
}

static int grab(void *arg, const struct ext *e)
{
	struct chk *k = arg;
	struct ext *na = store_grow(k->a, k->n, &k->cap, sizeof(*na), 1024);
	if (!na)
		return -ENOMEM;
	k->a = na;
	k->a[k->n++] = *e;
	return 0;
}

static int by_loc(const void *a, const void *b)
{
	const struct ext *x = a, *y = b;
	return x->loc < y->loc ? -1 : x->loc > y->loc;
}

static int by_fid_blk(const void *a, const void *b)
{
	const struct ext *x = a, *y = b;
	if (x->fid != y->fid)
		return x->fid < y->fid ? -1 : 1;
	if (x->blk != y->blk)
		return x->blk < y->blk ? -1 : 1;
	return x->efrom < y->efrom ? -1 : x->efrom > y->efrom;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Whether a data extent (k->a sorted by loc, non-overlapping) meets [lo, hi). */
static int used_in(struct chk *k, uint64_t lo, uint64_t hi)
{
	size_t l = 0, r = k->n;
	while (l < r) { /* first extent ending after lo */
		size_t m = (l + r) / 2;
		if ((uint64_t)k->a[m].loc + (uint64_t)k->a[m].nblk * k->st->bs <= lo)
			l = m + 1;
		else
			r = m;
	}
	return l < k->n && (uint64_t)k->a[l].loc < hi;
}

/* Allocated block-file data outside every data extent: the file's data regions
 * (SEEK_DATA/SEEK_HOLE) in units of g, the larger of the block size and the
 * filesystem's allocation unit (a punched block smaller than a page leaves the
 * page allocated, zeroed, when its neighbour is in use). */
static void check_orphans(struct chk *k, uint64_t fsize, uint64_t g, uint64_t *unref)
{
	struct store *st = k->st;
	off_t pos = 0;
	*unref = 0;
	while ((uint64_t)pos < fsize) {
		off_t d = lseek(st->blk.fd, pos, SEEK_DATA);
		if (d < 0)
			break;
		off_t h = lseek(st->blk.fd, d, SEEK_HOLE);
		if (h < 0)
			h = (off_t)fsize;
		for (uint64_t u = (uint64_t)d / g * g; u < (uint64_t)h; u += g)
			if (!used_in(k, u, u + g))
				*unref += g;
		pos = h;
	}
}

/* The data extents and their checksums, collected under the mutex and
 * verified after it (a scrub reads the whole block file: writers must not
 * wait for it). */
struct scrub {
	struct chk *k;
	struct ext *a;
	size_t n, cap;
	struct extidx_sums sums;
};

static int collect_sums(void *arg, const struct ext *e, const uint32_t *sums)
{
	struct scrub *s = arg;
	struct store *st = s->k->st;
	if (!sums) {
		if (st->sums_all)
			problem(s->k,
				"extent fid %" PRIu64 " blk %" PRIu64
				": no checksums, or not one per block (an edited index row)",
				e->fid, e->blk);
		return 0;
	}
	struct ext *na = store_grow(s->a, s->n, &s->cap, sizeof(*na), 256);
	if (!na)
		return -ENOMEM;
	s->a = na;
	uint32_t *ns = s->sums.a;
	while (s->sums.n + e->nblk > s->sums.cap) {
		ns = store_grow(s->sums.a, s->sums.cap, &s->sums.cap, sizeof(*ns), 1024);
		if (!ns)
			return -ENOMEM;
		s->sums.a = ns;
	}
	memcpy(s->sums.a + s->sums.n, sums, e->nblk * sizeof(*sums));
	s->a[s->n] = *e;
	s->a[s->n++].sumi = (int64_t)s->sums.n;
	s->sums.n += e->nblk;
	return 0;
}

/* No store lock held: the space read lock keeps every collected extent's
 * space from being freed or reused (only a release frees, under the write
 * lock). */
static int scrub(struct scrub *s)
{
	struct store *st = s->k->st;
	uint32_t *got = malloc(EXTIDX_MAX_NBLK * sizeof(*got));
	int rc = got ? 0 : -ENOMEM;
	pthread_rwlock_rdlock(&st->space);
	for (size_t j = 0; j < s->n && !rc; j++) {
		const struct ext *e = &s->a[j];
		const uint32_t *want = s->sums.a + e->sumi;
		if (e->nblk > EXTIDX_MAX_NBLK)
			continue; /* reported as a bad shape */
		rc = blk_sums(&st->blk, (uint64_t)e->loc, e->nblk, e->fid, e->blk, e->efrom, e->eto,
			      got);
		for (uint32_t i = 0; !rc && i < e->nblk; i++)
			if (got[i] != want[i])
				problem(s->k,
					"extent fid %" PRIu64 " blk %" PRIu64 " epochs [%" PRIu64
					", %" PRIu64 "): block %u does not match its checksum "
					"(block-file offset %" PRIu64 ")",
					e->fid, e->blk, e->efrom, e->eto, i,
					(uint64_t)e->loc + (uint64_t)i * st->bs);
	}
	pthread_rwlock_unlock(&st->space);
	free(got);
	return rc;
}

int store_check(struct store *st, int (*fn)(void *arg, const char *problem), void *arg)
{
	struct chk k = {.st = st, .fn = fn, .arg = arg};
	struct scrub sc = {.k = &k};
	struct extidx_file *files = NULL;
	struct extidx_sfile *sfs = NULL;
	size_t nfiles = 0, nsfs = 0;
	uint64_t *fids = NULL;
	struct stat sb;

	pthread_mutex_lock(&st->mu);
	int rc = extidx_ext_each(st->x, grab, &k);
	if (!rc)
		rc = extidx_ext_each_sums(st->x, collect_sums, &sc);
	if (!rc)
		rc = extidx_files_all(st->x, &files, &nfiles);
	if (!rc)
		rc = extidx_sfiles(st->x, 0, &sfs, &nsfs);
	if (!rc && fstat(st->blk.fd, &sb))
		rc = -errno;
	if (rc)
		goto out;
	uint64_t fsize = (uint64_t)sb.st_size;

	/* Rows themselves, and non-overlap in (block, epoch) space per file. */
	if (k.n)
		qsort(k.a, k.n, sizeof(*k.a), by_fid_blk);
	for (size_t i = 0; i < k.n; i++) {
		struct ext *e = &k.a[i];
		if (!e->nblk || e->nblk > EXTIDX_MAX_NBLK || e->efrom >= e->eto ||
		    e->eto > st->epoch)
			problem(&k,
				"extent fid %" PRIu64 " blk %" PRIu64
				": bad shape (nblk %u, epochs "
				"[%" PRIu64 ", %" PRIu64 "), current epoch %" PRIu64 ")",
				e->fid, e->blk, e->nblk, e->efrom, e->eto, st->epoch);
		for (size_t j = i + 1;
		     j < k.n && k.a[j].fid == e->fid && k.a[j].blk < e->blk + e->nblk; j++) {
			struct ext *f = &k.a[j];
			if (f->efrom < e->eto && e->efrom < f->eto)
				problem(&k,
					"extents of fid %" PRIu64 " overlap: blk %" PRIu64
					" epochs [%" PRIu64 ",%" PRIu64 ") and blk %" PRIu64
					" epochs [%" PRIu64 ",%" PRIu64 ")",
					e->fid, e->blk, e->efrom, e->eto, f->blk, f->efrom, f->eto);
		}
	}

	/* Data extents: aligned, inside the block file, not sharing space. */
	size_t nd = 0;
	for (size_t i = 0; i < k.n; i++)
		if (k.a[i].loc >= 0)
			k.a[nd++] = k.a[i];
	k.n = nd;
	if (k.n)
		qsort(k.a, k.n, sizeof(*k.a), by_loc);
	for (size_t i = 0; i < k.n; i++) {
		struct ext *e = &k.a[i];
		uint64_t end = (uint64_t)e->loc + (uint64_t)e->nblk * st->bs;
		if ((uint64_t)e->loc % st->bs)
			problem(&k,
				"extent fid %" PRIu64 " blk %" PRIu64
				": unaligned location %" PRId64,
				e->fid, e->blk, e->loc);
		if (end > fsize)
			problem(&k,
				"extent fid %" PRIu64 " blk %" PRIu64 ": [%" PRId64 ", %" PRIu64
				") lies past the block file's end %" PRIu64,
				e->fid, e->blk, e->loc, end, fsize);
		if (i + 1 < k.n && (uint64_t)k.a[i + 1].loc < end)
			problem(&k,
				"extents fid %" PRIu64 " blk %" PRIu64 " and fid %" PRIu64
				" blk %" PRIu64 " share block-file space at %" PRId64,
				e->fid, e->blk, k.a[i + 1].fid, k.a[i + 1].blk, k.a[i + 1].loc);
	}
	uint64_t unref;
	uint64_t g = (uint64_t)sb.st_blksize > st->bs ? (uint64_t)sb.st_blksize : st->bs;
	check_orphans(&k, fsize, g, &unref);
	if (unref > (st->reserved_bytes + g - 1) / g * g + (st->reserved_bytes ? g : 0))
		problem(&k, "%" PRIu64 " bytes of block-file data belong to no extent", unref);

	/* Every snapshot's files are known. */
	fids = malloc((nfiles + 1) * sizeof(*fids));
	if (!fids) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nfiles; i++)
		fids[i] = files[i].fid;
	if (nfiles)
		qsort(fids, nfiles, sizeof(*fids), cmp_u64);
	for (size_t i = 0; i < nsfs; i++)
		if (!bsearch(&sfs[i].fid, fids, nfiles, sizeof(*fids), cmp_u64))
			problem(&k, "snapshot %" PRIu64 " file %s: fid %" PRIu64 " unknown",
				sfs[i].snap, sfs[i].path, sfs[i].fid);
	if (st->lost_tx)
		problem(&k,
			"the index lost %" PRIu64
			" committed transactions before this open (its WAL "
			"was deleted or damaged): snapshots and copies made in them are gone",
			st->lost_tx);
	for (size_t i = 0; i < st->nsnaps; i++)
		if (st->snaps[i].damaged)
			problem(&k,
				"snapshot %" PRIu64
				" is unreadable: the store was damaged (a truncated "
				"block file or lost index transactions; see the log at open): "
				"release it",
				st->snaps[i].id);
	for (size_t i = 0; i < nsfs; i++)
		if (!store_snap_find(st, sfs[i].snap))
			problem(&k, "snap_files row for unknown snapshot %" PRIu64, sfs[i].snap);
	rc = ns_check(st, ns_problem, &k); /* tree snapshots' rows */
out:
	pthread_mutex_unlock(&st->mu);
	if (!rc)
		rc = scrub(&sc);
	free(sc.a);
	free(sc.sums.a);
	free(k.a);
	free(files);
	free(fids);
	extidx_sfiles_free(sfs, nsfs);
	return rc ? rc : k.problems;
}
