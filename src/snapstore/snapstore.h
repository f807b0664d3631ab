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
#include <time.h>

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
 * open after a crash to tell the daemon's last writes from later ones), and
 * recreates the space reserve if it was used. */
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
/* Unlocking the write lock after a hook ran under it records the file's
 * ctime, mtime and size (an fstat and a 32-byte write to the store's marks
 * file): after a crash, recovery trusts a change the daemon recorded so and
 * treats any later one as made from outside (stale). So call it after the
 * change, not before. */
void store_file_unlock(struct store_file *sf);
/* The same, with fd open on the file (any mode): the record is taken from
 * it, with no lookup of the file by handle. fd < 0: store_file_unlock. */
void store_file_unlock_fd(struct store_file *sf, int fd);

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
/* Before store_cow_range, under the same lock: 1 when that call would copy
 * nothing because no snapshot covers the file or every block of the range
 * was already preserved (or found not needed) by an earlier hook since the
 * file's last new cover; the change is then recorded as store_cow_range
 * records it, and the caller goes straight to the change. 0: call
 * store_cow_range. No I/O, no store mutex. */
int store_cow_cached(struct store_file *sf, uint64_t off, uint64_t len);
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

/* Give snapshot id a new label (NULL or "": none; at most STORE_LABEL_MAX
 * bytes, else -EINVAL); -ENOENT if unknown. Durable on return. */
int store_relabel(struct store *st, uint64_t id, const char *label);

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

/*
 * Tree snapshots (docs/SNAPSTORE.md, "Tree snapshots"). A tree snapshot
 * records an epoch and a root and copies nothing: O(1) whatever the number
 * of files. It keeps the namespace and metadata of every node (directory,
 * regular file, symlink, FIFO, socket, device) as well as the bytes, copy-on-
 * write: before the daemon changes a node's attributes (anything that moves
 * its ctime: write, truncate, chmod, chown, utimens, setxattr, link, unlink,
 * rename of or into it) it asks store_ns_need() and, on 1, store_ns_save()
 * with the node's current attributes; before it changes a directory entry it
 * calls store_ns_entry() with what the entry is now. Both are durable on
 * return; only then may the daemon change the live object.
 *
 * Nodes are identified like files (kernel handle -> struct store_file); the
 * persistent id ("nid") is the file id, assigned on first need.
 */

/* A node's attributes. xattrs are packed: name, NUL, u32 value length (host
 * order), value; sorted by name (bytewise). target: a symlink's target (no
 * NUL). */
struct store_attr {
	uint32_t mode; /* incl. S_IFMT */
	uint32_t uid, gid;
	uint64_t nlink, size, rdev, ino;
	struct timespec atime, mtime, ctime;
	const char *target;
	uint32_t target_len;
	const void *xattrs;
	uint32_t xattrs_len;
};

/*
 * Pin the tree under root (path: its path relative to the source root, ""
 * for the root itself) as a new snapshot of kind p->kind. O(1): it looks at
 * no file. The caller guarantees that no namespace, metadata or data change
 * is in flight (it holds its own exclusive lock around the call), so the pin
 * falls between two operations. Conservatively, every node of the source is
 * preserved for it (see the doc); the daemon exposes only the subtree.
 */
int store_pin_tree(struct store *st, const struct store_pin *p, struct store_file *root,
		   const char *path, uint64_t *id);
/* 1: id is a tree snapshot (its root nid and path, NUL-terminated, into
 * path/pathlen; -ERANGE if too small); 0: a file-list snapshot; -ENOENT. */
int store_snap_is_tree(struct store *st, uint64_t id, uint64_t *root_fid, char *path,
		       size_t pathlen);
/* Whether any valid tree snapshot is live: one atomic load. */
int store_ns_active(struct store *st);
/* 1 if a live tree snapshot needs this node's current attributes saved before
 * it changes (call store_ns_save then), else 0, or -errno. In memory after the
 * first call on a node (one index seek then). Call with the node's write lock
 * held, before every change of it (also when the answer will be 0: a tracked
 * file is then marked so that store_file_unlock records the change for crash
 * recovery). */
int store_ns_need(struct store_file *sf);
/*
 * Save the node's current attributes `now` for every live tree snapshot that
 * needs them; for a regular file, those snapshots also start preserving its
 * blocks (the copy-on-write hooks then do so, as for file snapshots). Call
 * with the node's write lock held, before the change; fd is a descriptor of
 * the node (unused today: -1 is fine). Durable on return (synchronous=FULL
 * when a pinned snapshot needs it). On error nothing was recorded and the
 * caller must not change the node.
 */
int store_ns_save(struct store_file *sf, int fd, const struct store_attr *now);
/*
 * Entry `name` of directory dir is about to change (create over absent,
 * unlink, rmdir, rename from or to, replace, exchange); child is what the
 * entry names now (NULL: absent), child_type its S_IFMT bits. Records the
 * entry's current state if a live tree snapshot needs it (assigning nids as
 * needed). Call with dir's write lock held. Durable on return.
 */
