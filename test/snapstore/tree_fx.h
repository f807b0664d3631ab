/* SPDX-License-Identifier: MIT */
/*
 * Tree-snapshot helpers shared by the tree tests: the daemon's side of the
 * hooks (attributes of a live node, save-if-needed) and manifests of a tree
 * (one line per node: path, type, mode, owner, size, link count, symlink
 * target, trusted.* xattrs, content hash, and for hard-linked files the first
 * path of the same node), built from the live tree or from a tree snapshot
 * through the read API plus the live nodes it defers to, opened by handle.
 */
#ifndef SNAPSTORE_TREE_FX_H
#define SNAPSTORE_TREE_FX_H

#include <dirent.h>
#include <fcntl.h>
#include <sys/xattr.h>

#include "fixture.h"

/* Test paths are short; truncation would show as a mismatch anyway. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#define TF_BUF 16384

/* ---- packed xattrs ---- */

static int tf_cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The trusted.* xattrs of path (following), packed and sorted into out. */
static size_t tf_xattrs(const char *path, char *out, size_t cap)
{
	char names[4096], *v[64];
	ssize_t n = listxattr(path, names, sizeof(names));
	size_t k = 0, len = 0;
	for (ssize_t i = 0; n > 0 && i < n; i += (ssize_t)strlen(names + i) + 1)
		if (!strncmp(names + i, "trusted.", 8) && k < 64)
			v[k++] = names + i;
	qsort(v, k, sizeof(*v), tf_cmpstr);
	for (size_t i = 0; i < k; i++) {
		size_t nl = strlen(v[i]) + 1;
		char val[256];
		ssize_t vl = getxattr(path, v[i], val, sizeof(val));
		cr_assert(vl >= 0, "getxattr %s %s: %s", path, v[i], strerror(errno));
		uint32_t l = (uint32_t)vl;
		cr_assert(len + nl + 4 + l <= cap);
		memcpy(out + len, v[i], nl);
		memcpy(out + len + nl, &l, 4);
		memcpy(out + len + nl + 4, val, l);
		len += nl + 4 + l;
	}
	return len;
}

/* The attributes of the live node open as fd (O_PATH is fine); target and
 * xattrs into buf. */
static void tf_live_attr(int fd, struct store_attr *a, char *buf, size_t cap)
{
	struct stat sb;
	cr_assert_eq(fstat(fd, &sb), 0);
	*a = (struct store_attr){.mode = sb.st_mode,
				 .uid = sb.st_uid,
				 .gid = sb.st_gid,
				 .nlink = sb.st_nlink,
				 .size = (uint64_t)sb.st_size,
				 .rdev = sb.st_rdev,
				 .ino = sb.st_ino,
				 .atime = sb.st_atim,
				 .mtime = sb.st_mtim,
				 .ctime = sb.st_ctim};
	if (S_ISLNK(sb.st_mode)) {
		ssize_t n = readlinkat(fd, "", buf, cap);
		cr_assert(n >= 0, "readlinkat: %s", strerror(errno));
		a->target = buf;
		a->target_len = (uint32_t)n;
		return;
	}
	char p[64];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	size_t xl = tf_xattrs(p, buf, cap);
	a->xattrs = xl ? buf : NULL;
	a->xattrs_len = (uint32_t)xl;
}

/* The daemon's step before changing node sf (open as fd, O_PATH is fine):
 * save its attributes when a tree snapshot needs them. */
static int tf_save(struct store_file *sf, int fd)
{
	int need = store_ns_need(sf);
	if (need <= 0)
		return need;
	struct store_attr a;
	char *buf = malloc(TF_BUF);
	cr_assert_not_null(buf);
	tf_live_attr(fd, &a, buf, TF_BUF);
	int rc = store_ns_save(sf, fd, &a);
	free(buf);
	return rc;
}

/* ---- manifests ---- */

struct tf_line {
	char *path;
	char type;
	unsigned perm, uid;
	uint64_t size, nlink;
	char *rest; /* target, xattrs hex, content hash */
	char key[300];
};

struct tf_man {
	struct tf_line *l;
	size_t n, cap;
};

static uint64_t tf_hash(const void *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211ull;
	return h;
}

