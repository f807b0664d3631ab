// SPDX-License-Identifier: MIT
/*
 * Quiesce: a pin happens between two write(2) calls, never inside one.
 *
 * The kernel cuts one write(2) into several WRITE requests (more than
 * max_write bytes; a source page that faults mid-copy ends a request
 * mid-page), and holds the inode's lock from the first to the last. The
 * daemon sees only requests, so a pin taken between two of them would show
 * half a write. Before a pin, for every file it covers that is open for
 * writing through the mount, a quiesce thread opens the file through the
 * mount (by its FUSE file handle: the kernel knows the inode while it is
 * open) and calls fsync(2). The kernel's fsync takes the inode's lock,
 * which waits for a write(2) in progress, sends the dirty pages of a
 * write-back cache, and then sends FSYNC while it still holds the lock: the
 * daemon keeps that FSYNC unanswered. Once every such FSYNC is held, no
 * write(2) is inside any of those files until the pin is taken and the
 * FSYNCs answered (quiesce_end).
 *
 * Files not open for writing need nothing: a write(2) needs an open file,
 * and every other change (truncate, chmod, rename, ...) is one request.
 * Watch for: held FSYNCs are answered from quiesce_end only; one quiesce
 * runs at a time (qserial: lock order); a quiesce
 * thread's own OPEN must not take an open-time snapshot (quiesce_own);
 * the pin lock (ns.c) is never held while waiting here.
 */
#include "sfs_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define QUIESCE_WAIT_S 60 /* then the pin fails with ETIMEDOUT */

enum { Q_START, Q_HELD, Q_DONE };

struct qslot {
	struct sfs_inode *inode;
	pid_t tid;	/* the thread's id, as FUSE requests carry it */
	fuse_req_t req; /* its FSYNC, held */
	int state;
	pthread_t th;
	int started;
	struct quiesce *q;
};

struct quiesce {
	struct qslot *s;
	size_t n;
	int released; /* answer FSYNCs at once */
	int mfd;      /* the mount's root, for open_by_handle_at (not O_PATH: FUSE
			 refuses it there); never kept, or umount would be busy */
	struct quiesce *next;
};

/* One quiesce at a time: two holding the locks of files in different
 * orders would each wait for a lock the other holds. */
static pthread_mutex_t qserial = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t qmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qcv = PTHREAD_COND_INITIALIZER;
static struct quiesce *active; /* protected by qmu */

/* Inodes open for writing, with their number of writable opens. */
static struct wr {
	struct sfs_inode *inode;
	unsigned n;
} * wv; /* protected by qmu */
static size_t wn, walloc;

void quiesce_writer(struct sfs_inode *inode, int delta)
{
	pthread_mutex_lock(&qmu);
	size_t i = inode->wslot; /* O(1): 1 + its index in wv */
	if (delta > 0) {
		if (!i) {
			if (wn == walloc) {
				size_t na = walloc ? walloc * 2 : 16;
				struct wr *nv = reallocarray(wv, na, sizeof(*nv));
				if (!nv) {
					/* Not counted: a later pin of it is not quiesced. */
					sfs_log(SFS_LOG_ERR, "quiesce: out of memory");
					pthread_mutex_unlock(&qmu);
					return;
				}
				wv = nv;
				walloc = na;
			}
			wv[wn++] = (struct wr){inode, 0};
			i = inode->wslot = wn;
		}
		wv[i - 1].n++;
	} else if (i && --wv[i - 1].n == 0) {
		wv[i - 1] = wv[--wn];
		if (i - 1 < wn)
			wv[i - 1].inode->wslot = i;
		inode->wslot = 0;
	}
	pthread_mutex_unlock(&qmu);
}

size_t quiesce_writers(struct sfs_inode ***out)
{
	pthread_mutex_lock(&qmu);
	struct sfs_inode **v = wn ? calloc(wn, sizeof(*v)) : NULL;
	size_t n = v ? wn : 0;
	for (size_t i = 0; i < n; i++)
		v[i] = wv[i].inode;
	pthread_mutex_unlock(&qmu);
	*out = v;
	return n;
}

int quiesce_is_writer(const struct sfs_inode *inode)
{
	pthread_mutex_lock(&qmu);
	int found = inode->wslot != 0;
	pthread_mutex_unlock(&qmu);
	return found;
}

int quiesce_own(fuse_req_t req)
{
	pid_t tid = fuse_req_ctx(req)->pid;
	int own = 0;
	pthread_mutex_lock(&qmu);
	for (struct quiesce *q = active; q && !own; q = q->next)
		for (size_t i = 0; i < q->n && !own; i++)
			own = q->s[i].tid == tid;
	pthread_mutex_unlock(&qmu);
	return own;
}

int quiesce_fsync(fuse_req_t req, struct sfs_inode *inode)
{
	pid_t tid = fuse_req_ctx(req)->pid;
	int held = 0;
	pthread_mutex_lock(&qmu);
	for (struct quiesce *q = active; q && !held; q = q->next)
		for (size_t i = 0; i < q->n; i++) {
			struct qslot *s = &q->s[i];
			if (s->tid != tid || s->inode != inode || s->state != Q_START)
				continue;
			if (q->released) {
				s->state = Q_DONE;
				fuse_reply_err(req, 0);
			} else {
				s->req = req;
				s->state = Q_HELD;
				pthread_cond_broadcast(&qcv);
			}
			held = 1;
			break;
		}
	pthread_mutex_unlock(&qmu);
	return held;
}

