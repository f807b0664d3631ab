// SPDX-License-Identifier: MIT
/*
 * Attributes and extended attributes: getattr, setattr (mode, owner,
 * size, times), readlink, statfs, access and the four xattr calls.
 * Objects are reached through their O_PATH descriptor: /proc/self/fd/N for
 * calls that need a real open, AT_EMPTY_PATH where the kernel allows it,
 * and the *xattrat() system calls for symbolic links. Those refuse an
 * O_PATH descriptor with an empty path (EBADF, Linux 6.18), and there is no
 * other race-free way to reach a symlink's xattrs from its descriptor, so a
 * symlink then reads as having none and refuses changes with EPERM, as
 * libfuse's passthrough examples do.
 */
#include "sfs_i.h"
#include "snapstore.h"
#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

void sfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_inode *inode = inode_get(ino);
	if (sfs_virtual(inode)) {
		snapview_getattr(req, inode);
		return;
	}
	if (fi && file_of(fi)->fd < 0)
		fi = NULL;
	struct stat st;
	int rc;
	if (fi) {
		rc = fstat(file_of(fi)->fd, &st) ? -errno : 0;
	} else {
		int fd = inode_fd(inode);
		rc = fd < 0							 ? fd
		     : fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) ? -errno
										 : 0;
		if (fd >= 0)
			inode_fd_put(inode);
	}
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	inode_hide_store_nlink(&st);
	fuse_reply_attr(req, &st, sfs.o.timeout);
}

static int set_times(struct sfs_inode *inode, int ifd, struct fuse_file_info *fi,
		     const struct stat *attr, int valid)
{
	struct timespec tv[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_OMIT}};
	if (valid & FUSE_SET_ATTR_ATIME_NOW)
		tv[0].tv_nsec = UTIME_NOW;
	else if (valid & FUSE_SET_ATTR_ATIME)
		tv[0] = attr->st_atim;
	if (valid & FUSE_SET_ATTR_MTIME_NOW)
		tv[1].tv_nsec = UTIME_NOW;
	else if (valid & FUSE_SET_ATTR_MTIME)
		tv[1] = attr->st_mtim;
	if (fi)
		return futimens(file_of(fi)->fd, tv);
	if (S_ISLNK(inode->type))
		return utimensat(ifd, "", tv, AT_EMPTY_PATH);
	char proc[PROCFD_PATH_LEN];
	return utimensat(AT_FDCWD, procfd_path(ifd, proc), tv, 0);
}

static ssize_t truncate_apply(void *arg, struct gate_op *op)
{
	return ftruncate(op->fd, (off_t)op->off) ? -errno : 0;
}

/* Whether mode is the file's mode with only set-id bits taken away: what
 * the kernel asks (SETATTR with the mode) before it lets a write or
 * truncate through, when the daemon does not kill privileges itself. */
static int kills_priv_only(struct sfs_inode *inode, int ifd, mode_t mode)
{
	struct stat st;
	if (!S_ISREG(inode->type) || fstat(ifd, &st))
		return 0;
	mode_t now = st.st_mode & 07777, want = mode & 07777;
	return want != now && (now & ~want & ~(mode_t)(S_ISUID | S_ISGID)) == 0 &&
	       (want & ~now) == 0;
}

/* Clear set-id bits for a caller who may write the file but does not own
 * it: as write(2) does on the kernel's own filesystems, which clear them
 * for any writer. Running as the caller, the write permission is checked
 * first; the chmod then runs with the daemon's credentials. */
static int kill_priv_chmod(fuse_req_t req, struct sfs_cred *c, int ifd, mode_t mode, int valid)
{
	char proc[PROCFD_PATH_LEN];
	procfd_path(ifd, proc);
	if (faccessat(AT_FDCWD, proc, W_OK, AT_EACCESS)) {
		/* A truncate's answer is its own permission error; a chmod's
		 * by one who does not own the file is EPERM. */
		if (!(valid & FUSE_SET_ATTR_SIZE))
			errno = EPERM;
		return -1;
	}
	cred_leave(c);
	int rc = fchmodat(AT_FDCWD, proc, mode & 07777, 0);
	int e = errno;
	int rc2 = cred_enter(req, c);
	errno = rc ? e : -rc2;
	return rc || rc2 ? -1 : 0;
}

void sfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
		 struct fuse_file_info *fi)
{
	struct sfs_inode *inode = inode_get(ino);
	if (sfs_virtual(inode) || (fi && file_of(fi)->snap)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	int ifd = inode_fd(inode);
	if (ifd < 0) {
		fuse_reply_err(req, -ifd);
		return;
	}
	char proc[PROCFD_PATH_LEN];
	procfd_path(ifd, proc);
	struct sfs_cred c = {0};
	struct ns_hold h = {0};
	ns_enter();
	/* Held through every part of the change, the truncate's gate included. */
	int rc = ns_hold_inode(&h, inode);
	if (rc == 0)
		rc = ns_hold_save(&h);
	if (rc == 0)
		rc = cred_enter(req, &c);
	if (rc)
		goto out;
	if (valid & FUSE_SET_ATTR_MODE) {
		rc = fi ? fchmod(file_of(fi)->fd, attr->st_mode)
			: fchmodat(AT_FDCWD, proc, attr->st_mode, 0);
		if (rc && errno == EPERM && kills_priv_only(inode, ifd, attr->st_mode))
			rc = kill_priv_chmod(req, &c, ifd, attr->st_mode, valid);
		if (rc)
			goto out_errno;
	}
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
		if (fchownat(ifd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))
			goto out_errno;
	}
	if (valid & FUSE_SET_ATTR_SIZE) {
		int fd = fi ? file_of(fi)->fd : open(proc, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			goto out_errno;
		struct gate_op op = {.what = GATE_TRUNCATE,
				     .off = (uint64_t)attr->st_size,
				     .fd = fd,
				     .caller = fuse_req_ctx(req)->uid,
				     .req = req,
				     .held = h.inode == inode,
				     .apply = truncate_apply};
		rc = (int)gate_write(inode, &op);
		if (!fi)
			close(fd);
		if (rc)
			goto out;
	}
	if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
		     FUSE_SET_ATTR_MTIME_NOW)) {
		/* Under the file's locks, and recorded as the daemon's own change:
		 * the store compares mtime to tell a writer that bypassed the
		 * mount (store_live_check). */
		struct store_file *sf = inode_sf(inode);
		/* A tree snapshot's hold (h) has both locks already. */
		int held = h.inode == inode;
		if (sf && !held) {
			pthread_rwlock_wrlock(&inode->rwlock);
			store_file_wrlock(sf);
		}
		if (sf)
			store_file_touch(sf);
		int trc = set_times(inode, ifd, fi, attr, valid), e = errno;
		if (sf && !held) {
			store_file_unlock(sf);
			pthread_rwlock_unlock(&inode->rwlock);
		}
		errno = e;
		if (trc)
			goto out_errno;
	}
	cred_leave(&c);
	ns_hold_release(&h);
	ns_leave();
	inode_fd_put(inode);
	sfs_getattr(req, ino, fi);
	return;
out_errno:
	rc = -errno;
out:
	cred_leave(&c);
	ns_hold_release(&h);
	ns_leave();
	inode_fd_put(inode);
	fuse_reply_err(req, -rc);
}

void sfs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX + 1];
	if (sfs_virtual(inode_get(ino))) {
		snapview_readlink(req, inode_get(ino));
		return;
	}
	int fd = inode_fd(inode_get(ino));
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	ssize_t n = readlinkat(fd, "", buf, sizeof(buf));
	int err = errno;
	inode_fd_put(inode_get(ino));
	if (n < 0)
		fuse_reply_err(req, err);
	else if (n >= (ssize_t)sizeof(buf))
		fuse_reply_err(req, ENAMETOOLONG);
	else {
		buf[n] = 0;
		fuse_reply_readlink(req, buf);
	}
}

void sfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;
	struct sfs_inode *inode = inode_get(ino);
	int virt = sfs_virtual(inode);
	int fd = virt ? sfs.source_fd : inode_fd(inode);
	int rc = fd < 0 ? fd : fstatvfs(fd, &sv) ? -errno : 0;
	if (fd >= 0 && !virt)
		inode_fd_put(inode);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_statfs(req, &sv);
}

void sfs_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	if (sfs_virtual(inode_get(ino))) {
		fuse_reply_err(req, (mask & W_OK) ? EROFS : 0);
		return;
	}
	struct sfs_cred c = {0};
	int fd = inode_fd(inode_get(ino));
	int rc = fd < 0 ? fd : cred_enter(req, &c);
	if (rc == 0 && faccessat(fd, "", mask, AT_EMPTY_PATH | AT_EACCESS))
		rc = -errno;
	cred_leave(&c);
	if (fd >= 0)
		inode_fd_put(inode_get(ino));
	fuse_reply_err(req, -rc);
}

/* The *xattrat() system calls (Linux 6.13), for symbolic links. */
#ifndef SYS_setxattrat
#define SYS_setxattrat	  463
#define SYS_getxattrat	  464
#define SYS_listxattrat	  465
#define SYS_removexattrat 466
#endif
struct sfs_xattr_args {
	uint64_t value;
	uint32_t size;
	uint32_t flags;
};

static ssize_t x_get(struct sfs_inode *in, int fd, const char *name, void *val, size_t size)
{
	if (sfs_virtual(in)) {
		ssize_t n = snapview_xattr(in, name, val, size);
		if (n < 0)
			errno = (int)-n;
		return n < 0 ? -1 : n;
	}
	if (S_ISLNK(in->type)) {
		struct sfs_xattr_args a = {.value = (uintptr_t)val, .size = (uint32_t)size};
		long r = syscall(SYS_getxattrat, fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, name,
				 &a, sizeof(a));
		if (r < 0 && (errno == ENOSYS || errno == EBADF))
			errno = ENODATA;
		return r;
	}
	char proc[PROCFD_PATH_LEN];
	return getxattr(procfd_path(fd, proc), name, val, size);
}

static ssize_t x_list(struct sfs_inode *in, int fd, char *list, size_t size)
{
	if (sfs_virtual(in)) {
		ssize_t n = snapview_xattr(in, NULL, list, size);
		if (n < 0)
			errno = (int)-n;
		return n < 0 ? -1 : n;
	}
	if (S_ISLNK(in->type)) {
		long r = syscall(SYS_listxattrat, fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, list,
				 size);
		if (r < 0 && (errno == ENOSYS || errno == EBADF))
			r = 0;
		return r;
	}
	char proc[PROCFD_PATH_LEN];
	return listxattr(procfd_path(fd, proc), list, size);
}

static int x_set(struct sfs_inode *in, int fd, const char *name, const void *val, size_t size,
		 int flags)
{
	if (sfs_virtual(in)) {
		errno = EROFS;
		return -1;
	}
	if (S_ISLNK(in->type)) {
		struct sfs_xattr_args a = {
		    .value = (uintptr_t)val, .size = (uint32_t)size, .flags = (uint32_t)flags};
		long r = syscall(SYS_setxattrat, fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, name,
				 &a, sizeof(a));
		if (r < 0 && (errno == ENOSYS || errno == EBADF))
			errno = EPERM;
		return (int)r;
	}
	char proc[PROCFD_PATH_LEN];
	return setxattr(procfd_path(fd, proc), name, val, size, flags);
}

static int x_remove(struct sfs_inode *in, int fd, const char *name)
{
	if (sfs_virtual(in)) {
		errno = EROFS;
		return -1;
	}
	if (S_ISLNK(in->type)) {
		long r =
		    syscall(SYS_removexattrat, fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, name);
		if (r < 0 && (errno == ENOSYS || errno == EBADF))
			errno = EPERM;
		return (int)r;
	}
	char proc[PROCFD_PATH_LEN];
	return removexattr(procfd_path(fd, proc), name);
}

