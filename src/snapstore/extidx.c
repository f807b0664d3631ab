// SPDX-License-Identifier: MIT
/*
 * The extent index on SQLite: schema, version checks, and every statement
 * the store runs (prepared once, cached). SQLite result codes are mapped to
 * -errno here and go no further. Watch for: the connection is used under
 * the store mutex only; opening an existing index must write nothing until
 * its application_id, user_version and (for small files) integrity checked.
 */
#include "extidx_i.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "grow_i.h"
#include "nsidx_i.h"

/* quick_check reads every page: only for indexes up to this size, so opening a
 * store with a million extents stays fast (bigger ones are checked by SQLite
 * as pages are read; CORRUPT then surfaces as -EIO). */
#define QUICK_CHECK_MAX_BYTES (16ll << 20)

enum {
	S_META_GET,
	S_META_SET,
	S_FILE_INS,
	S_FILE_STATE,
	S_FILE_BYH,
	S_FILE_STAT,
	S_FILE_DEL,
	S_FILE_ALL,
	S_SNAP_INS,
	S_SNAP_STATE,
	S_SNAP_LABEL,
	S_SNAP_DEL,
	S_SNAP_DELFILES,
	S_SNAP_GET,
	S_SNAP_ALL,
	S_SF_INS,
	S_SF_OF,
	S_SF_ALL,
	S_SF_PATH,
	S_SF_NEXT_GT,
	S_SF_NEXT_GE,
	S_SF_COUNT,
	S_SF_FIDREFS,
	S_EXT_INS,
	S_EXT_DEL,
	S_EXT_RANGE,
	S_EXT_RANGE_AT,
	S_EXT_FID,
	S_EXT_FID_AT,
	S_EXT_ALL,
	S_EXT_RANGE_SUMS,
	S_EXT_ALL_SUMS,
	S_EXT_STATS,
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_SYNC_FULL,
	S_SYNC_NORMAL,
	S_N
};

static const char *const sql_text[S_N] = {
    [S_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [S_META_SET] = "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)",
    [S_FILE_INS] = "INSERT INTO files(handle, ino, state, size, mtime_ns, ctime_ns) "
		   "VALUES (?1, ?2, 0, ?3, ?4, ?5)",
    [S_FILE_BYH] = "SELECT fid, state FROM files WHERE handle = ?1",
    [S_FILE_STATE] = "UPDATE files SET state = ?2 WHERE fid = ?1",
    [S_FILE_STAT] = "UPDATE files SET ino = ?2, size = ?3, mtime_ns = ?4, ctime_ns = ?5 "
		    "WHERE fid = ?1",
    [S_FILE_DEL] = "DELETE FROM files WHERE fid = ?1",
    [S_FILE_ALL] = "SELECT fid, handle, state, ino, size, mtime_ns, ctime_ns FROM files "
		   "ORDER BY fid",
    [S_SNAP_INS] = "INSERT INTO snapshots(epoch, created, expires, uid, kind, label, state) "
		   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
    [S_SNAP_STATE] = "UPDATE snapshots SET state = ?2 WHERE id = ?1",
    [S_SNAP_LABEL] = "UPDATE snapshots SET label = ?2 WHERE id = ?1",
    [S_SNAP_DEL] = "DELETE FROM snapshots WHERE id = ?1",
    [S_SNAP_DELFILES] = "DELETE FROM snap_files WHERE snap = ?1",
    [S_SNAP_GET] = "SELECT id, epoch, created, expires, uid, kind, label, state "
		   "FROM snapshots WHERE id = ?1",
    [S_SNAP_ALL] = "SELECT id, epoch, created, expires, uid, kind, label, state "
		   "FROM snapshots ORDER BY id",
    [S_SF_INS] = "INSERT INTO snap_files(snap, path, fid, size, mode, uid, gid, atime_ns, "
		 "mtime_ns, ctime_ns, ino) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [S_SF_OF] = "SELECT snap, path, fid, size, mode, uid, gid, atime_ns, mtime_ns, ctime_ns, "
		"ino FROM snap_files WHERE snap = ?1 ORDER BY path",
    [S_SF_ALL] = "SELECT snap, path, fid, size, mode, uid, gid, atime_ns, mtime_ns, ctime_ns, "
		 "ino FROM snap_files ORDER BY snap, path",
    [S_SF_PATH] = "SELECT snap, path, fid, size, mode, uid, gid, atime_ns, mtime_ns, "
		  "ctime_ns, ino FROM snap_files WHERE snap = ?1 AND path = ?2",
    /* ?3 is a text upper bound, or an empty blob: every text sorts below a blob. */
    [S_SF_NEXT_GT] = "SELECT snap, path, fid, size, mode, uid, gid, atime_ns, mtime_ns, "
		     "ctime_ns, ino FROM snap_files WHERE snap = ?1 AND path > ?2 AND path < ?3 "
		     "ORDER BY path LIMIT 1",
    [S_SF_NEXT_GE] = "SELECT snap, path, fid, size, mode, uid, gid, atime_ns, mtime_ns, "
		     "ctime_ns, ino FROM snap_files WHERE snap = ?1 AND path >= ?2 AND path < ?3 "
		     "ORDER BY path LIMIT 1",
    [S_SF_COUNT] = "SELECT count(*) FROM snap_files WHERE snap = ?1",
    [S_SF_FIDREFS] = "SELECT count(*) FROM snap_files WHERE fid = ?1",
    [S_EXT_INS] = "INSERT INTO extents(fid, blk, efrom, eto, nblk, loc, sums) "
		  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_EXT_DEL] = "DELETE FROM extents WHERE fid = ?1 AND blk = ?2 AND efrom = ?3",
    [S_EXT_RANGE] = "SELECT fid, blk, efrom, eto, nblk, loc FROM extents "
		    "WHERE fid = ?1 AND blk > ?2 AND blk < ?3 AND blk + nblk > ?4 "
		    "ORDER BY blk, efrom",
    [S_EXT_RANGE_AT] = "SELECT fid, blk, efrom, eto, nblk, loc FROM extents "
		       "WHERE fid = ?1 AND blk > ?2 AND blk < ?3 AND blk + nblk > ?4 "
		       "AND efrom <= ?5 AND eto > ?5 ORDER BY blk, efrom",
    [S_EXT_FID] = "SELECT fid, blk, efrom, eto, nblk, loc FROM extents WHERE fid = ?1 "
		  "ORDER BY blk, efrom",
    [S_EXT_FID_AT] = "SELECT fid, blk, efrom, eto, nblk, loc FROM extents WHERE fid = ?1 "
		     "AND efrom <= ?2 AND eto > ?2 ORDER BY blk, efrom",
    [S_EXT_ALL] = "SELECT fid, blk, efrom, eto, nblk, loc FROM extents",
    [S_EXT_RANGE_SUMS] = "SELECT fid, blk, efrom, eto, nblk, loc, sums FROM extents "
			 "WHERE fid = ?1 AND blk > ?2 AND blk < ?3 AND blk + nblk > ?4 "
			 "AND efrom <= ?5 AND eto > ?5 ORDER BY blk, efrom",
    [S_EXT_ALL_SUMS] = "SELECT fid, blk, efrom, eto, nblk, loc, sums FROM extents "
		       "WHERE loc IS NOT NULL",
    [S_EXT_STATS] = "SELECT count(*), coalesce(sum(CASE WHEN loc IS NULL THEN 0 ELSE nblk "
		    "END), 0) FROM extents",
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SYNC_FULL] = "PRAGMA synchronous = FULL",
    [S_SYNC_NORMAL] = "PRAGMA synchronous = NORMAL",
};

