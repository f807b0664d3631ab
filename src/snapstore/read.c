// SPDX-License-Identifier: MIT
/*
 * Reading a file as of a snapshot (per block: the extent covering the
 * snapshot's epoch, else the live block, unchanged since the pin) and
 * listing what changed since. Watch for: a read holds the file's read lock
 * (no write in between) and the space read lock (no block reused under it)
 * from the index query to the last pread, and never returns the live bytes
 * of a block it cannot vouch for: -EIO instead. Live bytes are vouched for
 * only while the file shows what the daemon left it in (store_live_check):
 * a writer that bypassed the mount makes the file's snapshots stale.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fullio.h"
#include "store_i.h"

/* All of [off, off + len) of the live file: shorter than at pin time and
 * not preserved is -EIO. */
static int pread_all(int fd, char *p, uint64_t len, uint64_t off)
{
	ssize_t k = pread_full(fd, p, (size_t)len, (off_t)off);
	return k < 0 ? (int)k : (uint64_t)k < len ? -EIO : 0;
}

/* Verify block b (file block number) of extent e, bs bytes at p. */
static int verify(struct store *st, const struct ext *e, const uint32_t *sums, uint64_t b,
		  const char *p)
{
	uint32_t want = sums[b - e->blk];
	if (blk_sum(p, st->bs, e->fid, b, e->efrom, e->eto) == want)
		return 0;
	store_logf(3,
		   "snapstore: checksum mismatch: block %" PRIu64 " of file %" PRIu64
		   " (epochs %" PRIu64 "-%" PRIu64 ") at block-file offset %" PRIu64
		   ": damaged; read fails with EIO",
		   b, e->fid, e->efrom, e->eto, (uint64_t)e->loc + (b - e->blk) * st->bs);
	return -EIO;
}

/*
 * Bytes [pos, ee) of the file, held by data extent e, into out (which maps
 * file offset off): whole blocks are read and each is verified against its
 * checksum before any of its bytes is returned; edge blocks go through a
 * bounce buffer. Extents from before checksums (schema 1) are read as is.
 */
static int read_ext(struct store *st, const struct ext *e, const struct extidx_sums *sums,
		    char *out, uint64_t off, uint64_t pos, uint64_t ee)
{
	uint64_t bs = st->bs,
		 base = (uint64_t)e->loc - e->blk * bs; /* block-file offset of byte 0 */
	if (e->sumi < 0) {
		if (!st->sums_all)
			return blk_read(&st->blk, out + (pos - off), ee - pos, base + pos);
		store_logf(3,
			   "snapstore: extent of file %" PRIu64 " block %" PRIu64
			   " has no checksums: the index was edited; read fails with EIO",
			   e->fid, e->blk);
		return -EIO;
	}
	const uint32_t *s = sums->a + e->sumi;
	uint64_t fb0 = (pos + bs - 1) / bs, fb1 = ee / bs; /* whole blocks inside */
	int rc = 0;
	if (fb0 < fb1) {
		char *p = out + (fb0 * bs - off);
		rc = blk_read(&st->blk, p, (fb1 - fb0) * bs, base + fb0 * bs);
		for (uint64_t b = fb0; b < fb1 && !rc; b++, p += bs)
			rc = verify(st, e, s, b, p);
	}
	/* The first and last blocks, when not wholly inside [pos, ee). */
	uint64_t edge[2], first = pos / bs, last = (ee - 1) / bs;
	int nedge = 0;
	if (first < fb0 || first >= fb1)
		edge[nedge++] = first;
	if (last != first && (last < fb0 || last >= fb1))
		edge[nedge++] = last;
	if (!nedge)
		return rc;
	char *bounce = rc ? NULL : malloc(bs);
	if (!rc && !bounce)
		rc = -ENOMEM;
	for (int i = 0; i < nedge && !rc; i++) {
		uint64_t b = edge[i], lo = b * bs > pos ? b * bs : pos,
			 hi = (b + 1) * bs < ee ? (b + 1) * bs : ee;
		if (!(rc = blk_read(&st->blk, bounce, bs, base + b * bs)) &&
		    !(rc = verify(st, e, s, b, bounce)))
			memcpy(out + (lo - off), bounce + (lo - b * bs), hi - lo);
	}
	free(bounce);
	return rc;
}

/* Whether the n extents (sorted) leave a gap in [off, end): bytes that
 * come from the live file. Opening it (by handle) is skipped when none do. */
