// SPDX-License-Identifier: MIT
/*
 * The namespace index of tree snapshots on SQLite: ns_trees (one row per
 * tree snapshot), ns_attr (a node's attributes over an epoch range) and
 * ns_entry (a directory entry over an epoch range), on the extent index's
 * connection, statements prepared once. The tables belong to the index's
 * schema from version 3 on: extidx creates them with a new store, and its
 * upgrade adds them to an older one (nsidx_schema_sql, shared with it).
 */
#include "nsidx_i.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "grow_i.h"

enum {
	N_TREE_INS,
	N_TREE_DEL,
	N_TREE_ALL,
	N_ATTR_INS,
	N_ATTR_DEL,
	N_ATTR_AT,
	N_ATTR_LAST,
	N_ATTR_COV,
	N_ATTR_ALL,
	N_ENT_INS,
	N_ENT_DEL,
	N_ENT_AT,
	N_ENT_LAST,
	N_ENT_DIR,
	N_ENT_DIR_AFTER,
	N_ENT_COV,
	N_ENT_ALL,
	N_REFS,
	N_HANDLE,
	N_N
};

#define ATTR_COLS                                                                                  \
	"nid, efrom, eto, mode, uid, gid, nlink, size, rdev, ino, atime_ns, mtime_ns, ctime_ns, "  \
	"target, xattrs"
#define ENT_COLS "dir, name, efrom, eto, child, ctype"

static const char *const sql_text[N_N] = {
    [N_TREE_INS] = "INSERT INTO ns_trees(id, root, path, created_ns) VALUES (?1, ?2, ?3, ?4)",
    [N_TREE_DEL] = "DELETE FROM ns_trees WHERE id = ?1",
    [N_TREE_ALL] = "SELECT id, root, path, created_ns FROM ns_trees ORDER BY id",
    [N_ATTR_INS] = "INSERT INTO ns_attr(" ATTR_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
		   "?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    [N_ATTR_DEL] = "DELETE FROM ns_attr WHERE nid = ?1 AND efrom = ?2",
    [N_ATTR_AT] = "SELECT " ATTR_COLS " FROM ns_attr WHERE nid = ?1 AND efrom <= ?2 "
		  "ORDER BY efrom DESC LIMIT 1",
    [N_ATTR_LAST] = "SELECT eto FROM ns_attr WHERE nid = ?1 ORDER BY efrom DESC LIMIT 1",
    [N_ATTR_COV] = "SELECT nid, efrom, eto, mode, size FROM ns_attr WHERE eto > ?1 AND "
		   "efrom <= ?1 ORDER BY nid, efrom",
    [N_ATTR_ALL] = "SELECT nid, efrom, eto, mode, size FROM ns_attr ORDER BY nid, efrom",
    [N_ENT_INS] = "INSERT INTO ns_entry(" ENT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [N_ENT_DEL] = "DELETE FROM ns_entry WHERE dir = ?1 AND name = ?2 AND efrom = ?3",
    [N_ENT_AT] = "SELECT " ENT_COLS " FROM ns_entry WHERE dir = ?1 AND name = ?2 AND "
		 "efrom <= ?3 ORDER BY efrom DESC LIMIT 1",
    [N_ENT_LAST] = "SELECT eto FROM ns_entry WHERE dir = ?1 AND name = ?2 "
		   "ORDER BY efrom DESC LIMIT 1",
    [N_ENT_DIR] = "SELECT " ENT_COLS " FROM ns_entry WHERE dir = ?1 AND efrom <= ?2 AND "
		  "eto > ?2 ORDER BY name",
    [N_ENT_DIR_AFTER] = "SELECT " ENT_COLS " FROM ns_entry WHERE dir = ?1 AND name > ?3 AND "
			"efrom <= ?2 AND eto > ?2 ORDER BY name",
    [N_ENT_COV] = "SELECT " ENT_COLS " FROM ns_entry WHERE eto > ?1 AND efrom <= ?1 "
		  "ORDER BY dir, name, efrom",
    [N_ENT_ALL] = "SELECT " ENT_COLS " FROM ns_entry ORDER BY dir, name, efrom",
    [N_REFS] = "SELECT EXISTS(SELECT 1 FROM ns_attr WHERE nid = ?1) OR "
	       "EXISTS(SELECT 1 FROM ns_entry WHERE dir = ?1) OR "
	       "EXISTS(SELECT 1 FROM ns_entry WHERE child = ?1) OR "
	       "EXISTS(SELECT 1 FROM ns_trees WHERE root = ?1)",
    [N_HANDLE] = "SELECT handle FROM files WHERE fid = ?1",
};

