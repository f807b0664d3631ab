// SPDX-License-Identifier: MIT
/*
 * Snapstore benchmarks, on a scratch directory under /dev/shm:
 *   pin      pin time against file size (sparse files, 4 KiB .. 4 GiB)
 *   cow      4 KiB write throughput without a snapshot, first overwrite with
 *            one, second overwrite of the same blocks; snapshot vs live read
 *   index    1,000,000 extents: snapshot-read lookup latency, reopen, release+GC
 *   bs       random 4 KiB writes under a snapshot at block sizes 4/16/64 KiB:
 *            bytes copied per byte written and index rows
 *   dir      lookups (meta, one file by path, isdir) and readdir of a 13-entry
 *            directory in snapshots of 13 .. 100,000 files: flat in n
 *   tree     tree pins against the number of files (bench_tree.c); 1,000 live
 *            tree snapshots
 * Usage: bench_store [pin|cow|index|bs|dir|tree]...  (none: all). Prints Markdown.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "snapstore.h"

static char root[256], src[300], sdir[300];
static int srcfd;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_store: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
	exit(1);
}

static int rm1(const char *p, const struct stat *sb, int f, struct FTW *w)
{
	(void)sb;
	(void)w;
	return f == FTW_DP ? rmdir(p) : unlink(p);
}

static struct store *fresh(uint32_t bs)
{
	nftw(sdir, rm1, 16, FTW_DEPTH | FTW_PHYS);
	struct store_opts o = {.block_size = bs, .create = 1};
	struct store *st;
	int rc = store_open(sdir, srcfd, &o, &st);
	if (rc)
		die("store_open", rc);
	return st;
}

static int mkfile(const char *name, off_t size, int fill)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", src, name);
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die(p, errno);
	if (fill) {
		static char buf[1 << 20];
		memset(buf, 0x5a, sizeof(buf));
		for (off_t o = 0; o < size; o += (off_t)sizeof(buf))
			if (pwrite(fd, buf, sizeof(buf), o) < 0)
				die("pwrite", errno);
	}
	if (ftruncate(fd, size))
		die("ftruncate", errno);
	return fd;
}

static uint64_t pin(struct store *st, struct store_file *sf, int fd, int kind)
{
	struct store_pin p = {.kind = kind};
	struct store_pin_file f = {sf, fd, "f"};
	uint64_t id;
	int rc = store_pin(st, &p, &f, 1, &id);
	if (rc)
		die("store_pin", rc);
	return id;
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void bench_pin(void)
{
	printf("\n### Pin time against file size (pinned snapshot, FULL sync, median of 51)\n\n"
	       "| file size | pin µs (median) | p90 µs |\n|---|---|---|\n");
	struct store *st = fresh(4096);
	for (uint64_t size = 4096; size <= (4ull << 30); size *= 16) {
		int fd = mkfile("p", (off_t)size, 0);
		if (pwrite(fd, "x", 1, (off_t)size - 1) != 1)
			die("pwrite", errno);
		struct store_file *sf;
		store_file_get(st, fd, &sf);
		double t[51];
		for (int i = 0; i < 51; i++) {
			double t0 = now();
			uint64_t id = pin(st, sf, fd, STORE_PINNED);
			t[i] = (now() - t0) * 1e6;
			store_release(st, id);
		}
		qsort(t, 51, sizeof(*t), cmpd);
		printf("| %llu KiB | %.1f | %.1f |\n", (unsigned long long)(size >> 10), t[25],
		       t[45]);
		store_file_put(sf);
		close(fd);
	}
	store_close(st);
}

/* Write the whole file in 4 KiB writes through the hook; returns MiB/s. */
static double write_pass(struct store_file *sf, int fd, size_t size)
{
	static char buf[4096];
	memset(buf, 0x33, sizeof(buf));
	double t0 = now();
	for (size_t o = 0; o < size; o += 4096) {
		if (sf) {
			store_file_wrlock(sf);
			int rc = store_cow_range(sf, fd, o, 4096);
			if (rc)
				die("cow", rc);
		}
		if (pwrite(fd, buf, 4096, (off_t)o) != 4096)
			die("pwrite", errno);
		if (sf)
			store_file_unlock_fd(sf, fd); /* as the daemon's gate does */
	}
	return (double)size / (1 << 20) / (now() - t0);
}

