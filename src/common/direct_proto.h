/* SPDX-License-Identifier: MIT */
/*
 * The segment's side channel to the daemon (docs/SEGMENT.md, "Direct
 * fills"): a unix stream socket in the abstract namespace whose name
 * SNAPFS_OP_DIRECT answers. One request per connection, each a struct
 * direct_msg, sent within a second of connecting:
 *  - DIRECT_HANDOVER, key = the op's one-time token. Answer: one status
 *    byte (0 or an errno: EACCES when the peer may not read the file now),
 *    then on success the 16-byte write-back key, with two descriptors
 *    (SCM_RIGHTS): the live file read-only, and the change bitmap. The
 *    daemon keeps this connection open while the record lives.
 *  - DIRECT_WRITEBACK, key = the write-back key, n ranges {off, len}
 *    (uint64_t pairs, increasing, disjoint) following the header, then
 *    nforgo more ranges: byte ranges of the file that the record's
 *    snapshot gives up first (store_snap_forgo: the segment has no page
 *    left that shows them), so that the writes need not preserve them for
 *    it. One descriptor goes with the header: a memfd sealed against
 *    shrinking holding the ranges' bytes packed in order. The daemon opens
 *    the file for writing as the peer and writes the ranges under
 *    copy-on-write. Answer: struct direct_ans; -EACCES/-EPERM when the
 *    peer may not write the file, -EFBIG past its RLIMIT_FSIZE, -E2BIG
 *    over DIRECT_WB_MAX_BYTES, -EBADF for a bad memfd.
 * The first protocol's write-back (type 2, with the caller's descriptor of
 * the file as well) is answered -EPROTO.
 */
#ifndef DIRECT_PROTO_H
#define DIRECT_PROTO_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#define DIRECT_TOKEN_LEN 16
/* At most this many write and give-up ranges each in one write-back (a
 * 256 MiB batch of single pages needs 65,536). */
#define DIRECT_MAX_RANGES (1u << 17)
/* At most this many bytes in one write-back. */
#define DIRECT_WB_MAX_BYTES (256ull << 20)

enum { DIRECT_HANDOVER = 1, DIRECT_WRITEBACK = 3 };

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
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfds) {
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	}
	return sendmsg(c, &mh, MSG_NOSIGNAL) == (ssize_t)len;
}

#endif
