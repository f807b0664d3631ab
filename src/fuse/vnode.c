// SPDX-License-Identifier: MIT
/*
 * The snapshot view's nodes: a table of virtual inodes keyed by (snapshot,
 * path), their inode numbers, and directory listings. Shared by the two
 * kinds of snapshot the view serves: file-list snapshots (snapview.c) and
 * tree snapshots (treeview.c). A node's attributes are set when it is made
 * and never change (a snapshot never changes); the table is protected by
 * sfs.mutex.
 */
#include "sfs_i.h"
#include "snapstore.h"
#include "view_i.h"
#include "vec.h"

#include <errno.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VTAB_SIZE 1024

uint64_t view_hash64(uint64_t snap, const char *path)
{
	uint64_t h = 0xcbf29ce484222325ull ^ (snap * 0x9e3779b97f4a7c15ull);
	for (const unsigned char *p = (const unsigned char *)path; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	return h ^ (h >> 32);
}

static size_t vhash(const struct sfs *fs, uint64_t snap, const char *path)
{
	return view_hash64(snap, path) & (fs->vsize - 1);
}

/* Twice the buckets (fs->mutex held): a walk of a million-entry snapshot
 * keeps its chains short (a fixed 1,024 made each lookup walk ~1,000). */
static void vtab_grow(struct sfs *fs)
{
	size_t nsize = fs->vsize * 2;
	struct sfs_inode **nt = calloc(nsize, sizeof(*nt));
	if (!nt)
		return; /* keep the longer chains */
	for (size_t i = 0; i < fs->vsize; i++)
		for (struct sfs_inode *n = fs->vtab[i], *next; n; n = next) {
			next = n->vnext;
			size_t h = view_hash64(n->snap, n->vpath) & (nsize - 1);
			n->vnext = nt[h];
			nt[h] = n;
		}
	free(fs->vtab);
	fs->vtab = nt;
	fs->vsize = nsize;
}

/* Inode numbers in the view: stable for a (snapshot, path) or (snapshot,
 * file), distinct from each other with the odds of a 62-bit hash (a 10-bit
 * one made find(1) see directory loops), and from live inode numbers only
 * in the top bit. */
ino_t view_dir_ino(uint64_t snap, const char *path)
{
	return VINO_BIT | (view_hash64(snap, path) & ~(3ull << 62));
}

ino_t view_file_ino(uint64_t snap, uint64_t fid)
{
	char key[24];
	snprintf(key, sizeof(key), "%llu", (unsigned long long)fid);
	return VINO_BIT | (1ull << 62) | (view_hash64(snap ^ 0x5bd1e995ull, key) & ~(3ull << 62));
}

int vnode_init(struct sfs *fs)
{
	fs->vsize = VTAB_SIZE;
	fs->vtab = calloc(VTAB_SIZE, sizeof(*fs->vtab));
	if (!fs->vtab)
		return -ENOMEM;
	struct sfs_inode *r = &fs->vroot;
	r->kind = SFS_VROOT;
	r->cfd = -1;
	r->type = S_IFDIR;
	r->vpath = "";
	r->vst.st_mode = S_IFDIR | 0555;
	r->vst.st_nlink = 2;
	r->vst.st_ino = VINO_BIT | 1;
	pthread_rwlock_init(&r->rwlock, NULL);
	return 0;
}

static void extra_release(struct vnode_extra *x)
{
	if (x->sf)
		store_file_put(x->sf);
	free(x->target);
	free(x->xattrs);
	*x = (struct vnode_extra){0};
}

static void vnode_free(struct sfs_inode *n)
{
	struct vnode_extra x = {n->sf, n->vtarget, n->vxattrs, n->vxattrs_len};
	extra_release(&x);
	free(n->vpath);
	pthread_rwlock_destroy(&n->rwlock);
	free(n);
}

void vnode_release(struct sfs *fs)
{
	for (size_t i = 0; fs->vtab && i < fs->vsize; i++) {
		struct sfs_inode *n = fs->vtab[i];
		while (n) {
			struct sfs_inode *next = n->vnext;
			vnode_free(n);
			n = next;
		}
	}
	free(fs->vtab);
	fs->vtab = NULL;
}

/* Find or make the virtual node (snap, path) and take a lookup reference. */
struct sfs_inode *vnode_get(uint64_t snap, const char *path, enum sfs_kind kind, uint64_t fid,
			    const struct stat *st, struct vnode_extra *x)
{
	struct sfs *fs = &sfs;
	pthread_mutex_lock(&fs->mutex);
	size_t h = vhash(fs, snap, path);
	struct sfs_inode *n;
	for (n = fs->vtab[h]; n; n = n->vnext)
		if (n->snap == snap && n->kind == kind && strcmp(n->vpath, path) == 0)
			break;
	if (n) {
		n->nlookup++; /* its attributes were set at creation and never change */
		pthread_mutex_unlock(&fs->mutex);
		if (x)
			extra_release(x);
		return n;
	}
	n = calloc(1, sizeof(*n));
	if (!n || !(n->vpath = strdup(path))) {
		pthread_mutex_unlock(&fs->mutex);
		free(n);
		if (x)
			extra_release(x);
		return NULL;
	}
	if (x) {
		n->sf = x->sf;
		n->vtarget = x->target;
		n->vxattrs = x->xattrs;
		n->vxattrs_len = x->xattrs_len;
		*x = (struct vnode_extra){0};
	}
	n->kind = kind;
	n->cfd = -1;
	n->snap = snap;
	n->fid = fid;
	n->vst = *st;
	n->type = st->st_mode & S_IFMT;
	n->nlookup = 1;
	pthread_rwlock_init(&n->rwlock, NULL);
	n->vnext = fs->vtab[h];
	fs->vtab[h] = n;
	if (++fs->vcount > fs->vsize * 2)
		vtab_grow(fs);
	pthread_mutex_unlock(&fs->mutex);
	return n;
}

void vnode_forget(struct sfs_inode *inode, uint64_t n)
{
	struct sfs *fs = &sfs;
	if (inode == &fs->vroot)
		return;
	pthread_mutex_lock(&fs->mutex);
	inode->nlookup -= n > inode->nlookup ? inode->nlookup : n;
	if (inode->nlookup) {
		pthread_mutex_unlock(&fs->mutex);
		return;
	}
	struct sfs_inode **pp = &fs->vtab[vhash(fs, inode->snap, inode->vpath)];
	while (*pp && *pp != inode)
		pp = &(*pp)->vnext;
	if (*pp) {
		*pp = inode->vnext;
		fs->vcount--;
	}
	pthread_mutex_unlock(&fs->mutex);
	vnode_free(inode);
}

int vdir_add(struct vdir *d, const char *name, size_t len, mode_t type, ino_t ino)
{
	char *s = strndup(name, len);
	if (!s || vec_push(d, (struct vent){s, type, ino})) {
		free(s);
		return -ENOMEM;
	}
	return 0;
}

void vdir_free(struct vdir *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].name);
	vec_release(d);
	free(d);
}

