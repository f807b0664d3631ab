// SPDX-License-Identifier: MIT
/*
 * Snapshots on a mount with the kernel's writeback cache (-o writeback):
 * bytes a write() returned may sit in the kernel's page cache, unsent, when
 * a pin, a freeze or a restore comes; libsnapfs and snapctl make the kernel
 * send them first (syncfs; the daemon's quiesce does the same for files
 * open for writing before a pin). A restore without that flush would be
 * undone by older pages. Also here: the options' rules, restore's size as
 * the kernel shows it, the security.capability answer cached per inode, and
 * the kernel's cached directory listings dropped when the daemon itself
 * recreates a name (restore).
 */
#include "snaputil.h"

#include <dirent.h>
#include <sys/wait.h>
#include <sys/xattr.h>

TestSuite(wback, .init = fx_setup, .fini = fx_teardown, .timeout = 120);

#define LEN 8192

static void fill(char *buf, char c, size_t len)
{
	memset(buf, c, len);
}

/* Writes 'n' over the first 4 KiB of rel (LEN bytes of 'o', already sent)
 * through a new descriptor, returned open: the bytes are still only in the
 * kernel's page cache, SOURCE shows the old ones. */
static int write_unsent_over(const char *rel)
{
	char now[4096], back[16];
	fill(now, 'n', sizeof(now));
	int fd = open(MP(rel), O_RDWR);
	cr_assert(fd >= 0, "open: %s", strerror(errno));
	pwrite_all(fd, now, sizeof(now), 0);
	ssize_t n = tu_read_file(SP(rel), back, sizeof(back));
	cr_assert_eq(n, (ssize_t)sizeof(back), "SOURCE read: %zd", n);
	cr_assert_eq(back[0], 'o',
		     "the write reached SOURCE at once: the writeback cache is not on (got '%c')",
		     back[0]);
	return fd;
}

/* rel holds LEN bytes of 'o', sent to the daemon (close flushes), then 'n'
 * over its first 4 KiB, unsent, through the descriptor returned. */
static int write_unsent(const char *rel)
{
	char old[LEN];
	fill(old, 'o', LEN);
	write_path(MP(rel), old, LEN);
	return write_unsent_over(rel);
}

static void expect_snapshot_head(uint64_t id, const char *rel, char want)
{
	char got[LEN];
	ssize_t n = read_path(VP(id, rel), got, sizeof(got));
	cr_assert_eq(n, LEN, "snapshot %llu of %s: %zd bytes", (unsigned long long)id, rel, n);
	cr_assert_eq(got[0], want, "snapshot %llu of %s starts with '%c', expected '%c'",
		     (unsigned long long)id, rel, got[0], want);
	cr_assert_eq(got[4096], 'o', "snapshot %llu: byte 4096 is '%c'", (unsigned long long)id,
		     got[4096]);
}

Test(wback, pin_has_bytes_written_but_still_in_the_page_cache)
{
	fx_mount("writeback");
	int fd = write_unsent("f");
	uint64_t id = pin1("f");
	expect_snapshot_head(id, "f", 'n');
	close(fd);
}

Test(wback, tree_pin_has_bytes_still_in_the_page_cache)
{
	fx_mount("writeback");
	cr_assert_eq(mkdir(MP("d"), 0755), 0);
	int fd = write_unsent("d/f");
	const char *path = MP("d");
	uint64_t id = 0;
	cr_assert_eq(snapfs_pin_ex(&path, 1, NULL, SNAPFS_RECURSIVE, 0, &id), 0, "pin -r: %s",
		     strerror(errno));
	expect_snapshot_head(id, "d/f", 'n');
	close(fd);
}

/* The daemon's quiesce (quiesce.c) makes the kernel send the pages of a
 * file open for writing before any pin, so the raw control ioctl, without
 * the client's syncfs, sees them as well. */
