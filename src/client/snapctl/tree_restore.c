// SPDX-License-Identifier: MIT
/*
 * The tree engine's roll-back: make TO what FROM is, from a diff (tree.c),
 * through ordinary system calls on TO (so on a snapfs mount every change
 * is copy-on-write for other snapshots and permission-checked as the
 * caller). Four passes:
 *   1. remove, children first, what FROM lacks (and nodes to be replaced),
 *      except directories that still hold something that stays;
 *   2. in FROM's path order (parents first): put every paired node at its
 *      FROM path (a rename; a node in the way is first moved aside to a
 *      hidden name in the same directory), or create what is missing
 *      (hard links as links to a node of the same identity); then set
 *      back bytes (only the blocks the diff found different), sizes,
 *      symlink targets, xattrs, owner, mode and times of non-directories;
 *   3. remove the directories left over from pass 1 (now empty);
 *   4. children first, set back directories' attributes and times (their
 *      times change whenever an entry inside does).
 * Where each TO node is now is kept in a hash from path to node, updated
 * on every move for the moved subtree, so a dry run reports the same steps.
 * A node placed in pass 2 never moves again (only nodes not yet placed are
 * moved aside), which is why a move only needs to rewrite its own subtree.
 * Stopping (o->stop) happens between steps: each step is whole.
 */
#include "tree_i.h"
#include "fullio.h"
#include "vec.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

/* ---- where TO's nodes are now ---- */

struct pent {
	struct pent *next;
	size_t idx;
	char key[];
};

struct pmap {
	struct pent **b;
	size_t nb;
};

static size_t phash(const struct pmap *m, const char *k)
{
	uint64_t h = 1469598103934665603ull;
	for (; *k; k++)
		h = (h ^ (unsigned char)*k) * 1099511628211ull;
	return (size_t)(h % m->nb);
}

static int pmap_put(struct pmap *m, const char *k, size_t idx)
{
	size_t n = strlen(k) + 1;
	struct pent *e = malloc(sizeof(*e) + n);
	if (!e)
		return -ENOMEM;
	memcpy(e->key, k, n);
	e->idx = idx;
	size_t h = phash(m, k);
	e->next = m->b[h];
	m->b[h] = e;
	return 0;
}

static ssize_t pmap_get(const struct pmap *m, const char *k)
{
	for (struct pent *e = m->b[phash(m, k)]; e; e = e->next)
		if (!strcmp(e->key, k))
			return (ssize_t)e->idx;
	return -1;
}

static void pmap_del(struct pmap *m, const char *k)
{
	for (struct pent **p = &m->b[phash(m, k)]; *p; p = &(*p)->next)
		if (!strcmp((*p)->key, k)) {
			struct pent *e = *p;
			*p = e->next;
			free(e);
			return;
		}
}

static void pmap_free(struct pmap *m)
{
	for (size_t i = 0; m->b && i < m->nb; i++)
		for (struct pent *e = m->b[i], *n; e; e = n) {
			n = e->next;
			free(e);
		}
	free(m->b);
}

/* ---- the restore's state ---- */

struct rs {
	struct tree_diff *d;
	struct tside *from, *to;
	int (*report)(void *arg, const struct tree_action *a);
	void *arg;
	struct tree_stats *stats;
	struct pmap where;
	bool dry, root;
	bool mode_opened; /* open_to_write() changed the mode: set it back */
	unsigned aside;
};

static int act(struct rs *r, const char *verb, const char *path, const char *from, uint64_t bytes,
	       unsigned fields, int err)
{
	r->stats->actions++;
	if (err)
		r->stats->errors++;
	if (!r->report)
		return 0;
	struct tree_action a = {verb, path, from, bytes, fields, err};
	return r->report(r->arg, &a);
}

static struct tnode *fnode(struct rs *r, size_t i)
{
	return &r->from->nodes.v[i];
}

static struct tnode *tnode(struct rs *r, size_t i)
{
	return &r->to->nodes.v[i];
}

/* Where TO node t is now. */
static int cur_path(struct rs *r, size_t t, char *buf, size_t len)
{
	const struct tnode *n = tnode(r, t);
	if (n->cur || n->parent < 0) {
		const char *p = n->cur ? n->cur : n->path;
		if (strlen(p) >= len)
			return -ENAMETOOLONG;
		strcpy(buf, p);
		return 0;
	}
	int rc = cur_path(r, (size_t)n->parent, buf, len);
	if (rc)
		return rc;
	size_t at = strlen(buf);
	if (at + 1 + strlen(n->name) >= len)
		return -ENAMETOOLONG;
	snprintf(buf + at, len - at, "%s%s", at ? "/" : "", n->name);
	return 0;
}

