/* SPDX-License-Identifier: MIT */
/*
 * libsnapfs: consistent snapshots of files on a snapfs mount.
 *
 * Every function works on paths or descriptors anywhere inside one snapfs
 * mount; the mount is found from the path. Functions return 0 (or a
 * pointer) on success and -1 (or NULL) with errno set on failure:
 * ENOENT for an unknown snapshot or path, ENOTSUP for a path that is not on
 * a snapfs mount, EISDIR for a directory without recursion, EXDEV for paths
 * on different mounts. Thread-safe; no global state.
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

/* Flags for snapfs_pin_ex(). */
#define SNAPFS_RECURSIVE 0x1u /* directories: every regular file under them */

/* One pinned snapshot of all n paths at one epoch, atomically: a writer
 * changing several of the files never yields a snapshot mixing before and
 * after. label may be NULL. The snapshot lives until snapfs_release(). */
SNAPFS_API int snapfs_pin(const char *const paths[], size_t n, const char *label, uint64_t *id);

/* snapfs_pin() with flags (SNAPFS_RECURSIVE) and an expiry (unix time, 0 for
 * never) after which the daemon releases it. */
SNAPFS_API int snapfs_pin_ex(const char *const paths[], size_t n, const char *label,
			     unsigned flags, int64_t expires, uint64_t *id);

/* Release snapshot id of the mount holding path_in_mount. */
SNAPFS_API int snapfs_release(const char *path_in_mount, uint64_t id);

/* From now on fd (a regular file on a snapfs mount) reads an ephemeral
 * snapshot taken at this instant, released when the descriptor is closed
 * (also at exit or crash). fd keeps its number and offset but becomes
 * read-only. *id (may be NULL) receives the snapshot's id. */
SNAPFS_API int snapfs_freeze(int fd, uint64_t *id);

/* The path of path's file inside snapshot id's view (MNT/<snapdir>/ID/...).
 * Returns a string the caller frees. */
SNAPFS_API char *snapfs_snapshot_path(const char *path, uint64_t id);

/* The root of the snapfs mount holding path (caller frees). */
SNAPFS_API char *snapfs_mount_root(const char *path);

#ifdef __cplusplus
}
#endif
#endif /* SNAPFS_H */