Test(wback, raw_pin_has_unsent_bytes_of_a_file_open_for_writing)
{
	fx_mount("writeback");
	int fd = write_unsent("f");
	struct snapfs_req *r = xmalloc(sizeof(*r));
	memset(r, 0, sizeof(*r));
	r->op = SNAPFS_OP_PIN;
	strcpy(r->data, "f");
	r->len = 2;
	r->count = 1;
	int rc = ctl(r);
	cr_assert_eq(rc, 0, "PIN: %s", strerror(-rc));
	expect_snapshot_head(r->id, "f", 'n');
	free(r);
	close(fd);
}

/* A restore compares the snapshot with SOURCE: pages still in the kernel
 * would make it see no difference, then land on the file after it. The
 * client's syncfs sends them first, so the restore undoes them. */
Test(wback, restore_is_not_undone_by_older_unsent_pages)
{
	const char *snapctl = getenv("SNAPCTL_BIN");
	cr_assert_not_null(snapctl, "SNAPCTL_BIN is not set (run the tests through ctest)");
	fx_mount("writeback");
	char old[LEN];
	fill(old, 'o', LEN);
	write_path(MP("f"), old, LEN);
	uint64_t id = pin1("f");
	int fd = write_unsent_over("f");
	char cmd[4096];
	snprintf(cmd, sizeof(cmd), "cd '%s' && '%s' restore %llu >/dev/null", mnt, snapctl,
		 (unsigned long long)id);
	cr_assert_eq(system(cmd), 0, "%s failed", cmd);
	close(fd);
	char got[LEN + 16];
	ssize_t n = read_path(MP("f"), got, sizeof(got));
	expect_bytes("restored file", got, (size_t)(n < 0 ? 0 : n), old, LEN);
	n = read_path(SP("f"), got, sizeof(got));
	expect_bytes("restored file in SOURCE", got, (size_t)(n < 0 ? 0 : n), old, LEN);
}

Test(wback, freeze_reads_bytes_written_but_still_in_the_page_cache)
{
	fx_mount("writeback");
	int fd = write_unsent("f");
	int rfd = open(MP("f"), O_RDONLY);
	cr_assert(rfd >= 0);
	uint64_t id = 0;
	cr_assert_eq(snapfs_freeze(rfd, &id), 0, "freeze: %s", strerror(errno));
	/* Later writes do not reach the frozen view. */
	pwrite_all(fd, "x", 1, 0);
	char got[LEN];
	ssize_t n = pread(rfd, got, sizeof(got), 0);
	cr_assert_eq(n, LEN, "frozen read: %zd", n);
	cr_assert_eq(got[0], 'n', "frozen view starts with '%c', expected 'n'", got[0]);
	cr_assert_eq(got[4096], 'o');
	close(rfd);
	close(fd);
}

/* snapctl restore of a file whose size changed: the kernel keeps its own
 * size under the writeback cache; snapctl sets it through the mount. */
Test(wback, restore_sets_the_size_the_kernel_shows)
{
	const char *snapctl = getenv("SNAPCTL_BIN");
	cr_assert_not_null(snapctl, "SNAPCTL_BIN is not set (run the tests through ctest)");
	fx_mount("writeback");
	char old[LEN];
	fill(old, 'o', LEN);
	write_path(MP("f"), old, LEN);
	uint64_t id = pin1("f");
	int fd = open(MP("f"), O_RDWR);
	cr_assert(fd >= 0);
	pwrite_all(fd, "xyz", 3, 0);
	cr_assert_eq(ftruncate(fd, 50000), 0);
	close(fd);
	char cmd[4096], sid[32];
	snprintf(sid, sizeof(sid), "%llu", (unsigned long long)id);
	snprintf(cmd, sizeof(cmd), "cd '%s' && '%s' restore %s >/dev/null", mnt, snapctl, sid);
	cr_assert_eq(system(cmd), 0, "%s failed", cmd);
	struct stat st;
	cr_assert_eq(stat(MP("f"), &st), 0);
	cr_assert_eq(st.st_size, LEN, "size through the mount %lld after restore, expected %d",
		     (long long)st.st_size, LEN);
	char got[LEN + 16];
	ssize_t n = read_path(MP("f"), got, sizeof(got));
	expect_bytes("restored file", got, (size_t)(n < 0 ? 0 : n), old, LEN);
}

