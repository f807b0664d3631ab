// SPDX-License-Identifier: MIT
/*
 * Tree-snapshot benchmarks (bench_store tree): store_pin_tree against the
 * number of files under the source (10 .. 100,000: it looks at none of
 * them), and 1,000 live tree snapshots with changes between them: pin time
 * as they accumulate, the hooks' cost with 1,000 live trees, read-side
 * lookups, reopen and release. Prints Markdown.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "snapstore.h"

/* From bench_store.c. */
extern char bt_src[300], bt_sdir[300];
extern int bt_srcfd;
struct store *bt_fresh(uint32_t bs);
double bt_now(void);
void bt_die(const char *what, int rc);

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void mkfiles(const char *dir, int n)
{
	char p[600];
	snprintf(p, sizeof(p), "%s/%s", bt_src, dir);
	mkdir(p, 0755);
	for (int i = 0; i < n; i++) {
		if (i % 1000 == 0) {
			snprintf(p, sizeof(p), "%s/%s/d%d", bt_src, dir, i / 1000);
			mkdir(p, 0755);
		}
		snprintf(p, sizeof(p), "%s/%s/d%d/f%d", bt_src, dir, i / 1000, i);
		int fd = open(p, O_WRONLY | O_CREAT, 0644);
		if (fd < 0 || write(fd, "x", 1) != 1)
			bt_die("create", errno);
		close(fd);
	}
}

static struct store_file *get(struct store *st, const char *rel, int *fdp)
{
	char p[600];
	snprintf(p, sizeof(p), "%s/%s", bt_src, rel);
	int fd = open(p, O_RDWR);
	if (fd < 0)
		fd = open(p, O_PATH);
	if (fd < 0)
		bt_die(p, errno);
	struct store_file *sf;
	int rc = store_file_get(st, fd, &sf);
	if (rc)
		bt_die("store_file_get", rc);
	if (fdp)
		*fdp = fd;
	else
		close(fd);
	return sf;
}

static void attr_of(int fd, struct store_attr *a)
{
	struct stat sb;
	fstat(fd, &sb);
	*a = (struct store_attr){.mode = sb.st_mode,
				 .uid = sb.st_uid,
				 .gid = sb.st_gid,
				 .nlink = sb.st_nlink,
				 .size = (uint64_t)sb.st_size,
				 .ino = sb.st_ino,
				 .atime = sb.st_atim,
				 .mtime = sb.st_mtim,
				 .ctime = sb.st_ctim};
}

static double pin_median(struct store *st, struct store_file *root, int reps)
{
	double *t = calloc((size_t)reps, sizeof(*t));
	struct store_pin p = {.kind = STORE_PINNED, .label = "tree"};
	for (int i = 0; i < reps; i++) {
		uint64_t id;
		double t0 = bt_now();
		int rc = store_pin_tree(st, &p, root, "", &id);
		t[i] = (bt_now() - t0) * 1e6;
		if (rc)
			bt_die("store_pin_tree", rc);
		store_release(st, id);
	}
	qsort(t, (size_t)reps, sizeof(*t), cmpd);
	double m = t[reps / 2];
	free(t);
	return m;
}

/* One changed file and one renamed entry through the hooks, as the daemon
 * does; returns the time of each part in *tw and *tr (µs). */
