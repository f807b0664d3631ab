// SPDX-License-Identifier: MIT
/*
 * The snapfs daemon: parse and validate the command line, open SOURCE and
 * the store before mounting (so SOURCE may be the mount point itself),
 * mount, and only then daemonize, so that mount(8) reports failure
 * honestly. Any bad input is one line on stderr and a non-zero exit, with
 * nothing mounted and nothing created.
 */
#include "sfs_i.h"
#include "snapstore.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	/* Writes must reach the daemon when they are made: a snapshot pinned
	 * after write() returned must see it, and COW must run before it. */
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
	const char *why = rc == -EPROTO	  ? "made by a newer snapfs (schema too new)"
			  : rc == -EIO	  ? "corrupt or incomplete (index or block file)"
			  : rc == -EINVAL ? "block_size= differs from the store's"
			  : rc == -EBUSY  ? "in use by another snapfs"
					  : strerror(-rc);
	if (nheld && rc != -EBUSY)
		fprintf(stderr, "snapfs: store '%s': %s (%s)\n", fs->o.store, why,
			held_msg[nheld - 1]);
	else
		fprintf(stderr, "snapfs: store '%s': %s\n", fs->o.store, why);
	fs->store = NULL;
	return -1;
}

static _Atomic int tick_stop; /* set by main when the session ends */

/* Once a second: expire snapshots, and tell the store we are alive. */
static void *tick_main(void *arg)
{
	struct sfs *fs = arg;
	while (!tick_stop) {
		for (int i = 0; i < 10 && !tick_stop; i++)
			usleep(100 * 1000);
		if (!tick_stop)
			store_tick(fs->store);
	}
	return NULL;
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
	fs->source_fd = fd;
	fs->root.cfd = fd; /* never closed: the root has no handle (fh NULL) */
	fs->root.dev = st.st_dev;
	fs->root.ino = st.st_ino;
	fs->root.type = S_IFDIR;
	fs->root.nlookup = 2;
	pthread_rwlock_init(&fs->root.rwlock, NULL);
	return 0;
}

static int check_mountpoint(const char *mnt)
{
	struct stat st;
	if (stat(mnt, &st)) {
		fprintf(stderr, "snapfs: mountpoint '%s': %s\n", mnt, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "snapfs: mountpoint '%s': not a directory\n", mnt);
		return -1;
	}
	return 0;
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

	char copy[PATH_MAX];
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

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct sfs *fs = &sfs;
	int ret = 1, created = 0;

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
	if (opts_validate(&fs->o) || open_source(fs) || check_mountpoint(fs->o.mountpoint) ||
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

	fs->se = fuse_session_new(&args, &sfs_ops, sizeof(sfs_ops), fs);
	if (!fs->se)
		goto out_table;
	if (fuse_set_signal_handlers(fs->se))
		goto out_session;
	if (fuse_session_mount(fs->se, fs->o.mountpoint)) {
		fprintf(stderr, "snapfs: cannot mount on '%s'\n", fs->o.mountpoint);
		goto out_signals;
	}
	created = 0; /* mounted: the store stays */
	sfs_log_init(fs->o.foreground, fs->o.log_level);
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
	fuse_loop_cfg_set_max_threads(cfg, 16);
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
		rmdir(fs->o.store);
out_args:
	if (fs->source_fd >= 0)
		close(fs->source_fd);
	fuse_opt_free_args(&args);
	return ret;
}
