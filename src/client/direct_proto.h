/* SPDX-License-Identifier: MIT */
/*
 * The segment's side channel to the daemon (docs/SEGMENT.md, "Direct
 * fills"): a unix stream socket in the abstract namespace whose name
 * SNAPFS_OP_DIRECT answers. One request per connection, each a struct
 * direct_msg:
 *  - DIRECT_HANDOVER, key = the op's one-time token. Answer: one status
 *    byte (0 or an errno), then on success the 16-byte write-back key, with
 *    two descriptors (SCM_RIGHTS): the live file read-only, and the change
 *    bitmap. The daemon keeps this connection open while the record lives.
 *  - DIRECT_WRITEBACK, key = the write-back key, n ranges {off, len}
 *    (uint64_t pairs, increasing, disjoint) following the header, with two
 *    descriptors: the caller's descriptor of the file, open for writing,
 *    and a file holding the ranges' bytes packed in order. Answer: struct
 *    direct_ans. The daemon applies the writes under copy-on-write in one
 *    store transaction.
 */
#ifndef DIRECT_PROTO_H
#define DIRECT_PROTO_H

#include <stdint.h>

#define DIRECT_TOKEN_LEN  16
#define DIRECT_MAX_RANGES (1u << 20)

enum { DIRECT_HANDOVER = 1, DIRECT_WRITEBACK = 2 };

struct direct_msg {
	uint32_t type;
	uint32_t n; /* DIRECT_WRITEBACK: ranges that follow */
	unsigned char key[DIRECT_TOKEN_LEN];
};

struct direct_ans {
	int32_t status; /* 0 or -errno */
	uint32_t pad;
	uint64_t written;
};

#endif
