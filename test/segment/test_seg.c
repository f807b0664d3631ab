// SPDX-License-Identifier: MIT
/*
 * The deferred-I/O segment through a real mount on tmpfs: reads are lazy
 * (stats), see read-time bytes under a concurrent rewriter, work at any
 * alignment, re-associate on re-read, detach on store, release snapshots
 * no page shows, skip unchanged pages on write-back (and write the three
 * kinds that must be written), discard without loading, fall back on
 * plain files, reserve 64 GiB, survive several threads, turn daemon death
 * into SIGBUS, and work for an unprivileged user. Plus snapfs_map.
 */
#include "snaputil.h"

#include <grp.h>
#include <pthread.h>
#include <signal.h>

#define PGSZ 4096UL
#define MiB  (1024UL * 1024)

TestSuite(seg, .init = fx_setup, .fini = fx_teardown, .timeout = 60);

/* A file of len pseudo-random bytes at rel in the mount; its bytes. */
static unsigned char *mkfile(const char *rel, size_t len, uint64_t seed)
{
	unsigned char *b = xmalloc(len);
	tu_fill(b, len, seed);
	write_path(MP(rel), b, len);
	return b;
}

static int openm(const char *rel, int flags)
{
	int fd = open(MP(rel), flags);
	cr_assert(fd >= 0, "open %s: %s", rel, strerror(errno));
	return fd;
}

static struct snapseg_stats stats(struct snapseg *s)
{
	struct snapseg_stats st;
	cr_assert_eq(snapseg_stats(s, &st), 0);
	return st;
}

static struct snapseg *mkseg(size_t size)
{
	struct snapseg *s = snapseg_create(size);
	cr_assert_not_null(s, "snapseg_create(%zu): %s", size, strerror(errno));
	return s;
}

/* How many ephemeral snapshots the daemon lists. */
static size_t n_ephemeral(void)
{
	struct snapfs_rec_snap *v = xmalloc(64 * sizeof(*v));
	size_t n = list_snaps(v, 64), k = 0;
	for (size_t i = 0; i < n; i++)
		k += v[i].kind == 1;
	free(v);
	return k;
}

static void expect_range(const char *what, const unsigned char *got, const unsigned char *want,
			 size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (got[i] != want[i])
			cr_assert_fail("%s: byte %zu is 0x%02x, expected 0x%02x", what, i, got[i],
				       want[i]);
}

Test(seg, read_is_lazy_touching_three_pages_loads_about_three)
{
	fx_mount(NULL);
	size_t len = 64 * MiB;
	unsigned char *want = mkfile("f", len, 1);
	int fd = openm("f", O_RDONLY);
	struct snapseg *s = mkseg(len);
	unsigned char *b = snapseg_base(s);
	cr_assert_eq(snapseg_read(s, b, fd, len, 0), (ssize_t)len);
	struct snapseg_stats st = stats(s);
	cr_assert_eq(st.bytes_loaded, 0, "read loaded %llu bytes before any touch",
		     (unsigned long long)st.bytes_loaded);
	cr_assert_eq(st.snapshots_held, 1);
	size_t at[3] = {5 * MiB + 17, 33 * MiB, 60 * MiB + 4095};
	for (int i = 0; i < 3; i++)
		cr_assert_eq(b[at[i]], want[at[i]], "byte %zu", at[i]);
	st = stats(s);
	cr_assert_eq(st.faults, 3, "faults %llu", (unsigned long long)st.faults);
	cr_assert_eq(st.bytes_loaded, 3 * PGSZ, "loaded %llu bytes for 3 touches",
		     (unsigned long long)st.bytes_loaded);
	snapseg_destroy(s);
	close(fd);
	free(want);
}

Test(seg, read_time_bytes_survive_a_concurrent_rewriter)
{
	fx_mount(NULL);
	size_t len = 32 * MiB;
	unsigned char *want = mkfile("f", len, 2);
	int fd = openm("f", O_RDONLY);
	struct snapseg *s = mkseg(len);
	unsigned char *b = snapseg_base(s);
	cr_assert_eq(snapseg_read(s, b, fd, len, 0), (ssize_t)len);
	pid_t pid = fork();
	if (pid == 0) { /* another process overwrites it all with random bytes */
		unsigned char *r = malloc(len);
		tu_fill(r, len, 99);
		int w = open(MP("f"), O_WRONLY);
		size_t done = 0;
		while (w >= 0 && done < len) {
			ssize_t k = pwrite(w, r + done, len - done, (off_t)done);
			if (k <= 0)
				_exit(1);
			done += (size_t)k;
		}
		_exit(w < 0);
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "rewriter failed");
	expect_range("segment after rewrite", b, want, len);
	snapseg_destroy(s);
	close(fd);
	free(want);
}

Test(seg, unaligned_dst_and_off_are_lazy_and_exact)
{
	fx_mount(NULL);
	size_t flen = 8 * MiB, len = 6 * MiB + 1234;
	off_t off = 777;
	unsigned char *want = mkfile("f", flen, 3);
	int fd = openm("f", O_RDONLY);
	struct snapseg *s = mkseg(16 * MiB);
	unsigned char *b = (unsigned char *)snapseg_base(s) + 4096 * 3 + 101;
	cr_assert_eq(snapseg_read(s, b, fd, len, off), (ssize_t)len);
	uint64_t eager = stats(s).bytes_loaded;
	cr_assert_lt(eager, 3 * PGSZ, "the unaligned read loaded %llu bytes at once",
		     (unsigned long long)eager);
	/* A page in the middle: its bytes straddle two file pages. */
	cr_assert_eq(b[3 * MiB], want[off + 3 * MiB]);
	expect_range("unaligned", b, want + off, len);
	cr_assert_eq(b[-1], 0, "byte before dst touched");
	cr_assert_eq(b[len], 0, "byte after dst touched");
	/* Past EOF: short count like pread. */
	cr_assert_eq(snapseg_read(s, b, fd, 2 * MiB, (off_t)flen - 5000), 5000);
	expect_range("tail", b, want + flen - 5000, 5000);
	snapseg_destroy(s);
	close(fd);
	free(want);
}

