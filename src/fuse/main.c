// SPDX-License-Identifier: MIT
/*
 * The snapfs daemon: parse and validate the command line, open SOURCE and
 * the store before mounting (so SOURCE may be the mount point itself),
 * mount, and only then daemonize, so that mount(8) reports failure
 * honestly. Any bad input is one line on stderr and a non-zero exit, with
 * nothing mounted and nothing created: a store directory this run made is
 * removed again, with whatever the store put in it, when the mount fails.
 * Before anything is opened the mount point is looked up in the mount table
 * (libmount): a snapfs already mounted there is "already mounted", never a
 * second mount stacked on the first. A store that the mount itself would
 * cover (inside MOUNTPOINT but not inside SOURCE) is refused; inside SOURCE
 * the inode table hides it, which is what makes SOURCE == MOUNTPOINT work.
 * At start the soft descriptor limit is raised to the hard one.
 */
#include "sfs_i.h"
#include "snapstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <libmount.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

struct sfs sfs;

#define SFS_MAX_IO (1u << 20)

void sfs_init(void *userdata, struct fuse_conn_info *conn)
{
	conn->max_write = SFS_MAX_IO;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_HANDLE_KILLPRIV)
		conn->want |= FUSE_CAP_HANDLE_KILLPRIV;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	if (conn->capable & FUSE_CAP_IOCTL_DIR)
		conn->want |= FUSE_CAP_IOCTL_DIR; /* the control ioctl works on directories too */
	/* Without the writeback cache every write reaches the daemon before
	 * write() returns. With it (-o writeback) the kernel keeps dirty pages
	 * and sends them later: whoever takes a snapshot makes the kernel send
	 * them first (libsnapfs and snapctl call syncfs() before the control
	 * ioctl; snapshot=open, where the daemon takes it, excludes the mode). */
	if (sfs.o.writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	else
		conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* Locks are left to the kernel: it sees every locker, the daemon would
	 * make them all look like one process. */
	conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
}

void sfs_destroy(void *userdata)
{
}

const struct fuse_lowlevel_ops sfs_ops = {
    .init = sfs_init,
    .destroy = sfs_destroy,
    .lookup = sfs_lookup,
    .forget = sfs_forget,
    .forget_multi = sfs_forget_multi,
    .getattr = sfs_getattr,
    .setattr = sfs_setattr,
    .readlink = sfs_readlink,
    .mknod = sfs_mknod,
    .mkdir = sfs_mkdir,
    .symlink = sfs_symlink,
    .link = sfs_link,
    .unlink = sfs_unlink,
    .rmdir = sfs_rmdir,
    .rename = sfs_rename,
    .open = sfs_open,
    .create = sfs_create,
    .read = sfs_read,
    .write_buf = sfs_write_buf,
    .flush = sfs_flush,
    .release = sfs_release,
    .fsync = sfs_fsync,
    .opendir = sfs_opendir,
    .readdir = sfs_readdir,
    .readdirplus = sfs_readdirplus,
    .releasedir = sfs_releasedir,
    .fsyncdir = sfs_fsyncdir,
    .statfs = sfs_statfs,
    .access = sfs_access,
    .setxattr = sfs_setxattr,
    .getxattr = sfs_getxattr,
    .listxattr = sfs_listxattr,
    .removexattr = sfs_removexattr,
    .fallocate = sfs_fallocate,
    .copy_file_range = sfs_copy_file_range,
    .lseek = sfs_lseek,
    .ioctl = sfs_ioctl,
};

/* While the store opens, its messages are held: on success they are logged,
 * on failure the last one completes the single error line. */
#define HELD_MAX 16
static int store_log_hold;
static char held_msg[HELD_MAX][256];
static int held_level[HELD_MAX];
static int nheld;

static void store_logger(int level, const char *msg)
{
	if (!store_log_hold) {
		sfs_log(level, "store: %s", msg);
		return;
	}
	int i = nheld < HELD_MAX ? nheld++ : HELD_MAX - 1;
	strlcpy(held_msg[i], msg, sizeof(held_msg[i]));
	held_level[i] = level;
}