static const char schema_sql[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    "CREATE TABLE files(fid INTEGER PRIMARY KEY, handle BLOB UNIQUE NOT NULL, ino INTEGER,"
    " state INTEGER NOT NULL DEFAULT 0, size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER);"
    "CREATE TABLE snapshots(id INTEGER PRIMARY KEY AUTOINCREMENT, epoch INTEGER NOT NULL,"
    " created INTEGER, expires INTEGER, uid INTEGER, kind INTEGER, label TEXT,"
    " state INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE snap_files(snap INTEGER NOT NULL, path TEXT NOT NULL, fid INTEGER NOT NULL,"
    " size INTEGER, mode INTEGER, uid INTEGER, gid INTEGER, atime_ns INTEGER,"
    " mtime_ns INTEGER, ctime_ns INTEGER, ino INTEGER, PRIMARY KEY(snap, path))"
    " WITHOUT ROWID;"
    "CREATE INDEX snap_files_fid ON snap_files(fid);"
    "CREATE TABLE extents(fid INTEGER NOT NULL, blk INTEGER NOT NULL, efrom INTEGER NOT NULL,"
    " eto INTEGER NOT NULL, nblk INTEGER NOT NULL, loc INTEGER, sums BLOB,"
    " PRIMARY KEY(fid, blk, efrom)) WITHOUT ROWID;";

/* From version 1: per-block checksums of preserved blocks. From version 2:
 * the tables of tree snapshots (nsidx_schema_sql). */
static const char upgrade_2_sql[] = "ALTER TABLE extents ADD COLUMN sums BLOB;";

struct extidx {
	int version; /* user_version at open (EXTIDX_SCHEMA_VERSION once upgraded) */
	/* the caller's, given at open */
	void (*logf)(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
	sqlite3 *db;
	char *path;
	sqlite3_stmt *s[S_N];
};

/*
 * A VFS that is the default (unix) one except that absolute paths are kept as
 * given: SQLite 3.40's unix VFS resolves symlinks in xFullPathname, which
 * would turn "/proc/self/fd/N/index.db" (the daemon's way to reach a store
 * it has mounted over) into a path that goes through the mount.
 */
static sqlite3_vfs keep_vfs;
static sqlite3_vfs *base_vfs;
static pthread_once_t keep_once = PTHREAD_ONCE_INIT;
#define KEEP_VFS_NAME "snapfs-keep-path"

static int keep_full_pathname(sqlite3_vfs *v, const char *in, int n, char *out)
{
	(void)v;
	if (in[0] != '/')
		return base_vfs->xFullPathname(base_vfs, in, n, out);
	if ((int)strlen(in) >= n)
		return SQLITE_CANTOPEN;
	strlcpy(out, in, (size_t)n);
	return SQLITE_OK;
}

static void keep_register(void)
{
	base_vfs = sqlite3_vfs_find(NULL);
	if (!base_vfs)
		return;
	keep_vfs = *base_vfs; /* same methods and pAppData: only the name and one method differ */
	keep_vfs.pNext = NULL;
	keep_vfs.zName = KEEP_VFS_NAME;
	keep_vfs.xFullPathname = keep_full_pathname;
	if (sqlite3_vfs_register(&keep_vfs, 0) != SQLITE_OK)
		base_vfs = NULL;
}

static int map_rc(struct extidx *x, int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		x->logf(3, "snapstore: %s: index corrupt: %s", x->path,
			x->db ? sqlite3_errmsg(x->db) : sqlite3_errstr(rc));
		return -EIO;
	default:
		x->logf(3, "snapstore: %s: sqlite: %s", x->path,
			x->db ? sqlite3_errmsg(x->db) : sqlite3_errstr(rc));
		return -EIO;
	}
}

static sqlite3_stmt *stmt(struct extidx *x, int i)
{
	if (!x->s[i]) {
		int rc = sqlite3_prepare_v3(x->db, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT,
					    &x->s[i], NULL);
		if (rc != SQLITE_OK) {
			map_rc(x, rc);
			return NULL;
		}
	}
	return x->s[i];
}

/* Step a statement that returns no rows, then reset it. */
static int run(struct extidx *x, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);
	int ret = rc == SQLITE_DONE ? 0 : map_rc(x, rc);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return ret;
}

