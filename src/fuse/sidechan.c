// SPDX-License-Identifier: MIT
/*
 * The segment's side channel (docs/SEGMENT.md, "Direct fills"): a unix
 * socket in the abstract namespace over which the daemon hands a process
 * descriptors a FUSE ioctl cannot carry. A segment fills pages from its
 * frozen snapshot on first touch; through FUSE each fill costs a request
 * round trip. A block of the snapshot that the live file has not changed
 * since is the live block, so the daemon hands the process that froze the
 * snapshot two descriptors instead:
 *
 *  - the live file, opened read-only through a private read-only clone of
 *    SOURCE's mount (open_tree + mount_setattr), so neither the descriptor
 *    nor a reopen of it through /proc can change the file behind the
 *    overlay's back;
 *  - a bitmap, one bit per store block of the snapshot's size: "changed
 *    since the snapshot" (bits.c), set by the write gate before anything
 *    changes the block, every bit set before the record is forgotten.
 *
 * SNAPFS_OP_DIRECT, sent on the descriptor that froze the snapshot (which
 * ctl.c only lets a readable descriptor do), registers a record and
 * answers a one-time token and the socket's name; the client connects,
 * sends the token, and gets the descriptors if it may read the file now,
 * checked as it (its fsuid, fsgid and groups from SO_PEERCRED and
 * SO_PEERGROUPS). The connection stays open for the record's life: its end
 * tells the client the record is gone. Write-backs come in on their own
 * connections (writeback.c).
 *
 * What to watch for: any local user can connect. Every connection gets its
 * own short-lived thread, capped per uid and in all, with a deadline for
 * each part of its request, so one user cannot stall another or exhaust
 * the daemon's descriptors (records are capped the same way). A worker
 * never holds a descriptor of our own mount, and closes a received
 * descriptor that is not a memfd (closing may wait on a FUSE flush) only
 * after it let go of every lock and stopped counting as busy. Needs a root
 * daemon (open_tree, open_by_handle_at); otherwise SNAPFS_OP_DIRECT is
 * -ENOTSUP and fills go through FUSE.
 */
#include "side_i.h"
#include "snapstore.h"
#include "snapfs_proto.h"
#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define TOKEN_LEN DIRECT_TOKEN_LEN
#define SIDE_UIDS 256 /* uids with records or connections at once */

struct direct_rec {
	uint64_t id;
	uint32_t uid; /* the snapshot's owner; its records are counted */
	unsigned char token[TOKEN_LEN];
	unsigned char wkey[TOKEN_LEN]; /* write-back requests carry it */
	bool handed;		       /* the token was used */
	struct sfs_inode *inode;       /* holds one lookup reference */
	struct bits *bits;	       /* attached to inode while the record lives */
	int conn;		       /* the client's connection, -1 before */
	struct direct_rec *next;       /* all records; protected by d.mutex */
};

/* What one uid holds; free when both are 0. */
struct side_uid {
	uid_t uid;
	unsigned recs, conns;
};

static struct {
	int ro_fd;  /* SOURCE through a read-only clone of its mount; -1: off */
	int listen; /* the socket; -1: off */
	char name[64];
	pthread_t thread; /* accepts */
	bool running;
	pthread_mutex_t mutex;
	pthread_cond_t idle;	 /* signalled when busy drops to 0 */
	struct direct_rec *recs; /* protected by mutex */
	size_t nrecs, max_recs;	 /* protected by mutex; max set at init */
	unsigned conns, max_conns, recs_per_uid;
	unsigned busy; /* workers direct_stop waits for; protected by mutex */
	bool stopping; /* set under mutex; read under it or atomically */
	/* Static, so that a worker still closing a foreign descriptor after
	 * direct_stop touches nothing freed. Protected by mutex. */
	struct side_uid uids[SIDE_UIDS];
} d = {.ro_fd = -1,
       .listen = -1,
       .mutex = PTHREAD_MUTEX_INITIALIZER,
       .idle = PTHREAD_COND_INITIALIZER};

/* uid's entry, made if need be; NULL when the table is full. Called with
 * d.mutex held. */
static struct side_uid *uid_slot(uid_t uid)
{
	struct side_uid *free_slot = NULL;
	for (int i = 0; i < SIDE_UIDS; i++) {
		struct side_uid *u = &d.uids[i];
		if (u->recs || u->conns) {
			if (u->uid == uid)
				return u;
		} else if (!free_slot) {
			free_slot = u;
		}
	}
	if (free_slot)
		free_slot->uid = uid;
	return free_slot;
}

