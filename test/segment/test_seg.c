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

/* Read 64 pages of f, then the write-back cases. */
Test(seg, write_back_skips_unchanged_pages_and_writes_the_rest)
{
	fx_mount(NULL);
	size_t np = 64, len = np * PGSZ;
	unsigned char *want = mkfile("f", len, 9);
	free(mkfile("g", len, 10));
	int fd = openm("f", O_RDWR), fg = openm("g", O_RDWR);
	struct snapseg *s = mkseg(len);
	unsigned char *b = snapseg_base(s);
	cr_assert_eq(snapseg_read(s, b, fd, len, 0), (ssize_t)len);
	for (size_t p = 0; p < np; p++) /* fill every page (reads only) */
		cr_assert_eq(b[p * PGSZ], want[p * PGSZ]);
	/* 1: a page stored to must be written. */
	b[5 * PGSZ + 1] ^= 0x55;
	want[5 * PGSZ + 1] ^= 0x55;
	/* 3: a page whose file block changed since must be written (the buffer
	 * logically holds the old bytes). */
	unsigned char junk[16] = "overwritten!!!!";
	pwrite_all(fd, junk, sizeof(junk), 9 * PGSZ + 100);
	cr_assert_eq(snapseg_write(s, b, fd, len, 0), (ssize_t)len);
	struct snapseg_stats st = stats(s);
	cr_assert_eq(st.pages_written, 2, "written %llu", (unsigned long long)st.pages_written);
	cr_assert_eq(st.pages_skipped, np - 2, "skipped %llu",
		     (unsigned long long)st.pages_skipped);
	unsigned char *got = xmalloc(len);
	cr_assert_eq(read_path(MP("f"), got, len), (ssize_t)len);
	expect_range("file after write-back", got, want, len);
	/* 2: another file, and the same file at another offset: all written. */
	cr_assert_eq(snapseg_write(s, b, fg, len, 0), (ssize_t)len);
	cr_assert_eq(stats(s).pages_written, 2 + np);
	cr_assert_eq(read_path(MP("g"), got, len), (ssize_t)len);
	expect_range("other file", got, want, len);
	cr_assert_eq(snapseg_write(s, b + PGSZ, fd, len - PGSZ, 0), (ssize_t)(len - PGSZ));
	cr_assert_eq(stats(s).pages_written, 2 + np + np - 1);
	cr_assert_eq(read_path(MP("f"), got, len), (ssize_t)len);
	expect_range("other offset", got, want + PGSZ, len - PGSZ);
	snapseg_destroy(s);
	close(fd);
	close(fg);
	free(want);
	free(got);
}

Test(seg, discard_zeroes_and_detaches_without_loading)
{
	fx_mount(NULL);
	size_t len = 8 * MiB;
	unsigned char *want = mkfile("f", len, 11);
	int fd = openm("f", O_RDONLY);
	struct snapseg *s = mkseg(len);
	unsigned char *b = snapseg_base(s);
	cr_assert_eq(snapseg_read(s, b, fd, len, 0), (ssize_t)len);
	cr_assert_eq(b[0], want[0]);
	uint64_t before = stats(s).bytes_loaded;
	cr_assert_eq(snapseg_discard(s, b, len), 0);
	cr_assert_eq(stats(s).snapshots_held, 0, "discard kept the snapshot");
	for (size_t i = 0; i < len; i += 999)
		cr_assert_eq(b[i], 0, "byte %zu not zero after discard", i);
	cr_assert_eq(stats(s).bytes_loaded, before, "discard loaded pages");
	cr_assert_eq(n_ephemeral(), 0);
	snapseg_destroy(s);
	close(fd);
	free(want);
}

struct thr {
	struct snapseg *s;
	int fd;
	unsigned char *dst, *want;
	size_t len;
	int ok;
};

