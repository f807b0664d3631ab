// SPDX-License-Identifier: MIT
/*
 * Tree snapshots, the write side: the O(1) pin of a tree and the hooks the
 * daemon calls before a namespace or metadata change. A change at epoch E of
 * a node (or entry) whose live state holds since t_last needs a row
 * [t_last, E) iff some live tree snapshot has its epoch in that range, i.e.
 * iff the largest live tree epoch is >= t_last; the row is committed
 * (synchronous=FULL when a pinned snapshot needs it) before the hook returns,
 * so the daemon changes the live node only after its old state is durable.
 * Watch for: nids inserted inside a transaction are bound to their
 * store_file only after the commit; t_last moves to E even when no row was
 * needed (the change about to happen starts the new live state).
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "store_i.h"

#define NS_FEW 16 /* live snapshots handled without an allocation */

int store_pin_tree(struct store *st, const struct store_pin *p, struct store_file *root,
		   const char *path, uint64_t *id)
{
	if (!p || !root || !path || root->st != st ||
	    (p->label && strlen(p->label) > STORE_LABEL_MAX) ||
	    (p->kind != STORE_PINNED && p->kind != STORE_EPHEMERAL))
		return -EINVAL;
	char *pcopy = strdup(path);
	if (!pcopy)
		return -ENOMEM;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	pthread_mutex_lock(&st->mu);
	uint64_t rootnid = 0, sid = 0, E = st->epoch;
	int rc = root->detached ? -ENOENT : 0;
	if (!rc)
		rc = store_snap_reserve(st, 1);
	if (!rc) { /* room in the tree table, so nothing fails after the commit */
		struct nstab *t = st->ns;
		void *na = store_grow(t->t, t->n, &t->cap, sizeof(*t->t), 16);
		if (!na)
			rc = -ENOMEM;
		else
			t->t = na;
	}
	if (rc || (rc = store_begin(st, p->kind == STORE_PINNED)))
		goto out;
	struct extidx_snap row = {.epoch = E,
				  .created = now.tv_sec,
				  .expires = p->expires,
				  .uid = p->uid,
				  .kind = p->kind};
	if (p->label)
		strlcpy(row.label, p->label, sizeof(row.label));
	rc = ns_nid(root, 1, &rootnid);
	if (!rc && root->detached)
		rc = -ENOENT;
	if (!rc)
		rc = extidx_snap_insert(st->x, &row, &sid);
	if (!rc) {
		struct nsidx_tree tr = {
		    .id = sid, .root = rootnid, .created_ns = store_ts_ns(&now), .path = pcopy};
		rc = nsidx_tree_insert(st->ns->nx, &tr);
	}
	if (!rc)
		rc = extidx_meta_set(st->x, "epoch", (int64_t)(E + 1));
	if (rc) {
		extidx_rollback(st->x);
		goto out;
	}
	if ((rc = store_commit(st)))
		goto out;
	store_test_point("pin:committed");
	st->epoch = E + 1;
	if (!root->fid)
		store_file_set_fid(root, rootnid);
	struct snapmem m = {.id = sid,
			    .epoch = E,
			    .created = row.created,
			    .expires = p->expires,
			    .uid = p->uid,
			    .kind = p->kind};
	store_snap_add(st, &m); /* room reserved above */
	struct nstree x = {.id = sid,
			   .epoch = E,
			   .root = rootnid,
			   .created_ns = store_ts_ns(&now),
			   .kind = p->kind,
			   .path = pcopy};
	ns_tree_add(st, &x); /* room reserved above */
	pcopy = NULL;
	ns_max_update(st);
	assert(store_snaps_sanity(st, 1));
	*id = sid;
out:
	pthread_mutex_unlock(&st->mu);
	free(pcopy);
	return rc;
}

