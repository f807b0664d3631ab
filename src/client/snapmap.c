// SPDX-License-Identifier: MIT
/*
 * Ephemeral snapshots held by descriptors (snaphold_*, used by the
 * segment) and snapfs_map(): a MAP_PRIVATE mapping of a snapshot's view
 * file. The view file never changes, so untouched pages of the mapping can
 * never show later bytes (unlike a private mapping of the live file), and
 * its page cache is shared by every process that maps the same snapshot.
 * Mappings are remembered in a process-wide list (under map_lock) so that
 * snapfs_unmap() can close the snapshot's descriptors.
 */
#include "snapfs.h"
#include "snapfs_proto.h"
#include "client_i.h"
#include "snapseg_i.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int snaphold_take(int fd, struct snaphold *h)
{
	char proc[64], root[PATH_MAX], view[PATH_MAX + SNAPFS_PROTO_DATA];
	struct stat st;
	h->holder = h->view = -1;
	h->id = 0;
	if (fstat(fd, &st))
		return -1;
	if (!S_ISREG(st.st_mode)) {
		errno = ENOTSUP;
		return -1;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (snapfs_locate(proc, root, sizeof(root), NULL, 0))
		return -1;
	struct snapfs_req *r = snapfs_req_new(SNAPFS_OP_FREEZE);
	if (!r)
		return -1;
	int rc = -1;
	h->holder = open(proc, O_RDONLY | O_CLOEXEC);
	if (h->holder < 0 || snapfs_call_fd(h->holder, r))
		goto out;
	h->id = r->id;
	r->data[sizeof(r->data) - 1] = 0;
	if ((size_t)snprintf(view, sizeof(view), "%s/%s", strcmp(root, "/") ? root : "", r->data) >=
	    sizeof(view)) {
		errno = ENAMETOOLONG;
		goto out;
	}
	h->view = open(view, O_RDONLY | O_CLOEXEC);
	struct stat vst;
	if (h->view < 0 || fstat(h->view, &vst))
		goto out;
	h->dev = st.st_dev;
	h->ino = st.st_ino;
	h->size = (uint64_t)vst.st_size;
	rc = 0;
out:;
	int e = errno;
	free(r);
	if (rc)
		snaphold_drop(h);
	errno = e;
	return rc;
}

void snaphold_drop(struct snaphold *h)
{
	int e = errno;
	if (h->view >= 0)
		close(h->view);
	/* The kernel sends RELEASE for a closed descriptor when it likes; an
	 * explicit release through the holder makes the snapshot gone now.
	 * Should it fail, closing the holder still releases it, later. */
	struct snapfs_req *r = h->holder >= 0 && h->id ? snapfs_req_new(SNAPFS_OP_RELEASE) : NULL;
	if (r) {
		r->id = h->id;
		(void)snapfs_call_fd(h->holder, r);
		free(r);
	}
	if (h->holder >= 0)
		close(h->holder);
	h->view = h->holder = -1;
	h->id = 0;
	errno = e;
}

struct snapmap {
	void *addr;
	size_t len;
	struct snaphold h;
	struct snapmap *next; /* protected by map_lock */
};

static pthread_mutex_t map_lock = PTHREAD_MUTEX_INITIALIZER;
static struct snapmap *maps; /* protected by map_lock */

void *snapfs_map(int fd, off_t off, size_t len, uint64_t *id)
{
	long pg = sysconf(_SC_PAGESIZE);
	if (off < 0 || len == 0 || (off & (pg - 1))) {
		errno = EINVAL;
		return NULL;
	}
	struct snapmap *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	if (snaphold_take(fd, &m->h))
		goto out_free;
	m->addr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, m->h.view, off);
	if (m->addr == MAP_FAILED)
		goto out_drop;
	m->len = len;
	if (id)
		*id = m->h.id;
	pthread_mutex_lock(&map_lock);
	m->next = maps;
	maps = m;
	pthread_mutex_unlock(&map_lock);
	return m->addr;
out_drop:
	snaphold_drop(&m->h);
out_free:;
	int e = errno;
	free(m);
	errno = e;
	return NULL;
}

int snapfs_unmap(void *addr, size_t len)
{
	pthread_mutex_lock(&map_lock);
	struct snapmap **pp = &maps;
	while (*pp && ((*pp)->addr != addr || (*pp)->len != len))
		pp = &(*pp)->next;
	struct snapmap *m = *pp;
	if (m)
		*pp = m->next;
	pthread_mutex_unlock(&map_lock);
	if (!m) {
		errno = EINVAL;
		return -1;
	}
	munmap(m->addr, m->len);
	snaphold_drop(&m->h);
	free(m);
	return 0;
}
