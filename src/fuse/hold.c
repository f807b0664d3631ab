// SPDX-License-Identifier: MIT
/*
 * Holds: ephemeral snapshots and the open files that keep them alive, and
 * the visibility rule for every snapshot (its owner and root see it).
 * An ephemeral snapshot is pinned for one open file (snapshot=open, FREEZE)
 * and counted here for every open file that reads it (also a view file of
 * it); the last reference releases it, after the side channel forgets its
 * direct-fill records. What to watch for: an open file's ref_snap changes
 * only under this file's mutex, so two FREEZE requests racing on one
 * descriptor pin once; the release itself runs outside the mutex.
 */
#include "sfs_i.h"
#include "snapstore.h"
#include "path.h"
#include "vec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct {
	pthread_mutex_t mutex;
	struct hold {
		uint64_t id;
		uint64_t refs;
	} * v; /* protected by mutex */
	size_t n, alloc;
} h = {.mutex = PTHREAD_MUTEX_INITIALIZER};

int hold_visible(fuse_req_t req, uint64_t id, struct store_snap_meta *m)
{
	if (store_snap_meta(sfs.store, id, m))
		return 0;
	return hold_may_see(fuse_req_ctx(req)->uid, m->uid);
}

/* The file's path relative to SOURCE, from its descriptor fd. */
static int inode_relpath(int fd, char *out, size_t len)
{
	char proc[PROCFD_PATH_LEN], abs[PATH_MAX], root[PATH_MAX];
	ssize_t n = readlink(procfd_path(fd, proc), abs, sizeof(abs) - 1);
	procfd_path(sfs.source_fd, proc);
	ssize_t m = readlink(proc, root, sizeof(root) - 1);
	if (n < 0 || m < 0)
		return -ENOENT;
	abs[n] = root[m] = 0;
	if (strstr(abs, " (deleted)") || strncmp(abs, root, (size_t)m) || abs[m] != '/')
		return -ENOENT;
	return strlcpy(out, abs + m + 1, len) < len ? 0 : -ENAMETOOLONG;
}

int hold_pin(fuse_req_t req, struct sfs_inode *inode, char *rel, size_t rellen, uint64_t *id)
{
	struct store_file *sf = inode_sf(inode);
	if (!sf)
		return -ENOTSUP;
	int fd = inode_fd(inode);
	if (fd < 0)
		return fd;
	int rc = inode_relpath(fd, rel, rellen);
	struct store_pin_file f = {.sf = sf, .fd = fd, .path = rel};
	struct store_pin pin = {.kind = STORE_EPHEMERAL, .uid = fuse_req_ctx(req)->uid};
	struct quiesce *q = NULL;
	if (rc == 0 && quiesce_is_writer(inode))
		rc = quiesce_begin(&inode, 1, &q); /* between two write(2) calls */
	if (rc == 0)
		rc = store_pin(sfs.store, &pin, &f, 1, id);
	quiesce_end(q);
	inode_fd_put(inode);
	return rc;
}

int hold_ref(uint64_t id)
{
	int rc = 0;
	pthread_mutex_lock(&h.mutex);
	for (size_t i = 0; i < h.n; i++)
		if (h.v[i].id == id) {
			h.v[i].refs++;
			goto out;
		}
	rc = vec_push(&h, (struct hold){id, 1});
out:
	pthread_mutex_unlock(&h.mutex);
	return rc;
}

void hold_unref(uint64_t id)
{
	int release = 0;
	pthread_mutex_lock(&h.mutex);
	for (size_t i = 0; i < h.n; i++)
		if (h.v[i].id == id) {
			if (--h.v[i].refs == 0) {
				h.v[i] = h.v[--h.n];
				release = 1;
			}
			break;
		}
	pthread_mutex_unlock(&h.mutex);
	if (release) {
		direct_forget(id);
		int rc = store_release(sfs.store, id);
		if (rc && rc != -ENOENT)
			sfs_log(SFS_LOG_WARNING, "release of ephemeral snapshot %llu: %s",
				(unsigned long long)id, strerror(-rc));
	}
}

int hold_freeze(fuse_req_t req, struct sfs_inode *inode, struct sfs_file *f, int serve, char *rel,
		size_t rellen, uint64_t *id)
{
	if (__atomic_load_n(&f->ref_snap, __ATOMIC_RELAXED))
		return -EBUSY; /* a cheap early answer; decided below */
	int rc = hold_pin(req, inode, rel, rellen, id);
	if (rc)
		return rc;
	if ((rc = hold_ref(*id))) {
		store_release(sfs.store, *id);
		return rc;
	}
	pthread_mutex_lock(&h.mutex);
	int busy = f->ref_snap != 0;
	if (!busy) {
		f->ref_snap = *id;
		if (serve) {
			f->snap = *id;
			f->fid = store_file_fid(inode_sf(inode));
		}
	}
	pthread_mutex_unlock(&h.mutex);
	if (busy) {
		hold_unref(*id); /* the last reference: releases it */
		return -EBUSY;
	}
	return 0;
}

int hold_drop(struct sfs_file *f, uint64_t id)
{
	pthread_mutex_lock(&h.mutex);
	int held = id && f->ref_snap == id;
	if (held)
		f->ref_snap = 0;
	pthread_mutex_unlock(&h.mutex);
	if (held)
		hold_unref(id);
	return held;
}

int hold_has(struct sfs_file *f, uint64_t id)
{
	pthread_mutex_lock(&h.mutex);
	int held = id && f->ref_snap == id;
	pthread_mutex_unlock(&h.mutex);
	return held;
}

void hold_file_free(struct sfs_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	pthread_mutex_lock(&h.mutex);
	uint64_t id = f->ref_snap;
	f->ref_snap = 0;
	pthread_mutex_unlock(&h.mutex);
	if (id)
		hold_unref(id);
	free(f);
}
