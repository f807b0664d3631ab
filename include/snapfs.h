/* SPDX-License-Identifier: MIT */
/*
 * libsnapfs: consistent snapshots of files on a snapfs mount.
 *
 * Every function works on paths or descriptors anywhere inside one snapfs
 * mount; the mount is found from the path (through libmount). Functions
 * return 0 (or a pointer) on success and -1 (or NULL) with errno set on
 * failure: ENOENT for an unknown snapshot or path, ENOTSUP for a path that
 * is not on a snapfs mount, EISDIR for a directory without recursion,
 * EXDEV for paths on different mounts; libsnapfs(3) lists every errno.
 * Names: snapfs_* for snapshots and mappings, snapseg_* for segments;
 * the first argument is the object acted on (a path in the mount, a
 * descriptor, a segment). Thread-safe. The library keeps process-wide state,
 * each piece under its own lock: the SIGBUS handler and the list of
 * segments it serves (set up at the first snapseg_create()), and the list
 * of snapfs_map() mappings.
 */
#ifndef SNAPFS_H
#define SNAPFS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SNAPFS_API __attribute__((visibility("default")))

/* The version of this header; snapfs_version() gives the library's. The
 * library keeps its ABI within one major version (the SONAME's number). */
#define SNAPFS_VERSION_MAJOR 0
#define SNAPFS_VERSION_MINOR 2
#define SNAPFS_VERSION_PATCH 0
#define SNAPFS_VERSION_NUMBER                                                                      \
	(SNAPFS_VERSION_MAJOR * 10000 + SNAPFS_VERSION_MINOR * 100 + SNAPFS_VERSION_PATCH)

/* The library's version as "MAJOR.MINOR.PATCH" (a static string). */
SNAPFS_API const char *snapfs_version(void);

/* Flags for snapfs_pin_ex(). */
#define SNAPFS_RECURSIVE 0x1u /* directories: every regular file under them */

/* One pinned snapshot of all n paths at one epoch, atomically: a writer
 * changing several of the files never yields a snapshot mixing before and
 * after. label may be NULL. The snapshot lives until snapfs_release(). */
SNAPFS_API int snapfs_pin(const char *const paths[], size_t n, const char *label, uint64_t *id);

/* snapfs_pin() with flags (SNAPFS_RECURSIVE) and an expiry (unix time, 0 for
 * never) after which the daemon releases it. */
SNAPFS_API int snapfs_pin_ex(const char *const paths[], size_t n, const char *label, unsigned flags,
			     int64_t expires, uint64_t *id);

/* Release snapshot id of the mount holding path_in_mount. */
SNAPFS_API int snapfs_release(const char *path_in_mount, uint64_t id);

/* Give pinned snapshot id of the mount holding path_in_mount a new label
 * (NULL or "": none). 0, or -1 with errno: ENOENT (unknown, or not the
 * caller's), EINVAL (an ephemeral snapshot, a label of 256 bytes or more). */
SNAPFS_API int snapfs_relabel(const char *path_in_mount, uint64_t id, const char *label);

/* From now on fd (a regular file on a snapfs mount) reads an ephemeral
 * snapshot taken at this instant, released when the descriptor is closed
 * (also at exit or crash). fd keeps its number and offset but becomes
 * read-only. *id (may be NULL) receives the snapshot's id. A descriptor
 * that reads a snapshot already keeps it: a read-only open on a
 * snapshot=open mount keeps the one taken at open (and fstat then shows
 * its attributes), a view file or a frozen descriptor its own. */
SNAPFS_API int snapfs_freeze(int fd, uint64_t *id);

/* A pread(2) of fd (a readable regular file on a snapfs mount) whose
 * bytes are all from one instant, whatever len is: no write lands inside
 * the bytes returned, nor part of one write(2). Up to 15 KiB it is one
 * request to the daemon; more holds an ephemeral snapshot for the call
 * (released before it returns). While the file is open for writing, each
 * call first waits for the write(2) calls in progress, as a snapshot does.
 * On a descriptor that reads a snapshot (a view file, a frozen descriptor,
 * a read-only open with snapshot=open) it reads that snapshot, as pread
 * does. Returns the bytes read (fewer only at end of file), or -1 with
 * errno: EBADF (not open for reading), EISDIR, EINVAL (not a regular
 * file, off < 0), ENOTSUP (not on snapfs), or what the read gave. The
 * descriptor's offset does not move. snapfs_pread(3). */
