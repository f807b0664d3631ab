// SPDX-License-Identifier: MIT
/*
 * Tree snapshots in the view: MNT/<snapdir>/ID is SOURCE as it was at the
 * pin, limited to the paths pinned (their subtrees, and the directories on
 * the way down to them). Nothing was copied at the pin; a node's state at
 * the snapshot is what the store saved before its first change since
 * (store_tree_attr, store_tree_lookup, store_tree_entries), or else its
 * live state, which then has not changed since. Lookup costs one indexed
 * query plus the live lookup, readdir one query plus the live listing:
 * nothing here grows with the number of files in the snapshot.
 *
 * What to watch for: reading live state races with a change that saves
 * the old state first and then changes it. Live attributes are read under
 * the node's store lock (a saver holds it for writing), and a live entry
 * or listing is read and then checked again against the store: a save
 * made meanwhile wins, since it is recorded before the change it precedes.
 * Set-id bits are never shown and security.capability never served: a
 * snapshot grants no privilege the live file may have lost.
 */
#include "sfs_i.h"
#include "snapstore.h"
#include "fullio.h"
#include "path.h"
#include "vec.h"
#include "view_i.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ROOTS_MAX 8192 /* bytes of a tree snapshot's pinned paths */

/* Whether path is shown in a snapshot pinned at roots ('\n'-separated
 * relative paths, "" for all of SOURCE): 2 inside a pinned subtree, 1 on
 * the way down to one, 0 not at all. */
static int exposure(const char *roots, const char *path)
{
	int best = 0;
	char one[PATH_MAX];
	for (const char *p = roots;; p++) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n < sizeof(one)) {
			memcpy(one, p, n);
			one[n] = 0;
			if (path_under(path, one))
				return 2;
			if (path_under(one, path))
				best = 1;
		}
		if (!e)
			break;
		p = e;
	}
	return best;
}

static int snap_roots(uint64_t id, uint64_t *root_fid, char *roots, size_t len)
{
	int rc = store_snap_is_tree(sfs.store, id, root_fid, roots, len);
	return rc < 0 ? rc : rc == 1 ? 0 : -ENOENT;
}

static void attr_stat(uint64_t id, const struct store_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = a->mode & ~(mode_t)(S_ISUID | S_ISGID);
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_nlink = (nlink_t)a->nlink;
	st->st_size = (off_t)a->size;
	st->st_rdev = (dev_t)a->rdev;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
	st->st_atim = a->atime;
	st->st_mtim = a->mtime;
	st->st_ctim = a->ctime;
	st->st_ino = view_tree_ino(id, a->ino);
}

/* Copy what a points to (target, xattrs) into x. */
static int extra_fill(struct vnode_extra *x, const struct store_attr *a)
{
	if (a->target) {
		if (!(x->target = strndup(a->target, a->target_len)))
			return -ENOMEM;
	}
	if (a->xattrs_len) {
		if (!(x->xattrs = malloc(a->xattrs_len)))
			return -ENOMEM;
		memcpy(x->xattrs, a->xattrs, a->xattrs_len);
		x->xattrs_len = a->xattrs_len;
	}
	return 0;
}

/*
 * The state at snapshot id of a node: sf its store file if it lives (fd
 * any descriptor of it), else fid. Fills st and x (target, xattrs).
 */
static int node_state(uint64_t id, struct store_file *sf, int fd, uint64_t fid, struct stat *st,
		      struct vnode_extra *x)
{
	size_t buflen = 1 << 16;
	char *buf = malloc(buflen);
	if (!buf)
		return -ENOMEM;
	struct store_attr a;
	int rc;
	if (!sf) {
		rc = store_tree_attr_fid(sfs.store, id, fid, &a, buf, buflen);
		if (rc == 1)
			rc = -EIO; /* gone, and nothing saved: never wrong state */
	} else {
		/* A saver holds the lock for writing: the live state read here
		 * under the read lock is the state at the snapshot when no row
		 * covers it. */
		store_file_rdlock(sf);
		rc = store_tree_attr(sfs.store, id, sf, &a, buf, buflen);
		void *xattrs = NULL;
		char target[PATH_MAX];
		if (rc == 1)
			rc = ns_gather(fd, &a, target, sizeof(target), &xattrs);
		if (rc == 0) {
			attr_stat(id, &a, st);
			rc = extra_fill(x, &a);
		}
		store_file_unlock(sf);
		free(xattrs);
		free(buf);
		return rc;
	}
	if (rc == 0) {
		attr_stat(id, &a, st);
		rc = extra_fill(x, &a);
	}
	free(buf);
	return rc;
}

/* The node's id in the store (0: nothing was ever saved for it). */
static uint64_t node_fid(const struct sfs_inode *n)
{
	uint64_t nid = 0;
	if (!n->sf)
		return n->fid;
	return store_ns_nid(n->sf, &nid) == 0 ? nid : 0;
}

