/* SPDX-License-Identifier: MIT */
/*
 * The extent index: every SQL statement of the store lives behind this
 * interface, and SQLite result codes never leave it (they become -errno).
 * One connection, not thread-safe: callers hold the store mutex.
 */
#ifndef EXTIDX_I_H
#define EXTIDX_I_H

#include <stddef.h>
#include <stdint.h>

#define EXTIDX_SCHEMA_VERSION 3		 /* 2: extents.sums; 3: ns_trees, ns_attr, ns_entry */
#define EXTIDX_APP_ID	      0x536e6170 /* "Snap" */
#define EXTIDX_MAX_NBLK	      256u	 /* cap on an extent's length, for range queries */

struct extidx;

/* An extent row: blocks [blk, blk + nblk) of fid held, for epochs [efrom, eto),
 * the bytes at block-file offset loc, or zeros when loc < 0 (a hole). */
struct ext {
	uint64_t fid, blk, efrom, eto;
	uint32_t nblk;
	int64_t loc;
	int64_t sumi; /* extidx_ext_range_sums: index of its first block's checksum; -1: none */
};

/* Per-block checksums collected with extents (see extidx_ext_range_sums). */
struct extidx_sums {
	uint32_t *a;
	size_t n, cap;
};

struct extidx_file {
	uint64_t fid;
	unsigned char handle[136];
	uint32_t hlen;
	int state;
	uint64_t ino, size;
	int64_t mtime_ns, ctime_ns;
};

struct extidx_snap {
	uint64_t id, epoch;
	int64_t created, expires;
	uint32_t uid;
	int kind, state;
	char label[257];
};

struct extidx_sfile {
	uint64_t snap, fid;
	char *path; /* owned by the array (see extidx_sfiles_free) */
	uint64_t size, ino;
	uint32_t mode, uid, gid;
	int64_t atime_ns, mtime_ns, ctime_ns;
};

/* Open an existing index read-write (create: make a new, empty one with block
 * size *block_size). Checks application_id and user_version: -EPROTO for a newer
 * schema, -EIO for a file that is not an index or is corrupt, -EINVAL when
 * *block_size is non-zero and differs from the index's; *block_size is set to
 * the index's. Writes nothing to an existing index. Problems (corruption,
 * version) are reported through logf(level, printf format...), syslog levels;
 * the module never calls up into the store. */
int extidx_open(const char *path, int create, uint32_t *block_size,
		void (*logf)(int level, const char *fmt, ...), struct extidx **out);
void extidx_close(struct extidx *x);
/* Bring an index of an older schema version to EXTIDX_SCHEMA_VERSION (one
 * transaction; nothing when current). Separate from open, so that open writes
 * nothing before the store's other refusal checks have passed. Version 2 adds
 * extents.sums and meta "sums" = 1 when every data extent carries them (0 when
 * older extents exist, which are then read unverified); version 3 adds the
 * tables of tree snapshots (nsidx_schema_sql). */
int extidx_upgrade(struct extidx *x);

/* Begin a write transaction whose commit syncs the WAL (full != 0:
 * synchronous=FULL) or not (NORMAL: survives a process kill, not power loss). */
/* A read transaction: the queries between see one state and take the
 * database lock once, not once per statement. */
int extidx_read_begin(struct extidx *x);
int extidx_read_end(struct extidx *x);
int extidx_begin(struct extidx *x, int full);
int extidx_commit(struct extidx *x);
void extidx_rollback(struct extidx *x);

int extidx_meta_get(struct extidx *x, const char *key, int64_t *v); /* -ENOENT */
int extidx_meta_set(struct extidx *x, const char *key, int64_t v);

int extidx_file_insert(struct extidx *x, const struct extidx_file *f, uint64_t *fid);
/* The fid of the row holding handle h: -ENOENT if none. */
int extidx_file_by_handle(struct extidx *x, const unsigned char *h, uint32_t hlen, uint64_t *fid,
			  int *state);
int extidx_file_set_state(struct extidx *x, uint64_t fid, int state);
int extidx_file_set_stat(struct extidx *x, uint64_t fid, uint64_t ino, uint64_t size,
			 int64_t mtime_ns, int64_t ctime_ns);
int extidx_file_delete(struct extidx *x, uint64_t fid);
/* Every file row (array to free()). */
int extidx_files_all(struct extidx *x, struct extidx_file **out, size_t *n);