static void done(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/* A result set collected into a growing array. */
struct rows {
	void *a;
	size_t n, cap;
};

/*
 * Step s to the end, appending one element of elem bytes per row, filled by
 * row() (0, or -errno: then the element is not counted and the walk stops).
 * The statement is finished either way; the caller owns r->a.
 */
static int rows(struct extidx *x, sqlite3_stmt *s, struct rows *r, size_t elem,
		int (*row)(sqlite3_stmt *s, void *out))
{
	int rc, ret = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		void *na = store_grow(r->a, r->n, &r->cap, elem, 16);
		if (!na) {
			ret = -ENOMEM;
			break;
		}
		r->a = na;
		if ((ret = row(s, (char *)r->a + r->n * elem)))
			break;
		r->n++;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = map_rc(x, rc);
	done(s);
	return ret;
}

static int exec(struct extidx *x, const char *sql)
{
	int rc = sqlite3_exec(x->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : map_rc(x, rc);
}

static int pragma_int(struct extidx *x, const char *sql, int64_t *v)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(x->db, sql, -1, &s, NULL);
	if (rc != SQLITE_OK)
		return map_rc(x, rc);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*v = sqlite3_column_int64(s, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	return rc == SQLITE_OK || rc == SQLITE_DONE ? 0 : map_rc(x, rc);
}

static int quick_check(struct extidx *x)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(x->db, "PRAGMA quick_check(1)", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return map_rc(x, rc);
	int ret = 0;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const char *r = (const char *)sqlite3_column_text(s, 0);
		if (!r || strcmp(r, "ok")) {
			x->logf(3, "snapstore: %s: index corrupt: %s", x->path, r ? r : "?");
			ret = -EIO;
		}
	} else {
		ret = map_rc(x, rc);
	}
	sqlite3_finalize(s);
	return ret;
}

static int check_existing(struct extidx *x, uint32_t *block_size)
{
	int64_t app = 0, ver = 0, pages = 0, psize = 0;
	int rc = pragma_int(x, "PRAGMA application_id", &app);
	if (rc)
		return rc;
	if (app != EXTIDX_APP_ID) {
		x->logf(3, "snapstore: %s: not a snapfs index (application_id %" PRId64 ")",
			x->path, app);
		return -EIO;
	}
	if ((rc = pragma_int(x, "PRAGMA user_version", &ver)))
		return rc;
	if (ver > EXTIDX_SCHEMA_VERSION) {
		x->logf(3,
			"snapstore: %s: index schema version %" PRId64
			" is newer than this snapfs understands (%d): upgrade snapfs",
			x->path, ver, EXTIDX_SCHEMA_VERSION);
		return -EPROTO;
	}
	if (ver < 1) {
		x->logf(3, "snapstore: %s: index has no schema (version %" PRId64 ")", x->path,
			ver);
		return -EIO;
	}
	x->version = (int)ver;
	if ((rc = pragma_int(x, "PRAGMA page_count", &pages)) ||
	    (rc = pragma_int(x, "PRAGMA page_size", &psize)))
		return rc;
	if (pages * psize <= QUICK_CHECK_MAX_BYTES && (rc = quick_check(x)))
		return rc;
	int64_t bs = 0;
	rc = extidx_meta_get(x, "block_size", &bs);
	if (rc == -ENOENT) {
		x->logf(3, "snapstore: %s: index has no block size", x->path);
		return -EIO;
	}
	if (rc)
		return rc;
	*block_size = (uint32_t)bs;
	return 0;
}

int extidx_upgrade(struct extidx *x)
{
	if (x->version >= EXTIDX_SCHEMA_VERSION)
		return 0;
	char sql[64];
	int64_t any = 0;
	int rc = exec(x, "BEGIN IMMEDIATE");
	if (rc)
		return rc;
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", EXTIDX_SCHEMA_VERSION);
	if (x->version < 2 &&
	    (!(rc = exec(x, upgrade_2_sql)) &&
	     !(rc = pragma_int(x, "SELECT count(*) FROM extents WHERE loc IS NOT NULL", &any))))
		rc = extidx_meta_set(x, "sums", any ? 0 : 1);
	if (!rc)
		rc = exec(x, nsidx_schema_sql);
	if (!rc && !(rc = exec(x, sql)))
		rc = exec(x, "COMMIT");
	if (rc) {
		exec(x, "ROLLBACK");
		return rc;
	}
	for (int i = 0; i < S_N; i++) { /* prepared against the old schema */
		sqlite3_finalize(x->s[i]);
		x->s[i] = NULL;
	}
	x->logf(6, "snapstore: %s: index upgraded from schema version %d to %d", x->path,
		x->version, EXTIDX_SCHEMA_VERSION);
	x->version = EXTIDX_SCHEMA_VERSION;
	return 0;
}

static int create_schema(struct extidx *x, uint32_t block_size)
{
	char sql[128];
	int rc = exec(x, "PRAGMA journal_mode = WAL");
	if (rc)
		return rc;
	snprintf(sql, sizeof(sql), "PRAGMA application_id = %d; PRAGMA user_version = %d;",
		 EXTIDX_APP_ID, EXTIDX_SCHEMA_VERSION);
	if ((rc = exec(x, "BEGIN")))
		return rc;
	if ((rc = exec(x, schema_sql)) || (rc = exec(x, nsidx_schema_sql)) || (rc = exec(x, sql)) ||
	    (rc = extidx_meta_set(x, "block_size", block_size)) ||
	    (rc = extidx_meta_set(x, "epoch", 1)) || (rc = extidx_meta_set(x, "clean", 1)) ||
	    (rc = extidx_meta_set(x, "alive_until", 0)) || (rc = extidx_meta_set(x, "sums", 1))) {
		exec(x, "ROLLBACK");
		return rc;
	}
	return exec(x, "COMMIT");
}

static void nolog(int level, const char *fmt, ...)
{
	(void)level, (void)fmt;
}

int extidx_open(const char *path, int create, uint32_t *block_size,
		void (*logf)(int level, const char *fmt, ...), struct extidx **out)
{
	struct extidx *x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->logf = logf ? logf : nolog;
	x->path = strdup(path);
	if (!x->path) {
		free(x);
		return -ENOMEM;
	}
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_PRIVATECACHE;
	if (create)
		flags |= SQLITE_OPEN_CREATE;
	pthread_once(&keep_once, keep_register);
	int rc = sqlite3_open_v2(path, &x->db, flags, base_vfs ? KEEP_VFS_NAME : NULL);
	if (rc != SQLITE_OK) {
		rc = map_rc(x, rc);
		goto out_close;
	}
	sqlite3_extended_result_codes(x->db, 1);
	sqlite3_busy_timeout(x->db, 5000);
	if (create) {
		x->version = EXTIDX_SCHEMA_VERSION;
		rc = create_schema(x, *block_size);
	} else {
		uint32_t bs = 0;
		rc = check_existing(x, &bs);
		if (!rc && *block_size && bs != *block_size) {
			x->logf(3, "snapstore: %s: the store's block size is %u, not %u", path, bs,
				*block_size);
			rc = -EINVAL;
		}
		if (!rc && (bs < 512 || bs > (1u << 20) || (bs & (bs - 1)))) {
			x->logf(3, "snapstore: %s: bad block size %u in index", path, bs);
			rc = -EIO;
		}
		if (!rc)
			*block_size = bs;
		/* Already WAL for every store we made; this writes nothing then. */
		if (!rc)
			rc = exec(x, "PRAGMA journal_mode = WAL");
	}
	if (rc)
		goto out_close;
	*out = x;
	return 0;
out_close:
	extidx_close(x);
	return rc;
}

void extidx_close(struct extidx *x)
{
	if (!x)
		return;
	for (int i = 0; i < S_N; i++)
		sqlite3_finalize(x->s[i]);
	sqlite3_close_v2(x->db);
	free(x->path);
	free(x);
}

static int simple(struct extidx *x, int i)
{
	sqlite3_stmt *s = stmt(x, i);
	return s ? run(x, s) : -EIO;
}

int extidx_begin(struct extidx *x, int full)
{
	/* The safety level cannot change inside a transaction: set it first. */
	int rc = simple(x, full ? S_SYNC_FULL : S_SYNC_NORMAL);
	return rc ? rc : simple(x, S_BEGIN);
}

int extidx_read_begin(struct extidx *x)
{
	return exec(x, "BEGIN");
}

int extidx_read_end(struct extidx *x)
{
	return exec(x, "COMMIT");
}

int extidx_commit(struct extidx *x)
{
	int rc = simple(x, S_COMMIT);
	if (rc)
		extidx_rollback(x);
	return rc;
}

void extidx_rollback(struct extidx *x)
{
	if (!sqlite3_get_autocommit(x->db))
		(void)simple(x, S_ROLLBACK);
}

int extidx_meta_get(struct extidx *x, const char *key, int64_t *v)
{
	sqlite3_stmt *s = stmt(x, S_META_GET);
	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	int ret;
	if (rc == SQLITE_ROW) {
		*v = sqlite3_column_int64(s, 0);
		ret = 0;
	} else {
		ret = rc == SQLITE_DONE ? -ENOENT : map_rc(x, rc);
	}
	done(s);
	return ret;
}

int extidx_meta_set(struct extidx *x, const char *key, int64_t v)
{
	sqlite3_stmt *s = stmt(x, S_META_SET);
	if (!s)
		return -EIO;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, v);
	return run(x, s);
}

