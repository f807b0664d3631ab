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

#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>

#define SNAPFS_PROTO_VERSION 1
#define SNAPFS_PROTO_DATA    15360 /* bytes of payload */
#define SNAPFS_PROTO_LABEL   256

enum snapfs_op {
	SNAPFS_OP_PIN = 1,	/* in: data = NUL-separated paths relative to the mount root,
				   count, label, expires, flags; out: id, epoch */
	SNAPFS_OP_RELEASE = 2,	/* in: id */
	SNAPFS_OP_FREEZE = 3,	/* on an open regular file: ephemeral snapshot owned by that
				   open; out: id, data = path of the file in the snapshot view */
	SNAPFS_OP_LIST = 4,	/* in: cursor (first id); out: count records of struct
				   snapfs_rec_snap in data, cursor = next id or 0 */
	SNAPFS_OP_STATS = 5,	/* out: struct snapfs_rec_stats in data */
	SNAPFS_OP_INFO = 6,	/* out: data = the snapshot directory name (snapdir) */
	SNAPFS_OP_SHOW = 7,	/* in: id, cursor (index of the first file wanted); out: count
				   records (struct snapfs_rec_file) in data, cursor = next index
				   or 0 when done */
	SNAPFS_OP_DIFF = 8,	/* in: id, cursor (0 first; then as returned), count path
				   filters (NUL-separated in data, 0: all files); out: count
				   records (struct snapfs_rec_diff) of changed files, cursor = where
				   to go on or 0 when done */
	SNAPFS_OP_RESTORE = 9,	/* in: id, cursor (0 first; then as returned), count path
				   filters as DIFF; out: count records (struct snapfs_rec_restore),
				   one per file restored, cursor = where to go on or 0 */
	SNAPFS_OP_CHECK = 10,	/* root only. in: cursor (problems to skip); out: count
				   NUL-terminated problem lines in data, id = problems in all,
				   cursor = next problem or 0 */
	SNAPFS_OP_DIRECT = 11,	/* on the open that froze snapshot id: direct fills for a
				   segment (docs/SEGMENT.md). out: count = block size, data =
				   16-byte token, then the daemon's socket name (abstract
				   namespace, without the leading NUL), NUL-terminated */
	SNAPFS_OP_RELABEL = 12, /* in: id, label (empty: none); the owner or root */
	SNAPFS_OP_PREAD = 13,	/* on a readable open regular file: in cursor = offset, count =
				   bytes (at most SNAPFS_PROTO_DATA); out: data = the bytes, len =
				   how many (fewer only at end of file), flags SNAPFS_PREAD_SNAPSHOT
				   when the open reads a snapshot. One read under the file's read
				   lock: no write lands inside it */
};

/* FREEZE, in: the open (which must bypass the page cache: O_DIRECT) reads
 * the snapshot itself from now on, rather than only holding it. */
#define SNAPFS_FREEZE_SERVE 0x1u
/* FREEZE, out: the open already read a snapshot (taken at open with
 * snapshot=open, or a view file): id is that one, nothing new was pinned;
 * data is its view path, or len 0 for a view file (the open is the view). */
#define SNAPFS_FREEZE_HELD 0x2u
/* PREAD, out: the open reads a snapshot, so a plain pread of it is
 * consistent too. */
#define SNAPFS_PREAD_SNAPSHOT 0x1u

#define SNAPFS_PIN_RECURSIVE 0x1u /* a tree snapshot of the paths (files or directories) */

struct snapfs_req {
	uint32_t version; /* SNAPFS_PROTO_VERSION */
	uint32_t op;	  /* enum snapfs_op */
	int32_t status;	  /* out: 0 or -errno */
	uint32_t flags;
	uint64_t id;
	uint64_t epoch;
	uint64_t cursor;
	int64_t expires; /* unix time, 0: never */
	uint32_t count;
	uint32_t len; /* bytes used in data */
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
	uint32_t flags; /* SNAPFS_SNAP_* */
	char label[SNAPFS_PROTO_LABEL];
};

/* A tree snapshot (pin -r): MNT/<snapdir>/ID shows the pinned trees as
 * they were; nfiles is 0 (nothing was counted at the pin), and SHOW, DIFF
 * and RESTORE answer -ENOTSUP for it, with data = the pinned paths
 * ('\n'-separated, relative to the mount root, "" for all of it) and len
 * its size with the NUL: clients walk the view under those paths. */
#define SNAPFS_SNAP_TREE 0x1u

struct snapfs_rec_stats {
	uint64_t bytes_on_disk, bytes_preserved, extents, snapshots, epoch, block_size;
	uint64_t cow_copies, cow_bytes, store_reads, store_read_bytes;
};

/*
 * SHOW, DIFF and RESTORE answer variable-length records packed into data,
 * each starting on an 8-byte boundary; reclen is the whole record's size
 * (header, arrays, path and padding) and the path ends with a NUL. A path
 * is the file's path relative to the mount root as it was at pin time.
 */
struct snapfs_rec_file {
	uint64_t fid, size;
	int64_t mtime;
	uint32_t mode, uid, gid;
	uint32_t reclen;
	/* followed by the path */
};

struct snapfs_range {
	uint64_t off, len;
};

#define SNAPFS_DIFF_MORE 0x1u /* the file's ranges continue in the next record */

struct snapfs_rec_diff {
	uint64_t fid, size; /* size at pin time */
	int32_t status;	    /* 0, or -errno: the ranges of this file could not be found */
	uint32_t flags;	    /* SNAPFS_DIFF_MORE */
	uint32_t nranges;
	uint32_t reclen;
	/* followed by nranges struct snapfs_range, then the path */
};

#define SNAPFS_RESTORE_RESIZED 0x1u /* the size was set back to the pin-time size */
#define SNAPFS_RESTORE_CREATED 0x2u /* the file was gone from its path and was recreated */

struct snapfs_rec_restore {
	uint64_t written; /* bytes written into the live file */
	uint64_t size;	  /* its size now */
	int32_t status;	  /* 0, or -errno: this file was not (fully) restored */
	uint32_t flags;	  /* SNAPFS_RESTORE_* */
	uint32_t reclen;
	uint32_t pad;
	/* followed by the path */
};

_Static_assert(sizeof(struct snapfs_req) < (1u << 14), "ioctl size must fit 14 bits");
_Static_assert(sizeof(struct snapfs_rec_snap) == 320, "record layout is part of the protocol");
_Static_assert(sizeof(struct snapfs_rec_file) == 40, "record layout is part of the protocol");
_Static_assert(sizeof(struct snapfs_range) == 16, "record layout is part of the protocol");
_Static_assert(sizeof(struct snapfs_rec_diff) == 32, "record layout is part of the protocol");
_Static_assert(sizeof(struct snapfs_rec_restore) == 32, "record layout is part of the protocol");
_Static_assert(SNAPFS_PROTO_DATA % 8 == 0 && offsetof(struct snapfs_req, data) % 8 == 0,
	       "records are 8-byte aligned in data");

#define SNAPFS_IOC_CALL _IOWR(0xF5, 1, struct snapfs_req)

#endif /* SNAPFS_PROTO_H */