static bool has_gap(const struct ext *ex, size_t n, uint64_t bs, uint64_t off, uint64_t end)
{
	uint64_t pos = off;
	for (size_t i = 0; i < n && pos < end; i++) {
		if (ex[i].blk * bs > pos)
			return true;
		if ((ex[i].blk + ex[i].nblk) * bs > pos)
			pos = (ex[i].blk + ex[i].nblk) * bs;
	}
	return pos < end;
}

ssize_t store_snap_read(struct store *st, uint64_t id, uint64_t fid, void *buf, size_t len,
			uint64_t off)
{
	struct store_file *sf = NULL;
	struct cover c;
	struct ext *ex = NULL;
	size_t nex = 0, capex = 0;
	struct extidx_sums sums = {0};
	pthread_mutex_lock(&st->mu);
	int rc = store_cover_find(st, id, fid, &sf, &c);
	if (!rc)
		sf->refs++;
	pthread_mutex_unlock(&st->mu);
	if (rc)
		return rc;
	if (off >= c.size || !len) {
		store_file_put(sf);
		return 0;
	}
	if (len > c.size - off)
		len = (size_t)(c.size - off);
	uint64_t bs = st->bs, end = off + len;

	store_file_rdlock(sf);
	pthread_rwlock_rdlock(&st->space);
	pthread_mutex_lock(&st->mu);
	struct store_file *sf2;
	rc = store_cover_find(st, id, fid, &sf2, &c); /* released meanwhile? */
	/* Blocks the snapshot gave up were not preserved: never the live bytes. */
	const struct snapforgo *fg = rc ? NULL : store_forgo_get(st, id, fid);
	for (uint64_t b = off / bs; fg && b < (end + bs - 1) / bs && !rc; b++)
		if (store_forgone(fg, b))
			rc = -EIO;
	if (!rc)
		rc = extidx_ext_range_sums(st->x, fid, off / bs, (end + bs - 1) / bs, c.epoch,
					   sf->maxnblk, &ex, &nex, &capex, &sums);
	int livefd = -EIO;
	if (!rc && !sf->detached && has_gap(ex, nex, bs, off, end))
		livefd = store_live_fd(sf);
	pthread_mutex_unlock(&st->mu);

	char *out = buf;
	uint64_t pos = off, from_store = 0, from_live = 0;
	for (size_t i = 0; i <= nex && !rc && pos < end; i++) {
		uint64_t es = i < nex ? ex[i].blk * bs : end;
		uint64_t ee = i < nex ? (ex[i].blk + ex[i].nblk) * bs : end;
		if (es > end)
			es = end;
		if (ee > end)
			ee = end;
		if (es > pos) { /* a gap: unchanged since the pin, in the live file */
			rc = livefd < 0 ? livefd
					: pread_all(livefd, out + (pos - off), es - pos, pos);
			from_live += es - pos;
			pos = es;
		}
		if (rc || i == nex || ee <= pos)
			continue;
		if (ex[i].loc < 0)
			memset(out + (pos - off), 0, ee - pos);
		else
			rc = read_ext(st, &ex[i], &sums, out, off, pos, ee);
		from_store += ee - pos;
		pos = ee;
	}
	/* The live bytes hold only if nobody changed the file without the
	 * daemon: checked after reading them, so that a change racing with the
	 * pread (its mtime moves before its bytes land) is seen too. */
	if (!rc && from_live)
		rc = store_live_check(sf, livefd);
	pthread_rwlock_unlock(&st->space);
	store_file_unlock(sf);
	if (livefd >= 0)
		close(livefd);
	free(ex);
	free(sums.a);
	if (!rc && from_store) {
		__atomic_add_fetch(&st->store_reads, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&st->store_read_bytes, from_store, __ATOMIC_RELAXED);
	}
	store_file_put(sf);
	return rc ? rc : (ssize_t)len;
}

/* ---- what changed since a snapshot ---- */

struct range {
	uint64_t off, end;
};

