// SPDX-License-Identifier: MIT
/*
 * segbench: the deferred-I/O segment against plain I/O on one file through
 * a snapfs mount, side by side in one run (ratios; medians of REPS runs).
 *  1. snapseg_read + touch 1% of the pages at random, vs pread of the whole
 *     file + touch the same pages;
 *  2. snapseg_read + touch every page in order, vs pread of the whole;
 *  3. change 1% of the pages and snapseg_write back, vs pwrite of the whole;
 *  4. snapfs_map + touch every page, vs mmap MAP_PRIVATE of the live file
 *     through the mount and of a file on bare tmpfs;
 *  5. the changed file: snapseg_read, then the whole file overwritten
 *     (untimed), then touch every page / 1% at random (every fill then
 *     comes from preserved blocks through the snapshot), vs pread of the
 *     same-size file into freshly mapped memory and into a reused buffer;
 *     sampled bytes are checked to be the read-time ones.
 * The live file's page cache is dropped (POSIX_FADV_DONTNEED) before each
 * plain run; each snapshot is a new view file, so its cache starts cold.
 * -l starts a CPU-bound process (a spinning child) for the whole run.
 * -c LIST runs only the listed cases (rand,seq,write,map,changed, or one half
 * of changed: changed-all, changed-rand).
 * usage: segbench [-l] [-c LIST] MNT [SIZE_MIB] [REPS]    (defaults 1024, 3)
 */
#include <snapfs.h>

#include <err.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
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

/* A CPU-bound process beside the benchmark: it spins until killed, and
 * dies with its parent. */
static pid_t start_spinner(void)
{
	pid_t pid = fork();
	if (pid < 0)
		err(1, "fork");
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (volatile uint64_t x = 0;; x++)
			;
	}
	return pid;
}

/* Overwrite the whole file with new random bytes (not timed). */
static void overwrite(int fd, char *tmp, size_t size)
{
	for (size_t off = 0; off < size; off += 1 << 20) {
		for (size_t i = 0; i < (1 << 20); i += 8)
			*(uint64_t *)(tmp + i) = rnd();
		if (pwrite(fd, tmp, 1 << 20, (off_t)off) != 1 << 20)
			err(1, "overwrite");
	}
}

#define NSAMPLE 64

/* The changed-file case: snapseg_read, the whole file overwritten, then
 * n touches; seconds for the read and the touches. Checks sampled bytes. */
static double seg_changed(struct snapseg *seg, int fd, size_t size, const size_t *pages, size_t n,
			  char *tmp, struct snapseg_stats *d)
{
	char *b = snapseg_base(seg);
	snapseg_discard(seg, b, size);
	size_t np = size / PG, at[NSAMPLE];
	unsigned char want[NSAMPLE];
	for (int i = 0; i < NSAMPLE; i++) {
		at[i] = pages[rnd() % n] * PG + rnd() % PG;
		if (pread(fd, &want[i], 1, (off_t)at[i]) != 1)
			err(1, "pread");
	}
	(void)np;
	struct snapseg_stats a, z;
	double t0 = now();
	if (snapseg_read(seg, b, fd, size, 0) != (ssize_t)size)
		err(1, "snapseg_read");
	double tr = now() - t0;
	overwrite(fd, tmp, size);
	if (getenv("SEGBENCH_SETTLE"))
		sleep(2);
	snapseg_stats(seg, &a);
	t0 = now();
	touch(b, pages, n);
	double tt = now() - t0;
	snapseg_stats(seg, &z);
	for (int i = 0; i < NSAMPLE; i++)
		if ((unsigned char)b[at[i]] != want[i])
			errx(1, "changed file: byte %zu shows 0x%02x, read time had 0x%02x", at[i],
			     (unsigned char)b[at[i]], want[i]);
	d->faults = z.faults - a.faults;
	d->bytes_loaded = z.bytes_loaded - a.bytes_loaded;
	snapseg_discard(seg, b, size); /* the snapshot goes, and its preserved blocks */
	return tr + tt;
}

/* pread of the whole file into freshly mapped memory, then n touches. */
static double pread_fresh(int fd, size_t size, const size_t *pages, size_t n)
{
	cold(fd);
	double t0 = now();
	char *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		err(1, "mmap");
	pread_all(fd, m, size);
	touch(m, pages, n);
	double t = now() - t0;
	munmap(m, size);
	return t;
}

