// SPDX-License-Identifier: MIT
/*
 * Mount behaviour: the store is invisible and untouchable through the
 * mount, SOURCE may be the mount point, /proc/mounts names the filesystem,
 * every bad input fails cleanly (one line, non-zero exit, nothing mounted,
 * nothing created), and with allow_other other users are served as the
 * kernel would serve them on the bare filesystem.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "testutil.h"

static char *src, *mnt, *other;
static struct tu_mount m;

static void setup(void)
{
	umask(022);
	src = tu_tmpdir("msrc");
	mnt = tu_tmpdir("mmnt");
	other = tu_tmpdir("mother");
}

static void teardown(void)
{
	tu_umount(&m);
	tu_rm_rf(src);
	tu_rm_rf(mnt);
	tu_rm_rf(other);
	free(src);
	free(mnt);
	free(other);
}

TestSuite(mount, .init = setup, .fini = teardown, .timeout = 60);

static const char *J(const char *a, const char *b)
{
	static char buf[8][1024];
	static int i;
	char *p = buf[i++ & 7];
	tu_path(p, 1024, a, b);
	return p;
}

static int listed(const char *dir, const char *name)
{
	DIR *d = opendir(dir);
	cr_assert_not_null(d, "opendir %s: %s", dir, strerror(errno));
	struct dirent *de;
	int found = 0;
	while ((de = readdir(d)))
		found |= !strcmp(de->d_name, name);
	closedir(d);
	return found;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

#define EXPECT_ERR(call, err)                                                                      \
	do {                                                                                       \
		errno = 0;                                                                         \
		long r_ = (long)(call);                                                            \
		int e_ = errno;                                                                    \
		cr_expect(r_ == -1 && e_ == (err), "%s: got %ld %s, expected -1 %s", #call, r_,    \
			  strerror(e_), strerror(err));                                            \
	} while (0)

/* Everything a user could try on the store's name through the mount. */
static void check_store_hidden(const char *dir_, const char *name, const char *store_)
{
	char dir[1024], store_backing[1024], p[1024];
	snprintf(dir, sizeof(dir), "%s", dir_); /* J()'s buffers rotate */
	snprintf(store_backing, sizeof(store_backing), "%s", store_);
	tu_path(p, sizeof(p), dir, name);
	struct stat st;
	cr_expect(!listed(dir, name), "%s is listed in %s", name, dir);
	EXPECT_ERR(lstat(p, &st), ENOENT);
	EXPECT_ERR(open(p, O_RDONLY), ENOENT);
	EXPECT_ERR(open(J(p, "marker"), O_RDONLY), ENOENT);
	EXPECT_ERR(open(p, O_CREAT | O_WRONLY, 0644), EPERM);
	EXPECT_ERR(mkdir(p, 0755), EPERM);
	EXPECT_ERR(mknod(p, S_IFIFO | 0644, 0), EPERM);
	EXPECT_ERR(symlink("x", p), EPERM);
	cr_assert_eq(tu_write_file(J(dir, "victim"), "v", 1), 0);
	EXPECT_ERR(rename(J(dir, "victim"), p), EPERM);
	/* the name does not exist through the mount, so there is nothing to exchange with */
	EXPECT_ERR(renameat2(AT_FDCWD, J(dir, "victim"), AT_FDCWD, p, RENAME_EXCHANGE), ENOENT);
	EXPECT_ERR(link(J(dir, "victim"), p), EPERM);
	EXPECT_ERR(rename(p, J(dir, "stolen")), ENOENT);
	EXPECT_ERR(unlink(p), ENOENT);
	EXPECT_ERR(rmdir(p), ENOENT);
	EXPECT_ERR(chmod(p, 0777), ENOENT);
	EXPECT_ERR(truncate(p, 0), ENOENT);
	EXPECT_ERR(getxattr(p, "user.x", NULL, 0), ENOENT);
	EXPECT_ERR(access(p, F_OK), ENOENT);
	/* a symlink pointing at it resolves through the mount: still nothing */
	cr_assert_eq(symlink(name, J(dir, "tostore")), 0);
	EXPECT_ERR(open(J(dir, "tostore/marker"), O_RDONLY), ENOENT);
	/* rm -rf of the directory holding it removes everything else and leaves the store */
	cr_assert_eq(mkdir(J(dir, "sub"), 0755), 0);
	cr_assert_eq(tu_write_file(J(dir, "sub/f"), "f", 1), 0);
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 2);
		execlp("rm", "rm", "-rf", "--", p, J(dir, "victim"), J(dir, "sub"),
		       J(dir, "tostore"), (char *)NULL);
		_exit(127);
	}
	int status;
	waitpid(pid, &status, 0);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "rm -rf exit %d", status);
	tu_rm_rf(dir); /* nftw over the mount: removes everything visible */
	cr_expect_eq(count_entries(dir), 0, "%s not empty after rm -rf", dir);
	cr_expect_eq(lstat(store_backing, &st), 0, "store %s gone: %s", store_backing,
		     strerror(errno));
	cr_expect(S_ISDIR(st.st_mode));
	cr_expect_eq(access(J(store_backing, "marker"), F_OK), 0, "store content gone");
	EXPECT_ERR(lstat(p, &st), ENOENT);
}

