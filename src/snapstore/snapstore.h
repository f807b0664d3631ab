/* SPDX-License-Identifier: MIT */
/*
 * snapstore: copy-on-write snapshots of the files of one backing directory.
 *
 * A store lives in a directory (default SOURCE/.snapfs) holding a SQLite
 * index (index.db, WAL) and one block file (blocks). It knows nothing of
 * FUSE: the daemon calls the copy-on-write hooks below before it changes
 * bytes of a backing file, and the store preserves the old blocks that a
 * live snapshot still needs.
 *
 * Model. A global epoch E increases by one at every pin: a snapshot taken
 * now gets epoch E and the counter becomes E + 1, so writes after the pin
 * happen in a later epoch. An extent row (fid, blk, nblk, from, to, loc)
 * says: blocks [blk, blk + nblk) of file fid held, for every epoch in
 * [from, to), the bytes now stored at block-file offset loc (or zeros when
 * loc is a hole). Reading snapshot S (epoch s) takes, per block, the extent
 * with from <= s < to if there is one, else the live block, which has not
 * changed since s.
 *
 * Files are identified by their kernel file handle (name_to_handle_at):
 * it survives rename and hard links, and its generation number is not
 * fooled by inode-number reuse. open_by_handle_at() reopens a file without
 * knowing its path, which needs CAP_DAC_READ_SEARCH (a root daemon).
 *
 * Locking. Each struct store_file carries a rwlock that the daemon takes
 * around every change of the file's bytes (write lock, with the hook called
 * inside it) and around live reads (read lock): that is what makes a
 * read request atomic against writes. The store takes its own internal
 * mutex only after any file lock, never the other way round: lock order is
 * file locks (in increasing fid order when several) -> store mutex.
 *
 * Errors: functions that can fail return 0 (or a count) or -errno.
 * SQLite result codes never leave the store.
 */
#ifndef SNAPSTORE_H
#define SNAPSTORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

struct store;
struct store_file;

#define STORE_DEFAULT_BLOCK_SIZE 4096u
#define STORE_LABEL_MAX		 256

struct store_opts {
	uint32_t block_size; /* 0: default for a new store, or whatever an existing one has;
				non-zero must be a power of two in [512, 1 MiB] and match an
				existing store (-EINVAL otherwise) */
	uint64_t max_bytes;  /* 0: no limit; else preserved bytes may not exceed it (-ENOSPC) */
	int create;	     /* create the directory and an empty store if absent */
};

/*
 * Open (or create) the store in dir. source_fd is an open directory fd
 * (not O_PATH: open_by_handle_at() refuses those) on the backing filesystem;
 * files are reopened by handle relative to it. Recovery runs here: ephemeral snapshots are dropped,
 * expired snapshots released, extents no live snapshot needs are freed,
 * block-file space no extent references is punched out, and snapshots of
 * files that changed while the store was closed are marked stale.
 * Errors: -ENOENT (no store and !create), -EPROTO (schema newer than this
 * code: an explanatory line is logged), -EIO (corrupt index, missing block
 * file), -EINVAL (block size mismatch), others from the system.
 * On error nothing in dir is modified.
 *
 * dir may be a "/proc/self/fd/N" path: the daemon mounts on top of the
 * directory holding the store, so it reaches the store only through a
 * descriptor opened before mounting. Never resolve dir (no realpath): the
 * index is opened through a SQLite VFS whose xFullPathname keeps the path as
 * given, because SQLite 3.40's unix VFS resolves symlinks, which would send
 * the store's own I/O through the mount.
 */
int store_open(const char *dir, int source_fd, const struct store_opts *o, struct store **out);

/* Close cleanly: record every tracked file's stat so the next open can
 * detect changes made while unmounted, then free everything. Every
 * store_file must have been put before. */
void store_close(struct store *st);

/* The store's block size. */
uint32_t store_block_size(const struct store *st);

/* Periodic work, called about once a second by the daemon: releases
 * expired snapshots and records that the store is still alive (used by
 * open after a crash to tell the daemon's last writes from later ones). */