int store_ns_entry(struct store *st, struct store_file *dir, const char *name,
		   struct store_file *child, uint32_t child_type);
/* The node's nid (0: none yet, so no row names it), loading it from the index
 * on the first call for a node (later calls: no I/O). For the read side:
 * store_file_fid() stays 0 until something loads it. */
int store_ns_nid(struct store_file *sf, uint64_t *nid);
/* The node was just created: nothing before now can need it. Keep the
 * reference (the daemon's inode) to keep that knowledge cheap. */
void store_ns_born(struct store_file *sf);

/*
 * The read side, for tree snapshot id (call with the node's read lock held
 * where there is a live node, so no save + change slips in between):
 * store_tree_attr: 0 and *out from a saved row (target and xattrs point into
 * buf; -ERANGE if it is too small); 1: no row covers the snapshot, the live
 * node's attributes are the snapshot's (the caller stats it); -EIO: the
 * snapshot is stale, or the node changed behind the store's back (its live
 * ctime is after the pin and no row covers it); -ENOENT: not a tree snapshot.
 */
int store_tree_attr(struct store *st, uint64_t id, struct store_file *sf, struct store_attr *out,
		    char *buf, size_t buflen);
/* The same for a caller that has just stat'ed the live node (under its read
 * lock): the staleness check uses live->st_ctim instead of opening the node
 * by handle (saves an open_by_handle_at per call). live NULL: as above. */
int store_tree_attr_st(struct store *st, uint64_t id, struct store_file *sf,
		       const struct stat *live, struct store_attr *out, char *buf, size_t buflen);
/* The same by nid, for nodes reached through a saved entry (which may be gone
 * live): 1 means open it with store_fid_open and stat it. */
int store_tree_attr_fid(struct store *st, uint64_t id, uint64_t fid, struct store_attr *out,
			char *buf, size_t buflen);
/* 0: a row covers entry `name` of directory dir_fid at the snapshot (*child_fid
 * 0: absent then); 1: no row, the live entry is the snapshot's. dir_fid 0: 1. */
int store_tree_lookup(struct store *st, uint64_t id, uint64_t dir_fid, const char *name,
		      uint64_t *child_fid, uint32_t *child_type);
/* Every saved entry of dir_fid covering the snapshot, in bytewise name order,
 * child_fid 0 ones too (they hide live names); live names without a row are
 * the snapshot's. fn is called with no store lock held; non-zero stops and is
 * returned. */
int store_tree_entries(struct store *st, uint64_t id, uint64_t dir_fid,
		       int (*fn)(void *arg, const char *name, uint64_t child_fid,
				 uint32_t child_type),
		       void *arg);
/* The same from the first name (bytewise) after `after` (NULL or "": from
 * the start), for a readdir resumed at an offset: one seek, not a rescan. */
int store_tree_entries_after(struct store *st, uint64_t id, uint64_t dir_fid, const char *after,
			     int (*fn)(void *arg, const char *name, uint64_t child_fid,
				       uint32_t child_type),
			     void *arg);
/* Bytes [off, off + len) of regular file fid as at the snapshot, clipped to
 * size_at_s (from store_tree_attr): preserved blocks where the file changed,
 * else the live file. -EIO when stale or a needed block is missing. Takes the
 * file's read lock itself: the caller must not hold its write lock. A node
 * with no nid (store_ns_nid 0) has no row: read the live file directly. */
ssize_t store_tree_read(struct store *st, uint64_t id, uint64_t fid, uint64_t size_at_s, void *buf,
			size_t len, uint64_t off);
/* The handle of nid fid (handle_type into *htype, bytes into h, at most *hlen,
 * MAX_HANDLE_SZ is enough); -ENOENT if unknown, -ERANGE. */
int store_fid_handle(struct store *st, uint64_t fid, unsigned char *h, uint32_t *hlen, int *htype);
/* A new descriptor of live node fid by open_by_handle_at(flags); -ESTALE when
 * it is gone, -ENOENT if fid is unknown. */
int store_fid_open(struct store *st, uint64_t fid, int flags);

struct store_stats {
	uint64_t bytes_on_disk;	  /* index + WAL + allocated block-file space */
	uint64_t bytes_preserved; /* sum of extents with data */
	uint64_t extents;
	uint64_t snapshots;
	uint64_t epoch;
	uint64_t block_size;
	uint64_t cow_copies; /* since open: extents written by the hooks */
	uint64_t cow_bytes;
	uint64_t cow_commits; /* since open: index transactions of the hooks (a group: one) */
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
 * "release:committed" (rows deleted, space not yet punched), "ns:committed"
 * (a tree snapshot's attribute or entry row committed, the caller's change
 * not yet made). NULL: none.
 * Process-wide.
 */
void store_set_test_hook(void (*fn)(const char *point));

/* Open the live node of sf by its handle (flags as open(2); O_PATH is
 * fine): a new descriptor, or -ESTALE when the node is gone. */
int store_file_open(struct store_file *sf, int flags);

#endif /* SNAPSTORE_H */
