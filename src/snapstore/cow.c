// SPDX-License-Identifier: MIT
/*
 * The copy-on-write hooks. Before blocks of a file change, every block that
 * a live snapshot still needs is copied into the block file and recorded as
 * an extent [from(b), E), where from(b) is the highest eto among the file's
 * extents covering b (0 if none) and E the current epoch. Watch for: the
 * caller holds the file's write lock throughout; the store mutex is taken
 * three times (plan + allocate, then commit) and dropped around the copy;
 * the rows are committed only after the copy is durable (when a pinned
 * snapshot needs it), and the caller changes the file only after we return.
 * A hook that succeeded records its blocks in the file's done set
 * (file.c): later changes of them return at once until a cover is added.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_i.h"

#define PLAN_CHUNK 4096u /* blocks planned per index query */

struct run {
	uint64_t blk, efrom;
	uint32_t n;
	int hole;
	int64_t loc; /* bytes, data runs only, once allocated */
	size_t sumi; /* data runs: index of its first block's checksum */
};

struct runs {
	struct run *a;
	size_t n, cap;
};

static int runs_push(struct runs *r, const struct run *x)
{
	struct run *na = store_grow(r->a, r->n, &r->cap, sizeof(*na), 16);
	if (!na)
		return -ENOMEM;
	r->a = na;
	r->a[r->n++] = *x;
	return 0;
}

/*
 * The runs' invariant, for assert() only: sorted by block, disjoint, each
 * 1..EXTIDX_MAX_NBLK blocks starting at an epoch below E; with allocated
 * != 0 every data run has an aligned location and no two share space.
 */
static __attribute__((unused)) int runs_sanity(const struct runs *r, uint64_t E, uint32_t bs,
					       int allocated)
{
	for (size_t i = 0; i < r->n; i++) {
		const struct run *x = &r->a[i];
		if (!x->n || x->n > EXTIDX_MAX_NBLK || x->efrom >= E ||
		    (i && x->blk < x[-1].blk + x[-1].n))
			return 0;
		if (!allocated || x->hole)
			continue;
		if (x->loc < 0 || (uint64_t)x->loc % bs)
			return 0;
		for (size_t j = 0; j < i; j++) { /* debug builds only: quadratic is fine */
			const struct run *y = &r->a[j];
			if (!y->hole && x->loc < y->loc + (int64_t)y->n * bs &&
			    y->loc < x->loc + (int64_t)x->n * bs)
				return 0;
		}
	}
	return 1;
}

/* Plan (mu held): the runs of blocks in [b0, b1) that a cover needs, grouped by
 * equal from() and contiguity, at most EXTIDX_MAX_NBLK blocks each. */
static int plan(struct store *st, uint64_t fid, uint32_t maxn, const struct cover *c, size_t nc,
		uint64_t b0, uint64_t b1, struct runs *out)
{
	uint64_t *from = malloc(PLAN_CHUNK * sizeof(*from));
	const struct snapforgo **fg = calloc(nc ? nc : 1, sizeof(*fg));
	struct ext *ex = NULL;
	size_t nex = 0, capex = 0;
	int rc = 0;
	if (!from || !fg) {
		free(from);
		free(fg);
		return -ENOMEM;
	}
	for (size_t i = 0; i < nc; i++) /* blocks a snapshot gave up: not needed by it */
		fg[i] = store_forgo_get(st, c[i].snap, fid);
	struct run cur = {0};
	for (uint64_t c0 = b0; c0 < b1 && !rc; c0 += PLAN_CHUNK) {
		uint64_t c1 = c0 + PLAN_CHUNK < b1 ? c0 + PLAN_CHUNK : b1;
		memset(from, 0, (c1 - c0) * sizeof(*from));
		nex = 0;
		if ((rc =
			 extidx_ext_range(st->x, fid, c0, c1, UINT64_MAX, maxn, &ex, &nex, &capex)))
			break;
		for (size_t i = 0; i < nex; i++) {
			uint64_t lo = ex[i].blk > c0 ? ex[i].blk : c0;
			uint64_t hi = ex[i].blk + ex[i].nblk < c1 ? ex[i].blk + ex[i].nblk : c1;
			for (uint64_t b = lo; b < hi; b++)
				if (ex[i].eto > from[b - c0])
					from[b - c0] = ex[i].eto;
		}
		for (uint64_t b = c0; b < c1; b++) {
			uint64_t f = from[b - c0];
			int need = 0;
			for (size_t i = 0; i < nc && !need; i++)
				need = c[i].epoch >= f && b * st->bs < c[i].size &&
				       !store_forgone(fg[i], b);
			if (!need)
				continue;
			if (cur.n && cur.blk + cur.n == b && cur.efrom == f &&
			    cur.n < EXTIDX_MAX_NBLK) {
				cur.n++;
				continue;
			}
			if (cur.n && (rc = runs_push(out, &cur)))
				break;
			cur = (struct run){.blk = b, .efrom = f, .n = 1, .loc = -1};
		}
	}
	if (!rc && cur.n)
		rc = runs_push(out, &cur);
	free(from);
	free(fg);
	free(ex);
	return rc;
}