static bool under(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return !n || (!strncmp(path, dir, n) && (!path[n] || path[n] == '/'));
}

/* The FROM directory that sees a change when TO node t comes or goes. */
static void touch_to_parent(struct rs *r, size_t t)
{
	ssize_t p = tnode(r, t)->parent;
	if (p >= 0 && tnode(r, (size_t)p)->pair >= 0)
		fnode(r, (size_t)tnode(r, (size_t)p)->pair)->touched = true;
}

static void touch_from_parent(struct rs *r, size_t f)
{
	if (fnode(r, f)->parent >= 0)
		fnode(r, (size_t)fnode(r, f)->parent)->touched = true;
}

/* Rename TO node t (at old) to path, and re-key its subtree. */
static int move_node(struct rs *r, size_t t, const char *old, const char *path)
{
	if (!r->dry && renameat(r->to->rootfd, old, r->to->rootfd, path))
		return -errno;
	struct moved {
		size_t i;
		char *key;
	};
	struct {
		struct moved *v;
		size_t n, alloc;
	} mv = {0};
	int rc = 0;
	char buf[PATH_MAX];
	for (size_t i = t; i < tnode(r, t)->end && rc == 0; i++) {
		if (tnode(r, i)->removed || cur_path(r, i, buf, sizeof(buf)) || !under(buf, old))
			continue;
		char *k = strdup(buf);
		if (!k || vec_push(&mv, (struct moved){i, k})) {
			free(k);
			rc = -ENOMEM;
		}
	}
	size_t olen = strlen(old);
	for (size_t k = 0; k < mv.n && rc == 0; k++) {
		struct tnode *n = tnode(r, mv.v[k].i);
		if (mv.v[k].i == t || n->cur) {
			char nb[PATH_MAX];
			if ((size_t)snprintf(nb, sizeof(nb), "%s%s", path, mv.v[k].key + olen) >=
			    sizeof(nb)) {
				rc = -ENAMETOOLONG;
				break;
			}
			free(n->cur);
			if (!(n->cur = strdup(nb)))
				rc = -ENOMEM;
		}
	}
	for (size_t k = 0; k < mv.n; k++) {
		pmap_del(&r->where, mv.v[k].key);
		if (rc == 0 && cur_path(r, mv.v[k].i, buf, sizeof(buf)) == 0)
			rc = pmap_put(&r->where, buf, mv.v[k].i);
		free(mv.v[k].key);
	}
	vec_release(&mv);
	return rc;
}

/* Move whatever TO node is at path out of the way, to a hidden name in
 * the same directory. */
static int clear_path(struct rs *r, const char *path)
{
	ssize_t o = pmap_get(&r->where, path);
	if (o < 0)
		return 0;
	const char *slash = strrchr(path, '/');
	char aside[PATH_MAX];
	int n = snprintf(aside, sizeof(aside), "%.*s%s.snapctl-aside.%ld.%u",
			 slash ? (int)(slash - path) : 0, path, slash ? "/" : "", (long)getpid(),
			 r->aside++);
	if (n < 0 || (size_t)n >= sizeof(aside))
		return -ENAMETOOLONG;
	int rc = move_node(r, (size_t)o, path, aside);
	int stop = act(r, "move-aside", aside, path, 0, 0, rc);
	return rc ? rc : stop;
}

/* ---- attributes ---- */

/* Parse one entry of a tree_xattrs() blob at p: name, value, length. */
static const char *xattr_next(const char *p, const char **val, size_t *vlen)
{
	const char *num = p + strlen(p) + 1;
	*vlen = (size_t)strtoull(num, NULL, 10);
	*val = num + strlen(num) + 1;
	return p;
}

static bool xattr_find(const char *blob, size_t len, const char *name, const char **val,
		       size_t *vlen)
{
	for (const char *p = blob; p && p < blob + len;) {
		const char *v;
		size_t vl;
		xattr_next(p, &v, &vl);
		if (!strcmp(p, name)) {
			*val = v;
			*vlen = vl;
			return true;
		}
		p = v + vl;
	}
	return false;
}