/* Tables and indexes only: run by extidx inside its create or upgrade
 * transaction. IF NOT EXISTS: a store of schema 2 made by a build that
 * created the tables at its first tree pin already has them. */
const char nsidx_schema_sql[] =
    "CREATE TABLE IF NOT EXISTS ns_trees(id INTEGER PRIMARY KEY, root INTEGER NOT NULL,"
    " path TEXT NOT NULL, created_ns INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS ns_attr(nid INTEGER NOT NULL, efrom INTEGER NOT NULL,"
    " eto INTEGER NOT NULL, mode INTEGER, uid INTEGER, gid INTEGER, nlink INTEGER,"
    " size INTEGER, rdev INTEGER, ino INTEGER, atime_ns INTEGER, mtime_ns INTEGER,"
    " ctime_ns INTEGER, target BLOB, xattrs BLOB, PRIMARY KEY(nid, efrom)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS ns_attr_eto ON ns_attr(eto);"
    "CREATE TABLE IF NOT EXISTS ns_entry(dir INTEGER NOT NULL, name BLOB NOT NULL,"
    " efrom INTEGER NOT NULL, eto INTEGER NOT NULL, child INTEGER NOT NULL,"
    " ctype INTEGER NOT NULL, PRIMARY KEY(dir, name, efrom)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS ns_entry_eto ON ns_entry(eto);"
    "CREATE INDEX IF NOT EXISTS ns_entry_child ON ns_entry(child);";

struct nsidx {
	struct extidx *x;
	sqlite3 *db;
	sqlite3_stmt *s[N_N];
};

static int err(struct nsidx *n, int rc)
{
	return extidx_errno(n->x, rc);
}

static sqlite3_stmt *stmt(struct nsidx *n, int i)
{
	if (!n->s[i]) {
		int rc = sqlite3_prepare_v3(n->db, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT,
					    &n->s[i], NULL);
		if (rc != SQLITE_OK) {
			err(n, rc);
			return NULL;
		}
	}
	return n->s[i];
}

static void done(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

static int run(struct nsidx *n, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);
	int ret = rc == SQLITE_DONE ? 0 : err(n, rc);
	done(s);
	return ret;
}

/* The index is of schema 3 or newer (extidx checked): the tables are there,
 * or the index was damaged. */
static int check_tables(struct nsidx *n)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(n->db,
				    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
				    "name IN ('ns_trees', 'ns_attr', 'ns_entry')",
				    -1, &s, NULL);
	if (rc != SQLITE_OK)
		return err(n, rc);
	rc = sqlite3_step(s);
	int have = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
	sqlite3_finalize(s);
	if (have < 0)
		return err(n, rc);
	if (have != 3)
		return extidx_corrupt(n->x, "the tables of tree snapshots are missing");
	return 0;
}

int nsidx_open(struct extidx *x, struct nsidx **out)
{
	struct nsidx *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->x = x;
	n->db = extidx_db(x);
	int rc = check_tables(n);
	if (rc) {
		free(n);
		return rc;
	}
	*out = n;
	return 0;
}

void nsidx_close(struct nsidx *n)
{
	if (!n)
		return;
	for (int i = 0; i < N_N; i++)
		sqlite3_finalize(n->s[i]);
	free(n);
}

static void bind_u64(sqlite3_stmt *s, int i, uint64_t v)
{
	sqlite3_bind_int64(s, i, (int64_t)v);
}

static uint64_t col_u64(sqlite3_stmt *s, int i)
{
	return (uint64_t)sqlite3_column_int64(s, i);
}

/* ---- trees ---- */

int nsidx_tree_insert(struct nsidx *n, const struct nsidx_tree *t)
{
	sqlite3_stmt *s = stmt(n, N_TREE_INS);
	if (!s)
		return -EIO;
	bind_u64(s, 1, t->id);
	bind_u64(s, 2, t->root);
	sqlite3_bind_text(s, 3, t->path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, t->created_ns);
	return run(n, s);
}

int nsidx_tree_delete(struct nsidx *n, uint64_t id)
{
	sqlite3_stmt *s = stmt(n, N_TREE_DEL);
	if (!s)
		return -EIO;
	bind_u64(s, 1, id);
	return run(n, s);
}

