// SPDX-License-Identifier: MIT
/*
 * treeclibench: the cost of snapctl's tree engine (show, diff, restore of tree
 * snapshots) on plain directories, without a mount: a tree of N files in
 * directories of 100 (A, "the snapshot"), its copy B ("the live tree")
 * with 1% of the files changed (renamed, removed, created, chmod'ed,
 * overwritten in one block) and 1% of the directories renamed; then the
 * time of a show-like walk of A, of the diff of A and B, and of the
 * restore of B to A (diff included). Identity is B's inode mapped to A's
 * by the copy, as the view's inode numbers give it on a mount.
 * Usage: treeclibench [-n FILES] [-d DIR]
 */
#include "tree.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double clk(clockid_t id)
{
	struct timespec t;
	clock_gettime(id, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Wall and CPU seconds since the last call. */
static void lap(double *wall, double *cpu)
{
	static double w0, c0;
	double w = clk(CLOCK_MONOTONIC), c = clk(CLOCK_PROCESS_CPUTIME_ID);
	*wall = w - w0, *cpu = c - c0;
	w0 = w, c0 = c;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* B's inode -> A's, open addressing */
static uint64_t *mk, *mv;
static size_t mcap;

static void map_put(uint64_t k, uint64_t v)
{
	size_t h = (size_t)(k * 0x9E3779B97F4A7C15ull) & (mcap - 1);
	while (mk[h] && mk[h] != k)
		h = (h + 1) & (mcap - 1);
	mk[h] = k, mv[h] = v;
}

static uint64_t map_get(uint64_t k)
{
	size_t h = (size_t)(k * 0x9E3779B97F4A7C15ull) & (mcap - 1);
	for (; mk[h]; h = (h + 1) & (mcap - 1))
		if (mk[h] == k)
			return mv[h];
	return 0;
}

static uint64_t ident(void *arg, int side, const struct stat *st)
{
	if (side == TREE_FROM)
		return st->st_ino;
	uint64_t a = map_get(st->st_ino);
	return a ? a : st->st_ino | 1ull << 62;
}

struct list {
	char **path;
	uint64_t *ino;
	size_t n, cap;
};

static int list_cb(void *arg, const char *path, const struct stat *st, const char *target)
{
	struct list *l = arg;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 1024;
		l->path = realloc(l->path, l->cap * sizeof(char *));
		l->ino = realloc(l->ino, l->cap * sizeof(uint64_t));
	}
	l->path[l->n] = strdup(path);
	l->ino[l->n++] = st->st_ino;
	return 0;
}

static int show_cb(void *arg, const char *path, const struct stat *st, const char *target)
{
	FILE *f = arg;
	fprintf(f, "%c\t%04o\t%u\t%u\t%lld\t%lld\t%s\n", S_ISDIR(st->st_mode) ? 'd' : '-',
		(unsigned)(st->st_mode & 07777), st->st_uid, st->st_gid, (long long)st->st_size,
		(long long)st->st_mtim.tv_sec, path);
	return 0;
}

static void sh(const char *cmd)
{
	if (system(cmd))
		fprintf(stderr, "treeclibench: %s failed\n", cmd), exit(1);
}

int main(int argc, char **argv)
{
	long n = 10000;
	const char *dir = "/dev/shm";
	int c;
	while ((c = getopt(argc, argv, "n:d:")) != -1) {
		if (c == 'n')
			n = atol(optarg);
		else if (c == 'd')
			dir = optarg;
		else
			return fprintf(stderr, "usage: treeclibench [-n FILES] [-d DIR]\n"), 2;
	}
	char base[PATH_MAX - 64], A[PATH_MAX - 32], B[PATH_MAX - 32], p[3 * PATH_MAX],
	    q[3 * PATH_MAX];
	snprintf(base, sizeof(base), "%s/treeclibench.XXXXXX", dir);
	if (!mkdtemp(base))
		return perror("mkdtemp"), 1;
	snprintf(A, sizeof(A), "%s/A", base);
	snprintf(B, sizeof(B), "%s/B", base);
	mkdir(A, 0755);
	long ndirs = (n + 99) / 100;
	char buf[4096];
	uint64_t seed = 1;
	for (long i = 0; i < n; i++) {
		if (i % 100 == 0) {
			snprintf(p, sizeof(p), "%s/d%05ld", A, i / 100);
			mkdir(p, 0755);
		}
		for (size_t k = 0; k < sizeof(buf); k += 8)
			*(uint64_t *)(buf + k) = rnd(&seed) | 1;
		snprintf(p, sizeof(p), "%s/d%05ld/f%03ld", A, i / 100, i % 100);
		int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || write(fd, buf, 1 + (size_t)(i % 4) * 1024) < 0)
			return perror(p), 1;
		close(fd);
	}
	snprintf(p, sizeof(p), "cp -a %s %s", A, B);
	sh(p);
	struct list la = {0}, lb = {0};
	tree_walk(A, NULL, 0, NULL, list_cb, &la);
	tree_walk(B, NULL, 0, NULL, list_cb, &lb);
	for (mcap = 1; mcap < 4 * (size_t)la.n; mcap <<= 1)
		;
	mk = calloc(mcap, 8), mv = calloc(mcap, 8);
	for (size_t i = 0; i < la.n && i < lb.n; i++)
		map_put(lb.ino[i], la.ino[i]);
	for (size_t i = 0; i < la.n; i++)
		free(la.path[i]);
	for (size_t i = 0; i < lb.n; i++)
		free(lb.path[i]);
	free(la.path), free(la.ino), free(lb.path), free(lb.ino);
	/* 1% of the files changed, 1% of the directories renamed */
	for (long k = 0; k < n / 100; k++) {
		long i = (long)(rnd(&seed) % (uint64_t)n);
		snprintf(p, sizeof(p), "%s/d%05ld/f%03ld", B, i / 100, i % 100);
		switch (k % 5) {
		case 0:
			snprintf(q, sizeof(q), "%s/d%05ld/moved%ld", B,
				 (long)(rnd(&seed) % (uint64_t)ndirs), k);
			rename(p, q);
			break;
		case 1:
			unlink(p);
			break;
		case 2:
			snprintf(q, sizeof(q), "%s/d%05ld/new%ld", B, i / 100, k);
			close(open(q, O_WRONLY | O_CREAT, 0644));
			break;
		case 3:
			chmod(p, 0600);
			break;
		default: {
			int fd = open(p, O_WRONLY);
			if (fd >= 0 && pwrite(fd, "x", 1, 0) != 1)
				perror(p);
			close(fd);
		}
		}
	}
	for (long k = 0; k < ndirs / 100 + 1; k++) {
		snprintf(p, sizeof(p), "%s/d%05ld", B, k * 97 % ndirs);
		snprintf(q, sizeof(q), "%s/renamed%ld", B, k);
		rename(p, q);
	}
	FILE *null = fopen("/dev/null", "w");
	double ws, cs, wd, cd, wr, cr;
	lap(&ws, &cs);
	tree_walk(A, NULL, 0, NULL, show_cb, null);
	lap(&ws, &cs);
	struct tree_opts o = {.ident = ident};
	struct tree_diff *d;
	int rc = tree_diff_new(A, B, NULL, 0, &o, &d);
	lap(&wd, &cd);
	if (rc)
		return fprintf(stderr, "treeclibench: diff: %s\n", strerror(-rc)), 1;
	size_t changes = tree_diff_count(d);
	tree_diff_free(d);
	struct tree_stats st = {0};
	rc = tree_diff_new(A, B, NULL, 0, &o, &d);
	if (!rc)
		rc = tree_apply(d, NULL, NULL, &st);
	lap(&wr, &cr);
	tree_diff_free(d);
	if (rc)
		return fprintf(stderr, "treeclibench: restore: %s\n", strerror(-rc)), 1;
	printf("treeclibench: %ld files (wall/CPU seconds): show walk %.2f/%.2f, diff %.2f/%.2f "
	       "(%zu changes), restore %.2f/%.2f (diff included; %" PRIu64 " steps, %" PRIu64
	       " bytes written)\n",
	       n, ws, cs, wd, cd, changes, wr, cr, st.actions, st.bytes_written);
	snprintf(p, sizeof(p), "rm -rf %s", base);
	sh(p);
	fclose(null);
	free(mk), free(mv);
	return 0;
}