static char tf_type(uint32_t mode)
{
	return S_ISDIR(mode) ? 'd' : S_ISREG(mode) ? 'f' : S_ISLNK(mode) ? 'l' : '?';
}

/* One node: mode, uid, nlink, size; target (symlinks), packed xattrs, bytes
 * (regular files); key: the node's identity (for hard links). */
static void tf_emit(struct tf_man *m, const char *path, uint32_t mode, uint32_t uid, uint64_t nlink,
		    const char *target, size_t tlen, const void *xa, size_t xlen, const void *data,
		    size_t size, const char *key)
{
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 64;
		m->l = realloc(m->l, m->cap * sizeof(*m->l));
		cr_assert_not_null(m->l);
	}
	struct tf_line *l = &m->l[m->n++];
	memset(l, 0, sizeof(*l));
	l->path = strdup(path);
	l->type = tf_type(mode);
	l->perm = mode & 07777;
	l->uid = uid;
	l->nlink = nlink;
	l->size = S_ISREG(mode) ? size : 0;
	char *rest = malloc(2 * xlen + tlen + 64);
	cr_assert_not_null(rest);
	size_t k = (size_t)sprintf(rest, "t=%.*s x=", (int)tlen, target ? target : "");
	if (!S_ISLNK(mode))
		for (size_t i = 0; i < xlen; i++)
			k += (size_t)sprintf(rest + k, "%02x", ((const unsigned char *)xa)[i]);
	sprintf(rest + k, " h=%016llx",
		S_ISREG(mode) ? (unsigned long long)tf_hash(data, size) : 0ull);
	l->rest = rest;
	snprintf(l->key, sizeof(l->key), "%s", key);
}

static int tf_line_cmp(const void *a, const void *b)
{
	return strcmp(((const struct tf_line *)a)->path, ((const struct tf_line *)b)->path);
}

/* The manifest as one string (to free): lines sorted by path; a regular file
 * with several links names the first path of its node. */
static char *tf_finish(struct tf_man *m)
{
	qsort(m->l, m->n, sizeof(*m->l), tf_line_cmp);
	size_t cap = 1, len = 0;
	for (size_t i = 0; i < m->n; i++)
		cap += strlen(m->l[i].path) * 2 + strlen(m->l[i].rest) + 128;
	char *out = malloc(cap);
	cr_assert_not_null(out);
	out[0] = 0;
	for (size_t i = 0; i < m->n; i++) {
		struct tf_line *l = &m->l[i];
		const char *first = "-";
		if (l->type == 'f' && l->nlink > 1)
			for (size_t j = 0; j <= i; j++)
				if (!strcmp(m->l[j].key, l->key)) {
					first = m->l[j].path;
					break;
				}
		len +=
		    (size_t)snprintf(out + len, cap - len, "%s %c %o %u %llu %llu %s L=%s\n",
				     l->path, l->type, l->perm, l->uid, (unsigned long long)l->size,
				     (unsigned long long)l->nlink, l->rest, first);
	}
	for (size_t i = 0; i < m->n; i++) {
		free(m->l[i].path);
		free(m->l[i].rest);
	}
	free(m->l);
	memset(m, 0, sizeof(*m));
	return out;
}

static void tf_join(char *out, size_t len, const char *dir, const char *name)
{
	if (!strcmp(dir, "."))
		snprintf(out, len, "%s", name);
	else
		snprintf(out, len, "%s/%s", dir, name);
}

static unsigned char *tf_read_live(int fd, size_t size)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	int rfd = open(p, O_RDONLY);
	cr_assert(rfd >= 0, "reopen: %s", strerror(errno));
	unsigned char *d = malloc(size + 1);
	cr_assert_not_null(d);
	cr_assert_eq(pread(rfd, d, size, 0), (ssize_t)size);
	close(rfd);
	return d;
}