Test(mount, default_store_is_hidden_and_untouchable)
{
	cr_assert_eq(tu_mount(&m, src, mnt, NULL), 0, "mount failed");
	const char *store = J(src, ".snapfs");
	struct stat st;
	cr_assert_eq(stat(store, &st), 0, "default store %s not created", store);
	cr_assert_eq(tu_write_file(J(store, "marker"), "m", 1), 0);
	check_store_hidden(mnt, ".snapfs", store);
	/* the root's link count does not count the hidden store */
	cr_assert_eq(stat(mnt, &st), 0);
	cr_expect_eq(st.st_nlink, 2, "root nlink %lu, expected 2", (unsigned long)st.st_nlink);
	cr_expect_eq(tu_umount(&m), 0);
}

Test(mount, custom_store_inside_source_is_hidden_and_untouchable)
{
	cr_assert_eq(mkdir(J(src, "sub"), 0755), 0);
	char opt[1200];
	snprintf(opt, sizeof(opt), "store=%s/sub/mystore", src);
	cr_assert_eq(tu_mount(&m, src, mnt, opt), 0, "mount with %s failed", opt);
	const char *store = J(src, "sub/mystore");
	cr_assert_eq(tu_write_file(J(store, "marker"), "m", 1), 0);
	cr_expect_neq(access(J(src, ".snapfs"), F_OK), 0, "default .snapfs created despite store=");
	/* a ".snapfs" made through the mount is an ordinary directory now */
	cr_expect_eq(mkdir(J(mnt, ".snapfs"), 0755), 0, "mkdir .snapfs: %s", strerror(errno));
	cr_expect_eq(rmdir(J(mnt, ".snapfs")), 0);
	check_store_hidden(J(mnt, "sub"), "mystore", store);
	cr_expect_eq(tu_umount(&m), 0);
}

Test(mount, store_outside_source_leaves_source_untouched)
{
	char opt[1200];
	snprintf(opt, sizeof(opt), "store=%s/st", other);
	cr_assert_eq(tu_mount(&m, src, mnt, opt), 0, "mount with %s failed", opt);
	cr_expect_eq(count_entries(mnt), 0);
	cr_expect_eq(access(J(other, "st"), F_OK), 0, "store %s/st not created", other);
	cr_expect_eq(mkdir(J(mnt, "st"), 0755), 0, "a name like the store's elsewhere: %s",
		     strerror(errno));
	cr_expect_eq(tu_umount(&m), 0);
	cr_expect_eq(count_entries(src), 1, "SOURCE holds %d entries", count_entries(src));
}

Test(mount, source_equal_to_mountpoint_serves_and_keeps_data)
{
	cr_assert_eq(tu_write_file(J(src, "old"), "pre-existing", 12), 0);
	cr_assert_eq(mkdir(J(src, "olddir"), 0755), 0);
	cr_assert_eq(tu_write_file(J(src, "olddir/f"), "inner", 5), 0);
	cr_assert_eq(tu_mount(&m, src, src, NULL), 0, "mount of %s on itself failed", src);
	cr_assert(tu_is_snapfs_mount(src));
	char buf[64] = {0};
	cr_expect_eq(tu_read_file(J(src, "old"), buf, sizeof(buf)), 12);
	cr_expect_str_eq(buf, "pre-existing");
	cr_expect_eq(tu_read_file(J(src, "olddir/f"), buf, sizeof(buf)), 5);
	cr_expect(!listed(src, ".snapfs"), ".snapfs listed through the mount");
	cr_assert_eq(tu_write_file(J(src, "new"), "made through the mount", 22), 0);
	cr_assert_eq(mkdir(J(src, "newdir"), 0700), 0);
	cr_assert_eq(rename(J(src, "old"), J(src, "newdir/old")), 0);
	cr_expect_eq(tu_umount(&m), 0);
	cr_assert(!tu_is_snapfs_mount(src), "still mounted");
	memset(buf, 0, sizeof(buf));
	cr_expect_eq(tu_read_file(J(src, "new"), buf, sizeof(buf)), 22, "new file not in SOURCE");
	cr_expect_str_eq(buf, "made through the mount");
	cr_expect_eq(access(J(src, "newdir/old"), F_OK), 0);
	cr_expect_neq(access(J(src, "old"), F_OK), 0);
	struct stat st;
	cr_expect(stat(J(src, ".snapfs"), &st) == 0 && S_ISDIR(st.st_mode), "store not in SOURCE");
	/* and it mounts again over the same directory */
	cr_assert_eq(tu_mount(&m, src, src, NULL), 0, "second mount failed");
	cr_expect_eq(tu_read_file(J(src, "new"), buf, sizeof(buf)), 22);
	cr_expect_eq(tu_umount(&m), 0);
}