/* Run the calling thread's file-system calls as the peer until
 * cred_leave(); no switch for root. */
static int as_peer(const struct side_peer *who, struct sfs_cred *c)
{
	c->switched = 0;
	if (who->cr.uid == 0 && who->cr.gid == 0)
		return 0;
	return cred_enter_ids(who->cr.uid, who->cr.gid, who->groups, who->ngroups, c);
}

struct one_file {
	uint64_t fid, size;
	int n;
};

static int file_cb(void *arg, const struct store_snap_file *f)
{
	struct one_file *o = arg;
	o->fid = f->fid;
	o->size = (uint64_t)f->st.st_size;
	o->n++;
	return 0;
}

/* Called with d.mutex held, the record already unlinked. */
static void rec_uncount(struct direct_rec *r)
{
	struct side_uid *u = uid_slot(r->uid);
	if (u && u->recs)
		u->recs--;
	d.nrecs--;
}

static void rec_free(struct direct_rec *r)
{
	bits_free(r->bits);
	if (r->conn >= 0)
		close(r->conn);
	if (r->inode)
		inode_forget(r->inode, 1);
	free(r);
}

int direct_register(struct sfs_inode *inode, uint64_t id, struct snapfs_req *out)
{
	if (d.listen < 0)
		return -ENOTSUP;
	struct store_snap_meta s;
	struct one_file f = {0};
	int rc = store_snap_meta(sfs.store, id, &s);
	if (rc)
		return rc;
	if (s.kind != STORE_EPHEMERAL)
		return -EINVAL;
	if ((rc = store_snap_files(sfs.store, id, file_cb, &f)))
		return rc;
	if (f.n != 1)
		return -EINVAL;
	/* Counted before anything is allocated: over a limit, nothing is. */
	pthread_mutex_lock(&d.mutex);
	struct side_uid *u = uid_slot(s.uid);
	bool room = !d.stopping && u && d.nrecs < d.max_recs && u->recs < d.recs_per_uid;
	if (room) {
		u->recs++;
		d.nrecs++;
	}
	pthread_mutex_unlock(&d.mutex);
	if (!room)
		return -EAGAIN;
	struct direct_rec *r = calloc(1, sizeof(*r));
	if (!r) {
		rc = -ENOMEM;
		goto out_uncount;
	}
	r->conn = -1;
	r->id = id;
	r->uid = s.uid;
	uint64_t bs = store_block_size(sfs.store);
	if (getrandom(r->token, TOKEN_LEN, 0) != TOKEN_LEN ||
	    getrandom(r->wkey, TOKEN_LEN, 0) != TOKEN_LEN) {
		rc = -EIO;
		goto out_free;
	}
	if ((rc = bits_new(f.size, &r->bits)) || (rc = bits_attach(inode, r->bits, id, f.fid)))
		goto out_free;
	pthread_mutex_lock(&sfs.mutex);
	inode->nlookup++;
	pthread_mutex_unlock(&sfs.mutex);
	r->inode = inode;
	pthread_mutex_lock(&d.mutex);
	r->next = d.recs;
	d.recs = r;
	pthread_mutex_unlock(&d.mutex);
	out->id = id;
	out->count = (uint32_t)bs;
	memcpy(out->data, r->token, TOKEN_LEN);
	out->len = TOKEN_LEN +
		   (uint32_t)strlcpy(out->data + TOKEN_LEN, d.name, sizeof(out->data) - TOKEN_LEN) +
		   1;
	return 0;
out_free:
	rec_free(r);
out_uncount:
	pthread_mutex_lock(&d.mutex);
	rec_uncount(&(struct direct_rec){.uid = s.uid});
	pthread_mutex_unlock(&d.mutex);
	return rc;
}

void direct_forget(uint64_t id)
{
	if (d.listen < 0)
		return;
	for (;;) {
		pthread_mutex_lock(&d.mutex);
		struct direct_rec **pp = &d.recs;
		while (*pp && (*pp)->id != id)
			pp = &(*pp)->next;
		struct direct_rec *r = *pp;
		if (r) {
			*pp = r->next;
			rec_uncount(r);
		}
		pthread_mutex_unlock(&d.mutex);
		if (!r)
			return;
		/* Everything "changed", then the connection closes: a client
		 * that still reads falls back to the view (which now fails). */
		bits_detach(r->inode, r->bits);
		rec_free(r);
	}
}