/* The live tree under the directory open as dfd (path "." for it). */
static void tf_live_walk(struct tf_man *m, int dfd, const char *path)
{
	struct store_attr a;
	char *buf = malloc(TF_BUF), key[64];
	cr_assert_not_null(buf);
	tf_live_attr(dfd, &a, buf, TF_BUF);
	snprintf(key, sizeof(key), "i%llu", (unsigned long long)a.ino);
	tf_emit(m, path, a.mode, a.uid, a.nlink, NULL, 0, a.xattrs, a.xattrs_len, NULL, 0, key);
	int rfd = openat(dfd, ".", O_RDONLY | O_DIRECTORY);
	cr_assert(rfd >= 0);
	DIR *d = fdopendir(rfd);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char cp[1024];
		tf_join(cp, sizeof(cp), path, de->d_name);
		int cfd = openat(dfd, de->d_name, O_PATH | O_NOFOLLOW);
		cr_assert(cfd >= 0, "%s: %s", cp, strerror(errno));
		struct stat sb;
		cr_assert_eq(fstat(cfd, &sb), 0);
		if (S_ISDIR(sb.st_mode)) {
			tf_live_walk(m, cfd, cp);
		} else {
			tf_live_attr(cfd, &a, buf, TF_BUF);
			unsigned char *data =
			    S_ISREG(sb.st_mode) ? tf_read_live(cfd, a.size) : NULL;
			snprintf(key, sizeof(key), "i%llu", (unsigned long long)a.ino);
			tf_emit(m, cp, a.mode, a.uid, a.nlink, a.target, a.target_len, a.xattrs,
				a.xattrs_len, data, a.size, key);
			free(data);
		}
		close(cfd);
	}
	closedir(d);
	free(buf);
}

static char *tf_live_manifest(const char *root)
{
	struct tf_man m = {0};
	int fd = open(root, O_PATH | O_DIRECTORY);
	cr_assert(fd >= 0);
	tf_live_walk(&m, fd, ".");
	close(fd);
	return tf_finish(&m);
}

/* ---- a tree snapshot, through the read API ---- */

struct tf_snap {
	struct store *st;
	uint64_t id;
	struct tf_man m;
	const char *ctx; /* for messages */
};

static void tf_handle_key(char *key, size_t len, int type, const unsigned char *h, uint32_t hl)
{
	size_t k = (size_t)snprintf(key, len, "%d:", type);
	for (uint32_t i = 0; i < hl && k + 3 < len; i++)
		k += (size_t)snprintf(key + k, len - k, "%02x", h[i]);
}

struct tf_ent {
	char name[256];
	uint64_t child;
	uint32_t type;
};

struct tf_ents {
	struct tf_ent *e;
	size_t n, cap;
};

static int tf_ent_cb(void *arg, const char *name, uint64_t child, uint32_t type)
{
	struct tf_ents *r = arg;
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		r->e = realloc(r->e, r->cap * sizeof(*r->e));
		cr_assert_not_null(r->e);
	}
	cr_assert(!r->n || strcmp(r->e[r->n - 1].name, name) < 0, "entries not in name order");
	snprintf(r->e[r->n].name, sizeof(r->e[r->n].name), "%s", name);
	r->e[r->n].child = child;
	r->e[r->n++].type = type;
	return 0;
}

/* Node at path: reached through a saved entry (nid, livefd -1) or through a
 * live entry (livefd: O_PATH, owned by the caller). */