int extidx_file_insert(struct extidx *x, const struct extidx_file *f, uint64_t *fid)
{
	sqlite3_stmt *s = stmt(x, S_FILE_INS);
	if (!s)
		return -EIO;
	sqlite3_bind_blob(s, 1, f->handle, (int)f->hlen, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (int64_t)f->ino);
	sqlite3_bind_int64(s, 3, (int64_t)f->size);
	sqlite3_bind_int64(s, 4, f->mtime_ns);
	sqlite3_bind_int64(s, 5, f->ctime_ns);
	int rc = run(x, s);
	if (!rc)
		*fid = (uint64_t)sqlite3_last_insert_rowid(x->db);
	return rc;
}

int extidx_file_by_handle(struct extidx *x, const unsigned char *h, uint32_t hlen, uint64_t *fid,
			  int *state)
{
	sqlite3_stmt *s = stmt(x, S_FILE_BYH);
	if (!s)
		return -EIO;
	sqlite3_bind_blob(s, 1, h, (int)hlen, SQLITE_STATIC);
	int rc = sqlite3_step(s), ret = 0;
	if (rc == SQLITE_ROW) {
		*fid = (uint64_t)sqlite3_column_int64(s, 0);
		*state = sqlite3_column_int(s, 1);
	} else {
		ret = rc == SQLITE_DONE ? -ENOENT : map_rc(x, rc);
	}
	done(s);
	return ret;
}

