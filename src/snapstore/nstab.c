// SPDX-License-Identifier: MIT
/*
 * Tree snapshots in memory and their share of release, recovery and check:
 * the table of live tree snapshots (id, epoch, root nid, path, pin time),
 * the largest valid tree epoch that the hooks read with one atomic load,
 * each node's t_last (loaded from its rows on first need), and deleting the
 * namespace rows no tree snapshot needs. Watch for: everything here runs
 * with st->mu held; a row [efrom, eto) is needed iff the epoch of some live
 * tree snapshot lies in it, and rows are deleted only inside the caller's
 * transaction.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store_i.h"

int ns_init(struct store *st)
{
	struct nstab *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	int rc = nsidx_open(st->x, &t->nx);
	if (rc) {
		free(t);
		return rc;
	}
	st->ns = t;
	return 0;
}

void ns_free(struct store *st)
{
	struct nstab *t = st->ns;
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		free(t->t[i].path);
	free(t->t);
	nsidx_close(t->nx);
	free(t);
	st->ns = NULL;
}

struct nstree *ns_tree_find(struct store *st, uint64_t id)
{
	struct nstab *t = st->ns;
	size_t lo = 0, hi = t->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (t->t[mid].id == id)
			return &t->t[mid];
		if (t->t[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int ns_tree_add(struct store *st, const struct nstree *x)
{
	struct nstab *t = st->ns;
	struct nstree *na = store_grow(t->t, t->n, &t->cap, sizeof(*na), 16);
	if (!na)
		return -ENOMEM;
	t->t = na;
	size_t i = t->n;
	while (i && t->t[i - 1].id > x->id) {
		t->t[i] = t->t[i - 1];
		i--;
	}
	t->t[i] = *x;
	t->n++;
	return 0;
}

void ns_tree_del(struct store *st, uint64_t id)
{
	struct nstab *t = st->ns;
	struct nstree *x = ns_tree_find(st, id);
	if (!x)
		return;
	size_t i = (size_t)(x - t->t);
	free(x->path);
	memmove(&t->t[i], &t->t[i + 1], (t->n - i - 1) * sizeof(*x));
	t->n--;
}

static int tree_valid(struct store *st, const struct nstree *x)
{
	const struct snapmem *sm = store_snap_find(st, x->id);
	return sm && sm->state == STORE_VALID;
}

void ns_max_update(struct store *st)
{
	struct nstab *t = st->ns;
	uint64_t m = 0;
	for (size_t i = t->n; i-- > 0 && !m;)
		if (tree_valid(st, &t->t[i]))
			m = t->t[i].epoch;
	__atomic_store_n(&t->max_live, m, __ATOMIC_RELEASE);
}

size_t ns_live_in(struct store *st, uint64_t lo, uint64_t hi, size_t *idx, size_t max)
{
	struct nstab *t = st->ns;
	size_t a = 0, b = t->n, k = 0;
	while (a < b) { /* first tree with epoch >= lo (epochs increase with ids) */
		size_t mid = (a + b) / 2;
		if (t->t[mid].epoch < lo)
			a = mid + 1;
		else
			b = mid;
	}
	for (size_t i = a; i < t->n && t->t[i].epoch < hi; i++) {
		if (!tree_valid(st, &t->t[i]))
			continue;
		if (k < max)
			idx[k] = i;
		k++;
	}
	return k;
}

int ns_nid(struct store_file *sf, int create, uint64_t *nid)
{
	struct store *st = sf->st;
	*nid = sf->fid;
	if (*nid)
		return 0;
	int state = 0;
	int rc = extidx_file_by_handle(st->x, sf->handle, sf->hlen, nid, &state);
	if (!rc) {
		store_file_set_fid(sf, *nid); /* an existing row: safe to bind now */
		if (state == 1)
			sf->detached = 1;
		return 0;
	}
	if (rc != -ENOENT)
		return rc;
	*nid = 0;
	if (!create)
		return 0;
	struct extidx_file f = {.hlen = sf->hlen};
	memcpy(f.handle, sf->handle, sf->hlen);
	return extidx_file_insert(st->x, &f, nid); /* bound by the caller after its commit */
}

