/* SPDX-License-Identifier: MIT */
/* Private helpers of libsnapfs (libsnapfs.c), shared with snapctl, which
 * links libsnapfs' objects statically (snapfs_client_static): the shared
 * library does not export them. Thread-safe, no state. */
#ifndef CLIENT_I_H
#define CLIENT_I_H

#include <stddef.h>
#include <stdint.h>

struct snapfs_req;
struct libmnt_fs;

/* fn for every fuse.snapfs mount of /proc/self/mountinfo, in mount order,
 * until it returns non-zero (returned). -1 with errno when it cannot be read. */
int snapfs_mounts(int (*fn)(struct libmnt_fs *fs, void *arg), void *arg);

/* Find the snapfs mount holding path: its root and path's place in it
 * ("." for the root). -1 with errno (ENOTSUP: not on snapfs). */
int snapfs_locate(const char *path, char *root, size_t rootlen, char *rel, size_t rellen);
/* A zeroed request for op; free() it. */
struct snapfs_req *snapfs_req_new(uint32_t op);
/* Send r on a descriptor / to the mount root; -1 with errno from the daemon. */
int snapfs_call_fd(int fd, struct snapfs_req *r);
int snapfs_call(const char *root, struct snapfs_req *r);

#endif
