// SPDX-License-Identifier: MIT
/*
 * The daemon's side of copy-on-write: every path that changes a regular
 * file's bytes takes the inode's byte lock (cow_lock: the inode's rwlock,
 * then the store file's) and asks the store to preserve what live
 * snapshots still need before it changes anything. Files no snapshot
 * covers cost one flag test. Also the reference counts that tie ephemeral
 * snapshots to the open files holding them.
 */
#include "sfs_i.h"
#include "snapstore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct store_file *cow_sf(struct sfs_inode *inode)
{
	struct store_file *sf = __atomic_load_n(&inode->sf, __ATOMIC_ACQUIRE);
	if (sf || inode->kind != SFS_REAL || !S_ISREG(inode->type) || !sfs.store)
		return sf;
	if (store_file_get(sfs.store, inode->fd, &sf))
		return NULL;
	pthread_mutex_lock(&sfs.mutex);
	if (inode->sf) {
		pthread_mutex_unlock(&sfs.mutex);
		store_file_put(sf);
		return inode->sf;
	}
	__atomic_store_n(&inode->sf, sf, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&sfs.mutex);
	return sf;
}

int cow_rfd(struct sfs_inode *inode)
{
	int fd = __atomic_load_n(&inode->rfd, __ATOMIC_ACQUIRE);
	if (fd >= 0)
		return fd;
	char proc[64];
	inode_procpath(inode, proc);
	fd = open(proc, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	pthread_mutex_lock(&sfs.mutex);
	if (inode->rfd >= 0) {
		pthread_mutex_unlock(&sfs.mutex);
		close(fd);
		return inode->rfd;
	}
	__atomic_store_n(&inode->rfd, fd, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&sfs.mutex);
	return fd;
}

void cow_inode_release(struct sfs_inode *inode)
{
	if (inode->sf)
		store_file_put(inode->sf);
	if (inode->rfd >= 0)
		close(inode->rfd);
	inode->sf = NULL;
	inode->rfd = -1;
}

void cow_lock(struct sfs_inode *inode, struct store_file *sf)
{
	pthread_rwlock_wrlock(&inode->rwlock);
	if (sf)
		store_file_wrlock(sf);
}

void cow_unlock(struct sfs_inode *inode, struct store_file *sf)
{
	if (sf)
		store_file_unlock(sf);
	pthread_rwlock_unlock(&inode->rwlock);
}

int cow_range(struct sfs_inode *inode, struct store_file *sf, uint64_t off, uint64_t len)
{
	direct_mark(inode, off, len);
	if (!sf || !store_file_tracked(sf) || len == 0)
		return 0;
	int fd = cow_rfd(inode);
	return fd < 0 ? fd : store_cow_range(sf, fd, off, len);
}

int cow_ranges(struct sfs_inode *inode, struct store_file *sf, const uint64_t (*r)[2], size_t n)
{
	for (size_t i = 0; i < n; i++)
		direct_mark(inode, r[i][0], r[i][1]);
	if (!sf || !store_file_tracked(sf) || n == 0)
		return 0;
	int fd = cow_rfd(inode);
	return fd < 0 ? fd : store_cow_ranges(sf, fd, r, n);
}

int cow_truncate(struct sfs_inode *inode, struct store_file *sf, uint64_t size)
{
	direct_mark(inode, size, UINT64_MAX);
	if (!sf || !store_file_tracked(sf))
		return 0;
	int fd = cow_rfd(inode);
	return fd < 0 ? fd : store_cow_truncate(sf, fd, size);
}

int cow_tail(struct sfs_inode *inode, struct store_file *sf, uint64_t off)
{
	direct_mark(inode, off, UINT64_MAX);
	if (!sf || !store_file_tracked(sf))
		return 0;
	int fd = cow_rfd(inode);
	return fd < 0 ? fd : store_cow_tail(sf, fd, off);
}

int cow_victim(struct sfs_inode *parent, const char *name, struct store_file **held)
{
	*held = NULL;
	if (!sfs.store)
		return 0;
	int fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0; /* nothing there: the backing call reports it */
	struct stat st;
	struct store_file *sf = NULL;
	int rc = 0;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || store_file_get(sfs.store, fd, &sf))
		goto out_close;
	store_file_wrlock(sf);
	/* Re-check under the lock: a link made meanwhile keeps the bytes alive. */
	if (fstat(fd, &st) == 0 && st.st_nlink == 1 && store_file_tracked(sf)) {
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		int rfd = open(proc, O_RDONLY | O_CLOEXEC);
		if (rfd < 0)
			rc = -errno;
		else {
			rc = store_cow_unlink(sf, rfd);
			close(rfd);
		}
	}
	if (rc) {
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

int eph_ref(uint64_t id)
{
	struct sfs *fs = &sfs;
	int rc = 0;
	pthread_mutex_lock(&fs->eph_mutex);
	for (size_t i = 0; i < fs->neph; i++)
		if (fs->eph[i].id == id) {
			fs->eph[i].refs++;
			goto out;
		}
	if (fs->neph == fs->aeph) {
		size_t n = fs->aeph ? fs->aeph * 2 : 16;
		struct sfs_eph *e = reallocarray(fs->eph, n, sizeof(*e));
		if (!e) {
			rc = -ENOMEM;
			goto out;
		}
		fs->eph = e;
		fs->aeph = n;
	}
	fs->eph[fs->neph++] = (struct sfs_eph){id, 1};
out:
	pthread_mutex_unlock(&fs->eph_mutex);
	return rc;
}

void eph_unref(uint64_t id)
{
	struct sfs *fs = &sfs;
	int release = 0;
	pthread_mutex_lock(&fs->eph_mutex);
	for (size_t i = 0; i < fs->neph; i++)
		if (fs->eph[i].id == id) {
			if (--fs->eph[i].refs == 0) {
				fs->eph[i] = fs->eph[--fs->neph];
				release = 1;
			}
			break;
		}
	pthread_mutex_unlock(&fs->eph_mutex);
	if (release) {
		direct_forget(id);
		int rc = store_release(fs->store, id);
		if (rc && rc != -ENOENT)
			sfs_log(SFS_LOG_WARNING, "release of ephemeral snapshot %llu: %s",
				(unsigned long long)id, strerror(-rc));
	}
}