static void fill_entry(struct fuse_entry_param *e, struct sfs_inode *n)
{
	e->ino = (uintptr_t)n;
	e->attr = n->vst;
	/* Released snapshots must vanish at once: no entry caching; the
	 * attributes of a node never change. */
	e->entry_timeout = 0;
	e->attr_timeout = sfs.o.timeout;
}

int treeview_root(fuse_req_t req, const struct store_snap_meta *m, struct fuse_entry_param *e)
{
	char roots[ROOTS_MAX];
	uint64_t root_fid;
	int rc = snap_roots(m->id, &root_fid, roots, sizeof(roots));
	if (rc)
		return rc;
	struct store_file *sf;
	if ((rc = store_file_get(sfs.store, sfs.source_fd, &sf)))
		return rc;
	struct vnode_extra x = {.sf = sf};
	struct stat st;
	rc = node_state(m->id, sf, sfs.source_fd, 0, &st, &x);
	if (rc) {
		store_file_put(sf);
		free(x.target);
		free(x.xattrs);
		return rc;
	}
	struct sfs_inode *n = vnode_get(m->id, "", SFS_TNODE, 0, &st, &x);
	if (!n)
		return -ENOMEM;
	fill_entry(e, n);
	return 0;
}

/* Whether the live object (dev, ino) under the directory at path is hidden
 * from the view: the store. */
static int hidden(const char *parent_path, const char *name, const struct stat *st)
{
	if (inode_is_hidden(st->st_dev, st->st_ino))
		return 1;
	return !*parent_path && !strcmp(name, sfs.o.snapdir);
}

/* The child name of dir as at snapshot id: from a saved entry, or live. */
static int child_state(uint64_t id, struct sfs_inode *dir, const char *name, uint64_t *fid,
		       struct stat *st, struct vnode_extra *x)
{
	for (int tries = 0; tries < 8; tries++) {
		uint64_t dfid = node_fid(dir), cfid = 0;
		uint32_t ctype = 0;
		int rc = dfid ? store_tree_lookup(sfs.store, id, dfid, name, &cfid, &ctype) : 1;
		if (rc < 0)
			return rc;
		if (rc == 0) {
			if (!cfid)
				return -ENOENT;
			*fid = cfid;
			int fd = store_fid_open(sfs.store, cfid, O_PATH);
			if (fd == -ESTALE || fd == -ENOENT)
				return node_state(id, NULL, -1, cfid, st, x);
			if (fd < 0)
				return fd;
			struct store_file *sf;
			rc = store_file_get(sfs.store, fd, &sf);
			if (rc == 0) {
				x->sf = sf;
				rc = node_state(id, sf, fd, 0, st, x);
			}
			close(fd);
			return rc;
		}
		/* No saved entry: the live one is the snapshot's, unless it
		 * changes while we read it (then a saved entry appears). */
		if (!dir->sf)
			return -ENOENT; /* a directory gone live has only saved entries */
		int pfd = store_file_open(dir->sf, O_PATH);
		if (pfd < 0)
			return pfd == -ESTALE ? -ENOENT : pfd;
		int cfd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		int err = cfd < 0 ? -errno : 0;
		close(pfd);
		struct store_file *sf = NULL;
		struct stat live;
		if (!err && fstatat(cfd, "", &live, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))
			err = -errno;
		if (!err && hidden(dir->vpath, name, &live))
			err = -ENOENT;
		if (!err)
			err = store_file_get(sfs.store, cfd, &sf);
		if (!err) {
			x->sf = sf;
			*fid = 0;
			err = node_state(id, sf, cfd, 0, st, x);
		}
		if (cfd >= 0)
			close(cfd);
		/* Still no saved entry: what we read was the snapshot's. */
		dfid = node_fid(dir);
		rc = dfid ? store_tree_lookup(sfs.store, id, dfid, name, &cfid, &ctype) : 1;
		if (rc == 1 || rc < 0)
			return rc < 0 ? rc : err;
		if (x->sf)
			store_file_put(x->sf);
		free(x->target);
		free(x->xattrs);
		*x = (struct vnode_extra){0};
	}
	return -EAGAIN;
}