int ns_load(struct store_file *sf)
{
	if (sf->ns_known)
		return 0;
	uint64_t nid, tl = 0;
	int rc = ns_nid(sf, 0, &nid);
	if (!rc && nid)
		rc = nsidx_attr_tlast(sf->st->ns->nx, nid, &tl);
	if (rc)
		return rc;
	if (sf->ns_born > tl)
		tl = sf->ns_born;
	__atomic_store_n(&sf->ns_tlast, tl, __ATOMIC_RELAXED);
	__atomic_store_n(&sf->ns_known, 1, __ATOMIC_RELEASE);
	return 0;
}

/* Whether some epoch of the sorted ep[0..n) lies in [from, to). */
static int needed(const uint64_t *ep, size_t n, uint64_t from, uint64_t to)
{
	size_t a = 0, b = n;
	while (a < b) {
		size_t mid = (a + b) / 2;
		if (ep[mid] < from)
			a = mid + 1;
		else
			b = mid;
	}
	return a < n && ep[a] < to;
}

/* The epochs of every tree snapshot but `except`, sorted. */
static int epochs(struct store *st, uint64_t except, uint64_t **ep, size_t *n)
{
	struct nstab *t = st->ns;
	*ep = malloc((t->n + 1) * sizeof(**ep));
	if (!*ep)
		return -ENOMEM;
	*n = 0;
	for (size_t i = 0; i < t->n; i++)
		if (t->t[i].id != except)
			(*ep)[(*n)++] = t->t[i].epoch;
	return 0;
}

int ns_release_rows(struct store *st, uint64_t id, uint64_t **fids, size_t *nf)
{
	struct nstab *t = st->ns;
	struct nstree *x = ns_tree_find(st, id);
	struct nsidx_attr *a = NULL;
	struct nsidx_entry *e = NULL;
	size_t na = 0, ne = 0, nep = 0;
	uint64_t *ep = NULL;
	*fids = NULL;
	*nf = 0;
	if (!x)
		return 0;
	uint64_t s = x->epoch;
	int rc = epochs(st, id, &ep, &nep);
	if (!rc)
		rc = nsidx_attrs(t->nx, s, &a, &na);
	if (!rc && !(*fids = malloc((na + 1) * sizeof(**fids))))
		rc = -ENOMEM;
	for (size_t i = 0; i < na && !rc; i++) {
		if (S_ISREG(a[i].mode))
			(*fids)[(*nf)++] = a[i].nid; /* sorted by nid, one row each */
		if (!needed(ep, nep, a[i].efrom, a[i].eto))
			rc = nsidx_attr_delete(t->nx, a[i].nid, a[i].efrom);
	}
	if (!rc)
		rc = nsidx_entries(t->nx, 0, s, &e, &ne);
	for (size_t i = 0; i < ne && !rc; i++)
		if (!needed(ep, nep, e[i].efrom, e[i].eto))
			rc = nsidx_entry_delete(t->nx, e[i].dir, e[i].name, e[i].efrom);
	if (!rc)
		rc = nsidx_tree_delete(t->nx, id);
	if (rc) {
		free(*fids);
		*fids = NULL;
		*nf = 0;
	}
	free(ep);
	free(a);
	nsidx_entries_free(e, ne);
	return rc;
}