int extidx_snap_insert(struct extidx *x, const struct extidx_snap *s, uint64_t *id);
int extidx_snap_set_state(struct extidx *x, uint64_t id, int state);
/* Delete a snapshot and its snap_files rows. */
int extidx_snap_delete(struct extidx *x, uint64_t id);
int extidx_snap_set_label(struct extidx *x, uint64_t id, const char *label); /* NULL/"": none */
int extidx_snap_get(struct extidx *x, uint64_t id, struct extidx_snap *out); /* -ENOENT */
int extidx_snaps_all(struct extidx *x, struct extidx_snap **out, size_t *n);

int extidx_sfile_insert(struct extidx *x, const struct extidx_sfile *f);
/* The files of one snapshot (snap != 0) or of every snapshot (snap == 0), by path. */
int extidx_sfiles(struct extidx *x, uint64_t snap, struct extidx_sfile **out, size_t *n);
int extidx_sfile_by_path(struct extidx *x, uint64_t snap, const char *path,
			 struct extidx_sfile *out, char *pathbuf, size_t len);
/* The first file of snapshot snap whose path is above lo[0..lolen) (or equal
 * when incl) and below hi[0..hilen) (hi NULL: no upper bound), in byte order:
 * one index seek. -ENOENT if there is none. */
int extidx_sfile_next(struct extidx *x, uint64_t snap, const char *lo, size_t lolen, int incl,
		      const char *hi, size_t hilen, struct extidx_sfile *out, char *pathbuf,
		      size_t len);
void extidx_sfiles_free(struct extidx_sfile *a, size_t n);
int extidx_sfile_count(struct extidx *x, uint64_t snap, uint64_t *n);
/* How many snap_files rows (of any snapshot) name fid. */
int extidx_sfile_fid_refs(struct extidx *x, uint64_t fid, uint64_t *n);

/* sums: nblk per-block checksums, or NULL (holes). */
int extidx_ext_insert(struct extidx *x, const struct ext *e, const uint32_t *sums);
int extidx_ext_delete(struct extidx *x, uint64_t fid, uint64_t blk, uint64_t efrom);
/* Extents of fid overlapping blocks [b0, b1); with at != UINT64_MAX only those with
 * efrom <= at < eto. Sorted by blk. Appends to *a (realloc'd). maxn bounds the nblk
 * of the file's extents (at most EXTIDX_MAX_NBLK): the query scans rows starting in
 * (b0 - maxn, b1), so a file of small extents pays for small windows. */
int extidx_ext_range(struct extidx *x, uint64_t fid, uint64_t b0, uint64_t b1, uint64_t at,
		     uint32_t maxn, struct ext **a, size_t *n, size_t *cap);
/* Every extent of fid (at == UINT64_MAX) or those covering epoch at. */
int extidx_ext_fid(struct extidx *x, uint64_t fid, uint64_t at, struct ext **a, size_t *n,
		   size_t *cap);
/* As extidx_ext_range at epoch at, with each row's checksums appended to *sums
 * (e->sumi). -EIO for a row whose checksums do not match its length. */
int extidx_ext_range_sums(struct extidx *x, uint64_t fid, uint64_t b0, uint64_t b1, uint64_t at,
			  uint32_t maxn, struct ext **a, size_t *n, size_t *cap,
			  struct extidx_sums *sums);
/* Every data extent with its checksums (NULL: none, or malformed). */
int extidx_ext_each_sums(struct extidx *x,
			 int (*fn)(void *arg, const struct ext *e, const uint32_t *sums),
			 void *arg);
/* Every extent, in (fid, blk, efrom) order, through a callback (non-zero stops). */
int extidx_ext_each(struct extidx *x, int (*fn)(void *arg, const struct ext *e), void *arg);
int extidx_ext_stats(struct extidx *x, uint64_t *count, uint64_t *data_blocks);

/* The connection and the result-code mapping, for nsidx.c (same floor, same
 * connection, same rules). */
struct sqlite3 *extidx_db(struct extidx *x);
int extidx_errno(struct extidx *x, int rc);
/* Log "index corrupt: why" and return -EIO. */
int extidx_corrupt(struct extidx *x, const char *why);

/* Size in bytes of index.db + WAL as SQLite sees it. */
int64_t extidx_db_bytes(struct extidx *x);

#endif /* EXTIDX_I_H */
