// SPDX-License-Identifier: MIT
/*
 * The write gate: every change of a regular file's bytes, whoever makes it
 * (a FUSE write, truncate, fallocate, copy_file_range, snapctl restore, a
 * segment's batched write-back), goes through gate_write(), which does the
 * same steps in the same order for all of them:
 *
 *   lock      the pin lock shared (ns.c), the inode's rwlock for writing (and a copy source's for
 *             reading, both in address order), then the store file's lock;
 *   prepare   the writer's own step under the lock (a segment gives up
 *             blocks its snapshot no longer shows);
 *   save      its attributes, when a tree snapshot needs them (ns.c);
 *   mark      the segments' change bitmaps (bits.c), before any byte moves;
 *   preserve  ask the store to keep what live snapshots still need;
 *   kill      set-id bits and file capabilities, as write(2) does;
 *   apply     the change itself, on the backing descriptor;
 *   unlock.
 *
 * Files no snapshot covers cost one flag test in the preserve step. Also
 * here: preserving a file's bytes before its last link goes (unlink, rename
 * over it), which is a copy-on-write of the whole file.
 */
#include "sfs_i.h"
#include "snapstore.h"
#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Take the locks of op: the target's rwlock for writing, a distinct copy
 * source's for reading, in address order so two opposite copies cannot
 * deadlock; then the store file's lock. */
static void gate_lock(struct sfs_inode *inode, struct sfs_inode *src, struct store_file *sf)
{
	if (!src || src == inode) {
		pthread_rwlock_wrlock(&inode->rwlock);
	} else if (src < inode) {
		pthread_rwlock_rdlock(&src->rwlock);
		pthread_rwlock_wrlock(&inode->rwlock);
	} else {
		pthread_rwlock_wrlock(&inode->rwlock);
		pthread_rwlock_rdlock(&src->rwlock);
	}
	if (sf)
		store_file_wrlock(sf);
}

static void gate_unlock(struct sfs_inode *inode, struct sfs_inode *src, struct store_file *sf,
			int fd)
{
	if (sf)
		store_file_unlock_fd(sf, fd);
	pthread_rwlock_unlock(&inode->rwlock);
	if (src && src != inode)
		pthread_rwlock_unlock(&src->rwlock);
}

/* Mark and preserve what op is about to change. */
static int gate_preserve(struct sfs_inode *inode, struct store_file *sf, struct gate_op *op)
{
	int tracked = sf && store_file_tracked(sf);
	switch (op->what) {
	case GATE_NONE:
		return 0;
	case GATE_APPEND: {
		/* The backing O_APPEND write lands at its end of file. */
		struct stat st;
		if (fstat(op->fd, &st))
			return -errno;
		op->off = (uint64_t)st.st_size;
		op->what = GATE_RANGE;
	}
		/* fall through */
	case GATE_RANGE:
		bits_mark(inode, op->off, op->len);
		tracked = tracked && op->len;
		break;
	case GATE_RANGES:
		for (size_t i = 0; i < op->n; i++)
			bits_mark(inode, op->r[i][0], op->r[i][1]);
		tracked = tracked && op->n;
		break;
	case GATE_TRUNCATE:
	case GATE_TAIL:
		bits_mark(inode, op->off, UINT64_MAX);
		break;
	}
	if (!tracked)
		return 0;
	/* Blocks already preserved for the file's covers: nothing to open. */
	if (op->what == GATE_RANGE && store_cow_cached(sf, op->off, op->len))
		return 0;
	/* The store copies from a read descriptor of the file: the writer's
	 * own when it reads too, else one opened for the copy. */
	int own = op->readable && op->fd >= 0;
	int fd = own ? op->fd : inode_rfd(inode), rc;
	if (fd < 0)
		return fd;
	switch (op->what) {
	case GATE_RANGE:
		rc = store_cow_range(sf, fd, op->off, op->len);
		break;
	case GATE_RANGES:
		rc = store_cow_ranges(sf, fd, op->r, op->n);
		break;
	case GATE_TRUNCATE:
		rc = store_cow_truncate(sf, fd, op->off);
		break;
	case GATE_TAIL:
		rc = store_cow_tail(sf, fd, op->off);
		break;
	default:
		rc = -EINVAL;
	}
	if (!own)
		close(fd);
	return rc;
}

/* Whether the writer of op is in group g. */
static int in_group(const struct gate_op *op, gid_t g)
{
	if (op->req) {
		const struct fuse_ctx *c = fuse_req_ctx(op->req);
		if (c->gid == g)
			return 1;
		gid_t v[64];
		int n = fuse_req_getgroups(op->req, 64, v);
		for (int i = 0; i < n && i < 64; i++)
			if (v[i] == g)
				return 1;
		return 0;
	}
	if (op->gid == g)
		return 1;
	for (int i = 0; i < op->ngroups; i++)
		if (op->groups[i] == g)
			return 1;
	return 0;
}

