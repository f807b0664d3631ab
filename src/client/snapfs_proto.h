/* SPDX-License-Identifier: MIT */
/*
 * The control channel between libsnapfs and the daemon: one ioctl on any
 * file or directory inside the mount. The kernel copies a fixed-size
 * request in and the same struct out (FUSE restricted ioctl: the size is
 * encoded in the command, at most 16 KiB), and tells the daemon the
 * caller's uid and pid, which authenticate the request. Every field is
 * checked by the daemon: a malformed request gets -EINVAL in status,
 * never harms the daemon.
 */
#ifndef SNAPFS_PROTO_H
#define SNAPFS_PROTO_H

#include <stdint.h>
#include <sys/ioctl.h>

#define SNAPFS_PROTO_VERSION 1
#define SNAPFS_PROTO_DATA    15360 /* bytes of payload */
#define SNAPFS_PROTO_LABEL   256

enum snapfs_op {
	SNAPFS_OP_PIN = 1,     /* in: data = NUL-separated paths relative to the mount root,
				  count, label, expires, flags; out: id, epoch */
	SNAPFS_OP_RELEASE = 2, /* in: id */
	SNAPFS_OP_FREEZE = 3,  /* on an open regular file: ephemeral snapshot owned by that
				  open; out: id, data = path of the file in the snapshot view */
	SNAPFS_OP_LIST = 4,    /* in: cursor (first id); out: count records of struct
				  snapfs_rec_snap in data, cursor = next id or 0 */
	SNAPFS_OP_STATS = 5,   /* out: struct snapfs_rec_stats in data */
	SNAPFS_OP_INFO = 6,    /* out: data = the snapshot directory name (snapdir) */
};

#define SNAPFS_PIN_RECURSIVE 0x1u /* directories: every regular file under them */

struct snapfs_req {
	uint32_t version; /* SNAPFS_PROTO_VERSION */
	uint32_t op;	  /* enum snapfs_op */
	int32_t status;	  /* out: 0 or -errno */
	uint32_t flags;
	uint64_t id;
	uint64_t epoch;
	uint64_t cursor;
	int64_t expires;  /* unix time, 0: never */
	uint32_t count;
	uint32_t len;	  /* bytes used in data */
	char label[SNAPFS_PROTO_LABEL];
	char data[SNAPFS_PROTO_DATA];
};

struct snapfs_rec_snap {
	uint64_t id, epoch;
	int64_t created, expires;
	uint64_t nfiles, bytes_held;
	uint32_t uid;
	uint32_t kind;	/* 0 pinned, 1 ephemeral */
	uint32_t state; /* 0 valid, 1 stale */
	uint32_t pad;
	char label[SNAPFS_PROTO_LABEL];
};

struct snapfs_rec_stats {
	uint64_t bytes_on_disk, bytes_preserved, extents, snapshots, epoch, block_size;
	uint64_t cow_copies, cow_bytes, store_reads, store_read_bytes;
};

_Static_assert(sizeof(struct snapfs_req) < (1u << 14), "ioctl size must fit 14 bits");
_Static_assert(sizeof(struct snapfs_rec_snap) == 320, "record layout is part of the protocol");

#define SNAPFS_IOC_CALL _IOWR(0xF5, 1, struct snapfs_req)

#endif /* SNAPFS_PROTO_H */