int extidx_file_set_state(struct extidx *x, uint64_t fid, int state)
{
	sqlite3_stmt *s = stmt(x, S_FILE_STATE);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)fid);
	sqlite3_bind_int(s, 2, state);
	return run(x, s);
}

int extidx_file_set_stat(struct extidx *x, uint64_t fid, uint64_t ino, uint64_t size,
			 int64_t mtime_ns, int64_t ctime_ns)
{
	sqlite3_stmt *s = stmt(x, S_FILE_STAT);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)fid);
	sqlite3_bind_int64(s, 2, (int64_t)ino);
	sqlite3_bind_int64(s, 3, (int64_t)size);
	sqlite3_bind_int64(s, 4, mtime_ns);
	sqlite3_bind_int64(s, 5, ctime_ns);
	return run(x, s);
}

int extidx_file_delete(struct extidx *x, uint64_t fid)
{
	sqlite3_stmt *s = stmt(x, S_FILE_DEL);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)fid);
	return run(x, s);
}

static int file_row(sqlite3_stmt *s, void *out)
{
	struct extidx_file *f = out;
	memset(f, 0, sizeof(*f));
	f->fid = (uint64_t)sqlite3_column_int64(s, 0);
	int hl = sqlite3_column_bytes(s, 1);
	if (hl < 0 || (size_t)hl > sizeof(f->handle))
		return -EIO;
	memcpy(f->handle, sqlite3_column_blob(s, 1), (size_t)hl);
	f->hlen = (uint32_t)hl;
	f->state = sqlite3_column_int(s, 2);
	f->ino = (uint64_t)sqlite3_column_int64(s, 3);
	f->size = (uint64_t)sqlite3_column_int64(s, 4);
	f->mtime_ns = sqlite3_column_int64(s, 5);
	f->ctime_ns = sqlite3_column_int64(s, 6);
	return 0;
}

int extidx_files_all(struct extidx *x, struct extidx_file **out, size_t *n)
{
	sqlite3_stmt *s = stmt(x, S_FILE_ALL);
	if (!s)
		return -EIO;
	struct rows r = {0};
	int ret = rows(x, s, &r, sizeof(**out), file_row);
	if (ret) {
		free(r.a);
		return ret;
	}
	*out = r.a;
	*n = r.n;
	return 0;
}

int extidx_snap_insert(struct extidx *x, const struct extidx_snap *sn, uint64_t *id)
{
	sqlite3_stmt *s = stmt(x, S_SNAP_INS);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)sn->epoch);
	sqlite3_bind_int64(s, 2, sn->created);
	sqlite3_bind_int64(s, 3, sn->expires);
	sqlite3_bind_int64(s, 4, sn->uid);
	sqlite3_bind_int(s, 5, sn->kind);
	sqlite3_bind_text(s, 6, sn->label, -1, SQLITE_STATIC);
	int rc = run(x, s);
	if (!rc)
		*id = (uint64_t)sqlite3_last_insert_rowid(x->db);
	return rc;
}

int extidx_snap_set_state(struct extidx *x, uint64_t id, int state)
{
	sqlite3_stmt *s = stmt(x, S_SNAP_STATE);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)id);
	sqlite3_bind_int(s, 2, state);
	return run(x, s);
}

int extidx_snap_set_label(struct extidx *x, uint64_t id, const char *label)
{
	sqlite3_stmt *s = stmt(x, S_SNAP_LABEL);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)id);
	if (label && *label)
		sqlite3_bind_text(s, 2, label, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 2);
	return run(x, s);
}

int extidx_snap_delete(struct extidx *x, uint64_t id)
{
	sqlite3_stmt *s = stmt(x, S_SNAP_DELFILES);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)id);
	int rc = run(x, s);
	if (rc)
		return rc;
	if (!(s = stmt(x, S_SNAP_DEL)))
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)id);
	return run(x, s);
}

