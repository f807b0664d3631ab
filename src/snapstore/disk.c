// SPDX-License-Identifier: MIT
/*
 * The store directory's side files, each written without growing anything
 * so that they keep working on a full filesystem:
 *   reserve  preallocated space the store gives back to the filesystem when
 *            one of its own writes (release, recovery, tick, close) meets
 *            ENOSPC, then retries; recreated once space is free again.
 *   marks    one fixed slot per fid (fid modulo the slot count): the file's
 *            ctime, mtime and size right after the daemon's last write under
 *            the file's write lock. Recovery after a crash trusts a change
 *            only when the file still shows exactly that (see recover.c).
 *   gen      the number of the index's last committed write transaction,
 *            written after each commit: an index that comes back with a
 *            smaller number lost committed transactions (a deleted WAL).
 * Watch for: none of these is synced; each only ever makes the store more
 * suspicious (stale), never trusts more than the index alone would, except
 * marks, which hold what the daemon itself saw after its own writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "store_i.h"

#define RESERVE_BYTES (8ll << 20)
#define MARK_SLOTS    65536u

struct mark_rec {
	uint64_t fid;
	int64_t ctime_ns, mtime_ns;
	uint64_t size;
};
_Static_assert(sizeof(struct mark_rec) == 32, "marks file slot size");

static int open_side(struct store *st, const char *name)
{
	int fd = openat(st->dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	return fd < 0 ? -errno : fd;
}

int store_disk_open(struct store *st, int fresh)
{
	int fd;
	if (fresh) { /* left over from an earlier store in this directory: not ours */
		unlinkat(st->dirfd, "marks", 0);
		unlinkat(st->dirfd, "gen", 0);
	}
	if ((fd = open_side(st, "reserve")) < 0)
		return fd;
	st->reservefd = fd;
	struct stat sb;
	st->reserve_held = !fstat(fd, &sb) && (int64_t)sb.st_blocks * 512 >= RESERVE_BYTES;
	if ((fd = open_side(st, "marks")) < 0)
		return fd;
	st->marksfd = fd;
	/* Preallocated so that recording a mark never needs new space. */
	(void)fallocate(fd, 0, 0, (off_t)MARK_SLOTS * (off_t)sizeof(struct mark_rec));
	if ((fd = open_side(st, "gen")) < 0)
		return fd;
	st->genfd = fd;
	return 0;
}

void store_disk_close(struct store *st)
{
	if (st->reservefd >= 0)
		close(st->reservefd);
	if (st->marksfd >= 0)
		close(st->marksfd);
	if (st->genfd >= 0)
		close(st->genfd);
	st->reservefd = st->marksfd = st->genfd = -1;
}

int store_reserve_make(struct store *st)
{
	if (st->reservefd < 0 || st->reserve_held)
		return 0;
	if (fallocate(st->reservefd, 0, 0, RESERVE_BYTES)) {
		int e = errno;
		(void)ftruncate(st->reservefd, 0);
		return -e;
	}
	st->reserve_held = 1;
	return 0;
}

int store_reserve_drop(struct store *st)
{
	struct stat sb;
	if (st->reservefd < 0 || fstat(st->reservefd, &sb) || !sb.st_blocks)
		return 0;
	if (ftruncate(st->reservefd, 0))
		return 0;
	st->reserve_held = 0;
	store_logf(4, "snapstore: the store's filesystem is full: using the reserve");
	return 1;
}

void store_mark_write(struct store *st, uint64_t fid, const struct stat *sb)
{
	struct mark_rec r = {.fid = fid,
			     .ctime_ns = store_ts_ns(&sb->st_ctim),
			     .mtime_ns = store_ts_ns(&sb->st_mtim),
			     .size = (uint64_t)sb->st_size};
	if (st->marksfd >= 0)
		(void)pwrite(st->marksfd, &r, sizeof(r),
			     (off_t)(fid % MARK_SLOTS) * (off_t)sizeof(r));
}

int store_mark_matches(struct store *st, uint64_t fid, const struct stat *sb)
{
	struct mark_rec r;
	if (st->marksfd < 0 || pread(st->marksfd, &r, sizeof(r),
				     (off_t)(fid % MARK_SLOTS) * (off_t)sizeof(r)) != sizeof(r))
		return 0;
	return r.fid == fid && r.ctime_ns == store_ts_ns(&sb->st_ctim) &&
	       r.mtime_ns == store_ts_ns(&sb->st_mtim) && r.size == (uint64_t)sb->st_size;
}

void store_gen_write(struct store *st, uint64_t gen)
{
	if (st->genfd >= 0)
		(void)pwrite(st->genfd, &gen, sizeof(gen), 0);
}

uint64_t store_gen_read(struct store *st)
{
	uint64_t g = 0;
	if (st->genfd < 0 || pread(st->genfd, &g, sizeof(g), 0) != sizeof(g))
		return 0;
	return g;
}

int store_begin(struct store *st, int full)
{
	int rc = extidx_begin(st->x, full);
	if (!rc && (rc = extidx_meta_set(st->x, "gen", (int64_t)(st->gen + 1))))
		extidx_rollback(st->x);
	return rc;
}

int store_commit(struct store *st)
{
	int rc = extidx_commit(st->x);
	if (!rc)
		store_gen_write(st, ++st->gen);
	return rc;
}
