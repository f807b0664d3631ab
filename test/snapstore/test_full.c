// SPDX-License-Identifier: MIT
/*
 * A full store: the store directory lives on its own small tmpfs, which the
 * test fills to the last block with a file. Release must still succeed and
 * give space back (the store keeps a reserve file it drops when a write of
 * its own meets ENOSPC), a write that needs a copy is refused with ENOSPC
 * and changes nothing, and a remount after all that marks no valid snapshot
 * stale. Needs root (mount).
 */
#include "fixture.h"

#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <signal.h>

static char fl_mnt[512];

static void fl_setup(void)
{
	fx_root = tu_tmpdir("full");
	tu_path(fx_src, sizeof(fx_src), fx_root, "src");
	tu_path(fl_mnt, sizeof(fl_mnt), fx_root, "mnt");
	tu_path(fx_dir, sizeof(fx_dir), fl_mnt, "store");
	cr_assert_eq(mkdir(fx_src, 0755), 0);
	cr_assert_eq(mkdir(fl_mnt, 0755), 0);
	cr_assert_eq(mount("tmpfs", fl_mnt, "tmpfs", 0, "size=24m"), 0, "mount tmpfs: %s",
		     strerror(errno));
	fx_srcfd = open(fx_src, O_DIRECTORY | O_RDONLY);
	cr_assert(fx_srcfd >= 0);
	fx_open_bs(4096, 0);
}

static void fl_teardown(void)
{
	if (fx_st)
		store_close(fx_st);
	fx_st = NULL;
	umount2(fl_mnt, MNT_DETACH);
	fx_teardown();
}

TestSuite(full, .init = fl_setup, .fini = fl_teardown, .timeout = 60);

static struct store_file *get(int fd)
{
	struct store_file *sf;
	cr_assert_eq(store_file_get(fx_st, fd, &sf), 0);
	return sf;
}

static uint64_t fs_free(void)
{
	struct statvfs v;
	cr_assert_eq(statvfs(fl_mnt, &v), 0);
	return (uint64_t)v.f_bavail * v.f_frsize;
}

/* Fill the store's filesystem to the last block. */
static void fill(void)
{
	char p[600];
	tu_path(p, sizeof(p), fl_mnt, "filler");
	int fd = open(p, O_WRONLY | O_CREAT | O_APPEND, 0600);
	cr_assert(fd >= 0);
	static char buf[65536];
	memset(buf, 0x77, sizeof(buf));
	for (size_t chunk = sizeof(buf); chunk >= 512; chunk /= 2)
		while (write(fd, buf, chunk) == (ssize_t)chunk)
			;
	close(fd);
	cr_assert_lt(fs_free(), 4096, "filesystem not full: %lu bytes free",
		     (unsigned long)fs_free());
}

#define FSZ (1 << 20)

/* f (1 MiB) pinned, then wholly overwritten through the hooks: 1 MiB held. */
static uint64_t pinned_and_overwritten(int fd, struct store_file *sf, char *orig)
{
	char *b = malloc(FSZ);
	tu_fill(orig, FSZ, 1);
	fx_pwrite(fd, orig, FSZ, 0);
	uint64_t id = fx_pin1(sf, fd, "f", STORE_PINNED);
	tu_fill(b, FSZ, 2);
	for (off_t o = 0; o < FSZ; o += 65536)
		cr_assert_eq(fx_cow_write(sf, fd, b + o, 65536, o), 0);
	free(b);
	return id;
}

Test(full, release_on_a_full_store_succeeds_and_frees_space)
{
	int fd = fx_file("f");
	struct store_file *sf = get(fd);
	char *orig = malloc(FSZ);
	uint64_t id = pinned_and_overwritten(fd, sf, orig);
	/* Many small pins and releases first, so the index has pages to free. */
	for (int i = 0; i < 50; i++)
		cr_assert_eq(store_release(fx_st, fx_pin1(sf, fd, "f", STORE_PINNED)), 0);
	fill();
	uint64_t before = fs_free();
	int rc = store_release(fx_st, id);
	cr_assert_eq(rc, 0, "release on a full store: %s", strerror(-rc));
	cr_assert_gt(fs_free(), before + FSZ / 2, "release freed %lu bytes",
		     (unsigned long)(fs_free() - before));
	fx_check();
	store_file_put(sf);
	close(fd);
	free(orig);
}

Test(full, full_store_refuses_copies_and_a_remount_keeps_snapshots_valid)
{
	int fd = fx_file("f");
	struct store_file *sf = get(fd);
	char *orig = malloc(FSZ);
	tu_fill(orig, FSZ, 1);
	fx_pwrite(fd, orig, FSZ, 0);
	uint64_t id = fx_pin1(sf, fd, "f", STORE_PINNED);
	fill();
	/* A write that needs a copy is refused and changes nothing. */
	char x[8192];
	memset(x, 'x', sizeof(x));
	cr_assert_eq(fx_cow_write(sf, fd, x, sizeof(x), 0), -ENOSPC);
	fx_expect_snap(id, store_file_fid(sf), orig, FSZ);
	/* Writes that need no copy (past the snapshot's end) go on for longer than
	 * the alive promise of the last tick before the store filled up; the store
	 * ticks every second as the daemon does. */
	for (int i = 0; i < 3; i++) {
		usleep(1100000);
		cr_assert_eq(fx_cow_write(sf, fd, x, sizeof(x), FSZ + i * 8192), 0);
		int rc = store_tick(fx_st);
		cr_assert(rc == 0 || rc == -ENOSPC, "tick: %s", strerror(-rc));
	}
	store_file_put(sf);
	close(fd);
	store_close(fx_st);
	fx_st = NULL;
	fx_open_bs(4096, 0);
	struct store_snap_meta m;
	cr_assert_eq(store_snap_meta(fx_st, id, &m), 0);
	cr_assert_eq(m.state, STORE_VALID, "a valid snapshot turned stale at remount");
	fx_expect_snap(id, 1, orig, FSZ);
	cr_assert_eq(store_release(fx_st, id), 0);
	fx_check();
	free(orig);
}

Test(full, reopen_of_a_crashed_full_store_works)
{
	int fd = fx_file("f");
	char *orig = malloc(FSZ);
	tu_fill(orig, FSZ, 1);
	fx_pwrite(fd, orig, FSZ, 0);
	store_close(fx_st);
	fx_st = NULL;
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) { /* a daemon that pins, fills the store's filesystem and dies */
		struct store_opts o = {0};
		struct store *st;
		struct store_file *sf;
		if (store_open(fx_dir, fx_srcfd, &o, &st) || store_file_get(st, fd, &sf))
			_exit(1);
		struct store_pin p = {.kind = STORE_PINNED};
		struct store_pin_file f = {.sf = sf, .fd = fd, .path = "f"};
		uint64_t id;
		if (store_pin(st, &p, &f, 1, &id))
			_exit(1);
		fx_st = st;
		fill();
		raise(SIGKILL);
	}
	int status;
	waitpid(pid, &status, 0);
	cr_assert(WIFSIGNALED(status), "child failed: %#x", status);
	cr_assert_lt(fs_free(), 4096);
	fx_open_bs(4096, 0);
	struct store_snap_meta m;
	cr_assert_eq(store_snap_meta(fx_st, 1, &m), 0);
	cr_assert_eq(m.state, STORE_VALID);
	fx_expect_snap(1, 1, orig, FSZ);
	cr_assert_eq(store_release(fx_st, 1), 0);
	fx_check();
	close(fd);
	free(orig);
}