static void snap_row(sqlite3_stmt *s, struct extidx_snap *o)
{
	memset(o, 0, sizeof(*o));
	o->id = (uint64_t)sqlite3_column_int64(s, 0);
	o->epoch = (uint64_t)sqlite3_column_int64(s, 1);
	o->created = sqlite3_column_int64(s, 2);
	o->expires = sqlite3_column_int64(s, 3);
	o->uid = (uint32_t)sqlite3_column_int64(s, 4);
	o->kind = sqlite3_column_int(s, 5);
	const unsigned char *l = sqlite3_column_text(s, 6);
	if (l)
		strlcpy(o->label, (const char *)l, sizeof(o->label));
	o->state = sqlite3_column_int(s, 7);
}

int extidx_snap_get(struct extidx *x, uint64_t id, struct extidx_snap *out)
{
	sqlite3_stmt *s = stmt(x, S_SNAP_GET);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)id);
	int rc = sqlite3_step(s), ret = 0;
	if (rc == SQLITE_ROW)
		snap_row(s, out);
	else
		ret = rc == SQLITE_DONE ? -ENOENT : map_rc(x, rc);
	done(s);
	return ret;
}

static int snap_row_v(sqlite3_stmt *s, void *out)
{
	snap_row(s, out);
	return 0;
}

int extidx_snaps_all(struct extidx *x, struct extidx_snap **out, size_t *n)
{
	sqlite3_stmt *s = stmt(x, S_SNAP_ALL);
	if (!s)
		return -EIO;
	struct rows r = {0};
	int ret = rows(x, s, &r, sizeof(**out), snap_row_v);
	if (ret) {
		free(r.a);
		return ret;
	}
	*out = r.a;
	*n = r.n;
	return 0;
}

int extidx_sfile_insert(struct extidx *x, const struct extidx_sfile *f)
{
	sqlite3_stmt *s = stmt(x, S_SF_INS);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)f->snap);
	sqlite3_bind_text(s, 2, f->path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, (int64_t)f->fid);
	sqlite3_bind_int64(s, 4, (int64_t)f->size);
	sqlite3_bind_int64(s, 5, f->mode);
	sqlite3_bind_int64(s, 6, f->uid);
	sqlite3_bind_int64(s, 7, f->gid);
	sqlite3_bind_int64(s, 8, f->atime_ns);
	sqlite3_bind_int64(s, 9, f->mtime_ns);
	sqlite3_bind_int64(s, 10, f->ctime_ns);
	sqlite3_bind_int64(s, 11, (int64_t)f->ino);
	return run(x, s);
}

static void sfile_row(sqlite3_stmt *s, struct extidx_sfile *o)
{
	o->snap = (uint64_t)sqlite3_column_int64(s, 0);
	o->fid = (uint64_t)sqlite3_column_int64(s, 2);
	o->size = (uint64_t)sqlite3_column_int64(s, 3);
	o->mode = (uint32_t)sqlite3_column_int64(s, 4);
	o->uid = (uint32_t)sqlite3_column_int64(s, 5);
	o->gid = (uint32_t)sqlite3_column_int64(s, 6);
	o->atime_ns = sqlite3_column_int64(s, 7);
	o->mtime_ns = sqlite3_column_int64(s, 8);
	o->ctime_ns = sqlite3_column_int64(s, 9);
	o->ino = (uint64_t)sqlite3_column_int64(s, 10);
}

static int sfile_row_path(sqlite3_stmt *s, void *out)
{
	struct extidx_sfile *f = out;
	sfile_row(s, f);
	const unsigned char *p = sqlite3_column_text(s, 1);
	f->path = strdup(p ? (const char *)p : "");
	return f->path ? 0 : -ENOMEM;
}

int extidx_sfiles(struct extidx *x, uint64_t snap, struct extidx_sfile **out, size_t *n)
{
	sqlite3_stmt *s = stmt(x, snap ? S_SF_OF : S_SF_ALL);
	if (!s)
		return -EIO;
	if (snap)
		sqlite3_bind_int64(s, 1, (int64_t)snap);
	struct rows r = {0};
	int ret = rows(x, s, &r, sizeof(**out), sfile_row_path);
	if (ret) {
		extidx_sfiles_free(r.a, r.n);
		return ret;
	}
	*out = r.a;
	*n = r.n;
	return 0;
}

/* One row of s (bound) into out and pathbuf: 0, -ENOENT (no row), -ENAMETOOLONG. */
static int sfile_one(struct extidx *x, sqlite3_stmt *s, struct extidx_sfile *out, char *pathbuf,
		     size_t len)
{
	int rc = sqlite3_step(s), ret = 0;
	if (rc == SQLITE_ROW) {
		sfile_row(s, out);
		const unsigned char *p = sqlite3_column_text(s, 1);
		if (pathbuf && len) {
			if (strlcpy(pathbuf, p ? (const char *)p : "", len) >= len)
				ret = -ENAMETOOLONG;
			out->path = pathbuf;
		} else {
			out->path = NULL;
		}
	} else {
		ret = rc == SQLITE_DONE ? -ENOENT : map_rc(x, rc);
	}
	done(s);
	return ret;
}

int extidx_sfile_by_path(struct extidx *x, uint64_t snap, const char *path,
			 struct extidx_sfile *out, char *pathbuf, size_t len)
{
	sqlite3_stmt *s = stmt(x, S_SF_PATH);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)snap);
	sqlite3_bind_text(s, 2, path, -1, SQLITE_STATIC);
	return sfile_one(x, s, out, pathbuf, len);
}

