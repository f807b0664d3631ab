// SPDX-License-Identifier: MIT
/*
 * Direct fills for the deferred-I/O segment (docs/SEGMENT.md, "Direct
 * fills"). A segment fills pages from its frozen snapshot on first touch;
 * through FUSE each fill costs a request round trip, which is most of a
 * random fill's time. A block of the snapshot that the live file has not
 * changed since is the live block, so the daemon hands the process that
 * froze the snapshot two descriptors instead:
 *
 *  - the live file, opened read-only through a private read-only clone of
 *    SOURCE's mount (open_tree + mount_setattr), so neither the descriptor
 *    nor a reopen of it through /proc can change the file behind the
 *    overlay's back;
 *  - a bitmap, one bit per store block of the snapshot's size: "changed
 *    since the snapshot" (bits.c). The write gate sets a block's bit
 *    before anything changes the block in the live file, and every bit is
 *    set before the record is forgotten.
 *
 * The client reads the live file, then (after a full fence) checks the
 * bits of the blocks it read and that its connection to the daemon is
 * still open; if a bit is set or the daemon is gone, it reads the snapshot
 * view through FUSE instead. A writer sets the bit before it writes, so a
 * read that saw any new byte sees the bit.
 *
 * Descriptors cannot travel through a FUSE ioctl, so they go over a unix
 * socket in the abstract namespace: SNAPFS_OP_DIRECT, sent on the
 * descriptor that froze the snapshot, registers the record and answers a
 * one-time random token and the socket's name; the client connects, sends
 * the token, and gets the descriptors. The connection stays open for the
 * record's life: its end tells the client the record is gone. Needs a root
 * daemon (open_tree, open_by_handle_at); otherwise the op is -ENOTSUP and
 * fills go through FUSE.
 */
#include "sfs_i.h"
#include "snapstore.h"
#include "snapfs_proto.h"
#include "direct_proto.h"
#include "fullio.h"
#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#define TOKEN_LEN DIRECT_TOKEN_LEN

struct direct_rec {
	uint64_t id;
	uint32_t uid; /* the snapshot's owner */
	unsigned char token[TOKEN_LEN];
	unsigned char wkey[TOKEN_LEN]; /* write-back requests carry it */
	bool handed;		       /* the token was used */
	struct sfs_inode *inode;       /* holds one lookup reference */
	struct bits *bits;	       /* attached to inode while the record lives */
	int conn;		       /* the client's connection, -1 before */
	struct direct_rec *next;       /* all records; protected by d.mutex */
};

static struct {
	char mnt[PATH_MAX]; /* the mount point, absolute */
	int ro_fd;	    /* SOURCE through a read-only clone of its mount; -1: off */
	int listen;	    /* the socket; -1: off */
	char name[64];
	pthread_t thread;
	bool running;
	pthread_mutex_t mutex;
	struct direct_rec *recs; /* protected by mutex */
} d = {.ro_fd = -1, .listen = -1, .mutex = PTHREAD_MUTEX_INITIALIZER};

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
	struct direct_rec *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->conn = -1;
	r->id = id;
	r->uid = s.uid;
	uint64_t bs = store_block_size(sfs.store);
	if (getrandom(r->token, TOKEN_LEN, 0) != TOKEN_LEN ||
	    getrandom(r->wkey, TOKEN_LEN, 0) != TOKEN_LEN) {
		free(r);
		return -EIO;
	}
	if ((rc = bits_new(f.size, &r->bits)) || (rc = bits_attach(inode, r->bits, id, f.fid)))
		goto fail;
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
fail:
	rec_free(r);
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
		if (r)
			*pp = r->next;
		pthread_mutex_unlock(&d.mutex);
		if (!r)
			return;
		/* Everything "changed", then the connection closes: a client
		 * that still reads falls back to the view (which now fails). */
		bits_detach(r->inode, r->bits);
		rec_free(r);
	}
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
	if (fd >= 0 && (fstat(fd, &st) || st.st_ino != r->inode->ino)) {
		close(fd);
		errno = ESTALE;
		return -1;
	}
	return fd;
}

/* DIRECT_HANDOVER: the token for the live file and the bitmap. Returns the
 * connection if the record keeps it, else -1 (the caller closes c). */
