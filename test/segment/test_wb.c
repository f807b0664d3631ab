// SPDX-License-Identifier: MIT
/*
 * Segment write-back in one daemon request (docs/SEGMENT.md, "Write-back"):
 * many scattered runs go to the daemon in one batch, which must write
 * exactly the runs, keep every snapshot's bytes (copy-on-write), leave no
 * stale page in the kernel's cache of the live file, and pack unfilled
 * pages (which the kernel will not fill for a system call) correctly.
 */
#include "segutil.h"

TestSuite(wb, .init = fx_setup, .fini = fx_teardown, .timeout = 60);

/* write(2)-family calls this process made so far (/proc/self/io). */
static uint64_t syscw(void)
{
	char buf[512];
	ssize_t n = read_path("/proc/self/io", buf, sizeof(buf) - 1);
	cr_assert(n > 0);
	buf[n] = 0;
	char *p = strstr(buf, "syscw:");
	cr_assert_not_null(p);
	return strtoull(p + 6, NULL, 10);
}

/* The file as read through the mount now. */
static void expect_file(const char *what, const char *path, const unsigned char *want, size_t len)
{
	unsigned char *got = xmalloc(len + 1);
	ssize_t n = read_path(path, got, len + 1);
	cr_assert_eq(n, (ssize_t)len, "%s: %zd bytes, expected %zu", what, n, len);
	for (size_t i = 0; i < len; i++)
		if (got[i] != want[i])
			cr_assert_fail("%s: byte %zu (page %zu) is 0x%02x, expected 0x%02x", what,
				       i, i / PGSZ, got[i], want[i]);
	free(got);
}

Test(wb, scattered_changes_go_in_one_batch_and_snapshots_keep_their_bytes)
{
	fx_mount(NULL);
	const size_t np = 1024, len = np * PGSZ;
	unsigned char *orig = mkfile("f", len, 71);
	unsigned char *want = xmalloc(len);
	memcpy(want, orig, len);
	uint64_t pinned = pin1("f"); /* a snapshot that must keep the old bytes */
	int fd = open(MP("f"), O_RDWR);
	cr_assert(fd >= 0);
	struct snapseg *s = mkseg(len);
	unsigned char *b = snapseg_base(s);
	cr_assert_eq(snapseg_read(s, b, fd, len, 0), (ssize_t)len);
	/* Every 10th page changes: 103 runs. */
	size_t changed = 0;
	for (size_t p = 0; p < np; p += 10, changed++) {
		b[p * PGSZ + 17] ^= 0x5a;
		want[p * PGSZ + 17] ^= 0x5a;
	}
	/* The kernel caches the live file's pages now: they must not stay. */
	expect_file("live before", MP("f"), orig, len);
	struct snapfs_rec_stats st0 = get_stats();
	uint64_t w0 = syscw();
	cr_assert_eq(snapseg_write(s, b, fd, len, 0), (ssize_t)len, "snapseg_write: %s",
		     strerror(errno));
	uint64_t calls = syscw() - w0;
	struct snapseg_stats ss;
	cr_assert_eq(snapseg_stats(s, &ss), 0);
	cr_assert_eq(ss.pages_written, changed);
	cr_assert_eq(ss.pages_skipped, np - changed);
	cr_assert(calls < changed / 4,
		  "%llu write calls for %zu runs: the runs were not sent as one batch",
		  (unsigned long long)calls, changed);
	struct snapfs_rec_stats st1 = get_stats();
	cr_assert(st1.cow_bytes - st0.cow_bytes >= changed * PGSZ,
		  "copy-on-write preserved %llu bytes for %zu changed pages",
		  (unsigned long long)(st1.cow_bytes - st0.cow_bytes), changed);
	expect_file("live after", MP("f"), want, len);
	expect_file("pinned snapshot", VP(pinned, "f"), orig, len);
	/* The segment's pages still show what it holds. */
	for (size_t i = 0; i < len; i += 997)
		cr_assert_eq(b[i], want[i], "segment byte %zu", i);
	snapseg_destroy(s);
	close(fd);
	release(pinned);
	free(orig);
	free(want);
}

/* Runs whose pages were never touched (they show another file): the batch
 * must pack them from their snapshot, not fail or send zeros. */