Test(seg, reread_over_region_reassociates_and_drops_old_snapshot)
{
	fx_mount(NULL);
	size_t len = 4 * MiB;
	unsigned char *a = mkfile("a", len, 4), *bb = mkfile("b", len, 5);
	int fa = openm("a", O_RDONLY), fb = openm("b", O_RDONLY);
	struct snapseg *s = mkseg(len);
	unsigned char *b = snapseg_base(s);
	cr_assert_eq(snapseg_read(s, b, fa, len, 0), (ssize_t)len);
	cr_assert_eq(b[100], a[100]); /* one page filled from a */
	cr_assert_eq(snapseg_read(s, b, fb, len, 0), (ssize_t)len);
	cr_assert_eq(stats(s).snapshots_held, 1, "the old snapshot is still held");
	cr_assert_eq(n_ephemeral(), 1);
	expect_range("after reread", b, bb, len);
	/* Half over: both held, each half right. */
	cr_assert_eq(snapseg_read(s, b, fa, len / 2, 0), (ssize_t)(len / 2));
	cr_assert_eq(stats(s).snapshots_held, 2);
	expect_range("first half", b, a, len / 2);
	expect_range("second half", b + len / 2, bb + len / 2, len / 2);
	snapseg_destroy(s);
	cr_assert_eq(n_ephemeral(), 0, "destroy left snapshots behind");
	close(fa);
	close(fb);
	free(a);
	free(bb);
}

Test(seg, store_detaches_and_last_detach_releases_snapshot)
{
	fx_mount(NULL);
	size_t len = 16 * PGSZ;
	unsigned char *want = mkfile("f", len, 6);
	int fd = openm("f", O_RDONLY);
	struct snapseg *s = mkseg(len);
	unsigned char *b = snapseg_base(s);
	cr_assert_eq(snapseg_read(s, b, fd, len, 0), (ssize_t)len);
	cr_assert_eq(n_ephemeral(), 1);
	/* Stores to filled and unfilled pages; the rest of each page keeps
	 * the read-time bytes. */
	(void)*(volatile unsigned char *)&b[0];
	for (size_t p = 0; p < 16; p++)
		b[p * PGSZ + 7] ^= 0xff;
	for (size_t p = 0; p < 16; p++) {
		cr_assert_eq(b[p * PGSZ + 7], (unsigned char)(want[p * PGSZ + 7] ^ 0xff));
		cr_assert_eq(b[p * PGSZ + 8], want[p * PGSZ + 8]);
	}
	cr_assert_eq(stats(s).snapshots_held, 0, "all pages stored to, snapshot still held");
	cr_assert_eq(n_ephemeral(), 0, "the daemon still lists the snapshot");
	snapseg_destroy(s);
	close(fd);
	free(want);
}

Test(seg, fallback_on_a_file_not_on_snapfs)
{
	char path[1024];
	tu_path(path, sizeof(path), src, "plain");
	size_t len = 3 * MiB + 5;
	unsigned char *want = xmalloc(len);
	tu_fill(want, len, 7);
	cr_assert_eq(tu_write_file(path, want, len), 0);
	int fd = open(path, O_RDONLY);
	cr_assert(fd >= 0);
	struct snapseg *s = mkseg(4 * MiB);
	unsigned char *b = (unsigned char *)snapseg_base(s) + 3;
	cr_assert_eq(snapseg_read(s, b, fd, len + 100, 0), (ssize_t)len);
	cr_assert_eq(stats(s).snapshots_held, 0);
	expect_range("fallback", b, want, len);
	snapseg_destroy(s);
	close(fd);
	free(want);
}

Test(seg, segment_of_64_gib_reserves_without_committing)
{
	fx_mount(NULL);
	size_t big = 64UL << 30;
	struct snapseg *s = mkseg(big);
	unsigned char *b = snapseg_base(s);
	unsigned char *want = mkfile("f", 2 * MiB, 8);
	int fd = openm("f", O_RDONLY);
	cr_assert_eq(snapseg_read(s, b + big - 2 * MiB, fd, 2 * MiB, 0), (ssize_t)(2 * MiB));
	cr_assert_eq(b[big - 1], want[2 * MiB - 1]);
	cr_assert_eq(b[big / 2], 0);
	snapseg_destroy(s);
	close(fd);
	free(want);
}

Test(seg, bad_arguments_fail_with_errno)
{
	errno = 0;
	cr_assert_null(snapseg_create(0));
	cr_assert_eq(errno, EINVAL);
	struct snapseg *s = mkseg(PGSZ);
	char outside[16];
	cr_assert_eq(snapseg_read(s, outside, 0, sizeof(outside), 0), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(snapseg_read(s, snapseg_base(s), 0, 2 * PGSZ, 0), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(snapseg_discard(s, outside, 1), -1);
	cr_assert_eq(snapfs_unmap(outside, 1), -1);
	snapseg_destroy(s);
}