/* Split runs at hole boundaries of the live file (no lock needed: the caller's
 * write lock keeps the file still). Blocks wholly in a hole, or past the end of
 * the file, are recorded without data. A file without holes (st_blocks covers
 * st_size) skips the probing. Probing is SEEK_DATA per block, never SEEK_HOLE:
 * on tmpfs SEEK_HOLE walks every page up to the next hole, which made each 4 KiB
 * hook O(file size). */
static int split_holes(struct store *st, int fd, const struct runs *in, struct runs *out)
{
	uint64_t bs = st->bs;
	struct stat sb;
	int rc, dense = !fstat(fd, &sb) && (uint64_t)sb.st_blocks * 512 >= (uint64_t)sb.st_size;
	for (size_t i = 0; i < in->n; i++) {
		const struct run *r = &in->a[i];
		if (dense) {
			uint64_t endb = ((uint64_t)sb.st_size + bs - 1) / bs;
			if (r->blk + r->n <= endb) {
				if ((rc = runs_push(out, r)))
					return rc;
				continue;
			}
		}
		struct run cur = {0};
		for (uint64_t b = r->blk; b < r->blk + r->n;) {
			off_t d = lseek(fd, (off_t)(b * bs), SEEK_DATA);
			uint64_t next; /* first block at or after b holding data */
			if (d < 0 && errno == ENXIO)
				next = UINT64_MAX;
			else if (d < 0)
				next = b; /* no SEEK_DATA here: treat as data */
			else
				next = (uint64_t)d / bs;
			uint64_t stop = next < r->blk + r->n ? next : r->blk + r->n;
			int hole = next > b;
			uint64_t len = hole ? stop - b : 1;
			if (cur.n && cur.hole == hole) {
				cur.n += (uint32_t)len;
			} else {
				if (cur.n && (rc = runs_push(out, &cur)))
					return rc;
				cur = *r;
				cur.blk = b;
				cur.n = (uint32_t)len;
				cur.hole = hole;
			}
			b += len;
		}
		if (cur.n && (rc = runs_push(out, &cur)))
			return rc;
	}
	return 0;
}

static int run_pinned(const struct store *st, const struct run *r, const struct cover *c, size_t nc,
		      uint64_t eto)
{
	for (size_t i = 0; i < nc; i++)
		if (c[i].kind == STORE_PINNED && c[i].epoch >= r->efrom && c[i].epoch < eto &&
		    r->blk * st->bs < c[i].size)
			return 1;
	return 0;
}

static void free_runs_space(struct store *st, struct runs *r, uint64_t *reserved)
{
	for (size_t i = 0; i < r->n; i++)
		if (!r->a[i].hole && r->a[i].loc >= 0) {
			blk_free(&st->blk, (uint64_t)r->a[i].loc / st->bs, r->a[i].n);
			r->a[i].loc = -1;
		}
	st->reserved_bytes -= *reserved;
	*reserved = 0;
}