int extidx_sfile_next(struct extidx *x, uint64_t snap, const char *lo, size_t lolen, int incl,
		      const char *hi, size_t hilen, struct extidx_sfile *out, char *pathbuf,
		      size_t len)
{
	static const char empty[1];
	sqlite3_stmt *s = stmt(x, incl ? S_SF_NEXT_GE : S_SF_NEXT_GT);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)snap);
	sqlite3_bind_text(s, 2, lo, (int)lolen, SQLITE_STATIC);
	if (hi)
		sqlite3_bind_text(s, 3, hi, (int)hilen, SQLITE_STATIC);
	else
		sqlite3_bind_blob(s, 3, empty, 0, SQLITE_STATIC);
	return sfile_one(x, s, out, pathbuf, len);
}

void extidx_sfiles_free(struct extidx_sfile *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(a[i].path);
	free(a);
}

int extidx_sfile_count(struct extidx *x, uint64_t snap, uint64_t *n)
{
	sqlite3_stmt *s = stmt(x, S_SF_COUNT);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)snap);
	int rc = sqlite3_step(s), ret = 0;
	if (rc == SQLITE_ROW)
		*n = (uint64_t)sqlite3_column_int64(s, 0);
	else
		ret = map_rc(x, rc);
	done(s);
	return ret;
}

int extidx_sfile_fid_refs(struct extidx *x, uint64_t fid, uint64_t *n)
{
	sqlite3_stmt *s = stmt(x, S_SF_FIDREFS);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)fid);
	int rc = sqlite3_step(s), ret = 0;
	if (rc == SQLITE_ROW)
		*n = (uint64_t)sqlite3_column_int64(s, 0);
	else
		ret = map_rc(x, rc);
	done(s);
	return ret;
}

int extidx_ext_insert(struct extidx *x, const struct ext *e, const uint32_t *sums)
{
	sqlite3_stmt *s = stmt(x, S_EXT_INS);
	if (!s)
		return -EIO;
	uint32_t le[EXTIDX_MAX_NBLK];
	if (sums && e->nblk <= EXTIDX_MAX_NBLK) {
		for (uint32_t i = 0; i < e->nblk; i++)
			le[i] = htole32(sums[i]);
		sqlite3_bind_blob(s, 7, le, (int)(e->nblk * sizeof(*le)), SQLITE_STATIC);
	} else {
		sqlite3_bind_null(s, 7);
	}
	sqlite3_bind_int64(s, 1, (int64_t)e->fid);
	sqlite3_bind_int64(s, 2, (int64_t)e->blk);
	sqlite3_bind_int64(s, 3, (int64_t)e->efrom);
	sqlite3_bind_int64(s, 4, (int64_t)e->eto);
	sqlite3_bind_int64(s, 5, e->nblk);
	if (e->loc >= 0)
		sqlite3_bind_int64(s, 6, e->loc);
	else
		sqlite3_bind_null(s, 6);
	return run(x, s);
}

int extidx_ext_delete(struct extidx *x, uint64_t fid, uint64_t blk, uint64_t efrom)
{
	sqlite3_stmt *s = stmt(x, S_EXT_DEL);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)fid);
	sqlite3_bind_int64(s, 2, (int64_t)blk);
	sqlite3_bind_int64(s, 3, (int64_t)efrom);
	return run(x, s);
}

static int ext_row(sqlite3_stmt *s, void *out)
{
	struct ext *e = out;
	e->fid = (uint64_t)sqlite3_column_int64(s, 0);
	e->blk = (uint64_t)sqlite3_column_int64(s, 1);
	e->efrom = (uint64_t)sqlite3_column_int64(s, 2);
	e->eto = (uint64_t)sqlite3_column_int64(s, 3);
	e->nblk = (uint32_t)sqlite3_column_int64(s, 4);
	e->loc = sqlite3_column_type(s, 5) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 5);
	e->sumi = -1;
	return 0;
}

/* Column 6 (sums) of an extent row into *sums at *nsums, host order: sets
 * e->sumi, or leaves it -1 when the row has none; -EIO when its length does
 * not match nblk (an edited row). */
static int row_sums(sqlite3_stmt *s, struct ext *e, struct extidx_sums *sums)
{
	int len = sqlite3_column_bytes(s, 6);
	if (sqlite3_column_type(s, 6) == SQLITE_NULL)
		return 0;
	if (len != (int)(e->nblk * sizeof(uint32_t)))
		return -EIO;
	uint32_t *na = sums->a;
	while (sums->n + e->nblk > sums->cap) {
		na = store_grow(sums->a, sums->cap, &sums->cap, sizeof(*na), 256);
		if (!na)
			return -ENOMEM;
		sums->a = na;
	}
	const unsigned char *p = sqlite3_column_blob(s, 6);
	for (uint32_t i = 0; i < e->nblk; i++) {
		uint32_t v;
		memcpy(&v, p + 4 * i, 4);
		sums->a[sums->n + i] = le32toh(v);
	}
	e->sumi = (int64_t)sums->n;
	sums->n += e->nblk;
	return 0;
}

/* Extent rows appended to the caller's array (*a, *n, *cap). */
static int collect(struct extidx *x, sqlite3_stmt *s, struct ext **a, size_t *n, size_t *cap)
{
	struct rows r = {*a, *n, *cap};
	int ret = rows(x, s, &r, sizeof(**a), ext_row);
	*a = r.a;
	*n = r.n;
	*cap = r.cap;
	return ret;
}

