// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the side channel (sidechan.c, writeback.c; protocol
 * in direct_proto.h). At init the harness freezes file b of the daemon's
 * mount (daemon.c), registers it for direct fills (SNAPFS_OP_DIRECT) and
 * takes the hand-over, as libsnapfs does: that gives the socket's name
 * and a valid write-back key, so inputs reach the write-back path and not
 * only the key check. Each input is a sequence of messages, each sent on a
 * fresh connection, then the write side shut so the daemon never waits
 * for more. A message: a control byte (bits 0-1: hand-over with a key from
 * the input, write-back with the right key, with a key from the input, or
 * a raw type; bit 2: attach a memfd sealed against shrinking, bit 3: not
 * sealed; bit 4: raw range values, else offsets kept under 4 MiB), a byte
 * each for n and nforgo (small), the ranges, then the memfd's bytes. The
 * record is registered again when the daemon dropped it. RLIMIT_FSIZE
 * (honoured by the daemon for the peer) bounds the file at 16 MiB.
 */
#include "daemon.h"
#include "direct_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct {
	int file; /* b, open read-write: it froze the snapshot */
	int conn; /* the hand-over's connection: the record lives while it does */
	uint64_t id;
	char sock[108];
	unsigned char wkey[DIRECT_TOKEN_LEN];
} s = {-1, -1, 0, "", {0}};

static int side_connect(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t nlen = strlen(s.sock);
	memcpy(sa.sun_path + 1, s.sock, nlen);
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = {5, 0};
	if (c >= 0 && (setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
		       setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) ||
		       connect(c, (struct sockaddr *)&sa,
			       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + nlen)))) {
		close(c);
		c = -1;
	}
	return c;
}

/* Freeze b, register it, take the hand-over: exits when any step fails. */
static void setup(void)
{
	if (s.conn >= 0)
		close(s.conn);
	if (s.file >= 0)
		close(s.file); /* ends the old snapshot and its record */
	char path[128];
	snprintf(path, sizeof(path), "%s/b", fz_mnt);
	s.file = open(path, O_RDWR | O_CLOEXEC);
	struct snapfs_req *r = calloc(1, sizeof(*r));
	if (s.file < 0 || !r)
		goto fail;
	r->version = SNAPFS_PROTO_VERSION;
	r->op = SNAPFS_OP_FREEZE;
	if (fz_call(s.file, r) || r->status)
		goto fail;
	s.id = r->id;
	memset(r, 0, sizeof(*r));
	r->version = SNAPFS_PROTO_VERSION;
	r->op = SNAPFS_OP_DIRECT;
	r->id = s.id;
	if (fz_call(s.file, r) || r->status || r->len <= DIRECT_TOKEN_LEN + 1 ||
	    r->len > sizeof(r->data))
		goto fail;
	r->data[r->len - 1] = 0;
	snprintf(s.sock, sizeof(s.sock), "%s", r->data + DIRECT_TOKEN_LEN);
	struct direct_msg q = {.type = DIRECT_HANDOVER};
	memcpy(q.key, r->data, DIRECT_TOKEN_LEN);
	s.conn = side_connect();
	if (s.conn < 0 || !direct_send(s.conn, &q, sizeof(q), NULL, 0))
		goto fail;
	unsigned char ans[1 + DIRECT_TOKEN_LEN];
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = {ans, sizeof(ans)};
	struct msghdr m = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	if (recvmsg(s.conn, &m, MSG_CMSG_CLOEXEC | MSG_WAITALL) != (ssize_t)sizeof(ans) || ans[0])
		goto fail;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm))
		if (cm->cmsg_type == SCM_RIGHTS)
			for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++)
				close(((int *)CMSG_DATA(cm))[i]);
	memcpy(s.wkey, ans + 1, DIRECT_TOKEN_LEN);
	fz_feedback(8, 0); /* counts registrations (SNAPFS_FUZZ_ANSWERS) */
	free(r);
	return;