static int xattrs_sync(struct rs *r, size_t f, const char *path)
{
	char pf[PATH_MAX], pt[PATH_MAX];
	int rc = tree_full(r->from, fnode(r, f)->path, pf, sizeof(pf));
	if (!rc)
		rc = tree_full(r->to, path, pt, sizeof(pt));
	char *xf = NULL, *xt = NULL;
	size_t lf = 0, lt = 0;
	if (!rc)
		rc = tree_xattrs(pf, &xf, &lf);
	if (!rc)
		rc = tree_xattrs(pt, &xt, &lt);
	for (const char *p = xt; !rc && p && p < xt + lt;) {
		const char *v, *fv;
		size_t vl, fvl;
		xattr_next(p, &v, &vl);
		if (!xattr_find(xf, lf, p, &fv, &fvl) && lremovexattr(pt, p) && errno != ENODATA)
			rc = -errno;
		p = v + vl;
	}
	for (const char *p = xf; !rc && p && p < xf + lf;) {
		const char *v, *tv;
		size_t vl, tvl;
		xattr_next(p, &v, &vl);
		bool same = xattr_find(xt, lt, p, &tv, &tvl) && tvl == vl && !memcmp(tv, v, vl);
		if (!same && lsetxattr(pt, p, v, vl, 0))
			rc = -errno;
		p = v + vl;
	}
	free(xf);
	free(xt);
	return rc;
}

/* Set back fields of FROM node f on the TO node at path; reported unless
 * quiet (then only a failure is). */
static int attrs_set(struct rs *r, size_t f, const char *path, unsigned fields, bool quiet)
{
	const struct tnode *s = fnode(r, f);
	int rc = 0, fd = r->to->rootfd;
	fields &= TREE_F_MODE | TREE_F_OWNER | TREE_F_MTIME | TREE_F_XATTR;
	if (!fields)
		return 0;
	if (!r->dry && (fields & TREE_F_XATTR) && !S_ISLNK(s->st.st_mode))
		rc = xattrs_sync(r, f, path);
	if (!r->dry && !rc && (fields & TREE_F_OWNER)) {
		if (!r->root)
			rc = -EPERM;
		else if (fchownat(fd, tree_at(path), s->st.st_uid, s->st.st_gid,
				  AT_SYMLINK_NOFOLLOW))
			rc = -errno;
	}
	if (!r->dry && (fields & (TREE_F_MODE | TREE_F_OWNER)) && !S_ISLNK(s->st.st_mode) &&
	    fchmodat(fd, tree_at(path), s->st.st_mode & 07777, 0) && !rc)
		rc = -errno;
	if (!r->dry) {
		struct timespec ts[2] = {s->st.st_atim, s->st.st_mtim};
		if (utimensat(fd, tree_at(path), ts, AT_SYMLINK_NOFOLLOW) && !rc)
			rc = -errno;
	}
	if (quiet && !rc)
		return 0; /* part of a "create" */
	int stop = act(r, "attr", path, NULL, 0, fields, rc);
	return stop;
}

/* ---- bytes ---- */

