// SPDX-License-Identifier: MIT
/*
 * libsnapfs: pin, release, freeze and snapshot paths, over the control
 * ioctl (snapfs_proto.h), and the listing calls (list, show, diff,
 * lookup) that walk the daemon's paged answers with the record codec
 * (rec.h). A path is mapped to its mount by resolving it (realpath) and
 * taking the longest fuse.snapfs mount point of /proc/self/mountinfo (read
 * with libmount) that contains it; requests name files by their path
 * relative to that mount's root.
 */
#include "snapfs.h"
#include "snapfs_proto.h"
#include "client_i.h"
#include "path.h"
#include "rec.h"

#include <libmount.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* The snapfs mount points in /proc/self/mountinfo, through libmount. */
int snapfs_mounts(int (*fn)(struct libmnt_fs *fs, void *arg), void *arg)
{
	struct libmnt_table *tb = mnt_new_table();
	if (!tb)
		return -1;
	int rc = mnt_table_parse_file(tb, "/proc/self/mountinfo");
	if (rc) {
		mnt_unref_table(tb);
		errno = rc < 0 ? -rc : EIO;
		return -1;
	}
	struct libmnt_iter *it = mnt_new_iter(MNT_ITER_FORWARD);
	struct libmnt_fs *fs;
	rc = 0;
	while (it && rc == 0 && mnt_table_next_fs(tb, it, &fs) == 0) {
		const char *type = mnt_fs_get_fstype(fs);
		if (type && !strcmp(type, "fuse.snapfs") && mnt_fs_get_target(fs))
			rc = fn(fs, arg);
	}
	if (!it)
		rc = -1;
	mnt_free_iter(it);
	mnt_unref_table(tb);
	return rc;
}

struct locate {
	const char *abs;
	char best[PATH_MAX];
	size_t bestlen;
};

static int locate_one(struct libmnt_fs *fs, void *arg)
{
	struct locate *l = arg;
	const char *mp = mnt_fs_get_target(fs);
	size_t len = strlen(mp);
	int inside = !strcmp(mp, "/") ||
		     (!strncmp(l->abs, mp, len) && (l->abs[len] == '/' || l->abs[len] == 0));
	if (inside && len >= l->bestlen && len < sizeof(l->best)) {
		memcpy(l->best, mp, len + 1);
		l->bestlen = len;
	}
	return 0;
}