void nsidx_trees_free(struct nsidx_tree *a, size_t cnt)
{
	for (size_t i = 0; i < cnt; i++)
		free(a[i].path);
	free(a);
}

int nsidx_trees_all(struct nsidx *n, struct nsidx_tree **out, size_t *cnt)
{
	*out = NULL;
	*cnt = 0;
	sqlite3_stmt *s = stmt(n, N_TREE_ALL);
	if (!s)
		return -EIO;
	struct nsidx_tree *a = NULL;
	size_t k = 0, cap = 0;
	int rc, ret = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct nsidx_tree *na = store_grow(a, k, &cap, sizeof(*a), 16);
		if (!na) {
			ret = -ENOMEM;
			break;
		}
		a = na;
		const unsigned char *p = sqlite3_column_text(s, 2);
		a[k] = (struct nsidx_tree){.id = col_u64(s, 0),
					   .root = col_u64(s, 1),
					   .created_ns = sqlite3_column_int64(s, 3),
					   .path = strdup(p ? (const char *)p : "")};
		if (!a[k].path) {
			ret = -ENOMEM;
			break;
		}
		k++;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = err(n, rc);
	done(s);
	if (ret) {
		nsidx_trees_free(a, k);
		return ret;
	}
	*out = a;
	*cnt = k;
	return 0;
}

/* ---- attributes ---- */

int nsidx_attr_insert(struct nsidx *n, const struct nsidx_attr *a)
{
	sqlite3_stmt *s = stmt(n, N_ATTR_INS);
	if (!s)
		return -EIO;
	bind_u64(s, 1, a->nid);
	bind_u64(s, 2, a->efrom);
	bind_u64(s, 3, a->eto);
	sqlite3_bind_int64(s, 4, a->mode);
	sqlite3_bind_int64(s, 5, a->uid);
	sqlite3_bind_int64(s, 6, a->gid);
	bind_u64(s, 7, a->nlink);
	bind_u64(s, 8, a->size);
	bind_u64(s, 9, a->rdev);
	bind_u64(s, 10, a->ino);
	sqlite3_bind_int64(s, 11, a->atime_ns);
	sqlite3_bind_int64(s, 12, a->mtime_ns);
	sqlite3_bind_int64(s, 13, a->ctime_ns);
	if (a->target_len)
		sqlite3_bind_blob(s, 14, a->target, (int)a->target_len, SQLITE_STATIC);
	if (a->xattrs_len)
		sqlite3_bind_blob(s, 15, a->xattrs, (int)a->xattrs_len, SQLITE_STATIC);
	return run(n, s);
}

int nsidx_attr_delete(struct nsidx *n, uint64_t nid, uint64_t efrom)
{
	sqlite3_stmt *s = stmt(n, N_ATTR_DEL);
	if (!s)
		return -EIO;
	bind_u64(s, 1, nid);
	bind_u64(s, 2, efrom);
	return run(n, s);
}

/* The short columns of a row (nid, efrom, eto, mode, size, in that order when
 * short != 0, else every column but the blobs). */
static void attr_cols(sqlite3_stmt *s, struct nsidx_attr *a, int shortrow)
{
	memset(a, 0, sizeof(*a));
	a->nid = col_u64(s, 0);
	a->efrom = col_u64(s, 1);
	a->eto = col_u64(s, 2);
	a->mode = (uint32_t)sqlite3_column_int64(s, 3);
	if (shortrow) {
		a->size = col_u64(s, 4);
		return;
	}
	a->uid = (uint32_t)sqlite3_column_int64(s, 4);
	a->gid = (uint32_t)sqlite3_column_int64(s, 5);
	a->nlink = col_u64(s, 6);
	a->size = col_u64(s, 7);
	a->rdev = col_u64(s, 8);
	a->ino = col_u64(s, 9);
	a->atime_ns = sqlite3_column_int64(s, 10);
	a->mtime_ns = sqlite3_column_int64(s, 11);
	a->ctime_ns = sqlite3_column_int64(s, 12);
}

