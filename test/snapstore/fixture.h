/* SPDX-License-Identifier: MIT */
/*
 * Shared fixture of the snapstore tests: a scratch directory under /dev/shm
 * with a backing tree (src/) and a store directory (store/), plus small
 * helpers to make files, pin them and read snapshots back. Header-only so
 * each test binary stays one file plus testutil.
 */
#ifndef SNAPSTORE_FIXTURE_H
#define SNAPSTORE_FIXTURE_H

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapstore.h"
#include "testutil.h"

static char *fx_root;
static char fx_src[512], fx_dir[512];
static int fx_srcfd = -1;
static struct store *fx_st;

static inline void fx_open_bs(uint32_t bs, uint64_t max)
{
	struct store_opts o = {.block_size = bs, .max_bytes = max, .create = 1};
	int rc = store_open(fx_dir, fx_srcfd, &o, &fx_st);
	cr_assert_eq(rc, 0, "store_open: %s", strerror(-rc));
}

static inline void fx_setup_bs(uint32_t bs)
{
	fx_root = tu_tmpdir("store");
	tu_path(fx_src, sizeof(fx_src), fx_root, "src");
	tu_path(fx_dir, sizeof(fx_dir), fx_root, "store");
	cr_assert_eq(mkdir(fx_src, 0755), 0);
	fx_srcfd = open(fx_src, O_DIRECTORY | O_RDONLY);
	cr_assert(fx_srcfd >= 0);
	fx_open_bs(bs, 0);
}

static inline void fx_setup(void)
{
	fx_setup_bs(4096);
}

static inline void fx_teardown(void)
{
	if (fx_st)
		store_close(fx_st);
	fx_st = NULL;
	if (fx_srcfd >= 0)
		close(fx_srcfd);
	fx_srcfd = -1;
	tu_rm_rf(fx_root);
	free(fx_root);
	fx_root = NULL; /* a test's own .fini may run this before the suite's */
}

static inline void fx_reopen(void)
{
	uint32_t bs = store_block_size(fx_st);
	store_close(fx_st);
	fx_st = NULL;
	fx_open_bs(bs, 0);
}

/* Open (creating) src/name read-write. */
static inline int fx_file(const char *name)
{
	char p[1024];
	tu_path(p, sizeof(p), fx_src, name);
	int fd = open(p, O_RDWR | O_CREAT, 0644);
	cr_assert(fd >= 0, "open %s: %s", p, strerror(errno));
	return fd;
}

static inline void fx_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	cr_assert_eq(pwrite(fd, buf, len, off), (ssize_t)len, "pwrite: %s", strerror(errno));
}

/* A write through the hook, as the daemon does it. */
static inline int fx_cow_write(struct store_file *sf, int fd, const void *buf, size_t len,
			       off_t off)
{
	store_file_wrlock(sf);
	int rc = store_cow_range(sf, fd, (uint64_t)off, len);
	if (!rc)
		fx_pwrite(fd, buf, len, off);
	store_file_unlock(sf);
	return rc;
}

static inline int fx_cow_truncate(struct store_file *sf, int fd, off_t size)
{
	store_file_wrlock(sf);
	int rc = store_cow_truncate(sf, fd, (uint64_t)size);
	if (!rc)
		cr_assert_eq(ftruncate(fd, size), 0);
	store_file_unlock(sf);
	return rc;
}

static inline uint64_t fx_pin1(struct store_file *sf, int fd, const char *path, int kind)
{
	struct store_pin p = {.kind = kind, .label = "t"};
	struct store_pin_file f = {.sf = sf, .fd = fd, .path = path};
	uint64_t id = 0;
	int rc = store_pin(fx_st, &p, &f, 1, &id);
	cr_assert_eq(rc, 0, "store_pin: %s", strerror(-rc));
	return id;
}

static inline void fx_expect_snap(uint64_t id, uint64_t fid, const void *want, size_t len)
{
	char *got = malloc(len + 4096);
	cr_assert_not_null(got);
	ssize_t n = store_snap_read(fx_st, id, fid, got, len + 4096, 0);
	cr_assert_eq(n, (ssize_t)len, "snap %lu fid %lu: read %zd, want %zu", (unsigned long)id,
		     (unsigned long)fid, n, len);
	for (size_t i = 0; i < len; i++)
		if (got[i] != ((const char *)want)[i])
			cr_assert_fail("snap %lu fid %lu: byte %zu is %#x, want %#x",
				       (unsigned long)id, (unsigned long)fid, i,
				       (unsigned char)got[i], ((const unsigned char *)want)[i]);
	free(got);
}

static inline struct store_stats fx_stats(void)
{
	struct store_stats s;
	cr_assert_eq(store_stats(fx_st, &s), 0);
	return s;
}

static int fx_check_cb(void *arg, const char *problem)
{
	(void)arg;
	fprintf(stderr, "check: %s\n", problem);
	return 0;
}

static inline void fx_check(void)
{
	int n = store_check(fx_st, fx_check_cb, NULL);
	cr_assert_eq(n, 0, "store_check found %d problems", n);
}

#endif
