// SPDX-License-Identifier: MIT
/*
 * preadbench: snapfs_pread() against pread() on one file through a snapfs
 * mount, side by side in one run: 4 KiB reads at random page-aligned
 * offsets (from the page cache for pread, a daemon request for
 * snapfs_pread) and 1 MiB reads at random 1 MiB-aligned offsets, each also
 * against a pread of an O_DIRECT descriptor (one daemon request per call,
 * no page cache). Medians of REPS runs of N calls each; per-call times.
 * usage: preadbench MNT [SIZE_MIB] [REPS]    (defaults 256, 5)
 */
#include <snapfs.h>

#include <err.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

enum { PLAIN, DIRECT, SNAP };

/* Seconds per call of n reads of len bytes at random multiples of len. */
static double run(int how, int fd, int dfd, char *buf, size_t len, size_t size, int n)
{
	double t0 = now();
	for (int i = 0; i < n; i++) {
		off_t off = (off_t)((rnd() % (size / len)) * len);
		ssize_t k = how == SNAP	    ? snapfs_pread(fd, buf, len, off)
			    : how == DIRECT ? pread(dfd, buf, len, off)
					    : pread(fd, buf, len, off);
		if (k != (ssize_t)len)
			err(1, "read %d of %zu at %lld: %zd", how, len, (long long)off, k);
	}
	return (now() - t0) / n;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		errx(2, "usage: preadbench MNT [SIZE_MIB] [REPS]");
	size_t size = (argc > 2 ? strtoul(argv[2], NULL, 10) : 256) << 20;
	int reps = argc > 3 ? atoi(argv[3]) : 5;
	if (reps < 1 || reps > 15 || size < (4u << 20))
		errx(2, "bad SIZE_MIB (at least 4) or REPS (1 to 15)");
	char path[4096];
	snprintf(path, sizeof(path), "%s/preadbench.dat", argv[1]);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		err(1, "%s", path);
	char *buf = aligned_alloc(4096, 1 << 20);
	for (size_t off = 0; off < size; off += 1 << 20) {
		for (size_t i = 0; i < (1 << 20); i += 8)
			*(uint64_t *)(buf + i) = rnd();
		if (pwrite(fd, buf, 1 << 20, (off_t)off) != 1 << 20)
			err(1, "write");
	}
	/* Read through a read-only open, the writer closed: a file open for
	 * writing makes each snapfs_pread wait for write(2) calls to end. */
	close(fd);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		err(1, "%s", path);
	int dfd = open(path, O_RDONLY | O_DIRECT);
	if (dfd < 0)
		err(1, "O_DIRECT open");
	/* warm the page cache for the plain reads */
	for (size_t off = 0; off < size; off += 1 << 20)
		if (pread(fd, buf, 1 << 20, (off_t)off) != 1 << 20)
			err(1, "pread");
	const size_t lens[2] = {4096, 1 << 20};
	const int calls[2] = {4000, 64};
	double t[2][3][15];
	for (int r = 0; r < reps; r++)
		for (int l = 0; l < 2; l++)
			for (int how = 0; how < 3; how++)
				t[l][how][r] = run(how, fd, dfd, buf, lens[l], size, calls[l]);
	printf("file %zu MiB through %s, %d runs, medians, per call\n\n", size >> 20, argv[1],
	       reps);
	printf("| read | pread (page cache) | pread O_DIRECT (1 request) | snapfs_pread | "
	       "snapfs_pread / pread | snapfs_pread / O_DIRECT |\n|---|---|---|---|---|---|\n");
	for (int l = 0; l < 2; l++) {
		double p = median(t[l][PLAIN], reps), d = median(t[l][DIRECT], reps),
		       s = median(t[l][SNAP], reps);
		printf("| %s random | %.1f us | %.1f us | %.1f us | %.2fx | %.2fx |\n",
		       l ? "1 MiB" : "4 KiB", p * 1e6, d * 1e6, s * 1e6, s / p, s / d);
	}
	close(dfd);
	close(fd);
	unlink(path);
	free(buf);
	return 0;
}
