// SPDX-License-Identifier: MIT
/*
 * Recovery, run by store_open inside one FULL transaction: ephemeral
 * snapshots dropped, expired ones released, files and covers loaded,
 * snapshots of files that changed while nobody watched marked stale, file
 * rows nobody names dropped, every extent no valid cover needs deleted;
 * after the commit the allocator is rebuilt from the remaining extents and
 * unreferenced block-file space is punched. Watch for: nothing may be
 * punched before the commit.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store_i.h"

struct recover_ext {
	struct ext *a;
	size_t n, cap;
};

static int collect_ext(void *arg, const struct ext *e)
{
	struct recover_ext *r = arg;
	struct ext *na = store_grow(r->a, r->n, &r->cap, sizeof(*na), 1024);
	if (!na)
		return -ENOMEM;
	r->a = na;
	r->a[r->n++] = *e;
	return 0;
}

/* Snapshot snap is unreadable because the store itself was damaged. */
static void mark_damaged(struct store *st, struct snapmem *s, const char *why)
{
	if (s->damaged)
		return;
	if (s->state != STORE_STALE)
		store_snap_set_state(st, s, STORE_STALE);
	s->damaged = 1;
	store_logf(3, "snapstore: snapshot %" PRIu64 " is stale: %s", s->id, why);
}

static void mark_stale(struct store *st, uint64_t snap)
{
	struct snapmem *s = store_snap_find(st, snap);
	if (!s || s->state == STORE_STALE)
		return;
	store_snap_set_state(st, s, STORE_STALE);
	store_logf(4, "snapstore: snapshot %" PRIu64 " is stale: a file changed while unmounted",
		   snap);
}

/*
 * Staleness of one attached file: clean close -> any difference of size,
 * mtime, ctime or inode from the recorded stat. After a crash the store
 * cannot know what the daemon did last, so a change is trusted only when
 * the daemon can vouch for it: the file's ctime is not after the last tick
 * (alive_ns: the tick's time on the coarse clock that stamps ctime: a later
 * change gets a ctime at or after it), or it is exactly as at the last pin,
 * or it shows exactly the ctime,
 * mtime and size the daemon recorded right after its last write under the
 * file's lock (the marks file). Anything else, in particular a change made
 * from outside within seconds of the crash, makes the file's snapshots
 * stale; a daemon write cut short by the crash does too (false stale, never
 * wrong bytes).
 */
static int check_file(struct store *st, struct store_file *sf, const struct extidx_file *row,
		      int clean, int64_t alive_ns, int *stale)
{
	*stale = 0;
	int fd = store_open_handle(st, sf->handle, sf->hlen, O_RDONLY);
	if (fd == -ESTALE || fd == -ENOENT) {
		*stale = 1;
		return 0;
	}
	if (fd < 0) {
		store_logf(3, "snapstore: cannot reopen a snapshotted file by handle: %s",
			   strerror(-fd));
		return fd;
	}
	struct stat sb;
	if (fstat(fd, &sb)) {
		int e = errno;
		close(fd);
		return -e;
	}
	int same = (uint64_t)sb.st_size == row->size && (uint64_t)sb.st_ino == row->ino &&
		   store_ts_ns(&sb.st_mtim) == row->mtime_ns &&
		   store_ts_ns(&sb.st_ctim) == row->ctime_ns;
	if (clean)
		*stale = !same;
	else /* as at the last pin, or not after the last tick, or as the daemon left it */
		*stale = !same && store_ts_ns(&sb.st_ctim) >= alive_ns &&
			 !store_mark_matches(st, row->fid, &sb);
	int rc = 0;
	if (!*stale)
		store_mark_set(sf, &sb); /* the baseline of this mount's checks */
	if (!*stale)
		rc =
		    extidx_file_set_stat(st->x, row->fid, (uint64_t)sb.st_ino, (uint64_t)sb.st_size,
					 store_ts_ns(&sb.st_mtim), store_ts_ns(&sb.st_ctim));
	close(fd);
	return rc;
}

