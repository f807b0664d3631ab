// SPDX-License-Identifier: MIT
/*
 * The control ops that walk a snapshot's files: SHOW (files with size and
 * mode) and DIFF (byte ranges changed since the pin), and the helpers they
 * share with RESTORE (restore.c): a snapshot's files copied out of the
 * store, path filters, answer records. Answers come in pages of
 * variable-length records with a cursor to go on from.
 */
#include "sfs_i.h"
#include "ctl_i.h"
#include "snapstore.h"
#include "snapfs_proto.h"
#include "path.h"
#include "rec.h"
#include "vec.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A snapshot's files, copied out of the store so that other store calls
 * can be made while walking them. */
static int sfiles_cb(void *arg, const struct store_snap_file *f)
{
	struct sfiles *fl = arg;
	char *p = strdup(f->path);
	if (!p || vec_push(fl, (struct sfile){.fid = f->fid, .st = f->st, .path = p})) {
		free(p);
		return -ENOMEM;
	}
	return 0;
}

void sfiles_release(struct sfiles *fl)
{
	for (size_t i = 0; i < fl->n; i++)
		free(fl->v[i].path);
	vec_release(fl);
}

int sfiles_load(uint64_t id, struct sfiles *fl)
{
	*fl = (struct sfiles){0};
	int rc = store_snap_files(sfs.store, id, sfiles_cb, fl);
	if (rc)
		sfiles_release(fl);
	return rc < 0 ? rc : 0;
}

/* The count path filters of a DIFF or RESTORE request: NUL-separated in
 * data, exactly filling len. *out is one allocation (free it) holding the
 * pointers and a copy of the strings: the answer overwrites data. */
int req_filters(struct snapfs_req *r, const char ***out)
{
	*out = NULL;
	if (r->len > sizeof(r->data) || r->count > 4096 || (r->count == 0) != (r->len == 0) ||
	    (r->len && r->data[r->len - 1] != 0))
		return -EINVAL;
	if (!r->count)
		return 0;
	const char **v = malloc(r->count * sizeof(*v) + r->len);
	if (!v)
		return -ENOMEM;
	char *copy = (char *)(v + r->count);
	memcpy(copy, r->data, r->len);
	const char *p = copy, *end = copy + r->len;
	for (uint32_t i = 0; i < r->count; i++) {
		if (p >= end) {
			free(v);
			return -EINVAL;
		}
		v[i] = p;
		p += strlen(p) + 1;
	}
	if (p != end) {
		free(v);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int filters_match(const char *path, const char **filt, uint32_t n)
{
	if (!n)
		return 1;
	for (uint32_t i = 0; i < n; i++)
		if (path_under(path, filt[i]))
			return 1;
	return 0;
}

/* The common head of SHOW, DIFF and RESTORE: the snapshot must be the
 * caller's (or the caller root), then its files. */
int snap_open(fuse_req_t req, struct snapfs_req *r, struct sfiles *fl)
{
	struct store_snap_meta m;
	if (r->flags)
		return -EINVAL;
	if (!hold_visible(req, r->id, &m))
		return -ENOENT;
	if (store_snap_is_tree(sfs.store, r->id, NULL, NULL, 0) == 1)
		return -ENOTSUP; /* a tree: walk MNT/<snapdir>/ID */
	return sfiles_load(r->id, fl);
}

int ctl_show(fuse_req_t req, struct snapfs_req *r)
{
	struct sfiles fl;
	if (r->len || r->count)
		return -EINVAL;
	int rc = snap_open(req, r, &fl);
	if (rc)
		return rc;
	uint64_t i = r->cursor;
	if (i > fl.n) {
		sfiles_release(&fl);
		return -EINVAL;
	}
	r->cursor = 0;
	for (; i < fl.n; i++) {
		const struct sfile *f = &fl.v[i];
		struct snapfs_rec_file rec = {
		    .fid = f->fid,
		    .size = (uint64_t)f->st.st_size,
		    .mtime = f->st.st_mtim.tv_sec,
		    .mode = f->st.st_mode,
		    .uid = f->st.st_uid,
		    .gid = f->st.st_gid,
		};
		if (rec_put_file(r, &rec, f->path)) {
			r->cursor = i;
			break;
		}
	}
	sfiles_release(&fl);
	return 0;
}

int ranges_cb(void *arg, uint64_t off, uint64_t len)
{
	struct ranges *rs = arg;
	return vec_push(rs, (struct snapfs_range){off, len});
}

/* cursor: file index in the high 32 bits, index of its first range still
 * to send in the low 32 (a file with more ranges than fit in one answer is
 * sent in several records). */
int ctl_diff(fuse_req_t req, struct snapfs_req *r)
{
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
	uint64_t i = r->cursor >> 32, skip = r->cursor & 0xffffffffu;
	if (i > fl.n || (skip && i == fl.n))
		rc = -EINVAL;
	r->cursor = 0;
	r->len = r->count = 0;
	for (; rc == 0 && i < fl.n; i++, skip = 0) {
		const struct sfile *f = &fl.v[i];
		if (!filters_match(f->path, filt, nfilt))
			continue;
		struct ranges rs = {0};
		int st = store_snap_changed(sfs.store, r->id, f->fid, ranges_cb, &rs);
		if (st > 0)
			st = 0;
		if (st == -ENOMEM) {
			rc = st;
		} else if (st != 0 || rs.n > skip) {
			ssize_t fit = rec_diff_fit(r, strlen(f->path) + 1);
			size_t left = st ? 0 : rs.n - skip;
			size_t k = fit < 0 ? 0 : left < (size_t)fit ? left : (size_t)fit;
			if (fit < 0 || (left && !k)) {
				r->cursor = i << 32 | skip; /* none of it fits: next answer */
			} else {
				struct snapfs_rec_diff rec = {
				    .fid = f->fid,
				    .size = (uint64_t)f->st.st_size,
				    .status = st,
				    .flags = k < left ? SNAPFS_DIFF_MORE : 0,
				    .nranges = (uint32_t)k,
				};
				rc = rec_put_diff(r, &rec, rs.v + skip, f->path);
				if (rc == 0 && k < left)
					r->cursor = i << 32 | (skip + k);
			}
		}
		free(rs.v);
		if (r->cursor)
			break;
	}
	sfiles_release(&fl);
	free(filt);
	return rc;
}
