// SPDX-License-Identifier: MIT
/*
 * The costly summaries, for list and show: a snapshot's file count and the
 * bytes only it holds (O(files x extents) under the store mutex), the list
 * of snapshots, the files of one. Lookups on hot paths use
 * store_snap_meta and dir.c instead.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store_i.h"

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
