// SPDX-License-Identifier: MIT
/*
 * The tree engine's comparison: walk two trees with openat/fstatat (no
 * process per entry; names sorted per directory, so both sides come out
 * in the same path order), pair their nodes, and name what changed, as
 * zfs diff does. Pairing goes in three steps: (1) the same path and the
 * same identity; (2) among the rest, nodes of one identity gone from
 * their paths are matched with the same identity's new paths (renames,
 * in path order, so a hard link that moved pairs with its new name);
 * (3) what is left at the same path on both sides pairs as "the same
 * entry" whatever its identity (an editor's write-and-rename is a change
 * of bytes, not a removal and a creation), unless the type differs or
 * hard links are involved (then the node is replaced). A rename whose
 * parents are paired with each other under the same name follows from
 * the parent's and is not listed. Content is compared in TREE_BLOCK
 * blocks for every paired regular file, unless TREE_TRUST_CTIME and
 * nothing about the node (identity, ctime, size, mtime) changed.
 *
 * What to watch for: the walk reads the trees while they may change;
 * the result is what was seen. Paths are byte strings: no newline or
 * encoding is assumed.
 */
#include "tree_i.h"
#include "fullio.h"
#include "vec.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

const char *const tree_field_names[] = {"type",	  "mode",  "owner", "size", "mtime",
					"target", "xattr", "data",  "rdev", "link"};

int tree_path_cmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		unsigned char x = (unsigned char)*a, y = (unsigned char)*b;
		if (x == '/')
			x = 1;
		if (y == '/')
			y = 1;
		if (x != y || !x)
			return (int)x - (int)y;
	}
}

int tree_full(const struct tside *s, const char *rel, char *buf, size_t len)
{
	int n =
	    *rel ? snprintf(buf, len, "%s/%s", s->root, rel) : snprintf(buf, len, "%s", s->root);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* ---- the walk ---- */

typedef int (*walk_fn)(void *arg, const char *path, size_t depth, const struct stat *st,
		       const char *target);

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int visit(int dfd, const char *name, char *path, size_t plen, size_t depth,
		 const struct stat *st, walk_fn fn, void *arg);

/* The entries of the directory dfd (path), sorted, each visited. Takes dfd. */
static int walk_dir(int dfd, char *path, size_t plen, size_t depth, const char *exclude, walk_fn fn,
		    void *arg)
{
	DIR *dir = fdopendir(dfd);
	if (!dir) {
		int e = -errno;
		close(dfd);
		return e;
	}
	struct {
		char **v;
		size_t n, alloc;
	} names = {0};
	int rc = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (exclude && !strcmp(de->d_name, exclude))
			continue;
		char *c = strdup(de->d_name);
		if (!c || vec_push(&names, c)) {
			free(c);
			rc = -ENOMEM;
			goto out_free;
		}
		errno = 0;
	}
	if (errno) {
		rc = -errno;
		goto out_free;
	}
	if (names.n)
		qsort(names.v, names.n, sizeof(*names.v), name_cmp);
	for (size_t i = 0; i < names.n && rc == 0; i++) {
		size_t nlen = strlen(names.v[i]);
		size_t at = plen ? plen + 1 : 0;
		if (at + nlen >= PATH_MAX) {
			rc = -ENAMETOOLONG;
			break;
		}
		if (plen)
			path[plen] = '/';
		memcpy(path + at, names.v[i], nlen + 1);
		struct stat st;
		if (fstatat(dirfd(dir), names.v[i], &st, AT_SYMLINK_NOFOLLOW)) {
			rc = errno == ENOENT ? 0 : -errno; /* raced with a removal */
			continue;
		}
		rc = visit(dirfd(dir), names.v[i], path, at + nlen, depth, &st, fn, arg);
	}
	path[plen] = 0;
out_free:
	for (size_t i = 0; i < names.n; i++)
		free(names.v[i]);
	vec_release(&names);
	closedir(dir);
	return rc;
}

/* One node (name in dfd, at path of length plen) and, for a directory,
 * what is under it. */