int store_snap_is_tree(struct store *st, uint64_t id, uint64_t *root_fid, char *path,
		       size_t pathlen)
{
	pthread_mutex_lock(&st->mu);
	const struct nstree *x = ns_tree_find(st, id);
	int rc = x ? 1 : store_snap_find(st, id) ? 0 : -ENOENT;
	if (x) {
		if (root_fid)
			*root_fid = x->root;
		if (path && strlcpy(path, x->path, pathlen) >= pathlen)
			rc = -ERANGE;
	}
	pthread_mutex_unlock(&st->mu);
	return rc;
}

int store_ns_active(struct store *st)
{
	return __atomic_load_n(&st->ns->max_live, __ATOMIC_ACQUIRE) != 0;
}

int store_ns_need(struct store_file *sf)
{
	struct store *st = sf->st;
	uint64_t m = __atomic_load_n(&st->ns->max_live, __ATOMIC_ACQUIRE);
	if (!m)
		return 0;
	if (store_file_tracked(sf))
		sf->hooked = 1; /* under the write lock: store_file_unlock records the change */
	if (!__atomic_load_n(&sf->ns_known, __ATOMIC_ACQUIRE)) {
		pthread_mutex_lock(&st->mu);
		int rc = ns_load(sf);
		pthread_mutex_unlock(&st->mu);
		if (rc)
			return rc;
	}
	return m >= __atomic_load_n(&sf->ns_tlast, __ATOMIC_RELAXED);
}

void store_ns_born(struct store_file *sf)
{
	struct store *st = sf->st;
	pthread_mutex_lock(&st->mu);
	sf->ns_born = st->epoch;
	__atomic_store_n(&sf->ns_tlast, st->epoch, __ATOMIC_RELAXED);
	__atomic_store_n(&sf->ns_known, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&st->mu);
}

/* The live tree snapshots with epochs in [lo, E) (mu held): indexes into
 * *idx (few[] or an allocation to free when != few); whether one is pinned. */
static int live_range(struct store *st, uint64_t lo, size_t *few, size_t **idx, size_t *n,
		      int *pinned)
{
	*idx = few;
	*n = ns_live_in(st, lo, st->epoch, few, NS_FEW);
	if (*n > NS_FEW) {
		if (!(*idx = malloc(*n * sizeof(**idx))))
			return -ENOMEM;
		ns_live_in(st, lo, st->epoch, *idx, *n);
	}
	*pinned = 0;
	for (size_t i = 0; i < *n; i++)
		*pinned |= st->ns->t[(*idx)[i]].kind == STORE_PINNED;
	return 0;
}

int store_ns_save(struct store_file *sf, int fd, const struct store_attr *now)
{
	(void)fd;
	struct store *st = sf->st;
	size_t few[NS_FEW], *idx = few, n = 0;
	int pinned = 0;
	uint64_t nid = 0;
	if (!now)
		return -EINVAL;
	pthread_mutex_lock(&st->mu);
	int rc = ns_load(sf);
	if (!rc)
		rc = live_range(st, sf->ns_tlast, few, &idx, &n, &pinned);
	if (rc || !n)
		goto out_done; /* nothing live needs the old state */
	int reg = S_ISREG(now->mode);
	if (reg && sf->capcov - sf->ncov < n) { /* room for the covers before the commit */
		size_t nc = sf->ncov + n + 4;
		struct cover *na = reallocarray(sf->cov, nc, sizeof(*na));
		if (!na) {
			rc = -ENOMEM;
			goto out;
		}
		sf->cov = na;
		sf->capcov = nc;
	}
	if ((rc = store_begin(st, pinned)))
		goto out;
	uint64_t E = st->epoch;
	struct nsidx_attr a = {.efrom = sf->ns_tlast,
			       .eto = E,
			       .mode = now->mode,
			       .uid = now->uid,
			       .gid = now->gid,
			       .nlink = now->nlink,
			       .size = now->size,
			       .rdev = now->rdev,
			       .ino = now->ino,
			       .atime_ns = store_ts_ns(&now->atime),
			       .mtime_ns = store_ts_ns(&now->mtime),
			       .ctime_ns = store_ts_ns(&now->ctime),
			       .target = now->target,
			       .target_len = now->target ? now->target_len : 0,
			       .xattrs = now->xattrs,
			       .xattrs_len = now->xattrs ? now->xattrs_len : 0};
	rc = ns_nid(sf, 1, &nid);
	a.nid = nid;
	if (!rc)
		rc = nsidx_attr_insert(st->ns->nx, &a);
	if (!rc && reg) /* what the file shows now, as a pin records it: recovery after a
			   crash before the change finds the file as recorded, not stale */
		rc = extidx_file_set_stat(st->x, nid, now->ino, now->size, store_ts_ns(&now->mtime),
					  store_ts_ns(&now->ctime));
	if (rc) {
		extidx_rollback(st->x);
		goto out;
	}
	if ((rc = store_commit(st)))
		goto out;
	if (!sf->fid)
		store_file_set_fid(sf, nid);
	for (size_t i = 0; reg && i < n; i++) {
		const struct nstree *x = &st->ns->t[idx[i]];
		struct cover c = {
		    .snap = x->id, .epoch = x->epoch, .size = now->size, .kind = x->kind};
		store_cover_add(sf, &c); /* room reserved above */
	}
	if (reg)
		sf->hooked = 1; /* now tracked: the unlock records the change */
	assert(store_cover_sanity(sf));
out_done:
	if (!rc)
		__atomic_store_n(&sf->ns_tlast, st->epoch, __ATOMIC_RELAXED);
out:
	pthread_mutex_unlock(&st->mu);
	if (idx != few)
		free(idx);
	if (!rc && n)
		store_test_point("ns:committed");
	return rc;
}