/* getxattr (name) and listxattr (name NULL): a size-0 probe answers the
 * length, otherwise the bytes. Returns what it answered: a count or -errno. */
static ssize_t xattr_query(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct sfs_inode *inode = inode_get(ino);
	char *buf = NULL;
	if (size && !(buf = malloc(size))) {
		fuse_reply_err(req, ENOMEM);
		return -ENOMEM;
	}
	struct sfs_cred c = {0};
	int virt = sfs_virtual(inode);
	int fd = virt ? -1 : inode_fd(inode);
	ssize_t n = !virt && fd < 0 ? fd : cred_enter(req, &c);
	if (n == 0) {
		n = name ? x_get(inode, fd, name, buf, size) : x_list(inode, fd, buf, size);
		if (n < 0)
			n = -errno;
	}
	cred_leave(&c);
	if (fd >= 0)
		inode_fd_put(inode);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
	return n;
}

/*
 * The kernel asks for security.capability before every write() (to drop
 * file capabilities, file_remove_privs): a file known to have none is
 * answered from the inode, with no backing call. The knowledge is dropped
 * when the xattr is set through the mount (sfs_setxattr); capgen, bumped
 * there, keeps a lookup that raced with such a set from leaving "none".
 * A capability set on the backing file directly, behind the mount, is not
 * seen until the kernel forgets the inode (docs/ARCHITECTURE.md).
 */
void sfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct sfs_inode *inode = inode_get(ino);
	if (sfs_virtual(inode) || strcmp(name, "security.capability") != 0) {
		xattr_query(req, ino, name, size);
		return;
	}
	if (__atomic_load_n(&inode->nocaps, __ATOMIC_ACQUIRE)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	unsigned gen = __atomic_load_n(&inode->capgen, __ATOMIC_SEQ_CST);
	if (xattr_query(req, ino, name, size) != -ENODATA)
		return;
	/* Record "none", then look again: a set that bumped capgen meanwhile
	 * may have cleared the flag before we set it. */
	__atomic_store_n(&inode->nocaps, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&inode->capgen, __ATOMIC_SEQ_CST) != gen)
		__atomic_store_n(&inode->nocaps, 0, __ATOMIC_SEQ_CST);
}

void sfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	xattr_query(req, ino, NULL, size);
}

void sfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
		  int flags)
{
	struct sfs_inode *inode = inode_get(ino);
	struct sfs_cred c = {0};
	int virt = sfs_virtual(inode);
	int fd = virt ? -1 : inode_fd(inode);
	struct ns_hold h = {0};
	ns_enter();
	int rc = virt ? -EROFS : fd < 0 ? fd : ns_hold_inode(&h, inode);
	if (rc == 0)
		rc = ns_hold_save(&h);
	if (rc == 0)
		rc = cred_enter(req, &c);
	if (rc == 0 && x_set(inode, fd, name, value, size, flags))
		rc = -errno;
	cred_leave(&c);
	ns_hold_release(&h);
	ns_leave();
	if (fd >= 0)
		inode_fd_put(inode);
	if (strcmp(name, "security.capability") == 0) {
		__atomic_add_fetch(&inode->capgen, 1, __ATOMIC_SEQ_CST);
		__atomic_store_n(&inode->nocaps, 0, __ATOMIC_SEQ_CST);
	}
	fuse_reply_err(req, -rc);
}

void sfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct sfs_inode *inode = inode_get(ino);
	struct sfs_cred c = {0};
	int virt = sfs_virtual(inode);
	int fd = virt ? -1 : inode_fd(inode);
	struct ns_hold h = {0};
	ns_enter();
	int rc = virt ? -EROFS : fd < 0 ? fd : ns_hold_inode(&h, inode);
	if (rc == 0)
		rc = ns_hold_save(&h);
	if (rc == 0)
		rc = cred_enter(req, &c);
	if (rc == 0 && x_remove(inode, fd, name))
		rc = -errno;
	cred_leave(&c);
	ns_hold_release(&h);
	ns_leave();
	if (fd >= 0)
		inode_fd_put(inode);
	fuse_reply_err(req, -rc);
}