static int visit(int dfd, const char *name, char *path, size_t plen, size_t depth,
		 const struct stat *st, walk_fn fn, void *arg)
{
	char target[PATH_MAX + 1];
	const char *t = NULL;
	if (S_ISLNK(st->st_mode)) {
		ssize_t n = readlinkat(dfd, name, target, PATH_MAX);
		if (n < 0)
			return -errno;
		target[n] = 0;
		t = target;
	}
	int rc = fn(arg, path, depth, st, t);
	if (rc || !S_ISDIR(st->st_mode))
		return rc;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return walk_dir(fd, path, plen, depth + 1, NULL, fn, arg);
}

/* The subtree sub of rootfd: -ENOENT when it is not there. */
static int walk_sub(int rootfd, const char *sub, const char *exclude, walk_fn fn, void *arg)
{
	char path[PATH_MAX];
	if (strlen(sub) >= sizeof(path))
		return -ENAMETOOLONG;
	strcpy(path, sub);
	struct stat st;
	if (fstatat(rootfd, tree_at(sub), &st, AT_SYMLINK_NOFOLLOW))
		return -errno;
	if (*sub)
		return visit(rootfd, sub, path, strlen(path), 0, &st, fn, arg);
	int rc = fn(arg, path, 0, &st, NULL);
	if (rc || !S_ISDIR(st.st_mode))
		return rc;
	int fd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return walk_dir(fd, path, 0, 1, exclude, fn, arg);
}

static int sub_cmp(const void *a, const void *b)
{
	return tree_path_cmp(*(char *const *)a, *(char *const *)b);
}

static bool under(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return !n || (!strncmp(path, dir, n) && (!path[n] || path[n] == '/'));
}

/* Normalized copies of subs ("./a/" is "a", "." is ""), sorted, without
 * those inside another. */
static int subs_norm(const char *const *subs, size_t nsubs, char ***out, size_t *nout)
{
	static const char *const all[] = {""};
	if (!nsubs)
		subs = all, nsubs = 1;
	char **v = calloc(nsubs, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < nsubs; i++) {
		const char *p = subs[i];
		while (p[0] == '.' && p[1] == '/')
			p += 2;
		while (*p == '/')
			p++;
		if (!strcmp(p, "."))
			p = "";
		if (!(v[i] = strdup(p))) {
			for (size_t k = 0; k < i; k++)
				free(v[k]);
			free(v);
			return -ENOMEM;
		}
		size_t n = strlen(v[i]);
		while (n && v[i][n - 1] == '/')
			v[i][--n] = 0;
	}
	qsort(v, nsubs, sizeof(*v), sub_cmp);
	size_t k = 0;
	for (size_t i = 0; i < nsubs; i++) {
		if (k && under(v[i], v[k - 1]))
			free(v[i]);
		else
			v[k++] = v[i];
	}
	*out = v;
	*nout = k;
	return 0;
}

struct pub_walk {
	int (*fn)(void *arg, const char *path, const struct stat *st, const char *target);
	void *arg;
};

static int pub_cb(void *arg, const char *path, size_t depth, const struct stat *st,
		  const char *target)
{
	struct pub_walk *w = arg;
	return w->fn(w->arg, path, st, target);
}

int tree_walk(const char *root, const char *const *subs, size_t nsubs, const char *exclude,
	      int (*fn)(void *arg, const char *path, const struct stat *st, const char *target),
	      void *arg)
{
	char **v;
	size_t n;
	int rc = subs_norm(subs, nsubs, &v, &n);
	if (rc)
		return rc;
	int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		rc = -errno;
	struct pub_walk w = {fn, arg};
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = walk_sub(rootfd, v[i], exclude, pub_cb, &w);
	if (rootfd >= 0)
		close(rootfd);
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
	return rc;
}

/* ---- collecting a side ---- */

struct collect {
	struct tside *s;
	const struct tree_opts *o;
	int side;
	struct {
		size_t *v;
		size_t n, alloc;
	} stack; /* the open directories' indices, by depth */
};