static void tf_snap_visit(struct tf_snap *c, const char *path, uint64_t nid, int livefd)
{
	struct store_attr a;
	char *buf = malloc(TF_BUF), key[300];
	cr_assert_not_null(buf);
	struct store_file *sf = NULL;
	int rc, ownfd = -1;
	if (livefd >= 0) {
		cr_assert_eq(store_file_get(c->st, livefd, &sf), 0);
		cr_assert_eq(store_ns_nid(sf, &nid), 0);
		rc = store_tree_attr(c->st, c->id, sf, &a, buf, TF_BUF);
	} else {
		rc = store_tree_attr_fid(c->st, c->id, nid, &a, buf, TF_BUF);
	}
	cr_assert(rc == 0 || rc == 1, "%s: %s: tree_attr: %s", c->ctx, path, strerror(-rc));
	if (rc == 1 && livefd < 0) {
		livefd = ownfd = store_fid_open(c->st, nid, O_PATH | O_NOFOLLOW);
		cr_assert(ownfd >= 0, "%s: %s: fid_open %llu: %s", c->ctx, path,
			  (unsigned long long)nid, strerror(-ownfd));
	}
	if (rc == 1)
		tf_live_attr(livefd, &a, buf, TF_BUF);
	if (nid) {
		unsigned char h[256];
		uint32_t hl = sizeof(h);
		int ht;
		cr_assert_eq(store_fid_handle(c->st, nid, h, &hl, &ht), 0);
		tf_handle_key(key, sizeof(key), ht, h, hl);
	} else {
		union {
			struct file_handle fh;
			char b[sizeof(struct file_handle) + MAX_HANDLE_SZ];
		} u;
		int mnt;
		u.fh.handle_bytes = MAX_HANDLE_SZ;
		cr_assert_eq(name_to_handle_at(livefd, "", &u.fh, &mnt, AT_EMPTY_PATH), 0);
		tf_handle_key(key, sizeof(key), u.fh.handle_type, u.fh.f_handle, u.fh.handle_bytes);
	}
	unsigned char *data = NULL;
	if (S_ISREG(a.mode)) {
		if (nid) {
			data = malloc(a.size + 1);
			cr_assert_not_null(data);
			ssize_t n = store_tree_read(c->st, c->id, nid, a.size, data, a.size + 1, 0);
			cr_assert_eq(n, (ssize_t)a.size, "%s: %s: tree_read %zd of %llu (%s)",
				     c->ctx, path, n, (unsigned long long)a.size,
				     n < 0 ? strerror((int)-n) : "");
		} else {
			cr_assert(livefd >= 0);
			data = tf_read_live(livefd, a.size);
		}
	}
	tf_emit(&c->m, path, a.mode, a.uid, a.nlink, a.target, a.target_len, a.xattrs, a.xattrs_len,
		data, a.size, key);
	free(data);
	if (S_ISDIR(a.mode)) {
		struct tf_ents r = {0};
		cr_assert_eq(store_tree_entries(c->st, c->id, nid, tf_ent_cb, &r), 0);
		int dfd = -1;
		if (livefd >= 0)
			dfd = openat(livefd, ".", O_RDONLY | O_DIRECTORY);
		else if (nid)
			dfd = store_fid_open(c->st, nid, O_RDONLY | O_DIRECTORY);
		if (dfd >= 0) {
			DIR *d = fdopendir(dfd);
			struct dirent *de;
			while ((de = readdir(d))) {
				if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
					continue;
				int saved = 0;
				for (size_t i = 0; i < r.n && !saved; i++)
					saved = !strcmp(r.e[i].name, de->d_name);
				if (saved)
					continue;
				uint64_t cf;
				uint32_t ct;
				cr_assert_eq(
				    store_tree_lookup(c->st, c->id, nid, de->d_name, &cf, &ct), 1);
				char cp[1024];
				tf_join(cp, sizeof(cp), path, de->d_name);
				int cfd = openat(dirfd(d), de->d_name, O_PATH | O_NOFOLLOW);
				cr_assert(cfd >= 0);
				tf_snap_visit(c, cp, 0, cfd);
				close(cfd);
			}
			closedir(d);
		}
		for (size_t i = 0; i < r.n; i++) {
			uint64_t cf = 0;
			uint32_t ct = 0;
			cr_assert_eq(store_tree_lookup(c->st, c->id, nid, r.e[i].name, &cf, &ct),
				     0);
			cr_assert_eq(cf, r.e[i].child);
			if (!r.e[i].child)
				continue;
			char cp[1024];
			tf_join(cp, sizeof(cp), path, r.e[i].name);
			tf_snap_visit(c, cp, r.e[i].child, -1);
		}
		free(r.e);
	}
	if (ownfd >= 0)
		close(ownfd);
	store_file_put(sf);
	free(buf);
}

static char *tf_snap_manifest(struct store *st, uint64_t id, const char *ctx)
{
	struct tf_snap c = {.st = st, .id = id, .ctx = ctx};
	uint64_t root = 0;
	char path[512];
	cr_assert_eq(store_snap_is_tree(st, id, &root, path, sizeof(path)), 1);
	tf_snap_visit(&c, ".", root, -1);
	return tf_finish(&c.m);
}

/* Where two manifests first differ, for messages. */
static void tf_expect_same(const char *want, const char *got, const char *ctx)
{
	if (!strcmp(want, got))
		return;
	size_t i = 0;
	while (want[i] && want[i] == got[i])
		i++;
	while (i && want[i - 1] != '\n')
		i--;
	cr_assert_fail("%s: manifests differ at\nwant: %.300s\ngot:  %.300s", ctx, want + i,
		       got + i);
}

#endif
