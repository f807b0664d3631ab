// SPDX-License-Identifier: MIT
/*
 * treebench: the cost of tree snapshots (issue 10) on a live snapfs mount.
 * It makes two trees through the mount, MNT/treebench.PID/small (10 files)
 * and .../big (NFILES files, default 100,000, in directories of 100 with
 * a few empty directories and symlinks), then measures:
 *   - pin -r of each (median of several pins, each released), and the
 *     ratio big/small: O(1) tree pins give about 1;
 *   - a find-like walk (nftw, lstat of every entry) and a du-like walk
 *     (the same, summing st_blocks) of the live big tree and of its
 *     snapshot MNT/.snapshots/ID/..., and the ratio view/live (the issue
 *     asks for at most 2).
 * A step that fails (a pin that cannot be taken) is reported and the rest
 * goes on. The trees are removed at the end.
 * usage: treebench MNT [NFILES]
 */
#include <snapfs.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void put(const char *path, long i)
{
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "file %ld\n", i);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, buf, (size_t)n) != n)
		err(1, "%s", path);
	close(fd);
}

static void make_tree(const char *root, long n)
{
	char p[4200];
	if (mkdir(root, 0755))
		err(1, "mkdir %s", root);
	for (long i = 0; i < n; i++) {
		if (i % 100 == 0) {
			snprintf(p, sizeof(p), "%s/d%ld", root, i / 100);
			if (mkdir(p, 0755))
				err(1, "mkdir %s", p);
			if (i % 1000 == 0) {
				snprintf(p, sizeof(p), "%s/d%ld/empty", root, i / 100);
				mkdir(p, 0700);
				snprintf(p, sizeof(p), "%s/d%ld/link", root, i / 100);
				if (symlink("f0", p))
					err(1, "symlink %s", p);
			}
		}
		snprintf(p, sizeof(p), "%s/d%ld/f%ld", root, i / 100, i % 100);
		put(p, i);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Median of reps pins of path (each released); -1 when a pin fails. */
static double pin_ms(const char *mnt, const char *path, int reps)
{
	double t[64];
	for (int i = 0; i < reps; i++) {
		uint64_t id;
		double t0 = now_ms();
		if (snapfs_pin_ex(&path, 1, "treebench", SNAPFS_RECURSIVE, 0, &id)) {
			warn("pin -r %s", path);
			return -1;
		}
		t[i] = now_ms() - t0;
		if (snapfs_release(mnt, id))
			warn("release %" PRIu64, id);
	}
	qsort(t, (size_t)reps, sizeof(t[0]), cmp_double);
	return t[reps / 2];
}

static long entries;
static long long blocks;

static int find_cb(const char *p, const struct stat *st, int type, struct FTW *f)
{
	(void)p, (void)st, (void)type, (void)f;
	entries++;
	return 0;
}

static int du_cb(const char *p, const struct stat *st, int type, struct FTW *f)
{
	(void)p, (void)type, (void)f;
	entries++;
	blocks += st->st_blocks;
	return 0;
}

/* Best of reps walks of root, in ms (entries in *n). */
static double walk_ms(const char *root, int du, int reps, long *n)
{
	double best = -1;
	for (int i = 0; i < reps; i++) {
		entries = 0;
		blocks = 0;
		double t0 = now_ms();
		if (nftw(root, du ? du_cb : find_cb, 64, FTW_PHYS)) {
			warn("walk %s", root);
			return -1;
		}
		double t = now_ms() - t0;
		if (best < 0 || t < best)
			best = t;
	}
	*n = entries;
	return best;
}

static int rm_cb(const char *p, const struct stat *st, int type, struct FTW *f)
{
	(void)st, (void)f;
	if (type == FTW_DP)
		rmdir(p);
	else
		unlink(p);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: treebench MNT [NFILES]\n");
		return 2;
	}
	const char *mnt = argv[1];
	long nfiles = argc == 3 ? strtol(argv[2], NULL, 10) : 100000;
	if (nfiles < 10)
		errx(2, "NFILES must be at least 10");
	char *root = snapfs_mount_root(mnt);
	if (!root)
		err(1, "%s is not on a snapfs mount", mnt);
	char base[4096], small[4200], big[4200];
	snprintf(base, sizeof(base), "%s/treebench.%d", root, (int)getpid());
	snprintf(small, sizeof(small), "%s/small", base);
	snprintf(big, sizeof(big), "%s/big", base);
	if (mkdir(base, 0755))
		err(1, "mkdir %s", base);
	double t0 = now_ms();
	make_tree(small, 10);
	make_tree(big, nfiles);
	printf("treebench: %s, trees of 10 and %ld files made in %.1f s\n", root, nfiles,
	       (now_ms() - t0) / 1e3);

	double ps = pin_ms(root, small, 21), pb = pin_ms(root, big, 5);
	if (ps >= 0)
		printf("pin -r, 10 files:        %10.3f ms (median of 21)\n", ps);
	else
		printf("pin -r, 10 files:        failed\n");
	if (pb >= 0)
		printf("pin -r, %7ld files:   %10.3f ms (median of 5)\n", nfiles, pb);
	else
		printf("pin -r, %7ld files:   failed\n", nfiles);
	if (ps > 0 && pb > 0)
		printf("ratio big/small:         %10.2f   (O(1): about 1; issue 10: at most 2)\n",
		       pb / ps);

	const char *bp = big;
	uint64_t id = 0;
	if (snapfs_pin_ex(&bp, 1, "treebench", SNAPFS_RECURSIVE, 0, &id) == 0) {
		char *vp = snapfs_snapshot_path(big, id);
		if (!vp)
			err(1, "snapshot path of %s", big);
		long nl, nv;
		for (int du = 0; du < 2; du++) {
			double live = walk_ms(big, du, 3, &nl);
			long long lb = blocks;
			double view = walk_ms(vp, du, 3, &nv);
			long long vb = blocks;
			printf("%s walk, live:   %10.1f ms, %ld entries%s\n", du ? "du  " : "find",
			       live, nl, du ? "" : "");
			printf("%s walk, view:   %10.1f ms, %ld entries\n", du ? "du  " : "find",
			       view, nv);
			if (live > 0 && view > 0)
				printf(
				    "ratio view/live:         %10.2f   (issue 10: at most 2)%s\n",
				    view / live, nl != nv ? "  ENTRY COUNTS DIFFER" : "");
			if (du)
				printf("du blocks: live %lld, view %lld\n", lb, vb);
		}
		free(vp);
		if (snapfs_release(root, id))
			warn("release %" PRIu64, id);
	} else {
		warn("pin -r %s (for the walks)", big);
	}
	nftw(base, rm_cb, 64, FTW_DEPTH | FTW_PHYS);
	free(root);
	return 0;
}
