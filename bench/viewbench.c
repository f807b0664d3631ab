// SPDX-License-Identifier: MIT
/*
 * viewbench: the snapshot view's per-lookup cost against the number of
 * files in the snapshot, side by side in one run. For each size N it makes
 * a tree of N files (a 13-entry directory d/ plus N - 13 files in
 * directories of 100), pins it recursively, then measures through
 * MNT/.snapshots/ID: a stat of a name in d/ (each a LOOKUP: the view does
 * not cache entries), a listing of d/ with a stat of every entry (ls -la),
 * and a walk of the whole snapshot against the same walk of the live tree.
 * Prints per-size figures and the ratio to the first size.
 * usage: viewbench MNT N...
 */
#include <snapfs.h>

#include <dirent.h>
#include <err.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void touch(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "x", 1) != 1)
		err(1, "%s", path);
	close(fd);
}

static void make_tree(const char *root, long n)
{
	char p[4200];
	if (mkdir(root, 0755))
		err(1, "mkdir %s", root);
	snprintf(p, sizeof(p), "%s/d", root);
	mkdir(p, 0755);
	for (int i = 0; i < 13; i++) {
		snprintf(p, sizeof(p), "%s/d/f%02d", root, i);
		touch(p);
	}
	for (long i = 0; i < n - 13; i++) {
		if (i % 100 == 0) {
			snprintf(p, sizeof(p), "%s/s%ld", root, i / 100);
			mkdir(p, 0755);
		}
		snprintf(p, sizeof(p), "%s/s%ld/f%ld", root, i / 100, i % 100);
		touch(p);
	}
}

static long walked;
static int count_cb(const char *p, const struct stat *st, int type, struct FTW *f)
{
	(void)p, (void)st, (void)type, (void)f;
	walked++;
	return 0;
}

static double walk(const char *root)
{
	walked = 0;
	double t0 = now();
	if (nftw(root, count_cb, 64, FTW_PHYS))
		err(1, "walk %s", root);
	return now() - t0;
}

static double ls_la(const char *dir)
{
	double t0 = now();
	DIR *d = opendir(dir);
	if (!d)
		err(1, "%s", dir);
	struct dirent *e;
	while ((e = readdir(d))) {
		struct stat st;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW))
			err(1, "stat %s/%s", dir, e->d_name);
	}
	closedir(d);
	return now() - t0;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		errx(2, "usage: viewbench MNT N...");
	const char *mnt = argv[1];
	double base_lookup = 0, base_ls = 0;
	printf("| files | pin -r ms | lookup us | ls -la d/ ms | view walk s | live walk s | "
	       "view/live walk | lookup vs first | ls vs first |\n");
	printf("|---|---|---|---|---|---|---|---|---|\n");
	for (int a = 2; a < argc; a++) {
		long n = strtol(argv[a], NULL, 10);
		if (n < 13)
			errx(2, "N must be at least 13");
		char root[2048], view[2048], d[2100];
		snprintf(root, sizeof(root), "%s/viewbench-%ld", mnt, n);
		make_tree(root, n);
		const char *paths[] = {root};
		uint64_t id;
		double t0 = now();
		if (snapfs_pin_ex(paths, 1, "viewbench", SNAPFS_RECURSIVE, 0, &id))
			err(1, "pin -r %s", root);
		double pin = now() - t0;
		char *v = snapfs_snapshot_path(root, id);
		if (!v)
			err(1, "snapshot path");
		snprintf(view, sizeof(view), "%s", v);
		free(v);
		snprintf(d, sizeof(d), "%s/d", view);
		const int rounds = 2000;
		char p[4300];
		for (int i = 0; i < 200; i++) { /* warm up: daemon threads, caches */
			struct stat st;
			snprintf(p, sizeof(p), "%s/f%02d", d, i % 13);
			stat(p, &st);
		}
		t0 = now();
		for (int i = 0; i < rounds; i++) {
			struct stat st;
			snprintf(p, sizeof(p), "%s/f%02d", d, i % 13);
			if (stat(p, &st))
				err(1, "stat %s", p);
		}
		double lookup = (now() - t0) / rounds * 1e6;
		double ls = 0;
		for (int i = 0; i < 20; i++)
			ls += ls_la(d);
		ls = ls / 20 * 1e3;
		double vw = walk(view);
		long vn = walked;
		double lw = walk(root);
		if (vn != walked)
			warnx("view walk saw %ld entries, live walk %ld", vn, walked);
		if (a == 2)
			base_lookup = lookup, base_ls = ls;
		printf("| %ld | %.2f | %.1f | %.2f | %.3f | %.3f | %.2f | %.2fx | %.2fx |\n", n,
		       pin * 1e3, lookup, ls, vw, lw, vw / lw, lookup / base_lookup, ls / base_ls);
		fflush(stdout);
		snapfs_release(mnt, id);
	}
	return 0;
}