static int collect_cb(void *arg, const char *path, size_t depth, const struct stat *st,
		      const char *target)
{
	struct collect *c = arg;
	struct tnode n = {.st = *st, .pair = -1, .parent = -1};
	if (!(n.path = strdup(path)))
		return -ENOMEM;
	const char *slash = strrchr(n.path, '/');
	n.name = slash ? slash + 1 : n.path;
	if (target && !(n.target = strdup(target))) {
		free(n.path);
		return -ENOMEM;
	}
	n.ident = c->o->ident(c->o->ident_arg, c->side, st);
	c->stack.n = depth < c->stack.n ? depth : c->stack.n;
	if (depth && c->stack.n == depth)
		n.parent = (ssize_t)c->stack.v[depth - 1];
	n.end = c->s->nodes.n + 1;
	if (vec_push(&c->s->nodes, n)) {
		free(n.path);
		free(n.target);
		return -ENOMEM;
	}
	if (S_ISDIR(st->st_mode) && vec_push(&c->stack, c->s->nodes.n - 1))
		return -ENOMEM;
	return 0;
}

static int id_cmp(const void *a, const void *b, void *arg)
{
	const struct tnode *v = arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	uint64_t p = v[x].ident, q = v[y].ident;
	return p < q ? -1 : p > q ? 1 : x < y ? -1 : x > y;
}

size_t tree_id_first(const struct tside *s, uint64_t ident)
{
	size_t lo = 0, hi = s->byid.n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->nodes.v[s->byid.v[mid]].ident < ident)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int side_load(struct tree_diff *d, int side, bool *found)
{
	struct tside *s = &d->side[side];
	s->rootfd = open(s->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->rootfd < 0)
		return -errno;
	struct collect c = {.s = s, .o = &d->o, .side = side};
	int rc = 0;
	for (size_t i = 0; i < d->nsubs && rc == 0; i++) {
		c.stack.n = 0;
		size_t before = s->nodes.n;
		rc = walk_sub(s->rootfd, d->subs[i], side == TREE_TO ? d->o.exclude : NULL,
			      collect_cb, &c);
		if (rc == -ENOENT && s->nodes.n == before)
			rc = 0;
		else if (rc == 0)
			found[i] = true;
	}
	vec_release(&c.stack);
	if (rc)
		return rc;
	struct tnode *v = s->nodes.v;
	if (!s->nodes.n)
		return 0;
	for (size_t i = s->nodes.n; i-- > 0;)
		if (v[i].parent >= 0 && v[v[i].parent].end < v[i].end)
			v[v[i].parent].end = v[i].end;
	if (vec_reserve(&s->byid, s->nodes.n))
		return -ENOMEM;
	for (size_t i = 0; i < s->nodes.n; i++)
		s->byid.v[s->byid.n++] = i;
	qsort_r(s->byid.v, s->byid.n, sizeof(size_t), id_cmp, v);
	for (size_t i = 0; i < s->byid.n;) {
		size_t j = i;
		while (j < s->byid.n && v[s->byid.v[j]].ident == v[s->byid.v[i]].ident)
			j++;
		for (size_t k = i; k < j; k++) {
			v[s->byid.v[k]].group = s->byid.v[i];
			v[s->byid.v[k]].gsize = j - i;
		}
		i = j;
	}
	return 0;
}

/* ---- pairing ---- */

static void pair(struct tree_diff *d, size_t f, size_t t, unsigned flags)
{
	d->side[TREE_FROM].nodes.v[f].pair = (ssize_t)t;
	d->side[TREE_FROM].nodes.v[f].pflags = flags;
	d->side[TREE_TO].nodes.v[t].pair = (ssize_t)f;
	d->side[TREE_TO].nodes.v[t].pflags = flags;
}

/* Walk both sides in path order; fn on every path present on both. */
static void merge(struct tree_diff *d, void (*fn)(struct tree_diff *d, size_t f, size_t t))
{
	const struct tside *a = &d->side[TREE_FROM], *b = &d->side[TREE_TO];
	size_t i = 0, j = 0;
	while (i < a->nodes.n && j < b->nodes.n) {
		int c = tree_path_cmp(a->nodes.v[i].path, b->nodes.v[j].path);
		if (c == 0)
			fn(d, i, j);
		i += c <= 0;
		j += c >= 0;
	}
}

static void pair_same(struct tree_diff *d, size_t f, size_t t)
{
	if (d->side[TREE_FROM].nodes.v[f].ident == d->side[TREE_TO].nodes.v[t].ident)
		pair(d, f, t, 0);
}