/*
 * Group commit. A hook whose copy is written queues a request and waits; the
 * first waiter finding no leader becomes the leader: it takes every request
 * queued so far, syncs the block file once (when any of them needs it), then
 * under the store mutex inserts all their rows in one transaction and
 * commits once, and wakes them. Hooks arriving meanwhile queue for the next
 * group. Each hook returns (and its caller changes the live file) only once
 * its rows are committed after its copy was synced: the order of a lone hook.
 * If the group's transaction fails, each request is committed alone, so that
 * one failure fails only its own hook.
 */
struct cowreq {
	struct store_file *sf; /* its owner holds the write lock throughout */
	struct runs *runs;
	const uint32_t *sums;
	uint64_t reserved; /* bytes allocated for the runs, until committed */
	uint64_t fid, E;
	int sync;   /* the block file must be synced before the commit */
	int full;   /* a pinned cover needs a run: FULL commit */
	int detach; /* also mark the file detached */
	int rc, done;
	struct cowreq *next;
};

/* mu held: this request's rows, inside the open transaction. */
static int req_stage(struct store *st, struct cowreq *q)
{
	struct store_file *sf = q->sf;
	int rc = 0;
	if (sf->fid != q->fid)
		return 0; /* every cover went meanwhile: nothing is needed */
	for (size_t i = 0; i < q->runs->n && !rc; i++) {
		struct run *r = &q->runs->a[i];
		if (!store_ext_needed(sf->cov, sf->ncov, st->bs, r->blk, r->efrom, q->E))
			continue;
		struct ext e = {.fid = q->fid,
				.blk = r->blk,
				.efrom = r->efrom,
				.eto = q->E,
				.nblk = r->n,
				.loc = r->hole ? -1 : r->loc};
		rc = extidx_ext_insert(st->x, &e, r->hole ? NULL : q->sums + r->sumi);
		r->hole |= 2; /* inserted */
		if (r->n > sf->maxnblk)
			sf->maxnblk = r->n; /* harmless if the transaction rolls back */
	}
	if (!rc && q->detach)
		rc = extidx_file_set_state(st->x, q->fid, 1);
	return rc;
}

/* mu held: after the commit (rc 0) or the rollback (rc < 0). */
static void req_finish(struct store *st, struct cowreq *q, int rc)
{
	struct runs *runs = q->runs;
	q->rc = rc;
	if (rc || q->sf->fid != q->fid) {
		for (size_t i = 0; i < runs->n; i++)
			runs->a[i].hole &= 1;
		free_runs_space(st, runs, &q->reserved);
		return;
	}
	uint64_t copies = 0, bytes = 0;
	for (size_t i = 0; i < runs->n; i++) {
		struct run *r = &runs->a[i];
		int hole = r->hole & 1;
		if (r->hole & 2) {
			st->nextents++;
			copies++;
			if (!hole) {
				st->preserved_bytes += (uint64_t)r->n * st->bs;
				bytes += (uint64_t)r->n * st->bs;
			}
		} else if (!hole) {
			blk_free(&st->blk, (uint64_t)r->loc / st->bs, r->n);
		}
	}
	st->reserved_bytes -= q->reserved;
	q->reserved = 0;
	st->cow_copies += copies;
	st->cow_bytes += bytes;
	if (q->detach)
		q->sf->detached = 1;
}

/* mu held: whether q's commit must be FULL. */
static int req_full(const struct cowreq *q)
{
	return q->full || (q->detach && store_sync_mode(q->sf->cov, q->sf->ncov));
}

