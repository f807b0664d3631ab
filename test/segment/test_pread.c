// SPDX-License-Identifier: MIT
/*
 * snapfs_pread() through a real mount: under a process rewriting a 256 MiB
 * file generation after generation (every 8 bytes stamped with the
 * generation, each generation written from the end to the start in 64 KiB
 * writes), a plain pread of the whole file can return a mix no instant of
 * the file ever had; snapfs_pread never does, large or small. Its pread
 * semantics (short count at end of file, unaligned offsets, the offset
 * untouched, no snapshot left behind), its errors, and descriptors that
 * read a snapshot already (frozen, view file: it reads that snapshot).
 */
#include "segutil.h"

#include <signal.h>
#include <stdbool.h>

TestSuite(pread, .init = fx_setup, .fini = fx_teardown, .timeout = 240);

#define BIG   (256 * MiB)
#define CHUNK (64 * 1024UL)

static size_t n_snaps(void)
{
	struct snapfs_rec_snap *v = xmalloc(64 * sizeof(*v));
	size_t n = list_snaps(v, 64);
	free(v);
	return n;
}

/* Wait (at most 2 s) until the daemon lists no snapshot. */
static size_t snaps_settle(void)
{
	size_t n = 0;
	for (int i = 0; i < 100 && (n = n_snaps()); i++)
		msleep(20);
	return n;
}

/* The writer: generation g = 1, 2, ... stamped on every 8 bytes, each
 * generation written from the last 64 KiB chunk down to the first. At any
 * instant the file is [0, p) of generation g - 1 and [p, end) of g, so the
 * stamps of any one instant never decrease along the file and span at most
 * two consecutive generations. */
static pid_t start_writer(const char *path, size_t len)
{
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid)
		return pid;
	int fd = open(path, O_WRONLY);
	uint64_t *b = malloc(CHUNK);
	if (fd < 0 || !b)
		_exit(1);
	for (uint64_t g = 1;; g++) {
		for (size_t i = 0; i < CHUNK / 8; i++)
			b[i] = g;
		for (size_t c = len / CHUNK; c-- > 0;)
			if (pwrite(fd, b, CHUNK, (off_t)(c * CHUNK)) != (ssize_t)CHUNK)
				_exit(2);
	}
}

static void stop_writer(pid_t pid)
{
	kill(pid, SIGKILL);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st), "the writer died on its own (status %d)", st);
}

/* Whether n stamps starting at file offset off (8-aligned) could be one
 * instant of the file; what was wrong into why. */
static bool one_instant(const uint64_t *w, size_t n, size_t off, char *why, size_t whylen)
{
	uint64_t lo = w[0], hi = w[0];
	for (size_t i = 1; i < n; i++) {
		if (w[i] < w[i - 1]) {
			snprintf(why, whylen, "generation %llu at byte %zu after %llu before it",
				 (unsigned long long)w[i], off + i * 8,
				 (unsigned long long)w[i - 1]);
			return false;
		}
		if (w[i] > hi)
			hi = w[i];
		if (w[i] < lo)
			lo = w[i];
	}
	if (hi - lo > 1) {
		snprintf(why, whylen, "generations %llu to %llu in one read",
			 (unsigned long long)lo, (unsigned long long)hi);
		return false;
	}
	return true;
}

