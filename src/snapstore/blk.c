// SPDX-License-Identifier: MIT
/*
 * The block file: allocation of preserved-block space, copying live blocks
 * into it, reading them back, and giving space back to the filesystem.
 * Watch for: blk_free punches before the range becomes allocatable again,
 * and the caller must only free space whose index rows are already
 * committed as deleted (see docs/SNAPSTORE.md, "Release"). Where the live
 * file and the block file share a filesystem that clones ranges (XFS with
 * reflink, btrfs), a large copy is a FICLONERANGE instead (blk_clone): the
 * block file then shares the live file's extents, and the filesystem's own
 * copy-on-write moves the live file's next write elsewhere.
 */
#include "fullio.h"
#include "blk_i.h"

#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

static int range_cmp(struct blk_free_range *a, struct blk_free_range *b)
{
	return a->start < b->start ? -1 : a->start > b->start;
}

STORE_RB_GENERATE(blk_tree, blk_free_range, node, range_cmp);

int blk_sanity(const struct blk *b)
{
	uint64_t sum = 0, prev_end = 0;
	int first = 1;
	struct blk_free_range *f;
	RB_FOREACH(f, blk_tree, (struct blk_tree *)&b->free)
	{
		if (!f->n || (!first && f->start <= prev_end) || f->start + f->n >= b->end)
			return 0; /* empty, unsorted, overlapping, adjacent, or touching end */
		sum += f->n;
		prev_end = f->start + f->n;
		first = 0;
	}
	return sum == b->nfree;
}

void blk_init(struct blk *b, int fd, uint32_t bs)
{
	memset(b, 0, sizeof(*b));
	b->fd = fd;
	b->bs = bs;
	RB_INIT(&b->free);
	/* SNAPFS_REFLINK=0: never share extents, copy through memory (no
	 * copy_file_range either, which clones by itself on the same
	 * filesystem). For benchmarks and for filesystems whose clones are
	 * suspected; docs/BACKINGS.md. */
	const char *e = getenv("SNAPFS_REFLINK");
	if (e && !strcmp(e, "0"))
		b->noclone = b->nocfr = 1;
}

void blk_release(struct blk *b)
{
	struct blk_free_range *r, *nx;
	RB_FOREACH_SAFE(r, blk_tree, &b->free, nx)
	{
		RB_REMOVE(blk_tree, &b->free, r);
		free(r);
	}
	b->nfree = 0;
}

int blk_alloc(struct blk *b, uint64_t n, uint64_t *start)
{
	struct blk_free_range *r;
	RB_FOREACH(r, blk_tree, &b->free)
	{
		if (r->n < n)
			continue;
		*start = r->start;
		r->start += n;
		r->n -= n;
		b->nfree -= n;
		if (!r->n) {
			RB_REMOVE(blk_tree, &b->free, r);
			free(r);
		}
		assert(blk_sanity(b));
		return 0;
	}
	*start = b->end;
	b->end += n;
	assert(blk_sanity(b));
	return 0;
}

static void punch(struct blk *b, uint64_t start, uint64_t n)
{
	/* Best effort: a failed punch leaves allocated garbage that the next
	 * open's rebuild punches again; it never affects correctness. */
	(void)fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(start * b->bs),
			(off_t)(n * b->bs));
}

