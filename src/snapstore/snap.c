// SPDX-License-Identifier: MIT
/*
 * Snapshots: pin (one small transaction, O(1) in file sizes), release and
 * the garbage collection it triggers, listing, and reading a file as of a
 * snapshot or asking what changed since. Watch for: release commits the
 * deletion of rows before it punches their space, under the space write
 * lock, so a concurrent snapshot read (space read lock) never sees a block
 * reused under it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store_i.h"

static int64_t ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

static struct timespec ts(int64_t v)
{
	return (struct timespec){.tv_sec = v / 1000000000, .tv_nsec = v % 1000000000};
}

/* ---- freeing space after a commit ---- */

int freelist_push(struct freelist *fr, uint64_t start, uint32_t n)
{
	if (fr->len == fr->cap) {
		size_t nc = fr->cap ? fr->cap * 2 : 64;
		uint64_t *ns_ = reallocarray(fr->start, nc, sizeof(*ns_));
		if (!ns_)
			return -ENOMEM;
		fr->start = ns_;
		uint32_t *nn = reallocarray(fr->n, nc, sizeof(*nn));
		if (!nn)
			return -ENOMEM;
		fr->n = nn;
		fr->cap = nc;
	}
	fr->start[fr->len] = start;
	fr->n[fr->len++] = n;
	return 0;
}

void freelist_apply(struct store *st, struct freelist *fr)
{
	for (size_t i = 0; i < fr->len; i++)
		blk_free(&st->blk, fr->start[i], fr->n[i]);
	st->nextents -= fr->rows;
	st->preserved_bytes -= fr->bytes;
	free(fr->start);
	free(fr->n);
	memset(fr, 0, sizeof(*fr));
}

int snap_gc_fid(struct store *st, uint64_t fid, uint64_t s, const struct cover *c, size_t nc,
		struct freelist *fr)
{
	struct ext *ex = NULL;
	size_t n = 0, cap = 0;
	int rc = extidx_ext_fid(st->x, fid, s, &ex, &n, &cap);
	for (size_t i = 0; i < n && !rc; i++) {
		struct ext *e = &ex[i];
		if (store_ext_needed(c, nc, st->bs, e->blk, e->efrom, e->eto))
			continue;
		if ((rc = extidx_ext_delete(st->x, fid, e->blk, e->efrom)))
			break;
		fr->rows++;
		if (e->loc >= 0) {
			fr->bytes += (uint64_t)e->nblk * st->bs;
			rc = freelist_push(fr, (uint64_t)e->loc / st->bs, e->nblk);
		}
	}
	free(ex);
	return rc;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int snap_release_locked(struct store *st, uint64_t id, int full)
{
	struct snapmem *sm = store_snap_find(st, id);
	if (!sm)
		return -ENOENT;
	uint64_t s = sm->epoch;
	struct extidx_sfile *sfs = NULL;
	size_t nsf = 0;
	struct freelist fr = {0};
	uint64_t *fids = NULL, *dropped = NULL;
	size_t nfids = 0, ndropped = 0;
	struct cover *rest = NULL;
	int rc = extidx_sfiles(st->x, id, &sfs, &nsf);
	if (rc)
		return rc;
	fids = malloc((nsf + 1) * sizeof(*fids));
	dropped = malloc((nsf + 1) * sizeof(*dropped));
	if (!fids || !dropped) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nsf; i++)
		fids[i] = sfs[i].fid;
	if (nsf)
		qsort(fids, nsf, sizeof(*fids), cmp_u64);
	for (size_t i = 0; i < nsf; i++)
		if (!nfids || fids[nfids - 1] != fids[i])
			fids[nfids++] = fids[i];

