// SPDX-License-Identifier: MIT
/*
 * A snapshot's namespace: one file by path, whether a path is an implied
 * directory, and the entries of a directory, each in O(log n) index seeks
 * on the (snap, path) primary key, never a scan of the snapshot's files.
 * Directories are not stored: a path a/b/c implies directories a and a/b.
 * Watch for: paths sort bytewise, and '/' (0x2f) sorts after bytes such as
 * '!' or '-', so the path order is not the name order of a directory's
 * entries ("a-b" < "a/c" but name "a" < "a-b"): readdir corrects for that
 * by probing the shorter names a found path could hide (see next_entry).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store_i.h"

#define DIR_PATH_MAX 8192

void store_sfile_stat(const struct extidx_sfile *f, struct store_snap_file *o)
{
	memset(&o->st, 0, sizeof(o->st));
	o->fid = f->fid;
	o->st.st_size = (off_t)f->size;
	o->st.st_mode = f->mode;
	o->st.st_uid = f->uid;
	o->st.st_gid = f->gid;
	o->st.st_ino = f->ino;
	o->st.st_nlink = 1;
	o->st.st_atim = store_ns_ts(f->atime_ns);
	o->st.st_mtim = store_ns_ts(f->mtime_ns);
	o->st.st_ctim = store_ns_ts(f->ctime_ns);
	o->st.st_blocks = (blkcnt_t)((f->size + 511) / 512);
}

int store_snap_file(struct store *st, uint64_t id, const char *path, struct store_snap_file *out,
		    char *pathbuf, size_t pathbuf_len)
{
	struct extidx_sfile f;
	pthread_mutex_lock(&st->mu);
	int rc = store_snap_find(st, id)
		     ? extidx_sfile_by_path(st->x, id, path, &f, pathbuf, pathbuf_len)
		     : -ENOENT;
	pthread_mutex_unlock(&st->mu);
	if (rc)
		return rc;
	store_sfile_stat(&f, out);
	out->path = f.path;
	return 0;
}

/* Bytewise name order. */
static int name_cmp(const char *a, size_t al, const char *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);
	return c ? c : (al > bl) - (al < bl);
}

/* mu held: whether some path of the snapshot lies under p[0..pl) + "/". */
static int implied_dir(struct store *st, uint64_t id, const char *p, size_t pl, char *buf)
{
	char lo[DIR_PATH_MAX], hi[DIR_PATH_MAX];
	struct extidx_sfile f;
	if (pl + 2 > sizeof(lo))
		return -ENAMETOOLONG;
	memcpy(lo, p, pl);
	memcpy(hi, p, pl);
	lo[pl] = '/';
	hi[pl] = '/' + 1;
	int rc = extidx_sfile_next(st->x, id, lo, pl + 1, 0, hi, pl + 1, &f, buf, DIR_PATH_MAX);
	return rc == -ENOENT ? 0 : rc ? rc : 1;
}

/* Split "dir/" (or "" for the root) into a prefix and its upper bound. */
static int dir_prefix(const char *dir, char *pre, size_t *pl, char *hi)
{
	size_t dl = strlen(dir);
	while (dl && dir[dl - 1] == '/')
		dl--;
	while (dl && dir[0] == '/')
		dir++, dl--;
	if (dl + 2 > DIR_PATH_MAX)
		return -ENAMETOOLONG;
	memcpy(pre, dir, dl);
	memcpy(hi, dir, dl);
	*pl = dl;
	if (dl) {
		pre[dl] = '/';
		hi[dl] = '/' + 1;
		*pl = dl + 1;
	}
	return 0;
}

struct entry {
	char name[DIR_PATH_MAX];
	size_t len;
	int is_dir;
	struct extidx_sfile f; /* files only */
};

/*
 * mu held: the entry of directory pre[0..pl) (hi: its upper bound, NULL for
 * the root) that follows cur[0..cl) in name order (cl == SIZE_MAX: the
 * first). 0, or 1 at the end.
 */
