// SPDX-License-Identifier: MIT
/*
 * Open files: open, create, read, write, flush, release, fsync, fallocate,
 * copy_file_range and lseek. Reads take the inode's read lock and writes
 * its write lock for the length of the backing call, so no read request
 * sees part of a concurrent write. Data moves by splice where libfuse can
 * (replies are spliced from the backing file). Every change of a regular
 * file's bytes runs under cow_lock() and asks the store first (cow.c).
 * With snapshot=open, a read-only open reads its own ephemeral snapshot,
 * taken at open: such opens bypass the page cache (direct_io), which
 * belongs to the inode and must keep serving live bytes to everyone else.
 * The daemon kills privileges itself (FUSE_CAP_HANDLE_KILLPRIV).
 */
#include "sfs_i.h"
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

static int file_new(int fd, int flags, struct fuse_file_info *fi, struct sfs_file **out)
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
	if (out)
		*out = f;
	return 0;
}

/*
 * Open an existing backing object for the caller. O_TRUNC of a regular file
 * is done here under the byte lock, after the store preserved what
 * snapshots need (FUSE_CAP_ATOMIC_O_TRUNC hands it to us with the open).
 */
static int open_backing(fuse_req_t req, struct sfs_inode *inode, int flags, int *out)
{
	char proc[64];
	inode_procpath(inode, proc);
	int trunc = (flags & O_TRUNC) && S_ISREG(inode->type);
	struct store_file *sf = trunc ? cow_sf(inode) : NULL;
	int rc = 0;
	if (trunc) {
		cow_lock(inode, sf);
		rc = cow_truncate(inode, sf, 0);
	}
	struct sfs_cred c = {0};
	if (rc == 0)
		rc = cred_enter(req, &c);
	if (rc == 0) {
		*out = open(proc, (flags & ~SFS_OPEN_STRIP) | O_CLOEXEC);
		if (*out < 0)
			rc = -errno;
	}
	cred_leave(&c);
	if (trunc)
		cow_unlock(inode, sf);
	return rc;
}

/* With snapshot=open: a read-only open of a regular file reads a snapshot
 * taken now, held by this open until release. */
static int open_time_snapshot(fuse_req_t req, struct sfs_inode *inode, struct sfs_file *f,
			      struct fuse_file_info *fi)
{
	if (sfs.o.snapmode != SFS_SNAP_OPEN || !S_ISREG(inode->type) ||
	    (f->flags & O_ACCMODE) != O_RDONLY || (f->flags & O_TRUNC))
		return 0;
	char rel[PATH_MAX];
	uint64_t id;
	int rc = ctl_pin_ephemeral(req, inode, rel, sizeof(rel), &id);
	if (rc)
		return rc;
	if ((rc = eph_ref(id))) {
		store_release(sfs.store, id);
		return rc;
	}
	f->snap = f->ref_snap = id;
	f->fid = store_file_fid(cow_sf(inode));
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
	if (rc == 0 && (rc = file_new(fd, fi->flags, fi, &f)))
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
	struct sfs_cred c;
	int fd = -1;
	int rc = cred_enter(req, &c);
	if (rc == 0) {
		/* Create only: an existing file (the kernel's entry was stale) goes
		 * through open_backing, so O_TRUNC is copied-on-write. */
		fd = openat(parent->fd, name,
			    (fi->flags | O_CREAT | O_EXCL | O_CLOEXEC) &
				~(O_DIRECT | O_NOCTTY | O_TRUNC),
			    mode);
		if (fd < 0)
			rc = -errno;
	}
	cred_leave(&c);
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
	if ((rc = file_new(fd, fi->flags, fi, NULL))) {
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
		snapview_read(req, f->snap, f->fid, size, off);
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

/*
 * What the kernel would do on a write or truncate by this caller: clear
 * set-user-ID (and group-executable set-group-ID) unless the caller is
 * privileged, and drop file capabilities always.
 */
static void kill_priv(fuse_req_t req, struct sfs_inode *inode, int fd)
{
	if (fuse_req_ctx(req)->uid != 0) {
		struct stat st;
		if (fstat(fd, &st) == 0 &&
		    ((st.st_mode & S_ISUID) ||
		     (st.st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP)))
			fchmod(fd, st.st_mode & 07777 & ~(S_ISUID | S_ISGID));
	}
	if (!__atomic_load_n(&inode->nocaps, __ATOMIC_RELAXED)) {
		if (fremovexattr(fd, "security.capability") && errno == ENODATA)
			__atomic_store_n(&inode->nocaps, 1, __ATOMIC_RELAXED);
	}
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
	size_t size = fuse_buf_size(in_buf);
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(size);
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = f->fd;
	out.buf[0].pos = off;
	struct store_file *sf = cow_sf(inode);
	cow_lock(inode, sf);
	uint64_t at = (uint64_t)off;
	struct stat st;
	if ((f->flags & O_APPEND) && sf && store_file_tracked(sf) && fstat(f->fd, &st) == 0)
		at = (uint64_t)st.st_size; /* the backing O_APPEND write lands at its EOF */
	ssize_t res = cow_range(inode, sf, at, size);
	if (res == 0) {
		kill_priv(req, inode, f->fd);
		res = fuse_buf_copy(&out, in_buf, 0);
	}
	cow_unlock(inode, sf);
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
	struct sfs_file *f = file_of(fi);
	if (f->fd >= 0)
		close(f->fd);
	if (f->ref_snap)
		eph_unref(f->ref_snap);
	free(f);
	if (req)
		fuse_reply_err(req, 0);
}

void sfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	int fd = file_of(fi)->fd;
	int rc = fd < 0 ? 0 : datasync ? fdatasync(fd) : fsync(fd);
	fuse_reply_err(req, rc ? errno : 0);
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
	struct store_file *sf = cow_sf(inode);
	cow_lock(inode, sf);
	int rc = 0;
	/* Plain allocation changes no byte a snapshot can read (it ends at the
	 * pin-time size); punching, zeroing and shifting do. */
	if (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE))
		rc = cow_tail(inode, sf, (uint64_t)offset);
	else if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
		rc = cow_range(inode, sf, (uint64_t)offset, (uint64_t)length);
	if (rc == 0 && fallocate(f->fd, mode, offset, length))
		rc = -errno;
	cow_unlock(inode, sf);
	fuse_reply_err(req, -rc);
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
	struct store_file *sf = cow_sf(out);
	/* Lock both in address order: two opposite copies must not deadlock. */
	if (in == out) {
		pthread_rwlock_wrlock(&out->rwlock);
	} else if (in < out) {
		pthread_rwlock_rdlock(&in->rwlock);
		pthread_rwlock_wrlock(&out->rwlock);
	} else {
		pthread_rwlock_wrlock(&out->rwlock);
		pthread_rwlock_rdlock(&in->rwlock);
	}
	if (sf)
		store_file_wrlock(sf);
	ssize_t n = cow_range(out, sf, (uint64_t)off_out, len);
	if (n == 0) {
		n = copy_file_range(fin->fd, &off_in, fout->fd, &off_out, len, flags);
		if (n < 0)
			n = -errno;
	}
	if (sf)
		store_file_unlock(sf);
	pthread_rwlock_unlock(&out->rwlock);
	if (in != out)
		pthread_rwlock_unlock(&in->rwlock);
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
