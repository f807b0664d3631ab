// SPDX-License-Identifier: MIT
/*
 * Scale: the daemon keeps no descriptor per known inode. It caches at most
 * a quarter of its descriptor limit and reopens the rest by file handle,
 * so a tree with many more files than the limit can be walked, read,
 * changed and pinned through the mount, and the daemon's open descriptors
 * stay under the limit meanwhile. The daemon is started with a hard limit
 * of 4096 (it raises its soft limit to the hard one), and the kernel is
 * made to keep every inode (the files stay looked up) by holding them in
 * its dentry cache: nothing is forgotten during the run.
 */
#include "snaputil.h"

#include <dirent.h>
#include <sys/resource.h>

TestSuite(scale, .init = fx_setup, .fini = fx_teardown, .timeout = 600);

static long nfiles(void)
{
	return getenv("SNAPFS_LONG") ? 100000 : 10000;
}

static void mount_limited(rlim_t hard)
{
	struct rlimit old, rl = {hard, hard};
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	fx_mount(NULL);
	/* this test process keeps the lower limit: it needs few descriptors */
}

Test(scale, many_more_files_than_descriptors_read_changed_and_pinned)
{
	const rlim_t limit = 4096;
	mount_limited(limit);
	long n = nfiles();
	char p[1024], buf[64];
	for (long d = 0; d < n / 1000; d++) {
		snprintf(p, sizeof(p), "%s/d%ld", mnt, d);
		cr_assert_eq(mkdir(p, 0755), 0);
	}
	for (long i = 0; i < n; i++) {
		snprintf(p, sizeof(p), "%s/d%ld/f%ld", mnt, i / 1000, i);
		int len = snprintf(buf, sizeof(buf), "file %ld\n", i);
		cr_assert_eq(tu_write_file(p, buf, (size_t)len), 0, "create %s: %s", p,
			     strerror(errno));
	}
	int peak = tu_count_fds(m.pid);
	/* Read every file back, twice (the second pass reopens evicted ones). */
	for (int pass = 0; pass < 2; pass++)
		for (long i = 0; i < n; i++) {
			char got[64];
			snprintf(p, sizeof(p), "%s/d%ld/f%ld", mnt, i / 1000, i);
			int len = snprintf(buf, sizeof(buf), "file %ld\n", i);
			ssize_t k = tu_read_file(p, got, sizeof(got));
			cr_assert_eq(k, len, "read %s: %zd (%s)", p, k, strerror(errno));
			cr_assert(!memcmp(got, buf, (size_t)len), "%s: wrong bytes", p);
			if (i % 997 == 0) {
				int now = tu_count_fds(m.pid);
				peak = now > peak ? now : peak;
			}
		}
	/* Change and stat each through its (possibly evicted) inode. */
	for (long i = 0; i < n; i += 7) {
		snprintf(p, sizeof(p), "%s/d%ld/f%ld", mnt, i / 1000, i);
		cr_assert_eq(chmod(p, 0600), 0, "chmod %s: %s", p, strerror(errno));
		struct stat st;
		cr_assert_eq(stat(p, &st), 0);
		cr_assert_eq(st.st_mode & 07777, 0600);
	}
	cr_expect_lt(peak, (int)limit / 2,
		     "the daemon held %d descriptors with %ld files known (limit %d)", peak, n,
		     (int)limit);
	/* A pin of a few files still works; the daemon still serves. */
	const char *rels[] = {"d0/f0", "d0/f1"};
	uint64_t id = pin_paths(rels, 2);
	char got[64];
	cr_assert_gt(tu_read_file(VP(id, "d0/f0"), got, sizeof(got)), 0);
}
