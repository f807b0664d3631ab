// SPDX-License-Identifier: MIT
/*
 * Open files: open, create, read, write, flush, release, fsync, fallocate,
 * copy_file_range and lseek. Reads take the inode's read lock and writes
 * its write lock for the length of the backing call, so no read request
 * sees part of a concurrent write. Data moves by splice where libfuse can
 * (replies are spliced from the backing file). Every change of a regular
 * file's bytes goes through the write gate (cow.c).
 * With snapshot=open, a read-only open reads its own ephemeral snapshot,
 * taken at open: such opens bypass the page cache (direct_io), which
 * belongs to the inode and must keep serving live bytes to everyone else.
 * The gate kills privileges as write(2) does.
 */
#include "sfs_i.h"
#include "path.h"
#include "snapstore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Flags the backing open must not see: creation is done, O_DIRECT is the
 * kernel's business (our buffers are not aligned; direct_io keeps the page
 * cache out of it), O_NOFOLLOW is meaningless on a /proc magic link. */
#define SFS_OPEN_STRIP (O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW | O_DIRECT)

/*
 * The flags of the backing open. With the writeback cache the kernel reads
 * pages around a partial write even of a write-only open, and it places
 * appends itself (its idea of the size is the one that counts: the backing
 * file changes only through the daemon): write-only becomes read-write
 * (when the caller may read; else reads of such pages fail), O_APPEND goes.
 */
static int backing_flags(int flags)
{
	if (!sfs.o.writeback)
		return flags;
	flags &= ~O_APPEND;
	if ((flags & O_ACCMODE) == O_WRONLY)
		flags = (flags & ~O_ACCMODE) | O_RDWR;
	return flags;
}

static int file_new(struct sfs_inode *inode, int fd, int flags, struct fuse_file_info *fi,
		    struct sfs_file **out)
{
	struct sfs_file *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->fd = fd;
	f->flags = flags;
	fi->fh = (uintptr_t)f;
	if (flags & O_DIRECT)
		fi->direct_io = 1;
	else
		fi->keep_cache = 1; /* only this daemon changes the file while mounted */
	if ((flags & O_ACCMODE) != O_RDONLY && S_ISREG(inode->type)) {
		f->winode = inode; /* a pin quiesces it (quiesce.c) */
		quiesce_writer(inode, 1);
	}
	if (out)
		*out = f;
	return 0;
}

/*
 * Open an existing backing object for the caller. O_TRUNC of a regular file
 * is done here under the byte lock, after the store preserved what
 * snapshots need (FUSE_CAP_ATOMIC_O_TRUNC hands it to us with the open).
 */
struct open_arg {
	fuse_req_t req;
	const char *proc;
	int flags;
	int fd;
};

/* The backing open as the caller; under the gate when it truncates. */
static ssize_t open_apply(void *arg, struct gate_op *op)
{
	struct open_arg *a = arg;
	struct sfs_cred c = {0};
	int rc = cred_enter(a->req, &c);
	if (rc == 0) {
		a->fd = open(a->proc, (backing_flags(a->flags) & ~SFS_OPEN_STRIP) | O_CLOEXEC);
		if (a->fd < 0 && errno == EACCES && backing_flags(a->flags) != a->flags)
			a->fd =
			    open(a->proc, (a->flags & ~(SFS_OPEN_STRIP | O_APPEND)) | O_CLOEXEC);
		if (a->fd < 0)
			rc = -errno;
	}
	cred_leave(&c);
	if (rc == 0 && op)
		op->fd = a->fd; /* privileges are killed after the open that truncates */
	return rc;
}

static int open_backing(fuse_req_t req, struct sfs_inode *inode, int flags, int *out)
{
	int ifd = inode_fd(inode);
	if (ifd < 0)
		return ifd;
	char proc[PROCFD_PATH_LEN];
	struct open_arg a = {req, procfd_path(ifd, proc), flags, -1};
	int rc;
	if ((flags & O_TRUNC) && S_ISREG(inode->type)) {
		/* The truncation happens in the open itself, so the open is the
		 * gate's change; privileges go after it. */
		struct gate_op op = {.what = GATE_TRUNCATE,
				     .off = 0,
				     .fd = -1,
				     .caller = fuse_req_ctx(req)->uid,
				     .req = req,
				     .apply = open_apply,
				     .arg = &a};
		rc = (int)gate_write(inode, &op);
	} else {
		rc = (int)open_apply(&a, NULL);
	}
	inode_fd_put(inode);
	*out = a.fd;
	return rc;
}

/* With snapshot=open: a read-only open of a regular file reads a snapshot
 * taken now, held by this open until release. */
static int open_time_snapshot(fuse_req_t req, struct sfs_inode *inode, struct sfs_file *f,
			      struct fuse_file_info *fi)
{
	if (sfs.o.snapmode != SFS_SNAP_OPEN || !S_ISREG(inode->type) ||
	    (f->flags & O_ACCMODE) != O_RDONLY || (f->flags & O_TRUNC) || quiesce_own(req))
		return 0;
	char rel[PATH_MAX];
	uint64_t id;
	int rc = hold_freeze(req, inode, f, 1, rel, sizeof(rel), &id);
	if (rc)
		return rc;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	return 0;
}

void sfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_inode *inode = inode_get(ino);
	if (sfs_virtual(inode)) {
		snapview_open(req, inode, fi);
		return;
	}
	int fd = -1;
	struct sfs_file *f = NULL;
	int rc = open_backing(req, inode, fi->flags, &fd);
	if (rc == 0 &&
	    (rc = file_new(inode, fd, sfs.o.writeback ? fi->flags & ~O_APPEND : fi->flags, fi, &f)))
		close(fd);
	if (rc == 0 && (rc = open_time_snapshot(req, inode, f, fi))) {
		close(fd);
		free(f);
	}
	if (rc)
		fuse_reply_err(req, -rc);
	else if (fuse_reply_open(req, fi) == -ENOENT)
		sfs_release(NULL, ino, fi); /* the opener was interrupted */
}

void sfs_create(fuse_req_t req, fuse_ino_t parent_ino, const char *name, mode_t mode,
		struct fuse_file_info *fi)
{
	struct sfs_inode *parent = inode_get(parent_ino);
	if (sfs_virtual(parent)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (inode_is_store_name(parent, name) ||
	    (parent == &sfs.root && strcmp(name, sfs.o.snapdir) == 0)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	struct sfs_cred c = {0};
	struct ns_hold h = {0};
	int fd = -1, pfd = inode_fd(parent);
	ns_enter();
	int rc = pfd < 0 ? pfd : ns_hold_entry(&h, parent, name);
	if (rc == 0)
		rc = ns_hold_save(&h);
	if (rc == 0)
		rc = cred_enter(req, &c);
	if (rc == 0) {
		/* Create only: an existing file (the kernel's entry was stale) goes
		 * through open_backing, so O_TRUNC is copied-on-write. */
		fd = openat(pfd, name,
			    (backing_flags(fi->flags) | O_CREAT | O_EXCL | O_CLOEXEC) &
				~(O_DIRECT | O_NOCTTY | O_TRUNC),
			    mode);
		if (fd < 0)
			rc = -errno;
	}
	cred_leave(&c);
	if (rc == 0)
		ns_born(parent, name);
	ns_hold_release(&h);
	ns_leave();
	if (pfd >= 0)
		inode_fd_put(parent);
	struct fuse_entry_param e;
	if (rc == -EEXIST && !(fi->flags & O_EXCL)) {
		rc = inode_lookup(parent, name, &e);
		if (rc == 0 && (rc = open_backing(req, inode_get(e.ino), fi->flags, &fd)))
			inode_forget(inode_get(e.ino), 1);
	} else if (rc == 0 && (rc = inode_lookup(parent, name, &e))) {
		close(fd);
	}
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	if ((rc = file_new(inode_get(e.ino), fd,
			   sfs.o.writeback ? fi->flags & ~O_APPEND : fi->flags, fi, NULL))) {
		close(fd);
		inode_forget(inode_get(e.ino), 1);
		fuse_reply_err(req, -rc);
		return;
	}
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		sfs_release(NULL, e.ino, fi);
		inode_forget(inode_get(e.ino), 1);
	}
}

void sfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct sfs_inode *inode = inode_get(ino);
	struct sfs_file *f = file_of(fi);
	if (f->snap) {
		snapview_read(req, f, size, off);
		return;
	}
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = f->fd;
	buf.buf[0].pos = off;
	pthread_rwlock_rdlock(&inode->rwlock);
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
	pthread_rwlock_unlock(&inode->rwlock);
}

static ssize_t write_apply(void *arg, struct gate_op *op)
{
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(op->len);
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = op->fd;
	out.buf[0].pos = (off_t)op->off;
	return fuse_buf_copy(&out, arg, 0);
}

void sfs_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in_buf, off_t off,
		   struct fuse_file_info *fi)
{
	struct sfs_inode *inode = inode_get(ino);
	struct sfs_file *f = file_of(fi);
	if (f->fd < 0 || f->snap) {
		fuse_reply_err(req, EBADF);
		return;
	}
	struct gate_op op = {.what = (f->flags & O_APPEND) ? GATE_APPEND : GATE_RANGE,
			     .off = (uint64_t)off,
			     .len = fuse_buf_size(in_buf),
			     .fd = f->fd,
			     .readable = (f->flags & O_ACCMODE) == O_RDWR,
			     .caller = fuse_req_ctx(req)->uid,
			     .req = req,
			     .apply = write_apply,
			     .arg = in_buf};
	ssize_t res = gate_write(inode, &op);
	if (res < 0)
		fuse_reply_err(req, (int)-res);
	else
		fuse_reply_write(req, (size_t)res);
}

void sfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* close() of a duplicate flushes what the backing filesystem buffers per
	 * close (NFS) without closing our descriptor. */
	int fd = file_of(fi)->fd;
	int rc = fd >= 0 ? close(dup(fd)) : 0;
	fuse_reply_err(req, rc ? errno : 0);
}

void sfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (file_of(fi)->winode)
		quiesce_writer(file_of(fi)->winode, -1);
	hold_file_free(file_of(fi));
	if (req)
		fuse_reply_err(req, 0);
}

void sfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	if (quiesce_fsync(req, inode_get(ino)))
		return; /* a pin's quiesce holds it (quiesce.c) */
	int fd = file_of(fi)->fd;
	int rc = fd < 0 ? 0 : datasync ? fdatasync(fd) : fsync(fd);
	fuse_reply_err(req, rc ? errno : 0);
}

struct falloc_arg {
	int mode;
	off_t offset, length;
};

static ssize_t falloc_apply(void *arg, struct gate_op *op)
{
	struct falloc_arg *a = arg;
	if ((a->mode & FALLOC_FL_ZERO_RANGE) && sfs.zero_by_punch) {
		/* GlusterFS's FUSE client (10.3 here) answers ZERO_RANGE with success
		 * and zeroes nothing (it allocates only): the range kept its bytes.
		 * Zero it as a hole, then allocate it (and grow the file unless
		 * KEEP_SIZE), which is what ZERO_RANGE leaves. Under the inode's
		 * write lock: no overlay reader sees the step between. */
		int keep = a->mode & FALLOC_FL_KEEP_SIZE;
		if (fallocate(op->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, a->offset,
			      a->length) ||
		    fallocate(op->fd, keep ? FALLOC_FL_KEEP_SIZE : 0, a->offset, a->length))
			return -errno;
		return 0;
	}
	return fallocate(op->fd, a->mode, a->offset, a->length) ? -errno : 0;
}

void sfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
		   struct fuse_file_info *fi)
{
	struct sfs_inode *inode = inode_get(ino);
	struct sfs_file *f = file_of(fi);
	if (f->fd < 0 || f->snap) {
		fuse_reply_err(req, EBADF);
		return;
	}
	struct falloc_arg a = {mode, offset, length};
	struct gate_op op = {.what = GATE_NONE,
			     .off = (uint64_t)offset,
			     .len = (uint64_t)length,
			     .fd = f->fd,
			     .caller = fuse_req_ctx(req)->uid,
			     .req = req,
			     .apply = falloc_apply,
			     .arg = &a};
	/* Plain allocation changes no byte a snapshot can read (it ends at the
	 * pin-time size); punching, zeroing and shifting do. */
	if (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE))
		op.what = GATE_TAIL;
	else if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
		op.what = GATE_RANGE;
	fuse_reply_err(req, (int)-gate_write(inode, &op));
}

struct copy_arg {
	int fd_in;
	off_t off_in;
	int flags;
};

static ssize_t copy_apply(void *arg, struct gate_op *op)
{
	struct copy_arg *a = arg;
	off_t off_out = (off_t)op->off;
	ssize_t n =
	    copy_file_range(a->fd_in, &a->off_in, op->fd, &off_out, op->len, (unsigned)a->flags);
	return n < 0 ? -errno : n;
}

void sfs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			 struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			 struct fuse_file_info *fi_out, size_t len, int flags)
{
	struct sfs_inode *in = inode_get(ino_in), *out = inode_get(ino_out);
	struct sfs_file *fin = file_of(fi_in), *fout = file_of(fi_out);
	/* A snapshot source must be read through read(): let the kernel copy. */
	if (fin->fd < 0 || fin->snap || fout->fd < 0 || fout->snap) {
		fuse_reply_err(req, EXDEV);
		return;
	}
	struct copy_arg a = {fin->fd, off_in, flags};
	struct gate_op op = {.what = GATE_RANGE,
			     .off = (uint64_t)off_out,
			     .len = len,
			     .fd = fout->fd,
			     .caller = fuse_req_ctx(req)->uid,
			     .req = req,
			     .src = in,
			     .apply = copy_apply,
			     .arg = &a};
	ssize_t n = gate_write(out, &op);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

void sfs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	struct sfs_file *f = file_of(fi);
	if (f->fd < 0 || f->snap) {
		/* Snapshot contents: report no holes. */
		struct sfs_inode *inode = inode_get(ino);
		off_t size = f->fd < 0 ? inode->vst.st_size : -1;
		struct stat st;
		if (size < 0)
			size = fstat(f->fd, &st) ? 0 : st.st_size;
		if (whence == SEEK_DATA && off < size)
			fuse_reply_lseek(req, off);
		else if (whence == SEEK_HOLE && off < size)
			fuse_reply_lseek(req, size);
		else
			fuse_reply_err(req,
				       whence == SEEK_DATA || whence == SEEK_HOLE ? ENXIO : EINVAL);
		return;
	}
	off_t res = lseek(f->fd, off, whence);
	if (res < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_lseek(req, res);
}