static int open_from(struct rs *r, size_t f)
{
	int fd =
	    openat(r->from->rootfd, tree_at(fnode(r, f)->path), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Open TO's file at path for reading and writing; a file of ours without write
 * permission gets it (its mode is set back afterwards). */
static int open_to_write(struct rs *r, const char *path)
{
	int fd = openat(r->to->rootfd, path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == EACCES) {
		struct stat st;
		if (!fstatat(r->to->rootfd, path, &st, AT_SYMLINK_NOFOLLOW) &&
		    st.st_uid == geteuid() &&
		    !fchmodat(r->to->rootfd, path, (st.st_mode & 07777) | S_IRUSR | S_IWUSR, 0)) {
			r->mode_opened = true;
			fd = openat(r->to->rootfd, path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		}
	}
	return fd < 0 ? -errno : fd;
}

/* Within f's differing ranges, write FROM's blocks that differ from TO's
 * file at path (TO's bytes past its end count as zeros: the size is set
 * afterwards), then set the size. A dry run reads and counts. */
static int data_set(struct rs *r, size_t f, size_t t, const char *path)
{
	const struct tnode *s = fnode(r, f);
	off_t osize = tnode(r, t)->st.st_size, size = s->st.st_size;
	uint64_t bytes = 0;
	int rc = 0, rfd = -1, wfd = -1;
	char *buf = malloc(2 * TREE_BLOCK), *ob = buf + TREE_BLOCK;
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rfd = open_from(r, f)) < 0) {
		rc = rfd;
		goto out;
	}
	/* a dry run moved nothing: the file is where the walk saw it */
	wfd = r->dry ? openat(r->to->rootfd, tree_at(tnode(r, t)->path),
			      O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
		     : open_to_write(r, path);
	if (wfd < 0) {
		rc = r->dry ? -errno : wfd;
		goto out;
	}
	for (size_t k = 0; k < s->ranges.n && rc == 0; k++) {
		off_t off = (off_t)s->ranges.v[k].off, end = off + (off_t)s->ranges.v[k].len;
		if (end > size)
			end = size;
		for (; off < end && rc == 0; off += TREE_BLOCK) {
			size_t n = (size_t)(end - off < TREE_BLOCK ? end - off : TREE_BLOCK);
			size_t on = off < osize
					? (size_t)(osize - off < (off_t)n ? osize - off : (off_t)n)
					: 0;
			ssize_t got = pread_full(rfd, buf, n, off);
			ssize_t ogot = got >= 0 && on ? pread_full(wfd, ob, on, off) : 0;
			if (got < 0 || ogot < 0) {
				rc = got < 0 ? (int)got : (int)ogot;
				break;
			}
			memset(ob + ogot, 0, n - (size_t)ogot);
			if (!memcmp(buf, ob, (size_t)got))
				continue;
			if (!r->dry && (rc = pwrite_full(wfd, buf, (size_t)got, off)))
				break;
			bytes += (uint64_t)got;
		}
	}
out:
	free(buf);
	r->stats->bytes_written += bytes;
	int stop = 0, trc = 0;
	if (bytes || rc)
		stop = act(r, "write", path, NULL, bytes, 0, rc);
	if (!rc && !stop && osize != size) {
		if (!r->dry && ftruncate(wfd, size))
			trc = -errno;
		stop = act(r, "truncate", path, NULL, (uint64_t)size, 0, trc);
	}
	if (rfd >= 0)
		close(rfd);
	if (wfd >= 0)
		close(wfd);
	return stop ? -EINTR : rc ? rc : trc;
}

/* ---- creating ---- */

/* A TO path of a node with f's identity, to link to: a paired member of
 * f's group, or one this restore made. */
static int link_anchor(struct rs *r, size_t f, char *buf, size_t len)
{
	const struct tnode *s = fnode(r, f);
	size_t first = tree_id_first(r->from, s->ident);
	for (size_t k = first; k < r->from->byid.n; k++) {
		size_t m = r->from->byid.v[k];
		const struct tnode *x = fnode(r, m);
		if (x->ident != s->ident)
			break;
		if (m == f)
			continue;
		if (x->pair >= 0 && !(x->pflags & PAIR_REPLACE))
			return cur_path(r, (size_t)x->pair, buf, len);
		if (x->created && !S_ISDIR(x->st.st_mode)) {
			if (strlen(x->path) >= len)
				return -ENAMETOOLONG;
			strcpy(buf, x->path);
			return 0;
		}
	}
	return -ENOENT;
}

static int create_file(struct rs *r, size_t f, uint64_t *bytes)
{
	const struct tnode *s = fnode(r, f);
	if (r->dry) {
		*bytes = (uint64_t)s->st.st_size;
		return 0;
	}
	int rfd = open_from(r, f);
	if (rfd < 0)
		return rfd;
	int wfd = openat(r->to->rootfd, s->path,
			 O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (wfd < 0) {
		int e = -errno;
		close(rfd);
		return e;
	}
	int rc = tree_blocks(r->d, rfd, s->st.st_size, -1, 0, wfd, NULL, bytes, NULL);
	if (rc == 0 && ftruncate(wfd, s->st.st_size))
		rc = -errno;
	close(rfd);
	close(wfd);
	return rc;
}

static int create(struct rs *r, size_t f)
{
	struct tnode *s = fnode(r, f);
	int fd = r->to->rootfd, rc = 0;
	mode_t type = s->st.st_mode & S_IFMT, mode = s->st.st_mode & 07777;
	uint64_t bytes = 0;
	char anchor[PATH_MAX];
	touch_from_parent(r, f);
	if (S_ISREG(s->st.st_mode) && s->gsize > 1 &&
	    link_anchor(r, f, anchor, sizeof(anchor)) == 0) {
		if (!r->dry && linkat(fd, anchor, fd, s->path, 0))
			rc = -errno;
		s->created = rc == 0;
		return act(r, "link", s->path, anchor, 0, 0, rc) ? -EINTR : 0;
	}
	if (r->dry)
		rc = 0;
	else if (S_ISDIR(s->st.st_mode))
		rc = mkdirat(fd, s->path, mode | S_IRWXU) ? -errno : 0;
	else if (S_ISLNK(s->st.st_mode))
		rc = symlinkat(s->target, fd, s->path) ? -errno : 0;
	else if (!S_ISREG(s->st.st_mode))
		rc = mknodat(fd, s->path, type | mode, s->st.st_rdev) ? -errno : 0;
	if (S_ISREG(s->st.st_mode))
		rc = create_file(r, f, &bytes);
	r->stats->bytes_written += bytes;
	s->created = rc == 0;
	if (act(r, "create", s->path, NULL, bytes, 0, rc))
		return -EINTR;
	if (rc || S_ISDIR(s->st.st_mode))
		return 0; /* a directory's attributes come last (pass 4) */
	fnode(r, s->group)->done = true;
	unsigned all = TREE_F_MODE | TREE_F_MTIME | TREE_F_XATTR;
	if (r->root)
		all |= TREE_F_OWNER;
	return attrs_set(r, f, s->path, all, true) ? -EINTR : 0;
}

/* f is at its path as TO node t: set back what differs. */
static int update(struct rs *r, size_t f, size_t t)
{
	struct tnode *s = fnode(r, f);
	unsigned fields = s->fields;
	if (!fields || S_ISDIR(s->st.st_mode))
		return 0;
	int rc = 0;
	if (S_ISLNK(s->st.st_mode) && (fields & TREE_F_TARGET)) {
		if (!r->dry && (unlinkat(r->to->rootfd, s->path, 0) ||
				symlinkat(s->target, r->to->rootfd, s->path)))
			rc = -errno;
		if (act(r, "retarget", s->path, NULL, 0, 0, rc))
			return -EINTR;
		if (r->root)
			fields |= TREE_F_OWNER;
		fields |= TREE_F_MTIME;
	}
	struct tnode *g = fnode(r, s->group);
	if (S_ISREG(s->st.st_mode) && (fields & (TREE_F_DATA | TREE_F_SIZE)) && !g->done) {
		r->mode_opened = false;
		if ((rc = data_set(r, f, t, s->path)) == -EINTR)
			return rc;
		fields |= TREE_F_MTIME | (r->mode_opened ? TREE_F_MODE : 0);
	}
	g->done = true;
	return attrs_set(r, f, s->path, fields, false) ? -EINTR : 0;
}

/* ---- the passes ---- */

static bool stopped(const struct rs *r)
{
	return r->d->o.stop && *r->d->o.stop;
}

static void progress(struct rs *r, const char *phase, size_t done, size_t total)
{
	if (r->d->o.progress && done % 256 == 0)
		r->d->o.progress(r->d->o.progress_arg, phase, done, total);
}

static bool to_goes(const struct tnode *n)
{
	return *n->path && (n->pair < 0 || (n->pflags & PAIR_REPLACE));
}

static int remove_node(struct rs *r, size_t t)
{
	struct tnode *n = tnode(r, t);
	char path[PATH_MAX];
	int rc = cur_path(r, t, path, sizeof(path));
	if (!rc && !r->dry &&
	    unlinkat(r->to->rootfd, path, S_ISDIR(n->st.st_mode) ? AT_REMOVEDIR : 0))
		rc = -errno;
	if (!rc) {
		n->removed = true;
		pmap_del(&r->where, path);
		touch_to_parent(r, t);
	}
	return act(r, "remove", path, NULL, 0, 0, rc) ? -EINTR : 0;
}

static int pass_remove(struct rs *r, bool deferred)
{
	size_t n = r->to->nodes.n;
	for (size_t t = n; t-- > 0;) {
		if (stopped(r))
			return -EINTR;
		progress(r, "remove", n - t, n);
		struct tnode *x = tnode(r, t);
		if (x->removed || !to_goes(x) || x->holds != deferred)
			continue;
		int rc = remove_node(r, t);
		if (rc)
			return rc;
	}
	return 0;
}

static int pass_place(struct rs *r)
{
	size_t n = r->from->nodes.n;
	for (size_t f = 0; f < n; f++) {
		if (stopped(r))
			return -EINTR;
		progress(r, "restore", f, n);
		struct tnode *s = fnode(r, f);
		int rc = 0;
		if (s->pair >= 0 && !(s->pflags & PAIR_REPLACE)) {
			size_t t = (size_t)s->pair;
			char cur[PATH_MAX];
			if ((rc = cur_path(r, t, cur, sizeof(cur))))
				return rc;
			if (strcmp(cur, s->path)) {
				/* the node in the way may hold t: where t is
				 * comes after the move */
				if ((rc = clear_path(r, s->path)) ||
				    (rc = cur_path(r, t, cur, sizeof(cur))))
					return rc;
				rc = move_node(r, t, cur, s->path);
				if (!rc) {
					touch_from_parent(r, f);
					touch_to_parent(r, t);
				}
				if (act(r, "rename", s->path, cur, 0, 0, rc))
					return -EINTR;
				if (rc)
					continue;
			}
			rc = update(r, f, t);
		} else {
			if ((rc = clear_path(r, s->path)))
				return rc;
			rc = create(r, f);
		}
		if (rc == -EINTR)
			return rc;
		s->done = true;
	}
	return 0;
}

static int pass_dirs(struct rs *r)
{
	size_t n = r->from->nodes.n;
	for (size_t f = n; f-- > 0;) {
		if (stopped(r))
			return -EINTR;
		progress(r, "attributes", n - f, n);
		struct tnode *s = fnode(r, f);
		if (!S_ISDIR(s->st.st_mode) ||
		    !(s->created || (s->pair >= 0 && !(s->pflags & PAIR_REPLACE))))
			continue;
		unsigned fields = s->fields;
		if (s->created) {
			fields = TREE_F_MODE | TREE_F_MTIME | TREE_F_XATTR;
			if (r->root)
				fields |= TREE_F_OWNER;
		}
		if (fields & (TREE_F_MODE | TREE_F_OWNER | TREE_F_MTIME | TREE_F_XATTR)) {
			if (attrs_set(r, f, s->path, fields, s->created))
				return -EINTR;
		} else if (s->touched && !r->dry) {
			struct timespec ts[2] = {s->st.st_atim, s->st.st_mtim};
			utimensat(r->to->rootfd, tree_at(s->path), ts, AT_SYMLINK_NOFOLLOW);
		}
	}
	return 0;
}

/* The caller's TO directories without write or search permission get it
 * (permission checks are the kernel's: this is what the owner may do);
 * pass 4 sets back the mode of those that stay. */
static void open_dirs(struct rs *r)
{
	uid_t me = geteuid();
	for (size_t t = 0; t < r->to->nodes.n; t++) {
		struct tnode *x = tnode(r, t);
		mode_t m = x->st.st_mode;
		if (!S_ISDIR(m) || x->st.st_uid != me || (m & 0300) == 0300)
			continue;
		if (fchmodat(r->to->rootfd, tree_at(x->path), (m & 07777) | 0300, 0))
			continue;
		if (x->pair >= 0 && !(x->pflags & PAIR_REPLACE))
			fnode(r, (size_t)x->pair)->fields |= TREE_F_MODE;
	}
}

int tree_apply(struct tree_diff *d, int (*report)(void *arg, const struct tree_action *a),
	       void *arg, struct tree_stats *stats)
{
	struct tree_stats dummy = {0};
	struct rs r = {.d = d,
		       .from = &d->side[TREE_FROM],
		       .to = &d->side[TREE_TO],
		       .report = report,
		       .arg = arg,
		       .stats = stats ? stats : &dummy,
		       .dry = d->o.flags & TREE_DRY_RUN,
		       .root = geteuid() == 0};
	size_t n = r.to->nodes.n;
	r.where.nb = n * 2 + 16;
	if (!(r.where.b = calloc(r.where.nb, sizeof(*r.where.b))))
		return -ENOMEM;
	int rc = 0;
	for (size_t t = 0; t < n && rc == 0; t++)
		rc = pmap_put(&r.where, tnode(&r, t)->path, t);
	for (size_t t = n; t-- > 0 && rc == 0;) {
		struct tnode *x = tnode(&r, t);
		if (x->pair >= 0 && !(x->pflags & PAIR_REPLACE))
			x->holds = true;
		if (x->holds && x->parent >= 0)
			tnode(&r, (size_t)x->parent)->holds = true;
	}
	if (rc == 0 && !r.dry && !r.root)
		open_dirs(&r);
	if (rc == 0)
		rc = pass_remove(&r, false);
	if (rc == 0)
		rc = pass_place(&r);
	if (rc == 0)
		rc = pass_remove(&r, true);
	if (rc == 0)
		rc = pass_dirs(&r);
	pmap_free(&r.where);
	return rc;
}
