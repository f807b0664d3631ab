// SPDX-License-Identifier: MIT
/*
 * Open files: open, create, read, write, flush, release, fsync, fallocate,
 * copy_file_range and lseek. Reads take the inode's read lock and writes
 * its write lock for the length of the backing call, so no read request
 * sees part of a concurrent write. Data moves by splice where libfuse can
 * (replies are spliced from the backing file; see sfs_init for the pipe
 * size). The daemon handles privilege killing itself (FUSE_CAP_HANDLE_KILLPRIV),
 * which spares the kernel a GETXATTR round trip on every write.
 */
#include "sfs_i.h"

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

static int file_new(int fd, int flags, struct fuse_file_info *fi)
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
	return 0;
}

void sfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_inode *inode = inode_get(ino);
	char proc[64];
	inode_procpath(inode, proc);
	struct sfs_cred c;
	int fd = -1;
	int rc = cred_enter(req, &c);
	if (rc == 0) {
		fd = open(proc, fi->flags & ~SFS_OPEN_STRIP);
		if (fd < 0)
			rc = -errno;
	}
	cred_leave(&c);
	if (rc == 0 && (rc = file_new(fd, fi->flags, fi)))
		close(fd);
	if (rc)
		fuse_reply_err(req, -rc);
	else if (fuse_reply_open(req, fi) == -ENOENT)
		sfs_release(NULL, ino, fi); /* the opener was interrupted */
}

void sfs_create(fuse_req_t req, fuse_ino_t parent_ino, const char *name, mode_t mode,
		struct fuse_file_info *fi)
{
	struct sfs_inode *parent = inode_get(parent_ino);
	if (inode_is_store_name(parent, name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	struct sfs_cred c;
	int fd = -1;
	int rc = cred_enter(req, &c);
	if (rc == 0) {
		fd = openat(parent->fd, name, (fi->flags | O_CREAT) & ~(O_DIRECT | O_NOCTTY), mode);
		if (fd < 0)
			rc = -errno;
	}
	cred_leave(&c);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	struct fuse_entry_param e;
	if ((rc = inode_lookup(parent, name, &e)) || (rc = file_new(fd, fi->flags, fi))) {
		close(fd);
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
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = file_of(fi)->fd;
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
		    ((st.st_mode & S_ISUID) || (st.st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP)))
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
	int fd = file_of(fi)->fd;
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in_buf));
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = fd;
	out.buf[0].pos = off;
	pthread_rwlock_wrlock(&inode->rwlock);
	kill_priv(req, inode, fd);
	ssize_t res = fuse_buf_copy(&out, in_buf, 0);
	pthread_rwlock_unlock(&inode->rwlock);
	if (res < 0)
		fuse_reply_err(req, (int)-res);
	else
		fuse_reply_write(req, (size_t)res);
}

void sfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* close() of a duplicate flushes what the backing filesystem buffers per
	 * close (NFS) without closing our descriptor. */
	int rc = close(dup(file_of(fi)->fd));
	fuse_reply_err(req, rc ? errno : 0);
}

void sfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_file *f = file_of(fi);
	close(f->fd);
	free(f);
	if (req)
		fuse_reply_err(req, 0);
}

void sfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	int fd = file_of(fi)->fd;
	int rc = datasync ? fdatasync(fd) : fsync(fd);
	fuse_reply_err(req, rc ? errno : 0);
}

void sfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
		   struct fuse_file_info *fi)
{
	struct sfs_inode *inode = inode_get(ino);
	int fd = file_of(fi)->fd;
	pthread_rwlock_wrlock(&inode->rwlock);
	int rc = fallocate(fd, mode, offset, length) ? errno : 0;
	pthread_rwlock_unlock(&inode->rwlock);
	fuse_reply_err(req, rc);
}

void sfs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			 struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			 struct fuse_file_info *fi_out, size_t len, int flags)
{
	struct sfs_inode *in = inode_get(ino_in), *out = inode_get(ino_out);
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
	ssize_t n = copy_file_range(file_of(fi_in)->fd, &off_in, file_of(fi_out)->fd, &off_out,
				    len, flags);
	int e = errno;
	pthread_rwlock_unlock(&out->rwlock);
	if (in != out)
		pthread_rwlock_unlock(&in->rwlock);
	if (n < 0)
		fuse_reply_err(req, e);
	else
		fuse_reply_write(req, (size_t)n);
}

void sfs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	off_t res = lseek(file_of(fi)->fd, off, whence);
	if (res < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_lseek(req, res);
}
