/* SPDX-License-Identifier: MIT */
/*
 * The record codec of the control protocol (snapfs_proto.h): how the
 * daemon packs the records of a LIST, SHOW, DIFF, RESTORE or CHECK answer
 * into a request's data, and how a client reads them back. The put side
 * never writes past data and keeps len and count in step; the read side
 * trusts nothing in the answer: every length is checked against len and
 * the size of data before a byte is read, so a malformed answer gives
 * -EPROTO, never a read outside the request. No locks, no allocation.
 */
#ifndef REC_H
#define REC_H

#include "snapfs_proto.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- writing an answer (daemon) ---- */

/*
 * Append one record to r->data at r->len, padded to 8 bytes, and count it
 * (r->len, r->count). The header is copied with reclen set (the caller's
 * reclen is ignored); path is the NUL-terminated path that follows it.
 * 0, or -ENOSPC when the record does not fit (r unchanged).
 */
int rec_put_file(struct snapfs_req *r, const struct snapfs_rec_file *f, const char *path);
/* d->nranges ranges from v (v may be NULL when there are none). */
int rec_put_diff(struct snapfs_req *r, const struct snapfs_rec_diff *d,
		 const struct snapfs_range *v, const char *path);
int rec_put_restore(struct snapfs_req *r, const struct snapfs_rec_restore *s, const char *path);
/* LIST's fixed-size records, packed without reclen. */
int rec_put_snap(struct snapfs_req *r, const struct snapfs_rec_snap *s);
/* CHECK's lines: n bytes of line, then a NUL. */
int rec_put_line(struct snapfs_req *r, const char *line, size_t n);

/* How many ranges a DIFF record for a path of plen bytes (with its NUL)
 * can still carry in r: >= 0, or -ENOSPC when not even the record without
 * ranges fits. */
ssize_t rec_diff_fit(const struct snapfs_req *r, size_t plen);

/* ---- reading an answer (client) ---- */

/* A position in the records of one answer; set up by rec_iter_init(). */
struct rec_iter {
	const struct snapfs_req *r;
	size_t off;    /* where the next record starts in r->data */
	uint32_t seen; /* records read so far, out of r->count */
};

void rec_iter_init(struct rec_iter *it, const struct snapfs_req *r);

/*
 * The next record of the answer: 1 with the header copied out (and
 * pointers into r->data for what follows it), 0 after the last of
 * r->count records, -EPROTO when the answer is malformed: r->len beyond
 * data, a record past r->len, a reclen too small, too large or not a
 * multiple of 8, more ranges than the record holds, a path or line
 * without its NUL. Use one kind per answer.
 */
int rec_next_file(struct rec_iter *it, struct snapfs_rec_file *f, const char **path);
/* *ranges: d->nranges struct snapfs_range, read them with rec_range(). */
int rec_next_diff(struct rec_iter *it, struct snapfs_rec_diff *d, const void **ranges,
		  const char **path);
int rec_next_restore(struct rec_iter *it, struct snapfs_rec_restore *s, const char **path);
/* The label comes out NUL-terminated (cut at its last byte). */
int rec_next_snap(struct rec_iter *it, struct snapfs_rec_snap *s);
int rec_next_line(struct rec_iter *it, const char **line);

/* Range k of the ranges rec_next_diff() found (k < nranges). */
struct snapfs_range rec_range(const void *ranges, uint32_t k);

#endif /* REC_H */
