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
	if (fl->n == fl->alloc) {
		size_t na = fl->alloc ? fl->alloc * 2 : 64;
		struct sfile *v = reallocarray(fl->v, na, sizeof(*v));
		if (!v)
			return -ENOMEM;
		fl->v = v;
		fl->alloc = na;
	}
	char *p = strdup(f->path);
	if (!p)
		return -ENOMEM;
	fl->v[fl->n++] = (struct sfile){.fid = f->fid, .st = f->st, .path = p};
	return 0;
}

void sfiles_release(struct sfiles *fl)
{
	for (size_t i = 0; i < fl->n; i++)
		free(fl->v[i].path);
	free(fl->v);
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

/* Whether path (a snapshot file) is filter or under it; "" and "." are the root. */
static int path_under(const char *path, const char *filter)
{
	while (filter[0] == '.' && filter[1] == '/')
		filter += 2;
	if (!*filter || !strcmp(filter, "."))
		return 1;
	size_t n = strlen(filter);
	while (n > 1 && filter[n - 1] == '/')
		n--;
	return !strncmp(path, filter, n) && (path[n] == 0 || path[n] == '/');
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

/* Room for a record of len bytes at r->len: where to write it, or NULL. */
char *rec_room(struct snapfs_req *r, size_t len)
{
	len = (len + 7) & ~(size_t)7;
	if (r->len + len > sizeof(r->data))
		return NULL;
	char *p = r->data + r->len;
	memset(p, 0, len);
	r->len += (uint32_t)len;
	r->count++;
	return p;
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
		size_t plen = strlen(f->path) + 1;
		char *p = rec_room(r, sizeof(struct snapfs_rec_file) + plen);
		if (!p) {
			r->cursor = i;
			break;
		}
		struct snapfs_rec_file rec = {
		    .fid = f->fid,
		    .size = (uint64_t)f->st.st_size,
		    .mtime = f->st.st_mtim.tv_sec,
		    .mode = f->st.st_mode,
		    .uid = f->st.st_uid,
		    .gid = f->st.st_gid,
		    .reclen = (uint32_t)(((sizeof(rec) + plen) + 7) & ~(size_t)7),
		};
		memcpy(p, &rec, sizeof(rec));
		memcpy(p + sizeof(rec), f->path, plen);
	}
	sfiles_release(&fl);
	return 0;
}

int ranges_cb(void *arg, uint64_t off, uint64_t len)
{
	struct ranges *rs = arg;
	if (rs->n == rs->alloc) {
		size_t na = rs->alloc ? rs->alloc * 2 : 16;
		struct snapfs_range *v = reallocarray(rs->v, na, sizeof(*v));
		if (!v)
			return -ENOMEM;
		rs->v = v;
		rs->alloc = na;
	}
	rs->v[rs->n++] = (struct snapfs_range){off, len};
	return 0;
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
			size_t plen = strlen(f->path) + 1, head = sizeof(struct snapfs_rec_diff);
			size_t room = sizeof(r->data) - r->len;
			size_t fit = room >= head + plen + 8
					 ? (room - head - plen - 7) / sizeof(struct snapfs_range)
					 : 0;
			size_t left = st ? 0 : rs.n - skip, k = left < fit ? left : fit;
			if ((left && !k) || room < head + plen + 8) {
				r->cursor = i << 32 | skip; /* none of it fits: next answer */
			} else {
				size_t len = head + k * sizeof(struct snapfs_range) + plen;
				char *p = rec_room(r, len);
				struct snapfs_rec_diff rec = {
				    .fid = f->fid,
				    .size = (uint64_t)f->st.st_size,
				    .status = st,
				    .flags = k < left ? SNAPFS_DIFF_MORE : 0,
				    .nranges = (uint32_t)k,
				    .reclen = (uint32_t)((len + 7) & ~(size_t)7),
				};
				memcpy(p, &rec, head);
				if (k)
					memcpy(p + head, rs.v + skip,
					       k * sizeof(struct snapfs_range));
				memcpy(p + head + k * sizeof(struct snapfs_range), f->path, plen);
				if (k < left)
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