static void pair_rest(struct tree_diff *d, size_t f, size_t t)
{
	struct tnode *a = &d->side[TREE_FROM].nodes.v[f], *b = &d->side[TREE_TO].nodes.v[t];
	if (a->pair >= 0 || b->pair >= 0)
		return;
	unsigned flags = 0;
	if ((a->st.st_mode & S_IFMT) != (b->st.st_mode & S_IFMT))
		flags = PAIR_REPLACE;
	else if (!S_ISDIR(a->st.st_mode) && (a->gsize > 1 || b->gsize > 1))
		flags = PAIR_REPLACE; /* hard links: only a new link makes them right */
	else if ((S_ISCHR(a->st.st_mode) || S_ISBLK(a->st.st_mode)) &&
		 a->st.st_rdev != b->st.st_rdev)
		flags = PAIR_REPLACE;
	pair(d, f, t, flags);
}

/* Step 2: per identity, its FROM paths that lost it with its TO paths
 * that gained it, in path order. */
static void pair_renames(struct tree_diff *d)
{
	struct tside *a = &d->side[TREE_FROM], *b = &d->side[TREE_TO];
	for (size_t i = 0; i < a->byid.n;) {
		uint64_t id = a->nodes.v[a->byid.v[i]].ident;
		size_t iend = i;
		while (iend < a->byid.n && a->nodes.v[a->byid.v[iend]].ident == id)
			iend++;
		size_t j = tree_id_first(b, id);
		while (i < iend && j < b->byid.n && b->nodes.v[b->byid.v[j]].ident == id) {
			struct tnode *x = &a->nodes.v[a->byid.v[i]], *y = &b->nodes.v[b->byid.v[j]];
			if (x->pair >= 0) {
				i++;
			} else if (y->pair >= 0) {
				j++;
			} else {
				if ((x->st.st_mode & S_IFMT) == (y->st.st_mode & S_IFMT))
					pair(d, a->byid.v[i], b->byid.v[j], PAIR_RENAME);
				i++, j++;
			}
		}
		i = iend;
	}
	for (size_t f = 0; f < a->nodes.n; f++) {
		struct tnode *x = &a->nodes.v[f];
		if (x->pair < 0 || !(x->pflags & PAIR_RENAME) || x->parent < 0)
			continue;
		struct tnode *y = &b->nodes.v[x->pair];
		if (y->parent >= 0 && a->nodes.v[x->parent].pair == y->parent &&
		    !strcmp(x->name, y->name)) {
			x->pflags |= PAIR_IMPLIED;
			y->pflags |= PAIR_IMPLIED;
		}
	}
}

/* ---- comparing a pair ---- */

static int xattr_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int tree_xattrs(const char *path, char **out, size_t *outlen)
{
	*out = NULL;
	*outlen = 0;
	ssize_t n = llistxattr(path, NULL, 0);
	if (n < 0)
		return errno == ENOTSUP ? 0 : -errno;
	if (n == 0)
		return 0;
	char *names = malloc((size_t)n);
	if (!names)
		return -ENOMEM;
	if ((n = llistxattr(path, names, (size_t)n)) < 0) {
		free(names);
		return -errno;
	}
	struct {
		char **v;
		size_t n, alloc;
	} user = {0};
	int rc = 0;
	for (char *p = names; p < names + n; p += strlen(p) + 1)
		if (!strncmp(p, "user.", 5) && (rc = vec_push(&user, p)))
			goto out;
	if (user.n)
		qsort(user.v, user.n, sizeof(char *), xattr_name_cmp);
	char *blob = NULL;
	size_t len = 0;
	for (size_t i = 0; i < user.n; i++) {
		ssize_t vl = lgetxattr(path, user.v[i], NULL, 0);
		if (vl < 0) {
			if (errno == ENODATA)
				continue;
			rc = -errno;
			break;
		}
		char num[24];
		size_t nl = strlen(user.v[i]) + 1;
		int numl = snprintf(num, sizeof(num), "%zd", vl) + 1;
		char *nb = realloc(blob, len + nl + (size_t)numl + (size_t)vl);
		if (!nb) {
			rc = -ENOMEM;
			break;
		}
		blob = nb;
		memcpy(blob + len, user.v[i], nl);
		memcpy(blob + len + nl, num, (size_t)numl);
		ssize_t got =
		    vl ? lgetxattr(path, user.v[i], blob + len + nl + numl, (size_t)vl) : 0;
		if (got != vl) {
			rc = got < 0 ? -errno : -EAGAIN;
			break;
		}
		len += nl + (size_t)numl + (size_t)vl;
	}
	if (rc)
		free(blob);
	else
		*out = blob, *outlen = len;
out:
	vec_release(&user);
	free(names);
	return rc;
}