fail:
	fprintf(stderr, "snapfs-fuzz: side channel setup failed (%s)\n", strerror(errno));
	fz_alive();
	exit(1);
}

/* Runs before daemon.c's stop(): no descriptor of ours keeps the mount busy. */
static void close_all(void)
{
	if (s.conn >= 0)
		close(s.conn);
	if (s.file >= 0)
		close(s.file);
	s.conn = s.file = -1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_start();
	atexit(close_all);
	struct rlimit rl = {16 << 20, 16 << 20};
	if (setrlimit(RLIMIT_FSIZE, &rl))
		perror("setrlimit");
	setup();
	return 0;
}

/* Take n bytes from the input, zeros past its end. */
static void take(const uint8_t **p, size_t *n, void *out, size_t k)
{
	size_t m = *n < k ? *n : k;
	memcpy(out, *p, m);
	memset((char *)out + m, 0, k - m);
	*p += m;
	*n -= m;
}

static void one_message(const uint8_t **p, size_t *n)
{
	uint8_t ctl = 0, nr = 0, nf = 0;
	take(p, n, &ctl, 1);
	take(p, n, &nr, 1);
	take(p, n, &nf, 1);
	struct direct_msg q = {.n = nr % 9, .nforgo = nf % 5};
	switch (ctl & 3) {
	case 0:
		q.type = DIRECT_HANDOVER;
		take(p, n, q.key, sizeof(q.key));
		break;
	case 1:
		q.type = DIRECT_WRITEBACK;
		memcpy(q.key, s.wkey, sizeof(q.key));
		break;
	case 2:
		q.type = DIRECT_WRITEBACK;
		take(p, n, q.key, sizeof(q.key));
		break;
	default:
		take(p, n, &q, sizeof(q)); /* everything raw, n and nforgo too */
		break;
	}
	uint64_t rg[16][2];
	size_t nall = (q.n < 9 ? q.n : 8) + (q.nforgo < 5 ? q.nforgo : 4);
	take(p, n, rg, nall * sizeof(rg[0]));
	if (!(ctl & 0x10))
		for (size_t i = 0; i < nall; i++) {
			rg[i][0] &= (4u << 20) - 1;
			rg[i][1] &= (1u << 16) - 1;
		}
	uint16_t dlen = 0;
	take(p, n, &dlen, 2);
	dlen %= 8192;
	int mfd = -1;
	if (ctl & 0xc) {
		mfd = memfd_create("fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		char buf[8192];
		take(p, n, buf, dlen);
		if (mfd < 0 || write(mfd, buf, dlen) != dlen ||
		    ((ctl & 4) && fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK)))
			perror("memfd");
	}
	int c = side_connect();
	if (c < 0) {
		fz_alive();
		perror("connect"); /* alive but refusing: a cap, not a crash */
		goto out;
	}
	if (direct_send(c, &q, sizeof(q), &mfd, mfd >= 0 ? 1 : 0) && nall)
		(void)send(c, rg, nall * sizeof(rg[0]), MSG_NOSIGNAL);
	shutdown(c, SHUT_WR);
	char ans[64];
	struct direct_ans a;
	ssize_t k = recv(c, ans, sizeof(ans), MSG_WAITALL);
	if (k == sizeof(a)) {
		memcpy(&a, ans, sizeof(a));
		fz_feedback(q.type == DIRECT_WRITEBACK ? 1 + (ctl & 3) : 5, a.status);
	} else {
		fz_feedback(k <= 0 ? 6 : 7, k > 0 ? -ans[0] : 0);
	}
	while (k > 0 && recv(c, ans, sizeof(ans), 0) > 0)
		;
	close(c);
out:
	if (mfd >= 0)
		close(mfd);
}

int LLVMFuzzerTestOneInput(const uint8_t *p, size_t n)
{
	for (int k = 0; k < 8 && n; k++)
		one_message(&p, &n);
	fz_alive();
	struct pollfd pf = {s.conn, POLLIN, 0};
	if (poll(&pf, 1, 0) != 0)
		setup(); /* the daemon dropped the record: register again */
	return 0;
}