SNAPFS_API ssize_t snapfs_pread(int fd, void *buf, size_t len, off_t off);

/* The path of path's file inside snapshot id's view (MNT/<snapdir>/ID/...).
 * Returns a string the caller frees. */
SNAPFS_API char *snapfs_snapshot_path(const char *path, uint64_t id);

/* The root of the snapfs mount holding path (caller frees). */
SNAPFS_API char *snapfs_mount_root(const char *path);

/*
 * Listing and lookup: what snapctl list, show and diff print, as records.
 * Each function calls fn once per record, in the daemon's order, with a
 * pointer valid only during the call; fn returns 0 to go on, anything
 * else to stop, and the function then returns that value. The records
 * are fetched page by page, so a snapshot released meanwhile may end a
 * walk early with ENOENT. Records may grow at their end in a later minor
 * version; they are only ever passed by pointer. A caller sees only its
 * own snapshots unless it is root.
 */

/* Flags of struct snapfs_snapshot. */
#define SNAPFS_SNAP_EPHEMERAL 0x1u /* a freeze or open-time snapshot, not pinned */
#define SNAPFS_SNAP_STALE     0x2u /* lost (the store could not keep it); release it */

struct snapfs_snapshot {
	uint64_t id, epoch;
	int64_t created, expires; /* unix times; expires 0: never */
	uint64_t files;		  /* files in the snapshot */
	uint64_t bytes_held;	  /* store bytes only this snapshot keeps */
	uint32_t uid;		  /* owner */
	uint32_t flags;		  /* SNAPFS_SNAP_* */
	const char *label;	  /* "" when none */
};

struct snapfs_file {
	const char *path; /* relative to the mount root, as at pin time */
	uint64_t size;	  /* at pin time */
	int64_t mtime;
	uint32_t mode, uid, gid;
};

/* One changed byte range of a file since the snapshot. A file whose
 * changes could not be computed comes once with error set (an errno
 * value) and no range. */
struct snapfs_change {
	const char *path;
	uint64_t size;		 /* the file's size at pin time */
	uint64_t offset, length; /* the range, in the snapshot's terms */
	int error;
};

/* Every snapshot of the mount holding path_in_mount, by ascending id. */
SNAPFS_API int snapfs_list(const char *path_in_mount,
			   int (*fn)(const struct snapfs_snapshot *s, void *arg), void *arg);

/* Every file of snapshot id, by path. ENOENT: no such snapshot. */
SNAPFS_API int snapfs_show(const char *path_in_mount, uint64_t id,
			   int (*fn)(const struct snapfs_file *f, void *arg), void *arg);

/* Every range that differs between snapshot id and the live files, by
 * path then offset; with n > 0 only those of the files at or under the n
 * paths (relative to the mount root). ENOENT: no such snapshot. */
SNAPFS_API int snapfs_diff(const char *path_in_mount, uint64_t id, const char *const paths[],
			   size_t n, int (*fn)(const struct snapfs_change *c, void *arg),
			   void *arg);

/* The newest snapshot labelled label on the mount holding path_in_mount
 * into *id. ENOENT when there is none. */
SNAPFS_API int snapfs_lookup(const char *path_in_mount, const char *label, uint64_t *id);