static int range_cmp(const void *a, const void *b)
{
	const struct range *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

int store_snap_changed(struct store *st, uint64_t id, uint64_t fid,
		       int (*fn)(void *arg, uint64_t off, uint64_t len), void *arg)
{
	struct store_file *sf = NULL;
	struct cover c;
	struct ext *ex = NULL;
	size_t nex = 0, capex = 0;
	struct range *r = NULL;
	pthread_mutex_lock(&st->mu);
	int rc = store_cover_find(st, id, fid, &sf, &c);
	if (!rc)
		sf->refs++;
	pthread_mutex_unlock(&st->mu);
	if (rc)
		return rc;
	store_file_rdlock(sf);
	pthread_mutex_lock(&st->mu);
	int detached = sf->detached, livefd = -1;
	/* Forgone blocks count as changed: nothing says they are not. */
	uint64_t *fgbits = NULL, fgn = 0;
	const struct snapforgo *fg = store_forgo_get(st, id, fid);
	if (fg && (fgbits = malloc((fg->nblk + 63) / 64 * 8))) {
		memcpy(fgbits, fg->bits, (fg->nblk + 63) / 64 * 8);
		fgn = fg->nblk;
	} else if (fg) {
		rc = -ENOMEM;
	}
	if (!rc)
		rc = extidx_ext_fid(st->x, fid, c.epoch, &ex, &nex, &capex);
	if (!rc && !detached)
		livefd = store_live_fd(sf);
	if (!rc && livefd < 0 && !detached)
		rc = livefd;
	pthread_mutex_unlock(&st->mu);
	uint64_t cur = 0;
	struct stat sb;
	if (!rc && !detached) {
		if (fstat(livefd, &sb))
			rc = -errno;
		else
			cur = (uint64_t)sb.st_size;
		if (!rc) /* unchanged blocks are told by the extents only if only we wrote */
			rc = store_live_check(sf, livefd);
	}
	if (livefd >= 0)
		close(livefd);
	store_file_unlock(sf);
	size_t nr = 0, nfg = 0;
	for (uint64_t b = 0; b < fgn; b++)
		nfg += fgbits[b / 64] >> (b & 63) & 1;
	if (!rc && !(r = calloc(nex + 1 + nfg, sizeof(*r))))
		rc = -ENOMEM;
	for (uint64_t b = 0; !rc && b < fgn; b++)
		if (fgbits[b / 64] >> (b & 63) & 1 && b * st->bs < c.size)
			r[nr++] = (struct range){
			    b * st->bs, (b + 1) * st->bs < c.size ? (b + 1) * st->bs : c.size};
	free(fgbits);
	if (!rc && detached) {
		if (c.size)
			r[nr++] = (struct range){0, c.size};
	} else if (!rc) {
		for (size_t i = 0; i < nex; i++) {
			uint64_t s = ex[i].blk * st->bs, e = (ex[i].blk + ex[i].nblk) * st->bs;
			if (e > c.size)
				e = c.size;
			if (s < e)
				r[nr++] = (struct range){s, e};
		}
		if (cur != c.size)
			r[nr++] = (struct range){cur < c.size ? cur : c.size,
						 cur < c.size ? c.size : cur};
	}
	if (nr)
		qsort(r, nr, sizeof(*r), range_cmp);
	for (size_t i = 0; i < nr && !rc;) {
		struct range m = r[i++];
		while (i < nr && r[i].off <= m.end) {
			if (r[i].end > m.end)
				m.end = r[i].end;
			i++;
		}
		rc = fn(arg, m.off, m.end - m.off);
	}
	free(r);
	free(ex);
	store_file_put(sf);
	return rc;
}

int store_snap_forgo(struct store *st, uint64_t id, uint64_t fid, uint64_t off, uint64_t len)
{
	uint64_t bs = st->bs;
	uint64_t b0 = (off + bs - 1) / bs, b1 = off + len < off ? UINT64_MAX : (off + len) / bs;
	pthread_mutex_lock(&st->mu);
	struct snapmem *sm = store_snap_find(st, id);
	struct store_file *sf = NULL;
	struct cover c = {0};
	int rc = !sm			       ? -ENOENT
		 : sm->kind != STORE_EPHEMERAL ? -EINVAL
					       : store_cover_find(st, id, fid, &sf, &c);
	struct snapforgo *f = NULL;
	for (f = rc ? NULL : sm->forgo; f && f->fid != fid; f = f->next)
		;
	uint64_t nblk = (c.size + bs - 1) / bs;
	if (!rc && !f) {
		f = calloc(1, sizeof(*f));
		if (f)
			f->bits = calloc((nblk + 63) / 64 + 1, 8);
		if (!f || !f->bits) {
			if (f)
				free(f);
			rc = -ENOMEM;
		} else {
			f->fid = fid;
			f->nblk = nblk;
			f->next = sm->forgo;
			sm->forgo = f;
		}
	}
	if (b1 > nblk)
		b1 = nblk;
	for (uint64_t b = b0; !rc && b < b1; b++)
		f->bits[b / 64] |= 1ull << (b & 63);
	pthread_mutex_unlock(&st->mu);
	return rc;
}
