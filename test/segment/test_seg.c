// SPDX-License-Identifier: MIT
/*
 * The deferred-I/O segment through a real mount on tmpfs: reads are lazy
 * (stats), see read-time bytes under a concurrent rewriter, work at any
 * alignment, re-associate on re-read, detach on store, release snapshots
 * no page shows, skip unchanged pages on write-back (and write the three
 * kinds that must be written), discard without loading, fall back on
 * plain files, reserve 64 GiB, survive several threads, turn daemon death
 * into SIGBUS, and work for an unprivileged user. Plus snapfs_map. Direct
 * fills: served with the daemon stopped, never show later changes to the
 * live file (write, punch, truncate), and a snapshot released under the
 * segment gives SIGBUS, not live bytes; a program's own SIGBUS handler,
 * installed before the first segment, still gets its faults.
 */
#include "segutil.h"

#include <grp.h>
#include <poll.h>
#include <setjmp.h>
#include <stdbool.h>
#include <pthread.h>
#include <signal.h>

TestSuite(seg, .init = fx_setup, .fini = fx_teardown, .timeout = 60);

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
		/* The default action (not a sanitizer's report-and-exit handler) is
		 * what libsnapfs chains to for a page it cannot fill: set it before
		 * the first segment, which installs the library's handler. */
		signal(SIGBUS, SIG_DFL);
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
		sleep(1); /* the daemon is being killed */
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

/* ---- direct fills and the SIGBUS handler ---- */

/* How many change bitmaps of direct fills this process maps: one per
 * snapshot whose fills read the live file (white box: the daemon's memfd
 * name, src/fuse/bits.c). */
static int n_direct_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	cr_assert_not_null(f);
	char line[1024];
	int n = 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, "/memfd:snapfs-direct") != NULL;
	fclose(f);
	return n;
}

/* Wait at most secs for child pid to end; on timeout kill that child (only
 * it) and reap it. False on timeout. */
static bool wait_child(pid_t pid, int secs, int *status)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return true;
		if (r < 0) /* not ours to wait for (any more): never signal it */
			return false;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (t1.tv_sec - t0.tv_sec >= secs) {
			kill(pid, SIGKILL);
			waitpid(pid, status, 0);
			return false;
		}
		msleep(20);
	}
}

/* One byte from a pipe within secs; false on timeout, EOF or error. */
static bool pipe_wait(int fd, int secs)
{
	struct pollfd p = {fd, POLLIN, 0};
	char c;
	return poll(&p, 1, secs * 1000) == 1 && read(fd, &c, 1) == 1;
}

struct toucher {
	const unsigned char *b, *want;
	size_t len;
	size_t bad; /* 1 + offset of the first wrong byte; 0: all right */
	int done;   /* atomic */
};