/*
 * The detail for a failed store open: the last error-level message the store
 * logged (warnings such as "snapshot N is stale" are not the reason), with
 * its "snapstore: " prefix dropped and the /proc/self/fd/N path the store
 * was opened through put back as the store's own path.
 */
static const char *store_detail(const struct sfs *fs, const char *proc, char *buf, size_t len)
{
	int i = nheld - 1;
	while (i >= 0 && held_level[i] > SFS_LOG_ERR)
		i--;
	if (i < 0)
		return NULL;
	const char *m = held_msg[i];
	if (strncmp(m, "snapstore: ", 11) == 0)
		m += 11;
	size_t pl = strlen(proc);
	if (strncmp(m, proc, pl) == 0 && (m[pl] == '/' || m[pl] == ':'))
		snprintf(buf, len, "%s%s", fs->o.store, m + pl);
	else
		snprintf(buf, len, "%s", m);
	return buf;
}

/* Open the store through its descriptor; one line naming the problem. */
static int open_store(struct sfs *fs)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fs->store_dirfd);
	struct store_opts so = {
	    .block_size = fs->o.block_size, .max_bytes = fs->o.store_max, .create = 1};
	store_log_hold = 1;
	nheld = 0;
	int rc = store_open(path, fs->source_fd, &so, &fs->store);
	/* umount returns before the previous daemon of this store has closed
	 * it: give that one a moment before calling the store busy. */
	for (int i = 0; rc == -EBUSY && i < 100; i++) {
		usleep(50 * 1000);
		nheld = 0;
		rc = store_open(path, fs->source_fd, &so, &fs->store);
	}
	store_log_hold = 0;
	if (rc == 0) {
		for (int i = 0; i < nheld; i++)
			sfs_log(held_level[i], "store: %s", held_msg[i]);
		return 0;
	}
	char buf[sizeof(held_msg[0]) + PATH_MAX];
	const char *detail = rc == -EBUSY ? NULL : store_detail(fs, path, buf, sizeof(buf));
	const char *why =
	    rc == -EPROTO ? "made by a newer snapfs (schema too new)"
	    : rc == -EIO  ? "corrupt or incomplete (index or block file)"
	    : rc == -EINVAL && fs->o.block_size && detail && strstr(detail, "block size")
		? "block_size= differs from the store's"
	    : rc == -EBUSY ? "in use by another snapfs"
			   : strerror(-rc);
	if (detail)
		fprintf(stderr, "snapfs: store '%s': %s: %s\n", fs->o.store, why, detail);
	else
		fprintf(stderr, "snapfs: store '%s': %s\n", fs->o.store, why);
	fs->store = NULL;
	return -1;
}

static _Atomic int tick_stop; /* set by main when the session ends */

/*
 * Give the memory of forgotten nodes back. The kernel forgets inodes in
 * bulk (memory pressure, drop_caches), and glibc keeps the freed chunks:
 * after the kernel forgot a walked and pinned 100,000-file tree the daemon
 * still had 129 MB (tree.rss). When the nodes known fell by TRIM_NODES
 * since their last peak, malloc_trim(0) returns the free pages: 19.5 MB.
 */
#define TRIM_NODES 4096

static void trim_forgotten(struct sfs *fs, size_t *peak)
{
	pthread_mutex_lock(&fs->mutex);
	size_t known = fs->count + fs->vcount;
	pthread_mutex_unlock(&fs->mutex);
	if (known > *peak)
		*peak = known;
	else if (*peak - known >= TRIM_NODES) {
		malloc_trim(0);
		*peak = known;
	}
}

/* Once a second: expire snapshots, tell the store we are alive, give back
 * the memory of forgotten nodes; every few seconds, let the kernel drop the
 * view of released snapshots. */
static void *tick_main(void *arg)
{
	struct sfs *fs = arg;
	size_t peak = 0;
	for (unsigned t = 1; !tick_stop; t++) {
		for (int i = 0; i < 10 && !tick_stop; i++)
			usleep(100 * 1000);
		if (tick_stop)
			break;
		store_tick(fs->store);
		trim_forgotten(fs, &peak);
		if (t % 5 == 0)
			snapview_prune(fs);
	}
	return NULL;
}

