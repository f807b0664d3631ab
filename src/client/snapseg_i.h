/* SPDX-License-Identifier: MIT */
/*
 * Private to the deferred-I/O part of libsnapfs (snapseg.c, snapseg_wb.c,
 * snapmap.c): taking an ephemeral snapshot of an open file and holding it
 * through two descriptors, the "holder" (a second open of the live file,
 * which owns the snapshot: closing it releases it) and the "view" (the
 * read-only snapshot file MNT/<snapdir>/ID/path, which the bytes are read
 * from).
 */
#ifndef SNAPSEG_I_H
#define SNAPSEG_I_H

#include <stdint.h>
#include <sys/types.h>

/* Not locked: one owner at a time (a struct segsnap under its segment's
 * lock, or a struct snapmap). */
struct snaphold {
	int holder;  /* open of the live file that owns the snapshot */
	int view;    /* the snapshot's file, read-only */
	uint64_t id; /* snapshot id */
	dev_t dev;   /* the live file's identity at pin time */
	ino_t ino;
	uint64_t size; /* the file's size at pin time */
	int borrowed;  /* the snapshot is not ours (fd read it already): never released here */
	/* Direct fills (snaphold_pread), set up on first use: */
	int direct_state;	/* 0 not tried, 1 on, -1 off */
	int last_direct;	/* the last snaphold_pread was served directly */
	int direct;		/* the live file, read-only */
	int conn;		/* to the daemon; its end means "stop trusting direct" */
	const uint64_t *bits;	/* block b changed since the snapshot: bit b */
	size_t bits_len;	/* bytes mapped */
	uint32_t bshift;	/* log2 of the store's block size */
	char sock[108];		/* the daemon's side channel (abstract name) */
	unsigned char wkey[16]; /* its write-back key */
};

/*
 * Pin an ephemeral snapshot of fd's file now. 0 on success; -1 with errno:
 * ENOTSUP when fd is not a regular file on a snapfs mount (the caller falls
 * back to plain I/O), anything else is a real failure.
 */
int snaphold_take(int fd, struct snaphold *h);
struct snapfs_req;
/* Release the snapshot and close everything. req: a request buffer to use
 * (async-signal-safe then), or NULL to allocate one. */
void snaphold_drop(struct snaphold *h, struct snapfs_req *req);
/* Ask the daemon for direct fills (see snaphold_pread); -1 when it cannot
 * give them (then reads go through the view). Not in a signal handler. */
int snaphold_direct(struct snaphold *h);
/*
 * pread of the snapshot: len bytes at off, fewer only at the pin-time end,
 * or -1 with errno. Reads the live file directly after snaphold_direct()
 * succeeded, where no block read changed since the snapshot; else the view
 * through FUSE. Async-signal-safe; one reader at a time per h.
 */
ssize_t snaphold_pread(struct snaphold *h, void *buf, size_t len, uint64_t off);
/*
 * Write n ranges rg[i] = {off, len} (increasing, disjoint) of fd's file,
 * which must be h's file open for writing, with their bytes packed in order
 * in the file data: the daemon applies them under copy-on-write in one
 * store transaction. Before that, h's snapshot gives up the byte ranges
 * fg[i] = {off, len} (whole blocks inside; the caller shows them no more).
 * 0, or -errno (-ENOTSUP: no direct channel; the caller then writes them
 * itself).
 */
int snaphold_writeback(const struct snaphold *h, int fd, const uint64_t (*rg)[2], size_t n,
		       const uint64_t (*fg)[2], size_t nfg, int data);

#endif