static int next_entry(struct store *st, uint64_t id, const char *pre, size_t pl, const char *hi,
		      const char *cur, size_t cl, struct entry *e, char *pbuf)
{
	char lo[DIR_PATH_MAX];
	int have = cl != SIZE_MAX, incl = 0, rc;
	size_t lol = pl + (have ? cl : 0);
	if (lol + 2 > sizeof(lo))
		return -ENAMETOOLONG;
	memcpy(lo, pre, pl);
	if (have)
		memcpy(lo + pl, cur, cl);
	const char *n;
	size_t nl;
	for (;;) {
		rc = extidx_sfile_next(st->x, id, lo, lol, incl, hi, hi ? pl : 0, &e->f, pbuf,
				       DIR_PATH_MAX);
		if (rc)
			return rc == -ENOENT ? 1 : rc;
		n = pbuf + pl;
		const char *sl = strchr(n, '/');
		nl = sl ? (size_t)(sl - n) : strlen(n);
		if (!have || name_cmp(n, nl, cur, cl) > 0)
			break;
		/* n is cur (its subtree) or a shorter name whose subtree sorts
		 * after cur ("a/x" > "a!"): skip that whole subtree. */
		lol = pl + nl;
		memcpy(lo, pbuf, lol);
		lo[lol++] = '/' + 1;
		incl = 1;
	}
	/* A shorter name m (n = m + c..., c < '/') that is a directory sorts
	 * before n but its paths ("m/...") after n's: the first such is next. */
	for (size_t k = 1; k < nl; k++) {
		if ((unsigned char)n[k] >= '/')
			continue;
		if (have && name_cmp(n, k, cur, cl) <= 0)
			continue;
		char tmp[DIR_PATH_MAX];
		rc = implied_dir(st, id, pbuf, pl + k, tmp);
		if (rc < 0)
			return rc;
		if (rc) {
			memcpy(e->name, n, k);
			e->name[k] = 0;
			e->len = k;
			e->is_dir = 1;
			return 0;
		}
	}
	memcpy(e->name, n, nl);
	e->name[nl] = 0;
	e->len = nl;
	e->is_dir = n[nl] == '/';
	return 0;
}

int store_snap_readdir(struct store *st, uint64_t id, const char *dir, const char *after,
		       int (*fn)(void *arg, const char *name, int is_dir, uint64_t fid,
				 const struct stat *st),
		       void *arg)
{
	char pre[DIR_PATH_MAX], hi[DIR_PATH_MAX], pbuf[DIR_PATH_MAX];
	size_t pl;
	int rc = dir_prefix(dir ? dir : "", pre, &pl, hi);
	if (rc)
		return rc;
	struct entry *e = malloc(sizeof(*e));
	if (!e)
		return -ENOMEM;
	size_t cl = SIZE_MAX;
	if (after && *after) {
		cl = strlen(after);
		if (cl >= sizeof(e->name)) {
			free(e);
			return -ENAMETOOLONG;
		}
		memcpy(e->name, after, cl + 1);
	}
	pthread_mutex_lock(&st->mu);
	if (!store_snap_find(st, id))
		rc = -ENOENT;
	else if (pl && (rc = implied_dir(st, id, pre, pl - 1, pbuf)) == 0) {
		struct extidx_sfile f;
		pre[pl - 1] = 0;
		rc = extidx_sfile_by_path(st->x, id, pre, &f, pbuf, sizeof(pbuf));
		rc = rc ? rc : -ENOTDIR;
		pre[pl - 1] = '/';
	} else if (rc > 0)
		rc = 0;
	pthread_mutex_unlock(&st->mu);
	while (!rc) {
		char cur[DIR_PATH_MAX];
		size_t ccl = cl;
		if (cl != SIZE_MAX)
			memcpy(cur, e->name, cl);
		pthread_mutex_lock(&st->mu);
		rc = store_snap_find(st, id)
			 ? next_entry(st, id, pre, pl, pl ? hi : NULL, cur, ccl, e, pbuf)
			 : -ENOENT;
		pthread_mutex_unlock(&st->mu);
		if (rc) {
			rc = rc == 1 ? 0 : rc;
			break;
		}
		struct store_snap_file sf;
		if (!e->is_dir)
			store_sfile_stat(&e->f, &sf);
		rc = fn(arg, e->name, e->is_dir, e->is_dir ? 0 : e->f.fid,
			e->is_dir ? NULL : &sf.st);
		cl = e->len;
	}
	free(e);
	return rc;
}

int store_snap_isdir(struct store *st, uint64_t id, const char *path)
{
	char pre[DIR_PATH_MAX], hi[DIR_PATH_MAX], pbuf[DIR_PATH_MAX];
	size_t pl;
	int rc = dir_prefix(path ? path : "", pre, &pl, hi);
	if (rc)
		return rc;
	pthread_mutex_lock(&st->mu);
	if (!store_snap_find(st, id))
		rc = -ENOENT;
	else
		rc = pl ? implied_dir(st, id, pre, pl - 1, pbuf) : 1;
	pthread_mutex_unlock(&st->mu);
	return rc;
}
