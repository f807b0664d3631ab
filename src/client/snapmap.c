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
#include "direct_proto.h"
#include "fullio.h"
#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOKEN_LEN DIRECT_TOKEN_LEN /* SNAPFS_OP_DIRECT's token */

int snaphold_take(int fd, struct snaphold *h)
{
	char proc[PROCFD_PATH_LEN], root[PATH_MAX], view[PATH_MAX + SNAPFS_PROTO_DATA];
	struct stat st;
	h->holder = h->view = h->direct = h->conn = -1;
	h->id = 0;
	h->direct_state = 0;
	h->bits = NULL;
	if (fstat(fd, &st))
		return -1;
	if (!S_ISREG(st.st_mode)) {
		errno = ENOTSUP;
		return -1;
	}
	if (snapfs_locate(procfd_path(fd, proc), root, sizeof(root), NULL, 0))
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
		snaphold_drop(h, NULL);
	errno = e;
	return rc;
}

void snaphold_drop(struct snaphold *h, struct snapfs_req *req)
{
	int e = errno;
	if (h->view >= 0)
		close(h->view);
	if (h->bits)
		munmap((void *)h->bits, h->bits_len);
	if (h->direct >= 0)
		close(h->direct);
	if (h->conn >= 0)
		close(h->conn);
	h->bits = NULL;
	h->direct = h->conn = -1;
	/* The kernel sends RELEASE for a closed descriptor when it likes; an
	 * explicit release through the holder makes the snapshot gone now.
	 * Should it fail, closing the holder still releases it, later. */
	struct snapfs_req *r = h->holder < 0 || !h->id ? NULL
			       : req		       ? req
						       : snapfs_req_new(SNAPFS_OP_RELEASE);
	if (r) {
		memset(r, 0, offsetof(struct snapfs_req, label));
		r->op = SNAPFS_OP_RELEASE;
		r->id = h->id;
		(void)snapfs_call_fd(h->holder, r);
		if (r != req)
			free(r);
	}
	if (h->holder >= 0)
		close(h->holder);
	h->view = h->holder = -1;
	h->id = 0;
	errno = e;
}

/* A connection to the daemon's side channel, with timeouts. */
static int side_connect(const struct snaphold *h, int secs)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t nlen = strlen(h->sock);
	memcpy(sa.sun_path + 1, h->sock, nlen);
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = {secs, 0};
	if (c >= 0 && (setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
		       setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) ||
		       connect(c, (struct sockaddr *)&sa,
			       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + nlen)))) {
		close(c);
		c = -1;
	}
	return c;
}

/* Ask the daemon for the live file and the change bitmap (daemon: sidechan.c). */
static int direct_setup(struct snaphold *h)
{
	struct snapfs_req *r = snapfs_req_new(SNAPFS_OP_DIRECT);
	if (!r)
		return -1;
	int rc = -1, fds[2] = {-1, -1};
	r->id = h->id;
	if (snapfs_call_fd(h->holder, r) || r->len <= TOKEN_LEN + 1 || r->len > sizeof(r->data) ||
	    r->count < 512 || (r->count & (r->count - 1)))
		goto out;
	r->data[r->len - 1] = 0;
	/* The name goes after a NUL in sun_path (108 bytes). */
	if (strlcpy(h->sock, r->data + TOKEN_LEN, sizeof(h->sock)) >= sizeof(h->sock) - 1 ||
	    !h->sock[0])
		goto out;
	struct direct_msg q = {.type = DIRECT_HANDOVER};
	memcpy(q.key, r->data, TOKEN_LEN);
	h->conn = side_connect(h, 2); /* a stuck daemon: fill through the view */
	if (h->conn < 0 || !direct_send(h->conn, &q, sizeof(q), NULL, 0))
		goto out;
	unsigned char ans[1 + TOKEN_LEN] = {1};
	union {
		struct cmsghdr c;
		char buf[CMSG_SPACE(sizeof(fds))];
	} u;
	struct iovec iov = {ans, sizeof(ans)};
	struct msghdr m = {.msg_iov = &iov,
			   .msg_iovlen = 1,
			   .msg_control = u.buf,
			   .msg_controllen = sizeof(u.buf)};
	if (recvmsg(h->conn, &m, MSG_CMSG_CLOEXEC | MSG_WAITALL) != (ssize_t)sizeof(ans))
		goto out;
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
	if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
	    cm->cmsg_len == CMSG_LEN(sizeof(fds)))
		memcpy(fds, CMSG_DATA(cm), sizeof(fds));
	struct stat st;
	if (ans[0] || fds[0] < 0 || fds[1] < 0 || fstat(fds[1], &st))
		goto out;
	uint32_t shift = (uint32_t)__builtin_ctz(r->count);
	uint64_t nblocks = (h->size + r->count - 1) >> shift;
	if ((uint64_t)st.st_size < (nblocks + 63) / 64 * 8)
		goto out;
	void *bits = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fds[1], 0);
	if (bits == MAP_FAILED)
		goto out;
	h->bits = bits;
	h->bits_len = (size_t)st.st_size;
	h->bshift = shift;
	h->direct = fds[0];
	memcpy(h->wkey, ans + 1, TOKEN_LEN);
	fds[0] = -1;
	rc = 0;
