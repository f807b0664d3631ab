// SPDX-License-Identifier: MIT
/*
 * snapfs_pread(): a pread whose bytes are all from one instant. A read
 * that fits in one control request (SNAPFS_OP_PREAD, at most
 * SNAPFS_PROTO_DATA bytes) is one round trip: the daemon reads the live
 * file under the inode's read lock, so no write lands inside it. A larger
 * one reopens the file with O_DIRECT (no page cache: the inode's cache
 * holds live bytes), freezes that open so that it reads an ephemeral
 * snapshot itself (SNAPFS_FREEZE_SERVE), reads, releases the snapshot and
 * closes. A descriptor that reads a snapshot already (a view file, a
 * frozen descriptor, a read-only open on a snapshot=open mount) is
 * consistent by itself: the rest is a plain pread of it, so snapfs_pread
 * and pread agree there. What to watch for: the ioctl goes only to a
 * regular file on a FUSE mount (f_type), never to another file system's
 * file, whose driver might give the command number a meaning.
 */
#include "snapfs.h"
#include "snapfs_proto.h"
#include "client_i.h"
#include "fullio.h"
#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#define FUSE_MAGIC 0x65735546 /* FUSE_SUPER_MAGIC, linux/magic.h */

/* fd is a readable regular file on a FUSE mount: 0, or -1 with errno. */
static int pread_check(int fd)
{
	struct stat st;
	struct statfs sf;
	if (fstat(fd, &st))
		return -1;
	if (S_ISDIR(st.st_mode)) {
		errno = EISDIR;
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		return -1;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -1;
	if ((fl & O_ACCMODE) == O_WRONLY) {
		errno = EBADF;
		return -1;
	}
	if (fstatfs(fd, &sf))
		return -1;
	if (sf.f_type != FUSE_MAGIC) {
		errno = ENOTSUP;
		return -1;
	}
	return 0;
}

/* The whole read from an ephemeral snapshot taken now, through a second
 * open of fd's file that reads the snapshot itself. */
static ssize_t pread_frozen(int fd, void *buf, size_t len, off_t off, struct snapfs_req *r)
{
	char proc[PROCFD_PATH_LEN];
	int rfd = open(procfd_path(fd, proc), O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (rfd < 0)
		return -1;
	memset(r, 0, offsetof(struct snapfs_req, label));
	r->op = SNAPFS_OP_FREEZE;
	r->flags = SNAPFS_FREEZE_SERVE;
	ssize_t k = -1;
	if (snapfs_call_fd(rfd, r) == 0) {
		k = pread_full(rfd, buf, len, off);
		int e = k < 0 ? (int)-k : 0;
		/* Gone now, not when the kernel gets round to RELEASE. A
		 * snapshot the open took at open (snapshot=open) goes with it. */
		if (!(r->flags & SNAPFS_FREEZE_HELD)) {
			uint64_t id = r->id;
			memset(r, 0, offsetof(struct snapfs_req, label));
			r->op = SNAPFS_OP_RELEASE;
			r->id = id;
			(void)snapfs_call_fd(rfd, r);
		}
		if (k < 0) {
			errno = e;
			k = -1;
		}
	}
	int e = errno;
	close(rfd);
	errno = e;
	return k;
}

ssize_t snapfs_pread(int fd, void *buf, size_t len, off_t off)
{
	if (off < 0 || (len && !buf)) {
		errno = EINVAL;
		return -1;
	}
	if (pread_check(fd))
		return -1;
	if (len == 0)
		return 0;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	struct snapfs_req *r = malloc(sizeof(*r));
	if (!r)
		return -1;
	memset(r, 0, offsetof(struct snapfs_req, label));
	r->op = SNAPFS_OP_PREAD;
	r->cursor = (uint64_t)off;
	r->count = len < sizeof(r->data) ? (uint32_t)len : (uint32_t)sizeof(r->data);
	ssize_t k = -1;
	if (snapfs_call_fd(fd, r))
		goto out;
	if (r->len > r->count) {
		errno = EPROTO;
		goto out;
	}
	if (len <= r->count || r->len < r->count) {
		memcpy(buf, r->data, r->len); /* all of it, or the end of the file */
		k = r->len;
	} else if (r->flags & SNAPFS_PREAD_SNAPSHOT) {
		/* fd reads a snapshot: the rest of it is consistent as it is */
		memcpy(buf, r->data, r->len);
		k = pread_full(fd, (char *)buf + r->len, len - r->len, off + (off_t)r->len);
		if (k < 0) {
			errno = (int)-k;
			k = -1;
		} else {
			k += r->len;
		}
	} else {
		k = pread_frozen(fd, buf, len, off, r);
	}
out:;
	int e = errno;
	free(r);
	errno = e;
	return k;
}