/* The type mountinfo gives the filesystem of dev ("fuse.sshfs"), or "". */
static void fs_type_of(dev_t dev, char *out, size_t cap)
{
	out[0] = 0;
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return;
	char line[8192];
	while (fgets(line, sizeof(line), f)) {
		unsigned maj, min;
		const char *sep = strstr(line, " - ");
		if (sscanf(line, "%*s %*s %u:%u", &maj, &min) != 2 || !sep ||
		    makedev(maj, min) != dev)
			continue;
		char type[256];
		if (sscanf(sep + 3, "%255s", type) == 1)
			snprintf(out, cap, "%s", type);
		break;
	}
	fclose(f);
}

/*
 * Backings on which the store cannot tell a change made without the daemon
 * (docs/BACKINGS.md): sshfs gives whole-second mtimes, ctime == mtime and
 * caches attributes for 20 s, so a same-size write by another host goes
 * unseen and a snapshot could read its bytes. Refused, unless the user says
 * with coarse_backing that only this mount writes the files.
 */
static int check_backing(struct sfs *fs, dev_t dev)
{
	char type[256];
	fs_type_of(dev, type, sizeof(type));
	fs->zero_by_punch = !strcmp(type, "fuse.glusterfs");
	if (strcmp(type, "fuse.sshfs") || fs->o.coarse_backing)
		return 0;
	fprintf(stderr,
		"snapfs: source '%s' is on sshfs, whose whole-second, cached timestamps cannot "
		"show a change made by another host: snapshots could read that host's bytes "
		"(-o coarse_backing mounts anyway, when only this mount writes the files)\n",
		fs->o.source);
	return -1;
}

/* Open SOURCE; one line naming the problem on failure. */
static int open_source(struct sfs *fs)
{
	const char *src = fs->o.source;
	int fd = open(src, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "snapfs: source '%s': %s\n", src,
			errno == ENOTDIR ? "not a directory" : strerror(errno));
		return -1;
	}
	close(fd);
	/* Not O_PATH: the store reopens files with open_by_handle_at() relative
	 * to this descriptor, and the kernel refuses O_PATH ones there. */
	if (access(src, R_OK | X_OK) || (fd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		fprintf(stderr, "snapfs: source '%s': not readable: %s\n", src, strerror(errno));
		return -1;
	}
	struct stat st;
	fstat(fd, &st);
	if (check_backing(fs, st.st_dev)) {
		close(fd);
		return -1;
	}
	fs->source_fd = fd;
	fs->root.cfd = fd; /* never closed: the root has no handle (fh NULL) */
	fs->root.dev = st.st_dev;
	fs->root.ino = st.st_ino;
	fs->root.type = S_IFDIR;
	fs->root.nlookup = 2;
	pthread_rwlock_init(&fs->root.rwlock, NULL);
	return 0;
}

/* The mount point's identity, for the store-placement check. */
static dev_t mnt_dev;
static ino_t mnt_ino;

/*
 * The absolute path of path with its directories resolved but not its last
 * component: a mount point whose daemon died fails stat(), and what the
 * mount table lists is the path as given at mount time.
 */
static char *path_canonical(const char *path)
{
	char *a = strdup(path), *b = strdup(path), *dir = NULL, *res = NULL;
	if (!a || !b)
		goto out;
	const char *base = basename(b);
	struct stat st;
	if (!strcmp(base, "/") || !strcmp(base, ".") || !strcmp(base, "..")) {
		res = realpath(path, NULL);
		goto out;
	}
	dir = realpath(dirname(a), NULL);
	if (!dir || asprintf(&res, "%s/%s", strcmp(dir, "/") ? dir : "", base) < 0) {
		res = NULL;
		goto out;
	}
	if (lstat(res, &st) == 0 && S_ISLNK(st.st_mode)) {
		free(res);
		res = realpath(path, NULL);
	}
out:
	free(a);
	free(b);
	free(dir);
	return res;
}

/*
 * Whether a snapfs is mounted on mnt already (the topmost mount there, as
 * libmount reads /proc/self/mountinfo). 1 with its SOURCE in src (owned by
 * the caller), 0 if not, -errno if the table cannot be read.
 */
