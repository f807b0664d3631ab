// SPDX-License-Identifier: MIT
/*
 * A file changed beside the mount: the daemon remembers, per tracked file,
 * what the live file showed after its own last change (store_mark_set,
 * file.c); when the live file shows something else, a writer bypassed the
 * mount and every snapshot of the file becomes stale, in memory and in the
 * index, and reads of it fail. Above the file table and the tree table
 * (a stale tree changes the newest live tree epoch). Watch for: called with
 * st->mu held; in_tx when the caller's transaction is open.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store_i.h"

int store_file_stale(struct store_file *sf, const struct stat *sb, int in_tx)
{
	struct store *st = sf->st;
	const struct live_mark *m = &sf->mark;
	uint64_t *ids = sf->ncov ? malloc(sf->ncov * sizeof(*ids)) : NULL;
	size_t n = 0;
	for (size_t i = 0; ids && i < sf->ncov; i++)
		ids[n++] = sf->cov[i].snap;
	if (sf->ncov && !ids)
		return -ENOMEM;
	store_logf(3,
		   "snapstore: file %" PRIu64 " changed without snapfs (size %" PRIu64
		   " -> %" PRIu64 ", mtime %" PRId64 " -> %" PRId64 " ns, inode %" PRIu64
		   " -> %" PRIu64 "): a writer bypassed the mount (another host, or a process "
		   "on the backing directory); its %zu snapshot(s) become stale",
		   sf->fid, m->size, (uint64_t)sb->st_size, m->mtime_ns, store_ts_ns(&sb->st_mtim),
		   m->ino, (uint64_t)sb->st_ino, n);
	int rc = in_tx ? 0 : store_begin(st, 1);
	for (size_t i = 0; i < n && !rc; i++)
		rc = extidx_snap_set_state(st->x, ids[i], STORE_STALE);
	if (!in_tx && !rc)
		rc = store_commit(st);
	else if (!in_tx)
		extidx_rollback(st->x);
	if (rc)
		store_logf(3,
			   "snapstore: could not record the stale state (%s): the snapshots stay "
			   "stale until the next open, which finds the file changed",
			   strerror(-rc));
	/* In memory whatever the index said: reads fail from now on. */
	for (size_t i = 0; i < n; i++) {
		struct snapmem *s = store_snap_find(st, ids[i]);
		if (s && s->state == STORE_VALID) {
			store_snap_set_state(st, s, STORE_STALE);
			store_logf(4, "snapstore: snapshot %" PRIu64 " is stale", ids[i]);
		}
		for (struct store_file *f = store_file_first(st); f; f = store_file_next(f))
			store_cover_del(f, ids[i]);
	}
	ns_max_update(st);
	free(ids);
	return rc;
}

int store_live_check(struct store_file *sf, int fd)
{
	struct store *st = sf->st;
	struct stat sb;
	if (fstat(fd, &sb))
		return -errno;
	pthread_mutex_lock(&st->mu);
	int rc = 0;
	if (!store_mark_same(sf, &sb)) {
		(void)store_file_stale(sf, &sb, 0);
		rc = -EIO;
	}
	pthread_mutex_unlock(&st->mu);
	return rc;
}
