// SPDX-License-Identifier: MIT
/*
 * The segment's write-back (docs/SEGMENT.md, "Write-back"): snapseg_write
 * skips the pages still showing an unchanged block of the same file at the
 * same offset and writes the rest, in one daemon request when the runs are
 * many (batched, with the blocks no page shows any more given up first),
 * else one write(2) per run through a bounce buffer.
 */
#include "snapfs.h"
#include "snapfs_proto.h"
#include "client_i.h"
#include "segment_i.h"
#include "fullio.h"
#include "rec.h"
#include "vec.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

/* ---- write-back ---- */

/* The ranges of r's file changed since its snapshot, sorted; from DIFF.
 * v, n, alloc: a vector (vec.h). */
struct changed {
	struct segsnap *r;
	struct snapfs_range *v;
	size_t n, alloc;
	bool all; /* the daemon could not tell: everything counts as changed */
};

static int range_cmp(const void *a, const void *b)
{
	const struct snapfs_range *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

static int changed_load(struct changed *c)
{
	struct snapfs_req *q = snapfs_req_new(SNAPFS_OP_DIFF);
	if (!q)
		return -ENOMEM;
	int rc = 0;
	do {
		q->op = SNAPFS_OP_DIFF;
		q->id = c->r->h.id;
		q->len = q->count = 0;
		if (snapfs_call_fd(c->r->h.holder, q)) {
			rc = -errno;
			break;
		}
		struct rec_iter it;
		struct snapfs_rec_diff d;
		const void *ranges;
		const char *path;
		rec_iter_init(&it, q);
		while ((rc = rec_next_diff(&it, &d, &ranges, &path)) > 0) {
			if (d.status)
				c->all = true;
			if ((rc = vec_reserve(c, d.nranges)))
				break;
			for (uint32_t k = 0; k < d.nranges; k++)
				c->v[c->n++] = rec_range(ranges, k);
		}
	} while (!rc && q->cursor);
	free(q);
	if (!rc && c->n)
		qsort(c->v, c->n, sizeof(*c->v), range_cmp);
	return rc;
}

/* Whether [off, off + len) of the file changed since c's snapshot. */
static bool changed_hit(const struct changed *c, uint64_t off, uint64_t len)
{
	if (c->all)
		return true;
	size_t lo = 0, hi = c->n;
	while (lo < hi) { /* first range ending after off */
		size_t mid = (lo + hi) / 2;
		if (c->v[mid].off + c->v[mid].len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < c->n && c->v[i].off < off + len; i++)
		if (c->v[i].off + c->v[i].len > off)
			return true;
	return false;
}

/* Write src[a, b) at off + a, through a bounce buffer: the copy runs in
 * user mode, so unfilled pages are faulted in by the handler. */
static int write_run(int fd, const char *src, size_t a, size_t b, off_t off, char *bounce)
{
	while (a < b) {
		size_t n = b - a < BOUNCE ? b - a : BOUNCE;
		memcpy(bounce, src + a, n);
		int rc = pwrite_full(fd, bounce, n, off + (off_t)a);
		if (rc)
			return rc;
		a += n;
	}
	return 0;
}

struct wrun {
	size_t at, end; /* bytes [at, end) of the source */
};

struct wruns {
	struct wrun *v;
	size_t n, alloc;
};

/* Copy len bytes from the segment into the file data at off through a
 * bounce buffer, in user mode (unfilled pages fill). */
static int pack_slow(int data, const char *src, size_t len, uint64_t off)
{
	char *b = malloc(len < BOUNCE ? len : BOUNCE);
	if (!b)
		return -ENOMEM;
	int rc = 0;
	for (size_t done = 0; done < len && !rc;) {
		size_t k = len - done < BOUNCE ? len - done : BOUNCE;
		memcpy(b, src + done, k);
		rc = pwrite_full(data, b, k, (off_t)(off + done));
		done += k;
	}
	free(b);
	return rc;
}

/*
 * The blocks of the file that r's snapshot can give up before the runs are
 * written: whole blocks inside a run that no page of the segment still
 * shows from r (a page never comes back to r: re-reads take new
 * snapshots). Then the daemon need not preserve them for r. Merged byte
 * ranges into fg (room for n); their count. Called with seg->lock held.
 */
static size_t forgo_plan(struct snapseg *seg, struct segsnap *r, off_t off, const struct wrun *runs,
			 size_t n, uint64_t (*fg)[2])
{
	uint64_t bs = 1ull << r->h.bshift;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t fs = (uint64_t)off + runs[i].at, fe = (uint64_t)off + runs[i].end;
		for (uint64_t b = (fs + bs - 1) / bs; (b + 1) * bs <= fe; b++) {
			/* r's pages for block b: addresses b * bs - delta onwards. */
			int64_t a0 = (int64_t)(b * bs) - r->delta, a1 = a0 + (int64_t)bs;
			int64_t lo = (int64_t)(uintptr_t)seg->base, hi = lo + (int64_t)seg->size;
			bool shown = false;
			if (a1 > lo && a0 < hi) {
				uintptr_t p0 = (uintptr_t)((a0 > lo ? a0 : lo) - lo) / PG;
				uintptr_t p1 =
				    (uintptr_t)(((a1 < hi ? a1 : hi) - lo) + (int64_t)PG - 1) / PG;
				for (size_t x = seg_ext_find(seg, p0);
				     x < seg->next && seg->ext[x].s < p1 && !shown; x++)
					shown = seg->ext[x].r == r;
			}
			if (shown)
				continue;
			if (k && fg[k - 1][0] + fg[k - 1][1] == b * bs)
				fg[k - 1][1] += bs;
			else if (k < n) {
				fg[k][0] = b * bs;
				fg[k++][1] = bs;
			}
		}
	}
	return k;
}

/*
 * Many scattered runs of a file this segment reads directly: hand them to
 * the daemon in one request (one copy-on-write transaction, no FUSE write
 * per run). The bytes are packed into a memfd by memcpy, in user mode, so
 * unfilled pages fill first. -ENOTSUP (or any failure): the caller writes.
 */
static int write_batch(struct snapseg *seg, int fd, const struct stat *st, const char *p, off_t off,
		       const struct wrun *runs, size_t n)
{
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += runs[i].end - runs[i].at;
	if (n < WB_MIN_RUNS || total > WB_MAX_BYTES)
		return -ENOTSUP;
	struct snaphold h = {.direct_state = 0};
	uint64_t(*rg)[2] = calloc(2 * n, sizeof(*rg)), (*fg)[2] = rg ? rg + n : NULL;
	size_t nfg = 0;
	pthread_mutex_lock(&seg->lock);
	for (struct segsnap *r = seg->snaps; rg && r; r = r->next)
		if (r->h.dev == st->st_dev && r->h.ino == st->st_ino && r->h.direct_state > 0) {
			h = r->h;
			nfg = forgo_plan(seg, r, off, runs, n, fg);
			break;
		}
	pthread_mutex_unlock(&seg->lock);
	if (h.direct_state <= 0) {
		free(rg);
		return -ENOTSUP;
	}
	/* A small batch reuses the segment's buffer (its pages stay allocated
	 * between calls); a large one, or one while another call packs, gets
	 * its own. Sealed against shrinking: the daemon maps it. */
	int data = -1, rc = -ENOMEM;
	bool kept = total <= WB_KEEP_BYTES && pthread_mutex_trylock(&seg->wb_lock) == 0;
	if (kept) {
		if (seg->wbfd < 0) {
			seg->wbfd =
			    memfd_create("snapseg-writeback", MFD_CLOEXEC | MFD_ALLOW_SEALING);
			seg->wbsize = 0;
			if (seg->wbfd >= 0 && fcntl(seg->wbfd, F_ADD_SEALS, F_SEAL_SHRINK)) {
				close(seg->wbfd);
				seg->wbfd = -1;
			}
		}
		if (seg->wbfd >= 0 && total > seg->wbsize &&
		    ftruncate(seg->wbfd, (off_t)total) == 0)
			seg->wbsize = total;
		if (seg->wbfd >= 0 && seg->wbsize >= total)
			data = seg->wbfd;
	} else {
		data = memfd_create("snapseg-writeback", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		if (data >= 0 &&
		    (ftruncate(data, (off_t)total) ||
		     fcntl(data, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL))) {
			close(data);
			data = -1;
		}
	}
	if (!rg || data < 0)
		goto out;
	/* Packed by the kernel straight from the segment, up to IOV_MAX runs a
	 * call; a run with an unfilled page (EFAULT: the kernel does not fill
	 * segment pages) is copied in user mode instead. */
	uint64_t at = 0;
	for (size_t i = 0; i < n; i++) {
		rg[i][0] = (uint64_t)off + runs[i].at;
		rg[i][1] = runs[i].end - runs[i].at;
	}
	struct iovec iov[64];
	for (size_t i = 0; i < n;) {
		size_t k = 0;
		uint64_t bytes = 0;
		for (; k < 64 && i + k < n; k++) {
			iov[k].iov_base = (void *)(p + runs[i + k].at);
			iov[k].iov_len = rg[i + k][1];
			bytes += rg[i + k][1];
		}
		if (pwritev(data, iov, (int)k, (off_t)at) != (ssize_t)bytes) {
			for (size_t j = 0; j < k; j++) {
				if (pwrite(data, iov[j].iov_base, iov[j].iov_len, (off_t)at) ==
				    (ssize_t)iov[j].iov_len) {
					at += iov[j].iov_len;
					continue;
				}
				if ((rc = pack_slow(data, iov[j].iov_base, iov[j].iov_len, at)))
					goto out;
				at += iov[j].iov_len;
			}
		} else {
			at += bytes;
		}
		i += k;
	}
	rc = snaphold_writeback(&h, fd, (const uint64_t(*)[2])rg, n, (const uint64_t(*)[2])fg, nfg,
				data);
out:
	if (kept)
		pthread_mutex_unlock(&seg->wb_lock);
	else if (data >= 0)
		close(data);
	free(rg);
	return rc;
}

static int write_runs(struct snapseg *seg, int fd, const struct stat *st, const char *p, off_t off,
		      const struct wrun *runs, size_t n)
{
	if (write_batch(seg, fd, st, p, off, runs, n) == 0)
		return 0;
	char *bounce = n ? malloc(BOUNCE) : NULL;
	if (n && !bounce)
		return -ENOMEM;
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++)
		rc = write_run(fd, p, runs[i].at, runs[i].end, off, bounce);
	free(bounce);
	return rc;
}

/* Which full pages [s, e) of the segment need no write: skip[i] for page
 * s + i. Runs under seg->lock (DIFF is asked at most once per snapshot). */
static int plan_skips(struct snapseg *seg, uintptr_t s, uintptr_t e, const struct stat *st,
		      int64_t delta, bool *skip, uint64_t *nskip)
{
	struct changed cache[8];
	size_t nc = 0;
	int rc = 0;
	*nskip = 0;
	size_t i = seg_ext_find(seg, s);
	for (; i < seg->next && seg->ext[i].s < e; i++) {
		struct segext *x = &seg->ext[i];
		struct segsnap *r = x->r;
		if (r->h.dev != st->st_dev || r->h.ino != st->st_ino || r->delta != delta)
			continue;
		struct changed *c = NULL;
		for (size_t k = 0; k < nc; k++)
			if (cache[k].r == r)
				c = &cache[k];
		if (!c) {
			if (nc == sizeof(cache) / sizeof(cache[0])) {
				free(cache[0].v);
				memmove(cache, cache + 1, (nc - 1) * sizeof(cache[0]));
				nc--;
			}
			c = &cache[nc++];
			*c = (struct changed){.r = r};
			if ((rc = changed_load(c)))
				break;
		}
		uintptr_t a = x->s > s ? x->s : s, b = x->e < e ? x->e : e;
		for (uintptr_t pg = a; pg < b; pg++) {
			uint64_t fo = (uint64_t)((int64_t)(uintptr_t)(seg->base + pg * PG) + delta);
			if (!changed_hit(c, fo, PG)) {
				skip[pg - s] = true;
				(*nskip)++;
			}
		}
	}
	for (size_t k = 0; k < nc; k++)
		free(cache[k].v);
	return rc;
}

ssize_t snapseg_write(struct snapseg *seg, const void *src, int fd, size_t len, off_t off)
{
	if (!seg || off < 0 || (ssize_t)len < 0) {
		errno = EINVAL;
		return -1;
	}
	if (len == 0)
		return 0;
	struct stat st;
	if (fstat(fd, &st))
		return -1;
	const char *p = src;
	uintptr_t s = 0, e = 0;
	if (seg_inside(seg, src, len))
		seg_full_pages(seg, src, len, &s, &e);
	bool *skip = NULL;
	uint64_t nskip = 0;
	int rc = 0;
	if (e > s) {
		skip = calloc(e - s, sizeof(*skip));
		if (!skip)
			return -1;
		pthread_mutex_lock(&seg->lock);
		rc = plan_skips(seg, s, e, &st, (int64_t)off - (int64_t)(uintptr_t)src, skip,
				&nskip);
		pthread_mutex_unlock(&seg->lock);
		if (rc == -ENOTSUP) { /* no daemon to ask: write everything */
			memset(skip, 0, e - s);
			nskip = 0;
			rc = 0;
		}
	}
	/* Walk [0, len) as runs of bytes to write, jumping over skipped pages. */
	struct wruns runs = {0};
	size_t at = 0;
	while (!rc && at < len) {
		size_t end = at;
		while (end < len) {
			if (!skip) {
				end = len;
				break;
			}
			uintptr_t pg = ((uintptr_t)(p + end) - (uintptr_t)seg->base) / PG;
			if (pg >= s && pg < e && skip[pg - s])
				break;
			end = (size_t)(seg->base + (pg + 1) * PG - p);
			if (end > len)
				end = len;
		}
		if (end > at && (rc = vec_push(&runs, (struct wrun){at, end})))
			break;
		at = end;
		while (at < len) { /* skipped pages */
			uintptr_t pg = ((uintptr_t)(p + at) - (uintptr_t)seg->base) / PG;
			if (!(skip && pg >= s && pg < e && skip[pg - s]))
				break;
			at = (size_t)(seg->base + (pg + 1) * PG - p);
		}
	}
	if (!rc)
		rc = write_runs(seg, fd, &st, p, off, runs.v, runs.n);
	vec_release(&runs);
	free(skip);
	if (rc) {
		errno = -rc;
		return -1;
	}
	pthread_mutex_lock(&seg->lock);
	uintptr_t first = (uintptr_t)p / PG, last = ((uintptr_t)p + len - 1) / PG;
	seg->st.pages_written += last - first + 1 - nskip;
	seg->st.pages_skipped += nskip;
	pthread_mutex_unlock(&seg->lock);
	return (ssize_t)len;
}
