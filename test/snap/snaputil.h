/* SPDX-License-Identifier: MIT */
/*
 * Shared by the snap suites: a fixture that makes a fresh SOURCE and mount
 * point and always unmounts (also on failure: tu_mount's atexit handler),
 * paths in the mount and in SOURCE, pin helpers, the control channel's
 * LIST and STATS, and byte comparisons that name the first difference.
 * Each test binary includes this once; everything is static.
 */
#ifndef SNAPUTIL_H
#define SNAPUTIL_H

#include <criterion/criterion.h>

#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "snapfs.h"
#include "snapfs_proto.h"
#include "testutil.h"

static char *src, *mnt;
static struct tu_mount m;

static void fx_teardown(void);

static __attribute__((unused)) void fx_setup_in(const char *srcbase)
{
	umask(022);
	/* cr_skip_test() exits without .fini: clean up at exit too (this runs
	 * after tu_mount's own handler, registered later, has unmounted). */
	atexit(fx_teardown);
	if (srcbase) {
		char tmpl[256];
		snprintf(tmpl, sizeof(tmpl), "%s/snapfs-ssrc-XXXXXX", srcbase);
		cr_assert_not_null(mkdtemp(tmpl));
		src = strdup(tmpl);
	} else {
		src = tu_tmpdir("ssrc");
	}
	mnt = tu_tmpdir("smnt");
	chmod(src, 0755);
	chmod(mnt, 0755);
}

static __attribute__((unused)) void fx_setup(void)
{
	fx_setup_in(NULL);
}

static __attribute__((unused)) void fx_teardown(void)
{
	if (!src)
		return;
	tu_umount(&m);
	tu_rm_rf(src);
	tu_rm_rf(mnt);
	free(src);
	free(mnt);
	src = mnt = NULL;
}

static __attribute__((unused)) void fx_mount(const char *opts)
{
	cr_assert_eq(tu_mount(&m, src, mnt, opts), 0, "snapfs did not mount %s on %s (opts %s)",
		     src, mnt, opts ? opts : "-");
}

/* Paths in the mount and in SOURCE (rotating static buffers). */
static __attribute__((unused)) const char *MP(const char *rel)
{
	static char buf[16][1024];
	static int i;
	char *p = buf[__atomic_fetch_add(&i, 1, __ATOMIC_RELAXED) & 15];
	tu_path(p, 1024, mnt, rel);
	return p;
}

/* A pin of rel (one file) taken by uid in a child process (0: as root);
 * its id. The test fails if the pin does. */
static __attribute__((unused)) uint64_t pin_as(uid_t uid, const char *rel)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		if (uid && (setgroups(0, NULL) || setgid(uid) || setuid(uid)))
			_exit(200);
		const char *path = MP(rel);
		uint64_t id = 0;
		if (snapfs_pin(&path, 1, NULL, &id))
			_exit(errno);
		_exit(write(p[1], &id, sizeof(id)) == sizeof(id) ? 0 : 202);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "pin of %s as %u failed: %d", rel,
		  (unsigned)uid, WEXITSTATUS(st));
	uint64_t id = 0;
	cr_assert_eq(read(p[0], &id, sizeof(id)), (ssize_t)sizeof(id));
	close(p[0]);
	close(p[1]);
	return id;
}

static __attribute__((unused)) const char *SP(const char *rel)
{
	static char buf[8][1024];
	static int i;
	char *p = buf[__atomic_fetch_add(&i, 1, __ATOMIC_RELAXED) & 7];
	tu_path(p, 1024, src, rel);
	return p;
}

static __attribute__((unused)) void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	cr_assert_not_null(p);
	return p;
}

/* Fails with the first offset where got and want differ. */
static __attribute__((unused)) void expect_bytes(const char *what, const void *got, size_t glen,
						 const void *want, size_t wlen)
{
	cr_assert_eq(glen, wlen, "%s: %zu bytes, expected %zu", what, glen, wlen);
	const unsigned char *g = got, *w = want;
	for (size_t i = 0; i < glen; i++)
		if (g[i] != w[i])
			cr_assert_fail("%s: byte %zu is 0x%02x, expected 0x%02x (of %zu)", what, i,
				       g[i], w[i], glen);
}

/* The whole file through read(); returns its length, or -errno. */
static __attribute__((unused)) ssize_t read_path(const char *path, void *buf, size_t cap)
{
	return tu_read_file(path, buf, cap);
}