int treeview_lookup(fuse_req_t req, struct sfs_inode *parent, const char *name,
		    struct fuse_entry_param *e)
{
	if (!S_ISDIR(parent->vst.st_mode))
		return -ENOTDIR;
	/* Searching a directory needs the right it gave at the snapshot. */
	if (!view_may(req, &parent->vst, X_OK))
		return -EACCES;
	char roots[ROOTS_MAX], path[PATH_MAX];
	uint64_t root_fid;
	int rc = snap_roots(parent->snap, &root_fid, roots, sizeof(roots));
	if (rc)
		return rc;
	int len = *parent->vpath ? snprintf(path, sizeof(path), "%s/%s", parent->vpath, name)
				 : snprintf(path, sizeof(path), "%s", name);
	if (len < 0 || len >= (int)sizeof(path))
		return -ENAMETOOLONG;
	if (!strcmp(name, ".") || !strcmp(name, "..") || !exposure(roots, path))
		return -ENOENT;
	uint64_t fid = 0;
	struct stat st;
	struct vnode_extra x = {0};
	rc = child_state(parent->snap, parent, name, &fid, &st, &x);
	if (rc) {
		if (x.sf)
			store_file_put(x.sf);
		free(x.target);
		free(x.xattrs);
		return rc;
	}
	struct sfs_inode *n = vnode_get(parent->snap, path, SFS_TNODE, fid, &st, &x);
	if (!n)
		return -ENOMEM;
	fill_entry(e, n);
	return 0;
}

/* Saved entries of a directory, in name order. */
struct saved {
	struct sent {
		char *name;
		uint64_t fid;
		uint32_t type;
	} * v;
	size_t n, alloc;
};

static int saved_cb(void *arg, const char *name, uint64_t fid, uint32_t type)
{
	struct saved *s = arg;
	char *c = strdup(name);
	if (!c || vec_push(s, (struct sent){c, fid, type})) {
		free(c);
		return -ENOMEM;
	}
	return 0;
}

static void saved_release(struct saved *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].name);
	vec_release(s);
}

static int saved_load(uint64_t id, uint64_t dfid, struct saved *s)
{
	*s = (struct saved){0};
	if (!dfid)
		return 0;
	int rc = store_tree_entries(sfs.store, id, dfid, saved_cb, s);
	if (rc < 0)
		saved_release(s);
	return rc < 0 ? rc : 0;
}

static int saved_cmp(const void *k, const void *e)
{
	return strcmp(k, ((const struct sent *)e)->name);
}

static int saved_same(const struct saved *a, const struct saved *b)
{
	if (a->n != b->n)
		return 0;
	for (size_t i = 0; i < a->n; i++)
		if (a->v[i].fid != b->v[i].fid || strcmp(a->v[i].name, b->v[i].name))
			return 0;
	return 1;
}

/* The inode number at the snapshot of a saved child. */
static int saved_ino(uint64_t id, const struct sent *c, ino_t *ino)
{
	struct stat st;
	struct vnode_extra x = {0};
	int fd = store_fid_open(sfs.store, c->fid, O_PATH);
	int rc;
	if (fd >= 0) {
		struct store_file *sf;
		rc = store_file_get(sfs.store, fd, &sf);
		if (rc == 0) {
			rc = node_state(id, sf, fd, 0, &st, &x);
			store_file_put(sf);
		}
		close(fd);
	} else {
		rc = node_state(id, NULL, -1, c->fid, &st, &x);
	}
	free(x.target);
	free(x.xattrs);
	if (rc == 0)
		*ino = st.st_ino;
	return rc;
}

static mode_t dtype_mode(unsigned char t)
{
	switch (t) {
	case DT_DIR:
		return S_IFDIR;
	case DT_LNK:
		return S_IFLNK;
	case DT_FIFO:
		return S_IFIFO;
	case DT_SOCK:
		return S_IFSOCK;
	case DT_CHR:
		return S_IFCHR;
	case DT_BLK:
		return S_IFBLK;
	default:
		return S_IFREG;
	}
}

/* One attempt at the listing: the live entries not overridden by saved
 * ones, then the saved ones naming something. */
static int list_once(uint64_t id, struct sfs_inode *dir, const char *roots, struct saved *s,
		     struct vdir *d)
{
	char path[PATH_MAX];
	int rc = 0;
	if (dir->sf) {
		int fd = store_file_open(dir->sf, O_RDONLY | O_DIRECTORY);
		DIR *dp = fd >= 0 ? fdopendir(fd) : NULL;
		if (!dp && fd >= 0)
			close(fd);
		if (!dp && fd != -ESTALE)
			return fd < 0 ? fd : -errno;
		struct dirent *de;
		while (dp && rc == 0 && (de = readdir(dp))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if (s->n && bsearch(de->d_name, s->v, s->n, sizeof(*s->v), saved_cmp))
				continue;
			int n = *dir->vpath
				    ? snprintf(path, sizeof(path), "%s/%s", dir->vpath, de->d_name)
				    : snprintf(path, sizeof(path), "%s", de->d_name);
			if (n < 0 || n >= (int)sizeof(path) || !exposure(roots, path))
				continue;
			struct stat live = {.st_dev = 0, .st_ino = de->d_ino};
			if (!*dir->vpath) {
				if (fstatat(dirfd(dp), de->d_name, &live, AT_SYMLINK_NOFOLLOW))
					continue; /* removed meanwhile: the re-check decides */
				if (hidden(dir->vpath, de->d_name, &live))
					continue;
			}
			rc = vdir_add(d, de->d_name, strlen(de->d_name), dtype_mode(de->d_type),
				      view_tree_ino(id, de->d_ino));
		}
		if (dp)
			closedir(dp);
	}
	for (size_t i = 0; rc == 0 && i < s->n; i++) {
		const struct sent *c = &s->v[i];
		if (!c->fid)
			continue;
		int n = *dir->vpath ? snprintf(path, sizeof(path), "%s/%s", dir->vpath, c->name)
				    : snprintf(path, sizeof(path), "%s", c->name);
		if (n < 0 || n >= (int)sizeof(path) || !exposure(roots, path))
			continue;
		ino_t ino;
		if ((rc = saved_ino(id, c, &ino)))
			break;
		rc = vdir_add(d, c->name, strlen(c->name), c->type & S_IFMT, ino);
	}
	return rc;
}

