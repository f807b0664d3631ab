// SPDX-License-Identifier: MIT
/*
 * Tree snapshots and kill -9 of the daemon (issue 10: crash durability):
 * round after round a tree is pinned, one change is made through the mount
 * (each kind in turn: chmod, chown, utimens, setxattr, removexattr, link,
 * unlink of one of two links, renames within and across directories and
 * over a file, truncate, append, mkdir, symlink, rmdir, a directory
 * rename), and the daemon is killed right after it answered, well before
 * its next once-a-second tick. Remounted, every tree snapshot taken so far
 * is listed, valid (not stale) and its view equals the manifest of the live
 * tree at its pin. A change of ours that completed must never make a
 * snapshot stale: the node's store lock is held from the save to the end of
 * the change, whose unlock records what the file shows then.
 */
#include "treeutil.h"

#include <sys/mount.h>
#include <utime.h>

TestSuite(crash, .init = fx_setup, .fini = tr_teardown, .timeout = 900);

static void kill_daemon(void)
{
	cr_assert_eq(kill(m.pid, SIGKILL), 0);
	int st;
	waitpid(m.pid, &st, 0);
	m.pid = 0;
	cr_assert_eq(umount2(mnt, MNT_DETACH), 0, "umount -l: %s", strerror(errno));
	tu_umount(&m); /* forget the dead mount */
}

static void build(void)
{
	mkdir_p(SP("t"), 0755);
	mkdir_p(SP("t/a"), 0755);
	mkdir_p(SP("t/b"), 0755);
	mkdir_p(SP("t/b/sub"), 0755);
	put_file(SP("t/a/f1"), 20000, 1, 0);
	put_file(SP("t/a/f2"), 9000, 2, 0);
	put_file(SP("t/b/g"), 5000, 3, 0);
	put_file(SP("t/b/h1"), 3000, 4, 0);
	cr_assert_eq(link(SP("t/b/h1"), SP("t/b/h2")), 0);
	cr_assert_eq(symlink("a/f1", SP("t/l")), 0);
	cr_assert_eq(setxattr(SP("t/a/f2"), "user.x", "1", 1, 0), 0);
}

static void append(const char *p)
{
	int fd = open(p, O_WRONLY | O_APPEND);
	cr_assert(fd >= 0, "%s: %s", p, strerror(errno));
	cr_assert_eq(write(fd, "more", 4), 4);
	close(fd);
}

/* Change k through the mount (0 or -1 when k is past the last). */
static int change(int k)
{
	switch (k) {
	case 0:
		return chmod(MP("t/a/f1"), 0600);
	case 1:
		return chown(MP("t/a/f2"), 1000, 1000);
	case 2:
		return utime(MP("t/b/g"), &(struct utimbuf){.actime = 1000, .modtime = 2000});
	case 3:
		return setxattr(MP("t/a/f2"), "user.y", "22", 2, 0);
	case 4:
		return removexattr(MP("t/a/f2"), "user.x");
	case 5:
		return link(MP("t/a/f1"), MP("t/b/f1link"));
	case 6:
		return unlink(MP("t/b/h2"));
	case 7:
		return rename(MP("t/a/f1"), MP("t/a/f1r"));
	case 8:
		return rename(MP("t/b/g"), MP("t/a/g"));
	case 9:
		return rename(MP("t/a/g"), MP("t/b/f1link")); /* over one of two links */
	case 10:
		return truncate(MP("t/a/f2"), 10);
	case 11:
		append(MP("t/a/f1r"));
		return 0;
	case 12:
		return mkdir(MP("t/b/new"), 0700);
	case 13:
		return symlink("../l", MP("t/b/new/ln"));
	case 14:
		return rmdir(MP("t/b/sub"));
	case 15:
		return rename(MP("t/a"), MP("t/b/new/a"));
	}
	return -1;
}

Test(crash, kill_9_right_after_each_change_leaves_every_tree_valid)
{
	enum { NK = 16 };
	build();
	fx_mount(NULL);
	uint64_t ids[NK];
	struct mf *want[NK];
	for (int k = 0; k < NK; k++) {
		ids[k] = pin_tree("t");
		want[k] = mf_take(MP("t"), MF_MTIME | MF_NLINK);
		cr_assert_eq(change(k), 0, "change %d: %s", k, strerror(errno));
		kill_daemon();
		fx_mount(NULL);
		for (int i = 0; i <= k; i++) {
			struct snapfs_rec_snap rec;
			cr_assert(listed_snap(ids[i], &rec),
				  "killed after change %d: snapshot %" PRIu64 " lost", k, ids[i]);
			cr_assert_eq(
			    rec.state, 0,
			    "killed right after change %d (a change the daemon completed): "
			    "snapshot %" PRIu64 " (pinned before change %d) is stale",
			    k, ids[i], i);
			char what[96];
			snprintf(what, sizeof(what), "killed after change %d, snapshot of round %d",
				 k, i);
			struct mf *got = mf_take(VR(ids[i], "t"), MF_MTIME | MF_NLINK);
			mf_expect(what, got, want[i], MF_MTIME | MF_NLINK);
			mf_free(got);
		}
	}
	cr_assert_eq(change(NK), -1, "a change left out of the rounds");
	for (int k = 0; k < NK; k++) {
		release(ids[k]);
		mf_free(want[k]);
	}
}
