// SPDX-License-Identifier: MIT
/*
 * The store's lifecycle: open (create, lock, version checks, then
 * recovery), close (record every tracked file's stat for the next open),
 * the periodic tick (expiry, the alive promise) and statistics. The top
 * floor: it calls recovery and GC, nothing calls it. Watch for: store_open
 * must not write anything until every check that can refuse the store has
 * passed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store_i.h"

uint32_t store_block_size(const struct store *st)
{
	return st->bs;
}

/* ---- open / close ---- */

static void free_all(struct store *st)
{
	store_files_free(st);
	for (size_t i = 0; i < st->nsnaps; i++)
		store_forgo_free(&st->snaps[i]);
	free(st->snaps);
	blk_release(&st->blk);
	ns_free(st); /* its statements before the connection */
	extidx_close(st->x);
	if (st->blk.fd >= 0)
		close(st->blk.fd);
	store_disk_close(st);
	if (st->lockfd >= 0)
		close(st->lockfd);
	if (st->dirfd >= 0)
		close(st->dirfd);
	pthread_mutex_destroy(&st->mu);
	pthread_mutex_destroy(&st->gmu);
	pthread_cond_destroy(&st->gcv);
	pthread_rwlock_destroy(&st->space);
	pthread_rwlock_destroy(&st->snaplock);
	free(st);
}

/* Drop what a failed recovery built in memory. */
static void forget(struct store *st)
{
	store_files_free(st);
	for (size_t i = 0; i < st->nsnaps; i++)
		store_forgo_free(&st->snaps[i]);
	st->nsnaps = 0;
	blk_release(&st->blk);
	st->nextents = st->preserved_bytes = 0;
}

static int valid_bs(uint32_t bs)
{
	return bs >= 512 && bs <= (1u << 20) && !(bs & (bs - 1));
}

/* Make a new store in dirfd: blocks first, then the index under a temporary
 * name renamed into place, so a crash leaves either no index (retried) or a
 * complete one. */