static void *thr_run(void *arg)
{
	struct thr *t = arg;
	t->ok = 1;
	for (int round = 0; round < 4; round++) {
		if (snapseg_read(t->s, t->dst, t->fd, t->len, 0) != (ssize_t)t->len)
			t->ok = 0;
		for (size_t i = (size_t)round * 37; i < t->len; i += 4096 * 3 + 11)
			if (t->dst[i] != t->want[i])
				t->ok = 0;
		t->dst[round] ^= 1; /* a store */
		if (snapseg_write(t->s, t->dst, t->fd, t->len, 0) != (ssize_t)t->len)
			t->ok = 0;
		t->dst[round] ^= 1;
		if (snapseg_write(t->s, t->dst, t->fd, t->len, 0) != (ssize_t)t->len)
			t->ok = 0;
	}
	return NULL;
}

Test(seg, several_threads_read_touch_and_write_at_once)
{
	fx_mount(NULL);
	enum { N = 4 };
	size_t len = 4 * MiB;
	struct snapseg *s = mkseg(N * len), *s2 = mkseg(len);
	struct thr t[N + 1];
	pthread_t th[N + 1];
	char name[16];
	for (int i = 0; i <= N; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		t[i] = (struct thr){.s = i < N ? s : s2, .len = len};
		t[i].want = mkfile(name, len, 20 + (uint64_t)i);
		t[i].fd = openm(name, O_RDWR);
		t[i].dst = (unsigned char *)snapseg_base(t[i].s) + (i < N ? (size_t)i * len : 0);
		cr_assert_eq(pthread_create(&th[i], NULL, thr_run, &t[i]), 0);
	}
	for (int i = 0; i <= N; i++) {
		pthread_join(th[i], NULL);
		cr_assert(t[i].ok, "thread %d saw wrong bytes or a failure", i);
		close(t[i].fd);
		free(t[i].want);
	}
	snapseg_destroy(s);
	snapseg_destroy(s2);
	cr_assert_eq(n_ephemeral(), 0);
}

Test(seg, daemon_death_turns_touching_an_unfilled_page_into_sigbus)
{
	fx_mount(NULL);
	size_t len = 16 * MiB;
	unsigned char *want = mkfile("f", len, 12);
	int pfd[2];
	cr_assert_eq(pipe(pfd), 0);
	pid_t pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		int fd = open(MP("f"), O_RDONLY);
		struct snapseg *s = snapseg_create(len);
		if (fd < 0 || !s)
			_exit(10);
		unsigned char *b = snapseg_base(s);
		if (snapseg_read(s, b, fd, len, 0) != (ssize_t)len || b[0] != want[0])
			_exit(11);
		char c = 1;
		if (write(pfd[1], &c, 1) != 1)
			_exit(12);
		if (read(pfd[1], &c, 1) < 0) /* parent closes its end: EOF-less wait */
			(void)0;
		signal(SIGBUS, SIG_DFL); /* not a sanitizer's report-and-exit handler */
		sleep(1);		 /* the daemon is being killed */
		for (;;)
			(void)*(volatile unsigned char *)&b[len / 2];
		_exit(13);
	}
	close(pfd[1]);
	char c;
	cr_assert_eq(read(pfd[0], &c, 1), 1, "child failed before the kill");
	kill(m.pid, SIGKILL);
	int status;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid_t r;
	while ((r = waitpid(pid, &status, WNOHANG)) == 0) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (t1.tv_sec - t0.tv_sec > 10) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			cr_assert_fail("the child hung on an unfilled page after the daemon died");
		}
		msleep(20);
	}
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS,
		  "child ended with status 0x%x, expected SIGBUS", status);
	free(want);
}