enum { C_RAND = 1, C_SEQ = 2, C_WRITE = 4, C_MAP = 8, C_CHALL = 16, C_CHRAND = 32 };
#define C_CHANGED (C_CHALL | C_CHRAND)

static unsigned parse_cases(char *list)
{
	unsigned c = 0;
	for (char *t = strtok(list, ","); t; t = strtok(NULL, ","))
		if (!strcmp(t, "rand"))
			c |= C_RAND;
		else if (!strcmp(t, "seq"))
			c |= C_SEQ;
		else if (!strcmp(t, "write"))
			c |= C_WRITE;
		else if (!strcmp(t, "map"))
			c |= C_MAP;
		else if (!strcmp(t, "changed"))
			c |= C_CHANGED;
		else if (!strcmp(t, "changed-all"))
			c |= C_CHALL;
		else if (!strcmp(t, "changed-rand"))
			c |= C_CHRAND;
		else
			errx(2,
			     "-c: unknown case %s "
			     "(rand,seq,write,map,changed,changed-all,changed-rand)",
			     t);
	return c;
}

int main(int argc, char **argv)
{
	unsigned cases = C_RAND | C_SEQ | C_WRITE | C_MAP | C_CHANGED;
	bool load = false;
	int opt;
	while ((opt = getopt(argc, argv, "lc:")) != -1)
		if (opt == 'l')
			load = true;
		else if (opt == 'c')
			cases = parse_cases(optarg);
		else
			errx(2, "usage: segbench [-l] [-c LIST] MNT [SIZE_MIB] [REPS]");
	argc -= optind - 1;
	argv += optind - 1;
	if (argc < 2)
		errx(2, "usage: segbench [-l] [-c LIST] MNT [SIZE_MIB] [REPS]");
	size_t size = (argc > 2 ? strtoul(argv[2], NULL, 10) : 1024) << 20;
	int reps = argc > 3 ? atoi(argv[3]) : 3;
	if (reps < 1 || reps > 15 || size == 0)
		errx(2, "bad SIZE_MIB or REPS");
	char path[4096], plain[4096];
	snprintf(path, sizeof(path), "%s/segbench.dat", argv[1]);
	snprintf(plain, sizeof(plain), "/dev/shm/segbench-plain-%d.dat", (int)getpid());
	make_file(path, size);
	if (cases & C_MAP)
		make_file(plain, size);
	int fd = open(path, O_RDWR);
	int pfd = (cases & C_MAP) ? open(plain, O_RDONLY) : -2;
	if (fd < 0 || pfd == -1)
		err(1, "open");
	pid_t spinner = load ? start_spinner() : 0;
	size_t np = size / PG, nr = np / 100;
	size_t *rp = malloc(nr * sizeof(*rp)), *all = malloc(np * sizeof(*all));
	for (size_t i = 0; i < nr; i++)
		rp[i] = rnd() % np;
	for (size_t i = 0; i < np; i++)
		all[i] = i;
	char *buf = malloc(size), *tmp = malloc(1 << 20);
	memset(buf, 1, size);
	struct snapseg *seg = snapseg_create(size);
	if (!seg)
		err(1, "snapseg_create");
	char *b = snapseg_base(seg);
	double t[16][15];
	memset(t, 0, sizeof(t));
	struct snapseg_stats st0, st1, chg_all = {0}, chg_rand = {0};
	uint64_t loaded_rand = 0, loaded_seq = 0, written = 0, skipped = 0, faults_seq = 0;
	for (int r = 0; r < reps; r++) {
		double t0;
		drop_caches();
		if (cases & C_RAND) {
			/* 1: 1% random */
			cold(fd);
			t0 = now();
			pread_all(fd, buf, size);
			touch(buf, rp, nr);
			t[0][r] = now() - t0;
			/* The segment starts empty, as the plain buffer starts
			 * without the file's bytes: dropping the previous case's
			 * pages (all of them resident after the sequential case)
			 * is timed apart. */
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
		}
		if (cases & C_SEQ) {
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
		}
		if (cases & C_WRITE) {
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
		}
		if (cases & C_MAP) {
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
		if (cases & C_CHANGED) {
			/* 5: the changed file, against pread into fresh and into
			 * reused memory (the same-size live file) */
			t[10][r] = pread_fresh(fd, size, all, np);
			cold(fd);
			t0 = now();
			pread_all(fd, buf, size);
			touch(buf, all, np);
			t[11][r] = now() - t0;
			if (cases & C_CHALL)
				t[12][r] = seg_changed(seg, fd, size, all, np, tmp, &chg_all);
			if (cases & C_CHRAND)
				t[13][r] = seg_changed(seg, fd, size, rp, nr, tmp, &chg_rand);
		}
	}
	double md[16];
	for (int i = 0; i < 16; i++)
		md[i] = median(t[i], reps);
	printf("file %zu MiB through %s, %d runs, medians%s\n\n", size >> 20, argv[1], reps,
	       load ? ", beside a CPU-bound process" : "");
	printf("| case | plain | segment | ratio | goal |\n|---|---|---|---|---|\n");
	if (cases & C_RAND)
		printf("| read + touch 1%% random (%zu pages) | pread %.3f s | snapseg %.4f s | "
		       "%.1fx faster | >= 20x |\n",
		       nr, md[0], md[1], md[0] / md[1]);
	if (cases & C_SEQ) {
		printf("| read + touch 100%% sequential | pread %.3f s | snapseg %.3f s | %.2fx "
		       "slower | <= 1.5x |\n",
		       md[2], md[3], md[3] / md[2]);
		printf("| read + touch 100%% sequential | pread of a frozen fd %.3f s | snapseg "
		       "%.3f s | %.2fx slower | - |\n",
		       md[8], md[3], md[3] / md[8]);
	}
	if (cases & C_WRITE)
		printf("| change 1%% and write back | pwrite %.3f s | snapseg_write %.4f s | %.1fx "
		       "faster | >= 20x |\n",
		       md[4], md[5], md[4] / md[5]);
	if (cases & C_MAP)
		printf("| map + touch all | mmap tmpfs file %.3f s | snapfs_map %.3f s | %.2fx "
		       "slower | - |\n",
		       md[6], md[7], md[7] / md[6]);
	if (cases & C_CHANGED) {
		printf("| changed file: read, overwrite, touch all | pread into fresh memory %.3f "
		       "s | snapseg %.3f s | %.2fx slower | <= 1.5x |\n",
		       md[10], md[12], md[12] / md[10]);
		printf("| changed file: read, overwrite, touch all | pread into a reused buffer "
		       "%.3f s | snapseg %.3f s | %.2fx slower | - |\n",
		       md[11], md[12], md[12] / md[11]);
		printf("| changed file: read, overwrite, touch 1%% random | pread into fresh "
		       "memory %.3f s | snapseg %.4f s | %.1fx faster | >= 20x |\n",
		       md[10], md[13], md[10] / md[13]);
		printf("| changed file: read, overwrite, touch 1%% random | pread into a reused "
		       "buffer %.3f s | snapseg %.4f s | %.1fx faster | - |\n",
		       md[11], md[13], md[11] / md[13]);
	}
	printf("\n");
	if (cases & C_RAND)
		printf("loaded by the 1%% touch: %llu bytes (%.2f%% of the file); dropping the "
		       "segment's resident pages before a case (snapseg_discard of %zu MiB): "
		       "%.4f s\n",
		       (unsigned long long)loaded_rand, 100.0 * (double)loaded_rand / (double)size,
		       size >> 20, md[9]);
	if (cases & C_SEQ)
		printf("sequential: %llu faults for %zu pages, %llu bytes loaded\n",
		       (unsigned long long)faults_seq, np, (unsigned long long)loaded_seq);
	if (cases & C_WRITE)
		printf("write-back: %llu pages written, %llu skipped\n",
		       (unsigned long long)written, (unsigned long long)skipped);
	if (cases & C_CHANGED)
		printf("changed file (last run): touch all %llu faults, %llu bytes loaded; "
		       "1%% random %llu faults, %llu bytes loaded\n",
		       (unsigned long long)chg_all.faults, (unsigned long long)chg_all.bytes_loaded,
		       (unsigned long long)chg_rand.faults,
		       (unsigned long long)chg_rand.bytes_loaded);
	if (spinner) {
		kill(spinner, SIGKILL);
		waitpid(spinner, NULL, 0);
	}
	snapseg_destroy(seg);
	close(fd);
	if (pfd >= 0)
		close(pfd);
	unlink(plain);
	unlink(path);
	free(buf);
	free(tmp);
	free(rp);
	free(all);
	return 0;
}
