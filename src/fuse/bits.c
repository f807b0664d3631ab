// SPDX-License-Identifier: MIT
/*
 * Change bitmaps: one bit per store block of a snapshot's file, "changed in
 * the live file since the snapshot", in a memfd a segment maps to decide
 * whether it may read a block from the live file (docs/SEGMENT.md, "Direct
 * fills"). A bitmap is attached to the inode it watches; the write gate
 * (cow.c) marks the blocks of every change under the inode's write lock
 * before any byte moves, and a detached bitmap is all ones, so a reader
 * that saw a new byte also sees its bit. What to watch for: bits only ever
 * go from 0 to 1, and every path that changes live bytes must reach
 * bits_mark() first (it does through gate_write()).
 */
#include "sfs_i.h"
#include "snapstore.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

struct bits {
	int memfd;
	uint64_t *map; /* shared with the client through memfd */
	uint64_t nblocks;
	size_t maplen;
	struct bits *next; /* the inode's bitmaps; protected by its rwlock */
};

/* Set the bits of blocks [b, e). Called with the inode's rwlock held for
 * writing, or before the bitmap is attached. */
static void bits_set(struct bits *m, uint64_t b, uint64_t e)
{
	if (e > m->nblocks)
		e = m->nblocks;
	for (; b < e && (b & 63); b++)
		__atomic_fetch_or(&m->map[b / 64], 1ull << (b & 63), __ATOMIC_RELAXED);
	for (; b + 64 <= e; b += 64)
		__atomic_store_n(&m->map[b / 64], ~0ull, __ATOMIC_RELAXED);
	for (; b < e; b++)
		__atomic_fetch_or(&m->map[b / 64], 1ull << (b & 63), __ATOMIC_RELAXED);
}

int bits_new(uint64_t size, struct bits **out)
{
	struct bits *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	uint64_t bs = store_block_size(sfs.store);
	m->nblocks = (size + bs - 1) / bs;
	m->maplen = ((m->nblocks + 63) / 64 * 8 + 4095) & ~(size_t)4095;
	if (m->maplen == 0)
		m->maplen = 4096;
	int rc = 0;
	m->memfd = memfd_create("snapfs-direct", MFD_CLOEXEC);
	if (m->memfd < 0 || ftruncate(m->memfd, (off_t)m->maplen))
		goto out_errno;
	m->map = mmap(NULL, m->maplen, PROT_READ | PROT_WRITE, MAP_SHARED, m->memfd, 0);
	if (m->map == MAP_FAILED) {
		m->map = NULL;
		goto out_errno;
	}
	*out = m;
	return 0;
out_errno:
	rc = -errno;
	bits_free(m);
	return rc;
}

void bits_free(struct bits *m)
{
	if (!m)
		return;
	if (m->map)
		munmap(m->map, m->maplen);
	if (m->memfd >= 0)
		close(m->memfd);
	free(m);
}

int bits_memfd(const struct bits *m)
{
	return m->memfd;
}

static int changed_cb(void *arg, uint64_t off, uint64_t len)
{
	struct bits *m = arg;
	uint64_t bs = store_block_size(sfs.store);
	bits_set(m, off / bs, (off + len + bs - 1) / bs);
	return 0;
}

int bits_attach(struct sfs_inode *inode, struct bits *m, uint64_t snap, uint64_t fid)
{
	/* Writers are shut out while the bits catch up with the store: what
	 * changed between the pin and now, then every change from now on. */
	pthread_rwlock_wrlock(&inode->rwlock);
	int rc = store_snap_changed(sfs.store, snap, fid, changed_cb, m);
	if (rc == 0) {
		m->next = inode->marks;
		inode->marks = m;
	}
	pthread_rwlock_unlock(&inode->rwlock);
	return rc;
}

void bits_detach(struct sfs_inode *inode, struct bits *m)
{
	pthread_rwlock_wrlock(&inode->rwlock);
	struct bits **pp = &inode->marks;
	while (*pp && *pp != m)
		pp = &(*pp)->next;
	if (*pp)
		*pp = m->next;
	/* Everything "changed": a client that still reads falls back to the
	 * view. */
	bits_set(m, 0, m->nblocks);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	pthread_rwlock_unlock(&inode->rwlock);
}

void bits_mark(struct sfs_inode *inode, uint64_t off, uint64_t len)
{
	if (!inode->marks || len == 0)
		return;
	uint64_t bs = store_block_size(sfs.store);
	uint64_t b = off / bs,
		 e = len == UINT64_MAX || off + len < off ? UINT64_MAX : (off + len + bs - 1) / bs;
	for (struct bits *m = inode->marks; m; m = m->next)
		bits_set(m, b, e);
	/* The bits are visible before the caller changes a byte. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}
