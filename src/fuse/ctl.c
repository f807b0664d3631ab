// SPDX-License-Identifier: MIT
/*
 * The control channel: SNAPFS_IOC_CALL on any file or directory inside the
 * mount (snapfs_proto.h). The caller's uid from the request owns what it
 * pins and limits what it sees and releases; paths are relative to the
 * mount root and resolved one component at a time under SOURCE, refusing
 * "..", the store and the snapshot view. Every field of a request is
 * checked; a bad one answers -EINVAL in status and changes nothing.
 * SHOW, DIFF and RESTORE (ctl_files.c) answer in pages of variable-length
 * records with a cursor to go on from.
 */
#include "sfs_i.h"
#include "ctl_i.h"
#include "snapstore.h"
#include "snapfs_proto.h"
#include "rec.h"
#include "vec.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The files of one pin being assembled. */
struct pinset {
	struct store_pin_file *v;
	size_t n, alloc;
	char problem[PATH_MAX]; /* the path a failed pin stopped at */
};

static void pin_problem(struct pinset *ps, const char *path)
{
	if (!ps->problem[0])
		strlcpy(ps->problem, *path ? path : ".", sizeof(ps->problem));
}

static void pinset_release(struct pinset *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		store_file_put(ps->v[i].sf);
		close(ps->v[i].fd);
		free((char *)ps->v[i].path);
	}
	vec_release(ps);
}

/* Adds fd (taken over) as path; checks the caller may read it. */
static int pinset_add(fuse_req_t req, struct pinset *ps, int fd, const char *path)
{
	struct sfs_cred c;
	int rc = cred_enter(req, &c);
	if (rc == 0 && faccessat(fd, "", R_OK, AT_EMPTY_PATH | AT_EACCESS))
		rc = -errno;
	cred_leave(&c);
	struct store_file *sf = NULL;
	if (rc == 0)
		rc = store_file_get(sfs.store, fd, &sf);
	char *p = rc == 0 ? strdup(path) : NULL;
	if (rc == 0 && (!p || vec_push(ps, (struct store_pin_file){.sf = sf, .fd = fd, .path = p})))
		rc = -ENOMEM;
	if (rc) {
		free(p);
		if (sf)
			store_file_put(sf);
		close(fd);
	}
	return rc;
}

/* Bring the files of ps that are open for writing to rest (quiesce.c). */
static int pin_quiesce(struct pinset *ps, struct quiesce **q)
{
	struct sfs_inode **wv = NULL;
	size_t wn = quiesce_writers(&wv), k = 0;
	struct stat *st = wn ? calloc(ps->n, sizeof(*st)) : NULL;
	if (wn && !st) {
		free(wv);
		return -ENOMEM;
	}
	for (size_t j = 0; j < ps->n && wn; j++) /* each pinned file's identity, once */
		if (fstat(ps->v[j].fd, &st[j]))
			st[j].st_ino = 0;
	for (size_t i = 0; i < wn; i++)
		for (size_t j = 0; j < ps->n; j++)
			if (st[j].st_ino && st[j].st_dev == wv[i]->dev &&
			    st[j].st_ino == wv[i]->ino) {
				wv[k++] = wv[i];
				break;
			}
	int rc = quiesce_begin(wv, k, q);
	free(st);
	free(wv);
	return rc;
}

