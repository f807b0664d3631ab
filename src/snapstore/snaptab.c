// SPDX-License-Identifier: MIT
/*
 * The snapshot table: every live snapshot (valid or stale) in memory,
 * sorted by id, with its epoch, owner, kind, state and (ephemeral ones) the
 * blocks it gave up. store_snap_meta reads it under st->snaplock alone;
 * every change holds st->mu and the snaplock for writing. Watch for: the
 * table must match the index's snapshots table after every commit (see
 * store_snaps_sanity).
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store_i.h"

struct snapmem *store_snap_find(struct store *st, uint64_t id)
{
	size_t lo = 0, hi = st->nsnaps;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (st->snaps[mid].id == id)
			return &st->snaps[mid];
		if (st->snaps[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int store_snap_reserve(struct store *st, size_t more)
{
	if (st->capsnaps - st->nsnaps >= more)
		return 0;
	size_t nc = st->capsnaps ? st->capsnaps * 2 : 16;
	if (nc < st->nsnaps + more)
		nc = st->nsnaps + more;
	pthread_rwlock_wrlock(&st->snaplock);
	struct snapmem *na = reallocarray(st->snaps, nc, sizeof(*na));
	if (na) {
		st->snaps = na;
		st->capsnaps = nc;
	}
	pthread_rwlock_unlock(&st->snaplock);
	return na ? 0 : -ENOMEM;
}

int store_snap_add(struct store *st, const struct snapmem *s)
{
	int rc = store_snap_reserve(st, 1);
	if (rc)
		return rc;
	pthread_rwlock_wrlock(&st->snaplock);
	size_t i = st->nsnaps;
	while (i && st->snaps[i - 1].id > s->id) {
		st->snaps[i] = st->snaps[i - 1];
		i--;
	}
	st->snaps[i] = *s;
	st->nsnaps++;
	pthread_rwlock_unlock(&st->snaplock);
	assert(store_snaps_sanity(st, 0));
	return 0;
}

void store_snap_set_state(struct store *st, struct snapmem *sm, int state)
{
	pthread_rwlock_wrlock(&st->snaplock);
	sm->state = state;
	pthread_rwlock_unlock(&st->snaplock);
}

void store_snap_del(struct store *st, uint64_t id)
{
	struct snapmem *s = store_snap_find(st, id);
	if (!s)
		return;
	size_t i = (size_t)(s - st->snaps);
	store_forgo_free(s);
	pthread_rwlock_wrlock(&st->snaplock);
	memmove(&st->snaps[i], &st->snaps[i + 1], (st->nsnaps - i - 1) * sizeof(*s));
	st->nsnaps--;
	pthread_rwlock_unlock(&st->snaplock);
	assert(store_snaps_sanity(st, 0));
}

int store_snap_meta(struct store *st, uint64_t id, struct store_snap_meta *out)
{
	pthread_rwlock_rdlock(&st->snaplock);
	const struct snapmem *sm = store_snap_find(st, id);
	if (sm)
		*out = (struct store_snap_meta){.id = sm->id,
						.epoch = sm->epoch,
						.created = sm->created,
						.expires = sm->expires,
						.uid = sm->uid,
						.kind = (enum store_kind)sm->kind,
						.state = (enum store_state)sm->state};
	pthread_rwlock_unlock(&st->snaplock);
	return sm ? 0 : -ENOENT;
}

void store_forgo_free(struct snapmem *sm)
{
	while (sm->forgo) {
		struct snapforgo *f = sm->forgo;
		sm->forgo = f->next;
		free(f->bits);
		free(f);
	}
}

const struct snapforgo *store_forgo_get(struct store *st, uint64_t snap, uint64_t fid)
{
	struct snapmem *sm = store_snap_find(st, snap);
	for (struct snapforgo *f = sm ? sm->forgo : NULL; f; f = f->next)
		if (f->fid == fid)
			return f;
	return NULL;
}

int store_snaps_sanity(struct store *st, int with_index)
{
	if (st->nsnaps > st->capsnaps)
		return 0;
	for (size_t i = 0; i < st->nsnaps; i++) {
		const struct snapmem *s = &st->snaps[i];
		if (i && (s->id <= s[-1].id || s->epoch <= s[-1].epoch))
			return 0; /* ids sorted, epochs increasing with them */
		if (s->epoch >= st->epoch ||
		    (s->kind != STORE_PINNED && s->kind != STORE_EPHEMERAL) ||
		    (s->state != STORE_VALID && s->state != STORE_STALE) ||
		    (s->forgo && s->kind != STORE_EPHEMERAL) ||
		    (s->damaged && s->state != STORE_STALE))
			return 0;
	}
	if (!with_index)
		return 1;
	struct extidx_snap *rows = NULL;
	size_t n = 0;
	if (extidx_snaps_all(st->x, &rows, &n))
		return 1; /* cannot tell (I/O, memory): not evidence of a broken table */
	int ok = n == st->nsnaps;
	for (size_t i = 0; ok && i < n; i++) {
		const struct snapmem *s = &st->snaps[i];
		const struct extidx_snap *r = &rows[i];
		ok = r->id == s->id && r->epoch == s->epoch && r->kind == s->kind &&
		     r->state == (s->damaged ? STORE_STATE_DAMAGED : s->state) &&
		     r->uid == s->uid && r->created == s->created && r->expires == s->expires;
	}
	free(rows);
	return ok;
}