int nsidx_attr_at(struct nsidx *n, uint64_t nid, uint64_t at, struct nsidx_attr *out, char *buf,
		  size_t buflen)
{
	sqlite3_stmt *s = stmt(n, N_ATTR_AT);
	if (!s)
		return -EIO;
	bind_u64(s, 1, nid);
	bind_u64(s, 2, at);
	int rc = sqlite3_step(s), ret = 0;
	if (rc == SQLITE_ROW) {
		attr_cols(s, out, 0);
		if (out->eto <= at) {
			ret = -ENOENT;
		} else {
			size_t tl = (size_t)sqlite3_column_bytes(s, 13);
			const void *t = sqlite3_column_blob(s, 13);
			size_t xl = (size_t)sqlite3_column_bytes(s, 14);
			const void *xa = sqlite3_column_blob(s, 14);
			if (tl + xl > buflen) {
				ret = -ERANGE;
			} else {
				if (tl)
					memcpy(buf, t, tl);
				if (xl)
					memcpy(buf + tl, xa, xl);
				out->target = tl ? buf : NULL;
				out->target_len = (uint32_t)tl;
				out->xattrs = xl ? buf + tl : NULL;
				out->xattrs_len = (uint32_t)xl;
			}
		}
	} else {
		ret = rc == SQLITE_DONE ? -ENOENT : err(n, rc);
	}
	done(s);
	return ret;
}

static int one_u64(struct nsidx *n, sqlite3_stmt *s, uint64_t *v)
{
	int rc = sqlite3_step(s), ret = 0;
	if (rc == SQLITE_ROW)
		*v = col_u64(s, 0);
	else if (rc == SQLITE_DONE)
		*v = 0;
	else
		ret = err(n, rc);
	done(s);
	return ret;
}

int nsidx_attr_tlast(struct nsidx *n, uint64_t nid, uint64_t *tlast)
{
	*tlast = 0;
	sqlite3_stmt *s = stmt(n, N_ATTR_LAST);
	if (!s)
		return -EIO;
	bind_u64(s, 1, nid);
	return one_u64(n, s, tlast);
}

int nsidx_attrs(struct nsidx *n, uint64_t at, struct nsidx_attr **out, size_t *cnt)
{
	*out = NULL;
	*cnt = 0;
	sqlite3_stmt *s = stmt(n, at == UINT64_MAX ? N_ATTR_ALL : N_ATTR_COV);
	if (!s)
		return -EIO;
	if (at != UINT64_MAX)
		bind_u64(s, 1, at);
	struct nsidx_attr *a = NULL;
	size_t k = 0, cap = 0;
	int rc, ret = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct nsidx_attr *na = store_grow(a, k, &cap, sizeof(*a), 64);
		if (!na) {
			ret = -ENOMEM;
			break;
		}
		a = na;
		attr_cols(s, &a[k++], 1);
	}
	if (!ret && rc != SQLITE_DONE)
		ret = err(n, rc);
	done(s);
	if (ret) {
		free(a);
		return ret;
	}
	*out = a;
	*cnt = k;
	return 0;
}

/* ---- entries ---- */

int nsidx_entry_insert(struct nsidx *n, const struct nsidx_entry *e)
{
	sqlite3_stmt *s = stmt(n, N_ENT_INS);
	if (!s)
		return -EIO;
	bind_u64(s, 1, e->dir);
	sqlite3_bind_blob(s, 2, e->name, (int)strlen(e->name), SQLITE_STATIC);
	bind_u64(s, 3, e->efrom);
	bind_u64(s, 4, e->eto);
	bind_u64(s, 5, e->child);
	sqlite3_bind_int64(s, 6, e->ctype);
	return run(n, s);
}

int nsidx_entry_delete(struct nsidx *n, uint64_t dir, const char *name, uint64_t efrom)
{
	sqlite3_stmt *s = stmt(n, N_ENT_DEL);
	if (!s)
		return -EIO;
	bind_u64(s, 1, dir);
	sqlite3_bind_blob(s, 2, name, (int)strlen(name), SQLITE_STATIC);
	bind_u64(s, 3, efrom);
	return run(n, s);
}

static void ent_cols(sqlite3_stmt *s, struct nsidx_entry *e)
{
	e->dir = col_u64(s, 0);
	e->efrom = col_u64(s, 2);
	e->eto = col_u64(s, 3);
	e->child = col_u64(s, 4);
	e->ctype = (uint32_t)sqlite3_column_int64(s, 5);
	e->name = NULL;
}