	if ((rc = extidx_begin(st->x, full)))
		goto out;
	if ((rc = extidx_snap_delete(st->x, id)))
		goto out_rollback;
	for (size_t i = 0; i < nfids; i++) {
		struct store_file *sf = store_file_by_fid(st, fids[i]);
		size_t nr = 0;
		free(rest);
		rest = NULL;
		if (sf && sf->ncov) {
			rest = malloc(sf->ncov * sizeof(*rest));
			if (!rest) {
				rc = -ENOMEM;
				goto out_rollback;
			}
			for (size_t j = 0; j < sf->ncov; j++)
				if (sf->cov[j].snap != id)
					rest[nr++] = sf->cov[j];
		}
		/* A stale snapshot kept nothing alive: sweep every epoch then. */
		uint64_t at = sm->state == STORE_VALID ? s : UINT64_MAX;
		if ((rc = snap_gc_fid(st, fids[i], at, rest, nr, &fr)))
			goto out_rollback;
		if (nr)
			continue;
		uint64_t refs = 0;
		if ((rc = extidx_sfile_fid_refs(st->x, fids[i], &refs)))
			goto out_rollback;
		if (!refs) {
			/* Nothing names the file any more: its remaining extents go too. */
			if ((rc = snap_gc_fid(st, fids[i], UINT64_MAX, NULL, 0, &fr)) ||
			    (rc = extidx_file_delete(st->x, fids[i])))
				goto out_rollback;
			dropped[ndropped++] = fids[i];
		}
	}
	if ((rc = extidx_commit(st->x)))
		goto out;
	store_test_point("release:committed");

	for (size_t i = 0; i < nfids; i++) {
		struct store_file *sf = store_file_by_fid(st, fids[i]);
		if (sf)
			store_cover_del(sf, id);
	}
	for (size_t i = 0; i < ndropped; i++) {
		struct store_file *sf = store_file_by_fid(st, dropped[i]);
		if (sf) {
			store_file_set_fid(sf, 0);
			store_file_maybe_free(sf);
		}
	}
	store_snap_del(st, id);
	freelist_apply(st, &fr);
	goto out;
out_rollback:
	extidx_rollback(st->x);
out:
	free(fr.start);
	free(fr.n);
	free(rest);
	free(fids);
	free(dropped);
	extidx_sfiles_free(sfs, nsf);
	return rc;
}

int store_release(struct store *st, uint64_t id)
{
	pthread_rwlock_wrlock(&st->space);
	pthread_mutex_lock(&st->mu);
	struct snapmem *sm = store_snap_find(st, id);
	int rc = sm ? snap_release_locked(st, id, sm->kind == STORE_PINNED) : -ENOENT;
	pthread_mutex_unlock(&st->mu);
	pthread_rwlock_unlock(&st->space);
	return rc;
}

/* ---- pin ---- */

struct pin_ent {
	struct store_file *sf;
	size_t idx; /* into files[] */
};

static int pin_cmp(const void *a, const void *b)
{
	const struct pin_ent *x = a, *y = b;
	uint64_t fx = store_file_fid(x->sf), fy = store_file_fid(y->sf);
	if (fx != fy)
		return fx < fy ? -1 : 1;
	if (x->sf != y->sf)
		return (uintptr_t)x->sf < (uintptr_t)y->sf ? -1 : 1;
	return 0;
}

