// SPDX-License-Identifier: MIT
/*
 * The read side of the control channel (snapfs_proto.h): PREAD, one read
 * of at most SNAPFS_PROTO_DATA bytes that no write can land inside (the
 * live file is read under the inode's read lock, which every change of its
 * bytes takes for writing in the write gate, and, when the file is open
 * for writing, between two write(2) calls: quiesce.c), and the answer of FREEZE for
 * an open that reads a snapshot already (taken at open with snapshot=open,
 * or a view file): that snapshot, so that every library call works on
 * every mount mode. What to watch for: an ioctl on a directory carries the
 * directory's handle, not a struct sfs_file: look at the inode before
 * file_of().
 */
#include "sfs_i.h"
#include "ctl_i.h"
#include "snapstore.h"
#include "snapfs_proto.h"
#include "fullio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The open file of a regular file (live or in a snapshot), or NULL. */
static struct sfs_file *regular_open(struct sfs_inode *inode, struct fuse_file_info *fi)
{
	if (!fi)
		return NULL;
	if (inode->kind == SFS_REAL && S_ISREG(inode->type))
		return file_of(fi);
	if (inode->kind == SFS_VFILE || (inode->kind == SFS_TNODE && S_ISREG(inode->vst.st_mode)))
		return file_of(fi);
	return NULL;
}

int ctl_pread(struct sfs_inode *inode, struct fuse_file_info *fi, struct snapfs_req *r)
{
	struct sfs_file *f = regular_open(inode, fi);
	if (!f || r->len || r->flags || r->count > sizeof(r->data) || r->cursor > INT64_MAX ||
	    r->count > INT64_MAX - r->cursor)
		return -EINVAL;
	if ((f->flags & O_ACCMODE) == O_WRONLY)
		return -EBADF; /* as pread(2) */
	ssize_t n;
	if (f->snap) {
		n = snapview_pread(f, r->data, r->count, (off_t)r->cursor);
		r->flags = SNAPFS_PREAD_SNAPSHOT;
	} else if (f->fd >= 0) {
		/* Between two write(2) calls, as a snapshot (quiesce.c): the
		 * kernel cuts a large write(2) into several requests. */
		struct quiesce *q = NULL;
		int rc = quiesce_is_writer(inode) ? quiesce_begin(&inode, 1, &q) : 0;
		if (rc)
			return rc;
		pthread_rwlock_rdlock(&inode->rwlock);
		n = pread_full(f->fd, r->data, r->count, (off_t)r->cursor);
		pthread_rwlock_unlock(&inode->rwlock);
		quiesce_end(q);
	} else {
		return -EBADF;
	}
	if (n < 0)
		return (int)n;
	r->len = (uint32_t)n;
	return 0;
}

struct first_path {
	char *buf;
	size_t len;
	int n;
};

static int first_path_cb(void *arg, const struct store_snap_file *f)
{
	struct first_path *p = arg;
	if (p->n++ == 0 && strlcpy(p->buf, f->path, p->len) >= p->len)
		return -ENAMETOOLONG;
	return 0;
}

int ctl_freeze_held(struct sfs_inode *inode, struct fuse_file_info *fi, struct snapfs_req *r)
{
	struct sfs_file *f = regular_open(inode, fi);
	if (!f || !f->snap)
		return 1; /* not reading a snapshot: FREEZE pins a new one */
	if (r->flags & ~SNAPFS_FREEZE_SERVE)
		return -EINVAL;
	r->id = f->snap;
	r->flags = SNAPFS_FREEZE_HELD;
	r->len = 0;
	if (inode->kind != SFS_REAL)
		return 0; /* a view file: the open is the view */
	/* Taken at open: the view path of its one file, as pinned. */
	char rel[PATH_MAX];
	struct first_path p = {rel, sizeof(rel), 0};
	int rc = store_snap_files(sfs.store, f->snap, first_path_cb, &p);
	if (rc < 0)
		return rc;
	if (p.n != 1)
		return -EIO;
	int n = snprintf(r->data, sizeof(r->data), "%s/%llu/%s", sfs.o.snapdir,
			 (unsigned long long)f->snap, rel);
	if (n < 0 || n >= (int)sizeof(r->data))
		return -ENAMETOOLONG;
	r->len = (uint32_t)n + 1;
	return 0;
}