/* The handed-over record whose write-back key is key, if who may see its
 * snapshot: a lookup reference on its inode (drop it with inode_forget)
 * and the snapshot's id. 0 or -ENOENT. */
static int rec_writer(const unsigned char *key, const struct side_peer *who,
		      struct sfs_inode **inode, uint64_t *snap)
{
	int rc = -ENOENT;
	pthread_mutex_lock(&d.mutex);
	struct direct_rec *r = d.recs;
	while (r && (!r->handed || memcmp(r->wkey, key, TOKEN_LEN)))
		r = r->next;
	if (r && hold_may_see(who->cr.uid, r->uid)) {
		*inode = r->inode;
		*snap = r->id;
		pthread_mutex_lock(&sfs.mutex);
		r->inode->nlookup++;
		pthread_mutex_unlock(&sfs.mutex);
		rc = 0;
	}
	pthread_mutex_unlock(&d.mutex);
	return rc;
}

/* DIRECT_WRITEBACK: find the record, let writeback.c do the rest. */
static void writeback(int c, const struct direct_msg *h, const struct side_peer *who, int data)
{
	struct direct_ans ans = {0};
	struct wb_req q = {.h = h, .who = who, .data = data, .stop = &d.stopping};
	ans.status = rec_writer(h->key, who, &q.inode, &q.snap);
	if (ans.status == 0) {
		ans.status = wb_serve(c, &q, &ans.written);
		inode_forget(q.inode, 1);
	}
	direct_send(c, &ans, sizeof(ans), NULL, 0);
}

/* Open the record's file read-only through the read-only mount, as the
 * same object the inode is. */
static int open_ro(struct direct_rec *r)
{
	union {
		struct file_handle h;
		char buf[sizeof(struct file_handle) + MAX_HANDLE_SZ];
	} u;
	u.h.handle_bytes = MAX_HANDLE_SZ;
	int mid, pfd = inode_fd(r->inode);
	if (pfd < 0) {
		errno = -pfd;
		return -1;
	}
	int err = name_to_handle_at(pfd, "", &u.h, &mid, AT_EMPTY_PATH);
	inode_fd_put(r->inode);
	if (err)
		return -1;
	int fd = open_by_handle_at(d.ro_fd, &u.h, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd >= 0 &&
	    (fstat(fd, &st) || st.st_ino != r->inode->ino || st.st_dev != r->inode->dev)) {
		close(fd);
		errno = ESTALE;
		return -1;
	}
	return fd;
}

/* 0 if who may read inode's file now, checked as who; else an errno. */
static int peer_may_read(const struct side_peer *who, struct sfs_inode *inode)
{
	char proc[PROCFD_PATH_LEN];
	int pfd = inode_fd(inode);
	if (pfd < 0)
		return -pfd;
	struct sfs_cred c;
	int rc = as_peer(who, &c);
	if (rc == 0) {
		rc = syscall(SYS_faccessat2, AT_FDCWD, procfd_path(pfd, proc), R_OK, AT_EACCESS)
			 ? errno
			 : 0;
		cred_leave(&c);
	} else {
		rc = -rc;
	}
	inode_fd_put(inode);
	return rc;
}

/* DIRECT_HANDOVER: the token for the live file and the bitmap. Returns the
 * connection if the record keeps it, else -1 (the caller closes c). */
static int handover(int c, const struct direct_msg *h, const struct side_peer *who)
{
	unsigned char ans[1 + TOKEN_LEN] = {ENOENT};
	int fds[2] = {-1, -1};
	pthread_mutex_lock(&d.mutex);
	struct direct_rec *r = d.recs;
	while (r && memcmp(r->token, h->key, TOKEN_LEN))
		r = r->next;
	if (r && !r->handed && hold_may_see(who->cr.uid, r->uid)) {
		r->handed = true; /* one try per token */
		int e = peer_may_read(who, r->inode);
		if (e) {
			ans[0] = (unsigned char)e;
		} else {
			char proc[PROCFD_PATH_LEN];
			fds[0] = open_ro(r);
			fds[1] = open(procfd_path(bits_memfd(r->bits), proc), O_RDONLY | O_CLOEXEC);
			ans[0] = fds[0] >= 0 && fds[1] >= 0 ? 0 : (unsigned char)errno;
			memcpy(ans + 1, r->wkey, TOKEN_LEN);
		}
	}
	bool sent = direct_send(c, ans, ans[0] ? 1 : sizeof(ans), fds, ans[0] ? 0 : 2);
	int keep = -1;
	if (ans[0] == 0 && sent) {
		r->conn = c; /* open for the record's life */
		keep = c;
	}
	pthread_mutex_unlock(&d.mutex);
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return keep;
}