int treeview_list(fuse_req_t req, struct sfs_inode *dir, struct vdir *d)
{
	if (!S_ISDIR(dir->vst.st_mode))
		return -ENOTDIR;
	if (!view_may(req, &dir->vst, R_OK))
		return -EACCES;
	char roots[ROOTS_MAX];
	uint64_t root_fid;
	int rc = snap_roots(dir->snap, &root_fid, roots, sizeof(roots));
	if (rc)
		return rc;
	size_t base = d->n; /* "." and ".." */
	for (int tries = 0; tries < 8; tries++) {
		struct saved s, again;
		if ((rc = saved_load(dir->snap, node_fid(dir), &s)))
			return rc;
		rc = list_once(dir->snap, dir, roots, &s, d);
		/* An entry saved meanwhile changed after we read it: again. */
		if (rc == 0 && (rc = saved_load(dir->snap, node_fid(dir), &again)) == 0) {
			int same = saved_same(&s, &again);
			saved_release(&again);
			if (same) {
				saved_release(&s);
				return 0;
			}
		}
		saved_release(&s);
		if (rc)
			return rc;
		while (d->n > base)
			free(d->v[--d->n].name);
	}
	return -EAGAIN;
}

int treeview_open(struct sfs_inode *inode, struct sfs_file *f)
{
	if (!S_ISREG(inode->vst.st_mode))
		return S_ISDIR(inode->vst.st_mode) ? -EISDIR : -EACCES;
	f->snap = inode->snap;
	f->tnode = inode;
	return 0;
}

ssize_t treeview_read(struct sfs_inode *n, char *buf, size_t size, off_t off)
{
	uint64_t at_s = (uint64_t)n->vst.st_size;
	uint64_t fid = node_fid(n);
	if (fid || !n->sf)
		return store_tree_read(sfs.store, n->snap, fid, at_s, buf, size, (uint64_t)off);
	/* Never saved: unchanged since the snapshot. Read it live under the
	 * store file's read lock, which a first change takes for writing to
	 * save the old state first. */
	store_file_rdlock(n->sf);
	ssize_t r;
	if (store_ns_nid(n->sf, &fid) == 0 && fid) {
		store_file_unlock(n->sf);
		return store_tree_read(sfs.store, n->snap, fid, at_s, buf, size, (uint64_t)off);
	}
	if ((uint64_t)off >= at_s) {
		r = 0;
	} else {
		if ((uint64_t)off + size > at_s)
			size = (size_t)(at_s - (uint64_t)off);
		int fd = store_file_open(n->sf, O_RDONLY);
		r = fd < 0 ? fd : pread_full(fd, buf, size, off);
		if (fd >= 0)
			close(fd);
	}
	store_file_unlock(n->sf);
	return r;
}

ssize_t treeview_xattr(struct sfs_inode *n, const char *name, char *buf, size_t size)
{
	const char *p = n->vxattrs, *end = p ? p + n->vxattrs_len : NULL;
	size_t listed = 0;
	while (p && p < end) {
		const char *nm = p;
		size_t nl = strnlen(nm, (size_t)(end - p));
		uint32_t vl;
		if (nm + nl + 1 + 4 > end)
			return -EIO;
		memcpy(&vl, nm + nl + 1, 4);
		const char *val = nm + nl + 1 + 4;
		if (val + vl > end)
			return -EIO;
		p = val + vl;
		if (!strcmp(nm, "security.capability"))
			continue; /* never grant what the live file may have lost */
		if (name) {
			if (strcmp(nm, name))
				continue;
			if (size && vl > size)
				return -ERANGE;
			if (size)
				memcpy(buf, val, vl);
			return vl;
		}
		if (size && listed + nl + 1 > size)
			return -ERANGE;
		if (size)
			memcpy(buf + listed, nm, nl + 1);
		listed += nl + 1;
	}
	return name ? -ENODATA : (ssize_t)listed;
}
