/* SPDX-License-Identifier: MIT */
/*
 * Private to the deferred-I/O part of libsnapfs (snapseg.c, snapmap.c):
 * taking an ephemeral snapshot of an open file and holding it through two
 * descriptors, the "holder" (a second open of the live file, which owns
 * the snapshot: closing it releases it) and the "view" (the read-only
 * snapshot file MNT/<snapdir>/ID/path, which the bytes are read from).
 */
#ifndef SNAPSEG_I_H
#define SNAPSEG_I_H

#include <stdint.h>
#include <sys/types.h>

struct snaphold {
	int holder;  /* open of the live file that owns the snapshot */
	int view;    /* the snapshot's file, read-only */
	uint64_t id; /* snapshot id */
	dev_t dev;   /* the live file's identity at pin time */
	ino_t ino;
	uint64_t size; /* the file's size at pin time */
};

/*
 * Pin an ephemeral snapshot of fd's file now. 0 on success; -1 with errno:
 * ENOTSUP when fd is not a regular file on a snapfs mount (the caller falls
 * back to plain I/O), anything else is a real failure.
 */
int snaphold_take(int fd, struct snaphold *h);
/* Close both descriptors: the daemon releases the snapshot. */
void snaphold_drop(struct snaphold *h);

#endif
