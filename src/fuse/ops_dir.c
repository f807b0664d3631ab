// SPDX-License-Identifier: MIT
/*
 * Directory streams: opendir opens the backing directory (as the
 * requester, so read permission is checked by the backing filesystem),
 * readdir and readdirplus walk it with telldir offsets, skipping the
 * hidden store. readdirplus takes a lookup reference for every entry it
 * returns, and gives it back for the entry that did not fit.
 *
 * Watch for permissions: opening a directory needs read permission on it
 * and nothing else (a 0600 directory can be listed by its owner, not
 * searched), so opendir reopens the O_PATH descriptor through /proc rather
 * than with openat(fd, "."), which would also demand search permission.
 * When the entries' lookups are refused (no search permission for the
 * daemon), readdirplus returns the names alone, as readdir would.
 */
#include "sfs_i.h"
#include "path.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sfs_dir {
	DIR *dp;
	off_t offset;	      /* offset of the next entry to read */
	struct dirent *entry; /* read but not yet returned */
	pthread_mutex_t lock; /* the kernel may read one stream from two threads */
};

static struct sfs_dir *dir_of(struct fuse_file_info *fi)
{
	return (struct sfs_dir *)(uintptr_t)fi->fh;
}

void sfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_inode *inode = inode_get(ino);
	if (sfs_virtual(inode)) {
		snapview_opendir(req, inode, fi);
		return;
	}
	struct sfs_dir *d = calloc(1, sizeof(*d));
	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	struct sfs_cred c = {0};
	int ifd = inode_fd(inode);
	int rc = ifd < 0 ? ifd : cred_enter(req, &c);
	int fd = -1;
	if (rc == 0) {
		/* Through /proc: a directory with read but no search permission
		 * opens for reading, as on the backing filesystem. */
		char proc[PROCFD_PATH_LEN];
		fd = open(procfd_path(ifd, proc), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			rc = -errno;
	}
	cred_leave(&c);
	if (ifd >= 0)
		inode_fd_put(inode);
	if (rc)
		goto out_free;
	d->dp = fdopendir(fd);
	if (!d->dp) {
		rc = -errno;
		close(fd);
		goto out_free;
	}
	pthread_mutex_init(&d->lock, NULL);
	fi->fh = (uintptr_t)d;
	/* The kernel keeps the listing (and the entries readdirplus gave it)
	 * and serves the next opendir from it: it drops the listing itself when
	 * a name in the directory changes through the mount, and the daemon
	 * tells it when it changes one itself (restore: inode_invalidate). */
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
	return;
out_free:
	free(d);
	fuse_reply_err(req, -rc);
}

static int entry_hidden(struct sfs_inode *dir, const struct dirent *de)
{
	if (dir == &sfs.root && strcmp(de->d_name, sfs.o.snapdir) == 0)
		return 1; /* the view is reached by name only; a real entry is shadowed */
	return de->d_ino == sfs.store_ino && inode_is_store_name(dir, de->d_name);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, int plus)
{
	struct sfs_inode *inode = inode_get(ino);
	if (sfs_virtual(inode)) {
		snapview_readdir(req, inode, size, off, fi, plus);
		return;
	}
	struct sfs_dir *d = dir_of(fi);
	char *buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&d->lock);
	if (off != d->offset) {
		seekdir(d->dp, off);
		d->entry = NULL;
		d->offset = off;
	}
	size_t used = 0;
	int rc = 0;
	for (;;) {
		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (!d->entry) {
				if (errno && !used)
					rc = -errno;
				break;
			}
		}
		struct dirent *de = d->entry;
		off_t next = de->d_off;
		if (entry_hidden(inode, de)) {
			d->entry = NULL;
			d->offset = next;
			continue;
		}
		size_t n;
		if (plus) {
			struct fuse_entry_param e;
			int dot = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
			int lrc = dot ? 0 : inode_lookup(inode, de->d_name, &e);
			if (lrc == -ENOENT) { /* raced with an unlink: skip */
				d->entry = NULL;
				d->offset = next;
				continue;
			}
			if (lrc && lrc != -EACCES) {
				if (!used)
					rc = lrc;
				break;
			}
			/* No node for the dots, nor for entries the daemon may not
			 * search (EACCES): the name alone, as readdir gives it; the
			 * kernel looks the entry up (as the caller) when asked. */
			int nonode = dot || lrc;
			if (nonode) {
				memset(&e, 0, sizeof(e));
				e.attr.st_ino = de->d_ino;
				e.attr.st_mode = de->d_type << 12;
			}
			n = fuse_add_direntry_plus(req, buf + used, size - used, de->d_name, &e,
						   next);
			if (n > size - used) {
				if (!nonode)
					inode_forget(inode_get(e.ino), 1);
				break;
			}
		} else {
			struct stat st = {.st_ino = de->d_ino, .st_mode = de->d_type << 12};
			n = fuse_add_direntry(req, buf + used, size - used, de->d_name, &st, next);
			if (n > size - used)
				break;
		}
		used += n;
		d->entry = NULL;
		d->offset = next;
	}
	pthread_mutex_unlock(&d->lock);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, buf, used);
	free(buf);
}

void sfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 0);
}

void sfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 1);
}

void sfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (sfs_virtual(inode_get(ino))) {
		snapview_releasedir(req, fi);
		return;
	}
	struct sfs_dir *d = dir_of(fi);
	closedir(d->dp);
	pthread_mutex_destroy(&d->lock);
	free(d);
	fuse_reply_err(req, 0);
}

void sfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	if (sfs_virtual(inode_get(ino))) {
		fuse_reply_err(req, 0);
		return;
	}
	int fd = dirfd(dir_of(fi)->dp);
	int rc = datasync ? fdatasync(fd) : fsync(fd);
	fuse_reply_err(req, rc ? errno : 0);
}
