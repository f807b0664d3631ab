/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the test suites: scratch directories under /dev/shm,
 * recursive removal, and mounting the snapfs daemon with a guaranteed
 * unmount. The daemon binary comes from $SNAPFS_BIN (set by ctest).
 */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A fresh directory under /dev/shm (tmpfs), or under $SNAPFS_TEST_DIR when
 * set (the backing matrix, test/backing); the caller owns the string. */
char *tu_tmpdir(const char *tag);
/* rm -rf path; never follows symlinks out of the tree. */
void tu_rm_rf(const char *path);
/* Join two path parts into a static-sized buffer; aborts the test on overflow. */
void tu_path(char *buf, size_t len, const char *a, const char *b);

/* Write/read a whole file; return 0 or -errno. */
int tu_write_file(const char *path, const void *buf, size_t len);
ssize_t tu_read_file(const char *path, void *buf, size_t len);

/* Deterministic xorshift64* generator. */
uint64_t tu_rand(uint64_t *state);
void tu_fill(void *buf, size_t len, uint64_t seed);
/* The number of open descriptors of process pid (-1 if /proc says nothing). */
int tu_count_fds(pid_t pid);

struct tu_mount {
	char source[512];
	char mnt[512];
	pid_t pid; /* daemon pid (foreground daemon started by us) */
};

/*
 * Start `snapfs -f [opts] source mnt` and wait until the mount is live
 * (st_dev of mnt changes), at most 10 s. opts may be NULL. Returns 0, or -1
 * with the daemon's stderr left in errbuf when it exits instead.
 * With $SNAPFS_TEST_STORE set and no store= in opts, adds
 * store=$SNAPFS_TEST_STORE/<source's last component> (the backing matrix's
 * store on another filesystem). Registers an atexit handler that lazily unmounts and kills the
 * daemon, so a failing test never leaves a mount behind.
 */
int tu_mount(struct tu_mount *m, const char *source, const char *mnt, const char *opts);
/* tu_mount() with the daemon started under RLIMIT_NOFILE soft:hard (set in
 * the child before exec, as `prlimit --nofile=soft:hard` would). */
int tu_mount_nofile(struct tu_mount *m, const char *source, const char *mnt, const char *opts,
		    unsigned long soft, unsigned long hard);
/* Unmount (fusermount3 -u, then lazy) and reap the daemon; returns its exit status. */
int tu_umount(struct tu_mount *m);
/* Run the daemon with args and return its exit status; stderr into errbuf. */
int tu_run_snapfs(const char *const argv[], char *errbuf, size_t errlen);
/* True when path is a mount point of type fuse.snapfs. */
int tu_is_snapfs_mount(const char *path);

#endif