struct job {
	int c;
	struct side_peer who;
};

/* Serve one connection; returns a received descriptor that is not a memfd
 * (for the caller to close after it stopped counting as busy), or -1. */
static int serve(struct job *j)
{
	int c = j->c, fd = -1;
	struct timeval tv = {SIDE_IDLE_MS / 1000, (SIDE_IDLE_MS % 1000) * 1000};
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	/* More than 256 groups (ERANGE): not served, rather than checked with
	 * some of them (a mode may deny a group what it grants others). */
	socklen_t glen = sizeof(j->who.groups);
	if (getsockopt(c, SOL_SOCKET, SO_PEERGROUPS, j->who.groups, &glen))
		goto out_close;
	j->who.ngroups = (int)(glen / sizeof(gid_t));
	/* Room for one descriptor: the kernel drops any more without
	 * installing them (no flush, no close here). */
	struct direct_msg h;
	union {
		struct cmsghdr c;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct iovec iov = {&h, sizeof(h)};
	struct msghdr m = {.msg_iov = &iov,
			   .msg_iovlen = 1,
			   .msg_control = u.buf,
			   .msg_controllen = sizeof(u.buf)};
	ssize_t k = recvmsg(c, &m, MSG_WAITALL | MSG_CMSG_CLOEXEC);
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len >= CMSG_LEN(sizeof(int)) && fd < 0)
			memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	/* A memfd (the only descriptor we ask for) closes without a flush. */
	bool memfd = fd >= 0 && fcntl(fd, F_GET_SEALS) >= 0;
	if (k != (ssize_t)sizeof(h))
		goto out;
	if (h.type == DIRECT_HANDOVER && fd < 0) {
		if (handover(c, &h, &j->who) >= 0)
			c = -1;
	} else if (h.type == DIRECT_WRITEBACK && memfd) {
		writeback(c, &h, &j->who, fd);
	} else if (h.type == DIRECT_WRITEBACK || h.type == 2 /* the first protocol's */) {
		struct direct_ans ans = {.status = h.type == 2 ? -EPROTO : -EBADF};
		direct_send(c, &ans, sizeof(ans), NULL, 0);
	}
out:
	if (memfd) {
		close(fd);
		fd = -1;
	}
out_close:
	if (c >= 0)
		close(c);
	return fd;
}

static void *worker(void *arg)
{
	struct job *j = arg;
	uid_t uid = j->who.cr.uid;
	int foreign = serve(j);
	free(j);
	pthread_mutex_lock(&d.mutex);
	if (--d.busy == 0)
		pthread_cond_broadcast(&d.idle);
	pthread_mutex_unlock(&d.mutex);
	/* May wait on a flush of whatever filesystem it lives on; the uid's
	 * connection slot stays taken meanwhile. */
	if (foreign >= 0)
		close(foreign);
	pthread_mutex_lock(&d.mutex);
	struct side_uid *u = uid_slot(uid);
	if (u && u->conns)
		u->conns--;
	d.conns--;
	pthread_mutex_unlock(&d.mutex);
	return NULL;
}

/* A new connection: a worker for it, or closed when its uid or everyone
 * is at the limit. */
static void side_accept(int c)
{
	struct job *j = calloc(1, sizeof(*j));
	socklen_t crlen = sizeof(struct ucred);
	if (!j || getsockopt(c, SOL_SOCKET, SO_PEERCRED, &j->who.cr, &crlen))
		goto out_close;
	j->c = c;
	pthread_mutex_lock(&d.mutex);
	struct side_uid *u = uid_slot(j->who.cr.uid);
	bool room = !d.stopping && u && d.conns < d.max_conns && u->conns < SIDE_CONNS_PER_UID;
	if (room) {
		u->conns++;
		d.conns++;
		d.busy++;
	}
	pthread_mutex_unlock(&d.mutex);
	if (!room)
		goto out_close;
	pthread_attr_t a;
	pthread_t t;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	int rc = pthread_create(&t, &a, worker, j);
	pthread_attr_destroy(&a);
	if (rc == 0)
		return;
	pthread_mutex_lock(&d.mutex);
	u = uid_slot(j->who.cr.uid);
	if (u && u->conns)
		u->conns--;
	d.conns--;
	if (--d.busy == 0)
		pthread_cond_broadcast(&d.idle);
	pthread_mutex_unlock(&d.mutex);
out_close:
	free(j);
	close(c);
}