int store_recover(struct store *st)
{
	int64_t clean = 0, alive = 0, epoch = 1;
	int rc;
	struct extidx_snap *snaps = NULL;
	struct extidx_file *files = NULL;
	struct extidx_sfile *sfiles = NULL;
	size_t nsnaps = 0, nfiles = 0, nsfiles = 0;
	struct recover_ext ex = {0};
	uint64_t *ustart = NULL, *un = NULL;
	size_t nused = 0;

	int64_t alive_at = 0;
	if ((rc = extidx_meta_get(st->x, "alive_at", &alive_at)) && rc != -ENOENT)
		return rc;
	if ((rc = extidx_meta_get(st->x, "clean", &clean)) ||
	    (rc = extidx_meta_get(st->x, "alive_until", &alive)) ||
	    (rc = extidx_meta_get(st->x, "epoch", &epoch)))
		return rc == -ENOENT ? -EIO : rc;
	st->epoch = (uint64_t)epoch;
	if (alive_at)
		alive =
		    alive_at; /* a store ticked by this code: the tick's time, not its promise */
	else
		alive++; /* older stores: a change is stale from just after the promise */
	int64_t gen = 0, sums_all = 0;
	if ((rc = extidx_meta_get(st->x, "sums", &sums_all)) && rc != -ENOENT)
		return rc;
	st->sums_all = sums_all == 1;
	if ((rc = extidx_meta_get(st->x, "gen", &gen)) && rc != -ENOENT)
		return rc;
	st->gen = (uint64_t)gen;
	/* The gen file counts commits outside the index: more than the index
	 * knows means committed transactions were lost (a deleted WAL). */
	uint64_t fgen = store_gen_read(st);
	int lost = fgen > st->gen;
	if (lost) {
		store_logf(3,
			   "snapstore: the index lost %" PRIu64
			   " committed transactions (its WAL was deleted or is damaged): "
			   "every snapshot is marked stale; run check",
			   fgen - st->gen);
		st->lost_tx = fgen - st->gen;
		st->gen = fgen; /* count on from there */
	}
	if ((rc = ns_init(st)))
		return rc;
	if ((rc = store_begin(st, 1)))
		return rc;

	/* 1. Ephemeral snapshots die with the daemon; expired ones are released. */
	if ((rc = extidx_snaps_all(st->x, &snaps, &nsnaps)))
		goto out;
	int64_t now = time(NULL);
	for (size_t i = 0; i < nsnaps; i++) {
		struct extidx_snap *s = &snaps[i];
		if (s->kind == STORE_EPHEMERAL || (s->expires && s->expires <= now)) {
			if ((rc = extidx_snap_delete(st->x, s->id)))
				goto out;
			continue;
		}
		if (s->epoch >= st->epoch ||
		    (s->kind != STORE_PINNED && s->kind != STORE_EPHEMERAL) ||
		    (s->state != STORE_VALID && s->state != STORE_STALE &&
		     s->state != STORE_STATE_DAMAGED) ||
		    (st->nsnaps && (s->epoch <= st->snaps[st->nsnaps - 1].epoch))) {
			store_logf(3,
				   "snapstore: index inconsistent: snapshot %" PRIu64
				   " has epoch %" PRIu64 " (store epoch %" PRIu64 "): run check",
				   s->id, s->epoch, st->epoch);
			rc = -EIO;
			goto out;
		}
		struct snapmem m = {.id = s->id,
				    .epoch = s->epoch,
				    .created = s->created,
				    .expires = s->expires,
				    .uid = s->uid,
				    .kind = s->kind,
				    .state = s->state == STORE_VALID ? STORE_VALID : STORE_STALE,
				    .damaged = s->state == STORE_STATE_DAMAGED};
		if ((rc = store_snap_add(st, &m)))
			goto out;
	}
	if ((rc = ns_recover_rows(st))) /* tree snapshots, and their rows' GC */
		goto out;

	/* 2. Files and the valid snapshots covering them. */
	if ((rc = extidx_files_all(st->x, &files, &nfiles)) ||
	    (rc = extidx_sfiles(st->x, 0, &sfiles, &nsfiles)))
		goto out;
	for (size_t i = 0; i < nfiles; i++) {
		struct store_file *sf = store_file_new(st, files[i].handle, files[i].hlen);
		if (!sf) {
			rc = -ENOMEM;
			goto out;
		}
		store_file_set_fid(sf, files[i].fid);
		sf->detached = files[i].state == 1;
	}
	for (size_t i = 0; i < nsfiles; i++) {
		struct snapmem *s = store_snap_find(st, sfiles[i].snap);
		struct store_file *sf = store_file_by_fid(st, sfiles[i].fid);
		if (!s || !sf || s->state != STORE_VALID)
			continue;
		int dup = 0; /* one file under several paths: one cover */
		for (size_t j = 0; j < sf->ncov && !dup; j++)
			dup = sf->cov[j].snap == s->id;
		if (dup)
			continue;
		struct cover c = {
		    .snap = s->id, .epoch = s->epoch, .size = sfiles[i].size, .kind = s->kind};
		if ((rc = store_cover_add(sf, &c)))
			goto out;
	}
	if ((rc = ns_recover_covers(st))) /* regular files saved for tree snapshots */
		goto out;

	/* 3. Damage: every snapshot, when the index lost transactions; those that
	 * need an extent lying past the block file's end (a truncated block file:
	 * never read back as zeros). */
	if ((rc = extidx_ext_each(st->x, collect_ext, &ex)))
		goto out;
	for (size_t i = 0; lost && i < st->nsnaps; i++)
		mark_damaged(st, &st->snaps[i], "the index lost committed transactions");
	struct stat bsb;
	if (fstat(st->blk.fd, &bsb)) {
		rc = -errno;
		goto out;
	}
	uint64_t cut = 0;
	for (size_t i = 0; i < ex.n; i++) {
		struct ext *e = &ex.a[i];
		struct store_file *sf = store_file_by_fid(st, e->fid);
		if (e->loc < 0 ||
		    (uint64_t)e->loc + (uint64_t)e->nblk * st->bs <= (uint64_t)bsb.st_size)
			continue;
		cut++;
		for (size_t j = 0; sf && j < sf->ncov; j++)
			if (store_ext_needed(&sf->cov[j], 1, st->bs, e->blk, e->efrom, e->eto))
				mark_damaged(st, store_snap_find(st, sf->cov[j].snap),
					     "the block file is shorter than its extents");
	}
	if (cut)
		store_logf(3,
			   "snapstore: %" PRIu64 " extents lie past the end of the block file "
			   "(%" PRIu64 " bytes): it was truncated",
			   cut, (uint64_t)bsb.st_size);

	/* 4. Files changed while nobody watched make their snapshots stale. */
	for (size_t i = 0; i < nfiles; i++) {
		struct store_file *sf = store_file_by_fid(st, files[i].fid);
		if (!sf->ncov || sf->detached)
			continue;
		int stale;
		if ((rc = check_file(st, sf, &files[i], clean == 1, alive, &stale)))
			goto out;
		if (stale)
			for (size_t j = 0; j < sf->ncov; j++)
				mark_stale(st, sf->cov[j].snap);
	}
	for (size_t i = 0; i < st->nsnaps; i++) {
		struct snapmem *s = &st->snaps[i];
		if (s->state != STORE_STALE)
			continue;
		if ((rc = extidx_snap_set_state(st->x, s->id,
						s->damaged ? STORE_STATE_DAMAGED : STORE_STALE)))
			goto out;
		for (size_t j = 0; j < nfiles; j++)
			store_cover_del(store_file_by_fid(st, files[j].fid), s->id);
	}

	/* 5. File rows no snapshot names any more go; the in-memory table keeps
	 * the tracked files only. */
	for (size_t i = 0; i < nfiles; i++) {
		struct store_file *sf = store_file_by_fid(st, files[i].fid);
		uint64_t refs = 0;
		int nsrefs = 0;
		if (!sf->ncov) {
			if ((rc = extidx_sfile_fid_refs(st->x, files[i].fid, &refs)) ||
			    (!refs && (rc = ns_fid_refs(st, files[i].fid, &nsrefs))))
				goto out;
			if (!refs && !nsrefs && (rc = extidx_file_delete(st->x, files[i].fid)))
				goto out;
			store_file_maybe_free(sf);
		}
	}

	/* 6. GC: every extent no valid snapshot needs; the rest is the used space. */
	ustart = malloc((ex.n + 1) * sizeof(*ustart));
	un = malloc((ex.n + 1) * sizeof(*un));
	if (!ustart || !un) {
		rc = -ENOMEM;
		goto out;
	}
	st->nextents = 0;
	st->preserved_bytes = 0;
	for (size_t i = 0; i < ex.n; i++) {
		struct ext *e = &ex.a[i];
		struct store_file *sf = store_file_by_fid(st, e->fid);
		if (!sf || !store_ext_needed(sf->cov, sf->ncov, st->bs, e->blk, e->efrom, e->eto)) {
			if ((rc = extidx_ext_delete(st->x, e->fid, e->blk, e->efrom)))
				goto out;
			continue;
		}
		st->nextents++;
		if (e->nblk > sf->maxnblk)
			sf->maxnblk = e->nblk;
		if (e->loc >= 0) {
			if ((uint64_t)e->loc % st->bs) {
				store_logf(3, "snapstore: extent at unaligned offset %" PRId64,
					   e->loc);
				rc = -EIO;
				goto out;
			}
			ustart[nused] = (uint64_t)e->loc / st->bs;
			un[nused++] = e->nblk;
			st->preserved_bytes += (uint64_t)e->nblk * st->bs;
		}
	}

	if ((rc = extidx_meta_set(st->x, "clean", 0)) ||
	    (rc = extidx_meta_set(st->x, "alive_at", store_coarse_now_ns())) ||
	    (rc = extidx_meta_set(st->x, "alive_until", store_now_ns() + STORE_ALIVE_GRACE_NS)))
		goto out;
	if ((rc = store_commit(st)))
		goto out;
	ns_max_update(st);
	for (struct store_file *sf = store_file_first(st); sf; sf = store_file_next(sf))
		assert(store_cover_sanity(sf));
	assert(store_snaps_sanity(st, 1));
	/* 7. Only now (rows durable) may unreferenced space be punched. */
	rc = blk_rebuild(&st->blk, ustart, un, nused);
	if (rc == -EIO)
		store_logf(3, "snapstore: two extents share block-file space: run check");
	goto out_free;
out:
	extidx_rollback(st->x);
out_free:
	free(snaps);
	free(files);
	extidx_sfiles_free(sfiles, nsfiles);
	free(ex.a);
	free(ustart);
	free(un);
	return rc;
}