int store_tick(struct store *st);

/*
 * Per-file handle. fd is any descriptor of the file (O_PATH is fine).
 * Returns a new reference in *out; drop it with store_file_put(). The
 * same object is returned for the same file (same handle) while any
 * reference is held, so its lock is shared by everyone touching the file.
 */
int store_file_get(struct store *st, int fd, struct store_file **out);
void store_file_put(struct store_file *sf);

void store_file_rdlock(struct store_file *sf);
void store_file_wrlock(struct store_file *sf);
void store_file_unlock(struct store_file *sf);

/* Whether any live snapshot covers this file: when 0 the hooks are no-ops
 * and the caller may skip them. Cheap (no I/O). */
int store_file_tracked(const struct store_file *sf);

/* The file's persistent id in the index, 0 when it was never pinned. */
uint64_t store_file_fid(const struct store_file *sf);

/*
 * Copy-on-write hooks. Call with the file's write lock held, before the
 * change; fd must be open for reading on the file. On success every block
 * that the change may alter and that a live snapshot still needs has been
 * preserved (and for pinned snapshots is durable: copy written, block file
 * synced, index row committed). On failure (-ENOSPC when the store is
 * full, -EIO...) nothing was recorded and the caller must not change the
 * file.
 */
/* Bytes [off, off + len) are about to change: write, punch hole, zero range,
 * copy_file_range destination. */
int store_cow_range(struct store_file *sf, int fd, uint64_t off, uint64_t len);
/* Several byte ranges r[i] = {off, len}, increasing and disjoint, are about
 * to change: one plan, at most one sync, one index transaction. */
int store_cow_ranges(struct store_file *sf, int fd, const uint64_t (*r)[2], size_t n);
/* The file is about to be truncated to new_size (smaller or larger). */
int store_cow_truncate(struct store_file *sf, int fd, uint64_t new_size);
/* Everything from off to the end of the file is about to move or change
 * (collapse/insert range, O_TRUNC is store_cow_truncate(0)). */
int store_cow_tail(struct store_file *sf, int fd, uint64_t off);
/* The last link is about to go (unlink, rmdir of nothing, rename over it):
 * every block a live snapshot needs is preserved, and the file is detached:
 * its snapshots are served from the store alone from now on. */
int store_cow_unlink(struct store_file *sf, int fd);

enum store_kind { STORE_PINNED = 0, STORE_EPHEMERAL = 1 };
enum store_state { STORE_VALID = 0, STORE_STALE = 1 };

struct store_pin {
	enum store_kind kind;
	uint32_t uid;	   /* owner */
	const char *label; /* may be NULL; at most STORE_LABEL_MAX bytes */
	int64_t expires;   /* unix time, 0 for never */
};

struct store_pin_file {
	struct store_file *sf; /* the file */
	int fd;		       /* any fd of it, for fstat (O_PATH is fine) */
	const char *path;      /* its path relative to the source root at pin time */
};

/*
 * One snapshot of all n files at one epoch, atomically against every
 * writer that follows the locking rule: the store takes the read lock of
 * each file itself (callers must not hold any), records size, mode, owner
 * and times, assigns the epoch, commits one small transaction. O(1) in file
 * sizes. Only regular files. A file whose last link is gone: -ENOENT.
 */
int store_pin(struct store *st, const struct store_pin *p, const struct store_pin_file *files,
	      size_t n, uint64_t *id);

/* Release a snapshot (-ENOENT if unknown) and free every extent that no
 * remaining live snapshot needs: rows deleted, then the space punched out
 * of the block file. */
int store_release(struct store *st, uint64_t id);

struct store_snap {
	uint64_t id, epoch;
	int64_t created, expires; /* unix time; expires 0: never */
	uint32_t uid;
	enum store_kind kind;
	enum store_state state;
	char label[STORE_LABEL_MAX + 1];
	uint64_t nfiles;
	uint64_t bytes_held; /* store bytes that only this snapshot keeps */
};