static int create_store(struct store *st, const char *dir, uint32_t bs)
{
	char tmp[4096], fin[4096];
	int fd = openat(st->dirfd, "blocks", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	struct stat sb;
	if (fstat(fd, &sb) || sb.st_size != 0) {
		close(fd);
		store_logf(3, "snapstore: %s: a block file without an index: refusing to reuse it",
			   dir);
		return -EIO;
	}
	st->blk.fd = fd;
	if (snprintf(tmp, sizeof(tmp), "%s/index.db.new", dir) >= (int)sizeof(tmp) ||
	    snprintf(fin, sizeof(fin), "%s/index.db", dir) >= (int)sizeof(fin))
		return -ENAMETOOLONG;
	unlinkat(st->dirfd, "index.db.new", 0);
	unlinkat(st->dirfd, "index.db.new-wal", 0);
	unlinkat(st->dirfd, "index.db.new-shm", 0);
	uint32_t b = bs;
	int rc = extidx_open(tmp, 1, &b, store_logf, &st->x);
	if (rc)
		return rc;
	extidx_close(st->x); /* checkpoints and removes the WAL */
	st->x = NULL;
	if (renameat(st->dirfd, "index.db.new", st->dirfd, "index.db"))
		return -errno;
	fsync(st->dirfd);
	return extidx_open(fin, 0, &b, store_logf, &st->x);
}

int store_open(const char *dir, int source_fd, const struct store_opts *o, struct store **out)
{
	struct store_opts def = {0};
	if (!o)
		o = &def;
	if (o->block_size && !valid_bs(o->block_size))
		return -EINVAL;
	struct store *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->dirfd = st->lockfd = st->reservefd = st->marksfd = st->genfd = -1;
	st->blk.fd = -1;
	st->srcfd = source_fd;
	st->max_bytes = o->max_bytes;
	pthread_mutex_init(&st->mu, NULL);
	pthread_mutex_init(&st->gmu, NULL);
	pthread_cond_init(&st->gcv, NULL);
	st->gtail = &st->gq;
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&st->space, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_rwlock_init(&st->snaplock, NULL);
	RB_INIT(&st->files_h);
	RB_INIT(&st->files_f);

	int rc;
	st->dirfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (st->dirfd < 0 && errno == ENOENT && o->create) {
		if (mkdir(dir, 0700) && errno != EEXIST) {
			rc = -errno;
			goto out_free;
		}
		st->dirfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	}
	if (st->dirfd < 0) {
		rc = -errno;
		goto out_free;
	}
	int exists = faccessat(st->dirfd, "index.db", F_OK, 0) == 0;
	if (!exists && !o->create) {
		rc = -ENOENT;
		goto out_free;
	}
	st->lockfd = openat(st->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (st->lockfd < 0) {
		rc = -errno;
		goto out_free;
	}
	if (flock(st->lockfd, LOCK_EX | LOCK_NB)) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		if (rc == -EBUSY)
			store_logf(3, "snapstore: %s: in use by another process", dir);
		goto out_free;
	}
	uint32_t bs = o->block_size ? o->block_size : STORE_DEFAULT_BLOCK_SIZE;
	if (!exists) {
		rc = create_store(st, dir, bs);
		if (rc)
			goto out_free;
	} else {
		char path[4096];
		if (snprintf(path, sizeof(path), "%s/index.db", dir) >= (int)sizeof(path)) {
			rc = -ENAMETOOLONG;
			goto out_free;
		}
		bs = o->block_size;
		if ((rc = extidx_open(path, 0, &bs, store_logf, &st->x)))
			goto out_free;
		st->blk.fd = openat(st->dirfd, "blocks", O_RDWR | O_CLOEXEC);
		if (st->blk.fd < 0) {
			rc = -errno;
			store_logf(3, "snapstore: %s/blocks: %s", dir, strerror(-rc));
			if (rc == -ENOENT)
				rc = -EIO;
			goto out_free;
		}
	}
	st->bs = bs;
	int bfd = st->blk.fd;
	blk_init(&st->blk, bfd, bs);
	if ((rc = store_disk_open(st, !exists)) || (rc = extidx_upgrade(st->x)))
		goto out_free;
	rc = store_recover(st);
	if (rc == -ENOSPC && store_reserve_drop(st)) {
		forget(st); /* recovery's in-memory tables: built again */
		rc = store_recover(st);
	}
	if (rc)
		goto out_free;
	(void)store_reserve_make(st); /* best effort: the next tick tries again */
	*out = st;
	return 0;
out_free:
	free_all(st);
	return rc;
}

/* Record every tracked file's stat and clean = 1 (mu held). */
static int record_clean(struct store *st)
{
	int rc = store_begin(st, 1);
	for (struct store_file *sf = store_file_first(st); sf; sf = store_file_next(sf)) {
		if (rc || !sf->ncov || sf->detached || !sf->fid)
			continue;
		int fd = store_live_fd(sf);
		struct stat sb;
		int bad = fd < 0 || fstat(fd, &sb);
		if (fd >= 0)
			close(fd);
		if (bad)
			continue; /* gone: the next open finds it stale */
		rc = extidx_file_set_stat(st->x, sf->fid, (uint64_t)sb.st_ino, (uint64_t)sb.st_size,
					  store_ts_ns(&sb.st_mtim), store_ts_ns(&sb.st_ctim));
	}
	if (!rc)
		rc = extidx_meta_set(st->x, "clean", 1);
	if (!rc)
		rc = store_commit(st);
	else
		extidx_rollback(st->x);
	return rc;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	pthread_mutex_lock(&st->mu);
	int rc = record_clean(st);
	if (rc == -ENOSPC && store_reserve_drop(st))
		rc = record_clean(st);
	if (rc)
		store_logf(3,
			   "snapstore: close: could not record file state (%s): the next open "
			   "treats this as a crash",
			   strerror(-rc));
	pthread_mutex_unlock(&st->mu);
	free_all(st);
}

/* Record that the store is alive now (mu held). */
static int record_alive(struct store *st)
{
	int64_t now = store_now_ns();
	int rc = store_begin(st, 0);
	if (rc)
		return rc;
	if ((rc = extidx_meta_set(st->x, "alive_at", store_coarse_now_ns())) ||
	    (rc = extidx_meta_set(st->x, "alive_until", now + STORE_ALIVE_GRACE_NS))) {
		extidx_rollback(st->x);
		return rc;
	}
	return store_commit(st);
}

int store_tick(struct store *st)
{
	int64_t now = time(NULL);
	int rc = 0;
	pthread_rwlock_wrlock(&st->space);
	pthread_mutex_lock(&st->mu);
	for (size_t i = 0; i < st->nsnaps && !rc;) {
		struct snapmem *s = &st->snaps[i];
		if (s->expires && s->expires <= now)
			rc = snap_release_locked(st, s->id, s->kind == STORE_PINNED);
		else
			i++;
	}
	if (!rc) {
		rc = record_alive(st);
		if (rc == -ENOSPC && store_reserve_drop(st))
			rc = record_alive(st);
	}
	if (!st->reserve_held)
		(void)store_reserve_make(st);
	pthread_mutex_unlock(&st->mu);
	pthread_rwlock_unlock(&st->space);
	return rc;
}

int store_stats(struct store *st, struct store_stats *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&st->mu);
	struct stat sb;
	out->bytes_on_disk = (uint64_t)extidx_db_bytes(st->x);
	if (!fstat(st->blk.fd, &sb))
		out->bytes_on_disk += (uint64_t)sb.st_blocks * 512;
	out->bytes_preserved = st->preserved_bytes;
	out->extents = st->nextents;
	out->snapshots = st->nsnaps;
	out->epoch = st->epoch;
	out->block_size = st->bs;
	out->cow_copies = st->cow_copies;
	out->cow_bytes = st->cow_bytes;
	out->cow_commits = st->cow_commits;
	out->store_reads = __atomic_load_n(&st->store_reads, __ATOMIC_RELAXED);
	out->store_read_bytes = __atomic_load_n(&st->store_read_bytes, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&st->mu);
	return 0;
}
