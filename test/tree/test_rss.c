// SPDX-License-Identifier: MIT
/*
 * What the daemon holds with a large tree known and pinned (issue 10:
 * "memory stays bounded"): a tree of NFILES empty files (10,000; 100,000
 * with SNAPFS_LONG=1) made in SOURCE, a stat of every file through the
 * mount, pin -r, a stat of every file of the view. The daemon's VmRSS may
 * grow by at most RSS_PER_FILE bytes per file for the two walks (measured
 * ~1,270 at 100,000: a node per live inode and one per view entry), its
 * descriptors stay under a quarter of its limit plus a few (no descriptor
 * per known inode); then `echo 2 > /proc/sys/vm/drop_caches` makes the
 * kernel forget its inodes, and the daemon must give at least half of what
 * the walks took back within 20 s (nodes freed, and malloc_trim: glibc
 * keeps freed chunks otherwise). bench/treerss.sh measures the same at a
 * million files. In a sanitizer build the walks run but the bounds are not
 * checked: ASan's quarantine holds freed memory.
 */
#include "treeutil.h"

#include <ftw.h>

#define RSS_PER_FILE 2048 /* bytes, live walk + view walk */

TestSuite(rss, .init = fx_setup, .fini = tr_teardown, .timeout = 1800);

static long status_kib(const char *key)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)m.pid);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	long kib = -1;
	size_t kl = strlen(key);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':') {
			kib = atol(line + kl + 1);
			break;
		}
	fclose(f);
	cr_assert_geq(kib, 0, "no %s in the daemon's status", key);
	return kib;
}

static long fd_count(void)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)m.pid);
	DIR *d = opendir(path);
	cr_assert_not_null(d);
	long n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 2;
}

static long nstat;
static int one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)p, (void)f;
	if (flag == FTW_F && S_ISREG(st->st_mode))
		nstat++;
	return 0;
}

/* A stat of every entry under root (a lookup each): the count of files. */
static long walk(const char *root)
{
	nstat = 0;
	cr_assert_eq(nftw(root, one, 64, FTW_PHYS), 0, "walk %s: %s", root, strerror(errno));
	return nstat;
}

Test(rss, a_known_and_pinned_tree_costs_bounded_memory_given_back_when_forgotten)
{
	long n = tr_long() ? 100000 : 10000;
	char rel[64];
	mkdir_p(SP("t"), 0755);
	for (long i = 0; i < n; i++) {
		if (i % 1000 == 0) {
			snprintf(rel, sizeof(rel), "t/d%ld", i / 1000);
			mkdir_p(SP(rel), 0755);
		}
		snprintf(rel, sizeof(rel), "t/d%ld/f%ld", i / 1000, i % 1000);
		int fd = open(SP(rel), O_WRONLY | O_CREAT, 0644);
		cr_assert(fd >= 0, "%s: %s", rel, strerror(errno));
		close(fd);
	}
	cr_assert_eq(fx_mount_nofile(NULL, 1024, 20000), 0, "mount under 1024:20000");
	long base = status_kib("VmRSS");
	cr_assert_eq(walk(MP("t")), n);
	uint64_t id = pin_tree("t");
	cr_assert_eq(walk(VR(id, "t")), n);
	long peak = status_kib("VmRSS"), fds = fd_count();
	cr_log_info("%ld files: VmRSS %ld KiB at mount, %ld after both walks (%ld bytes/file), "
		    "%ld descriptors",
		    n, base, peak, (peak - base) * 1024 / n, fds);
	cr_assert_leq(fds, 20000 / 4 + 64, "%ld descriptors for %ld known files", fds, n);
	sync();
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, "2\n", 2), 2);
	close(fd);
	long after = peak;
	for (int i = 0; i < 200; i++) {
		msleep(100);
		after = status_kib("VmRSS");
		if (after - base < (peak - base) / 2)
			break;
	}
	cr_log_info("after drop_caches: VmRSS %ld KiB, %ld descriptors", after, fd_count());
#if defined(__SANITIZE_ADDRESS__)
	cr_log_info("sanitizer build: bounds not checked");
#else
	cr_assert_leq((peak - base) * 1024 / n, RSS_PER_FILE,
		      "VmRSS grew by %ld KiB for %ld files known live and in the view", peak - base,
		      n);
	cr_assert_lt(after - base, (peak - base) / 2,
		     "the kernel forgot its inodes (%ld descriptors left), and the daemon kept %ld "
		     "of the %ld KiB the walks took",
		     fd_count(), after - base, peak - base);
#endif
	release(id);
}