void blk_free(struct blk *b, uint64_t start, uint64_t n)
{
	if (!n)
		return;
	struct blk_free_range key = {.start = start};
	struct blk_free_range *next = RB_NFIND(blk_tree, &b->free, &key);
	struct blk_free_range *prev =
	    next ? RB_PREV(blk_tree, &b->free, next) : RB_MAX(blk_tree, &b->free);
	struct blk_free_range *r = NULL;
	if (prev && prev->start + prev->n == start) {
		prev->n += n;
		r = prev;
	}
	if (next && start + n == next->start) {
		if (r) {
			r->n += next->n;
			RB_REMOVE(blk_tree, &b->free, next);
			free(next);
		} else {
			next->start = start;
			next->n += n;
			r = next;
		}
	}
	b->nfree += n;
	if (!r) {
		r = malloc(sizeof(*r));
		if (!r) {
			/* Out of memory: the space stays unused (and punched) until
			 * the next open rebuilds the allocator. */
			b->nfree -= n;
			punch(b, start, n);
			return;
		}
		r->start = start;
		r->n = n;
		RB_INSERT(blk_tree, &b->free, r);
	}
	/* Punch the freed blocks widened to whole pages inside the (coalesced) free
	 * range: a block smaller than a page only frees the page once its
	 * neighbours are free too. */
	uint64_t per = b->bs >= 4096 ? 1 : 4096 / b->bs;
	uint64_t lo = start / per * per, hi = (start + n + per - 1) / per * per;
	if (lo < r->start)
		lo = r->start;
	if (hi > r->start + r->n)
		hi = r->start + r->n;
	punch(b, lo, hi - lo);
	if (r->start + r->n == b->end) {
		b->end = r->start;
		b->nfree -= r->n;
		RB_REMOVE(blk_tree, &b->free, r);
		free(r);
		(void)ftruncate(b->fd, (off_t)(b->end * b->bs));
	}
	assert(blk_sanity(b));
}

static int used_cmp(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;
	return x[0] < y[0] ? -1 : x[0] > y[0];
}

int blk_rebuild(struct blk *b, uint64_t *start, uint64_t *n, size_t count)
{
	blk_release(b);
	uint64_t *pairs = count ? malloc(count * 2 * sizeof(*pairs)) : NULL;
	if (count && !pairs)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++) {
		pairs[2 * i] = start[i];
		pairs[2 * i + 1] = n[i];
	}
	if (count)
		qsort(pairs, count, 2 * sizeof(*pairs), used_cmp);
	uint64_t pos = 0;
	int rc = 0;
	for (size_t i = 0; i < count; i++) {
		uint64_t s = pairs[2 * i], len = pairs[2 * i + 1];
		if (s < pos) {
			rc = -EIO;
			break;
		}
		if (s > pos) {
			struct blk_free_range *r = malloc(sizeof(*r));
			if (!r) {
				rc = -ENOMEM;
				break;
			}
			r->start = pos;
			r->n = s - pos;
			RB_INSERT(blk_tree, &b->free, r);
			b->nfree += r->n;
			punch(b, pos, s - pos);
		}
		pos = s + len;
	}
	free(pairs);
	if (rc) {
		blk_release(b);
		return rc;
	}
	b->end = pos;
	assert(blk_sanity(b));
	if (ftruncate(b->fd, (off_t)(pos * b->bs)))
		return -errno;
	return 0;
}

/* A copy that met the source's end: fill the rest with written zeros so the
 * block file always covers every extent it holds (store_check relies on it). */
