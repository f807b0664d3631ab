// SPDX-License-Identifier: MIT
/*
 * segbench: the deferred-I/O segment against plain I/O on one file through
 * a snapfs mount, side by side in one run (ratios; medians of REPS runs).
 *  1. snapseg_read + touch 1% of the pages at random, vs pread of the whole
 *     file + touch the same pages;
 *  2. snapseg_read + touch every page in order, vs pread of the whole;
 *  3. change 1% of the pages and snapseg_write back, vs pwrite of the whole;
 *  4. snapfs_map + touch every page, vs mmap MAP_PRIVATE of the live file
 *     through the mount and of a file on bare tmpfs.
 * The live file's page cache is dropped (POSIX_FADV_DONTNEED) before each
 * plain run; each snapshot is a new view file, so its cache starts cold.
 * usage: segbench MNT [SIZE_MIB] [REPS]    (defaults 1024, 3)
 */
#include <snapfs.h>

#include <err.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PG 4096UL

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return rng;
}

static void make_file(const char *path, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		err(1, "%s", path);
	char *buf = malloc(1 << 20);
	for (size_t off = 0; off < size; off += 1 << 20) {
		for (size_t i = 0; i < (1 << 20); i += 8)
			*(uint64_t *)(buf + i) = rnd();
		if (pwrite(fd, buf, 1 << 20, (off_t)off) != 1 << 20)
			err(1, "write %s", path);
	}
	free(buf);
	close(fd);
}

static void cold(int fd)
{
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
}

/* Root only, best effort: a full page cache makes every run pay reclaim. */
static void drop_caches(void)
{
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
	if (fd >= 0) {
		sync();
		if (write(fd, "3", 1) != 1)
			warn("drop_caches");
		close(fd);
	}
}

static void pread_all(int fd, char *buf, size_t size)
{
	for (size_t off = 0; off < size;) {
		ssize_t k =
		    pread(fd, buf + off, size - off > (8 << 20) ? 8 << 20 : size - off, (off_t)off);
		if (k <= 0)
			err(1, "pread");
		off += (size_t)k;
	}
}

static void pwrite_all(int fd, const char *buf, size_t size)
{
	for (size_t off = 0; off < size;) {
		ssize_t k = pwrite(fd, buf + off, size - off > (8 << 20) ? 8 << 20 : size - off,
				   (off_t)off);
		if (k <= 0)
			err(1, "pwrite");
		off += (size_t)k;
	}
}

static volatile uint64_t sink;
static void touch(const char *b, const size_t *pages, size_t n)
{
	uint64_t s = 0;
	for (size_t i = 0; i < n; i++)
		s += (unsigned char)b[pages[i] * PG + 1];
	sink += s;
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmpd);
	return v[n / 2];
}