out:
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (rc && h->conn >= 0) {
		close(h->conn);
		h->conn = -1;
	}
	free(r);
	return rc;
}

int snaphold_writeback(const struct snaphold *h, int fd, const uint64_t (*rg)[2], size_t n,
		       const uint64_t (*fg)[2], size_t nfg, int data)
{
	/* fd is not sent: the daemon opens the file for writing as us. The
	 * ranges are pwrites, which fd must be able to do itself. */
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY || (fl & O_APPEND))
		return -ENOTSUP;
	if (h->direct_state <= 0 || n == 0 || n > DIRECT_MAX_RANGES || nfg > DIRECT_MAX_RANGES)
		return -ENOTSUP;
	/* Pages written through the mount and still in the kernel's writeback
	 * cache (-o writeback) would reach the file after these ranges and undo
	 * them: have the kernel send them first. */
	if (syncfs(fd))
		return -errno;
	/* Long enough for a large batch under copy-on-write, bounded. */
	int c = side_connect(h, 60);
	if (c < 0)
		return -errno;
	struct direct_msg q = {.type = DIRECT_WRITEBACK, .n = (uint32_t)n, .nforgo = (uint32_t)nfg};
	memcpy(q.key, h->wkey, TOKEN_LEN);
	struct direct_ans ans = {.status = -EIO};
	size_t rlen = n * sizeof(*rg), flen = nfg * sizeof(*fg);
	if (direct_send(c, &q, sizeof(q), &data, 1) &&
	    send(c, rg, rlen, MSG_NOSIGNAL) == (ssize_t)rlen &&
	    (!flen || send(c, fg, flen, MSG_NOSIGNAL) == (ssize_t)flen) &&
	    recv(c, &ans, sizeof(ans), MSG_WAITALL) != (ssize_t)sizeof(ans))
		ans.status = -EIO;
	close(c);
	return ans.status;
}

/* After a direct read of [off, off + len): did it read the snapshot? */
static bool direct_clean(const struct snaphold *h, uint64_t off, uint64_t len)
{
	/* The daemon sets a bit before the block changes: read the bits
	 * after the bytes. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	for (uint64_t b = off >> h->bshift, e = (off + len - 1) >> h->bshift; b <= e; b++)
		if (__atomic_load_n(&h->bits[b / 64], __ATOMIC_RELAXED) & (1ull << (b & 63)))
			return false;
	/* The daemon closes its end after setting every bit, or dies. */
	struct pollfd p = {h->conn, POLLIN, 0};
	return poll(&p, 1, 0) == 0;
}

int snaphold_direct(struct snaphold *h)
{
	if (h->direct_state == 0)
		h->direct_state = direct_setup(h) ? -1 : 1;
	return h->direct_state > 0 ? 0 : -1;
}

ssize_t snaphold_pread(struct snaphold *h, void *buf, size_t len, uint64_t off)
{
	if (off >= h->size)
		return 0;
	if (len > h->size - off)
		len = (size_t)(h->size - off);
	if (h->direct_state > 0 && len &&
	    pread_full(h->direct, buf, len, (off_t)off) == (ssize_t)len &&
	    direct_clean(h, off, len))
		return (ssize_t)len;
	ssize_t k = pread_full(h->view, buf, len, (off_t)off);
	if (k < 0) {
		errno = (int)-k;
		return -1;
	}
	return k;
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
	snaphold_drop(&m->h, NULL);
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
	snaphold_drop(&m->h, NULL);
	free(m);
	return 0;
}