static int zero_tail(struct blk *b, uint64_t off, uint64_t left)
{
	static const char zeros[4096];
	while (left) {
		size_t want = left < sizeof(zeros) ? left : sizeof(zeros);
		ssize_t w = pwrite(b->fd, zeros, want, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (uint64_t)w;
		left -= (uint64_t)w;
	}
	return 0;
}

#define GATHER_BUF (4u << 20)

static int blk_write_all(struct blk *b, const char *buf, size_t len, uint64_t off)
{
	return pwrite_full(b->fd, buf, len, (off_t)off);
}

/*
 * Clone the whole filesystem blocks of [srcoff, srcoff + len) that lie below
 * the source's size into the block file at dst. Returns the bytes cloned (a
 * prefix of the range; 0 when the range is short, unaligned, or this pair of
 * files cannot clone: the caller copies the rest), or -errno. A filesystem or
 * a pair of filesystems that cannot clone at all turns cloning off for good.
 */
static int blk_may_clone(struct blk *b, uint64_t len)
{
	return len >= BLK_CLONE_MIN && !__atomic_load_n(&b->noclone, __ATOMIC_RELAXED);
}

static int64_t blk_clone(struct blk *b, int srcfd, uint64_t srcoff, uint64_t dst, uint64_t len)
{
	if (len < BLK_CLONE_MIN || __atomic_load_n(&b->noclone, __ATOMIC_RELAXED))
		return 0;
	struct stat sb;
	if (fstat(srcfd, &sb) || sb.st_blksize <= 0 || (uint64_t)sb.st_size <= srcoff)
		return 0;
	uint64_t align = (uint64_t)sb.st_blksize;
	uint64_t avail = (uint64_t)sb.st_size - srcoff;
	if (len > avail)
		len = avail / align * align; /* the partial last block is copied */
	if (len < BLK_CLONE_MIN || srcoff % align || dst % align)
		return 0;
	struct file_clone_range fcr = {
	    .src_fd = srcfd, .src_offset = srcoff, .src_length = len, .dest_offset = dst};
	if (ioctl(b->fd, FICLONERANGE, &fcr) == 0) {
		__atomic_store_n(&b->cloned, 1, __ATOMIC_RELAXED);
		return (int64_t)len;
	}
	int e = errno;
	if (e == EXDEV || e == EOPNOTSUPP || e == ENOTTY || e == ENOSYS || e == EPERM)
		__atomic_store_n(&b->noclone, 1, __ATOMIC_RELAXED);
	if (e == ENOSPC || e == EIO || e == EDQUOT)
		return -e;
	return 0; /* EINVAL, EBUSY, EXDEV, ...: copy instead */
}

int blk_gather(struct blk *b, int srcfd, const uint64_t (*src)[2], size_t n, uint64_t dst)
{
	char *buf = malloc(GATHER_BUF);
	if (!buf)
		return -ENOMEM;
	size_t used = 0;
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		if (src[i][1] > GATHER_BUF || blk_may_clone(b, src[i][1])) {
			/* a large range: copied (or cloned) on its own */
			if (used && !(rc = blk_write_all(b, buf, used, dst)))
				dst += used;
			used = 0;
			if (!rc && !(rc = blk_copy(b, srcfd, src[i][0], dst, src[i][1])))
				dst += src[i][1];
			continue;
		}
		if (used + src[i][1] > GATHER_BUF) {
			if ((rc = blk_write_all(b, buf, used, dst)))
				break;
			dst += used;
			used = 0;
		}
		size_t got = 0;
		while (got < src[i][1]) {
			ssize_t k = pread(srcfd, buf + used + got, src[i][1] - got,
					  (off_t)(src[i][0] + got));
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0) {
				rc = -errno;
				break;
			}
			if (k == 0) { /* past the end of the source */
				memset(buf + used + got, 0, src[i][1] - got);
				got = src[i][1];
				break;
			}
			got += (size_t)k;
		}
		used += src[i][1];
	}
	if (!rc && used)
		rc = blk_write_all(b, buf, used, dst);
	free(buf);
	return rc;
}

int blk_copy(struct blk *b, int srcfd, uint64_t srcoff, uint64_t dst, uint64_t len)
{
	int64_t cloned = blk_clone(b, srcfd, srcoff, dst, len);
	if (cloned < 0)
		return (int)cloned;
	loff_t in = (loff_t)(srcoff + (uint64_t)cloned), out = (loff_t)(dst + (uint64_t)cloned);
	uint64_t left = len - (uint64_t)cloned;
	while (left && !b->nocfr) {
		ssize_t k = copy_file_range(srcfd, &in, b->fd, &out, left, 0);
		if (k < 0) {
			int e = errno;
			if (e == EINTR)
				continue;
			if (e == EXDEV || e == EINVAL || e == EOPNOTSUPP || e == ENOSYS ||
			    e == EBADF)
				break; /* fall back below */
			return -e;
		}
		if (k == 0)
			return zero_tail(b, (uint64_t)out, left); /* end of the source */
		left -= (uint64_t)k;
	}
	char buf[65536];
	while (left) {
		size_t want = left < sizeof(buf) ? left : sizeof(buf);
		ssize_t k = pread(srcfd, buf, want, in);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			return zero_tail(b, (uint64_t)out, left);
		for (ssize_t done = 0; done < k;) {
			ssize_t w = pwrite(b->fd, buf + done, (size_t)(k - done), out + done);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			done += w;
		}
		in += k;
		out += k;
		left -= (uint64_t)k;
	}
	return 0;
}

