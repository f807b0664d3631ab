// SPDX-License-Identifier: MIT
/*
 * Release and garbage collection: delete a snapshot's rows and every extent
 * no remaining cover needs, commit, then punch the space. Watch for: the
 * deletion is committed before any space is punched or reused, under the
 * space write lock, so a concurrent snapshot read (space read lock) never
 * sees a block reused under it, and a power cut never resurrects a row
 * pointing at punched space.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store_i.h"

int freelist_push(struct freelist *fr, uint64_t start, uint32_t n)
{
	void *na = store_grow(fr->r, fr->len, &fr->cap, sizeof(*fr->r), 64);
	if (!na)
		return -ENOMEM;
	fr->r = na;
	fr->r[fr->len][0] = start;
	fr->r[fr->len++][1] = n;
	return 0;
}

void freelist_apply(struct store *st, struct freelist *fr)
{
	for (size_t i = 0; i < fr->len; i++)
		blk_free(&st->blk, fr->r[i][0], fr->r[i][1]);
	st->nextents -= fr->rows;
	st->preserved_bytes -= fr->bytes;
	free(fr->r);
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

	if ((rc = store_begin(st, full)))
		goto out;
	if ((rc = extidx_snap_delete(st->x, id)))
		goto out_rollback;
	/* A tree snapshot: its namespace rows, and the files it covers. */
	uint64_t *tf = NULL;
	size_t ntf = 0;
	if ((rc = ns_release_rows(st, id, &tf, &ntf)))
		goto out_rollback;
	if (ntf) {
		uint64_t *nf = reallocarray(fids, nfids + ntf, sizeof(*nf));
		uint64_t *nd = nf ? reallocarray(dropped, nfids + ntf, sizeof(*nd)) : NULL;
		if (nf)
			fids = nf;
		if (nd)
			dropped = nd;
		if (!nf || !nd) {
			free(tf);
			rc = -ENOMEM;
			goto out_rollback;
		}
		memcpy(fids + nfids, tf, ntf * sizeof(*tf));
		qsort(fids, nfids + ntf, sizeof(*fids), cmp_u64);
		size_t k = 0;
		for (size_t i = 0; i < nfids + ntf; i++)
			if (!k || fids[k - 1] != fids[i])
				fids[k++] = fids[i];
		nfids = k;
	}
	free(tf);
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
		int nsrefs = 0;
		if ((rc = extidx_sfile_fid_refs(st->x, fids[i], &refs)) ||
		    (!refs && (rc = ns_fid_refs(st, fids[i], &nsrefs))))
			goto out_rollback;
		if (!refs && !nsrefs) {
			/* Nothing names the file any more: its remaining extents go too. */
			if ((rc = snap_gc_fid(st, fids[i], UINT64_MAX, NULL, 0, &fr)) ||
			    (rc = extidx_file_delete(st->x, fids[i])))
				goto out_rollback;
			dropped[ndropped++] = fids[i];
		}
	}
	if ((rc = store_commit(st)))
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
	ns_tree_del(st, id);
	ns_max_update(st);
	freelist_apply(st, &fr);
	for (size_t i = 0; i < nfids; i++)
		assert(!store_file_by_fid(st, fids[i]) ||
		       store_cover_sanity(store_file_by_fid(st, fids[i])));
	assert(store_snaps_sanity(st, 1));
	goto out;
out_rollback:
	extidx_rollback(st->x);
out:
	free(fr.r);
	free(rest);
	free(fids);
	free(dropped);
	extidx_sfiles_free(sfs, nsf);
	return rc;
}

int store_relabel(struct store *st, uint64_t id, const char *label)
{
	if (label && strlen(label) > STORE_LABEL_MAX)
		return -EINVAL;
	pthread_mutex_lock(&st->mu);
	int rc = store_snap_find(st, id) ? 0 : -ENOENT;
	if (rc == 0 && (rc = store_begin(st, 1)) == 0) {
		rc = extidx_snap_set_label(st->x, id, label);
		if (rc == 0)
			rc = store_commit(st);
		else
			extidx_rollback(st->x);
	}
	pthread_mutex_unlock(&st->mu);
	return rc;
}

int store_release(struct store *st, uint64_t id)
{
	pthread_rwlock_wrlock(&st->space);
	pthread_mutex_lock(&st->mu);
	struct snapmem *sm = store_snap_find(st, id);
	int full = sm && sm->kind == STORE_PINNED;
	int rc = sm ? snap_release_locked(st, id, full) : -ENOENT;
	if (rc == -ENOSPC && store_reserve_drop(st))
		rc = snap_release_locked(st, id, full); /* the index needed room: retry */
	if (!rc && !st->reserve_held)
		(void)store_reserve_make(st); /* space was just punched free */
	pthread_mutex_unlock(&st->mu);
	pthread_rwlock_unlock(&st->space);
	return rc;
}