static void bench_cow(void)
{
	size_t size = 256u << 20;
	printf(
	    "\n### Copy-on-write cost: 256 MiB file, sequential 4 KiB writes through the hook\n\n"
	    "| case | MiB/s | ratio to no snapshot |\n|---|---|---|\n");
	struct store *st = fresh(4096);
	int fd = mkfile("c", (off_t)size, 1);
	struct store_file *sf;
	store_file_get(st, fd, &sf);
	double raw = write_pass(NULL, fd, size);
	double none = write_pass(sf, fd, size);
	uint64_t id = pin(st, sf, fd, STORE_PINNED);
	double first = write_pass(sf, fd, size);
	double second = write_pass(sf, fd, size);
	printf("| bare pwrite, no store | %.0f | %.2f |\n", raw, raw / none);
	printf("| hook, no snapshot | %.0f | 1.00 |\n", none);
	printf("| hook, pinned snapshot, first overwrite (copies) | %.0f | %.2f |\n", first,
	       first / none);
	printf("| hook, pinned snapshot, second overwrite (no copy) | %.0f | %.2f |\n", second,
	       second / none);
	uint64_t e1 = pin(st, sf, fd, STORE_EPHEMERAL);
	double eph = write_pass(sf, fd, size);
	printf("| hook, ephemeral snapshot, first overwrite (no fsync) | %.0f | %.2f |\n", eph,
	       eph / none);
	store_release(st, e1);

	/* read: the snapshot's blocks now all come from the store */
	static char buf[1 << 20];
	double t0 = now();
	for (size_t o = 0; o < size; o += sizeof(buf))
		if (store_snap_read(st, id, store_file_fid(sf), buf, sizeof(buf), o) != sizeof(buf))
			die("snap_read", EIO);
	double snap = (double)size / (1 << 20) / (now() - t0);
	t0 = now();
	for (size_t o = 0; o < size; o += sizeof(buf))
		if (pread(fd, buf, sizeof(buf), (off_t)o) != sizeof(buf))
			die("pread", errno);
	double live = (double)size / (1 << 20) / (now() - t0);
	uint64_t id2 = pin(st, sf, fd, STORE_PINNED); /* unchanged: served from the live file */
	t0 = now();
	for (size_t o = 0; o < size; o += sizeof(buf))
		if (store_snap_read(st, id2, store_file_fid(sf), buf, sizeof(buf), o) !=
		    sizeof(buf))
			die("snap_read", EIO);
	double snaplive = (double)size / (1 << 20) / (now() - t0);
	printf("\n### Snapshot read against live read (1 MiB reads, 256 MiB)\n\n"
	       "| read | MiB/s | ratio to live |\n|---|---|---|\n"
	       "| live pread | %.0f | 1.00 |\n"
	       "| snapshot, every block preserved in the store (%d one-block extents) | %.0f | "
	       "%.2f |\n"
	       "| snapshot, nothing changed since (all from the live file) | %.0f | %.2f |\n",
	       live, (int)(size / 4096), snap, snap / live, snaplive, snaplive / live);
	store_release(st, id);
	store_release(st, id2);
	store_file_put(sf);
	close(fd);
	store_close(st);
}