static void *qthread(void *arg)
{
	struct qslot *s = arg;
	pthread_mutex_lock(&qmu);
	s->tid = gettid();
	int mfd = s->q->mfd;
	pthread_mutex_unlock(&qmu);
	/* FUSE's file handle: the node id and its generation (always 0 here). */
	union {
		struct file_handle fh;
		char buf[sizeof(struct file_handle) + 12];
	} u;
	uint64_t nodeid = (uint64_t)(uintptr_t)s->inode;
	uint32_t raw[3] = {(uint32_t)(nodeid >> 32), (uint32_t)nodeid, 0};
	u.fh.handle_bytes = sizeof(raw);
	u.fh.handle_type = 0x81; /* FILEID_INO64_GEN */
	memcpy(u.fh.f_handle, raw, sizeof(raw));
	int fd = mfd < 0 ? -1 : open_by_handle_at(mfd, &u.fh, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0) {
		if (fsync(fd)) /* returns once quiesce_end answers it */
			sfs_log(SFS_LOG_DEBUG, "quiesce: fsync: %s", strerror(errno));
		close(fd);
	} else if (errno != ESTALE && errno != ENOENT) {
		/* ESTALE: the kernel has forgotten the inode, so no one has it
		 * open for writing any more. */
		sfs_log(SFS_LOG_WARNING, "quiesce: cannot open inode %llu through the mount: %s",
			(unsigned long long)s->inode->ino, strerror(errno));
	}
	pthread_mutex_lock(&qmu);
	if (s->state == Q_START)
		s->state = Q_DONE; /* no FSYNC came: nothing to hold */
	pthread_cond_broadcast(&qcv);
	pthread_mutex_unlock(&qmu);
	return NULL;
}

int quiesce_begin(struct sfs_inode *const *v, size_t n, struct quiesce **out)
{
	*out = NULL;
	if (!n)
		return 0;
	struct quiesce *q = calloc(1, sizeof(*q));
	if (!q || !(q->s = calloc(n, sizeof(*q->s)))) {
		free(q);
		return -ENOMEM;
	}
	q->n = n;
	pthread_mutex_lock(&qserial);
	q->mfd = sfs.mnt_abs ? open(sfs.mnt_abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (q->mfd < 0) {
		int e = sfs.mnt_abs ? errno : ENOENT;
		sfs_log(SFS_LOG_ERR, "pin: cannot open the mount point %s to quiesce writers: %s",
			sfs.mnt_abs ? sfs.mnt_abs : "(unknown)", strerror(e));
		pthread_mutex_unlock(&qserial);
		free(q->s);
		free(q);
		return -e;
	}
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	for (size_t i = 0; i < n; i++)
		q->s[i] = (struct qslot){.inode = v[i], .tid = -1, .q = q};
	pthread_mutex_lock(&qmu);
	q->next = active;
	active = q;
	pthread_mutex_unlock(&qmu);
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		/* pthread_create publishes the slot to its thread; started and
		 * state are read under qmu. */
		pthread_t th;
		int e = pthread_create(&th, &attr, qthread, &q->s[i]);
		pthread_mutex_lock(&qmu);
		if (e) {
			q->s[i].state = Q_DONE;
			rc = -EAGAIN;
		} else {
			q->s[i].th = th;
			q->s[i].started = 1;
		}
		pthread_mutex_unlock(&qmu);
		if (e)
			break;
	}
	pthread_attr_destroy(&attr);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += QUIESCE_WAIT_S;
	pthread_mutex_lock(&qmu);
	for (;;) {
		size_t waiting = 0;
		for (size_t i = 0; i < n; i++)
			waiting += q->s[i].started && q->s[i].state == Q_START;
		if (!waiting || rc)
			break;
		if (pthread_cond_timedwait(&qcv, &qmu, &until) == ETIMEDOUT) {
			rc = -ETIMEDOUT;
			sfs_log(SFS_LOG_WARNING,
				"pin: %zu file(s) open for writing did not come to rest in %d s "
				"(a write(2) that does not end?): the pin fails",
				waiting, QUIESCE_WAIT_S);
			break;
		}
	}
	pthread_mutex_unlock(&qmu);
	*out = q;
	if (rc) {
		quiesce_end(q);
		*out = NULL;
	}
	return rc;
}

void quiesce_end(struct quiesce *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&qmu);
	q->released = 1;
	for (size_t i = 0; i < q->n; i++)
		if (q->s[i].state == Q_HELD) {
			q->s[i].state = Q_DONE;
			fuse_reply_err(q->s[i].req, 0);
		}
	pthread_mutex_unlock(&qmu);
	for (size_t i = 0; i < q->n; i++)
		if (q->s[i].started)
			pthread_join(q->s[i].th, NULL);
	pthread_mutex_lock(&qmu);
	struct quiesce **pp = &active;
	while (*pp != q)
		pp = &(*pp)->next;
	*pp = q->next;
	pthread_mutex_unlock(&qmu);
	close(q->mfd);
	pthread_mutex_unlock(&qserial);
	free(q->s);
	free(q);
}
