// SPDX-License-Identifier: MIT
/*
 * The snapshot view: MNT/<snapdir>/ID/<path at pin time>. Not listed in
 * the root's readdir, but reachable by name. Its nodes are virtual:
 * directories are derived from the paths a snapshot holds (lookup and
 * readdir are indexed queries: O(log n) per entry, whatever the number of
 * files in the snapshot), files are served
 * from the store and never change, so the kernel may cache their pages
 * (they are distinct inodes from the live files, so the live page cache is
 * never involved). Entries are not cached (timeout 0): a released ID must
 * disappear at once. A caller sees only the snapshots they own, unless root.
 */
#include "sfs_i.h"
#include "snapstore.h"
#include "view_i.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int snapview_init(struct sfs *fs)
{
	return vnode_init(fs);
}

void snapview_release(struct sfs *fs)
{
	vnode_release(fs);
}

void snapview_forget(struct sfs_inode *inode, uint64_t n)
{
	vnode_forget(inode, n);
}

static void dir_stat(const struct store_snap_meta *s, struct stat *st, const char *path)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2;
	st->st_uid = s->uid;
	st->st_gid = 0;
	st->st_size = 0;
	st->st_blksize = 4096;
	st->st_ino = view_dir_ino(s->id, path);
	st->st_atim.tv_sec = st->st_mtim.tv_sec = st->st_ctim.tv_sec = s->created;
}

/* A snapshot never grants a privilege: set-id bits are not shown (so never
 * honoured by exec, whatever the mount's nosuid), and file capabilities
 * are not served (the view has no xattrs). */
static void file_stat(const struct store_snap_meta *s, const struct store_snap_file *f,
		      struct stat *st)
{
	*st = f->st;
	st->st_mode &= ~(S_IWUSR | S_IWGRP | S_IWOTH | S_ISUID | S_ISGID);
	st->st_nlink = 1;
	st->st_ino = view_file_ino(s->id, f->fid);
	st->st_blocks = (f->st.st_size + 511) / 512;
}

int snapview_lookup(fuse_req_t req, struct sfs_inode *parent, const char *name,
		    struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(e[0]));
	struct store_snap_meta s;
	struct sfs_inode *n = NULL;
	if (parent->kind == SFS_VROOT) {
		const char *err;
		long long id = strtonum(name, 1, LLONG_MAX, &err);
		if (err || !hold_visible(req, (uint64_t)id, &s))
			return -ENOENT;
		if (store_snap_is_tree(sfs.store, s.id, NULL, NULL, 0) == 1)
			return treeview_root(req, &s, e);
		dir_stat(&s, &e->attr, "");
		n = vnode_get(s.id, "", SFS_VDIR, 0, &e->attr, NULL);
	} else if (parent->kind == SFS_TNODE) {
		if (!hold_visible(req, parent->snap, &s))
			return -ENOENT;
		return treeview_lookup(req, parent, name, e);
	} else if (parent->kind == SFS_VDIR) {
		if (!hold_visible(req, parent->snap, &s))
			return -ENOENT;
		char path[PATH_MAX];
		int len = *parent->vpath
			      ? snprintf(path, sizeof(path), "%s/%s", parent->vpath, name)
			      : snprintf(path, sizeof(path), "%s", name);
		if (len < 0 || len >= (int)sizeof(path))
			return -ENAMETOOLONG;
		struct store_snap_file f;
		char pbuf[PATH_MAX];
		if (store_snap_file(sfs.store, s.id, path, &f, pbuf, sizeof(pbuf)) == 0) {
			file_stat(&s, &f, &e->attr);
			n = vnode_get(s.id, path, SFS_VFILE, f.fid, &e->attr, NULL);
		} else {
			if (store_snap_isdir(sfs.store, s.id, path) <= 0)
				return -ENOENT;
			dir_stat(&s, &e->attr, path);
			n = vnode_get(s.id, path, SFS_VDIR, 0, &e->attr, NULL);
		}
	} else {
		return -ENOTDIR;
	}
	if (!n)
		return -ENOMEM;
	e->ino = (uintptr_t)n;
	e->attr_timeout = n->kind == SFS_VFILE ? sfs.o.timeout : 0;
	e->entry_timeout = 0;
	return 0;
}