static void *touch_all(void *arg)
{
	struct toucher *t = arg;
	for (size_t i = 0; i < t->len && !t->bad; i += PGSZ)
		if (memcmp(t->b + i, t->want + i, PGSZ))
			for (size_t k = i; k < i + PGSZ && !t->bad; k++)
				if (t->b[k] != t->want[k])
					t->bad = k + 1;
	__atomic_store_n(&t->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* With the daemon stopped, fills through the view would wait for it (FUSE
 * has no timeout); direct fills read the live file and need no daemon. */
Test(seg, direct_fills_need_no_daemon)
{
	if (geteuid() != 0)
		cr_skip_test("direct fills need a root daemon");
	fx_mount(NULL);
	size_t len = 256 * PGSZ;
	unsigned char *want = mkfile("f", len, 30);
	int fd = openm("f", O_RDONLY);
	struct snapseg *s = mkseg(len);
	unsigned char *b = snapseg_base(s);
	cr_assert_eq(snapseg_read(s, b, fd, len, 0), (ssize_t)len);
	cr_assert_eq(stats(s).bytes_loaded, 0, "the read loaded bytes before any touch");
	cr_assert_eq(n_direct_maps(), 1, "direct fills were not set up");

	/* From here to SIGCONT no assertion: the daemon must never stay stopped. */
	struct toucher t = {.b = b, .want = want, .len = len};
	pthread_t th;
	int st = 0;
	bool stopped = false, started = false, in_time = false;
	if (kill(m.pid, SIGSTOP) == 0) {
		pid_t w = waitpid(m.pid, &st, WUNTRACED);
		stopped = w == m.pid && WIFSTOPPED(st);
		if (w == m.pid && !WIFSTOPPED(st))
			m.pid = 0; /* it ended and is reaped: never signal that pid again */
	}
	if (stopped)
		started = pthread_create(&th, NULL, touch_all, &t) == 0;
	for (int i = 0; started && i < 500 && !in_time; i++) {
		in_time = __atomic_load_n(&t.done, __ATOMIC_ACQUIRE);
		if (!in_time)
			msleep(10);
	}
	if (m.pid > 0)
		kill(m.pid, SIGCONT);

	cr_assert(stopped, "the daemon did not stop (status 0x%x)", st);
	cr_assert(started, "pthread_create failed");
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 20;
	int jr = pthread_timedjoin_np(th, NULL, &dl);
	cr_assert(in_time, "touching the segment waited for the stopped daemon (%s)",
		  jr == 0 ? "it finished after SIGCONT: fills went through FUSE"
			  : "still not finished after SIGCONT");
	cr_assert_eq(jr, 0);
	cr_assert_eq(t.bad, 0, "byte %zu is 0x%02x, expected 0x%02x", t.bad - 1, b[t.bad - 1],
		     want[t.bad - 1]);
	struct snapseg_stats ss = stats(s);
	cr_assert_gt(ss.faults, 0, "no faults: the pages were not filled lazily");
	cr_assert_eq(ss.bytes_loaded, len);
	snapseg_destroy(s);
	close(fd);
	free(want);
}

/* Every way the live file changes after the read (overwrite, hole punch,
 * O_TRUNC, truncate in a block) must send the fill to the snapshot. The
 * truncated files are extended back, so a fill that trusted the live file
 * would read zeros of the full length rather than come up short. */
Test(seg, direct_fill_never_shows_later_writes)
{
	fx_mount(NULL);
	size_t np = 256, len = np * PGSZ;
	unsigned char *wf = mkfile("f", len, 31), *wg = mkfile("g", len, 32),
		      *wh = mkfile("h", len, 33);
	int ff = openm("f", O_RDONLY), fg = openm("g", O_RDONLY), fh = openm("h", O_RDONLY);
	struct snapseg *s = mkseg(3 * len);
	unsigned char *b = snapseg_base(s);
	cr_assert_eq(snapseg_read(s, b, ff, len, 0), (ssize_t)len);
	cr_assert_eq(snapseg_read(s, b + len, fg, len, 0), (ssize_t)len);
	cr_assert_eq(snapseg_read(s, b + 2 * len, fh, len, 0), (ssize_t)len);
	cr_assert_eq(stats(s).bytes_loaded, 0);
	if (geteuid() == 0)
		cr_assert_eq(n_direct_maps(), 3, "direct fills were not set up for all three");

	/* f: pages 10..20 overwritten, pages 100..109 punched out. */
	size_t junklen = 11 * PGSZ;
	unsigned char *junk = xmalloc(junklen);
	for (size_t i = 0; i < junklen; i++)
		junk[i] = (unsigned char)~wf[10 * PGSZ + i];
	int w = openm("f", O_WRONLY);
	pwrite_all(w, junk, junklen, 10 * PGSZ);
	cr_assert_eq(
	    fallocate(w, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100 * PGSZ, 10 * PGSZ), 0,
	    "punch: %s", strerror(errno));
	close(w);
	/* g: O_TRUNC, then back to the old size (zeros). */
	w = openm("g", O_WRONLY | O_TRUNC);
	cr_assert_eq(ftruncate(w, (off_t)len), 0);
	close(w);
	/* h: cut in the middle of a page, then back. */
	size_t cut = 100 * PGSZ + 123;
	w = openm("h", O_WRONLY);
	cr_assert_eq(ftruncate(w, (off_t)cut), 0);
	cr_assert_eq(ftruncate(w, (off_t)len), 0);
	close(w);

	/* The premise: the live files did change. */
	unsigned char *live = xmalloc(len);
	cr_assert_eq(read_path(MP("f"), live, len), (ssize_t)len);
	expect_range("live f, overwritten", live + 10 * PGSZ, junk, junklen);
	cr_assert_eq(live[105 * PGSZ], 0);
	cr_assert_eq(read_path(MP("g"), live, len), (ssize_t)len);
	cr_assert_eq(live[len / 2], 0);
	cr_assert_eq(read_path(MP("h"), live, len), (ssize_t)len);
	cr_assert_eq(live[cut], 0);

	/* f in reverse: one page per fill, so each changed page is checked on
	 * its own next to unchanged ones; g and h forward, in batches. */
	char what[128];
	for (size_t p = np; p-- > 0;) {
		snprintf(what, sizeof(what), "f page %zu (overwritten 10..20, punched 100..109)",
			 p);
		expect_range(what, b + p * PGSZ, wf + p * PGSZ, PGSZ);
	}
	expect_range("g after O_TRUNC", b + len, wg, len);
	expect_range("h after truncate", b + 2 * len, wh, len);
	cr_assert_eq(stats(s).bytes_loaded, 3 * len);
	snapseg_destroy(s);
	cr_assert_eq(n_ephemeral(), 0);
	close(ff);
	close(fg);
	close(fh);
	free(wf);
	free(wg);
	free(wh);
	free(junk);
	free(live);
}

/* The snapshot is released by someone else (root, by id) and the live
 * file rewritten: touching an unfilled page must end the process with
 * SIGBUS, never show the live bytes. */
Test(seg, released_snapshot_under_segment_sigbus)
{
	fx_mount(NULL);
	size_t len = 256 * PGSZ, pg = 100;
	unsigned char *old = mkfile("f", len, 35), *neu = xmalloc(len);
	tu_fill(neu, len, 36);
	int ready[2], go[2];
	cr_assert_eq(pipe(ready), 0);
	cr_assert_eq(pipe(go), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		close(ready[0]);
		close(go[1]);
		/* Before the first create: the library chains to the default action. */
		signal(SIGBUS, SIG_DFL);
		int fd = open(MP("f"), O_RDONLY);
		struct snapseg *s = snapseg_create(len);
		if (fd < 0 || !s)
			_exit(10);
		unsigned char *b = snapseg_base(s);
		struct snapseg_stats st;
		if (snapseg_read(s, b, fd, len, 0) != (ssize_t)len || snapseg_stats(s, &st) ||
		    st.bytes_loaded)
			_exit(11);
		char c = 1;
		if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(12);
		static unsigned char page[PGSZ];
		for (size_t i = 0; i < PGSZ; i++)
			page[i] = ((volatile unsigned char *)b)[pg * PGSZ + i];
		if (!memcmp(page, neu + pg * PGSZ, PGSZ))
			_exit(0);
		_exit(!memcmp(page, old + pg * PGSZ, PGSZ) ? 2 : 3);
	}
	close(ready[1]);
	close(go[0]);
	int status;
	if (!pipe_wait(ready[0], 10)) {
		wait_child(pid, 0, &status);
		cr_assert_fail("the child failed or hung before the release (status 0x%x)", status);
	}
	struct snapfs_rec_snap v[64];
	size_t n = list_snaps(v, 64), k = 0;
	uint64_t id = 0;
	for (size_t i = 0; i < n; i++)
		if (v[i].kind == 1) {
			id = v[i].id;
			k++;
		}
	cr_assert_eq(k, 1, "%zu ephemeral snapshots listed, expected the child's one", k);
	release(id);
	cr_assert_eq(n_ephemeral(), 0, "the released snapshot is still listed");
	int w = openm("f", O_WRONLY);
	pwrite_all(w, neu, len, 0);
	close(w);
	char c = 1;
	cr_assert_eq(write(go[1], &c, 1), 1);
	bool ended = wait_child(pid, 10, &status);
	close(ready[0]);
	close(go[1]);
	cr_assert(ended, "the child hung on an unfilled page of a released snapshot");
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		cr_assert_fail("live bytes served after release");
	if (WIFEXITED(status) && WEXITSTATUS(status) == 2)
		cr_assert_fail("read-time bytes served after release (the view still reads)");
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS,
		  "child ended with status 0x%x, expected SIGBUS (exit code: step)", status);
	free(old);
	free(neu);
}

/* The program's own SIGBUS handler, installed before the first segment:
 * never called for segment faults, still called for its own. */
static sigjmp_buf bus_env;
static volatile sig_atomic_t bus_calls, bus_armed;
static void *volatile bus_addr;

static void test_bus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	bus_calls++;
	bus_addr = si->si_addr;
	if (!bus_armed)
		_exit(40); /* called for a fault that was not ours */
	siglongjmp(bus_env, 1);
}