static int handover(int c, const struct direct_msg *h, const struct ucred *cr)
{
	unsigned char ans[1 + TOKEN_LEN] = {ENOENT};
	int fds[2] = {-1, -1};
	pthread_mutex_lock(&d.mutex);
	struct direct_rec *r = d.recs;
	while (r && memcmp(r->token, h->key, TOKEN_LEN))
		r = r->next;
	if (r && !r->handed && hold_may_see(cr->uid, r->uid)) {
		char proc[64];
		procfd_path(bits_memfd(r->bits), proc);
		fds[0] = open_ro(r);
		fds[1] = open(proc, O_RDONLY | O_CLOEXEC);
		ans[0] = fds[0] >= 0 && fds[1] >= 0 ? 0 : (unsigned char)errno;
		memcpy(ans + 1, r->wkey, TOKEN_LEN);
		r->handed = true;
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

/* The device of our own mount, for telling the caller's descriptor is on
 * it. Asked of the mount point once the loop serves (stat is a request). */
static dev_t fuse_dev(void)
{
	static dev_t dev; /* direct thread only */
	struct stat st;
	struct statfs sfs_;
	if (!dev && d.mnt[0] && stat(d.mnt, &st) == 0 && statfs(d.mnt, &sfs_) == 0 &&
	    sfs_.f_type == 0x65735546 /* FUSE_SUPER_MAGIC */)
		dev = st.st_dev;
	return dev;
}

/* Who is at the other end of a connection: SO_PEERCRED and SO_PEERGROUPS,
 * as they were at connect(). */
struct peer {
	struct ucred cr;
	gid_t groups[256];
	int ngroups;
};

struct wb {
	uint64_t snap;
	const char *buf; /* the bytes, packed in range order */
	const uint64_t (*fg)[2];
	uint32_t nfg;
};

/* Under the gate, before anything is preserved: what the segment's
 * snapshot gives up, it gives up before the writes (only its own snapshot:
 * a failure just means more copying). */
static ssize_t wb_prepare(void *arg, struct gate_op *op, struct store_file *sf)
{
	struct wb *w = arg;
	for (uint32_t i = 0; i < w->nfg && sf; i++)
		(void)store_snap_forgo(sfs.store, w->snap, store_file_fid(sf), w->fg[i][0],
				       w->fg[i][1]);
	return 0;
}

static ssize_t wb_write(void *arg, struct gate_op *op)
{
	struct wb *w = arg;
	uint64_t doff = 0;
	for (size_t i = 0; i < op->n; i++) {
		int rc = pwrite_full(op->fd, w->buf + doff, op->r[i][1], (off_t)op->r[i][0]);
		if (rc)
			return rc;
		doff += op->r[i][1];
	}
	return 0;
}

/* Write the ranges' bytes from data into the file, through the write gate. */
static int wb_apply(struct sfs_inode *inode, const struct peer *who, uint64_t snap, int data,
		    const uint64_t (*rg)[2], uint32_t n, const uint64_t (*fg)[2], uint32_t nfg)
{
	char proc[PROCFD_PATH_LEN];
	int pfd = inode_fd(inode);
	if (pfd < 0)
		return pfd;
	int wfd = open(procfd_path(pfd, proc), O_WRONLY | O_CLOEXEC);
	int err = errno;
	inode_fd_put(inode);
	if (wfd < 0)
		return -err;
	/* The bytes, mapped: the sender sealed the file against shrinking, so
	 * reading the mapping cannot fault. */
	uint64_t total = 0;
	for (uint32_t i = 0; i < n; i++)
		total += rg[i][1];
	char *buf = mmap(NULL, total, PROT_READ, MAP_SHARED | MAP_POPULATE, data, 0);
	if (buf == MAP_FAILED) {
		int rc = -errno;
		close(wfd);
		return rc;
	}
	struct wb w = {.snap = snap, .buf = buf, .fg = fg, .nfg = nfg};
	struct gate_op op = {.what = GATE_RANGES,
			     .r = rg,
			     .n = n,
			     .fd = wfd,
			     .caller = who->cr.uid,
			     .gid = who->cr.gid,
			     .groups = who->groups,
			     .ngroups = who->ngroups,
			     .prepare = wb_prepare,
			     .apply = wb_write,
			     .arg = &w};
	int rc = (int)gate_write(inode, &op);
	munmap(buf, total);
	close(wfd);
	/* The kernel's cached pages and attributes of the file are stale. */
	inode_invalidate(inode->dev, inode->ino, 0, 0);
	return rc;
}

/* DIRECT_WRITEBACK: n ranges follow; fds[0] the caller's descriptor of the
 * file, open for writing; fds[1] the bytes, packed in range order. */
static void writeback(int c, const struct direct_msg *h, const struct peer *who, const int *fds)
{
	struct direct_ans ans = {.status = -EINVAL};
	uint64_t(*rg)[2] = NULL;
	struct sfs_inode *inode = NULL;
	if (h->n == 0 || h->n > DIRECT_MAX_RANGES || h->nforgo > DIRECT_MAX_RANGES || fds[0] < 0 ||
	    fds[1] < 0)
		goto out;
	size_t nall = (size_t)h->n + h->nforgo;
	rg = malloc(nall * sizeof(*rg));
	if (!rg || recv(c, rg, nall * sizeof(*rg), MSG_WAITALL) != (ssize_t)(nall * sizeof(*rg)))
		goto out;
	uint64_t total = 0;
	for (uint32_t i = 0; i < h->n; i++) {
		if (rg[i][1] == 0 || rg[i][0] + rg[i][1] < rg[i][0] ||
		    (i && rg[i][0] < rg[i - 1][0] + rg[i - 1][1]))
			goto out;
		total += rg[i][1];
	}
	/* The caller may write the file: its own descriptor of it, on this
	 * mount, open for writing (not appending: these are pwrites). */
	struct stat st, dst;
	int fl = fcntl(fds[0], F_GETFL);
	ans.status = -EBADF;
	int seals = fcntl(fds[1], F_GET_SEALS);
	if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY || (fl & O_APPEND) || fstat(fds[0], &st) ||
	    !S_ISREG(st.st_mode) || !fuse_dev() || st.st_dev != fuse_dev() || seals < 0 ||
	    !(seals & F_SEAL_SHRINK) || fstat(fds[1], &dst) || (uint64_t)dst.st_size < total)
		goto out;
	ans.status = -ENOENT;
	pthread_mutex_lock(&d.mutex);
	struct direct_rec *r = d.recs;
	while (r && (!r->handed || memcmp(r->wkey, h->key, TOKEN_LEN)))
		r = r->next;
	uint64_t snap = 0;
	if (r && hold_may_see(who->cr.uid, r->uid) && r->inode->ino == st.st_ino) {
		inode = r->inode;
		snap = r->id;
		pthread_mutex_lock(&sfs.mutex);
		inode->nlookup++; /* kept while we write */
		pthread_mutex_unlock(&sfs.mutex);
	}
	pthread_mutex_unlock(&d.mutex);
	if (!inode)
		goto out;
	ans.status = wb_apply(inode, who, snap, fds[1], (const uint64_t(*)[2])rg, h->n,
			      (const uint64_t(*)[2])(rg + h->n), h->nforgo);
	if (ans.status == 0)
		ans.written = total;
	inode_forget(inode, 1);
out:
	free(rg);
	direct_send(c, &ans, sizeof(ans), NULL, 0);
}

static void serve(int c)
{
	struct timeval tv = {1, 0};
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	struct direct_msg h;
	int fds[2] = {-1, -1};
	union {
		struct cmsghdr c;
		char buf[CMSG_SPACE(sizeof(fds))];
	} u;
	struct iovec iov = {&h, sizeof(h)};
	struct msghdr m = {.msg_iov = &iov,
			   .msg_iovlen = 1,
			   .msg_control = u.buf,
			   .msg_controllen = sizeof(u.buf)};
	struct peer who;
	socklen_t crlen = sizeof(who.cr), glen = sizeof(who.groups);
	ssize_t k = recvmsg(c, &m, MSG_WAITALL | MSG_CMSG_CLOEXEC);
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			size_t nf = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			int got[2] = {-1, -1};
			memcpy(got, CMSG_DATA(cm), (nf < 2 ? nf : 2) * sizeof(int));
			for (size_t i = 0; i < nf && i < 2; i++)
				fds[i] = got[i];
			for (size_t i = 2; i < nf; i++) { /* more than asked for */
				int x;
				memcpy(&x, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
				close(x);
			}
		}
	if (k == (ssize_t)sizeof(h) && !getsockopt(c, SOL_SOCKET, SO_PEERCRED, &who.cr, &crlen) &&
	    !getsockopt(c, SOL_SOCKET, SO_PEERGROUPS, who.groups, &glen)) {
		who.ngroups = (int)(glen / sizeof(gid_t));
		if (h.type == DIRECT_HANDOVER && fds[0] < 0)
			c = handover(c, &h, &who.cr) >= 0 ? -1 : c;
		else if (h.type == DIRECT_WRITEBACK)
			writeback(c, &h, &who, fds);
	}
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (c >= 0)
		close(c);
}

static void *direct_main(void *arg)
{
	(void)arg;
	for (;;) {
		int c = accept4(d.listen, NULL, NULL, SOCK_CLOEXEC);
		if (c >= 0)
			serve(c);
		else if (errno == EINVAL || errno == EBADF)
			break; /* shut down */
	}
	return NULL;
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
	if (!realpath(fs->o.mountpoint, d.mnt))
		d.mnt[0] = 0;
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
	(void)fs;
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
	shutdown(d.listen, SHUT_RDWR);
	if (d.running)
		pthread_join(d.thread, NULL);
	d.running = false;
	close(d.listen);
	d.listen = -1;
	pthread_mutex_lock(&d.mutex);
	struct direct_rec *r = d.recs;
	d.recs = NULL;
	pthread_mutex_unlock(&d.mutex);
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