int main(int argc, char **argv)
{
	if (argc < 2)
		errx(2, "usage: segbench MNT [SIZE_MIB] [REPS]");
	size_t size = (argc > 2 ? strtoul(argv[2], NULL, 10) : 1024) << 20;
	int reps = argc > 3 ? atoi(argv[3]) : 3;
	if (reps < 1 || reps > 15 || size == 0)
		errx(2, "bad SIZE_MIB or REPS");
	char path[4096], plain[4096];
	snprintf(path, sizeof(path), "%s/segbench.dat", argv[1]);
	snprintf(plain, sizeof(plain), "/dev/shm/segbench-plain-%d.dat", (int)getpid());
	make_file(path, size);
	make_file(plain, size);
	int fd = open(path, O_RDWR);
	int pfd = open(plain, O_RDONLY);
	if (fd < 0 || pfd < 0)
		err(1, "open");
	size_t np = size / PG, nr = np / 100;
	size_t *rp = malloc(nr * sizeof(*rp)), *all = malloc(np * sizeof(*all));
	for (size_t i = 0; i < nr; i++)
		rp[i] = rnd() % np;
	for (size_t i = 0; i < np; i++)
		all[i] = i;
	char *buf = malloc(size);
	memset(buf, 1, size);
	struct snapseg *seg = snapseg_create(size);
	if (!seg)
		err(1, "snapseg_create");
	char *b = snapseg_base(seg);
	double t[10][15];
	struct snapseg_stats st0, st1;
	uint64_t loaded_rand = 0, loaded_seq = 0, written = 0, skipped = 0, faults_seq = 0;
	for (int r = 0; r < reps; r++) {
		double t0;
		drop_caches();
		/* 1: 1% random */
		cold(fd);
		t0 = now();
		pread_all(fd, buf, size);
		touch(buf, rp, nr);
		t[0][r] = now() - t0;
		/* The segment starts empty, as the plain buffer starts without
		 * the file's bytes: dropping the previous case's pages (all of
		 * them resident after the sequential case) is timed apart. */
		t0 = now();
		snapseg_discard(seg, b, size);
		t[9][r] = now() - t0;
		snapseg_stats(seg, &st0);
		t0 = now();
		if (snapseg_read(seg, b, fd, size, 0) != (ssize_t)size)
			err(1, "snapseg_read");
		touch(b, rp, nr);
		t[1][r] = now() - t0;
		snapseg_stats(seg, &st1);
		loaded_rand = st1.bytes_loaded - st0.bytes_loaded;
		/* 2: 100% sequential */
		cold(fd);
		t0 = now();
		pread_all(fd, buf, size);
		touch(buf, all, np);
		t[2][r] = now() - t0;
		snapseg_discard(seg, b, size);
		snapseg_stats(seg, &st0);
		t0 = now();
		if (snapseg_read(seg, b, fd, size, 0) != (ssize_t)size)
			err(1, "snapseg_read");
		touch(b, all, np);
		t[3][r] = now() - t0;
		snapseg_stats(seg, &st1);
		loaded_seq = st1.bytes_loaded - st0.bytes_loaded;
		faults_seq = st1.faults - st0.faults;
		/* the consistent eager baseline: pread of a frozen descriptor */
		int ffd = open(path, O_RDONLY);
		t0 = now();
		if (ffd < 0 || snapfs_freeze(ffd, NULL))
			err(1, "snapfs_freeze");
		pread_all(ffd, buf, size);
		touch(buf, all, np);
		t[8][r] = now() - t0;
		close(ffd);
		/* 3: change 1% and write back. The plain pwrite runs with no
		 * snapshot held (the segment's is discarded first). */
		snapseg_discard(seg, b, size);
		t0 = now();
		pwrite_all(fd, buf, size);
		t[4][r] = now() - t0;
		if (snapseg_read(seg, b, fd, size, 0) != (ssize_t)size)
			err(1, "snapseg_read");
		for (size_t i = 0; i < nr; i++)
			b[rp[i] * PG + 5]++;
		snapseg_stats(seg, &st0);
		t0 = now();
		if (snapseg_write(seg, b, fd, size, 0) != (ssize_t)size)
			err(1, "snapseg_write");
		t[5][r] = now() - t0;
		snapseg_stats(seg, &st1);
		written = st1.pages_written - st0.pages_written;
		skipped = st1.pages_skipped - st0.pages_skipped;
		/* 4: maps, touch all */
		cold(fd);
		t0 = now();
		char *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, pfd, 0);
		if (m == MAP_FAILED)
			err(1, "mmap");
		touch(m, all, np);
		munmap(m, size);
		t[6][r] = now() - t0;
		t0 = now();
		m = snapfs_map(fd, 0, size, NULL);
		if (!m)
			err(1, "snapfs_map");
		touch(m, all, np);
		snapfs_unmap(m, size);
		t[7][r] = now() - t0;
	}
	double md[10];
	for (int i = 0; i < 10; i++)
		md[i] = median(t[i], reps);
	printf("file %zu MiB through %s, %d runs, medians\n\n", size >> 20, argv[1], reps);
	printf("| case | plain | segment | ratio | goal |\n|---|---|---|---|---|\n");
	printf(
	    "| read + touch 1%% random (%zu pages) | pread %.3f s | snapseg %.4f s | %.1fx faster "
	    "| >= 20x |\n",
	    nr, md[0], md[1], md[0] / md[1]);
	printf("| read + touch 100%% sequential | pread %.3f s | snapseg %.3f s | %.2fx slower | "
	       "<= 1.5x |\n",
	       md[2], md[3], md[3] / md[2]);
	printf("| read + touch 100%% sequential | pread of a frozen fd %.3f s | snapseg %.3f s | "
	       "%.2fx slower | - |\n",
	       md[8], md[3], md[3] / md[8]);
	printf("| change 1%% and write back | pwrite %.3f s | snapseg_write %.4f s | %.1fx faster "
	       "| >= 20x |\n",
	       md[4], md[5], md[4] / md[5]);
	printf("| map + touch all | mmap tmpfs file %.3f s | snapfs_map %.3f s | %.2fx slower | - "
	       "|\n",
	       md[6], md[7], md[7] / md[6]);
	printf("\nloaded by the 1%% touch: %llu bytes (%.2f%% of the file); sequential: %llu "
	       "faults for %zu pages\n",
	       (unsigned long long)loaded_rand, 100.0 * (double)loaded_rand / (double)size,
	       (unsigned long long)faults_seq, np);
	printf("dropping the segment's resident pages before a case (snapseg_discard of %zu "
	       "MiB, all resident): %.4f s\n",
	       size >> 20, md[9]);
	printf("loaded by the sequential touch: %llu bytes; write-back: %llu pages written, %llu "
	       "skipped\n",
	       (unsigned long long)loaded_seq, (unsigned long long)written,
	       (unsigned long long)skipped);
	snapseg_destroy(seg);
	close(fd);
	close(pfd);
	unlink(plain);
	unlink(path);
	free(buf);
	free(rp);
	free(all);
	return 0;
}