int extidx_ext_range(struct extidx *x, uint64_t fid, uint64_t b0, uint64_t b1, uint64_t at,
		     uint32_t maxn, struct ext **a, size_t *n, size_t *cap)
{
	sqlite3_stmt *s = stmt(x, at == UINT64_MAX ? S_EXT_RANGE : S_EXT_RANGE_AT);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)fid);
	if (maxn < 1 || maxn > EXTIDX_MAX_NBLK)
		maxn = maxn < 1 ? 1 : EXTIDX_MAX_NBLK;
	sqlite3_bind_int64(s, 2, (int64_t)b0 - (int64_t)maxn);
	sqlite3_bind_int64(s, 3, (int64_t)b1);
	sqlite3_bind_int64(s, 4, (int64_t)b0);
	if (at != UINT64_MAX)
		sqlite3_bind_int64(s, 5, (int64_t)at);
	return collect(x, s, a, n, cap);
}

int extidx_ext_range_sums(struct extidx *x, uint64_t fid, uint64_t b0, uint64_t b1, uint64_t at,
			  uint32_t maxn, struct ext **a, size_t *n, size_t *cap,
			  struct extidx_sums *sums)
{
	sqlite3_stmt *s = stmt(x, S_EXT_RANGE_SUMS);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)fid);
	if (maxn < 1 || maxn > EXTIDX_MAX_NBLK)
		maxn = maxn < 1 ? 1 : EXTIDX_MAX_NBLK;
	sqlite3_bind_int64(s, 2, (int64_t)b0 - (int64_t)maxn);
	sqlite3_bind_int64(s, 3, (int64_t)b1);
	sqlite3_bind_int64(s, 4, (int64_t)b0);
	sqlite3_bind_int64(s, 5, (int64_t)at);
	int rc, ret = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct ext *na = store_grow(*a, *n, cap, sizeof(**a), 16);
		if (!na) {
			ret = -ENOMEM;
			break;
		}
		*a = na;
		ext_row(s, &na[*n]);
		if ((ret = row_sums(s, &na[*n], sums)))
			break;
		(*n)++;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = map_rc(x, rc);
	done(s);
	return ret;
}

int extidx_ext_each_sums(struct extidx *x,
			 int (*fn)(void *arg, const struct ext *e, const uint32_t *sums), void *arg)
{
	sqlite3_stmt *s = stmt(x, S_EXT_ALL_SUMS);
	if (!s)
		return -EIO;
	int rc, ret = 0;
	struct ext e;
	struct extidx_sums sums = {0};
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		ext_row(s, &e);
		sums.n = 0;
		int bad = row_sums(s, &e, &sums);
		if (bad == -ENOMEM) {
			ret = bad;
			break;
		}
		if ((ret = fn(arg, &e, bad ? NULL : e.sumi < 0 ? NULL : sums.a)))
			break;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = map_rc(x, rc);
	done(s);
	free(sums.a);
	return ret;
}

int extidx_ext_fid(struct extidx *x, uint64_t fid, uint64_t at, struct ext **a, size_t *n,
		   size_t *cap)
{
	sqlite3_stmt *s = stmt(x, at == UINT64_MAX ? S_EXT_FID : S_EXT_FID_AT);
	if (!s)
		return -EIO;
	sqlite3_bind_int64(s, 1, (int64_t)fid);
	if (at != UINT64_MAX)
		sqlite3_bind_int64(s, 2, (int64_t)at);
	return collect(x, s, a, n, cap);
}

int extidx_ext_each(struct extidx *x, int (*fn)(void *arg, const struct ext *e), void *arg)
{
	sqlite3_stmt *s = stmt(x, S_EXT_ALL);
	if (!s)
		return -EIO;
	int rc, ret = 0;
	struct ext e;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		ext_row(s, &e);
		if ((ret = fn(arg, &e)))
			break;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = map_rc(x, rc);
	done(s);
	return ret;
}

int extidx_ext_stats(struct extidx *x, uint64_t *count, uint64_t *data_blocks)
{
	sqlite3_stmt *s = stmt(x, S_EXT_STATS);
	if (!s)
		return -EIO;
	int rc = sqlite3_step(s), ret = 0;
	if (rc == SQLITE_ROW) {
		*count = (uint64_t)sqlite3_column_int64(s, 0);
		*data_blocks = (uint64_t)sqlite3_column_int64(s, 1);
	} else {
		ret = map_rc(x, rc);
	}
	done(s);
	return ret;
}

int64_t extidx_db_bytes(struct extidx *x)
{
	struct stat sb;
	int64_t n = 0;
	char p[4096];
	if (!stat(x->path, &sb))
		n += (int64_t)sb.st_blocks * 512;
	snprintf(p, sizeof(p), "%s-wal", x->path);
	if (!stat(p, &sb))
		n += (int64_t)sb.st_blocks * 512;
	return n;
}

/* For the namespace index (nsidx.c), which shares the connection. */
struct sqlite3 *extidx_db(struct extidx *x)
{
	return x->db;
}

int extidx_errno(struct extidx *x, int rc)
{
	return map_rc(x, rc);
}

int extidx_corrupt(struct extidx *x, const char *why)
{
	x->logf(3, "snapstore: %s: index corrupt: %s", x->path, why);
	return -EIO;
}