static int add_range(struct tnode *n, uint64_t off, uint64_t len)
{
	if (!n)
		return 0;
	if (n->ranges.n &&
	    n->ranges.v[n->ranges.n - 1].off + n->ranges.v[n->ranges.n - 1].len == off) {
		n->ranges.v[n->ranges.n - 1].len += len;
		return 0;
	}
	return vec_push(&n->ranges, (struct tree_range){off, len});
}

static bool all_zero(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

#define CHUNK (TREE_CHUNK / 2)

int tree_blocks(struct tree_diff *d, int rfd, off_t rsize, int ofd, off_t osize, int wfd,
		struct tnode *n, uint64_t *written, uint64_t *compared)
{
	if (!d->buf && !(d->buf = malloc(TREE_CHUNK)))
		return -ENOMEM;
	char *rb = d->buf, *ob = rb + CHUNK;
	int rc = 0;
	off_t max = rsize > osize ? rsize : osize;
	for (off_t off = 0; off < max && rc == 0; off += CHUNK) {
		size_t want = (size_t)(max - off < CHUNK ? max - off : CHUNK);
		size_t rn = off < rsize
				? (size_t)(rsize - off < (off_t)want ? rsize - off : (off_t)want)
				: 0;
		size_t on = off < osize
				? (size_t)(osize - off < (off_t)want ? osize - off : (off_t)want)
				: 0;
		ssize_t got = rn ? pread_full(rfd, rb, rn, off) : 0;
		if (got < 0) {
			rc = (int)got;
			break;
		}
		memset(rb + got, 0, want - (size_t)got);
		rn = (size_t)got; /* the file may be shorter than it said */
		got = on && ofd >= 0 ? pread_full(ofd, ob, on, off) : 0;
		if (got < 0) {
			rc = (int)got;
			break;
		}
		memset(ob + got, 0, want - (size_t)got);
		on = (size_t)got;
		if (compared)
			*compared += rn + on;
		for (size_t b = 0; b < want; b += TREE_BLOCK) {
			size_t bl = want - b < TREE_BLOCK ? want - b : TREE_BLOCK;
			size_t rl = rn > b ? (rn - b < bl ? rn - b : bl) : 0;
			size_t ol = on > b ? (on - b < bl ? on - b : bl) : 0;
			if (rl == ol && !memcmp(rb + b, ob + b, rl))
				continue;
			if ((rc = add_range(n, (uint64_t)off + b, rl > ol ? rl : ol)))
				break;
			if (wfd < 0 || !rl)
				continue; /* past FROM's end: the size is set afterwards */
			if (!ol && off + (off_t)b >= osize && all_zero(rb + b, rl))
				continue; /* a hole once the size is set */
			if ((rc = pwrite_full(wfd, rb + b, rl, off + (off_t)b)))
				break;
			if (written)
				*written += rl;
		}
	}
	return rc;
}

static int open_rel(const struct tside *s, const char *rel)
{
	int fd = openat(s->rootfd, tree_at(rel), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int compare_data(struct tree_diff *d, struct tnode *a, const struct tnode *b)
{
	int rfd = open_rel(&d->side[TREE_FROM], a->path);
	if (rfd < 0)
		return rfd;
	int ofd = open_rel(&d->side[TREE_TO], b->path);
	if (ofd < 0) {
		close(rfd);
		return ofd;
	}
	int rc = tree_blocks(d, rfd, a->st.st_size, ofd, b->st.st_size, -1, a, NULL, NULL);
	close(rfd);
	close(ofd);
	if (rc == 0 && a->ranges.n)
		a->fields |= TREE_F_DATA;
	return rc;
}

static int compare_xattrs(struct tree_diff *d, struct tnode *a, const struct tnode *b)
{
	char pa[PATH_MAX], pb[PATH_MAX];
	int rc = tree_full(&d->side[TREE_FROM], a->path, pa, sizeof(pa));
	if (!rc)
		rc = tree_full(&d->side[TREE_TO], b->path, pb, sizeof(pb));
	char *xa = NULL, *xb = NULL;
	size_t la = 0, lb = 0;
	if (!rc)
		rc = tree_xattrs(pa, &xa, &la);
	if (!rc)
		rc = tree_xattrs(pb, &xb, &lb);
	if (!rc && (la != lb || (la && memcmp(xa, xb, la))))
		a->fields |= TREE_F_XATTR;
	free(xa);
	free(xb);
	return rc;
}

static bool ts_eq(const struct timespec *x, const struct timespec *y)
{
	return x->tv_sec == y->tv_sec && x->tv_nsec == y->tv_nsec;
}

/* What differs between FROM node f and its pair. */
static int compare(struct tree_diff *d, size_t f)
{
	struct tnode *a = &d->side[TREE_FROM].nodes.v[f];
	const struct tnode *b = &d->side[TREE_TO].nodes.v[a->pair];
	const struct stat *x = &a->st, *y = &b->st;
	if ((x->st_mode & S_IFMT) != (y->st_mode & S_IFMT)) {
		a->fields = TREE_F_TYPE;
		return 0;
	}
	if (a->pflags & PAIR_REPLACE)
		a->fields |= TREE_F_LINK;
	if ((d->o.flags & TREE_TRUST_CTIME) && a->ident == b->ident &&
	    ts_eq(&x->st_ctim, &y->st_ctim) && x->st_size == y->st_size &&
	    ts_eq(&x->st_mtim, &y->st_mtim))
		return 0;
	mode_t mask = (d->o.flags & TREE_IGNORE_SETID) ? 01777 : 07777;
	if ((x->st_mode & mask) != (y->st_mode & mask))
		a->fields |= TREE_F_MODE;
	if (x->st_uid != y->st_uid || x->st_gid != y->st_gid)
		a->fields |= TREE_F_OWNER;
	if (!S_ISDIR(x->st_mode) && x->st_size != y->st_size)
		a->fields |= TREE_F_SIZE;
	if (!ts_eq(&x->st_mtim, &y->st_mtim))
		a->fields |= TREE_F_MTIME;
	if ((S_ISCHR(x->st_mode) || S_ISBLK(x->st_mode)) && x->st_rdev != y->st_rdev)
		a->fields |= TREE_F_RDEV;
	if (S_ISLNK(x->st_mode)) {
		if (strcmp(a->target, b->target))
			a->fields |= TREE_F_TARGET;
		return 0; /* no user.* xattrs on symlinks */
	}
	int rc = compare_xattrs(d, a, b);
	if (rc == 0 && S_ISREG(x->st_mode))
		rc = compare_data(d, a, b);
	return rc;
}

/* ---- the change list ---- */

static int change_rank(char t)
{
	return t == '-' ? 0 : t == 'R' ? 1 : t == 'M' ? 2 : 3;
}

static int change_cmp(const void *p, const void *q)
{
	const struct tree_change *a = p, *b = q;
	int c = tree_path_cmp(a->path, b->path);
	return c ? c : change_rank(a->type) - change_rank(b->type);
}

static int add_change(struct tree_diff *d, struct tree_change c)
{
	return vec_push(&d->changes, c);
}

static int list_changes(struct tree_diff *d)
{
	const struct tside *a = &d->side[TREE_FROM], *b = &d->side[TREE_TO];
	int rc = 0;
	for (size_t f = 0; f < a->nodes.n && rc == 0; f++) {
		const struct tnode *x = &a->nodes.v[f];
		if (x->pair < 0) {
			rc = add_change(d, (struct tree_change){.type = '-',
								.path = x->path,
								.st_from = &x->st,
								.target_from = x->target});
			continue;
		}
		const struct tnode *y = &b->nodes.v[x->pair];
		struct tree_change c = {.path = y->path,
					.st_from = &x->st,
					.st_to = &y->st,
					.target_from = x->target,
					.target_to = y->target};
		if ((x->pflags & PAIR_RENAME) && !(x->pflags & PAIR_IMPLIED)) {
			c.type = 'R';
			c.from = x->path;
			if ((rc = add_change(d, c)))
				break;
		}
		if (x->fields) {
			c.type = 'M';
			c.from = NULL;
			c.fields = x->fields;
			c.ranges = x->ranges.v;
			c.nranges = x->ranges.n;
			rc = add_change(d, c);
		}
	}
	for (size_t t = 0; t < b->nodes.n && rc == 0; t++) {
		const struct tnode *y = &b->nodes.v[t];
		if (y->pair < 0)
			rc = add_change(d, (struct tree_change){.type = '+',
								.path = y->path,
								.st_to = &y->st,
								.target_to = y->target});
	}
	if (rc == 0 && d->changes.n)
		qsort(d->changes.v, d->changes.n, sizeof(*d->changes.v), change_cmp);
	return rc;
}

static bool stopped(const struct tree_opts *o)
{
	return o->stop && *o->stop;
}

int tree_diff_new(const char *from, const char *to, const char *const *subs, size_t nsubs,
		  const struct tree_opts *o, struct tree_diff **out)
{
	struct tree_diff *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->o = *o;
	d->side[0].rootfd = d->side[1].rootfd = -1;
	int rc = -ENOMEM;
	if (!(d->side[0].root = strdup(from)) || !(d->side[1].root = strdup(to)))
		goto out_free;
	if ((rc = subs_norm(subs, nsubs, &d->subs, &d->nsubs)))
		goto out_free;
	bool *found = calloc(d->nsubs, 2 * sizeof(bool));
	if (!found) {
		rc = -ENOMEM;
		goto out_free;
	}
	rc = side_load(d, TREE_FROM, found);
	if (!rc)
		rc = side_load(d, TREE_TO, found + d->nsubs);
	for (size_t i = 0; i < d->nsubs && !rc; i++)
		if (!found[i] && !found[d->nsubs + i])
			rc = -ENOENT;
	free(found);
	if (rc)
		goto out_free;
	merge(d, pair_same);
	pair_renames(d);
	merge(d, pair_rest);
	const struct tside *a = &d->side[TREE_FROM];
	for (size_t f = 0; f < a->nodes.n && rc == 0; f++) {
		if (stopped(o)) {
			rc = -EINTR;
			break;
		}
		if (a->nodes.v[f].pair >= 0)
			rc = compare(d, f);
		if (rc == -ENOENT || rc == -ESTALE)
			rc = 0; /* gone meanwhile: what was seen stands */
		if (o->progress && f % 512 == 0)
			o->progress(o->progress_arg, "compare", f, a->nodes.n);
	}
	if (rc == 0)
		rc = list_changes(d);
	if (rc)
		goto out_free;
	*out = d;
	return 0;
out_free:
	tree_diff_free(d);
	return rc;
}

void tree_diff_free(struct tree_diff *d)
{
	if (!d)
		return;
	for (int s = 0; s < 2; s++) {
		struct tside *t = &d->side[s];
		for (size_t i = 0; i < t->nodes.n; i++) {
			free(t->nodes.v[i].path);
			free(t->nodes.v[i].target);
			free(t->nodes.v[i].cur);
			vec_release(&t->nodes.v[i].ranges);
		}
		vec_release(&t->nodes);
		vec_release(&t->byid);
		free(t->root);
		if (t->rootfd >= 0)
			close(t->rootfd);
	}
	for (size_t i = 0; i < d->nsubs; i++)
		free(d->subs[i]);
	free(d->subs);
	vec_release(&d->changes);
	free(d->buf);
	free(d);
}

size_t tree_diff_count(const struct tree_diff *d)
{
	return d->changes.n;
}

const struct tree_change *tree_diff_get(const struct tree_diff *d, size_t i)
{
	return i < d->changes.n ? &d->changes.v[i] : NULL;
}
