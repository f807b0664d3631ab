// SPDX-License-Identifier: MIT
/*
 * The control ops that walk a snapshot's files: SHOW (files with size and
 * mode), DIFF (byte ranges changed since the pin) and RESTORE (make live
 * files equal to the snapshot, writing only differing blocks, through the
 * same copy-on-write path as writes through the mount, so later snapshots
 * keep their bytes; see restore_file). Answers come in pages of
 * variable-length records with a cursor to go on from.
 */
#include "sfs_i.h"
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
struct sfile {
	uint64_t fid;
	struct stat st;
	char *path;
};

struct sfiles {
	struct sfile *v;
	size_t n, alloc;
};

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

static void sfiles_release(struct sfiles *fl)
{
	for (size_t i = 0; i < fl->n; i++)
		free(fl->v[i].path);
	free(fl->v);
}

static int sfiles_load(uint64_t id, struct sfiles *fl)
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
static int req_filters(struct snapfs_req *r, const char ***out)
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

static int filters_match(const char *path, const char **filt, uint32_t n)
{
	if (!n)
		return 1;
	for (uint32_t i = 0; i < n; i++)
		if (path_under(path, filt[i]))
			return 1;
	return 0;
}

/* Room for a record of len bytes at r->len: where to write it, or NULL. */
static char *rec_room(struct snapfs_req *r, size_t len)
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
static int snap_open(fuse_req_t req, struct snapfs_req *r, struct sfiles *fl)
{
	struct store_snap s;
	if (r->flags)
		return -EINVAL;
	if (!ctl_visible(req, r->id, &s))
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

struct ranges {
	struct snapfs_range *v;
	size_t n, alloc;
};

static int ranges_cb(void *arg, uint64_t off, uint64_t len)
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

/*
 * Restore. A snapshot file is found again at its pin-time path: when the
 * file there is the pinned one (same store file), only the ranges the
 * store says changed are looked at; when another file has taken the path
 * (an editor's save-by-rename), all of it; when the path is gone, a file
 * is created there (mode of the pin, owned by the caller; by the pin-time
 * owner when the caller is root) and filled. A file renamed elsewhere
 * since the pin is not followed. Within those ranges each block is
 * compared with the live one and only differing blocks are written, each
 * through the copy-on-write path like any write through the mount, so
 * snapshots taken after this one keep their bytes; then the size is set
 * back. The snapshot's bytes are read outside the file's lock (the store
 * takes it for reads, and a snapshot never changes); the compare and the
 * write happen under it. Ownership, mode and times are not restored.
 */
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
		struct sfs_cred c;
		rc = cred_enter(req, &c);
		int fd =
		    rc ? -1
		       : openat(t->parent->fd, comp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
		if (rc == 0 && fd < 0)
			rc = -errno;
		if (fd >= 0) {
			if (fuse_req_ctx(req)->uid == 0 && fchown(fd, pst->st_uid, pst->st_gid))
				rc = -errno;
			if (rc == 0 && fchmod(fd, pst->st_mode & 07777))
				rc = -errno;
			close(fd);
			if (rc)
				unlinkat(t->parent->fd, comp, 0);
		}
		cred_leave(&c);
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

static int pread_zero(int fd, char *p, size_t len, uint64_t off)
{
	size_t got = 0;
	while (got < len) {
		ssize_t k = pread(fd, p + got, len - got, (off_t)(off + got));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		got += (size_t)k;
	}
	memset(p + got, 0, len - got); /* past the end reads as the zeros a resize brings */
	return 0;
}

static int pwrite_full(int fd, const char *p, size_t len, uint64_t off)
{
	while (len) {
		ssize_t k = pwrite(fd, p, len, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		p += k;
		off += (uint64_t)k;
		len -= (size_t)k;
	}
	return 0;
}

/* Write the blocks of [off, off + len) where snap differs from the live
 * file, under the file's byte lock. */
static int restore_chunk(struct sfs_inode *inode, struct store_file *sf, int fd, const char *snap,
			 char *live, size_t len, uint64_t off, uint64_t *written)
{
	uint64_t bs = store_block_size(sfs.store);
	cow_lock(inode, sf);
	int rc = pread_zero(fd, live, len, off);
	for (size_t a = 0; rc == 0 && a < len;) {
		size_t b = (size_t)(((off + a) / bs + 1) * bs - off);
		if (b > len)
			b = len;
		if (!memcmp(snap + a, live + a, b - a)) {
			a = b;
			continue;
		}
		/* A run of differing blocks: one COW call and one write. */
		size_t e = b;
		while (e < len) {
			size_t n = (size_t)(((off + e) / bs + 1) * bs - off);
			if (n > len)
				n = len;
			if (!memcmp(snap + e, live + e, n - e))
				break;
			e = n;
		}
		rc = cow_range(inode, sf, off + a, e - a);
		if (rc == 0)
			rc = pwrite_full(fd, snap + a, e - a, off + a);
		if (rc == 0)
			*written += e - a;
		a = e;
	}
	cow_unlock(inode, sf);
	return rc;
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
	char proc[64];
	inode_procpath(t.inode, proc);
	struct sfs_cred c;
	int fd = -1;
	if ((rc = cred_enter(req, &c)) == 0 && (fd = open(proc, O_RDWR | O_CLOEXEC)) < 0)
		rc = -errno;
	cred_leave(&c);
	struct store_file *sf = rc ? NULL : cow_sf(t.inode);
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
				rc = restore_chunk(t.inode, sf, fd, snap, live, (size_t)k, at,
						   &out->written);
			at += (uint64_t)(k > 0 ? k : 0);
		}
	}
	if (rc == 0) {
		cow_lock(t.inode, sf);
		if (fstat(fd, &st))
			rc = -errno;
		else if ((uint64_t)st.st_size != psize) {
			rc = cow_truncate(t.inode, sf, psize);
			if (rc == 0 && ftruncate(fd, (off_t)psize))
				rc = -errno;
			if (rc == 0)
				out->flags |= SNAPFS_RESTORE_RESIZED;
		}
		cow_unlock(t.inode, sf);
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
		struct snapfs_rec_restore rec = {.reclen =
						     (uint32_t)((head + plen + 7) & ~(size_t)7)};
		rec.status = restore_file(req, r->id, f, &rec);
		char *p = rec_room(r, head + plen);
		memcpy(p, &rec, head);
		memcpy(p + head, f->path, plen);
	}
	sfiles_release(&fl);
	free(filt);
	return rc;
}
