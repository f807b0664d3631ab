// SPDX-License-Identifier: MIT
/*
 * Reflink copies (issue 13): where SOURCE and the store share a filesystem
 * that clones ranges (XFS with reflink, btrfs), preserved blocks share the
 * live file's extents instead of holding copies, in every copy path (one
 * run, and many runs gathered into one allocation); the snapshot still reads
 * the old bytes after the live file changes; SNAPFS_REFLINK=0 copies. Runs
 * only with SOURCE on such a filesystem (test/backing/run.sh xfs same ...),
 * skips elsewhere. A clone is seen in FIEMAP: the block file maps the
 * physical extents the live file had before the change.
 */
#include "../snap/snaputil.h"

#include <linux/fiemap.h>
#include <linux/fs.h>

TestSuite(reflink, .init = fx_setup, .fini = fx_teardown, .timeout = 120);

/* 1 when the filesystem under dir clones ranges (a FICLONE probe). */
static int fs_clones(const char *dir)
{
	char a[1024], b[1024];
	tu_path(a, sizeof(a), dir, "probe-a");
	tu_path(b, sizeof(b), dir, "probe-b");
	char buf[4096] = {1};
	tu_write_file(a, buf, sizeof(buf));
	int fa = open(a, O_RDONLY), fb = open(b, O_WRONLY | O_CREAT, 0600);
	int ok = fa >= 0 && fb >= 0 && ioctl(fb, FICLONE, fa) == 0;
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	unlink(a);
	unlink(b);
	return ok;
}

static void need_clones(void)
{
	if (!fs_clones(src))
		cr_skip_test("SOURCE's filesystem does not clone ranges (run under "
			     "test/backing/run.sh xfs|btrfs same)");
}

/* The physical extents of path (after a sync): {physical, length} pairs. */
struct phys {
	uint64_t a[1024][2];
	size_t n;
};

static void phys_extents(const char *path, struct phys *p)
{
	int fd = open(path, O_RDONLY);
	cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
	size_t cap = 512;
	struct fiemap *fm = xmalloc(sizeof(*fm) + cap * sizeof(struct fiemap_extent));
	uint64_t start = 0;
	p->n = 0;
	for (;;) {
		memset(fm, 0, sizeof(*fm));
		fm->fm_start = start;
		fm->fm_length = FIEMAP_MAX_OFFSET - start;
		fm->fm_flags = FIEMAP_FLAG_SYNC;
		fm->fm_extent_count = (uint32_t)cap;
		cr_assert_eq(ioctl(fd, FS_IOC_FIEMAP, fm), 0, "FIEMAP %s: %s", path,
			     strerror(errno));
		if (!fm->fm_mapped_extents)
			break;
		int last = 0;
		for (uint32_t i = 0; i < fm->fm_mapped_extents; i++) {
			struct fiemap_extent *e = &fm->fm_extents[i];
			if (p->n < 1024 && !(e->fe_flags & FIEMAP_EXTENT_UNKNOWN)) {
				p->a[p->n][0] = e->fe_physical;
				p->a[p->n++][1] = e->fe_length;
			}
			start = e->fe_logical + e->fe_length;
			last |= !!(e->fe_flags & FIEMAP_EXTENT_LAST);
		}
		if (last)
			break;
	}
	free(fm);
	close(fd);
}

/* Bytes of the live file's old physical extents that the block file now
 * maps: what was cloned rather than copied. */
static uint64_t cloned_bytes(const struct phys *old, const char *blocks)
{
	struct phys *now = xmalloc(sizeof(*now));
	phys_extents(blocks, now);
	uint64_t sum = 0;
	for (size_t i = 0; i < old->n; i++)
		for (size_t j = 0; j < now->n; j++) {
			uint64_t lo = old->a[i][0] > now->a[j][0] ? old->a[i][0] : now->a[j][0];
			uint64_t ea = old->a[i][0] + old->a[i][1], eb = now->a[j][0] + now->a[j][1];
			uint64_t hi = ea < eb ? ea : eb;
			if (hi > lo)
				sum += hi - lo;
		}
	free(now);
	return sum;
}

static struct phys *live_phys(const char *rel)
{
	struct phys *p = xmalloc(sizeof(*p));
	phys_extents(SP(rel), p);
	cr_assert(p->n > 0, "%s has no extents", rel);
	return p;
}

#define MIB (1u << 20)