static void *direct_main(void *arg)
{
	(void)arg;
	for (;;) {
		int c = accept4(d.listen, NULL, NULL, SOCK_CLOEXEC);
		if (c >= 0) {
			side_accept(c);
		} else if (errno == EINVAL || errno == EBADF) {
			break; /* shut down */
		} else if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) {
			struct timespec ts = {0, 10 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

/* The side channel's share of the daemon's descriptors: caps on
 * connections and records, so that it never takes the daemon to its
 * limit. A record holds 2 descriptors (bitmap memfd, connection); a
 * connection up to 4 while served (itself, a received memfd, and the two
 * a hand-over sends or the file a write-back writes). */
static void side_limits(void)
{
	struct rlimit rl;
	rlim_t nofile = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
	if (nofile == RLIM_INFINITY || nofile > (1u << 20))
		nofile = 1u << 20;
	size_t budget = (size_t)nofile / SIDE_NOFILE_SHARE;
	d.max_conns = budget / 8 < SIDE_CONNS ? (unsigned)(budget / 8) : SIDE_CONNS;
	if (d.max_conns < 1)
		d.max_conns = 1;
	size_t rest = budget > 4 * (size_t)d.max_conns ? budget - 4 * (size_t)d.max_conns : 0;
	d.max_recs = rest / 2 ? rest / 2 : 1;
	d.recs_per_uid =
	    d.max_recs / 2 < SIDE_RECS_PER_UID ? (unsigned)(d.max_recs / 2) : SIDE_RECS_PER_UID;
	if (d.recs_per_uid < 1)
		d.recs_per_uid = 1;
}

int direct_init(struct sfs *fs)
{
	if (geteuid() != 0)
		return 0;
	int t = (int)syscall(SYS_open_tree, fs->source_fd, "",
			     OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
	if (t < 0)
		goto off;
	struct mount_attr a = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
					   MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC};
	if (syscall(SYS_mount_setattr, t, "", AT_EMPTY_PATH, &a, sizeof(a))) {
		close(t);
		goto off;
	}
	/* open_by_handle_at wants a descriptor that is not O_PATH. */
	d.ro_fd = openat(t, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(t);
	if (d.ro_fd < 0)
		goto off;
	side_limits();
	unsigned char rnd[8];
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		goto off;
	snprintf(d.name, sizeof(d.name), "snapfs-direct-%d-%02x%02x%02x%02x%02x%02x%02x%02x",
		 (int)getpid(), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path + 1, d.name, strlen(d.name));
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(d.name));
	d.listen = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (d.listen < 0 || bind(d.listen, (struct sockaddr *)&sa, salen) || listen(d.listen, 64))
		goto off;
	return 0;
off:
	sfs_log(SFS_LOG_INFO, "direct segment fills off: %s", strerror(errno));
	if (d.listen >= 0)
		close(d.listen);
	if (d.ro_fd >= 0)
		close(d.ro_fd);
	d.listen = d.ro_fd = -1;
	return 0;
}

int direct_start(void)
{
	if (d.listen < 0)
		return 0;
	d.running = pthread_create(&d.thread, NULL, direct_main, NULL) == 0;
	return d.running ? 0 : -1;
}

void direct_stop(void)
{
	if (d.listen < 0)
		return;
	pthread_mutex_lock(&d.mutex);
	__atomic_store_n(&d.stopping, true, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&d.mutex);
	shutdown(d.listen, SHUT_RDWR);
	if (d.running)
		pthread_join(d.thread, NULL);
	d.running = false;
	/* Workers end within a deadline of their connection, or at the next
	 * chunk of a write-back. */
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&d.mutex);
	while (d.busy && pthread_cond_timedwait(&d.idle, &d.mutex, &until) == 0)
		;
	unsigned busy = d.busy;
	struct direct_rec *r = d.recs;
	d.recs = NULL;
	pthread_mutex_unlock(&d.mutex);
	if (busy)
		sfs_log(SFS_LOG_WARNING, "side channel: %u workers still busy at shutdown", busy);
	close(d.listen);
	d.listen = -1;
	while (r) {
		struct direct_rec *n = r->next;
		r->inode->marks = NULL;
		rec_free(r);
		r = n;
	}
	if (d.ro_fd >= 0)
		close(d.ro_fd);
	d.ro_fd = -1;
}