/* The leader's work for the requests of one group (no lock held). */
static void group_run(struct store *st, struct cowreq *g)
{
	int sync = 0, n = 0;
	for (struct cowreq *q = g; q; q = q->next, n++)
		sync |= q->sync;
	store_test_point("cow:sync"); /* a group's copies written, not yet synced */
	int rc = sync ? blk_sync(&st->blk) : 0;
	pthread_mutex_lock(&st->mu);
	if (rc) {
		for (struct cowreq *q = g; q; q = q->next)
			req_finish(st, q, rc);
		pthread_mutex_unlock(&st->mu);
		return;
	}
	if (n > 1) {
		int full = 0;
		for (struct cowreq *q = g; q; q = q->next)
			full |= req_full(q);
		rc = store_begin(st, full);
		for (struct cowreq *q = g; q && !rc; q = q->next)
			rc = req_stage(st, q);
		if (!rc)
			rc = store_commit(st);
		else
			extidx_rollback(st->x);
		if (!rc) {
			st->cow_commits++;
			for (struct cowreq *q = g; q; q = q->next)
				req_finish(st, q, 0);
			pthread_mutex_unlock(&st->mu);
			return;
		}
		for (struct cowreq *q = g; q; q = q->next) /* nothing was inserted */
			for (size_t i = 0; i < q->runs->n; i++)
				q->runs->a[i].hole &= 1;
	}
	/* One alone, or the group failed: each alone. */
	for (struct cowreq *q = g; q; q = q->next) {
		rc = store_begin(st, req_full(q));
		if (!rc)
			rc = req_stage(st, q);
		if (!rc)
			rc = store_commit(st);
		else
			extidx_rollback(st->x);
		st->cow_commits += !rc;
		req_finish(st, q, rc);
	}
	pthread_mutex_unlock(&st->mu);
}

static int group_commit(struct store *st, struct cowreq *q)
{
	pthread_mutex_lock(&st->gmu);
	*st->gtail = q;
	st->gtail = &q->next;
	while (!q->done) {
		if (st->gleader) {
			pthread_cond_wait(&st->gcv, &st->gmu);
			continue;
		}
		st->gleader = 1;
		struct cowreq *g = st->gq;
		st->gq = NULL;
		st->gtail = &st->gq;
		pthread_mutex_unlock(&st->gmu);
		group_run(st, g);
		pthread_mutex_lock(&st->gmu);
		for (struct cowreq *x = g, *nx; x; x = nx) {
			nx = x->next;
			x->next = NULL;
			x->done = 1;
		}
		st->gleader = 0;
		pthread_cond_broadcast(&st->gcv);
	}
	pthread_mutex_unlock(&st->gmu);
	return q->rc;
}

/*
 * Preserve what the covers need of the block ranges br[i] = [b0, b1) of sf
 * (increasing, disjoint), then (detach) mark the file detached, all in one
 * transaction with at most one sync of the block file.
 */