/* A file of `pieces` MiB with a 1 MiB hole after each 1 MiB of data. */
static unsigned char *make_holey(const char *rel, int pieces, uint64_t seed)
{
	size_t len = (size_t)pieces * 2 * MIB;
	unsigned char *want = calloc(1, len);
	cr_assert_not_null(want);
	int fd = open(MP(rel), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert(fd >= 0);
	for (int i = 0; i < pieces; i++) {
		tu_fill(want + (size_t)i * 2 * MIB, MIB, seed + (uint64_t)i);
		pwrite_all(fd, want + (size_t)i * 2 * MIB, MIB, (off_t)i * 2 * MIB);
	}
	cr_assert_eq(ftruncate(fd, (off_t)len), 0);
	fsync(fd);
	close(fd);
	return want;
}

static void check_view(uint64_t id, const char *rel, const unsigned char *want, size_t len)
{
	unsigned char *got = xmalloc(len + 1);
	ssize_t n = read_path(VP(id, rel), got, len + 1);
	cr_assert(n >= 0, "read snapshot: %s", strerror((int)-n));
	expect_bytes("snapshot", got, (size_t)n, want, len);
	free(got);
}

/* One run per hook: a 1 MiB overwrite of a pinned file. */
Test(reflink, pinned_overwrite_shares_the_old_extent_with_the_block_file)
{
	need_clones();
	fx_mount(NULL);
	const size_t len = 4 * MIB;
	unsigned char *old = xmalloc(len), *nb = xmalloc(len);
	tu_fill(old, len, 1);
	tu_fill(nb, len, 2);
	write_path(MP("f"), old, len);
	struct phys *was = live_phys("f");
	uint64_t id = pin1("f");
	int fd = open(MP("f"), O_WRONLY);
	pwrite_all(fd, nb, len, 0);
	close(fd);
	uint64_t sh = cloned_bytes(was, SP(".snapfs/blocks"));
	cr_expect_eq(sh, len, "block file took over %llu of the %zu bytes overwritten under a pin",
		     (unsigned long long)sh, len);
	free(was);
	check_view(id, "f", old, len);
	unsigned char *live = xmalloc(len);
	cr_assert_eq(read_path(MP("f"), live, len), (ssize_t)len);
	expect_bytes("live", live, len, nb, len);
	free(old);
	free(nb);
	free(live);
}

/* Many runs in one hook (a truncate of a holey file: its data runs are
 * gathered into one allocation): each large run is cloned. */
Test(reflink, truncate_of_holey_file_clones_every_data_run)
{
	need_clones();
	fx_mount(NULL);
	const int pieces = 4;
	unsigned char *want = make_holey("h", pieces, 10);
	struct phys *was = live_phys("h");
	uint64_t id = pin1("h");
	cr_assert_eq(truncate(MP("h"), 0), 0, "truncate: %s", strerror(errno));
	uint64_t sh = cloned_bytes(was, SP(".snapfs/blocks"));
	cr_expect_eq(sh, (uint64_t)pieces * MIB,
		     "block file took over %llu bytes of a truncate that preserved %d MiB of data",
		     (unsigned long long)sh, pieces);
	free(was);
	check_view(id, "h", want, (size_t)pieces * 2 * MIB);
	free(want);
}

/* SNAPFS_REFLINK=0: the same overwrite copies; nothing is shared. */
Test(reflink, reflink_0_copies_instead)
{
	need_clones();
	setenv("SNAPFS_REFLINK", "0", 1);
	fx_mount(NULL);
	const size_t len = 4 * MIB;
	unsigned char *old = xmalloc(len), *nb = xmalloc(len);
	tu_fill(old, len, 3);
	tu_fill(nb, len, 4);
	write_path(MP("f"), old, len);
	struct phys *was = live_phys("f");
	uint64_t id = pin1("f");
	int fd = open(MP("f"), O_WRONLY);
	pwrite_all(fd, nb, len, 0);
	close(fd);
	uint64_t sh = cloned_bytes(was, SP(".snapfs/blocks"));
	cr_expect_eq(sh, 0, "block file took over %llu bytes with SNAPFS_REFLINK=0",
		     (unsigned long long)sh);
	free(was);
	check_view(id, "f", old, len);
	free(old);
	free(nb);
}

/* A remount reads the cloned extents back (they were made durable). */
Test(reflink, cloned_extents_survive_remount)
{
	need_clones();
	fx_mount(NULL);
	const int pieces = 2;
	unsigned char *want = make_holey("h", pieces, 20);
	uint64_t id = pin1("h");
	unsigned char *nb = xmalloc(4 * MIB);
	tu_fill(nb, 4 * MIB, 21);
	int fd = open(MP("h"), O_WRONLY);
	pwrite_all(fd, nb, 4 * MIB, 0);
	close(fd);
	tu_umount(&m);
	fx_mount(NULL);
	check_view(id, "h", want, (size_t)pieces * 2 * MIB);
	free(want);
	free(nb);
}