/* The whole file through mmap(MAP_SHARED, PROT_READ). */
static __attribute__((unused)) ssize_t mmap_path(const char *path, void *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st)) {
		close(fd);
		return -errno;
	}
	size_t len = (size_t)st.st_size;
	if (len > cap)
		len = cap;
	if (len) {
		void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED) {
			int e = errno;
			close(fd);
			return -e;
		}
		memcpy(buf, p, len);
		munmap(p, len);
	}
	close(fd);
	return (ssize_t)len;
}

static __attribute__((unused)) void write_path(const char *path, const void *buf, size_t len)
{
	int rc = tu_write_file(path, buf, len);
	cr_assert_eq(rc, 0, "write %s: %s", path, strerror(-rc));
}

static __attribute__((unused)) void pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done, off + (off_t)done);
		cr_assert(n > 0, "pwrite at %lld: %s", (long long)(off + (off_t)done),
			  strerror(errno));
		done += (size_t)n;
	}
}

static __attribute__((unused)) uint64_t pin_paths(const char *const rels[], size_t n)
{
	const char *abs[16];
	char buf[16][1024];
	cr_assert(n <= 16);
	for (size_t i = 0; i < n; i++) {
		tu_path(buf[i], sizeof(buf[i]), mnt, rels[i]);
		abs[i] = buf[i];
	}
	uint64_t id = 0;
	cr_assert_eq(snapfs_pin(abs, n, NULL, &id), 0, "snapfs_pin(%s, ...): %s", abs[0],
		     strerror(errno));
	cr_assert_neq(id, 0);
	return id;
}

static __attribute__((unused)) uint64_t pin1(const char *rel)
{
	return pin_paths(&rel, 1);
}

static __attribute__((unused)) void release(uint64_t id)
{
	cr_assert_eq(snapfs_release(mnt, id), 0, "snapfs_release(%llu): %s", (unsigned long long)id,
		     strerror(errno));
}

/* MNT/<snapdir>/ID/rel, from the library (so the library is tested too). */
static __attribute__((unused)) const char *VP(uint64_t id, const char *rel)
{
	static char buf[8][1024];
	static int i;
	char *p = buf[__atomic_fetch_add(&i, 1, __ATOMIC_RELAXED) & 7];
	char *s = snapfs_snapshot_path(MP(rel), id);
	if (!s) { /* the live file may be gone: build it from the view's name */
		snprintf(p, 1024, "%s/.snapshots/%llu/%s", mnt, (unsigned long long)id, rel);
		return p;
	}
	snprintf(p, 1024, "%s", s);
	free(s);
	return p;
}

static __attribute__((unused)) int ctl(struct snapfs_req *r)
{
	r->version = SNAPFS_PROTO_VERSION;
	int fd = open(mnt, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return -errno;
	int rc = ioctl(fd, SNAPFS_IOC_CALL, r) < 0 ? -errno : r->status;
	close(fd);
	return rc;
}

/* All snapshots the caller may see; returns how many (at most max). */
static __attribute__((unused)) size_t list_snaps(struct snapfs_rec_snap *out, size_t max)
{
	struct snapfs_req *r = xmalloc(sizeof(*r));
	size_t n = 0;
	uint64_t cursor = 0;
	do {
		memset(r, 0, sizeof(*r));
		r->op = SNAPFS_OP_LIST;
		r->cursor = cursor;
		int rc = ctl(r);
		cr_assert_eq(rc, 0, "LIST: %s", strerror(-rc));
		for (uint32_t i = 0; i < r->count && n < max; i++)
			memcpy(&out[n++], r->data + i * sizeof(*out), sizeof(*out));
		cursor = r->cursor;
	} while (cursor && n < max);
	free(r);
	return n;
}

static __attribute__((unused)) int listed_snap(uint64_t id, struct snapfs_rec_snap *rec)
{
	struct snapfs_rec_snap recs[64];
	size_t n = list_snaps(recs, 64);
	for (size_t i = 0; i < n; i++)
		if (recs[i].id == id) {
			if (rec)
				*rec = recs[i];
			return 1;
		}
	return 0;
}

static __attribute__((unused)) struct snapfs_rec_stats get_stats(void)
{
	struct snapfs_req *r = xmalloc(sizeof(*r));
	memset(r, 0, sizeof(*r));
	r->op = SNAPFS_OP_STATS;
	int rc = ctl(r);
	cr_assert_eq(rc, 0, "STATS: %s", strerror(-rc));
	struct snapfs_rec_stats s;
	memcpy(&s, r->data, sizeof(s));
	free(r);
	return s;
}

static __attribute__((unused)) void msleep(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

#endif
