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
 *    store transaction. Then nforgo more ranges may follow: byte ranges of
 *    the file that the record's snapshot gives up first (store_snap_forgo:
 *    the segment has no page left that shows them), so that the writes
 *    need not preserve them for it.
 */
#ifndef DIRECT_PROTO_H
#define DIRECT_PROTO_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#define DIRECT_TOKEN_LEN  16
#define DIRECT_MAX_RANGES (1u << 20)

enum { DIRECT_HANDOVER = 1, DIRECT_WRITEBACK = 2 };

struct direct_msg {
	uint32_t type;
	uint32_t n;	 /* DIRECT_WRITEBACK: write ranges that follow */
	uint32_t nforgo; /* then this many ranges the snapshot gives up */
	uint32_t pad;
	unsigned char key[DIRECT_TOKEN_LEN];
};

struct direct_ans {
	int32_t status; /* 0 or -errno */
	uint32_t pad;
	uint64_t written;
};

/* Send len bytes of msg with nfds (at most 2) descriptors attached; true
 * when all of msg went. */
static inline bool direct_send(int c, const void *msg, size_t len, const int *fds, size_t nfds)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(2 * sizeof(int))];
	} u;
	struct iovec iov = {(void *)msg, len};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfds) {
		m.msg_control = u.buf;
		m.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	}
	return sendmsg(c, &m, MSG_NOSIGNAL) == (ssize_t)len;
}

#endif