static int snapfs_mounted_at(const char *mnt, char **src)
{
	*src = NULL;
	char *path = path_canonical(mnt);
	if (!path)
		return 0; /* the caller's stat() names the problem */
	struct libmnt_table *tb = mnt_new_table();
	int rc = tb ? mnt_table_parse_mtab(tb, NULL) : -ENOMEM;
	if (rc == 0) {
		struct libmnt_fs *m = mnt_table_find_target(tb, path, MNT_ITER_BACKWARD);
		const char *type = m ? mnt_fs_get_fstype(m) : NULL;
		if (type && strcmp(type, "fuse.snapfs") == 0) {
			const char *s = mnt_fs_get_source(m);
			*src = strdup(s ? s : "?");
			rc = 1;
		}
	} else if (rc > 0) {
		rc = -EINVAL; /* libmount: a line it could not parse */
	}
	mnt_unref_table(tb);
	free(path);
	return rc;
}

static int check_mountpoint(const char *mnt)
{
	char *other;
	int rc = snapfs_mounted_at(mnt, &other);
	struct stat st;
	if (rc == 1) {
		int dead = stat(mnt, &st) && errno == ENOTCONN;
		fprintf(stderr, "snapfs: mountpoint '%s': already mounted (snapfs of %s%s)\n", mnt,
			other, dead ? ", whose daemon has exited: unmount it first" : "");
		free(other);
		return -1;
	}
	if (stat(mnt, &st)) {
		fprintf(stderr, "snapfs: mountpoint '%s': %s\n", mnt, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "snapfs: mountpoint '%s': not a directory\n", mnt);
		return -1;
	}
	mnt_dev = st.st_dev;
	mnt_ino = st.st_ino;
	return 0;
}

/*
 * Whether the directory fd (consumed) lies inside MOUNTPOINT without lying
 * inside SOURCE: walking up, the mount point comes before SOURCE. Such a
 * store would be covered by the mount and reachable by no one.
 */
static int covered_by_mount(const struct sfs *fs, int fd)
{
	int covered = 0;
	for (int depth = 0; fd >= 0 && depth < 4096; depth++) {
		struct stat st, up;
		if (fstat(fd, &st))
			break;
		if (st.st_dev == fs->root.dev && st.st_ino == fs->root.ino)
			break; /* inside SOURCE: hidden by the inode table */
		if (st.st_dev == mnt_dev && st.st_ino == mnt_ino) {
			covered = 1;
			break;
		}
		int pfd = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (pfd < 0 || fstat(pfd, &up) ||
		    (up.st_dev == st.st_dev && up.st_ino == st.st_ino)) {
			if (pfd >= 0)
				close(pfd);
			break; /* the root */
		}
		close(fd);
		fd = pfd;
	}
	if (fd >= 0)
		close(fd);
	return covered;
}

/* Remove what the store put in a directory this run created, then the
 * directory: a failed mount leaves nothing behind. The store's directory is
 * flat; anything deeper is left (and the rmdir fails) rather than chased. */
static void remove_created_store(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d)))
			if (de->d_type != DT_DIR)
				unlinkat(dirfd(d), de->d_name, 0);
		closedir(d);
	} else if (fd >= 0) {
		close(fd);
	}
	if (rmdir(path) && errno != ENOENT)
		fprintf(stderr, "snapfs: store '%s': could not remove it again: %s\n", path,
			strerror(errno));
}

/*
 * Open (creating if needed) the store directory and note where it sits, so
 * the inode table can hide it. *created tells the caller to remove it again
 * if the mount fails.
 */
