/* SPDX-License-Identifier: MIT */
/*
 * The block file and its allocator. Space is handed out in whole blocks,
 * first fit from an in-memory red-black tree of free ranges (coalesced),
 * else from the end of the file. Freed space is punched out
 * (FALLOC_FL_PUNCH_HOLE) and trailing free space is truncated away, so the
 * file's allocated size tracks what the index references. The allocator is
 * not persistent: store_open rebuilds it from the extents' locations, which
 * also turns space that no row references (a crash between copy and commit)
 * back into free, punched space. Not thread-safe: callers hold the store mutex
 * for blk_alloc/blk_free/blk_rebuild; blk_copy and blk_read need no lock.
 */
#ifndef BLK_I_H
#define BLK_I_H

#include <stddef.h>
#include <stdint.h>
#include <sys/tree.h>

/* libbsd's RB_GENERATE_STATIC needs a __unused it leaves undefined on Linux. */
#define STORE_RB_GENERATE(name, type, field, cmp)                                                  \
	RB_GENERATE_INTERNAL(name, type, field, cmp, __attribute__((unused)) static)

struct blk_free_range {
	RB_ENTRY(blk_free_range) node;
	uint64_t start, n; /* in blocks */
};
RB_HEAD(blk_tree, blk_free_range);

struct blk {
	int fd;
	uint32_t bs;
	uint64_t end;	/* blocks: everything from here on is free (and truncated) */
	uint64_t nfree; /* free blocks below end */
	struct blk_tree free;
	int noclone; /* atomic: FICLONERANGE failed for good, or SNAPFS_REFLINK=0 */
	int nocfr;   /* SNAPFS_REFLINK=0: no copy_file_range either; set at init */
	int cloned;  /* atomic: a range was cloned; blk_sync then fsyncs */
};

/* Ranges shorter than this are copied even where they could be cloned: a
 * clone is a filesystem transaction and fragments both files, which costs
 * more than copying a few pages (docs/BENCHMARKS.md, "Reflink"). */
#define BLK_CLONE_MIN (64u << 10)

void blk_init(struct blk *b, int fd, uint32_t bs);
/* The allocator's invariant, for assert() only (returns 1 when it holds):
 * free ranges non-empty, sorted, disjoint and never adjacent (coalesced),
 * all below end and none touching it (trailing free space is truncated),
 * summing to nfree. */
int blk_sanity(const struct blk *b);
void blk_release(struct blk *b); /* frees the tree; does not close fd */

/* n blocks -> *start (in blocks). -ENOMEM only. */
int blk_alloc(struct blk *b, uint64_t n, uint64_t *start);
/* Return n blocks at start: punch them out, coalesce, truncate trailing space. */
void blk_free(struct blk *b, uint64_t start, uint64_t n);

/* Rebuild from the used ranges (start, n in blocks; any order, may be modified):
 * everything else below the highest used block becomes free and is punched,
 * and the file is truncated after it. -EIO if two used ranges overlap. */
int blk_rebuild(struct blk *b, uint64_t *start, uint64_t *n, size_t count);

/* Copy len bytes from srcfd at srcoff to block-file offset dst; copying stops
 * at the source's end of file (the rest stays zero). A range of at least
 * BLK_CLONE_MIN whose files share a filesystem that clones is a FICLONERANGE
 * of its whole blocks (the partial last block is copied); otherwise
 * copy_file_range, falling back to pread/pwrite. Either way the bytes are
 * durable after blk_sync. */
int blk_copy(struct blk *b, int srcfd, uint64_t srcoff, uint64_t dst, uint64_t len);
/*
 * Copy n source ranges src[i] = {offset, length} of srcfd, one after the
 * other, to [dst, dst + their total) of the block file: preads into a
 * buffer, one write per buffer-full. Faster than one copy_file_range per
 * range when the ranges are many and small. Past the source's end: zeros.
 * Ranges of at least BLK_CLONE_MIN go through blk_copy (and may be cloned).
 */
int blk_gather(struct blk *b, int srcfd, const uint64_t (*src)[2], size_t n, uint64_t dst);
/* Read exactly len bytes at off (zeros past the block file's end). */
int blk_read(struct blk *b, void *buf, uint64_t len, uint64_t off);
int blk_sync(struct blk *b);

/* CRC-32C of n bytes continuing crc (0 to start); SSE4.2 when the CPU has it. */
uint32_t blk_crc32c(uint32_t crc, const void *data, size_t n);
/* The checksum of one preserved block (bs bytes of data) of extent
 * (fid, efrom, eto) at file block blk: the CRC-32C of those four numbers
 * (little-endian) followed by the data, so a row edited to point at other
 * bytes, or other epochs, no longer verifies. */
uint32_t blk_sum(const void *data, uint32_t bs, uint64_t fid, uint64_t blk, uint64_t efrom,
		 uint64_t eto);
/* The checksums of n blocks at block-file offset loc, read back from the file. */
int blk_sums(struct blk *b, uint64_t loc, uint32_t n, uint64_t fid, uint64_t blk, uint64_t efrom,
	     uint64_t eto, uint32_t *out);

#endif /* BLK_I_H */
