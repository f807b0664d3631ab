/* SPDX-License-Identifier: MIT */
/*
 * What the snapshot view's files share (vnode.c): the table of virtual
 * nodes, their inode numbers, directory listings. snapview.c serves the
 * view's root and file-list snapshots, treeview.c tree snapshots.
 */
#ifndef VIEW_I_H
#define VIEW_I_H

#include "sfs_i.h"

#define VINO_BIT (1ull << 63)

/* Stable hash of (snapshot, string). */
uint64_t view_hash64(uint64_t snap, const char *path);
/* Inode numbers in the view: stable for a (snapshot, path) or (snapshot,
 * file), distinct from each other with the odds of a 62-bit hash, and from
 * live inode numbers in the top bit. */
ino_t view_dir_ino(uint64_t snap, const char *path);
ino_t view_file_ino(uint64_t snap, uint64_t fid);
/* In a tree snapshot: the top bit, 23 bits of the snapshot id, and the
 * low 40 bits of the node's backing inode number, so hard links share one
 * and clients can match a node with its live self (snapctl diff). */
static inline ino_t view_tree_ino(uint64_t snap, uint64_t ino)
{
	return VINO_BIT | ((snap & 0x7fffffull) << 40) | (ino & 0xffffffffffull);
}

/* What a tree snapshot's node owns besides its attributes: a reference on
 * the live node's store file (NULL once it is gone), a symlink target and
 * its xattrs as at the snapshot (malloc'ed). */
struct vnode_extra {
	struct store_file *sf;
	char *target;
	void *xattrs;
	uint32_t xattrs_len;
};

/* May the caller access a view node with these attributes (as at its
 * snapshot) for mask (R_OK, X_OK...)? The daemon's check where the kernel
 * makes none (no default_permissions); root may. */
int view_may(fuse_req_t req, const struct stat *st, int mask);

int vnode_init(struct sfs *fs);
void vnode_release(struct sfs *fs);
/* Find or make the virtual node (snap, path) of kind and take a lookup
 * reference. x (may be NULL) is taken over by a new node, released when
 * the node exists already or on failure (NULL). */
struct sfs_inode *vnode_get(uint64_t snap, const char *path, enum sfs_kind kind, uint64_t fid,
			    const struct stat *st, struct vnode_extra *x);
void vnode_forget(struct sfs_inode *inode, uint64_t n);

/* A directory listing, made whole at opendir and served by index. */
struct vdir {
	struct vent {
		char *name;
		mode_t type;
		ino_t ino;
	} * v;
	size_t n, alloc;
};
int vdir_add(struct vdir *d, const char *name, size_t len, mode_t type, ino_t ino);
void vdir_free(struct vdir *d);

/* treeview.c: tree snapshots */
int treeview_root(fuse_req_t req, const struct store_snap_meta *m, struct fuse_entry_param *e);
int treeview_lookup(fuse_req_t req, struct sfs_inode *parent, const char *name,
		    struct fuse_entry_param *e);
int treeview_list(fuse_req_t req, struct sfs_inode *dir, struct vdir *d);
/* f reads the tree snapshot's regular file inode. */
int treeview_open(struct sfs_inode *inode, struct sfs_file *f);
/* Bytes of the file as at its snapshot, clipped to its size then. */
ssize_t treeview_read(struct sfs_inode *n, char *buf, size_t size, off_t off);
/* getxattr (name) or listxattr (name NULL) as at the snapshot; size 0
 * asks the length. A count or -errno. */
ssize_t treeview_xattr(struct sfs_inode *n, const char *name, char *buf, size_t size);

#endif /* VIEW_I_H */
