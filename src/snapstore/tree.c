// SPDX-License-Identifier: MIT
/*
 * Tree snapshots, the read side: a node's attributes, a directory's entries
 * and a file's bytes as at a tree snapshot's epoch s. Per node or entry: the
 * row with efrom <= s < eto if there is one, else the live state, which has
 * not changed since s. Watch for: "no row" is only trusted when the live
 * node's ctime is not after the pin (else the node was changed behind the
 * store's back: -EIO, never the live state); the live node is opened by
 * handle for the check and closed again (no descriptor is kept per node).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_i.h"

/* mu held: the tree snapshot id, valid: 0, -ENOENT, -EIO (stale). */
static int tree_get(struct store *st, uint64_t id, struct nstree *out)
{
	const struct nstree *x = ns_tree_find(st, id);
	if (!x)
		return -ENOENT;
	const struct snapmem *sm = store_snap_find(st, id);
	if (!sm)
		return -ENOENT;
	if (sm->state != STORE_VALID)
		return -EIO;
	*out = *x;
	out->path = NULL;
	return 0;
}

static void attr_out(const struct nsidx_attr *a, struct store_attr *o)
{
	*o = (struct store_attr){.mode = a->mode,
				 .uid = a->uid,
				 .gid = a->gid,
				 .nlink = a->nlink,
				 .size = a->size,
				 .rdev = a->rdev,
				 .ino = a->ino,
				 .atime = store_ns_ts(a->atime_ns),
				 .mtime = store_ns_ts(a->mtime_ns),
				 .ctime = store_ns_ts(a->ctime_ns),
				 .target = a->target,
				 .target_len = a->target_len,
				 .xattrs = a->xattrs,
				 .xattrs_len = a->xattrs_len};
}

/* A live node with no row: its state is the snapshot's unless it changed after
 * the pin (ctime later than the pin time): 1, or -EIO. */
static int live_unchanged(struct store *st, const unsigned char *h, uint32_t hlen,
			  int64_t created_ns)
{
	int fd = store_open_handle(st, h, hlen, O_PATH);
	if (fd == -ESTALE || fd == -ENOENT)
		return -EIO; /* gone, and nothing kept: it changed behind our back */
	if (fd < 0)
		return fd;
	struct stat sb;
	int rc = fstat(fd, &sb) ? -errno : 0;
	close(fd);
	if (rc)
		return rc;
	return store_ts_ns(&sb.st_ctim) > created_ns ? -EIO : 1;
}

/* mu held: fid's handle, from the table or the files row. */
static int fid_handle(struct store *st, uint64_t fid, unsigned char *h, uint32_t *hlen)
{
	const struct store_file *sf = store_file_by_fid(st, fid);
	if (sf) {
		memcpy(h, sf->handle, sf->hlen);
		*hlen = sf->hlen;
		return 0;
	}
	*hlen = STORE_HANDLE_MAX;
	return nsidx_file_handle(st->ns->nx, fid, h, hlen);
}

int store_tree_attr(struct store *st, uint64_t id, struct store_file *sf, struct store_attr *out,
		    char *buf, size_t buflen)
{
	struct nstree x;
	struct nsidx_attr a;
	uint64_t nid = 0;
	int found = 0;
	pthread_mutex_lock(&st->mu);
	int rc = tree_get(st, id, &x);
	if (!rc)
		rc = ns_nid(sf, 0, &nid);
	if (!rc && nid) {
		rc = nsidx_attr_at(st->ns->nx, nid, x.epoch, &a, buf, buflen);
		found = !rc;
		if (rc == -ENOENT)
			rc = 0;
	}
	pthread_mutex_unlock(&st->mu);
	if (rc)
		return rc;
	if (found) {
		attr_out(&a, out);
		return 0;
	}
	return live_unchanged(st, sf->handle, sf->hlen, x.created_ns);
}

int store_tree_attr_fid(struct store *st, uint64_t id, uint64_t fid, struct store_attr *out,
			char *buf, size_t buflen)
{
	struct nstree x;
	struct nsidx_attr a;
	unsigned char h[STORE_HANDLE_MAX];
	uint32_t hlen = 0;
	int found = 0;
	pthread_mutex_lock(&st->mu);
	int rc = tree_get(st, id, &x);
	if (!rc) {
		rc = nsidx_attr_at(st->ns->nx, fid, x.epoch, &a, buf, buflen);
		found = !rc;
		if (rc == -ENOENT)
			rc = fid_handle(st, fid, h, &hlen);
	}
	pthread_mutex_unlock(&st->mu);
	if (rc)
		return rc;
	if (found) {
		attr_out(&a, out);
		return 0;
	}
	return live_unchanged(st, h, hlen, x.created_ns);
}