Test(pread, plain_pread_tears_under_a_rewriter_snapfs_pread_never_does)
{
	fx_mount(NULL);
	/* generation 0 */
	int fd = open(MP("f"), O_RDWR | O_CREAT, 0644);
	cr_assert(fd >= 0, "create: %s", strerror(errno));
	uint64_t *z = calloc(1, 8 * MiB);
	cr_assert_not_null(z);
	for (size_t off = 0; off < BIG; off += 8 * MiB)
		pwrite_all(fd, z, 8 * MiB, (off_t)off);
	free(z);
	uint64_t *buf = xmalloc(BIG);
	char why[256];
	pid_t w = start_writer(MP("f"), BIG);
	/* wait until the writer is into its second generation */
	for (int i = 0; i < 3000; i++) {
		uint64_t g = 0;
		cr_assert_eq(pread(fd, &g, 8, 0), 8);
		if (g >= 1)
			break;
		msleep(10);
	}
	/* plain pread of the whole file: at least one torn read expected */
	int torn = 0, tries = 0;
	char first_tear[256] = "";
	for (; tries < 30 && !torn; tries++) {
		ssize_t n = pread(fd, buf, BIG, 0);
		cr_assert_eq(n, (ssize_t)BIG, "pread: %zd (%s)", n, strerror(errno));
		if (!one_instant(buf, BIG / 8, 0, why, sizeof(why))) {
			torn++;
			snprintf(first_tear, sizeof(first_tear), "%s", why);
		}
	}
	/* snapfs_pread of the whole file, and of small ranges across the
	 * writer's 64 KiB chunks (one request each) */
	int big_ok = 0;
	for (int i = 0; i < 4; i++) {
		memset(buf, 0xff, 64);
		ssize_t n = snapfs_pread(fd, buf, BIG, 0);
		cr_assert_eq(n, (ssize_t)BIG, "snapfs_pread: %zd (%s)", n, strerror(errno));
		if (!one_instant(buf, BIG / 8, 0, why, sizeof(why)))
			cr_assert_fail("snapfs_pread of %zu MiB torn (try %d): %s", BIG / MiB, i,
				       why);
		big_ok++;
	}
	uint64_t rs = 14;
	for (int i = 0; i < 300; i++) {
		size_t c = 1 + tu_rand(&rs) % (BIG / CHUNK - 1);
		size_t len = 8 * (1 + tu_rand(&rs) % (SNAPFS_PROTO_DATA / 8));
		size_t off = c * CHUNK - 8 * (tu_rand(&rs) % (len / 8 + 1));
		ssize_t n = snapfs_pread(fd, buf, len, (off_t)off);
		cr_assert_eq(n, (ssize_t)len, "snapfs_pread(%zu at %zu): %zd (%s)", len, off, n,
			     strerror(errno));
		if (!one_instant(buf, len / 8, off, why, sizeof(why)))
			cr_assert_fail("snapfs_pread of %zu bytes at %zu torn: %s", len, off, why);
	}
	uint64_t gen_end = 0;
	cr_assert_eq(pread(fd, &gen_end, 8, BIG - 8), 8);
	stop_writer(w);
	cr_assert_gt(gen_end, 1, "the writer did not get past its first generation");
	close(fd);
	free(buf);
	cr_assert_eq(snaps_settle(), 0, "snapfs_pread left snapshots behind");
	cr_log_info("plain pread: %d torn in %d tries (%s); snapfs_pread: %d whole-file and 300 "
		    "small reads, none torn; the writer reached generation %llu",
		    torn, tries, first_tear, big_ok, (unsigned long long)gen_end);
	if (!torn)
		cr_skip_test("plain pread never tore in %d tries: its half is not shown (the "
			     "snapfs_pread half passed)",
			     tries);
}

Test(pread, has_pread_semantics_and_leaves_nothing_behind)
{
	fx_mount(NULL);
	size_t len = 3 * MiB + 123;
	unsigned char *want = mkfile("f", len, 21), *got = xmalloc(len + 100);
	int fd = openm("f", O_RDONLY);
	cr_assert_eq(lseek(fd, 777, SEEK_SET), 777);
	struct {
		size_t off, len;
	} cases[] = {{0, 1},
		     {5, 4096},
		     {4095, 15 * 1024},
		     {0, SNAPFS_PROTO_DATA},
		     {1, SNAPFS_PROTO_DATA + 1},
		     {12345, MiB + 7},
		     {0, len},
		     {len - 10, 100},
		     {len, 10},
		     {len + 5000, 10}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t o = cases[i].off, l = cases[i].len;
		size_t exp = o >= len ? 0 : (len - o < l ? len - o : l);
		memset(got, 0xa5, l);
		ssize_t n = snapfs_pread(fd, got, l, (off_t)o);
		cr_assert_eq(n, (ssize_t)exp, "snapfs_pread(%zu at %zu): %zd, expected %zu (%s)", l,
			     o, n, exp, strerror(errno));
		char what[64];
		snprintf(what, sizeof(what), "%zu bytes at %zu", l, o);
		expect_bytes(what, got, (size_t)n, want + (o < len ? o : len), exp);
	}
	cr_assert_eq(snapfs_pread(fd, got, 0, 0), 0);
	cr_assert_eq(lseek(fd, 0, SEEK_CUR), 777, "snapfs_pread moved the offset");
	cr_assert_eq(snaps_settle(), 0, "snapfs_pread left snapshots behind");
	/* errors: nothing read, errno says why */
	errno = 0;
	cr_assert_eq(snapfs_pread(fd, got, 10, -1), -1);
	cr_assert_eq(errno, EINVAL);
	int wo = openm("f", O_WRONLY);
	errno = 0;
	cr_assert_eq(snapfs_pread(wo, got, 10, 0), -1);
	cr_assert_eq(errno, EBADF, "write-only: %s", strerror(errno));
	close(wo);
	int dir = open(mnt, O_RDONLY | O_DIRECTORY);
	cr_assert(dir >= 0);
	errno = 0;
	cr_assert_eq(snapfs_pread(dir, got, 10, 0), -1);
	cr_assert_eq(errno, EISDIR, "directory: %s", strerror(errno));
	close(dir);
	char plain[256];
	snprintf(plain, sizeof(plain), "%s/plain", src);
	write_path(plain, "abc", 3);
	int pf = open(plain, O_RDONLY);
	cr_assert(pf >= 0);
	errno = 0;
	cr_assert_eq(snapfs_pread(pf, got, 3, 0), -1, "a file outside snapfs was read");
	cr_assert_eq(errno, ENOTSUP, "not on snapfs: %s", strerror(errno));
	close(pf);
	errno = 0;
	cr_assert_eq(snapfs_pread(-1, got, 3, 0), -1);
	cr_assert_eq(errno, EBADF);
	close(fd);
	free(want);
	free(got);
}