static void change(struct store *st, struct store_file *dir, int i, double *tw, double *tr)
{
	char rel[64], a[600], b[600];
	snprintf(rel, sizeof(rel), "many/d0/f%d", i % 1000);
	int fd;
	struct store_file *sf = get(st, rel, &fd);
	double t0 = bt_now();
	if (store_ns_need(sf) == 1) {
		struct store_attr at;
		attr_of(fd, &at);
		int rc = store_ns_save(sf, fd, &at);
		if (rc)
			bt_die("store_ns_save", rc);
	}
	int rc = store_cow_range(sf, fd, 0, 4096);
	if (rc)
		bt_die("store_cow_range", rc);
	char buf[4096];
	memset(buf, i, sizeof(buf));
	if (pwrite(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
		bt_die("pwrite", errno);
	*tw = (bt_now() - t0) * 1e6;
	close(fd);
	store_file_put(sf);

	snprintf(rel, sizeof(rel), "many/d0/f%d", (i + 500) % 1000);
	snprintf(a, sizeof(a), "%s/%s", bt_src, rel);
	snprintf(b, sizeof(b), "%s/many/d0/r%d", bt_src, (i + 500) % 1000);
	sf = get(st, rel, &fd);
	t0 = bt_now();
	if (store_ns_need(dir) == 1) {
		int dfd;
		struct store_file *d2 = get(st, "many/d0", &dfd);
		struct store_attr at;
		attr_of(dfd, &at);
		store_ns_save(dir, dfd, &at);
		close(dfd);
		store_file_put(d2);
	}
	if (store_ns_need(sf) == 1) {
		struct store_attr at;
		attr_of(fd, &at);
		store_ns_save(sf, fd, &at);
	}
	char na[16], nb[16];
	snprintf(na, sizeof(na), "f%d", (i + 500) % 1000);
	snprintf(nb, sizeof(nb), "r%d", (i + 500) % 1000);
	if ((rc = store_ns_entry(st, dir, na, sf, S_IFREG)) ||
	    (rc = store_ns_entry(st, dir, nb, NULL, 0)))
		bt_die("store_ns_entry", rc);
	if (rename(a, b))
		bt_die("rename", errno);
	*tr = (bt_now() - t0) * 1e6;
	rename(b, a); /* back, outside the measure: the next change renames it again */
	store_ns_entry(st, dir, nb, sf, S_IFREG);
	store_ns_entry(st, dir, na, NULL, 0);
	close(fd);
	store_file_put(sf);
}

void bench_tree(void);
void bench_tree(void)
{
	printf("\n### Tree pin against the number of files under the source (pinned, FULL "
	       "sync, median of 201)\n\n| files | store_pin_tree µs |\n|---|---|\n");
	mkfiles("few", 10);
	struct store *st = bt_fresh(4096);
	struct store_file *root = get(st, "few", NULL);
	printf("| 10 | %.1f |\n", pin_median(st, root, 201));
	store_file_put(root);
	double t0 = bt_now();
	const char *nf = getenv("BENCH_TREE_FILES"); /* for quick runs */
	int nmany = nf ? atoi(nf) : 100000;
	if (nmany < 1000)
		nmany = 1000;
	mkfiles("many", nmany);
	double tmk = bt_now() - t0;
	root = get(st, "many", NULL);
	printf("| %d | %.1f |\n", nmany, pin_median(st, root, 201));
	store_file_put(root);
	fprintf(stderr, "(created %d files in %.1f s)\n", nmany, tmk);

	printf("\n### 1,000 live tree snapshots, a 4 KiB overwrite and a rename between "
	       "pins\n\n| live trees | pin µs | write (need+save+cow+write) µs | rename "
	       "(2 saves + 2 entries + rename) µs |\n|---|---|---|---|\n");
	struct store_pin p = {.kind = STORE_PINNED, .label = "t"};
	root = get(st, "many", NULL);
	struct store_file *dir = get(st, "many/d0", NULL);
	uint64_t *ids = calloc(1000, sizeof(*ids));
	double tp[1000], tw[1000], tr[1000];
	for (int i = 0; i < 1000; i++) {
		t0 = bt_now();
		int rc = store_pin_tree(st, &p, root, "many", &ids[i]);
		tp[i] = (bt_now() - t0) * 1e6;
		if (rc)
			bt_die("pin", rc);
		change(st, dir, i, &tw[i], &tr[i]);
		if (i == 0 || i == 9 || i == 99 || i == 999) { /* medians of the last ten */
			int lo = i < 9 ? i : i - 9, n = i - lo + 1;
			double a[10], b[10], c[10];
			memcpy(a, tp + lo, (size_t)n * sizeof(*a));
			memcpy(b, tw + lo, (size_t)n * sizeof(*b));
			memcpy(c, tr + lo, (size_t)n * sizeof(*c));
			qsort(a, (size_t)n, sizeof(*a), cmpd);
			qsort(b, (size_t)n, sizeof(*b), cmpd);
			qsort(c, (size_t)n, sizeof(*c), cmpd);
			printf("| %d | %.1f | %.1f | %.1f |\n", i + 1, a[n / 2], b[n / 2],
			       c[n / 2]);
		}
	}
	/* The hot path: a node already saved in this epoch. */
	int fd;
	struct store_file *sf = get(st, "many/d0/f999", &fd);
	store_ns_need(sf);
	t0 = bt_now();
	int k = 0;
	for (int i = 0; i < 1000000; i++)
		k += store_ns_need(sf);
	double tneed = (bt_now() - t0) * 1e3; /* ns per call */
	struct store_attr a;
	char buf[4096];
	t0 = bt_now();
	for (int i = 0; i < 1000; i++)
		store_tree_attr(st, ids[i], sf, &a, buf, sizeof(buf));
	double tattr = (bt_now() - t0) * 1e3;
	uint64_t dnid, cf;
	uint32_t ct;
	store_ns_nid(dir, &dnid);
	t0 = bt_now();
	for (int i = 0; i < 1000; i++)
		store_tree_lookup(st, ids[i], dnid, "f5", &cf, &ct);
	double tlook = (bt_now() - t0) * 1e3;
	close(fd);
	store_file_put(sf);
	store_file_put(dir);
	store_file_put(root);
	struct store_stats ss;
	store_stats(st, &ss);
	printf("\nWith 1,000 live trees: store_ns_need of a node saved this epoch %.1f ns "
	       "(%d), store_tree_attr %.1f µs, store_tree_lookup %.1f µs; %llu extents, "
	       "%.1f MiB on disk.\n",
	       tneed, k, tattr, tlook, (unsigned long long)ss.extents,
	       (double)ss.bytes_on_disk / 1048576.0);
	t0 = bt_now();
	store_close(st);
	struct store_opts o = {0};
	int rc = store_open(bt_sdir, bt_srcfd, &o, &st);
	if (rc)
		bt_die("reopen", rc);
	double treo = (bt_now() - t0) * 1e3;
	t0 = bt_now();
	for (int i = 0; i < 1000; i++)
		if ((rc = store_release(st, ids[i])))
			bt_die("release", rc);
	double trel = (bt_now() - t0) * 1e3;
	store_stats(st, &ss);
	printf("Close + reopen with 1,000 trees: %.1f ms; releasing all 1,000: %.1f ms "
	       "(%.2f ms each); %llu extents left.\n",
	       treo, trel, trel / 1000, (unsigned long long)ss.extents);
	store_close(st);
	free(ids);
}