#define NOBODY 65534
Test(seg, unprivileged_user_reads_lazily_and_writes_back)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to switch to an unprivileged user");
	fx_mount("allow_other");
	size_t len = 2 * MiB;
	unsigned char *want = mkfile("f", len, 13);
	cr_assert_eq(chown(MP("f"), NOBODY, NOBODY), 0);
	pid_t pid = fork();
	if (pid == 0) {
		gid_t g = NOBODY;
		if (setgroups(1, &g) || setgid(NOBODY) || setuid(NOBODY))
			_exit(20);
		int fd = open(MP("f"), O_RDWR);
		struct snapseg *s = snapseg_create(len);
		if (fd < 0 || !s)
			_exit(21);
		unsigned char *b = snapseg_base(s);
		if (snapseg_read(s, b, fd, len, 0) != (ssize_t)len)
			_exit(22);
		if (b[12345] != want[12345] || b[len - 1] != want[len - 1])
			_exit(23);
		b[7] ^= 1;
		if (snapseg_write(s, b, fd, len, 0) != (ssize_t)len)
			_exit(24);
		struct snapseg_stats st;
		snapseg_stats(s, &st);
		if (st.pages_written != 1 || st.pages_skipped != len / PGSZ - 1)
			_exit(25);
		snapseg_destroy(s);
		_exit(0);
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "unprivileged child failed: status 0x%x (exit code = step)", status);
	free(want);
}

Test(seg, snapfs_map_is_a_private_lazy_snapshot)
{
	fx_mount(NULL);
	size_t len = 8 * MiB;
	unsigned char *want = mkfile("f", len, 14);
	int fd = openm("f", O_RDWR);
	uint64_t id = 0;
	unsigned char *p = snapfs_map(fd, 0, len, &id);
	cr_assert_not_null(p, "snapfs_map: %s", strerror(errno));
	cr_assert_neq(id, 0);
	unsigned char junk[4096];
	memset(junk, 0xa5, sizeof(junk));
	pwrite_all(fd, junk, sizeof(junk), 4096 * 10);
	expect_range("map after rewrite", p, want, len);
	p[0] ^= 1; /* private store */
	unsigned char c;
	cr_assert_eq(pread(fd, &c, 1, 0), 1);
	cr_assert_eq(c, want[0], "a store to the map reached the file");
	cr_assert_eq(n_ephemeral(), 1);
	cr_assert_eq(snapfs_unmap(p, len), 0);
	cr_assert_eq(n_ephemeral(), 0, "unmap kept the snapshot");
	errno = 0;
	cr_assert_null(snapfs_map(fd, 1, len, NULL));
	cr_assert_eq(errno, EINVAL);
	close(fd);
	free(want);
}

Test(seg, thousands_of_scattered_stores_are_each_tracked)
{
	fx_mount(NULL);
	size_t np = 4096, len = np * PGSZ;
	unsigned char *want = mkfile("f", len, 15);
	int fd = openm("f", O_RDWR);
	struct snapseg *s = mkseg(len);
	unsigned char *b = snapseg_base(s);
	cr_assert_eq(snapseg_read(s, b, fd, len, 0), (ssize_t)len);
	for (size_t p = 1; p < np; p += 2) { /* half filled first, half stored unfilled */
		if (p % 4 == 1)
			(void)*(volatile unsigned char *)&b[p * PGSZ];
		b[p * PGSZ + 3] ^= 0x0f;
		want[p * PGSZ + 3] ^= 0x0f;
	}
	cr_assert_eq(stats(s).snapshots_held, 1);
	cr_assert_eq(snapseg_write(s, b, fd, len, 0), (ssize_t)len);
	struct snapseg_stats st = stats(s);
	cr_assert_eq(st.pages_written, np / 2, "written %llu",
		     (unsigned long long)st.pages_written);
	cr_assert_eq(st.pages_skipped, np / 2);
	unsigned char *got = xmalloc(len);
	cr_assert_eq(read_path(MP("f"), got, len), (ssize_t)len);
	expect_range("file after scattered stores", got, want, len);
	expect_range("segment", b, want, len);
	snapseg_destroy(s);
	close(fd);
	free(want);
	free(got);
}