static int cow_blocks(struct store_file *sf, int fd, const uint64_t (*br)[2], size_t nbr,
		      int detach)
{
	struct store *st = sf->st;
	struct runs planned = {0}, runs = {0};
	struct cover *c = NULL;
	uint32_t *sums = NULL;
	size_t nc;
	uint64_t fid, E, gen, reserved = 0;
	int rc = 0, full = 0;

	pthread_mutex_lock(&st->mu);
	assert(store_cover_sanity(sf));
	if (sf->detached || !sf->ncov) {
		if (detach)
			sf->detached = 1;
		pthread_mutex_unlock(&st->mu);
		return 0;
	}
	nc = sf->ncov;
	c = malloc(nc * sizeof(*c));
	if (!c) {
		pthread_mutex_unlock(&st->mu);
		return -ENOMEM;
	}
	memcpy(c, sf->cov, nc * sizeof(*c));
	fid = sf->fid;
	E = st->epoch;
	gen = sf->covgen;
	uint64_t maxblk = 0;
	for (size_t i = 0; i < nc; i++) {
		uint64_t nb = (c[i].size + st->bs - 1) / st->bs;
		if (nb > maxblk)
			maxblk = nb;
	}
	/* Many ranges: one read transaction for all their lookups. */
	int rtx = nbr > 1 && extidx_read_begin(st->x) == 0;
	for (size_t i = 0; i < nbr && !rc; i++) {
		uint64_t b0 = br[i][0], b1 = br[i][1] < maxblk ? br[i][1] : maxblk;
		if (b0 < b1)
			rc = plan(st, fid, sf->maxnblk, c, nc, b0, b1, &planned);
	}
	if (rtx)
		extidx_read_end(st->x);
	pthread_mutex_unlock(&st->mu);
	if (rc)
		goto out;
	if (!planned.n && !detach)
		goto out;

	assert(runs_sanity(&planned, E, st->bs, 0));
	if ((rc = split_holes(st, fd, &planned, &runs)))
		goto out;
	assert(runs_sanity(&runs, E, st->bs, 0));

	/* Allocate, within store_max. */
	uint64_t need = 0;
	for (size_t i = 0; i < runs.n; i++)
		if (!runs.a[i].hole)
			need += (uint64_t)runs.a[i].n * st->bs;
	pthread_mutex_lock(&st->mu);
	if (st->max_bytes && st->preserved_bytes + st->reserved_bytes + need > st->max_bytes) {
		pthread_mutex_unlock(&st->mu);
		rc = -ENOSPC;
		goto out;
	}
	/* Many runs: one contiguous allocation, so the copies can be gathered
	 * into few writes (blk_gather). */
	size_t ncopy = 0;
	for (size_t i = 0; i < runs.n; i++)
		ncopy += !runs.a[i].hole;
	int gather = ncopy > 1;
	uint64_t next = 0;
	if (gather && !(rc = blk_alloc(&st->blk, need / st->bs, &next)))
		next *= st->bs;
	for (size_t i = 0; i < runs.n && !rc; i++) {
		struct run *r = &runs.a[i];
		uint64_t start;
		if (r->hole)
			continue;
		if (gather) {
			r->loc = (int64_t)next;
			next += (uint64_t)r->n * st->bs;
		} else if (!(rc = blk_alloc(&st->blk, r->n, &start))) {
			r->loc = (int64_t)(start * st->bs);
		} else {
			break;
		}
		reserved += (uint64_t)r->n * st->bs;
	}
	st->reserved_bytes += reserved;
	if (rc)
		free_runs_space(st, &runs, &reserved);
	assert(rc || runs_sanity(&runs, E, st->bs, 1));
	pthread_mutex_unlock(&st->mu);
	if (rc)
		goto out;

	/* Copy, outside the store mutex. */
	if (gather) {
		uint64_t(*src)[2] = malloc(ncopy * sizeof(*src));
		size_t k = 0, first = 0;
		for (size_t i = 0; src && i < runs.n; i++) {
			if (runs.a[i].hole)
				continue;
			if (!k)
				first = i;
			src[k][0] = runs.a[i].blk * st->bs;
			src[k++][1] = (uint64_t)runs.a[i].n * st->bs;
		}
		rc = src ? blk_gather(&st->blk, fd, (const uint64_t(*)[2])src, k,
				      (uint64_t)runs.a[first].loc)
			 : -ENOMEM;
		free(src);
	}
	for (size_t i = 0; i < runs.n && !rc && !gather; i++) {
		struct run *r = &runs.a[i];
		if (r->hole)
			continue;
		rc = blk_copy(&st->blk, fd, r->blk * st->bs, (uint64_t)r->loc,
			      (uint64_t)r->n * st->bs);
		if (run_pinned(st, r, c, nc, E))
			full = 1;
	}
	for (size_t i = 0; i < runs.n && !full; i++)
		full = run_pinned(st, &runs.a[i], c, nc, E);
	/* Checksums of what the block file now holds, for the rows. */
	if (!rc && need && !(sums = malloc(need / st->bs * sizeof(*sums))))
		rc = -ENOMEM;
	for (size_t i = 0, k = 0; i < runs.n && !rc; i++) {
		struct run *r = &runs.a[i];
		if (r->hole)
			continue;
		r->sumi = k;
		rc = blk_sums(&st->blk, (uint64_t)r->loc, r->n, fid, r->blk, r->efrom, E, sums + k);
		k += r->n;
	}
	if (rc) {
		pthread_mutex_lock(&st->mu);
		free_runs_space(st, &runs, &reserved);
		pthread_mutex_unlock(&st->mu);
		goto out;
	}
	store_test_point("cow:copied");

	/* Sync and commit, in a group with the hooks committing meanwhile. */
	struct cowreq q = {.sf = sf,
			   .runs = &runs,
			   .sums = sums,
			   .reserved = reserved,
			   .fid = fid,
			   .E = E,
			   .sync = full && need,
			   .full = full,
			   .detach = detach};
	if ((rc = group_commit(st, &q)))
		goto out;
	store_test_point("cow:committed");
out:
	/* Done for the covers planned with: later changes of these blocks skip
	 * the hook until a cover is added. */
	for (size_t i = 0; i < nbr && !rc && !detach; i++)
		cowdone_add(sf, gen, br[i][0], br[i][1]);
	free(sums);
	free(planned.a);
	free(runs.a);
	free(c);
	return rc;
}