static void bench_index(void)
{
	const uint64_t N = 1000000;
	const uint32_t bs = 512;
	printf("\n### Index with 1,000,000 extents (block size 512, one file, one hook per "
	       "block)\n\n");
	struct store *st = fresh(bs);
	int fd = mkfile("i", (off_t)(N * bs), 1);
	struct store_file *sf;
	store_file_get(st, fd, &sf);
	uint64_t id = pin(st, sf, fd, STORE_PINNED);
	double t0 = now();
	char blk[512];
	memset(blk, 0x77, sizeof(blk));
	/* every block its own extent: one hook per block, in a scattered order */
	for (uint64_t i = 0; i < N; i++) {
		uint64_t b = (i * 7919) % N;
		store_file_wrlock(sf);
		int rc = store_cow_range(sf, fd, b * bs, bs);
		if (rc)
			die("cow", rc);
		if (pwrite(fd, blk, bs, (off_t)(b * bs)) != (ssize_t)bs)
			die("pwrite", errno);
		store_file_unlock(sf);
	}
	double build = now() - t0;
	struct store_stats s;
	store_stats(st, &s);
	uint64_t fid = store_file_fid(sf);
	/* random 4 KiB snapshot reads: 8 extents each */
	uint64_t r = 1;
	char buf[4096];
	int R = 100000;
	double *lat = malloc(sizeof(double) * (size_t)R);
	for (int i = 0; i < R; i++) {
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		uint64_t off = (r >> 20) % (N * bs / 4096) * 4096;
		double a = now();
		if (store_snap_read(st, id, fid, buf, sizeof(buf), off) != sizeof(buf))
			die("snap_read", EIO);
		lat[i] = (now() - a) * 1e6;
	}
	qsort(lat, (size_t)R, sizeof(*lat), cmpd);
	store_file_put(sf);
	t0 = now();
	store_close(st);
	double tclose = now() - t0;
	struct store_opts o = {0};
	t0 = now();
	int rc = store_open(sdir, srcfd, &o, &st);
	if (rc)
		die("reopen", rc);
	double topen = now() - t0;
	t0 = now();
	rc = store_release(st, id);
	if (rc)
		die("release", rc);
	double trel = now() - t0;
	struct store_stats s2;
	store_stats(st, &s2);
	printf(
	    "| measure | value |\n|---|---|\n"
	    "| extents built | %llu (in %.1f s: %.1f µs per hook with a copy and a FULL commit) |\n"
	    "| index + WAL + block file on disk | %.0f MiB |\n"
	    "| random 4 KiB snapshot read (8 extents), p50 / p99 | %.1f / %.1f µs |\n"
	    "| store_close (record stats) | %.2f s |\n"
	    "| store_open (recovery scan of every extent, allocator rebuild) | %.2f s |\n"
	    "| store_release of the snapshot + GC of 1M extents + punching | %.2f s |\n"
	    "| extents left / bytes preserved after | %llu / %llu |\n",
	    (unsigned long long)s.extents, build, build / (double)N * 1e6,
	    (double)s.bytes_on_disk / (1 << 20), lat[R / 2], lat[R * 99 / 100], tclose, topen, trel,
	    (unsigned long long)s2.extents, (unsigned long long)s2.bytes_preserved);
	free(lat);
	close(fd);
	store_close(st);
}

static void bench_bs(void)
{
	size_t size = 256u << 20;
	int W = 20000;
	printf("\n### Block size: %d random 4 KiB writes into a 256 MiB file under a pinned "
	       "snapshot\n\n"
	       "| block size | µs per write | bytes copied per byte written | index rows | "
	       "index+WAL+blocks MiB |\n"
	       "|---|---|---|---|---|\n",
	       W);
	for (uint32_t bs = 4096; bs <= 65536; bs *= 4) {
		struct store *st = fresh(bs);
		int fd = mkfile("b", (off_t)size, 1);
		struct store_file *sf;
		store_file_get(st, fd, &sf);
		uint64_t id = pin(st, sf, fd, STORE_PINNED);
		static char buf[4096];
		uint64_t r = 3;
		double t0 = now();
		for (int i = 0; i < W; i++) {
			r = r * 6364136223846793005ull + 1442695040888963407ull;
			uint64_t off = (r >> 20) % (size / 4096) * 4096;
			store_file_wrlock(sf);
			int rc = store_cow_range(sf, fd, off, 4096);
			if (rc)
				die("cow", rc);
			if (pwrite(fd, buf, 4096, (off_t)off) != 4096)
				die("pwrite", errno);
			store_file_unlock(sf);
		}
		double t = (now() - t0) / W * 1e6;
		struct store_stats s;
		store_stats(st, &s);
		printf("| %u KiB | %.1f | %.2f | %llu | %.1f |\n", bs >> 10, t,
		       (double)s.cow_bytes / ((double)W * 4096), (unsigned long long)s.extents,
		       (double)s.bytes_on_disk / (1 << 20));
		store_release(st, id);
		store_file_put(sf);
		close(fd);
		store_close(st);
	}
}

static int count_ent(void *arg, const char *name, int is_dir, uint64_t fid, const struct stat *st)
{
	(void)name, (void)is_dir, (void)fid, (void)st;
	++*(int *)arg;
	return 0;
}

static double median(double *t, int n)
{
	qsort(t, (size_t)n, sizeof(*t), cmpd);
	return t[n / 2];
}

/* A snapshot of n paths: the 13 files of directory d, the rest spread over
 * t/NNN/. Then the view's per-request costs, median of 2,001. */