int nsidx_entry_at(struct nsidx *n, uint64_t dir, const char *name, uint64_t at,
		   struct nsidx_entry *out)
{
	sqlite3_stmt *s = stmt(n, N_ENT_AT);
	if (!s)
		return -EIO;
	bind_u64(s, 1, dir);
	sqlite3_bind_blob(s, 2, name, (int)strlen(name), SQLITE_STATIC);
	bind_u64(s, 3, at);
	int rc = sqlite3_step(s), ret = 0;
	if (rc == SQLITE_ROW) {
		ent_cols(s, out);
		if (out->eto <= at)
			ret = -ENOENT;
	} else {
		ret = rc == SQLITE_DONE ? -ENOENT : err(n, rc);
	}
	done(s);
	return ret;
}

int nsidx_entry_tlast(struct nsidx *n, uint64_t dir, const char *name, uint64_t *tlast)
{
	*tlast = 0;
	sqlite3_stmt *s = stmt(n, N_ENT_LAST);
	if (!s)
		return -EIO;
	bind_u64(s, 1, dir);
	sqlite3_bind_blob(s, 2, name, (int)strlen(name), SQLITE_STATIC);
	return one_u64(n, s, tlast);
}

void nsidx_entries_free(struct nsidx_entry *a, size_t cnt)
{
	for (size_t i = 0; i < cnt; i++)
		free(a[i].name);
	free(a);
}

int nsidx_entries(struct nsidx *n, uint64_t dir, uint64_t at, struct nsidx_entry **out, size_t *cnt)
{
	return nsidx_entries_after(n, dir, at, NULL, out, cnt);
}

int nsidx_entries_after(struct nsidx *n, uint64_t dir, uint64_t at, const char *after,
			struct nsidx_entry **out, size_t *cnt)
{
	*out = NULL;
	*cnt = 0;
	int which = dir		       ? (after && *after ? N_ENT_DIR_AFTER : N_ENT_DIR)
		    : at == UINT64_MAX ? N_ENT_ALL
				       : N_ENT_COV;
	sqlite3_stmt *s = stmt(n, which);
	if (!s)
		return -EIO;
	if (dir) {
		bind_u64(s, 1, dir);
		bind_u64(s, 2, at);
		if (which == N_ENT_DIR_AFTER)
			sqlite3_bind_blob(s, 3, after, (int)strlen(after), SQLITE_STATIC);
	} else if (at != UINT64_MAX) {
		bind_u64(s, 1, at);
	}
	struct nsidx_entry *a = NULL;
	size_t k = 0, cap = 0;
	int rc, ret = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct nsidx_entry *na = store_grow(a, k, &cap, sizeof(*a), 16);
		if (!na) {
			ret = -ENOMEM;
			break;
		}
		a = na;
		ent_cols(s, &a[k]);
		size_t len = (size_t)sqlite3_column_bytes(s, 1);
		const void *p = sqlite3_column_blob(s, 1);
		if (!(a[k].name = malloc(len + 1))) {
			ret = -ENOMEM;
			break;
		}
		if (len)
			memcpy(a[k].name, p, len);
		a[k].name[len] = 0;
		k++;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = err(n, rc);
	done(s);
	if (ret) {
		nsidx_entries_free(a, k);
		return ret;
	}
	*out = a;
	*cnt = k;
	return 0;
}

/* ---- references and handles ---- */

int nsidx_fid_refs(struct nsidx *n, uint64_t fid, int *refs)
{
	*refs = 0;
	sqlite3_stmt *s = stmt(n, N_REFS);
	if (!s)
		return -EIO;
	bind_u64(s, 1, fid);
	uint64_t v = 0;
	int rc = one_u64(n, s, &v);
	*refs = v != 0;
	return rc;
}

int nsidx_file_handle(struct nsidx *n, uint64_t fid, unsigned char *h, uint32_t *hlen)
{
	sqlite3_stmt *s = stmt(n, N_HANDLE);
	if (!s)
		return -EIO;
	bind_u64(s, 1, fid);
	int rc = sqlite3_step(s), ret = 0;
	if (rc == SQLITE_ROW) {
		int len = sqlite3_column_bytes(s, 0);
		if (len < 4 || (uint32_t)len > *hlen)
			ret = -EIO;
		else {
			memcpy(h, sqlite3_column_blob(s, 0), (size_t)len);
			*hlen = (uint32_t)len;
		}
	} else {
		ret = rc == SQLITE_DONE ? -ENOENT : err(n, rc);
	}
	done(s);
	return ret;
}
