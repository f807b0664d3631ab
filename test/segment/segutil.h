/* SPDX-License-Identifier: MIT */
/* Helpers shared by the segment suites (test_seg.c, test_wb.c). */
#ifndef SEGUTIL_H
#define SEGUTIL_H

#include "snaputil.h"

#define PGSZ 4096UL
#define MiB  (1024UL * 1024)

/* A file of len pseudo-random bytes at rel in the mount; its bytes. */
static __attribute__((unused)) unsigned char *mkfile(const char *rel, size_t len, uint64_t seed)
{
	unsigned char *b = xmalloc(len);
	tu_fill(b, len, seed);
	write_path(MP(rel), b, len);
	return b;
}

static __attribute__((unused)) int openm(const char *rel, int flags)
{
	int fd = open(MP(rel), flags);
	cr_assert(fd >= 0, "open %s: %s", rel, strerror(errno));
	return fd;
}

static __attribute__((unused)) struct snapseg_stats stats(struct snapseg *s)
{
	struct snapseg_stats st;
	cr_assert_eq(snapseg_stats(s, &st), 0);
	return st;
}

static __attribute__((unused)) struct snapseg *mkseg(size_t size)
{
	struct snapseg *s = snapseg_create(size);
	cr_assert_not_null(s, "snapseg_create(%zu): %s", size, strerror(errno));
	return s;
}

#endif