Test(wback, writeback_with_snapshot_open_is_refused)
{
	const char *argv[] = {"snapfs", "-f", "-o", "writeback,snapshot=open", src, mnt, NULL};
	char err[512];
	int rc = tu_run_snapfs(argv, err, sizeof(err));
	cr_assert_neq(rc, 0, "snapfs accepted writeback with snapshot=open");
	cr_assert_not_null(strstr(err, "writeback"), "message: %s", err);
	char *nl = strchr(err, '\n');
	cr_assert(nl && nl[1] == 0, "not one line: %s", err);
	cr_assert(!tu_is_snapfs_mount(mnt), "mounted anyway");
}

/* The capability answer is cached per inode (writes ask for it each time);
 * a capability set through the mount is seen at once and, as on any file
 * system, dropped by the next write. Both modes. */
static void capability_roundtrip(const char *opts)
{
	fx_mount(opts);
	write_path(MP("f"), "data", 4);
	int fd = open(MP("f"), O_WRONLY);
	cr_assert(fd >= 0);
	pwrite_all(fd, "x", 1, 0); /* the kernel asks: none, now cached */
	char v[64];
	cr_assert_eq(getxattr(MP("f"), "security.capability", v, sizeof(v)), -1);
	cr_assert_eq(errno, ENODATA);
	/* cap_net_bind_service+ep, VFS_CAP_REVISION_2 */
	const unsigned char cap[20] = {0x01, 0, 0, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
	cr_assert_eq(setxattr(MP("f"), "security.capability", cap, sizeof(cap), 0), 0,
		     "setxattr: %s", strerror(errno));
	ssize_t n = getxattr(MP("f"), "security.capability", v, sizeof(v));
	cr_assert_eq(n, (ssize_t)sizeof(cap), "getxattr after setxattr: %zd (%s)", n,
		     n < 0 ? strerror(errno) : "-");
	cr_assert_eq(getxattr(SP("f"), "security.capability", v, sizeof(v)), (ssize_t)sizeof(cap));
	pwrite_all(fd, "y", 1, 1);
	fsync(fd);
	cr_assert_eq(getxattr(SP("f"), "security.capability", v, sizeof(v)), -1,
		     "a write kept the capability in SOURCE");
	cr_assert_eq(getxattr(MP("f"), "security.capability", v, sizeof(v)), -1);
	cr_assert_eq(errno, ENODATA);
	close(fd);
}

Test(wback, capability_set_through_the_mount_is_seen_and_dropped_by_a_write)
{
	capability_roundtrip("nowriteback");
}

Test(wback, capability_set_through_the_mount_is_seen_and_dropped_by_a_write_writeback)
{
	capability_roundtrip("writeback");
}

/* Directory listings are cached by the kernel: a name the daemon recreates
 * (restore) shows in the next listing. */
static int listed(const char *dir, const char *name)
{
	DIR *d = opendir(dir);
	cr_assert_not_null(d, "opendir %s: %s", dir, strerror(errno));
	struct dirent *de;
	int found = 0;
	while ((de = readdir(d)))
		found |= strcmp(de->d_name, name) == 0;
	closedir(d);
	return found;
}

Test(wback, restore_recreating_a_file_shows_in_a_cached_listing)
{
	fx_mount(NULL);
	cr_assert_eq(mkdir(MP("d"), 0755), 0);
	write_path(MP("d/f"), "data", 4);
	uint64_t id = pin1("d/f");
	cr_assert_eq(unlink(MP("d/f")), 0);
	cr_assert(!listed(MP("d"), "f"));
	cr_assert(!listed(MP("d"), "f")); /* the second listing comes from the cache */
	struct snapfs_req *r = xmalloc(sizeof(*r));
	memset(r, 0, sizeof(*r));
	r->op = SNAPFS_OP_RESTORE;
	r->id = id;
	int rc = ctl(r);
	cr_assert_eq(rc, 0, "RESTORE: %s", strerror(-rc));
	free(r);
	cr_assert(listed(MP("d"), "f"), "the restored d/f is missing from the listing of d");
}