int ns_recover_rows(struct store *st)
{
	struct nstab *t = st->ns;
	struct nsidx_tree *rows = NULL;
	struct nsidx_attr *a = NULL;
	struct nsidx_entry *e = NULL;
	size_t nrows = 0, na = 0, ne = 0, nep = 0;
	uint64_t *ep = NULL;
	int rc = nsidx_trees_all(t->nx, &rows, &nrows);
	for (size_t i = 0; i < nrows && !rc; i++) {
		const struct snapmem *sm = store_snap_find(st, rows[i].id);
		if (!sm) { /* ephemeral, expired, or released half-way: gone */
			rc = nsidx_tree_delete(t->nx, rows[i].id);
			continue;
		}
		struct nstree x = {.id = rows[i].id,
				   .epoch = sm->epoch,
				   .root = rows[i].root,
				   .created_ns = rows[i].created_ns,
				   .kind = sm->kind,
				   .path = rows[i].path};
		if (!(rc = ns_tree_add(st, &x)))
			rows[i].path = NULL; /* the table owns it now */
	}
	if (!rc)
		rc = epochs(st, 0, &ep, &nep);
	if (!rc)
		rc = nsidx_attrs(t->nx, UINT64_MAX, &a, &na);
	for (size_t i = 0; i < na && !rc; i++)
		if (!needed(ep, nep, a[i].efrom, a[i].eto))
			rc = nsidx_attr_delete(t->nx, a[i].nid, a[i].efrom);
	if (!rc)
		rc = nsidx_entries(t->nx, 0, UINT64_MAX, &e, &ne);
	for (size_t i = 0; i < ne && !rc; i++)
		if (!needed(ep, nep, e[i].efrom, e[i].eto))
			rc = nsidx_entry_delete(t->nx, e[i].dir, e[i].name, e[i].efrom);
	nsidx_trees_free(rows, nrows);
	free(ep);
	free(a);
	nsidx_entries_free(e, ne);
	return rc;
}

int ns_recover_covers(struct store *st)
{
	struct nstab *t = st->ns;
	struct nsidx_attr *a = NULL;
	size_t na = 0;
	if (!t->n)
		return 0;
	int rc = nsidx_attrs(t->nx, UINT64_MAX, &a, &na);
	for (size_t i = 0; i < na && !rc; i++) {
		if (!S_ISREG(a[i].mode))
			continue;
		struct store_file *sf = store_file_by_fid(st, a[i].nid);
		if (!sf)
			continue; /* no files row: store_check reports it */
		size_t j = ns_live_in(st, a[i].efrom, a[i].eto, NULL, 0);
		size_t *idx = j ? malloc(j * sizeof(*idx)) : NULL;
		if (j && !idx) {
			rc = -ENOMEM;
			break;
		}
		ns_live_in(st, a[i].efrom, a[i].eto, idx, j);
		for (size_t k = 0; k < j && !rc; k++) {
			const struct nstree *x = &t->t[idx[k]];
			struct cover c = {
			    .snap = x->id, .epoch = x->epoch, .size = a[i].size, .kind = x->kind};
			rc = store_cover_add(sf, &c);
		}
		free(idx);
	}
	free(a);
	return rc;
}