struct store_snap_file {
	uint64_t fid;
	const char *path; /* valid during the callback only */
	struct stat st;	  /* as at pin time: size, mode, uid, gid, atime, mtime, ctime, ino */
};

/*
 * The cheap lookup: a snapshot's identity, owner, kind and state, without
 * its file count or held bytes. No I/O, no scan: an in-memory table kept in
 * step with pin, release, staleness, expiry and recovery, read under a lock
 * that no SQL work holds (binary search). For the daemon's lookups, getattr,
 * open and control checks. -ENOENT if unknown.
 */
struct store_snap_meta {
	uint64_t id, epoch;
	int64_t created, expires; /* unix time; expires 0: never */
	uint32_t uid;
	enum store_kind kind;
	enum store_state state;
};
int store_snap_meta(struct store *st, uint64_t id, struct store_snap_meta *out);

/* Calls fn for every live snapshot in increasing id order; stops and returns
 * fn's value if non-zero. */
int store_snap_list(struct store *st, int (*fn)(void *arg, const struct store_snap *s), void *arg);
/* One snapshot's summary; -ENOENT if unknown. Costly (counts its files and
 * held bytes under the store mutex): for list/show, not for lookups. */
int store_snap_get(struct store *st, uint64_t id, struct store_snap *out);
/* The files of a snapshot, in path order. */
int store_snap_files(struct store *st, uint64_t id,
		     int (*fn)(void *arg, const struct store_snap_file *f), void *arg);
/* One file of a snapshot by path (relative, no leading slash): -ENOENT.
 * One index seek on (snapshot, path): O(log n). */
int store_snap_file(struct store *st, uint64_t id, const char *path, struct store_snap_file *out,
		    char *pathbuf, size_t pathbuf_len);

/*
 * The entries directly under directory dir ("" = the root; no leading
 * slash) of snapshot id, in bytewise name order, starting after the name
 * `after` (NULL or "": from the start). Directories are implied by file
 * paths (a path a/b/c implies directories a and a/b); a name that is both a
 * file and a directory prefix (impossible for paths taken from one tree) is
 * listed once, as the file. fn(arg, name, is_dir, fid or 0, stat at pin or
 * NULL for a directory) is called with no lock held and returns non-zero to
 * stop (that value is returned). Costs O(log n) index seeks per returned
 * entry, independent of the number of files in the snapshot. -ENOENT
 * (unknown snapshot or directory), -ENOTDIR (dir is a file).
 */
int store_snap_readdir(struct store *st, uint64_t id, const char *dir, const char *after,
		       int (*fn)(void *arg, const char *name, int is_dir, uint64_t fid,
				 const struct stat *st),
		       void *arg);
/* 1 if path ("" = the root) is a directory of snapshot id (implied by a
 * file under it), 0 if not, -ENOENT for an unknown snapshot. O(log n). */
int store_snap_isdir(struct store *st, uint64_t id, const char *path);

/*
 * Read [off, off + len) of file fid as of snapshot id, clipped to its size
 * at pin time. Returns the byte count (0 at or past the end), -ENOENT if the
 * snapshot or the file in it is unknown, -EIO if the snapshot is stale or a
 * needed block is missing (never wrong bytes).
 */
ssize_t store_snap_read(struct store *st, uint64_t id, uint64_t fid, void *buf, size_t len,
			uint64_t off);

/*
 * The byte ranges of file fid that changed since snapshot id, block-granular,
 * merged, in increasing order; a size change reports the range between the
 * two sizes. fn(arg, off, len); -ENOENT for an unknown snapshot or file.
 */
int store_snap_changed(struct store *st, uint64_t id, uint64_t fid,
		       int (*fn)(void *arg, uint64_t off, uint64_t len), void *arg);

/*
 * Ephemeral snapshot id no longer needs the whole blocks of file fid inside
 * [off, off + len): from now on they are not preserved for it (when no
 * other snapshot needs them, copy-on-write skips them), reading them from
 * it fails with -EIO, and store_snap_changed reports them as changed. For
 * a holder that will never read them again (a segment's detached pages).
 * -EINVAL for a pinned snapshot, -ENOENT for an unknown one.
 */