Test(wb, unfilled_pages_of_another_file_are_packed_from_their_snapshot)
{
	fx_mount(NULL);
	const size_t chunk = 16 * PGSZ, nchunks = 32, len = chunk * nchunks;
	unsigned char *f = mkfile("f", len, 72), *g = mkfile("g", len, 73);
	int fd = open(MP("f"), O_RDWR), gd = open(MP("g"), O_RDONLY);
	cr_assert(fd >= 0 && gd >= 0);
	struct snapseg *s = mkseg(len);
	unsigned char *b = snapseg_base(s);
	/* g everywhere, then f over every other chunk: 16 runs of g's pages. */
	cr_assert_eq(snapseg_read(s, b, gd, len, 0), (ssize_t)len);
	for (size_t c = 0; c < nchunks; c += 2)
		cr_assert_eq(snapseg_read(s, b + c * chunk, fd, chunk, (off_t)(c * chunk)),
			     (ssize_t)chunk);
	unsigned char *want = xmalloc(len);
	memcpy(want, f, len);
	for (size_t c = 1; c < nchunks; c += 2)
		memcpy(want + c * chunk, g + c * chunk, chunk);
	struct snapseg_stats st0;
	cr_assert_eq(snapseg_stats(s, &st0), 0);
	cr_assert_eq(snapseg_write(s, b, fd, len, 0), (ssize_t)len, "snapseg_write: %s",
		     strerror(errno));
	struct snapseg_stats st1;
	cr_assert_eq(snapseg_stats(s, &st1), 0);
	cr_assert_eq(st1.pages_written - st0.pages_written, len / PGSZ / 2);
	expect_file("f after", MP("f"), want, len);
	snapseg_destroy(s);
	close(fd);
	close(gd);
	free(f);
	free(g);
	free(want);
}

/* An O_APPEND descriptor is not the daemon's to write (pwrite appends
 * there): the runs go through write(2) as before, and the result is what
 * the per-run path gives. */
Test(wb, append_descriptor_is_not_batched)
{
	fx_mount(NULL);
	const size_t np = 64, len = np * PGSZ;
	unsigned char *orig = mkfile("f", len, 74);
	int rd = open(MP("f"), O_RDONLY), fd = open(MP("f"), O_WRONLY | O_APPEND);
	cr_assert(rd >= 0 && fd >= 0);
	struct snapseg *s = mkseg(len);
	unsigned char *b = snapseg_base(s);
	cr_assert_eq(snapseg_read(s, b, rd, len, 0), (ssize_t)len);
	for (size_t p = 0; p < np; p += 4)
		b[p * PGSZ] ^= 1;
	uint64_t w0 = syscw();
	cr_assert_eq(snapseg_write(s, b, fd, len, 0), (ssize_t)len);
	cr_assert_geq(syscw() - w0, np / 4, "runs on an O_APPEND descriptor were batched");
	struct stat st;
	cr_assert_eq(fstat(rd, &st), 0);
	cr_assert_eq((size_t)st.st_size, len + np / 4 * PGSZ, "size %lld", (long long)st.st_size);
	snapseg_destroy(s);
	close(fd);
	close(rd);
	free(orig);
}

/* After a write-back, the segment's snapshot gives up the blocks of the
 * pages it wrote (no page shows them any more): with no other snapshot,
 * nothing is copied; every page still reads right, and so does the file. */
