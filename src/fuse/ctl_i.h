/* SPDX-License-Identifier: MIT */
/*
 * What the control ops that walk a snapshot's files share (ctl_files.c):
 * SHOW and DIFF there, RESTORE in restore.c; and the read-side ops of
 * ctl_read.c.
 */
#ifndef CTL_I_H
#define CTL_I_H

#include "sfs_i.h"

struct snapfs_req;
struct snapfs_range;

/* A snapshot's files, copied out of the store so that other store calls
 * can be made while walking them. */
struct sfile {
	uint64_t fid;
	struct stat st;
	char *path;
};

struct sfiles {
	struct sfile *v;
	size_t n, alloc;
};

void sfiles_release(struct sfiles *fl);
int sfiles_load(uint64_t id, struct sfiles *fl);

/* The common head of SHOW, DIFF and RESTORE: the snapshot must be the
 * caller's (or the caller root), then its files. 0 or -errno. */
int snap_open(fuse_req_t req, struct snapfs_req *r, struct sfiles *fl);

/* The count path filters of a DIFF or RESTORE request: NUL-separated in
 * data, exactly filling len. *out is one allocation (free it) holding the
 * pointers and a copy of the strings: the answer overwrites data. */
int req_filters(struct snapfs_req *r, const char ***out);
/* Whether path is under one of the n filters (all paths when n is 0). */
int filters_match(const char *path, const char **filt, uint32_t n);

/* Changed byte ranges, collected by ranges_cb from store_snap_changed. */
struct ranges {
	struct snapfs_range *v;
	size_t n, alloc;
};
int ranges_cb(void *arg, uint64_t off, uint64_t len);

/* ctl_read.c: PREAD, and FREEZE of an open that already reads a snapshot */
int ctl_pread(struct sfs_inode *inode, struct fuse_file_info *fi, struct snapfs_req *r);
int ctl_freeze_held(struct sfs_inode *inode, struct fuse_file_info *fi, struct snapfs_req *r);

/* restore.c */
int ctl_restore(fuse_req_t req, struct snapfs_req *r);

#endif /* CTL_I_H */