int ns_fid_refs(struct store *st, uint64_t fid, int *refs)
{
	return nsidx_fid_refs(st->ns->nx, fid, refs);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int known(const uint64_t *fids, size_t n, uint64_t fid)
{
	return bsearch(&fid, fids, n, sizeof(*fids), cmp_u64) != NULL;
}

int ns_check(struct store *st, void (*report)(void *arg, const char *msg), void *arg)
{
	struct nstab *t = st->ns;
	struct extidx_file *files = NULL;
	struct nsidx_tree *rows = NULL;
	struct nsidx_attr *a = NULL;
	struct nsidx_entry *e = NULL;
	size_t nfiles = 0, nrows = 0, na = 0, ne = 0, nep = 0;
	uint64_t *fids = NULL, *ep = NULL;
	char msg[512];
	int rc = extidx_files_all(st->x, &files, &nfiles);
	if (!rc && !(fids = malloc((nfiles + 1) * sizeof(*fids))))
		rc = -ENOMEM;
	if (!rc)
		rc = nsidx_trees_all(t->nx, &rows, &nrows);
	if (!rc)
		rc = nsidx_attrs(t->nx, UINT64_MAX, &a, &na);
	if (!rc)
		rc = nsidx_entries(t->nx, 0, UINT64_MAX, &e, &ne);
	if (!rc)
		rc = epochs(st, 0, &ep, &nep);
	if (rc)
		goto out;
	for (size_t i = 0; i < nfiles; i++)
		fids[i] = files[i].fid;
	if (nfiles)
		qsort(fids, nfiles, sizeof(*fids), cmp_u64);

	if (nrows != t->n) {
		snprintf(msg, sizeof(msg), "%zu tree snapshot rows, %zu in memory", nrows, t->n);
		report(arg, msg);
	}
	for (size_t i = 0; i < nrows; i++) {
		const struct nstree *x = ns_tree_find(st, rows[i].id);
		const struct snapmem *sm = store_snap_find(st, rows[i].id);
		if (!x || !sm || x->epoch != sm->epoch || x->root != rows[i].root) {
			snprintf(msg, sizeof(msg),
				 "tree snapshot %" PRIu64 ": row and memory disagree", rows[i].id);
			report(arg, msg);
		}
		if (!known(fids, nfiles, rows[i].root)) {
			snprintf(msg, sizeof(msg),
				 "tree snapshot %" PRIu64 ": root nid %" PRIu64 " unknown",
				 rows[i].id, rows[i].root);
			report(arg, msg);
		}
	}
	for (size_t i = 0; i < na; i++) {
		const struct nsidx_attr *r = &a[i];
		if (r->efrom >= r->eto || r->eto > st->epoch ||
		    (i && a[i - 1].nid == r->nid && a[i - 1].eto > r->efrom)) {
			snprintf(msg, sizeof(msg),
				 "attribute rows of nid %" PRIu64
				 ": bad or overlapping range [%" PRIu64 ", %" PRIu64 ")",
				 r->nid, r->efrom, r->eto);
			report(arg, msg);
		}
		if (!known(fids, nfiles, r->nid)) {
			snprintf(msg, sizeof(msg), "attribute row of unknown nid %" PRIu64, r->nid);
			report(arg, msg);
		}
		if (!needed(ep, nep, r->efrom, r->eto)) {
			snprintf(msg, sizeof(msg),
				 "attribute row nid %" PRIu64 " [%" PRIu64 ", %" PRIu64
				 ") needed by no tree snapshot",
				 r->nid, r->efrom, r->eto);
			report(arg, msg);
		}
	}
	for (size_t i = 0; i < ne; i++) {
		const struct nsidx_entry *r = &e[i];
		if (r->efrom >= r->eto || r->eto > st->epoch ||
		    (i && e[i - 1].dir == r->dir && !strcmp(e[i - 1].name, r->name) &&
		     e[i - 1].eto > r->efrom)) {
			snprintf(msg, sizeof(msg),
				 "entry rows of dir %" PRIu64 " name %s: bad or overlapping range "
				 "[%" PRIu64 ", %" PRIu64 ")",
				 r->dir, r->name, r->efrom, r->eto);
			report(arg, msg);
		}
		if (!known(fids, nfiles, r->dir) || (r->child && !known(fids, nfiles, r->child))) {
			snprintf(msg, sizeof(msg),
				 "entry row dir %" PRIu64
				 " name %s: unknown nid (dir or child %" PRIu64 ")",
				 r->dir, r->name, r->child);
			report(arg, msg);
		}
		if (!needed(ep, nep, r->efrom, r->eto)) {
			snprintf(msg, sizeof(msg),
				 "entry row dir %" PRIu64 " name %s [%" PRIu64 ", %" PRIu64
				 ") needed by no tree snapshot",
				 r->dir, r->name, r->efrom, r->eto);
			report(arg, msg);
		}
	}
out:
	free(files);
	free(fids);
	free(ep);
	free(a);
	nsidx_trees_free(rows, nrows);
	nsidx_entries_free(e, ne);
	return rc;
}