Test(mount, proc_mounts_shows_fuse_snapfs_with_source_as_device)
{
	cr_assert_eq(tu_mount(&m, src, mnt, NULL), 0);
	FILE *f = fopen("/proc/self/mounts", "r");
	cr_assert_not_null(f);
	char line[4096], dev[1024], mp[1024], type[64], opts[1024];
	int found = 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%1023s %1023s %63s %1023s", dev, mp, type, opts) == 4 &&
		    !strcmp(mp, mnt)) {
			found = 1;
			cr_expect_str_eq(type, "fuse.snapfs");
			cr_expect_str_eq(dev, src);
		}
	fclose(f);
	cr_expect(found, "%s not in /proc/self/mounts", mnt);
	cr_expect_eq(tu_umount(&m), 0, "daemon exit status not 0 after unmount");
	cr_expect(!tu_is_snapfs_mount(mnt));
}

Test(mount, ro_option_refuses_changes_with_erofs)
{
	cr_assert_eq(tu_write_file(J(src, "f"), "x", 1), 0);
	cr_assert_eq(tu_mount(&m, src, mnt, "ro"), 0);
	char b[4];
	cr_expect_eq(tu_read_file(J(mnt, "f"), b, 4), 1);
	EXPECT_ERR(open(J(mnt, "f"), O_WRONLY), EROFS);
	EXPECT_ERR(mkdir(J(mnt, "d"), 0755), EROFS);
	EXPECT_ERR(unlink(J(mnt, "f")), EROFS);
	cr_expect_eq(tu_umount(&m), 0);
}

/* ------------------------------------------------------------ bad input */

struct bad {
	const char *what;
	const char *
	    args[8]; /* after argv[0] and -f; "@S" = src, "@M" = mnt, "@O" = other, "@F" = a file */
	const char *needle; /* the stderr line must name the problem */
};

static void expand(const char *in, char *out, size_t len)
{
	const char *p = in;
	out[0] = 0;
	while (*p) {
		const char *at = strchr(p, '@');
		if (!at) {
			strncat(out, p, len - strlen(out) - 1);
			break;
		}
		strncat(out, p, (size_t)(at - p) < len - strlen(out) - 1 ? (size_t)(at - p) : 0);
		const char *rep = at[1] == 'S'	 ? src
				  : at[1] == 'M' ? mnt
				  : at[1] == 'O' ? other
						 : J(other, "file");
		strncat(out, rep, len - strlen(out) - 1);
		p = at + 2;
	}
}

/*
 * Run the daemon with argv as uid as (0: root); its exit status, its stderr
 * in err. A daemon that mounts instead of failing is killed after 10 s
 * (SIGALRM survives exec) so that a regression fails the test rather than
 * hanging it; the caller unmounts what it left.
 */