static int cur_size(int fd, uint64_t *size)
{
	struct stat sb;
	if (fstat(fd, &sb))
		return -errno;
	*size = (uint64_t)sb.st_size;
	return 0;
}

/* Whether bytes [off, off + len) lie in blocks whose copy-on-write is done. */
static int range_done(struct store_file *sf, uint64_t off, uint64_t len)
{
	uint32_t bs = sf->st->bs;
	if (off + len < off)
		return 0;
	return cowdone_has(sf, off / bs, (off + len + bs - 1) / bs);
}

int store_cow_cached(struct store_file *sf, uint64_t off, uint64_t len)
{
	if (!store_file_tracked(sf))
		return 1;
	if (len && !range_done(sf, off, len))
		return 0;
	sf->hooked = 1; /* under the write lock: store_file_unlock records the change */
	return 1;
}

int store_cow_range(struct store_file *sf, int fd, uint64_t off, uint64_t len)
{
	if (!store_file_tracked(sf))
		return 0;
	sf->hooked = 1; /* under the write lock: store_file_unlock records the change */
	if (!len || range_done(sf, off, len))
		return 0;
	uint64_t size;
	int rc = cur_size(fd, &size);
	if (rc)
		return rc;
	uint64_t end = off + len < off ? UINT64_MAX : off + len;
	if (end > size)
		end = size;
	if (end <= off)
		return 0;
	uint32_t bs = sf->st->bs;
	const uint64_t br[1][2] = {{off / bs, (end + bs - 1) / bs}};
	return cow_blocks(sf, fd, br, 1, 0);
}

int store_cow_ranges(struct store_file *sf, int fd, const uint64_t (*r)[2], size_t n)
{
	if (!store_file_tracked(sf))
		return 0;
	sf->hooked = 1;
	size_t ndone = 0;
	for (size_t i = 0; i < n; i++)
		ndone += range_done(sf, r[i][0], r[i][1]);
	if (ndone == n)
		return 0;
	uint64_t size;
	int rc = cur_size(fd, &size);
	if (rc)
		return rc;
	uint32_t bs = sf->st->bs;
	uint64_t(*br)[2] = calloc(n, sizeof(*br));
	if (!br)
		return -ENOMEM;
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t off = r[i][0], end = off + r[i][1] < off ? UINT64_MAX : off + r[i][1];
		if (i && off < r[i - 1][0] + r[i - 1][1]) {
			rc = -EINVAL; /* not increasing and disjoint */
			break;
		}
		if (end > size)
			end = size;
		if (end <= off)
			continue;
		uint64_t b0 = off / bs, b1 = (end + bs - 1) / bs;
		if (m && b0 < br[m - 1][1]) /* two ranges share a block */
			b0 = br[m - 1][1];
		if (b0 < b1) {
			br[m][0] = b0;
			br[m][1] = b1;
			m++;
		}
	}
	if (!rc)
		rc = cow_blocks(sf, fd, (const uint64_t(*)[2])br, m, 0);
	free(br);
	return rc;
}

int store_cow_truncate(struct store_file *sf, int fd, uint64_t new_size)
{
	if (!store_file_tracked(sf))
		return 0;
	sf->hooked = 1;
	uint64_t size;
	int rc = cur_size(fd, &size);
	if (rc)
		return rc;
	if (new_size >= size)
		return 0; /* growing exposes zeros past the old end: no snapshot sees them */
	return store_cow_range(sf, fd, new_size, size - new_size);
}

int store_cow_tail(struct store_file *sf, int fd, uint64_t off)
{
	return store_cow_range(sf, fd, off, UINT64_MAX - off);
}

int store_cow_unlink(struct store_file *sf, int fd)
{
	const uint64_t br[1][2] = {{0, UINT64_MAX}};
	return cow_blocks(sf, fd, br, 1, 1);
}