int store_pin(struct store *st, const struct store_pin *p, const struct store_pin_file *files,
	      size_t n, uint64_t *id)
{
	if (!n || !p || (p->label && strlen(p->label) > STORE_LABEL_MAX))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!files[i].sf || !files[i].path || files[i].sf->st != st)
			return -EINVAL;
	struct pin_ent *ord = calloc(n, sizeof(*ord));
	struct stat *sb = calloc(n, sizeof(*sb));
	uint64_t *fid = calloc(n, sizeof(*fid));
	int rc = 0;
	size_t locked = 0;
	if (!ord || !sb || !fid) {
		rc = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < n; i++)
		ord[i] = (struct pin_ent){.sf = files[i].sf, .idx = i};
	/* Lock order: increasing fid, then address (new files have fid 0). */
	if (n)
		qsort(ord, n, sizeof(*ord), pin_cmp);
	for (size_t i = 0; i < n; i++, locked++)
		if (!i || ord[i].sf != ord[i - 1].sf)
			store_file_rdlock(ord[i].sf);
	for (size_t i = 0; i < n; i++) {
		if (fstat(files[i].fd, &sb[i])) {
			rc = -errno;
			goto out_unlock;
		}
		if (!S_ISREG(sb[i].st_mode)) {
			rc = -EINVAL;
			goto out_unlock;
		}
		if (sb[i].st_nlink == 0) {
			rc = -ENOENT;
			goto out_unlock;
		}
	}

	pthread_mutex_lock(&st->mu);
	for (size_t i = 0; i < n && !rc; i++) {
		struct store_file *sf = files[i].sf;
		if (sf->detached)
			rc = -ENOENT;
		else if (sf->ncov == sf->capcov) {
			/* Reserve room so that nothing can fail after the commit. */
			size_t nc = sf->capcov ? sf->capcov * 2 + n : 4 + n;
			struct cover *na = reallocarray(sf->cov, nc, sizeof(*na));
			if (!na)
				rc = -ENOMEM;
			else {
				sf->cov = na;
				sf->capcov = nc;
			}
		} else if (sf->capcov - sf->ncov < n) {
			size_t nc = sf->capcov + n;
			struct cover *na = reallocarray(sf->cov, nc, sizeof(*na));
			if (!na)
				rc = -ENOMEM;
			else {
				sf->cov = na;
				sf->capcov = nc;
			}
		}
	}
	if (!rc)
		rc = store_snap_reserve(st, 1);
	if (rc || (rc = extidx_begin(st->x, p->kind == STORE_PINNED)))
		goto out_mu;
	uint64_t E = st->epoch;
	for (size_t i = 0; i < n && !rc; i++) {
		struct store_file *sf = files[i].sf;
		fid[i] = sf->fid;
		for (size_t j = 0; j < i && !fid[i]; j++)
			if (files[j].sf == sf)
				fid[i] = fid[j];
		if (fid[i])
			continue;
		int state = 0;
		rc = extidx_file_by_handle(st->x, sf->handle, sf->hlen, &fid[i], &state);
		if (!rc && state == 1)
			rc = -ENOENT;
		if (!rc)
			rc = extidx_file_set_stat(st->x, fid[i], (uint64_t)sb[i].st_ino,
						  (uint64_t)sb[i].st_size, ns(&sb[i].st_mtim),
						  ns(&sb[i].st_ctim));
		if (rc == -ENOENT && state != 1) {
			struct extidx_file f = {.hlen = sf->hlen,
						.ino = (uint64_t)sb[i].st_ino,
						.size = (uint64_t)sb[i].st_size,
						.mtime_ns = ns(&sb[i].st_mtim),
						.ctime_ns = ns(&sb[i].st_ctim)};
			memcpy(f.handle, sf->handle, sf->hlen);
			rc = extidx_file_insert(st->x, &f, &fid[i]);
		}
	}
	struct extidx_snap row = {.epoch = E,
				  .created = time(NULL),
				  .expires = p->expires,
				  .uid = p->uid,
				  .kind = p->kind};
	if (p->label)
		strlcpy(row.label, p->label, sizeof(row.label));
	uint64_t sid = 0;
	if (!rc)
		rc = extidx_snap_insert(st->x, &row, &sid);
	for (size_t i = 0; i < n && !rc; i++) {
		struct extidx_sfile f = {
		    .snap = sid,
		    .fid = fid[i],
		    .path = (char *)files[i].path,
		    .size = (uint64_t)sb[i].st_size,
		    .ino = (uint64_t)sb[i].st_ino,
		    .mode = sb[i].st_mode,
		    .uid = sb[i].st_uid,
		    .gid = sb[i].st_gid,
		    .atime_ns = ns(&sb[i].st_atim),
		    .mtime_ns = ns(&sb[i].st_mtim),
		    .ctime_ns = ns(&sb[i].st_ctim),
		};
		rc = extidx_sfile_insert(st->x, &f);
	}
	if (!rc)
		rc = extidx_meta_set(st->x, "epoch", (int64_t)(E + 1));
	if (rc) {
		extidx_rollback(st->x);
		goto out_mu;
	}
	if ((rc = extidx_commit(st->x)))
		goto out_mu;
	store_test_point("pin:committed");
	st->epoch = E + 1;
	for (size_t k = 0; k < n; k++) {
		if (k && ord[k].sf == ord[k - 1].sf)
			continue; /* one file under several paths: one cover */
		size_t i = ord[k].idx;
		struct store_file *sf = files[i].sf;
		if (!sf->fid)
			store_file_set_fid(sf, fid[i]);
		struct cover c = {
		    .snap = sid, .epoch = E, .size = (uint64_t)sb[i].st_size, .kind = p->kind};
		store_cover_add(sf, &c); /* room reserved above */
	}
	struct snapmem m = {.id = sid,
			    .epoch = E,
			    .created = row.created,
			    .expires = p->expires,
			    .uid = p->uid,
			    .kind = p->kind};
	store_snap_add(st, &m);
	*id = sid;
out_mu:
	pthread_mutex_unlock(&st->mu);
out_unlock:
	for (size_t i = 0; i < locked; i++)
		if (!i || ord[i].sf != ord[i - 1].sf)
			store_file_unlock(ord[i].sf);