static void bench_dir(void)
{
	printf("\n### Snapshot view lookups against snapshot size (median of 2,001, µs)\n\n"
	       "| files in snapshot | store_snap_meta | store_snap_file d/e07 | "
	       "store_snap_isdir d | readdir d (13 entries) | store_snap_get (old lookup) |\n"
	       "|---|---|---|---|---|---|\n");
	static const int sizes[] = {13, 10000, 100000};
	for (size_t k = 0; k < sizeof(sizes) / sizeof(*sizes); k++) {
		int n = sizes[k];
		struct store *st = fresh(4096);
		int fd = mkfile("f", 4096, 1);
		struct store_file *sf;
		store_file_get(st, fd, &sf);
		struct store_pin_file *pf = calloc((size_t)n, sizeof(*pf));
		char(*names)[32] = calloc((size_t)n, sizeof(*names));
		for (int i = 0; i < n; i++) {
			if (i < 13)
				snprintf(names[i], sizeof(names[i]), "d/e%02d", i);
			else
				snprintf(names[i], sizeof(names[i]), "t/%03d/%06d", i % 997, i);
			pf[i] = (struct store_pin_file){sf, fd, names[i]};
		}
		struct store_pin p = {.kind = STORE_PINNED};
		uint64_t id;
		int rc = store_pin(st, &p, pf, (size_t)n, &id);
		if (rc)
			die("store_pin", rc);
		enum { R = 2001 };
		static double t[5][R];
		char pb[256];
		for (int r = 0; r < R; r++) {
			struct store_snap_meta m;
			struct store_snap_file f;
			int cnt = 0;
			double t0 = now();
			if (store_snap_meta(st, id, &m))
				die("meta", EIO);
			double t1 = now();
			if (store_snap_file(st, id, "d/e07", &f, pb, sizeof(pb)))
				die("snap_file", EIO);
			double t2 = now();
			if (store_snap_isdir(st, id, "d") != 1)
				die("isdir", EIO);
			double t3 = now();
			if (store_snap_readdir(st, id, "d", NULL, count_ent, &cnt) || cnt != 13)
				die("readdir", EIO);
			double t4 = now();
			t[0][r] = (t1 - t0) * 1e6;
			t[1][r] = (t2 - t1) * 1e6;
			t[2][r] = (t3 - t2) * 1e6;
			t[3][r] = (t4 - t3) * 1e6;
		}
		/* The old lookup, apart: its scan would evict the caches the others use. */
		for (int r = 0; r < 21; r++) {
			struct store_snap s;
			double t5 = now();
			store_snap_get(st, id, &s);
			t[4][r] = (now() - t5) * 1e6;
		}
		printf("| %d | %.2f | %.1f | %.1f | %.1f | %.0f |\n", n, median(t[0], R),
		       median(t[1], R), median(t[2], R), median(t[3], R), median(t[4], 21));
		fflush(stdout);
		store_release(st, id);
		store_file_put(sf);
		close(fd);
		store_close(st);
		free(pf);
		free(names);
	}
}

/* For bench_tree.c. */
char bt_src[300], bt_sdir[300];
int bt_srcfd;
void bench_tree(void);
struct store *bt_fresh(uint32_t bs);
double bt_now(void);
void bt_die(const char *what, int rc);
struct store *bt_fresh(uint32_t bs)
{
	return fresh(bs);
}
double bt_now(void)
{
	return now();
}
void bt_die(const char *what, int rc)
{
	die(what, rc);
}

int main(int argc, char **argv)
{
	snprintf(root, sizeof(root), "/dev/shm/snapfs-bench-store-XXXXXX");
	if (!mkdtemp(root))
		die("mkdtemp", errno);
	snprintf(src, sizeof(src), "%s/src", root);
	snprintf(sdir, sizeof(sdir), "%s/store", root);
	mkdir(src, 0755);
	srcfd = open(src, O_DIRECTORY | O_RDONLY);
	bt_srcfd = srcfd;
	snprintf(bt_src, sizeof(bt_src), "%s", src);
	snprintf(bt_sdir, sizeof(bt_sdir), "%s", sdir);
	int all = argc < 2;
	for (int i = 1; i < argc || all; i++) {
		const char *w = all ? NULL : argv[i];
		if (all || !strcmp(w, "pin"))
			bench_pin();
		if (all || !strcmp(w, "cow"))
			bench_cow();
		if (all || !strcmp(w, "bs"))
			bench_bs();
		if (all || !strcmp(w, "index"))
			bench_index();
		if (all || !strcmp(w, "dir"))
			bench_dir();
		if (all || !strcmp(w, "tree"))
			bench_tree();
		if (all)
			break;
	}
	close(srcfd);
	nftw(root, rm1, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}