/*
 * Deferred I/O (docs/SEGMENT.md): a segment is a reserved region of any
 * size (no memory or swap committed) into which snapseg_read() "reads" a
 * file range in constant time by pinning an ephemeral snapshot of it; each
 * page is filled from the snapshot the first time it is touched, so the
 * bytes are those of read time whatever happens to the file afterwards.
 * Segments need userfaultfd with write-protect support (Linux 5.7+;
 * unprivileged processes use UFFD_USER_MODE_ONLY): without it
 * snapseg_create() fails with ENOTSUP. All functions are thread-safe;
 * a process may have many segments.
 *
 * Faults are served on the thread that takes them: libsnapfs installs a
 * SIGBUS handler at the first snapseg_create() (userfaultfd in SIGBUS
 * mode) and chains to the disposition it replaced for every SIGBUS that
 * is not a segment fault. A program that installs its own SIGBUS handler
 * later must chain to the previous one; SIGBUS must not be blocked in
 * threads that touch segments.
 *
 * Caveats. If the daemon dies (or the snapshot is released by someone
 * else), touching a page that was never filled raises SIGBUS (the default
 * action, or the program's own handler); filled pages keep their bytes.
 * The region is not inherited by children (MADV_DONTFORK). The kernel does
 * not fill pages on behalf of a system call: passing unfilled segment
 * memory to read(2), write(2) and the like fails with EFAULT; touch it
 * first, or use snapseg_write().
 */
struct snapseg;
struct snapseg_stats {
	uint64_t faults;	 /* page faults served (MISSING faults) */
	uint64_t bytes_loaded;	 /* bytes filled from snapshots */
	uint64_t pages_written;	 /* pages snapseg_write actually wrote */
	uint64_t pages_skipped;	 /* pages snapseg_write skipped as unchanged */
	uint64_t snapshots_held; /* snapshots this segment still holds */
};

/* A new segment of size bytes (rounded up to pages), reading as zeros.
 * NULL with errno: EINVAL for size 0, ENOTSUP when userfaultfd or its
 * write-protect mode is missing, ENOMEM. Free it with snapseg_destroy(). */
SNAPFS_API struct snapseg *snapseg_create(size_t size);

/* The first byte of the segment (page-aligned). */
SNAPFS_API void *snapseg_base(const struct snapseg *seg);

/* Logically pread(fd, dst, len, off): returns the number of bytes the file
 * had there (len, or less at end of file) as soon as a snapshot is pinned,
 * in time independent of len. [dst, dst + len) must lie in the segment
 * (EINVAL otherwise); dst and off may have any alignment. The partial pages
 * at either end are filled at once; whole pages when first touched. Pages
 * that showed an earlier read are detached from it. On a file not on a
 * snapfs mount this is a plain pread(). -1 with errno on failure. */
SNAPFS_API ssize_t snapseg_read(struct snapseg *seg, void *dst, int fd, size_t len, off_t off);

/* Logically pwrite(fd, src, len, off), returning len: pages of src that
 * still show a snapshot of this same file at this same offset, were never
 * stored to, and whose bytes in the file have not changed since that
 * snapshot are skipped; everything else is written. src need not be in the
 * segment (then it is a plain pwrite). -1 with errno on failure (some bytes
 * may have been written). */
SNAPFS_API ssize_t snapseg_write(struct snapseg *seg, const void *src, int fd, size_t len,
				 off_t off);

/* Zero [addr, addr + len) of the segment and detach its pages from their
 * snapshots without loading them. -1 with errno (EINVAL: not in the segment). */
SNAPFS_API int snapseg_discard(struct snapseg *seg, void *addr, size_t len);

/* A consistent copy of the segment's counters. */
SNAPFS_API int snapseg_stats(const struct snapseg *seg, struct snapseg_stats *st);

/* Unmap the segment and release every snapshot it holds. seg may be NULL. */
SNAPFS_API void snapseg_destroy(struct snapseg *seg);

/* Pin an ephemeral snapshot of fd's file (regular, on snapfs) now and map
 * [off, off + len) of it privately: pages fill lazily from the snapshot,
 * stores stay private, the bytes never change, and the page cache is shared
 * with every process mapping the same snapshot. off must be page-aligned.
 * *id (may be NULL) receives the snapshot id. Release with snapfs_unmap()
 * (same addr and len). NULL with errno (ENOTSUP: not on snapfs). */
SNAPFS_API void *snapfs_map(int fd, off_t off, size_t len, uint64_t *id);

/* Unmap a snapfs_map() mapping and release its snapshot. -1 with EINVAL
 * when addr/len is not such a mapping. */
SNAPFS_API int snapfs_unmap(void *addr, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* SNAPFS_H */
