/* SPDX-License-Identifier: MIT */
/*
 * Private to the segment's side channel: sidechan.c (the socket, its
 * connections, the direct-fill records and their hand-over) and
 * writeback.c (DIRECT_WRITEBACK). The limits here are the daemon's own;
 * the ones a client must know are in direct_proto.h. docs/SEGMENT.md,
 * "Limits and checks", lists them all.
 */
#ifndef SIDE_I_H
#define SIDE_I_H

#include "sfs_i.h"
#include "direct_proto.h"

#include <stdbool.h>
#include <sys/socket.h>

/* Live direct-fill records of one uid (each holds a bitmap memfd and,
 * once handed over, a connection); more: SNAPFS_OP_DIRECT is -EAGAIN. */
#define SIDE_RECS_PER_UID 64
/* Connections being served at once, per uid and in all; more are closed
 * at accept (the client sees the connection end and fills through FUSE). */
#define SIDE_CONNS_PER_UID 8
#define SIDE_CONNS	   64
/* A connection must send its request within this time, and every later
 * part of it (ranges) within this time of the previous one. */
#define SIDE_IDLE_MS 1000
/* The side channel uses at most this fraction (1/n) of the daemon's
 * RLIMIT_NOFILE; the global record cap follows from it. */
#define SIDE_NOFILE_SHARE 4

/* Who is at the other end of a connection: SO_PEERCRED and SO_PEERGROUPS,
 * as they were at connect(). */
struct side_peer {
	struct ucred cr;
	gid_t groups[256];
	int ngroups;
};

/* One DIRECT_WRITEBACK request, its record found: writeback.c serves it. */
struct wb_req {
	const struct direct_msg *h;
	const struct side_peer *who;
	int data;		 /* the bytes: a memfd, owned by the caller */
	struct sfs_inode *inode; /* the record's file; the caller holds a reference */
	uint64_t snap;		 /* the record's snapshot */
	const bool *stop;	 /* read atomically: the daemon is shutting down */
};

/* writeback.c: read the request's ranges from c, check and apply them;
 * returns the status to answer (0 or -errno) and the bytes written. */
int wb_serve(int c, const struct wb_req *q, uint64_t *written);

#endif