out_free:
	free(ord);
	free(sb);
	free(fid);
	return rc;
}

/* ---- listing ---- */

/* Data bytes of extents that snapshot sm needs and no other live one does. */
static int bytes_held(struct store *st, const struct snapmem *sm, uint64_t *out)
{
	struct extidx_sfile *sfs = NULL;
	size_t nsf = 0;
	struct ext *ex = NULL;
	size_t nex, capex = 0;
	*out = 0;
	if (sm->state != STORE_VALID)
		return 0;
	int rc = extidx_sfiles(st->x, sm->id, &sfs, &nsf);
	for (size_t i = 0; i < nsf && !rc; i++) {
		if (i && sfs[i].fid == sfs[i - 1].fid)
			continue;
		struct store_file *sf = store_file_by_fid(st, sfs[i].fid);
		if (!sf)
			continue;
		nex = 0;
		if ((rc = extidx_ext_fid(st->x, sfs[i].fid, sm->epoch, &ex, &nex, &capex)))
			break;
		for (size_t k = 0; k < nex; k++) {
			struct ext *e = &ex[k];
			if (e->loc < 0)
				continue;
			int other = 0;
			for (size_t j = 0; j < sf->ncov && !other; j++) {
				const struct cover *c = &sf->cov[j];
				other = c->snap != sm->id && c->epoch >= e->efrom &&
					c->epoch < e->eto && e->blk * st->bs < c->size;
			}
			if (!other)
				*out += (uint64_t)e->nblk * st->bs;
		}
	}
	free(ex);
	extidx_sfiles_free(sfs, nsf);
	return rc;
}

static int fill_snap(struct store *st, const struct snapmem *sm, struct store_snap *o)
{
	struct extidx_snap row;
	int rc = extidx_snap_get(st->x, sm->id, &row);
	if (rc)
		return rc;
	memset(o, 0, sizeof(*o));
	o->id = row.id;
	o->epoch = row.epoch;
	o->created = row.created;
	o->expires = row.expires;
	o->uid = row.uid;
	o->kind = sm->kind;
	o->state = sm->state;
	strlcpy(o->label, row.label, sizeof(o->label));
	if ((rc = extidx_sfile_count(st->x, sm->id, &o->nfiles)))
		return rc;
	return bytes_held(st, sm, &o->bytes_held);
}

int store_snap_get(struct store *st, uint64_t id, struct store_snap *out)
{
	pthread_mutex_lock(&st->mu);
	struct snapmem *sm = store_snap_find(st, id);
	int rc = sm ? fill_snap(st, sm, out) : -ENOENT;
	pthread_mutex_unlock(&st->mu);
	return rc;
}

int store_snap_list(struct store *st, int (*fn)(void *arg, const struct store_snap *s), void *arg)
{
	pthread_mutex_lock(&st->mu);
	size_t n = st->nsnaps;
	struct store_snap *a = n ? calloc(n, sizeof(*a)) : NULL;
	int rc = n && !a ? -ENOMEM : 0;
	for (size_t i = 0; i < n && !rc; i++)
		rc = fill_snap(st, &st->snaps[i], &a[i]);
	pthread_mutex_unlock(&st->mu);
	for (size_t i = 0; i < n && !rc; i++)
		rc = fn(arg, &a[i]);
	free(a);
	return rc;
}

void store_sfile_stat(const struct extidx_sfile *f, struct store_snap_file *o)
{
	memset(&o->st, 0, sizeof(o->st));
	o->fid = f->fid;
	o->st.st_size = (off_t)f->size;
	o->st.st_mode = f->mode;
	o->st.st_uid = f->uid;
	o->st.st_gid = f->gid;
	o->st.st_ino = f->ino;
	o->st.st_nlink = 1;
	o->st.st_atim = ts(f->atime_ns);
	o->st.st_mtim = ts(f->mtime_ns);
	o->st.st_ctim = ts(f->ctime_ns);
	o->st.st_blocks = (blkcnt_t)((f->size + 511) / 512);
}