int snapfs_locate(const char *path, char *root, size_t rootlen, char *rel, size_t rellen)
{
	char abs[PATH_MAX];
	if (!realpath(path, abs))
		return -1;
	/* the longest snapfs mount point holding abs (mount points are
	 * canonical paths; libmount undoes mountinfo's octal escapes) */
	struct locate l = {.abs = abs};
	if (snapfs_mounts(locate_one, &l))
		return -1;
	if (!l.bestlen) {
		errno = ENOTSUP;
		return -1;
	}
	const char *r = !strcmp(l.best, "/") ? abs + 1 : abs + l.bestlen;
	while (*r == '/')
		r++;
	if ((root && strlcpy(root, l.best, rootlen) >= rootlen) ||
	    (rel && strlcpy(rel, *r ? r : ".", rellen) >= rellen)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/*
 * Whether op takes a snapshot of live bytes or changes them behind the
 * kernel's back. A mount with the writeback cache (-o writeback) lets the
 * kernel hold written pages the daemon has not seen yet: these ops first
 * make the kernel send every dirty page of the mount (syncfs waits until
 * the daemon has answered each write), so that a snapshot has every byte a
 * write() returned before it, and a restore is not undone by older pages.
 */
static int op_needs_flush(uint32_t op)
{
	return op == SNAPFS_OP_PIN || op == SNAPFS_OP_FREEZE || op == SNAPFS_OP_RESTORE;
}

int snapfs_call_fd(int fd, struct snapfs_req *r)
{
	r->version = SNAPFS_PROTO_VERSION;
	if (op_needs_flush(r->op) && syncfs(fd))
		return -1;
	if (ioctl(fd, SNAPFS_IOC_CALL, r) < 0) {
		if (errno == ENOTTY || errno == EINVAL)
			errno = ENOTSUP;
		return -1;
	}
	if (r->status < 0) {
		errno = -r->status;
		return -1;
	}
	return 0;
}

int snapfs_call(const char *root, struct snapfs_req *r)
{
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = snapfs_call_fd(fd, r);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

struct snapfs_req *snapfs_req_new(uint32_t op)
{
	struct snapfs_req *r = calloc(1, sizeof(*r));
	if (r)
		r->op = op;
	return r;
}

int snapfs_pin_ex(const char *const paths[], size_t n, const char *label, unsigned flags,
		  int64_t expires, uint64_t *id)
{
	if (!paths || n == 0 || n > UINT32_MAX || (flags & ~SNAPFS_RECURSIVE) ||
	    (label && strlen(label) >= SNAPFS_PROTO_LABEL)) {
		errno = EINVAL;
		return -1;
	}
	struct snapfs_req *r = snapfs_req_new(SNAPFS_OP_PIN);
	if (!r)
		return -1;
	char root[PATH_MAX], first[PATH_MAX], rel[PATH_MAX];
	int rc = -1;
	for (size_t i = 0; i < n; i++) {
		if (snapfs_locate(paths[i], root, sizeof(root), rel, sizeof(rel)))
			goto out;
		if (i == 0)
			strlcpy(first, root, sizeof(first));
		else if (strcmp(first, root)) {
			errno = EXDEV;
			goto out;
		}
		size_t len = strlen(rel) + 1;
		if (r->len + len > sizeof(r->data)) {
			errno = E2BIG;
			goto out;
		}
		memcpy(r->data + r->len, rel, len);
		r->len += (uint32_t)len;
	}
	r->count = (uint32_t)n;
	r->flags = (flags & SNAPFS_RECURSIVE) ? SNAPFS_PIN_RECURSIVE : 0;
	r->expires = expires;
	if (label)
		strlcpy(r->label, label, sizeof(r->label));
	if (snapfs_call(first, r) == 0) {
		if (id)
			*id = r->id;
		rc = 0;
	}
out:
	free(r);
	return rc;
}

int snapfs_pin(const char *const paths[], size_t n, const char *label, uint64_t *id)
{
	return snapfs_pin_ex(paths, n, label, 0, 0, id);
}

int snapfs_release(const char *path_in_mount, uint64_t id)
{
	char root[PATH_MAX];
	if (snapfs_locate(path_in_mount, root, sizeof(root), NULL, 0))
		return -1;
	struct snapfs_req *r = snapfs_req_new(SNAPFS_OP_RELEASE);
	if (!r)
		return -1;
	r->id = id;
	int rc = snapfs_call(root, r);
	int e = errno;
	free(r);
	errno = e;
	return rc;
}

int snapfs_relabel(const char *path_in_mount, uint64_t id, const char *label)
{
	if (label && strlen(label) >= SNAPFS_PROTO_LABEL) {
		errno = EINVAL;
		return -1;
	}
	char root[PATH_MAX];
	if (snapfs_locate(path_in_mount, root, sizeof(root), NULL, 0))
		return -1;
	struct snapfs_req *r = snapfs_req_new(SNAPFS_OP_RELABEL);
	if (!r)
		return -1;
	r->id = id;
	if (label)
		strlcpy(r->label, label, sizeof(r->label));
	int rc = snapfs_call(root, r);
	int e = errno;
	free(r);
	errno = e;
	return rc;
}

int snapfs_freeze(int fd, uint64_t *id)
{
	char proc[PROCFD_PATH_LEN], root[PATH_MAX], view[2 * PATH_MAX];
	if (snapfs_locate(procfd_path(fd, proc), root, sizeof(root), NULL, 0))
		return -1;
	struct snapfs_req *r = snapfs_req_new(SNAPFS_OP_FREEZE);
	if (!r)
		return -1;
	int rc = -1, nfd = -1;
	off_t pos = lseek(fd, 0, SEEK_CUR);
	if (snapfs_call_fd(fd, r))
		goto out;
	/* Reopen through the snapshot view, then put it in fd's place: the
	 * view's inode has its own page cache, so fd can never be served the
	 * live file's cached pages. The reference the ioctl took on fd's open
	 * passes to the new open as fd's old open is closed by dup2. */
	if ((size_t)snprintf(view, sizeof(view), "%s/%s", strcmp(root, "/") ? root : "", r->data) >=
	    sizeof(view)) {
		errno = ENAMETOOLONG;
		goto out;
	}
	int fl = fcntl(fd, F_GETFD);
	nfd = open(view, O_RDONLY | ((fl > 0 && (fl & FD_CLOEXEC)) ? O_CLOEXEC : 0));
	if (nfd < 0 || (pos >= 0 && lseek(nfd, pos, SEEK_SET) < 0))
		goto out;
	if (dup3(nfd, fd, (fl > 0 && (fl & FD_CLOEXEC)) ? O_CLOEXEC : 0) < 0)
		goto out;
	if (id)
		*id = r->id;
	rc = 0;
out:
	if (nfd >= 0) {
		int e = errno;
		close(nfd);
		errno = e;
	}
	int e = errno;
	free(r);
	errno = e;
	return rc;
}

char *snapfs_mount_root(const char *path)
{
	char root[PATH_MAX];
	if (snapfs_locate(path, root, sizeof(root), NULL, 0))
		return NULL;
	return strdup(root);
}

char *snapfs_snapshot_path(const char *path, uint64_t id)
{
	char root[PATH_MAX], rel[PATH_MAX];
	if (snapfs_locate(path, root, sizeof(root), rel, sizeof(rel)))
		return NULL;
	struct snapfs_req *r = snapfs_req_new(SNAPFS_OP_INFO);
	if (!r)
		return NULL;
	char *out = NULL;
	if (snapfs_call(root, r) == 0 &&
	    asprintf(&out, "%s/%s/%llu%s%s", strcmp(root, "/") ? root : "", r->data,
		     (unsigned long long)id, strcmp(rel, ".") ? "/" : "",
		     strcmp(rel, ".") ? rel : "") < 0)
		out = NULL;
	int e = errno;
	free(r);
	errno = e;
	return out;
}

const char *snapfs_version(void)
{
	return SNAPFS_VERSION_STRING;
}

/*
 * The paged answers (LIST, SHOW, DIFF): send q again with each cursor the
 * daemon gives back, until it gives 0, and hand every page to page(). A
 * non-zero answer of page() stops the walk and is returned (a malformed
 * page answers -1 with errno EPROTO); a failed call is -1 with its errno.
 */
static int paged(const char *root, const struct snapfs_req *q,
		 int (*page)(struct rec_iter *it, void *ctx), void *ctx)
{
	struct snapfs_req *r = snapfs_req_new(q->op);
	if (!r)
		return -1;
	int ret = 0;
	for (uint64_t cursor = 0;;) {
		memcpy(r, q, sizeof(*r));
		r->cursor = cursor;
		if (snapfs_call(root, r)) {
			ret = -1;
			break;
		}
		struct rec_iter it;
		rec_iter_init(&it, r);
		if ((ret = page(&it, ctx)))
			break;
		if (!(cursor = r->cursor))
			break;
	}
	int e = errno;
	free(r);
	errno = e;
	return ret;
}

/* A page walker's answer for the end of the records: rc < 0 is a malformed
 * page. */
static int page_end(int rc)
{
	if (rc < 0) {
		errno = EPROTO;
		return -1;
	}
	return 0;
}

struct list_ctx {
	int (*fn)(const struct snapfs_snapshot *s, void *arg);
	void *arg;
};

static int list_page(struct rec_iter *it, void *ctx)
{
	struct list_ctx *l = ctx;
	struct snapfs_rec_snap s;
	int rc;
	while ((rc = rec_next_snap(it, &s)) > 0) {
		struct snapfs_snapshot o = {
		    .id = s.id,
		    .epoch = s.epoch,
		    .created = s.created,
		    .expires = s.expires,
		    .files = s.nfiles,
		    .bytes_held = s.bytes_held,
		    .uid = s.uid,
		    .flags =
			(s.kind ? SNAPFS_SNAP_EPHEMERAL : 0) | (s.state ? SNAPFS_SNAP_STALE : 0),
		    .label = s.label,
		};
		int stop = l->fn(&o, l->arg);
		if (stop)
			return stop;
	}
	return page_end(rc);
}

/* Checks fn, finds the mount of path_in_mount and makes the request. */
static struct snapfs_req *paged_req(const char *path_in_mount, const void *fn, uint32_t op,
				    char *root, size_t rootlen)
{
	if (!fn) {
		errno = EINVAL;
		return NULL;
	}
	if (snapfs_locate(path_in_mount, root, rootlen, NULL, 0))
		return NULL;
	return snapfs_req_new(op);
}

int snapfs_list(const char *path_in_mount, int (*fn)(const struct snapfs_snapshot *s, void *arg),
		void *arg)
{
	char root[PATH_MAX];
	struct snapfs_req *q =
	    paged_req(path_in_mount, (const void *)fn, SNAPFS_OP_LIST, root, sizeof(root));
	if (!q)
		return -1;
	struct list_ctx l = {fn, arg};
	int rc = paged(root, q, list_page, &l);
	int e = errno;
	free(q);
	errno = e;
	return rc;
}

struct show_ctx {
	int (*fn)(const struct snapfs_file *f, void *arg);
	void *arg;
};

static int show_page(struct rec_iter *it, void *ctx)
{
	struct show_ctx *sc = ctx;
	struct snapfs_rec_file f;
	const char *path;
	int rc;
	while ((rc = rec_next_file(it, &f, &path)) > 0) {
		struct snapfs_file o = {path, f.size, f.mtime, f.mode, f.uid, f.gid};
		int stop = sc->fn(&o, sc->arg);
		if (stop)
			return stop;
	}
	return page_end(rc);
}

int snapfs_show(const char *path_in_mount, uint64_t id,
		int (*fn)(const struct snapfs_file *f, void *arg), void *arg)
{
	char root[PATH_MAX];
	struct snapfs_req *q =
	    paged_req(path_in_mount, (const void *)fn, SNAPFS_OP_SHOW, root, sizeof(root));
	if (!q)
		return -1;
	q->id = id;
	struct show_ctx sc = {fn, arg};
	int rc = paged(root, q, show_page, &sc);
	int e = errno;
	free(q);
	errno = e;
	return rc;
}

struct diff_ctx {
	int (*fn)(const struct snapfs_change *c, void *arg);
	void *arg;
};

static int diff_page(struct rec_iter *it, void *ctx)
{
	struct diff_ctx *dc = ctx;
	struct snapfs_rec_diff d;
	const void *ranges;
	const char *path;
	int rc, ret = 0;
	while (!ret && (rc = rec_next_diff(it, &d, &ranges, &path)) > 0) {
		struct snapfs_change c = {.path = path, .size = d.size, .error = -d.status};
		if (d.status)
			ret = dc->fn(&c, dc->arg);
		for (uint32_t k = 0; !ret && k < d.nranges; k++) {
			struct snapfs_range rg = rec_range(ranges, k);
			c.offset = rg.off;
			c.length = rg.len;
			ret = dc->fn(&c, dc->arg);
		}
	}
	return ret ? ret : page_end(rc);
}

int snapfs_diff(const char *path_in_mount, uint64_t id, const char *const paths[], size_t n,
		int (*fn)(const struct snapfs_change *c, void *arg), void *arg)
{
	char root[PATH_MAX];
	if ((n && !paths) || n > UINT32_MAX) {
		errno = EINVAL;
		return -1;
	}
	struct snapfs_req *q =
	    paged_req(path_in_mount, (const void *)fn, SNAPFS_OP_DIFF, root, sizeof(root));
	if (!q)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		size_t len = strlen(paths[i]) + 1;
		if (q->len + len > sizeof(q->data)) {
			errno = E2BIG;
			rc = -1;
			break;
		}
		memcpy(q->data + q->len, paths[i], len);
		q->len += (uint32_t)len;
	}
	q->count = (uint32_t)n;
	q->id = id;
	struct diff_ctx dc = {fn, arg};
	if (rc == 0)
		rc = paged(root, q, diff_page, &dc);
	int e = errno;
	free(q);
	errno = e;
	return rc;
}

struct lookup {
	const char *label;
	uint64_t id;
};

static int lookup_one(const struct snapfs_snapshot *s, void *arg)
{
	struct lookup *l = arg;
	if (!strcmp(s->label, l->label) && s->id > l->id)
		l->id = s->id;
	return 0;
}

int snapfs_lookup(const char *path_in_mount, const char *label, uint64_t *id)
{
	if (!label || !*label || !id) {
		errno = EINVAL;
		return -1;
	}
	struct lookup l = {label, 0};
	if (snapfs_list(path_in_mount, lookup_one, &l))
		return -1;
	if (!l.id) {
		errno = ENOENT;
		return -1;
	}
	*id = l.id;
	return 0;
}