/* Touch all of [b, b + len) and compare; 0 when right. */
static int touch_check(const unsigned char *b, const unsigned char *want, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (((const volatile unsigned char *)b)[i] != want[i])
			return -1;
	return 0;
}

Test(seg, program_sigbus_handler_still_called)
{
	fx_mount(NULL);
	size_t len = 256 * PGSZ;
	unsigned char *want = mkfile("f", len, 37);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		struct sigaction sa = {.sa_sigaction = test_bus, .sa_flags = SA_SIGINFO};
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGBUS, &sa, NULL))
			_exit(30);
		int fd = open(MP("f"), O_RDONLY);
		struct snapseg *s = snapseg_create(2 * len);
		if (fd < 0 || !s)
			_exit(31);
		unsigned char *b = snapseg_base(s);
		if (snapseg_read(s, b, fd, len, 0) != (ssize_t)len)
			_exit(32);
		if (touch_check(b, want, len))
			_exit(33);
		struct snapseg_stats st;
		if (snapseg_stats(s, &st) || st.faults == 0)
			_exit(34);
		/* A real SIGBUS outside any segment: past the end of a memfd. */
		int mfd = memfd_create("seg-test-bus", MFD_CLOEXEC);
		void *p = mfd < 0 ? MAP_FAILED : mmap(NULL, PGSZ, PROT_READ, MAP_SHARED, mfd, 0);
		if (p == MAP_FAILED)
			_exit(35);
		bus_armed = 1;
		if (sigsetjmp(bus_env, 1) == 0) {
			(void)*(volatile unsigned char *)p;
			_exit(36); /* no SIGBUS at all */
		}
		bus_armed = 0;
		if (bus_calls != 1 || bus_addr != p)
			_exit(37);
		/* Segment faults are still served after the jump out. */
		if (snapseg_read(s, b + len, fd, len, 0) != (ssize_t)len ||
		    touch_check(b + len, want, len))
			_exit(38);
		snapseg_destroy(s);
		_exit(bus_calls == 1 ? 0 : 39);
	}
	int status;
	bool ended = wait_child(pid, 10, &status);
	cr_assert(ended, "the child hung");
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "child status 0x%x: exit code 33/38 wrong segment bytes, 36 no SIGBUS from "
		  "the memfd, 37 the handler was not called for it, 40 it was called for a "
		  "segment fault, else the step that failed",
		  status);
	free(want);
}

