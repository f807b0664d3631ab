// SPDX-License-Identifier: MIT
/*
 * Pin: one snapshot of several files at one epoch, atomically against every
 * writer that follows the locking rule (the files' read locks are held from
 * the fstat to the commit), in one small transaction: O(1) in file sizes.
 * Watch for: everything that can fail (memory for covers and the table)
 * is reserved before the commit, so the in-memory state always follows it.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "store_i.h"

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
	/* A file already covered that changed without the daemon: its earlier
	 * snapshots are stale (the new one starts from what it shows now). */
	for (size_t i = 0; i < n && !rc; i++)
		if (files[i].sf->ncov && !store_mark_same(files[i].sf, &sb[i]))
			(void)store_file_stale(files[i].sf, &sb[i], 0); /* in memory at least */
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
	if (rc || (rc = store_begin(st, p->kind == STORE_PINNED)))
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
			rc = extidx_file_set_stat(
			    st->x, fid[i], (uint64_t)sb[i].st_ino, (uint64_t)sb[i].st_size,
			    store_ts_ns(&sb[i].st_mtim), store_ts_ns(&sb[i].st_ctim));
		if (rc == -ENOENT && state != 1) {
			struct extidx_file f = {.hlen = sf->hlen,
						.ino = (uint64_t)sb[i].st_ino,
						.size = (uint64_t)sb[i].st_size,
						.mtime_ns = store_ts_ns(&sb[i].st_mtim),
						.ctime_ns = store_ts_ns(&sb[i].st_ctim)};
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
		    .atime_ns = store_ts_ns(&sb[i].st_atim),
		    .mtime_ns = store_ts_ns(&sb[i].st_mtim),
		    .ctime_ns = store_ts_ns(&sb[i].st_ctim),
		};
		rc = extidx_sfile_insert(st->x, &f);
	}
	if (!rc)
		rc = extidx_meta_set(st->x, "epoch", (int64_t)(E + 1));
	if (rc) {
		extidx_rollback(st->x);
		goto out_mu;
	}
	if ((rc = store_commit(st)))
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
		store_mark_set(sf, &sb[i]);
	}
	struct snapmem m = {.id = sid,
			    .epoch = E,
			    .created = row.created,
			    .expires = p->expires,
			    .uid = p->uid,
			    .kind = p->kind};
	store_snap_add(st, &m); /* room reserved above */
	for (size_t i = 0; i < n; i++)
		assert(store_cover_sanity(files[i].sf));
	assert(store_snaps_sanity(st, 1));
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