Test(wb, written_blocks_no_page_shows_are_not_preserved)
{
	fx_mount(NULL);
	const size_t np = 256, len = np * PGSZ;
	unsigned char *orig = mkfile("f", len, 75);
	unsigned char *want = xmalloc(len);
	memcpy(want, orig, len);
	int fd = open(MP("f"), O_RDWR);
	cr_assert(fd >= 0);
	struct snapseg *s = mkseg(len);
	unsigned char *b = snapseg_base(s);
	cr_assert_eq(snapseg_read(s, b, fd, len, 0), (ssize_t)len);
	for (size_t p = 3; p < np; p += 8) {
		b[p * PGSZ + 1] ^= 0x33;
		want[p * PGSZ + 1] ^= 0x33;
	}
	struct snapfs_rec_stats st0 = get_stats();
	cr_assert_eq(snapseg_write(s, b, fd, len, 0), (ssize_t)len);
	struct snapfs_rec_stats st1 = get_stats();
	cr_assert_eq(st1.cow_bytes, st0.cow_bytes,
		     "%llu bytes preserved for blocks no page of the segment shows",
		     (unsigned long long)(st1.cow_bytes - st0.cow_bytes));
	for (size_t i = 0; i < len; i++)
		if (b[i] != want[i])
			cr_assert_fail("segment byte %zu (page %zu) wrong after write-back", i,
				       i / PGSZ);
	expect_file("live after", MP("f"), want, len);
	snapseg_destroy(s);
	close(fd);
	free(orig);
	free(want);
}

/* Unaligned: each page shows parts of two blocks, so a written page's
 * blocks are still shown by its unfilled neighbours. They must be kept
 * (copied) and the neighbours must fill with the read-time bytes. */
Test(wb, blocks_still_shown_by_other_pages_are_kept)
{
	fx_mount(NULL);
	const size_t np = 128, len = np * PGSZ, skew = 100;
	unsigned char *orig = mkfile("f", len + PGSZ, 76);
	int fd = open(MP("f"), O_RDWR);
	cr_assert(fd >= 0);
	struct snapseg *s = mkseg(len + PGSZ);
	unsigned char *b = snapseg_base(s);
	/* dst page-aligned, file offset skewed: page p shows [p*4096+100, ...). */
	cr_assert_eq(snapseg_read(s, b, fd, len, (off_t)skew), (ssize_t)len);
	unsigned char *want = xmalloc(len + PGSZ);
	memcpy(want, orig, len + PGSZ);
	for (size_t p = 4; p < np - 1; p += 8) { /* 16 single-page runs */
		b[p * PGSZ + 9] ^= 0x44;
		want[skew + p * PGSZ + 9] ^= 0x44;
	}
	struct snapfs_rec_stats st0 = get_stats();
	cr_assert_eq(snapseg_write(s, b, fd, len, (off_t)skew), (ssize_t)len);
	struct snapfs_rec_stats st1 = get_stats();
	cr_assert(st1.cow_bytes > st0.cow_bytes,
		  "blocks the unfilled neighbours still show were not preserved");
	/* The neighbours (never touched) fill from the snapshot. */
	for (size_t p = 3; p < np; p += 8)
		for (size_t i = 0; i < PGSZ; i++)
			if (b[p * PGSZ + i] != orig[skew + p * PGSZ + i])
				cr_assert_fail("page %zu byte %zu: not the read-time byte", p, i);
	expect_file("live after", MP("f"), want, len + PGSZ);
	snapseg_destroy(s);
	close(fd);
	free(orig);
	free(want);
}

/* The file read twice into one segment (two snapshots, two regions): a
 * write-back from the first region must not let the second region's
 * snapshot give up blocks its unfilled pages still show. */
Test(wb, blocks_the_other_region_shows_are_kept)
{
	fx_mount(NULL);
	const size_t np = 64, len = np * PGSZ;
	unsigned char *orig = mkfile("f", len, 77);
	int fd = open(MP("f"), O_RDWR);
	cr_assert(fd >= 0);
	struct snapseg *s = mkseg(2 * len);
	unsigned char *a = snapseg_base(s), *b2 = a + len;
	cr_assert_eq(snapseg_read(s, a, fd, len, 0), (ssize_t)len);
	cr_assert_eq(snapseg_read(s, b2, fd, len, 0), (ssize_t)len);
	for (size_t p = 0; p < np; p += 4) /* 16 runs */
		a[p * PGSZ + 3] ^= 0x21;
	cr_assert_eq(snapseg_write(s, a, fd, len, 0), (ssize_t)len);
	/* The second region was never touched: its pages show the read-time
	 * file, including the blocks just overwritten. */
	for (size_t i = 0; i < len; i++)
		if (b2[i] != orig[i])
			cr_assert_fail("second region byte %zu (page %zu): not the read-time byte",
				       i, i / PGSZ);
	snapseg_destroy(s);
	close(fd);
	free(orig);
}