static int run_argv(const char *const *argv, uid_t as, char *err, size_t errlen)
{
	int pfd[2];
	cr_assert(pipe(pfd) == 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		dup2(pfd[1], 2);
		close(pfd[0]);
		if (as && (setgroups(0, NULL) || setgid(as) || setuid(as)))
			_exit(126);
		alarm(10);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	ssize_t got = 0, r;
	while ((r = read(pfd[0], err + got, errlen - 1 - got)) > 0)
		got += r;
	err[got] = 0;
	close(pfd[0]);
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void run_bad(const struct bad *b, uid_t as)
{
	char ex[8][1200];
	const char *argv[12];
	int n = 0;
	argv[n++] = getenv("SNAPFS_BIN");
	cr_assert_not_null(argv[0]);
	argv[n++] = "-f";
	for (int i = 0; b->args[i]; i++) {
		expand(b->args[i], ex[i], sizeof(ex[i]));
		argv[n++] = ex[i];
	}
	argv[n] = NULL;
	int before = count_entries(src);
	char err[4096];
	int rc = run_argv(argv, as, err, sizeof(err));
	if (tu_is_snapfs_mount(mnt)) { /* never leave it behind */
		struct tu_mount t = {0};
		snprintf(t.mnt, sizeof(t.mnt), "%s", mnt);
		tu_umount(&t);
		umount2(mnt, MNT_DETACH); /* a daemon killed by the alarm */
		cr_expect_fail("%s: mounted", b->what);
	}
	cr_expect_neq(rc, 0, "%s: exit status 0", b->what);
	cr_expect(!tu_is_snapfs_mount(mnt), "%s: left a mount", b->what);
	size_t len = strlen(err);
	int lines = 0;
	for (size_t i = 0; i < len; i++)
		lines += err[i] == '\n';
	cr_expect(lines == 1 && len > 1 && err[len - 1] == '\n',
		  "%s: stderr is not one line: \"%s\"", b->what, err);
	cr_expect(strstr(err, b->needle) != NULL, "%s: stderr \"%s\" does not name \"%s\"", b->what,
		  err, b->needle);
	cr_expect_eq(count_entries(src), before, "%s: SOURCE changed (%d entries, was %d)", b->what,
		     count_entries(src), before);
	cr_expect_neq(access(J(src, ".snapfs"), F_OK), 0, "%s: .snapfs left behind", b->what);
	cr_expect_neq(access(J(other, "st"), F_OK), 0, "%s: store left behind", b->what);
}

Test(mount, bad_input_fails_with_one_line_and_changes_nothing)
{
	cr_assert_eq(tu_write_file(J(other, "file"), "f", 1), 0);
	static const struct bad cases[] = {
	    {"unknown option", {"-o", "bogus_option", "@S", "@M"}, "bogus_option"},
	    {"unknown option with value", {"-o", "frobnicate=3", "@S", "@M"}, "frobnicate"},
	    {"missing SOURCE", {NULL}, "SOURCE"},
	    {"missing MOUNTPOINT", {"@S"}, "MOUNTPOINT"},
	    {"extra argument", {"@S", "@M", "extra"}, "extra"},
	    {"nonexistent SOURCE", {"@S/nope", "@M"}, "nope"},
	    {"SOURCE a regular file", {"@F", "@M"}, "not a directory"},
	    {"nonexistent MOUNTPOINT", {"@S", "@M/nope"}, "nope"},
	    {"MOUNTPOINT a regular file", {"@S", "@F"}, "not a directory"},
	    {"bad snapshot=", {"-o", "snapshot=sometimes", "@S", "@M"}, "snapshot="},
	    {"empty snapshot=", {"-o", "snapshot=", "@S", "@M"}, "snapshot="},
	    {"block_size= not a power of two",
	     {"-o", "block_size=1000", "@S", "@M"},
	     "block_size="},
	    {"block_size= zero", {"-o", "block_size=0", "@S", "@M"}, "block_size="},
	    {"block_size= not a number", {"-o", "block_size=4k", "@S", "@M"}, "block_size="},
	    {"block_size= too large", {"-o", "block_size=2147483648", "@S", "@M"}, "block_size="},
	    {"snapdir= with a slash", {"-o", "snapdir=a/b", "@S", "@M"}, "snapdir="},
	    {"snapdir= ..", {"-o", "snapdir=..", "@S", "@M"}, "snapdir="},
	    {"snapdir= empty", {"-o", "snapdir=", "@S", "@M"}, "snapdir="},
	    {"bad store_max=", {"-o", "store_max=lots", "@S", "@M"}, "store_max="},
	    {"negative store_max=", {"-o", "store_max=-5G", "@S", "@M"}, "store_max="},
	    {"store_max=-1", {"-o", "store_max=-1", "@S", "@M"}, "store_max="},
	    {"store_max= past 2^64 (digits)",
	     {"-o", "store_max=99999999999999999999G", "@S", "@M"},
	     "store_max="},
	    {"store_max= past 2^64 (unit)", {"-o", "store_max=16E", "@S", "@M"}, "store_max="},
	    {"store_max= in hex", {"-o", "store_max=0x10", "@S", "@M"}, "store_max="},
	    {"bad log_level=", {"-o", "log_level=loud", "@S", "@M"}, "log_level="},
	    {"bad timeout=", {"-o", "timeout=-5", "@S", "@M"}, "timeout="},
	    {"writeback with snapshot=open",
	     {"-o", "writeback,snapshot=open", "@S", "@M"},
	     "writeback"},
	    {"store under a regular file", {"-o", "store=@F/st", "@S", "@M"}, "store"},
	    {"store in a missing directory", {"-o", "store=@S/no/such/st", "@S", "@M"}, "store"},
	    {"store is SOURCE", {"-o", "store=@S", "@S", "@M"}, "store"},
	    {"store is a regular file", {"-o", "store=@F", "@S", "@M"}, "store"},
	    {"good store, missing MOUNTPOINT", {"-o", "store=@O/st", "@S", "@M/nope"}, "nope"},
	    {"store inside MOUNTPOINT", {"-o", "store=@M/st", "@S", "@M"}, "inside MOUNTPOINT"},
	    {"store is MOUNTPOINT", {"-o", "store=@M", "@S", "@M"}, "inside MOUNTPOINT"},
	    /* the store is made, then the kernel refuses the mount (fuseblk
	     * wants a block device): the store goes again, libfuse's own
	     * message is part of our one line */
	    {"mount refused by the kernel", {"-o", "blkdev", "@S", "@M"}, "cannot mount"},
	    {"mount refused, store= elsewhere",
	     {"-o", "blkdev,store=@O/st", "@S", "@M"},
	     "cannot mount"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		run_bad(&cases[i], 0);
		cr_expect_eq(count_entries(mnt), 0, "%s: MOUNTPOINT changed", cases[i].what);
	}
	/* the store= under other/ must never have been created */
	cr_expect_neq(access(J(other, "st"), F_OK), 0);
}

static int mounts_on(const char *path);

/* Run the daemon (foreground) with args; its exit status, its stderr in err. */
static int run_daemon(char *err, size_t len, const char *a1, const char *a2, const char *a3,
		      const char *a4)
{
	const char *argv[] = {getenv("SNAPFS_BIN"), "-f", a1, a2, a3, a4, NULL};
	cr_assert_not_null(argv[0]);
	int rc = run_argv(argv, 0, err, len);
	/* a regression may have stacked a second mount: take it off again */
	char where[1100];
	snprintf(where, sizeof(where), "%s", a2);
	if (strlen(where) > 1 && where[strlen(where) - 1] == '/')
		where[strlen(where) - 1] = 0;
	while (rc != 0 && mounts_on(where) > 1)
		umount2(where, MNT_DETACH);
	return rc;
}

static int one_line(const char *s)
{
	size_t len = strlen(s);
	return len > 1 && s[len - 1] == '\n' && strchr(s, '\n') == s + len - 1;
}

/* How many mounts /proc/self/mountinfo lists on path. */
static int mounts_on(const char *path)
{
	char want[1100], line[4096];
	snprintf(want, sizeof(want), " %s ", path);
	FILE *f = fopen("/proc/self/mountinfo", "r");
	cr_assert_not_null(f);
	int n = 0;
	while (fgets(line, sizeof(line), f)) {
		char *p = strchr(line, ' ');
		for (int i = 0; p && i < 3; i++) /* fields 5: mount point */
			p = strchr(p + 1, ' ');
		n += p && strncmp(p, want, strlen(want)) == 0;
	}
	fclose(f);
	return n;
}

static void expect_first_mount_untouched(const char *where)
{
	char buf[16] = {0};
	cr_expect(tu_is_snapfs_mount(where), "the first mount is gone");
	cr_expect_eq(mounts_on(where), 1, "%d mounts on %s", mounts_on(where), where);
	cr_expect_eq(tu_read_file(J(where, "first"), buf, sizeof(buf)), 5,
		     "first mount unreadable");
	cr_expect_str_eq(buf, "first");
}

Test(mount, second_mount_on_an_occupied_mountpoint_says_already_mounted)
{
	cr_assert_eq(tu_mount(&m, src, mnt, NULL), 0);
	cr_assert_eq(tu_write_file(J(mnt, "first"), "first", 5), 0);
	char err[4096];
	int rc = run_daemon(err, sizeof(err), other, mnt, NULL, NULL);
	cr_expect_neq(rc, 0, "second mount exit 0");
	cr_expect(one_line(err) && strstr(err, "already mounted"), "stderr: \"%s\"", err);
	cr_expect_eq(count_entries(other), 0, "the second SOURCE got a store");
	expect_first_mount_untouched(mnt);
	/* the same SOURCE again, and through the mount helper's spelling */
	rc = run_daemon(err, sizeof(err), src, mnt, NULL, NULL);
	cr_expect_neq(rc, 0);
	cr_expect(one_line(err) && strstr(err, "already mounted"), "stderr: \"%s\"", err);
	char slash[1100];
	snprintf(slash, sizeof(slash), "%s/", mnt);
	rc = run_daemon(err, sizeof(err), other, slash, NULL, NULL);
	cr_expect_neq(rc, 0);
	cr_expect(one_line(err) && strstr(err, "already mounted"), "stderr: \"%s\"", err);
	expect_first_mount_untouched(mnt);
	cr_expect_eq(tu_umount(&m), 0);
}

Test(mount, directory_mounted_on_itself_twice_says_already_mounted)
{
	cr_assert_eq(tu_mount(&m, src, src, NULL), 0);
	cr_assert_eq(tu_write_file(J(src, "first"), "first", 5), 0);
	char err[4096];
	int rc = run_daemon(err, sizeof(err), src, src, NULL, NULL);
	cr_expect_neq(rc, 0, "second mount exit 0");
	cr_expect(one_line(err) && strstr(err, "already mounted"), "stderr: \"%s\"", err);
	expect_first_mount_untouched(src);
	cr_expect_eq(tu_umount(&m), 0);
}

Test(mount, store_inside_source_equal_to_mountpoint_is_accepted)
{
	char opt[1200];
	cr_assert_eq(mkdir(J(src, "sub"), 0755), 0);
	snprintf(opt, sizeof(opt), "store=%s/sub/st", src);
	cr_assert_eq(tu_mount(&m, src, src, opt), 0, "mount -o %s of SOURCE on itself", opt);
	cr_expect(!listed(J(src, "sub"), "st"), "store listed through the mount");
	cr_expect_eq(tu_umount(&m), 0);
	cr_expect_eq(access(J(src, "sub/st/index.db"), F_OK), 0, "no store made in sub/st");
}

/* Make a store with one file, then break it with fn; mounting must fail with
 * one line naming the store by its path. */
static void corrupt_store_case(const char *what, void (*fn)(const char *store))
{
	char store[1100];
	snprintf(store, sizeof(store), "%s/.snapfs", src);
	tu_rm_rf(store);
	cr_assert_eq(tu_mount(&m, src, mnt, NULL), 0);
	cr_assert_eq(tu_write_file(J(mnt, "f"), "data", 4), 0);
	cr_assert_eq(tu_umount(&m), 0);
	fn(store);
	char err[4096];
	int rc = run_daemon(err, sizeof(err), src, mnt, NULL, NULL);
	if (rc == 0 || tu_is_snapfs_mount(mnt)) {
		struct tu_mount t = {0};
		snprintf(t.mnt, sizeof(t.mnt), "%s", mnt);
		tu_umount(&t);
	}
	cr_expect_neq(rc, 0, "%s: mounted", what);
	cr_expect(one_line(err), "%s: not one line: \"%s\"", what, err);
	cr_expect(strstr(err, store) && !strstr(err, "/proc/self"),
		  "%s: does not name the store by its path: \"%s\"", what, err);
	cr_expect(strstr(err, "corrupt"), "%s: does not say corrupt: \"%s\"", what, err);
}

static void garble_index(const char *store)
{
	int fd = open(J(store, "index.db"), O_WRONLY);
	cr_assert(fd >= 0);
	cr_assert_eq(pwrite(fd, "garbage garbage garbage garbage", 31, 0), 31);
	close(fd);
}

static void truncate_index(const char *store)
{
	cr_assert_eq(truncate(J(store, "index.db"), 100), 0);
}

static void empty_index(const char *store)
{
	cr_assert_eq(truncate(J(store, "index.db"), 0), 0);
}

static void remove_blocks(const char *store)
{
	cr_assert_eq(unlink(J(store, "blocks")), 0);
}

Test(mount, corrupt_index_fails_with_one_line_naming_the_store)
{
	corrupt_store_case("garbled index header", garble_index);
	corrupt_store_case("index truncated to 100 bytes", truncate_index);
	corrupt_store_case("index emptied", empty_index);
	corrupt_store_case("block file removed", remove_blocks);
}

Test(mount, raises_soft_descriptor_limit_to_the_hard_limit)
{
	struct stat before;
	cr_assert_eq(stat(mnt, &before), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		execlp("prlimit", "prlimit", "--nofile=1024:20000", getenv("SNAPFS_BIN"), "-f",
		       "-o", "log_level=info", src, mnt, (char *)NULL);
		_exit(127);
	}
	snprintf(m.source, sizeof(m.source), "%s", src);
	snprintf(m.mnt, sizeof(m.mnt), "%s", mnt);
	m.pid = pid;
	struct stat now;
	int i;
	for (i = 0; i < 1000; i++) {
		if (tu_is_snapfs_mount(mnt) && stat(mnt, &now) == 0 && now.st_dev != before.st_dev)
			break;
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			m.pid = 0;
			cr_assert_fail("daemon under prlimit exited: %d", st);
		}
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	cr_assert_lt(i, 1000, "daemon under prlimit did not mount");
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	long soft = -1, hard = -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "Max open files", 14) == 0)
			sscanf(line + 14, "%ld %ld", &soft, &hard);
	fclose(f);
	cr_expect_eq(hard, 20000, "hard limit %ld", hard);
	cr_expect_eq(soft, 20000, "soft limit %ld, not raised to the hard limit", soft);
	cr_expect_eq(tu_umount(&m), 0);
}

Test(mount, unreadable_source_is_refused_for_a_non_root_user)
{
	/* Root reads every directory, so "not readable" is only observable for an
	 * unprivileged daemon: run it as nobody against a directory nobody may
	 * search but not read (0311). */
	cr_assert_eq(chmod(other, 0755), 0);
	cr_assert_eq(mkdir(J(other, "noread"), 0311), 0);
	cr_assert_eq(chmod(J(other, "noread"), 0311), 0);
	cr_assert_eq(chmod(mnt, 0777), 0);
	char s[1200];
	snprintf(s, sizeof(s), "%s/noread", other);
	struct bad b = {"SOURCE not readable", {s, "@M"}, "not readable"};
	run_bad(&b, 65534);
	cr_expect_eq(count_entries(J(other, "noread")), 0, "something created in the source");
	/* and a source behind a directory nobody may search */
	cr_assert_eq(mkdir(J(other, "closed"), 0700), 0);
	cr_assert_eq(mkdir(J(other, "closed/src"), 0755), 0);
	snprintf(s, sizeof(s), "%s/closed/src", other);
	struct bad b2 = {"SOURCE not reachable", {s, "@M"}, "Permission denied"};
	run_bad(&b2, 65534);
}

/* ------------------------------------------------- other users, allow_other */

#define NOBODY 65534

static void out(char **buf, size_t *len, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	*buf = realloc(*buf, *len + n + 2);
	memcpy(*buf + *len, line, n);
	*len += n;
	(*buf)[(*len)++] = '\n';
	(*buf)[*len] = 0;
}

static void rec(char **b, size_t *l, const char *what, long rc)
{
	if (rc < -1) /* the tu_ helpers return -errno */
		errno = (int)-rc;
	if (rc < 0)
		out(b, l, "%s = -1 %s", what, strerrorname_np(errno));
	else
		out(b, l, "%s = %ld", what, rc >= 0 ? 0L : rc);
}
#define U(call) rec(&buf, &len, #call, (long)(call))

static void urec_stat(char **b, size_t *l, const char *root, const char *rel)
{
	struct stat st;
	if (lstat(J(root, rel), &st))
		out(b, l, "lstat %s = -1 %s", rel, strerrorname_np(errno));
	else
		out(b, l, "lstat %s: mode=%o uid=%u gid=%u nlink=%lu", rel, st.st_mode, st.st_uid,
		    st.st_gid, (unsigned long)st.st_nlink);
}

/* Prepare (as root) then act as nobody in a child; return the child's trace. */
static char *as_nobody(const char *root)
{
	/* as root: objects owned by root with various modes */
	cr_assert_eq(chmod(root, 01777), 0);
	cr_assert_eq(tu_write_file(J(root, "secret"), "secret", 6), 0);
	cr_assert_eq(chmod(J(root, "secret"), 0600), 0);
	cr_assert_eq(tu_write_file(J(root, "public"), "public", 6), 0);
	cr_assert_eq(chmod(J(root, "public"), 0644), 0);
	cr_assert_eq(mkdir(J(root, "closed"), 0700), 0);
	cr_assert_eq(tu_write_file(J(root, "closed/f"), "x", 1), 0);
	cr_assert_eq(mkdir(J(root, "sgid"), 0777), 0);
	cr_assert_eq(chown(J(root, "sgid"), 0, 4321), 0);
	cr_assert_eq(chmod(J(root, "sgid"), 02777), 0);
	int pfd[2];
	cr_assert(pipe(pfd) == 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		alarm(20);
		char *buf = NULL;
		size_t len = 0;
		gid_t g = NOBODY;
		if (setgroups(1, &g) || setgid(NOBODY) || setuid(NOBODY))
			_exit(126);
		char b[16];
		U(tu_write_file(J(root, "mine"), "mine", 4));
		urec_stat(&buf, &len, root, "mine");
		U(mkdir(J(root, "mydir"), 0755));
		urec_stat(&buf, &len, root, "mydir");
		U(symlink("mine", J(root, "mylink")));
		urec_stat(&buf, &len, root, "mylink");
		U(mkfifo(J(root, "myfifo"), 0644));
		urec_stat(&buf, &len, root, "myfifo");
		U(tu_write_file(J(root, "sgid/f"), "g", 1));
		urec_stat(&buf, &len, root, "sgid/f");
		U(mkdir(J(root, "sgid/d"), 0755));
		urec_stat(&buf, &len, root, "sgid/d");
		U(open(J(root, "secret"), O_RDONLY));
		U(tu_read_file(J(root, "secret"), b, sizeof(b)));
		U(tu_read_file(J(root, "public"), b, sizeof(b)));
		U(open(J(root, "public"), O_WRONLY));
		U(open(J(root, "public"), O_RDONLY | O_TRUNC));
		U(truncate(J(root, "public"), 0));
		U(access(J(root, "secret"), R_OK));
		U(access(J(root, "public"), R_OK));
		U(access(J(root, "public"), W_OK));
		U(chmod(J(root, "public"), 0666));
		U(chown(J(root, "mine"), 0, 0));
		U(chown(J(root, "mine"), -1, NOBODY));
		U(chmod(J(root, "mine"), 02755)); /* not in group 4321 ... own group: kept */
		urec_stat(&buf, &len, root, "mine");
		U(utimensat(AT_FDCWD, J(root, "public"), NULL, 0));
		U(utimensat(AT_FDCWD, J(root, "public"), ((struct timespec[2]){{1, 0}, {2, 0}}),
			    0));
		U(utimensat(AT_FDCWD, J(root, "mine"), ((struct timespec[2]){{1, 0}, {2, 0}}), 0));
		U(unlink(J(root, "public"))); /* sticky root */
		U(rename(J(root, "public"), J(root, "moved")));
		U(rename(J(root, "mine"), J(root, "mine2")));
		U(link(J(root, "secret"), J(root, "hard"))); /* protected_hardlinks may refuse */
		U(open(J(root, "closed/f"), O_RDONLY));
		U(opendir(J(root, "closed")) ? 0 : -1);
		U(mkdir(J(root, "closed/x"), 0755));
		U(setxattr(J(root, "public"), "user.x", "1", 1, 0));
		U(setxattr(J(root, "mine2"), "user.x", "1", 1, 0));
		U(getxattr(J(root, "mine2"), "user.x", b, sizeof(b)));
		U(setxattr(J(root, "mine2"), "trusted.x", "1", 1, 0));
		U(tu_write_file(J(root, "mine2"), "rewritten", 9));
		U(chmod(J(root, "mine2"), 0));
		U(open(J(root, "mine2"), O_RDONLY));
		U(mknod(J(root, "dev"), S_IFCHR | 0600, 0x103));
		U(rmdir(J(root, "mydir")));
		U(unlink(J(root, "mylink")));
		write(pfd[1], buf, len);
		_exit(0);
	}
	close(pfd[1]);
	char *res = NULL;
	size_t got = 0, cap = 0;
	ssize_t r;
	do {
		if (got + 4096 > cap)
			res = realloc(res, cap = cap * 2 + 8192);
		r = read(pfd[0], res + got, cap - got - 1);
		if (r > 0)
			got += r;
	} while (r > 0);
	res[got] = 0;
	close(pfd[0]);
	int st;
	waitpid(pid, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child as nobody failed: %d", st);
	return res;
}

static void compare_users(const char *opts)
{
	char *bare = tu_tmpdir("ubare");
	cr_assert_eq(tu_mount(&m, src, mnt, opts), 0, "mount -o %s failed", opts);
	char *want = as_nobody(bare);
	char *got = as_nobody(mnt);
	const char *x = want, *y = got;
	int line = 1, differ = 0;
	while (*x && *y) {
		const char *ex = strchr(x, '\n'), *ey = strchr(y, '\n');
		if (ex - x != ey - y || memcmp(x, y, ex - x)) {
			cr_expect_fail("-o %s: line %d differs\n  tmpfs:  %.*s\n  snapfs: %.*s",
				       opts, line, (int)(ex - x), x, (int)(ey - y), y);
			differ = 1;
			break;
		}
		x = ex + 1;
		y = ey + 1;
		line++;
	}
	cr_expect(differ || (*x == 0 && *y == 0), "-o %s: trace lengths differ at line %d", opts,
		  line);
	/* files made by nobody are nobody's on the backing side too */
	struct stat st;
	cr_expect(stat(J(src, "mine2"), &st) == 0 && st.st_uid == NOBODY && st.st_gid == NOBODY,
		  "backing owner %u:%u", st.st_uid, st.st_gid);
	cr_expect_eq(tu_umount(&m), 0);
	tu_rm_rf(bare);
	free(bare);
	free(want);
	free(got);
}

Test(mount, allow_other_default_permissions_serves_other_users_as_tmpfs)
{
	compare_users("allow_other,default_permissions");
}

Test(mount, allow_other_without_default_permissions_checks_access_as_tmpfs)
{
	compare_users("allow_other");
}

Test(mount, store_max_accepts_units_up_to_16e_minus_one)
{
	static const char *const good[] = {"store_max=0",
					   "store_max=4096",
					   "store_max=512k",
					   "store_max=10G",
					   "store_max=10g",
					   "store_max=15E",
					   "store_max=18446744073709551615"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		cr_expect_eq(tu_mount(&m, src, mnt, good[i]), 0, "-o %s refused", good[i]);
		tu_umount(&m);
	}
}