/* Fills in batches (forward touches: 16 pages, then 32, ... up to 1 MiB)
 * over blocks changed after the read: scattered pages, a whole 4 MiB run,
 * and more pages ahead of the touches changed while they go. Every page
 * shows the read-time bytes, and the touches were batched. */
Test(seg, batched_fills_over_changed_blocks_show_the_snapshot)
{
	fx_mount(NULL);
	size_t len = 16 * MiB, np = len / PGSZ;
	unsigned char *want = mkfile("f", len, 71), *page = xmalloc(PGSZ);
	int fd = openm("f", O_RDONLY);
	struct snapseg *s = mkseg(len);
	unsigned char *b = snapseg_base(s);
	cr_assert_eq(snapseg_read(s, b, fd, len, 0), (ssize_t)len);
	int w = openm("f", O_WRONLY);
	memset(page, 0xee, PGSZ);
	for (size_t p = 3; p < np; p += 7)
		pwrite_all(w, page, PGSZ, (off_t)(p * PGSZ));
	unsigned char *run = xmalloc(4 * MiB);
	memset(run, 0xdd, 4 * MiB);
	pwrite_all(w, run, 4 * MiB, (off_t)(8 * MiB));
	char what[96];
	for (size_t p = 0; p < np; p++) {
		if (p % 512 == 0 && p + 600 < np) /* ahead of the touches */
			pwrite_all(w, page, PGSZ, (off_t)((p + 600) * PGSZ));
		snprintf(what, sizeof(what), "page %zu", p);
		expect_range(what, b + p * PGSZ, want + p * PGSZ, PGSZ);
	}
	struct snapseg_stats st = stats(s);
	cr_assert_lt(st.faults, np / 8, "%llu faults for %zu pages: not batched",
		     (unsigned long long)st.faults, np);
	cr_assert_eq(st.bytes_loaded, len);
	close(w);
	snapseg_destroy(s);
	close(fd);
	free(want);
	free(page);
	free(run);
}