static int open_store_dir(struct sfs *fs, int *created)
{
	char path[PATH_MAX];
	*created = 0;
	if (!fs->o.store) {
		if (snprintf(path, sizeof(path), "%s/.snapfs", fs->o.source) >= (int)sizeof(path)) {
			fprintf(stderr, "snapfs: store path too long\n");
			return -1;
		}
		fs->o.store = strdup(path);
	}
	/* Where it is (or will be): the store itself if it exists, else the
	 * directory that will hold it; checked before anything is created. */
	char copy[PATH_MAX];
	strlcpy(copy, fs->o.store, sizeof(copy));
	int where = open(fs->o.store, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (where < 0)
		where = open(dirname(copy), O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (where >= 0 && covered_by_mount(fs, where)) {
		fprintf(stderr,
			"snapfs: store '%s': inside MOUNTPOINT '%s', where the mount would hide "
			"it (put it inside SOURCE or elsewhere)\n",
			fs->o.store, fs->o.mountpoint);
		return -1;
	}
	if (mkdir(fs->o.store, 0700) == 0)
		*created = 1;
	else if (errno != EEXIST) {
		fprintf(stderr, "snapfs: store '%s': cannot create: %s\n", fs->o.store,
			strerror(errno));
		return -1;
	}
	int fd = open(fs->o.store, O_PATH | O_DIRECTORY);
	if (fd < 0) {
		fprintf(stderr, "snapfs: store '%s': %s\n", fs->o.store,
			errno == ENOTDIR ? "not a directory" : strerror(errno));
		goto out_rm;
	}
	struct stat st;
	fstat(fd, &st);
	if (st.st_dev == fs->root.dev && st.st_ino == fs->root.ino) {
		fprintf(stderr, "snapfs: store '%s': must not be SOURCE itself\n", fs->o.store);
		close(fd);
		goto out_rm;
	}
	fs->store_dirfd = fd;
	fs->store_dev = st.st_dev;
	fs->store_ino = st.st_ino;

	strlcpy(copy, fs->o.store, sizeof(copy));
	strlcpy(fs->store_name, basename(copy), sizeof(fs->store_name));
	strlcpy(copy, fs->o.store, sizeof(copy));
	struct stat pst;
	if (stat(dirname(copy), &pst) == 0) {
		fs->store_pdev = pst.st_dev;
		fs->store_pino = pst.st_ino;
	} else {
		fs->store_name[0] = 0;
	}
	return 0;
out_rm:
	if (*created)
		rmdir(fs->o.store);
	return -1;
}

/* Raise the soft descriptor limit to the hard one: the daemon holds a
 * descriptor per known inode and more. What it got is logged once logging
 * is set up (nofile_was, nofile_got). */
static struct rlimit nofile_was, nofile_got;
static int nofile_err;

static void raise_nofile(void)
{
	if (getrlimit(RLIMIT_NOFILE, &nofile_was)) {
		nofile_err = errno;
		return;
	}
	nofile_got = nofile_was;
	if (nofile_was.rlim_cur < nofile_was.rlim_max) {
		nofile_got.rlim_cur = nofile_was.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &nofile_got)) {
			nofile_err = errno;
			nofile_got = nofile_was;
		}
	}
}

static void log_nofile(void)
{
	if (nofile_err)
		sfs_log(SFS_LOG_WARNING, "descriptor limit: cannot raise the soft limit: %s",
			strerror(nofile_err));
	else
		sfs_log(SFS_LOG_INFO, "descriptor limit: %llu (soft was %llu, hard %llu)",
			(unsigned long long)nofile_got.rlim_cur,
			(unsigned long long)nofile_was.rlim_cur,
			(unsigned long long)nofile_got.rlim_max);
}

/* libfuse's own messages while it mounts: the last is kept to complete our
 * single error line instead of printing a line of its own. */
static char fuse_msg[256];

