// SPDX-License-Identifier: MIT
/*
 * RESTORE: make live files equal to a snapshot. A snapshot file is found again at its pin-time
 * path: when the file there is the pinned one (same store file), only the ranges the store says
 * changed are looked at; when another file has taken the path (an editor's save-by-rename), all of
 * it; when the path is gone, a file is created there (mode of the pin, owned by the caller; by the
 * pin-time owner when the caller is root) and filled. A file renamed elsewhere since the pin is not
 * followed. Within those ranges each block is compared with the live one and only differing blocks
 * are written, each through the copy-on-write path like any write through the mount, so snapshots
 * taken after this one keep their bytes; then the size is set back. The snapshot's bytes are read
 * outside the file's lock (the store takes it for reads, and a snapshot never changes); the compare
 * and the write happen under it, in the write gate (cow.c) like every writer's: set-id bits and
 * capabilities go as a write(2) by the caller would clear them. Ownership, mode and times are not
 * restored.
 */
#include "sfs_i.h"
#include "ctl_i.h"
#include "snapstore.h"
#include "snapfs_proto.h"
#include "fullio.h"
#include "path.h"
#include "rec.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RESTORE_CHUNK (1u << 20)

struct restore_target {
	struct sfs_inode *parent, *inode;
	fuse_ino_t pino, ino;
	const char *name;
	int created;
};

static void target_release(struct restore_target *t)
{
	if (t->inode)
		inode_forget(t->inode, 1);
	if (t->parent && t->parent != &sfs.root)
		inode_forget(t->parent, 1);
	t->inode = t->parent = NULL;
}

/* Walk to path's parent directory one component at a time through the
 * inode table (no symlink is followed), then look up or create the file. */