int view_may(fuse_req_t req, const struct stat *st, int mask)
{
	if (sfs.o.default_permissions)
		return 1; /* the kernel checked, with these attributes */
	const struct fuse_ctx *c = fuse_req_ctx(req);
	if (c->uid == 0)
		return 1;
	mode_t bits =
	    (mode_t)((mask & R_OK ? 4 : 0) | (mask & W_OK ? 2 : 0) | (mask & X_OK ? 1 : 0));
	if (c->uid == st->st_uid)
		return ((st->st_mode >> 6) & bits) == bits;
	gid_t groups[64];
	int n = fuse_req_getgroups(req, 64, groups);
	int ingroup = c->gid == st->st_gid;
	for (int i = 0; i < n && i < 64 && !ingroup; i++)
		ingroup = groups[i] == st->st_gid;
	return ((st->st_mode >> (ingroup ? 3 : 0)) & bits) == bits;
}

/*
 * View directories of snapshots that are gone. The kernel keeps the
 * dentries of MNT/<snapdir>/ID/... after ID is released (nothing looks them
 * up again to find out), and with them a lookup reference on the daemon's
 * virtual nodes, which then live until memory pressure shrinks the dcache:
 * a pin-read-release loop grew the daemon by ~600 bytes per snapshot read
 * through the view. Every few seconds, the ID directories the daemon has
 * nodes for are checked against the store, and the kernel is told to drop
 * those whose snapshot no longer exists (fuse_lowlevel_notify_inval_entry
 * drops the subtree); it then forgets the nodes and snapview frees them.
 * Called from the tick thread, never from a request: the kernel may wait
 * for requests on the directory.
 */
#define REAP_MAX 512

void vnode_prune(struct sfs *fs)
{
	uint64_t ids[REAP_MAX];
	size_t n = 0;
	pthread_mutex_lock(&fs->mutex);
	for (size_t h = 0; h < fs->vsize && n < REAP_MAX; h++)
		for (struct sfs_inode *v = fs->vtab[h]; v && n < REAP_MAX; v = v->vnext)
			if ((v->kind == SFS_VDIR || v->kind == SFS_TNODE) && v->vpath[0] == 0)
				ids[n++] = v->snap;
	pthread_mutex_unlock(&fs->mutex);
	for (size_t i = 0; i < n; i++) {
		struct store_snap_meta s;
		if (store_snap_meta(fs->store, ids[i], &s) != -ENOENT)
			continue;
		char name[24];
		int len = snprintf(name, sizeof(name), "%llu", (unsigned long long)ids[i]);
		fuse_lowlevel_notify_inval_entry(fs->se, (fuse_ino_t)(uintptr_t)&fs->vroot, name,
						 (size_t)len);
	}
}