void snapview_getattr(fuse_req_t req, struct sfs_inode *inode)
{
	struct store_snap_meta s;
	if (inode->kind != SFS_VROOT && store_snap_meta(sfs.store, inode->snap, &s)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct stat st = inode->vst;
	if (inode->kind == SFS_VROOT) {
		fstat(sfs.source_fd, &st);
		st.st_mode = S_IFDIR | 0555;
		st.st_ino = inode->vst.st_ino;
		st.st_nlink = 2;
	}
	fuse_reply_attr(req, &st, inode->kind == SFS_VFILE ? sfs.o.timeout : 0);
}

struct list_arg {
	struct vdir *d;
	fuse_req_t req;
	const char *prefix;
	size_t plen;
	uint64_t snap;
};

static int list_snaps_cb(void *arg, const struct store_snap *s)
{
	struct list_arg *a = arg;
	if (!hold_may_see(fuse_req_ctx(a->req)->uid, s->uid))
		return 0;
	char name[32];
	int len = snprintf(name, sizeof(name), "%llu", (unsigned long long)s->id);
	return vdir_add(a->d, name, (size_t)len, S_IFDIR, view_dir_ino(s->id, ""));
}

static int list_dir_cb(void *arg, const char *name, int is_dir, uint64_t fid, const struct stat *st)
{
	struct list_arg *a = arg;
	size_t len = strlen(name);
	if (is_dir) {
		char path[PATH_MAX];
		int n = a->plen ? snprintf(path, sizeof(path), "%s/%s", a->prefix, name)
				: snprintf(path, sizeof(path), "%s", name);
		if (n < 0 || n >= (int)sizeof(path))
			return -ENAMETOOLONG;
		return vdir_add(a->d, name, len, S_IFDIR, view_dir_ino(a->snap, path));
	}
	return vdir_add(a->d, name, len, st->st_mode & S_IFMT, view_file_ino(a->snap, fid));
}

void snapview_opendir(fuse_req_t req, struct sfs_inode *inode, struct fuse_file_info *fi)
{
	struct vdir *d = calloc(1, sizeof(*d));
	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	int rc = vdir_add(d, ".", 1, S_IFDIR, inode->vst.st_ino);
	if (rc == 0)
		rc = vdir_add(d, "..", 2, S_IFDIR, 1);
	struct list_arg a = {d, req, inode->vpath ? inode->vpath : "", 0, inode->snap};
	a.plen = strlen(a.prefix);
	if (rc == 0 && inode->kind == SFS_VROOT) {
		rc = store_snap_list(sfs.store, list_snaps_cb, &a);
	} else if (rc == 0) {
		struct store_snap_meta s;
		if (!hold_visible(req, inode->snap, &s))
			rc = -ENOENT;
		if (rc == 0 && inode->kind == SFS_TNODE)
			rc = treeview_list(req, inode, d);
		else if (rc == 0)
			rc = store_snap_readdir(sfs.store, inode->snap, a.prefix, NULL, list_dir_cb,
						&a);
	}
	if (rc < 0) {
		vdir_free(d);
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)d;
	fuse_reply_open(req, fi);
}

void snapview_readdir(fuse_req_t req, struct sfs_inode *inode, size_t size, off_t off,
		      struct fuse_file_info *fi, int plus)
{
	struct vdir *d = (struct vdir *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	size_t used = 0;
	for (size_t i = (size_t)off; i < d->n; i++) {
		size_t n;
		if (plus) {
			/* No lookup references from the view's readdirplus: entries
			 * carry attributes only, the kernel looks names up itself. */
			struct fuse_entry_param e = {0};
			e.attr.st_ino = d->v[i].ino;
			e.attr.st_mode = d->v[i].type;
			n = fuse_add_direntry_plus(req, buf + used, size - used, d->v[i].name, &e,
						   (off_t)i + 1);
		} else {
			struct stat st = {.st_ino = d->v[i].ino, .st_mode = d->v[i].type};
			n = fuse_add_direntry(req, buf + used, size - used, d->v[i].name, &st,
					      (off_t)i + 1);
		}
		if (n > size - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

void snapview_releasedir(fuse_req_t req, struct fuse_file_info *fi)
{
	vdir_free((struct vdir *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

void snapview_open(fuse_req_t req, struct sfs_inode *inode, struct fuse_file_info *fi)
{
	if (inode->kind != SFS_VFILE && inode->kind != SFS_TNODE) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	struct store_snap_meta s;
	if (!hold_visible(req, inode->snap, &s)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (!sfs.o.default_permissions && !view_may(req, &inode->vst, R_OK)) {
		fuse_reply_err(req, EACCES);
		return;
	}
	struct sfs_file *f = calloc(1, sizeof(*f));
	if (!f) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	f->fd = -1;
	f->flags = fi->flags;
	f->snap = inode->snap;
	f->fid = inode->fid;
	int rc = inode->kind == SFS_TNODE ? treeview_open(inode, f) : 0;
	if (rc) {
		free(f);
		fuse_reply_err(req, -rc);
		return;
	}
	if (s.kind == STORE_EPHEMERAL && hold_ref(s.id) == 0)
		f->ref_snap = s.id;
	fi->fh = (uintptr_t)f;
	fi->keep_cache = 1; /* a snapshot file never changes */
	if (fuse_reply_open(req, fi) == -ENOENT)
		hold_file_free(f); /* the opener was interrupted */
}

ssize_t snapview_pread(struct sfs_file *f, void *buf, size_t size, off_t off)
{
	return f->tnode ? treeview_read(f->tnode, buf, size, off)
			: store_snap_read(sfs.store, f->snap, f->fid, buf, size, (uint64_t)off);
}

void snapview_read(fuse_req_t req, struct sfs_file *f, size_t size, off_t off)
{
	char *buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t n = snapview_pread(f, buf, size, off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

void snapview_readlink(fuse_req_t req, struct sfs_inode *inode)
{
	if (inode->kind != SFS_TNODE || !S_ISLNK(inode->vst.st_mode) || !inode->vtarget)
		fuse_reply_err(req, EINVAL);
	else
		fuse_reply_readlink(req, inode->vtarget);
}

ssize_t snapview_xattr(struct sfs_inode *inode, const char *name, char *buf, size_t size)
{
	if (inode->kind != SFS_TNODE)
		return name ? -ENODATA : 0;
	return treeview_xattr(inode, name, buf, size);
}

void snapview_prune(struct sfs *fs)
{
	vnode_prune(fs);
}