static int target_get(fuse_req_t req, const char *path, const struct stat *pst,
		      struct restore_target *t, char *buf, size_t buflen)
{
	*t = (struct restore_target){.parent = &sfs.root, .pino = FUSE_ROOT_ID};
	if (strlcpy(buf, path, buflen) >= buflen)
		return -ENAMETOOLONG;
	char *save = NULL, *comp = strtok_r(buf, "/", &save), *next;
	if (!comp || !strcmp(comp, sfs.o.snapdir))
		return -EINVAL;
	struct fuse_entry_param e;
	int rc = 0;
	for (; (next = strtok_r(NULL, "/", &save)); comp = next) {
		if (!strcmp(comp, "..") || !strcmp(comp, "."))
			rc = -EINVAL;
		else
			rc = inode_lookup(t->parent, comp, &e);
		if (rc)
			break;
		if (t->parent != &sfs.root)
			inode_forget(t->parent, 1);
		t->parent = inode_get(e.ino);
		t->pino = e.ino;
		if (!S_ISDIR(t->parent->type)) {
			rc = -ENOTDIR;
			break;
		}
	}
	if (rc == 0 && (!strcmp(comp, "..") || !strcmp(comp, ".")))
		rc = -EINVAL;
	t->name = comp;
	if (rc == 0)
		rc = inode_lookup(t->parent, comp, &e);
	if (rc == -ENOENT) {
		struct sfs_cred c = {0};
		struct ns_hold h = {0};
		ns_enter();
		int pfd = inode_fd(t->parent);
		rc = pfd < 0 ? pfd : ns_hold_entry(&h, t->parent, comp);
		if (rc == 0)
			rc = ns_hold_save(&h);
		if (rc == 0)
			rc = cred_enter(req, &c);
		int fd = rc ? -1 : openat(pfd, comp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
		if (rc == 0 && fd < 0)
			rc = -errno;
		if (fd >= 0) {
			if (fuse_req_ctx(req)->uid == 0 && fchown(fd, pst->st_uid, pst->st_gid))
				rc = -errno;
			if (rc == 0 && fchmod(fd, pst->st_mode & 07777))
				rc = -errno;
			close(fd);
			if (rc)
				unlinkat(pfd, comp, 0);
		}
		cred_leave(&c);
		if (pfd >= 0)
			inode_fd_put(t->parent);
		if (rc == 0)
			ns_born(t->parent, comp);
		ns_hold_release(&h);
		ns_leave();
		if (rc == 0)
			rc = inode_lookup(t->parent, comp, &e);
		t->created = rc == 0;
	}
	if (rc == 0) {
		t->inode = inode_get(e.ino);
		t->ino = e.ino;
		if (!S_ISREG(t->inode->type))
			rc = S_ISDIR(t->inode->type) ? -EISDIR : -EINVAL;
	}
	if (rc)
		target_release(t);
	return rc;
}

/* Past the end reads as the zeros a resize brings. */
static int pread_zero(int fd, char *p, size_t len, uint64_t off)
{
	ssize_t got = pread_full(fd, p, len, (off_t)off);
	if (got < 0)
		return (int)got;
	memset(p + got, 0, len - (size_t)got);
	return 0;
}

struct chunk {
	const char *snap;
	char *live;
	size_t len;
	uint64_t off;
	uint64_t (*runs)[2]; /* the differing runs, found under the lock */
	uint64_t written;
};

/* Under the gate, before anything is preserved: the runs of whole blocks
 * where the snapshot differs from the live file become the gate's ranges,
 * so only they are preserved and written. */
static ssize_t chunk_plan(void *arg, struct gate_op *op, struct store_file *sf)
{
	struct chunk *c = arg;
	uint64_t bs = store_block_size(sfs.store), off = c->off;
	int rc = pread_zero(op->fd, c->live, c->len, off);
	size_t n = 0;
	for (size_t a = 0; rc == 0 && a < c->len;) {
		size_t b = (size_t)(((off + a) / bs + 1) * bs - off);
		if (b > c->len)
			b = c->len;
		if (!memcmp(c->snap + a, c->live + a, b - a)) {
			a = b;
			continue;
		}
		size_t e = b;
		while (e < c->len) {
			size_t k = (size_t)(((off + e) / bs + 1) * bs - off);
			if (k > c->len)
				k = c->len;
			if (!memcmp(c->snap + e, c->live + e, k - e))
				break;
			e = k;
		}
		c->runs[n][0] = off + a;
		c->runs[n][1] = e - a;
		n++;
		a = e;
	}
	op->r = (const uint64_t(*)[2])c->runs;
	op->n = n;
	return rc;
}

static ssize_t chunk_write(void *arg, struct gate_op *op)
{
	struct chunk *c = arg;
	for (size_t i = 0; i < op->n; i++) {
		int rc = pwrite_full(op->fd, c->snap + (op->r[i][0] - c->off), op->r[i][1],
				     (off_t)op->r[i][0]);
		if (rc)
			return rc;
		c->written += op->r[i][1];
	}
	return 0;
}

/* Write the blocks of [off, off + len) where snap differs from the live
 * file, through the write gate. */
static int restore_chunk(fuse_req_t req, struct sfs_inode *inode, int fd, const char *snap,
			 char *live, size_t len, uint64_t off, uint64_t *written)
{
	uint64_t bs = store_block_size(sfs.store);
	uint64_t(*runs)[2] = calloc(len / bs + 2, sizeof(*runs));
	if (!runs)
		return -ENOMEM;
	struct chunk c = {.snap = snap, .live = live, .len = len, .off = off, .runs = runs};
	struct gate_op op = {.what = GATE_RANGES,
			     .fd = fd,
			     .caller = fuse_req_ctx(req)->uid,
			     .req = req,
			     .prepare = chunk_plan,
			     .apply = chunk_write,
			     .arg = &c};
	int rc = (int)gate_write(inode, &op);
	*written += c.written;
	free(runs);
	return rc;
}

/* Under the gate: set the size back to the pin-time size op->off, if it
 * differs. */
static ssize_t size_plan(void *arg, struct gate_op *op, struct store_file *sf)
{
	struct stat st;
	if (fstat(op->fd, &st))
		return -errno;
	op->what = (uint64_t)st.st_size != op->off ? GATE_TRUNCATE : GATE_NONE;
	return 0;
}

static ssize_t size_apply(void *arg, struct gate_op *op)
{
	if (op->what == GATE_NONE)
		return 0;
	if (ftruncate(op->fd, (off_t)op->off))
		return -errno;
	*(int *)arg = 1;
	return 0;
}

static int restore_file(fuse_req_t req, uint64_t id, const struct sfile *f,
			struct snapfs_rec_restore *out)
{
	char buf[PATH_MAX];
	struct restore_target t;
	int rc = target_get(req, f->path, &f->st, &t, buf, sizeof(buf));
	if (rc)
		return rc;
	if (t.created)
		out->flags |= SNAPFS_RESTORE_CREATED;
	char proc[PROCFD_PATH_LEN];
	struct sfs_cred c = {0};
	int fd = -1, ifd = inode_fd(t.inode);
	if (ifd < 0)
		rc = ifd;
	else if ((rc = cred_enter(req, &c)) == 0 &&
		 (fd = open(procfd_path(ifd, proc), O_RDWR | O_CLOEXEC)) < 0)
		rc = -errno;
	cred_leave(&c);
	if (ifd >= 0)
		inode_fd_put(t.inode);
	struct store_file *sf = rc ? NULL : inode_sf(t.inode);
	uid_t caller = fuse_req_ctx(req)->uid;
	uint64_t psize = (uint64_t)f->st.st_size;
	struct ranges rs = {0};
	struct stat st;
	if (rc == 0 && sf && store_file_fid(sf) == f->fid) {
		rc = store_snap_changed(sfs.store, id, f->fid, ranges_cb, &rs);
		rc = rc > 0 ? 0 : rc;
	} else if (rc == 0 && fstat(fd, &st)) {
		rc = -errno;
	} else if (rc == 0) {
		uint64_t end = (uint64_t)st.st_size > psize ? (uint64_t)st.st_size : psize;
		rc = end ? ranges_cb(&rs, 0, end) : 0;
	}
	char *snap = NULL, *live = NULL;
	if (rc == 0 && rs.n && (!(snap = malloc(RESTORE_CHUNK)) || !(live = malloc(RESTORE_CHUNK))))
		rc = -ENOMEM;
	for (size_t i = 0; rc == 0 && i < rs.n; i++) {
		uint64_t end = rs.v[i].off + rs.v[i].len;
		for (uint64_t at = rs.v[i].off; rc == 0 && at < end && at < psize;) {
			size_t n = end - at < RESTORE_CHUNK ? (size_t)(end - at) : RESTORE_CHUNK;
			ssize_t k = store_snap_read(sfs.store, id, f->fid, snap, n, at);
			if (k < 0)
				rc = (int)k;
			else if (k == 0)
				break;
			else
				rc = restore_chunk(req, t.inode, fd, snap, live, (size_t)k, at,
						   &out->written);
			at += (uint64_t)(k > 0 ? k : 0);
		}
	}
	if (rc == 0) {
		int resized = 0;
		struct gate_op op = {.what = GATE_TRUNCATE,
				     .off = psize,
				     .fd = fd,
				     .caller = caller,
				     .req = req,
				     .prepare = size_plan,
				     .apply = size_apply,
				     .arg = &resized};
		rc = (int)gate_write(t.inode, &op);
		if (rc == 0 && resized)
			out->flags |= SNAPFS_RESTORE_RESIZED;
	}
	if (fd >= 0 && fstat(fd, &st) == 0)
		out->size = (uint64_t)st.st_size;
	free(snap);
	free(live);
	free(rs.v);
	if (fd >= 0)
		close(fd);
	/* The kernel caches the file's pages (keep_cache) and attributes: drop
	 * them, outside every lock since the kernel may wait for reads in flight. */
	if (out->written || (out->flags & SNAPFS_RESTORE_RESIZED))
		fuse_lowlevel_notify_inval_inode(sfs.se, t.ino, 0, 0);
	if (t.created)
		fuse_lowlevel_notify_inval_entry(sfs.se, t.pino, t.name, strlen(t.name));
	target_release(&t);
	return rc;
}

int ctl_restore(fuse_req_t req, struct snapfs_req *r)
{
	if (sfs.o.read_only)
		return -EROFS;
	const char **filt;
	int rc = req_filters(r, &filt);
	if (rc)
		return rc;
	uint32_t nfilt = r->count;
	struct sfiles fl;
	if ((rc = snap_open(req, r, &fl))) {
		free(filt);
		return rc;
	}
	uint64_t i = r->cursor;
	if (i > fl.n)
		rc = -EINVAL;
	r->cursor = 0;
	r->len = r->count = 0;
	const size_t head = sizeof(struct snapfs_rec_restore);
	for (; rc == 0 && i < fl.n; i++) {
		const struct sfile *f = &fl.v[i];
		if (!filters_match(f->path, filt, nfilt))
			continue;
		size_t plen = strlen(f->path) + 1;
		if (r->len + head + plen + 8 > sizeof(r->data)) {
			r->cursor = i;
			break;
		}
		struct snapfs_rec_restore rec = {0};
		rec.status = restore_file(req, r->id, f, &rec);
		rc = rec_put_restore(r, &rec, f->path);
	}
	sfiles_release(&fl);
	free(filt);
	return rc;
}