/*
 * What the kernel's write path (file_remove_privs) does for a writer
 * without CAP_FSETID (uid 0 here has it): clear set-user-ID; clear
 * set-group-ID when the file is group-executable or the writer is not in
 * its group; and drop file capabilities always. Done with the daemon's
 * own credentials: the writer's right is the right to write, which it has
 * shown; clearing the bits of a file one may write is not a chmod one must
 * own the file for.
 */
static void gate_kill_priv(struct sfs_inode *inode, int fd, const struct gate_op *op)
{
	struct stat st;
	if (op->caller != 0 && fstat(fd, &st) == 0) {
		mode_t kill = 0;
		if (st.st_mode & S_ISUID)
			kill |= S_ISUID;
		if ((st.st_mode & S_ISGID) && ((st.st_mode & S_IXGRP) || !in_group(op, st.st_gid)))
			kill |= S_ISGID;
		if (kill && fchmod(fd, st.st_mode & 07777 & ~kill))
			sfs_log(SFS_LOG_WARNING, "clearing set-id bits of inode %llu: %s",
				(unsigned long long)inode->ino, strerror(errno));
	}
	if (!__atomic_load_n(&inode->nocaps, __ATOMIC_RELAXED) &&
	    fremovexattr(fd, "security.capability") && errno == ENODATA)
		__atomic_store_n(&inode->nocaps, 1, __ATOMIC_RELAXED);
}

ssize_t gate_write(struct sfs_inode *inode, struct gate_op *op)
{
	struct store_file *sf;
	int e = inode_sf_get(inode, op->fd, &sf);
	/* Without its store file the gate could not preserve what a snapshot
	 * of the file needs: no change then. A file that is gone (its last
	 * link went, which preserved and detached it) has none to keep. */
	if (e && e != -ENOENT && e != -ESTALE) {
		sfs_log(SFS_LOG_WARNING, "write to inode %llu refused: its store file: %s",
			(unsigned long long)inode->ino, strerror(-e));
		return e;
	}
	ns_enter();
	if (!op->held)
		gate_lock(inode, op->src, sf);
	ssize_t rc = op->prepare ? op->prepare(op->arg, op, sf) : 0;
	int changes = op->what != GATE_NONE && !(op->what == GATE_RANGES && op->n == 0);
	/* Size and times change even when no byte a snapshot reads does. */
	if (rc == 0 && !(op->what == GATE_RANGES && op->n == 0))
		rc = ns_save_locked(sf, inode);
	if (rc == 0)
		rc = gate_preserve(inode, sf, op);
	int fd = op->fd;
	if (rc == 0 && changes && fd >= 0)
		gate_kill_priv(inode, fd, op);
	if (rc == 0)
		rc = op->apply(op->arg, op);
	/* A change made by an open (O_TRUNC) kills through what it opened. */
	if (rc >= 0 && changes && fd < 0 && op->fd >= 0)
		gate_kill_priv(inode, op->fd, op);
	if (!op->held)
		gate_unlock(inode, op->src, sf, op->fd);
	ns_leave();
	return rc;
}

int cow_victim(const struct ns_hold *h, struct sfs_inode *parent, const char *name,
	       struct store_file **held)
{
	*held = NULL;
	if (!sfs.store)
		return 0;
	int pfd = inode_fd(parent);
	if (pfd < 0)
		return 0; /* the backing call reports it */
	int fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	inode_fd_put(parent);
	if (fd < 0)
		return 0; /* nothing there: the backing call reports it */
	struct stat st;
	struct store_file *sf = NULL;
	int rc = 0;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || store_file_get(sfs.store, fd, &sf))
		goto out_close;
	int mine = !ns_hold_has(h, sf); /* else locked already, to the change's end */
	if (mine)
		store_file_wrlock(sf);
	/* Re-check under the lock: a link made meanwhile keeps the bytes alive. */
	if (fstat(fd, &st) == 0 && st.st_nlink == 1 && store_file_tracked(sf)) {
		char proc[PROCFD_PATH_LEN];
		int rfd = open(procfd_path(fd, proc), O_RDONLY | O_CLOEXEC);
		if (rfd < 0)
			rc = -errno;
		else {
			rc = store_cow_unlink(sf, rfd);
			close(rfd);
		}
	}
	if (rc || !mine) {
		if (mine)
			store_file_unlock(sf);
		store_file_put(sf);
	} else {
		*held = sf;
	}
out_close:
	close(fd);
	return rc;
}

void cow_victim_done(struct store_file *held)
{
	if (held) {
		store_file_unlock(held);
		store_file_put(held);
	}
}