/* Open rel (relative to SOURCE) as O_PATH, one component at a time. */
static int resolve(const char *rel, int *out)
{
	char buf[PATH_MAX];
	if (strlcpy(buf, rel, sizeof(buf)) >= sizeof(buf))
		return -ENAMETOOLONG;
	int fd = dup(sfs.source_fd);
	if (fd < 0)
		return -errno;
	int first = 1;
	char *save = NULL;
	for (char *comp = strtok_r(buf, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
		if (!strcmp(comp, "."))
			continue;
		if (!strcmp(comp, "..") || (first && !strcmp(comp, sfs.o.snapdir))) {
			close(fd);
			return -EINVAL;
		}
		first = 0;
		int nfd = openat(fd, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		close(fd);
		if (nfd < 0)
			return -e;
		struct stat st;
		if (fstat(nfd, &st) || inode_is_hidden(st.st_dev, st.st_ino)) {
			close(nfd);
			return -ENOENT;
		}
		fd = nfd;
	}
	*out = fd;
	return 0;
}

/*
 * A tree pin (pin -r): O(1), whatever the trees hold. Each path must exist
 * and be readable (and, for a directory, searchable) by the caller; the
 * snapshot is SOURCE at this instant, shown under the paths given
 * ('\n'-joined, so a path holding a newline is refused). The pin lock
 * (ns.c) puts it between two changes.
 */
static int pin_tree(fuse_req_t req, struct snapfs_req *r)
{
	char roots[8192];
	size_t used = 0;
	struct sfs_cred c;
	int rc = cred_enter(req, &c);
	const char *p = r->data;
	for (uint32_t i = 0; i < r->count && rc == 0; i++) {
		if (p >= r->data + r->len) {
			rc = -EINVAL;
			break;
		}
		size_t plen = strlen(p);
		const char *next = p + plen + 1;
		while (plen > 1 && p[0] == '.' && p[1] == '/')
			p += 2, plen -= 2;
		const char *rel = (!strcmp(p, ".") || !*p) ? "" : p;
		int fd = -1;
		struct stat st;
		if ((rc = resolve(p, &fd)) == 0 && fstat(fd, &st))
			rc = -errno;
		if (rc == 0 && faccessat(fd, "", S_ISDIR(st.st_mode) ? R_OK | X_OK : R_OK,
					 AT_EMPTY_PATH | AT_EACCESS))
			rc = -errno;
		if (fd >= 0)
			close(fd);
		if (rc == 0 && (strchr(rel, '\n') || used + strlen(rel) + 2 > sizeof(roots)))
			rc = -EINVAL;
		if (rc) {
			strlcpy(r->data, *rel ? rel : ".", sizeof(r->data));
			break;
		}
		used += (size_t)snprintf(roots + used, sizeof(roots) - used, "%s%s",
					 used ? "\n" : "", rel);
		p = next;
	}
	cred_leave(&c);
	if (rc) {
		r->len = (uint32_t)strnlen(r->data, sizeof(r->data) - 1) + 1;
		return rc;
	}
	struct store_file *root;
	if ((rc = store_file_get(sfs.store, sfs.source_fd, &root)))
		return rc;
	struct store_pin pin = {.kind = STORE_PINNED,
				.uid = fuse_req_ctx(req)->uid,
				.label = r->label[0] ? r->label : NULL,
				.expires = r->expires};
	/* Every file open for writing comes to rest first (quiesce.c): the
	 * pin lock puts the pin between two requests, this between two
	 * write(2) calls. O(files open for writing), not O(files). */
	struct sfs_inode **wv = NULL;
	size_t wn = quiesce_writers(&wv);
	struct quiesce *q = NULL;
	rc = quiesce_begin(wv, wn, &q);
	if (rc == 0) {
		ns_pin_lock();
		rc = store_pin_tree(sfs.store, &pin, root, roots, &r->id);
		ns_pin_unlock();
	}
	quiesce_end(q);
	free(wv);
	store_file_put(root);
	struct store_snap_meta m;
	if (rc == 0 && store_snap_meta(sfs.store, r->id, &m) == 0)
		r->epoch = m.epoch;
	r->count = 0; /* a tree pin counts nothing */
	r->len = 0;
	return rc;
}

static int op_pin(fuse_req_t req, struct snapfs_req *r)
{
	if (r->count == 0 || r->len > sizeof(r->data) || r->data[r->len ? r->len - 1 : 0] != 0 ||
	    (r->flags & ~SNAPFS_PIN_RECURSIVE) || memchr(r->label, 0, sizeof(r->label)) == NULL ||
	    r->expires < 0)
		return -EINVAL;
	if (r->flags & SNAPFS_PIN_RECURSIVE)
		return pin_tree(req, r);
	struct pinset ps = {0};
	/* The walk runs as the caller: every directory on the way must be
	 * searchable (and, with -r, readable) by them, as for open(). */
	struct sfs_cred c;
	int rc = cred_enter(req, &c);
	const char *p = r->data;
	for (uint32_t i = 0; i < r->count && rc == 0; i++) {
		if (p >= r->data + r->len) {
			rc = -EINVAL;
			break;
		}
		size_t plen = strlen(p);
		while (plen > 1 && p[0] == '.' && p[1] == '/')
			p += 2, plen -= 2;
		int fd = -1;
		rc = resolve(p, &fd);
		if (rc) {
			pin_problem(&ps, p);
			break;
		}
		struct stat st;
		fstat(fd, &st);
		const char *rel = (!strcmp(p, ".") || !*p) ? "" : p;
		if (S_ISREG(st.st_mode)) {
			if ((rc = pinset_add(req, &ps, fd, rel)))
				pin_problem(&ps, p);
		} else if (S_ISDIR(st.st_mode)) {
			pin_problem(&ps, p);
			rc = -EISDIR; /* a tree is pinned with SNAPFS_PIN_RECURSIVE */
			close(fd);
		} else {
			pin_problem(&ps, p);
			close(fd);
			rc = -EINVAL;
		}
		p += plen + 1;
	}
	cred_leave(&c);
	if (rc == 0 && ps.n == 0)
		rc = -ENOENT; /* a recursive pin of directories holding no file */
	if (rc == 0) {
		struct store_pin pin = {.kind = STORE_PINNED,
					.uid = fuse_req_ctx(req)->uid,
					.label = r->label[0] ? r->label : NULL,
					.expires = r->expires};
		struct quiesce *q = NULL;
		rc = pin_quiesce(&ps, &q);
		if (rc == 0)
			rc = store_pin(sfs.store, &pin, ps.v, ps.n, &r->id);
		quiesce_end(q);
		struct store_snap_meta m;
		if (rc == 0 && store_snap_meta(sfs.store, r->id, &m) == 0)
			r->epoch = m.epoch;
		r->count = (uint32_t)ps.n;
	}
	/* A failed tree pin names where it stopped; nothing was pinned. */
	r->len = 0;
	if (rc && ps.problem[0])
		r->len = (uint32_t)strlcpy(r->data, ps.problem, sizeof(r->data)) + 1;
	pinset_release(&ps);
	return rc;
}

/* RELABEL: the snapshot's owner (or root) gives it another label. */
static int op_relabel(fuse_req_t req, struct snapfs_req *r)
{
	struct store_snap_meta m;
	if (r->flags || r->len || r->count || memchr(r->label, 0, sizeof(r->label)) == NULL)
		return -EINVAL;
	if (!hold_visible(req, r->id, &m))
		return -ENOENT;
	if (m.kind != STORE_PINNED)
		return -EINVAL; /* an ephemeral snapshot has no label */
	return store_relabel(sfs.store, r->id, r->label);
}

/* Release r->id. Sent on the descriptor that froze it (libsnapfs does so
 * when a segment drops a snapshot), it also ends that descriptor's hold, so
 * the release is done when the call returns rather than when the kernel
 * gets round to sending RELEASE for the closed descriptor. */
static int op_release(fuse_req_t req, struct fuse_file_info *fi, struct snapfs_req *r)
{
	struct store_snap_meta m;
	if (!hold_visible(req, r->id, &m))
		return -ENOENT;
	direct_forget(r->id);
	bool held = fi && hold_drop(file_of(fi), r->id);
	int rc = store_release(sfs.store, r->id);
	return held && rc == -ENOENT ? 0 : rc;
}

static int op_freeze(fuse_req_t req, struct sfs_inode *inode, struct fuse_file_info *fi,
		     struct snapfs_req *r)
{
	if (!fi || inode->kind != SFS_REAL || !S_ISREG(inode->type) ||
	    (r->flags & ~SNAPFS_FREEZE_SERVE))
		return -EINVAL;
	struct sfs_file *f = file_of(fi);
	/* A snapshot hands out the file's bytes: only to a descriptor that may
	 * read them. */
	if ((f->flags & O_ACCMODE) == O_WRONLY)
		return -EBADF;
	/* An open served from the snapshot must not read through the inode's
	 * page cache, which holds live bytes. */
	int serve = (r->flags & SNAPFS_FREEZE_SERVE) != 0;
	if (serve && !(f->flags & O_DIRECT))
		return -EINVAL;
	char rel[PATH_MAX];
	int rc = hold_freeze(req, inode, f, serve, rel, sizeof(rel), &r->id);
	if (rc)
		return rc;
	int n = snprintf(r->data, sizeof(r->data), "%s/%llu/%s", sfs.o.snapdir,
			 (unsigned long long)r->id, rel);
	r->len = n < (int)sizeof(r->data) ? (uint32_t)n + 1 : 0;
	return r->len ? 0 : -ENAMETOOLONG;
}

struct list_ctx {
	fuse_req_t req;
	struct snapfs_req *r;
	uint32_t cap;
};

static int list_cb(void *arg, const struct store_snap *s)
{
	struct list_ctx *c = arg;
	struct snapfs_req *r = c->r;
	uid_t uid = fuse_req_ctx(c->req)->uid;
	if (s->id < r->id || !hold_may_see(uid, s->uid))
		return 0;
	if (r->count == c->cap) {
		r->cursor = s->id;
		return 1;
	}
	struct snapfs_rec_snap rec = {
	    .id = s->id,
	    .epoch = s->epoch,
	    .created = s->created,
	    .expires = s->expires,
	    .nfiles = s->nfiles,
	    .bytes_held = s->bytes_held,
	    .uid = s->uid,
	    .kind = s->kind == STORE_EPHEMERAL,
	    .state = s->state == STORE_STALE,
	    .flags =
		store_snap_is_tree(sfs.store, s->id, NULL, NULL, 0) == 1 ? SNAPFS_SNAP_TREE : 0,
	};
	strlcpy(rec.label, s->label, sizeof(rec.label));
	return rec_put_snap(r, &rec);
}

static int op_list(fuse_req_t req, struct snapfs_req *r)
{
	struct list_ctx c = {req, r, sizeof(r->data) / sizeof(struct snapfs_rec_snap)};
	r->id = r->cursor; /* first id wanted */
	r->cursor = 0;
	r->count = r->len = 0;
	int rc = store_snap_list(sfs.store, list_cb, &c);
	return rc < 0 ? rc : 0;
}

static int op_stats(struct snapfs_req *r)
{
	struct store_stats s;
	int rc = store_stats(sfs.store, &s);
	if (rc)
		return rc;
	struct snapfs_rec_stats out = {
	    s.bytes_on_disk, s.bytes_preserved, s.extents,   s.snapshots,   s.epoch,
	    s.block_size,    s.cow_copies,	s.cow_bytes, s.store_reads, s.store_read_bytes,
	};
	memcpy(r->data, &out, sizeof(out));
	r->len = sizeof(out);
	return 0;
}

/* ---- CHECK (SHOW, DIFF and RESTORE are in ctl_files.c) ---- */

struct check_ctx {
	struct snapfs_req *r;
	uint64_t seen;
};

static int check_cb(void *arg, const char *problem)
{
	struct check_ctx *c = arg;
	struct snapfs_req *r = c->r;
	if (c->seen++ < r->id || r->cursor)
		return 0;
	if (rec_put_line(r, problem, strnlen(problem, 1023)))
		r->cursor = c->seen - 1;
	return 0;
}

static int op_check(fuse_req_t req, struct snapfs_req *r)
{
	if (fuse_req_ctx(req)->uid != 0)
		return -EPERM;
	if (r->flags || r->len || r->count)
		return -EINVAL;
	struct check_ctx c = {r, 0};
	r->id = r->cursor; /* problems to skip */
	r->cursor = 0;
	int rc = store_check(sfs.store, check_cb, &c);
	if (rc < 0)
		return rc;
	r->id = c.seen;
	return 0;
}

void sfs_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg,
	       struct fuse_file_info *fi, unsigned flags, const void *in_buf, size_t in_bufsz,
	       size_t out_bufsz)
{
	if (cmd != SNAPFS_IOC_CALL) {
		fuse_reply_err(req, ENOTTY);
		return;
	}
	if ((flags & FUSE_IOCTL_COMPAT) || in_bufsz != sizeof(struct snapfs_req) ||
	    out_bufsz != sizeof(struct snapfs_req)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	struct snapfs_req *r = malloc(sizeof(*r));
	if (!r) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memcpy(r, in_buf, sizeof(*r));
	struct sfs_inode *inode = inode_get(ino);
	int rc;
	if (r->version != SNAPFS_PROTO_VERSION) {
		rc = -EPROTO;
	} else {
		switch (r->op) {
		case SNAPFS_OP_PIN:
			rc = op_pin(req, r);
			break;
		case SNAPFS_OP_RELEASE:
			rc = op_release(
			    req, inode->kind == SFS_REAL && S_ISREG(inode->type) ? fi : NULL, r);
			break;
		case SNAPFS_OP_FREEZE:
			rc = ctl_freeze_held(inode, fi, r);
			if (rc == 1)
				rc = op_freeze(
				    req, inode,
				    inode->kind == SFS_REAL && S_ISREG(inode->type) ? fi : NULL, r);
			break;
		case SNAPFS_OP_PREAD:
			rc = ctl_pread(inode, fi, r);
			break;
		case SNAPFS_OP_DIRECT:
			rc = fi && inode->kind == SFS_REAL && S_ISREG(inode->type) && r->id &&
				     hold_has(file_of(fi), r->id)
				 ? direct_register(inode, r->id, r)
				 : -EINVAL;
			break;
		case SNAPFS_OP_LIST:
			rc = op_list(req, r);
			break;
		case SNAPFS_OP_STATS:
			rc = op_stats(r);
			break;
		case SNAPFS_OP_SHOW:
			rc = ctl_show(req, r);
			break;
		case SNAPFS_OP_DIFF:
			rc = ctl_diff(req, r);
			break;
		case SNAPFS_OP_RESTORE:
			rc = ctl_restore(req, r);
			break;
		case SNAPFS_OP_CHECK:
			rc = op_check(req, r);
			break;
		case SNAPFS_OP_RELABEL:
			rc = op_relabel(req, r);
			break;
		case SNAPFS_OP_INFO:
			r->len = (uint32_t)strlcpy(r->data, sfs.o.snapdir, sizeof(r->data)) + 1;
			rc = 0;
			break;
		default:
			rc = -EINVAL;
		}
	}
	r->status = rc;
	fuse_reply_ioctl(req, 0, r, sizeof(*r));
	free(r);
}