Test(pread, on_a_frozen_or_view_descriptor_it_reads_that_snapshot)
{
	fx_mount(NULL);
	size_t len = 2 * MiB;
	unsigned char *old = mkfile("f", len, 31), *nb = xmalloc(len), *got = xmalloc(len);
	int fd = openm("f", O_RDONLY);
	uint64_t id = 0;
	cr_assert_eq(snapfs_freeze(fd, &id), 0, "snapfs_freeze: %s", strerror(errno));
	uint64_t pinned = pin1("f");
	tu_fill(nb, len, 32);
	write_path(MP("f"), nb, len);
	for (int big = 0; big < 2; big++) {
		size_t l = big ? len : 9000;
		cr_assert_eq(snapfs_pread(fd, got, l, 0), (ssize_t)l, "%s", strerror(errno));
		expect_bytes(big ? "frozen fd, whole file" : "frozen fd, 9000 bytes", got, l, old,
			     l);
		int v = open(VP(pinned, "f"), O_RDONLY);
		cr_assert(v >= 0, "open the view: %s", strerror(errno));
		cr_assert_eq(snapfs_pread(v, got, l, 0), (ssize_t)l, "%s", strerror(errno));
		expect_bytes("view file", got, l, old, l);
		close(v);
		int live = openm("f", O_RDONLY);
		cr_assert_eq(snapfs_pread(live, got, l, 0), (ssize_t)l, "%s", strerror(errno));
		expect_bytes("live file", got, l, nb, l);
		close(live);
	}
	/* the pinned snapshot is still there: reading its view did not release it */
	cr_assert(listed_snap(pinned, NULL), "snapfs_pread of a view file released the snapshot");
	close(fd);
	release(pinned);
	free(old);
	free(nb);
	free(got);
}

/* The writer of one 64 KiB chunk, over and over, each write stamped with
 * its own number: any one instant of the chunk holds one number. */
static pid_t start_chunk_writer(const char *path)
{
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid)
		return pid;
	int fd = open(path, O_WRONLY);
	uint64_t *b = malloc(CHUNK);
	if (fd < 0 || !b)
		_exit(1);
	for (uint64_t g = 1;; g++) {
		for (size_t i = 0; i < CHUNK / 8; i++)
			b[i] = g;
		if (pwrite(fd, b, CHUNK, 0) != (ssize_t)CHUNK)
			_exit(2);
	}
}

/* Whether the n stamps are all the same. */
static bool one_write(const uint64_t *w, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (w[i] != w[0])
			return false;
	return true;
}

Test(pread, small_reads_never_show_part_of_a_write)
{
	fx_mount(NULL);
	uint64_t *z = calloc(1, CHUNK), buf[SNAPFS_PROTO_DATA / 8];
	cr_assert_not_null(z);
	write_path(MP("c"), z, CHUNK);
	free(z);
	int fd = openm("c", O_RDONLY);
	pid_t w = start_chunk_writer(MP("c"));
	size_t len = sizeof(buf), off = 16 * 1024;
	int torn = 0, tries = 0;
	for (; tries < 20000 && !torn; tries++) {
		cr_assert_eq(pread(fd, buf, len, (off_t)off), (ssize_t)len);
		torn += !one_write(buf, len / 8);
	}
	for (int i = 0; i < 3000; i++) {
		ssize_t n = snapfs_pread(fd, buf, len, (off_t)off);
		cr_assert_eq(n, (ssize_t)len, "snapfs_pread: %zd (%s)", n, strerror(errno));
		if (!one_write(buf, len / 8))
			cr_assert_fail("snapfs_pread of %zu bytes showed part of a write (try %d)",
				       len, i);
	}
	stop_writer(w);
	close(fd);
	cr_log_info("plain pread: %d torn in %d tries; snapfs_pread: 3000, none torn", torn, tries);
	if (!torn)
		cr_skip_test("plain pread never showed part of a write in %d tries (the "
			     "snapfs_pread half passed)",
			     tries);
}