static void fuse_logger(enum fuse_log_level level, const char *fmt, va_list ap)
{
	(void)level;
	vsnprintf(fuse_msg, sizeof(fuse_msg), fmt, ap);
	fuse_msg[strcspn(fuse_msg, "\n")] = 0;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct sfs *fs = &sfs;
	int ret = 1, created = 0;

	raise_nofile();
	/* glibc gives each thread that contends for malloc its own arena, up to
	 * 8 per core, and keeps each arena's freed memory: with 16 FUSE workers,
	 * the side channel and the tick, RSS crept up with every new arena and
	 * every fragment. Two arenas serve the daemon's short allocations as
	 * fast (measured in docs/ARCHITECTURE.md, "Memory"). */
	mallopt(M_ARENA_MAX, 2);

	fs->source_fd = fs->store_dirfd = -1;
	if (opts_parse(&args, &fs->o))
		goto out_args;
	if (fs->o.show_help) {
		opts_usage(argv[0]);
		ret = 0;
		goto out_args;
	}
	if (fs->o.show_version) {
		printf("snapfs %s (libfuse %s)\n", SNAPFS_VERSION, fuse_pkgversion());
		ret = 0;
		goto out_args;
	}
	if (opts_validate(&fs->o) || check_mountpoint(fs->o.mountpoint) || open_source(fs) ||
	    open_store_dir(fs, &created))
		goto out_args;
	store_set_logger(store_logger);
	if (open_store(fs))
		goto out_store;

	char fsname[PATH_MAX + 16];
	char *abs = realpath(fs->o.source, NULL);
	snprintf(fsname, sizeof(fsname), "-ofsname=%s,subtype=snapfs", abs ? abs : fs->o.source);
	free(abs);
	if (fuse_opt_add_arg(&args, fsname) || (fs->o.debug && fuse_opt_add_arg(&args, "-odebug")))
		goto out_store;
	/* With allow_other a root daemon serves everyone: act as each caller. */
	fs->self_uid = geteuid();
	fs->cred_switch = fs->o.allow_other && fs->self_uid == 0;
	cred_init();
	umask(0); /* the kernel has applied the caller's umask already */
	if (inode_table_init(fs) || snapview_init(fs))
		goto out_store;

	fuse_set_log_func(fuse_logger);
	fs->se = fuse_session_new(&args, &sfs_ops, sizeof(sfs_ops), fs);
	if (!fs->se) {
		fprintf(stderr, "snapfs: %s\n",
			*fuse_msg ? fuse_msg : "cannot start a FUSE session");
		goto out_table;
	}
	if (fuse_set_signal_handlers(fs->se))
		goto out_session;
	fs->mnt_abs = realpath(fs->o.mountpoint, NULL); /* before fuse_daemonize's chdir */
	if (fuse_session_mount(fs->se, fs->o.mountpoint)) {
		fprintf(stderr, "snapfs: cannot mount on '%s'%s%s\n", fs->o.mountpoint,
			*fuse_msg ? ": " : "", fuse_msg);
		goto out_signals;
	}
	fuse_set_log_func(NULL);
	created = 0; /* mounted: the store stays */
	sfs_log_init(fs->o.foreground, fs->o.log_level);
	log_nofile();
	if (!fs->o.foreground) {
		/* SQLite connections and their POSIX locks must not cross fork(). */
		store_close(fs->store);
		fs->store = NULL;
		if (fuse_daemonize(0) || open_store(fs))
			goto out_unmount;
	}
	if (direct_init(fs) || direct_start())
		goto out_unmount;
	sfs_notify("READY=1"); /* systemd Type=notify: mounted and serving (notify.c) */
	pthread_t tick;
	int ticking = pthread_create(&tick, NULL, tick_main, fs) == 0;

	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	/* Idle workers are never destroyed: libfuse 3.14 otherwise creates and
	 * destroys a thread (and its splice pipe) on nearly every request. */
	fuse_loop_cfg_set_max_threads(cfg,
				      64); /* a pin waiting for writers (quiesce.c) holds one */
	fuse_loop_cfg_set_idle_threads(cfg, 16);
	ret = fuse_session_loop_mt(fs->se, cfg) ? 1 : 0;
	fuse_loop_cfg_destroy(cfg);
	tick_stop = 1;
	if (ticking)
		pthread_join(tick, NULL);
out_unmount:
	direct_stop();
	sfs_notify("STOPPING=1"); /* systemd: leaving (notify.c) */
	fuse_session_unmount(fs->se);
out_signals:
	fuse_remove_signal_handlers(fs->se);
out_session:
	fuse_session_destroy(fs->se);
out_table:
	inode_table_release(fs);
	snapview_release(fs);
out_store:
	if (fs->store)
		store_close(fs->store);
	if (fs->store_dirfd >= 0)
		close(fs->store_dirfd);
	if (created)
		remove_created_store(fs->o.store);
out_args:
	if (fs->source_fd >= 0)
		close(fs->source_fd);
	fuse_opt_free_args(&args);
	return ret;
}