int store_snap_files(struct store *st, uint64_t id,
		     int (*fn)(void *arg, const struct store_snap_file *f), void *arg)
{
	struct extidx_sfile *sfs = NULL;
	size_t n = 0;
	pthread_mutex_lock(&st->mu);
	int rc = store_snap_find(st, id) ? extidx_sfiles(st->x, id, &sfs, &n) : -ENOENT;
	pthread_mutex_unlock(&st->mu);
	for (size_t i = 0; i < n && !rc; i++) {
		struct store_snap_file f;
		store_sfile_stat(&sfs[i], &f);
		f.path = sfs[i].path;
		rc = fn(arg, &f);
	}
	extidx_sfiles_free(sfs, n);
	return rc;
}

int store_snap_file(struct store *st, uint64_t id, const char *path, struct store_snap_file *out,
		    char *pathbuf, size_t pathbuf_len)
{
	struct extidx_sfile f;
	pthread_mutex_lock(&st->mu);
	int rc = store_snap_find(st, id)
		     ? extidx_sfile_by_path(st->x, id, path, &f, pathbuf, pathbuf_len)
		     : -ENOENT;
	pthread_mutex_unlock(&st->mu);
	if (rc)
		return rc;
	store_sfile_stat(&f, out);
	out->path = f.path;
	return 0;
}

/* ---- reading a snapshot ---- */

/* mu held: the snapshot's cover of fid, with a new reference to its file. */
static int find_cover(struct store *st, uint64_t id, uint64_t fid, struct store_file **sfp,
		      struct cover *c)
{
	struct snapmem *sm = store_snap_find(st, id);
	if (!sm)
		return -ENOENT;
	if (sm->state != STORE_VALID)
		return -EIO;
	struct store_file *sf = store_file_by_fid(st, fid);
	if (!sf)
		return -ENOENT;
	for (size_t i = 0; i < sf->ncov; i++)
		if (sf->cov[i].snap == id) {
			*c = sf->cov[i];
			*sfp = sf;
			return 0;
		}
	return -ENOENT;
}

static int pread_full(int fd, char *p, uint64_t len, uint64_t off)
{
	while (len) {
		ssize_t k = pread(fd, p, len, (off_t)off);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			return -EIO; /* shorter than at pin time and not preserved */
		p += k;
		off += (uint64_t)k;
		len -= (uint64_t)k;
	}
	return 0;
}

ssize_t store_snap_read(struct store *st, uint64_t id, uint64_t fid, void *buf, size_t len,
			uint64_t off)
{
	struct store_file *sf = NULL;
	struct cover c;
	struct ext *ex = NULL;
	size_t nex = 0, capex = 0;
	pthread_mutex_lock(&st->mu);
	int rc = find_cover(st, id, fid, &sf, &c);
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
	rc = find_cover(st, id, fid, &sf2, &c); /* released meanwhile? */
	/* Blocks the snapshot gave up were not preserved: never the live bytes. */
	const struct snapforgo *fg = rc ? NULL : store_forgo_get(st, id, fid);
	for (uint64_t b = off / bs; fg && b < (end + bs - 1) / bs && !rc; b++)
		if (store_forgone(fg, b))
			rc = -EIO;
	if (!rc)
		rc = extidx_ext_range(st->x, fid, off / bs, (end + bs - 1) / bs, c.epoch,
				      sf->maxnblk, &ex, &nex, &capex);
	int livefd = -EIO;
	if (!rc && !sf->detached)
		livefd = store_live_fd(sf);
	pthread_mutex_unlock(&st->mu);

	char *out = buf;
	uint64_t pos = off, from_store = 0;
	for (size_t i = 0; i <= nex && !rc && pos < end; i++) {
		uint64_t es = i < nex ? ex[i].blk * bs : end;
		uint64_t ee = i < nex ? (ex[i].blk + ex[i].nblk) * bs : end;
		if (es > end)
			es = end;
		if (ee > end)
			ee = end;
		if (es > pos) { /* a gap: unchanged since the pin, in the live file */
			rc = livefd < 0 ? livefd
					: pread_full(livefd, out + (pos - off), es - pos, pos);
			pos = es;
		}
		if (rc || i == nex || ee <= pos)
			continue;
		if (ex[i].loc < 0)
			memset(out + (pos - off), 0, ee - pos);
		else
			rc = blk_read(&st->blk, out + (pos - off), ee - pos,
				      (uint64_t)ex[i].loc + (pos - es));
		from_store += ee - pos;
		pos = ee;
	}
	pthread_rwlock_unlock(&st->space);
	store_file_unlock(sf);
	free(ex);
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
	int rc = find_cover(st, id, fid, &sf, &c);
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
	}
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
					       : find_cover(st, id, fid, &sf, &c);
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