int blk_read(struct blk *b, void *buf, uint64_t len, uint64_t off)
{
	char *p = buf;
	while (len) {
		ssize_t k = pread(b->fd, p, len, (off_t)off);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0) {
			memset(p, 0, len);
			return 0;
		}
		p += k;
		off += (uint64_t)k;
		len -= (uint64_t)k;
	}
	return 0;
}

/* ---- checksums: CRC-32C (Castagnoli) ---- */

#define SUMS_CHUNK (1u << 20)

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static int crc_hw;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		crc_table[i] = c;
	}
#if defined(__x86_64__)
	crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_sse42(uint32_t c, const unsigned char *p,
							    size_t n)
{
	uint64_t c64 = c;
	for (; n >= 8; n -= 8, p += 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c64 = __builtin_ia32_crc32di(c64, v);
	}
	c = (uint32_t)c64;
	for (; n; n--)
		c = __builtin_ia32_crc32qi(c, *p++);
	return c;
}
#endif

uint32_t blk_crc32c(uint32_t crc, const void *data, size_t n)
{
	const unsigned char *p = data;
	pthread_once(&crc_once, crc_init);
	uint32_t c = ~crc;
#if defined(__x86_64__)
	if (crc_hw)
		return ~crc_sse42(c, p, n);
#endif
	while (n--)
		c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return ~c;
}

uint32_t blk_sum(const void *data, uint32_t bs, uint64_t fid, uint64_t blk, uint64_t efrom,
		 uint64_t eto)
{
	uint64_t id[4] = {htole64(fid), htole64(blk), htole64(efrom), htole64(eto)};
	return blk_crc32c(blk_crc32c(0, id, sizeof(id)), data, bs);
}

int blk_sums(struct blk *b, uint64_t loc, uint32_t n, uint64_t fid, uint64_t blk, uint64_t efrom,
	     uint64_t eto, uint32_t *out)
{
	/* Read back in chunks of up to SUMS_CHUNK bytes, not a block at a
	 * time: a cloned run's blocks are not in the block file's page cache,
	 * and one pread per 4 KiB block was a quarter of a pinned overwrite's
	 * cost on XFS (docs/BENCHMARKS.md). */
	uint32_t per = SUMS_CHUNK / b->bs ? SUMS_CHUNK / b->bs : 1;
	if (per > n)
		per = n ? n : 1;
	char *buf = malloc((size_t)per * b->bs);
	if (!buf)
		return -ENOMEM;
	int rc = 0;
	for (uint32_t i = 0; i < n && !rc; i += per) {
		uint32_t k = n - i < per ? n - i : per;
		if ((rc = blk_read(b, buf, (uint64_t)k * b->bs, loc + (uint64_t)i * b->bs)))
			break;
		for (uint32_t j = 0; j < k; j++)
			out[i + j] =
			    blk_sum(buf + (size_t)j * b->bs, b->bs, fid, blk + i + j, efrom, eto);
	}
	free(buf);
	return rc;
}

int blk_sync(struct blk *b)
{
	/* After a clone, fsync: the shared extents are mapping metadata, which
	 * not every filesystem counts as data for fdatasync. */
	if (__atomic_load_n(&b->cloned, __ATOMIC_RELAXED))
		return fsync(b->fd) ? -errno : 0;
	return fdatasync(b->fd) ? -errno : 0;
}