int store_tree_lookup(struct store *st, uint64_t id, uint64_t dir_fid, const char *name,
		      uint64_t *child_fid, uint32_t *child_type)
{
	struct nstree x;
	struct nsidx_entry e;
	int found = 0;
	pthread_mutex_lock(&st->mu);
	int rc = tree_get(st, id, &x);
	if (!rc && dir_fid) {
		rc = nsidx_entry_at(st->ns->nx, dir_fid, name, x.epoch, &e);
		found = !rc;
		if (rc == -ENOENT)
			rc = 0;
	}
	pthread_mutex_unlock(&st->mu);
	if (rc)
		return rc;
	if (!found)
		return 1;
	*child_fid = e.child;
	*child_type = e.ctype;
	return 0;
}

int store_tree_entries(struct store *st, uint64_t id, uint64_t dir_fid,
		       int (*fn)(void *arg, const char *name, uint64_t child_fid,
				 uint32_t child_type),
		       void *arg)
{
	struct nstree x;
	struct nsidx_entry *e = NULL;
	size_t n = 0;
	pthread_mutex_lock(&st->mu);
	int rc = tree_get(st, id, &x);
	if (!rc && dir_fid)
		rc = nsidx_entries(st->ns->nx, dir_fid, x.epoch, &e, &n);
	pthread_mutex_unlock(&st->mu);
	for (size_t i = 0; i < n && !rc; i++)
		rc = fn(arg, e[i].name, e[i].child, e[i].ctype);
	nsidx_entries_free(e, n);
	return rc;
}

static int pread_all(int fd, char *p, size_t len, uint64_t off)
{
	while (len) {
		ssize_t k = pread(fd, p, len, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EIO; /* shorter than at the snapshot and not preserved */
		p += k;
		off += (uint64_t)k;
		len -= (size_t)k;
	}
	return 0;
}

ssize_t store_tree_read(struct store *st, uint64_t id, uint64_t fid, uint64_t size_at_s, void *buf,
			size_t len, uint64_t off)
{
	struct nstree x;
	struct store_file *sf = NULL;
	unsigned char h[STORE_HANDLE_MAX];
	uint32_t hlen = 0;
	pthread_mutex_lock(&st->mu);
	int rc = tree_get(st, id, &x);
	if (!rc && !(sf = store_file_by_fid(st, fid))) {
		rc = fid_handle(st, fid, h, &hlen);
		if (!rc && !(sf = store_file_by_handle(st, h, hlen))) {
			if (!(sf = store_file_new(st, h, hlen)))
				rc = -ENOMEM;
		}
		if (sf && !sf->fid)
			store_file_set_fid(sf, fid);
	}
	if (sf)
		sf->refs++;
	pthread_mutex_unlock(&st->mu);
	if (rc) {
		store_file_put(sf);
		return rc;
	}
	/* The file's read lock: no save + write between the check and the read. */
	store_file_rdlock(sf);
	int cov = 0;
	pthread_mutex_lock(&st->mu);
	for (size_t i = 0; i < sf->ncov && !cov; i++)
		cov = sf->cov[i].snap == id;
	pthread_mutex_unlock(&st->mu);
	ssize_t ret;
	if (cov) {
		store_file_unlock(sf); /* the extents now vouch for every changed block */
		ret = store_snap_read(st, id, fid, buf, len, off);
		store_file_put(sf);
		return ret;
	}
	if (off >= size_at_s || !len) {
		ret = 0;
		goto out;
	}
	if (len > size_at_s - off)
		len = (size_t)(size_at_s - off);
	int fd = sf->detached ? -EIO : store_open_handle(st, sf->handle, sf->hlen, O_RDONLY);
	if (fd == -ESTALE || fd == -ENOENT)
		fd = -EIO;
	if (fd < 0) {
		ret = fd;
		goto out;
	}
	struct stat sb;
	if (fstat(fd, &sb))
		ret = -errno;
	else if (store_ts_ns(&sb.st_ctim) > x.created_ns)
		ret = -EIO; /* changed behind the store's back */
	else
		ret = pread_all(fd, buf, len, off) ?: (ssize_t)len;
	close(fd);
out:
	store_file_unlock(sf);
	store_file_put(sf);
	return ret;
}

int store_fid_handle(struct store *st, uint64_t fid, unsigned char *h, uint32_t *hlen, int *htype)
{
	unsigned char b[STORE_HANDLE_MAX];
	uint32_t bl = 0;
	pthread_mutex_lock(&st->mu);
	int rc = fid_handle(st, fid, b, &bl);
	pthread_mutex_unlock(&st->mu);
	if (rc)
		return rc;
	if (bl - 4 > *hlen)
		return -ERANGE;
	int32_t t;
	memcpy(&t, b, 4);
	*htype = t;
	memcpy(h, b + 4, bl - 4);
	*hlen = bl - 4;
	return 0;
}

int store_fid_open(struct store *st, uint64_t fid, int flags)
{
	unsigned char b[STORE_HANDLE_MAX];
	uint32_t bl = 0;
	pthread_mutex_lock(&st->mu);
	int rc = fid_handle(st, fid, b, &bl);
	pthread_mutex_unlock(&st->mu);
	if (rc)
		return rc;
	rc = store_open_handle(st, b, bl, flags);
	return rc == -ENOENT ? -ESTALE : rc;
}