int store_ns_entry(struct store *st, struct store_file *dir, const char *name,
		   struct store_file *child, uint32_t child_type)
{
	size_t few[NS_FEW], *idx = few, n = 0;
	int pinned = 0;
	uint64_t m = __atomic_load_n(&st->ns->max_live, __ATOMIC_ACQUIRE);
	if (!dir || !name || !*name || strchr(name, '/') || !strcmp(name, ".") ||
	    !strcmp(name, "..") || dir->st != st || (child && child->st != st))
		return -EINVAL;
	if (!m)
		return 0;
	pthread_mutex_lock(&st->mu);
	uint64_t dnid = 0, cnid = 0, t = 0;
	int rc = ns_nid(dir, 0, &dnid);
	if (!rc && dnid)
		rc = nsidx_entry_tlast(st->ns->nx, dnid, name, &t);
	if (dir->ns_born > t)
		t = dir->ns_born; /* no snapshot before the directory's birth has it */
	if (!rc)
		rc = live_range(st, t, few, &idx, &n, &pinned);
	if (rc || !n)
		goto out;
	if ((rc = store_begin(st, pinned)))
		goto out;
	if (!dnid)
		rc = ns_nid(dir, 1, &dnid);
	if (!rc && child)
		rc = ns_nid(child, 1, &cnid);
	if (!rc) {
		struct nsidx_entry e = {.dir = dnid,
					.name = (char *)name,
					.efrom = t,
					.eto = st->epoch,
					.child = cnid,
					.ctype = child ? child_type : 0};
		rc = nsidx_entry_insert(st->ns->nx, &e);
	}
	if (rc) {
		extidx_rollback(st->x);
		goto out;
	}
	if ((rc = store_commit(st)))
		goto out;
	if (!dir->fid)
		store_file_set_fid(dir, dnid);
	if (child && !child->fid)
		store_file_set_fid(child, cnid);
out:
	pthread_mutex_unlock(&st->mu);
	if (idx != few)
		free(idx);
	if (!rc && n)
		store_test_point("ns:committed");
	return rc;
}

int store_ns_nid(struct store_file *sf, uint64_t *nid)
{
	struct store *st = sf->st;
	if (!__atomic_load_n(&sf->ns_known, __ATOMIC_ACQUIRE)) {
		pthread_mutex_lock(&st->mu);
		int rc = ns_load(sf);
		pthread_mutex_unlock(&st->mu);
		if (rc)
			return rc;
	}
	*nid = store_file_fid(sf);
	return 0;
}