int store_snap_forgo(struct store *st, uint64_t id, uint64_t fid, uint64_t off, uint64_t len);

struct store_stats {
	uint64_t bytes_on_disk;	  /* index + WAL + allocated block-file space */
	uint64_t bytes_preserved; /* sum of extents with data */
	uint64_t extents;
	uint64_t snapshots;
	uint64_t epoch;
	uint64_t block_size;
	uint64_t cow_copies; /* since open: extents written by the hooks */
	uint64_t cow_bytes;
	uint64_t store_reads; /* since open: snapshot reads served (partly) from the store */
	uint64_t store_read_bytes;
};
int store_stats(struct store *st, struct store_stats *out);

/* Verify the index against the block file: every extent inside the file,
 * no two extents sharing space, no allocated block-file space that no extent
 * references, every snapshot's files known. fn(arg, problem) per problem;
 * returns the number of problems (0: clean) or -errno. Read-only. */
int store_check(struct store *st, int (*fn)(void *arg, const char *problem), void *arg);

/*
 * Logging: the store reports problems (corrupt index, newer schema, stale
 * files found at open) through fn(level, message) with syslog levels
 * (3 error, 4 warning, 6 info). NULL restores the default (stderr). Set it
 * before store_open; it is a process-wide setting.
 */
void store_set_logger(void (*fn)(int level, const char *msg));

/*
 * Testing only: fn(point) is called at named points inside the store, so a
 * test can kill the process there. Points: "cow:copied" (blocks copied and
 * synced, rows not yet committed), "cow:committed", "pin:committed",
 * "release:committed" (rows deleted, space not yet punched). NULL: none.
 * Process-wide.
 */
void store_set_test_hook(void (*fn)(const char *point));

/* ---- TEMPORARY: tree snapshot API being written in tree-store ---- */
struct store_attr {
	uint32_t mode;
	uint32_t uid, gid;
	uint64_t nlink, size, rdev, ino;
	struct timespec atime, mtime, ctime;
	const char *target;
	uint32_t target_len;
	const void *xattrs;
	uint32_t xattrs_len;
};
int store_pin_tree(struct store *st, const struct store_pin *p, struct store_file *root,
		   const char *path, uint64_t *id);
int store_snap_is_tree(struct store *st, uint64_t id, uint64_t *root_fid, char *path,
		       size_t pathlen);
int store_ns_active(struct store *st);
int store_ns_need(struct store_file *sf);
int store_ns_save(struct store_file *sf, int fd, const struct store_attr *now);
int store_ns_entry(struct store *st, struct store_file *dir, const char *name,
		   struct store_file *child, uint32_t child_type);
void store_ns_born(struct store_file *sf);
int store_tree_attr(struct store *st, uint64_t id, struct store_file *sf, struct store_attr *out,
		    char *buf, size_t buflen);
int store_tree_attr_fid(struct store *st, uint64_t id, uint64_t fid, struct store_attr *out,
			char *buf, size_t buflen);
int store_tree_lookup(struct store *st, uint64_t id, uint64_t dir_fid, const char *name,
		      uint64_t *child_fid, uint32_t *child_type);
int store_tree_entries(struct store *st, uint64_t id, uint64_t dir_fid,
		       int (*fn)(void *arg, const char *name, uint64_t child_fid,
				 uint32_t child_type),
		       void *arg);
ssize_t store_tree_read(struct store *st, uint64_t id, uint64_t fid, uint64_t size_at_s,
			void *buf, size_t len, uint64_t off);
int store_fid_open(struct store *st, uint64_t fid, int flags);
/* Open the live node of sf by its handle (flags as open(2); O_PATH is
 * fine): a new descriptor, or -ESTALE when the node is gone. */
int store_file_open(struct store_file *sf, int flags);

#endif /* SNAPSTORE_H */
