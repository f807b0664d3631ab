// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the daemon's control protocol (ctl.c, ctl_files.c):
 * each input becomes one struct snapfs_req sent with SNAPFS_IOC_CALL to a
 * live daemon (daemon.c), on a fresh descriptor of the mount root, a
 * directory or a file. Input layout: byte 0 picks the target and whether
 * len is set to the data given, byte 1 the op (mostly 0..13, sometimes an
 * op far outside), byte 2 the version (mostly the right one), then the
 * request's bytes from its flags field on. FREEZE and DIRECT first freeze
 * the descriptor when byte 0 says so, so DIRECT reaches its registration.
 * A pinned snapshot is released after the input, an ephemeral one goes
 * with the descriptor; then the daemon must still be alive. One pin made
 * at init stays (made again when an input releases it), so that SHOW,
 * DIFF and RESTORE of its id get past the lookup; its id is the first.
 */
#include "daemon.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Ops 0 .. FZ_OPS - 1: 0 and the one past the last (RELABEL) are invalid. */
#define FZ_OPS (SNAPFS_OP_RELABEL + 2)

static const char *const targets[] = {"", "a", "b", "dir", "dir/c", "dir/d", ".snapshots", "b"};
static struct snapfs_req req, rel, lst;
static unsigned long inputs;
static uint64_t kept; /* a pin of a, b and dir/c that inputs can SHOW, DIFF... */

/* Pin a, b and dir/c (again when an input released the pin). */
static void keep_pin(void)
{
	static const char paths[] = "a\0b\0dir/c";
	int fd = open(fz_mnt, O_RDONLY | O_CLOEXEC);
	memset(&rel, 0, sizeof(rel));
	rel.version = SNAPFS_PROTO_VERSION;
	rel.op = SNAPFS_OP_PIN;
	rel.count = 3;
	rel.len = sizeof(paths);
	memcpy(rel.data, paths, sizeof(paths));
	if (fd < 0 || fz_call(fd, &rel) || rel.status) {
		fprintf(stderr, "snapfs-fuzz: cannot pin a, b and dir/c\n");
		fz_alive();
		exit(1);
	}
	kept = rel.id;
	close(fd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_start();
	keep_pin();
	return 0;
}

static void release(int fd, uint64_t id)
{
	memset(&rel, 0, offsetof(struct snapfs_req, label));
	rel.version = SNAPFS_PROTO_VERSION;
	rel.op = SNAPFS_OP_RELEASE;
	rel.id = id;
	(void)fz_call(fd, &rel);
}

/* Every so often: release whatever is still listed (bounded state even
 * when an input pinned in a way the loop below did not see). */
static void release_all(int fd)
{
	memset(&lst, 0, sizeof(lst));
	lst.version = SNAPFS_PROTO_VERSION;
	lst.op = SNAPFS_OP_LIST;
	uint64_t ids[64];
	unsigned n = 0;
	if (fz_call(fd, &lst) || lst.status)
		return;
	struct snapfs_rec_snap s;
	for (uint32_t i = 0; i < lst.count && n < 64 && (i + 1) * sizeof(s) <= lst.len &&
			     lst.len <= sizeof(lst.data);
	     i++) {
		memcpy(&s, lst.data + i * sizeof(s), sizeof(s));
		ids[n++] = s.id;
	}
	for (unsigned i = 0; i < n; i++)
		if (ids[i] != kept)
			release(fd, ids[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *p, size_t n)
{
	if (n < 3)
		return 0;
	uint8_t sel = p[0], opb = p[1], verb = p[2];
	p += 3;
	n -= 3;
	char path[160];
	const char *t = targets[sel % 8];
	snprintf(path, sizeof(path), "%s/%s", fz_mnt, t);
	int fd = open(path, (sel % 8 == 7 ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		fd = open(fz_mnt, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fz_alive();

	memset(&req, 0, sizeof(req));
	size_t hdr = offsetof(struct snapfs_req, flags);
	size_t k = n < sizeof(req) - hdr ? n : sizeof(req) - hdr;
	memcpy((char *)&req + hdr, p, k);
	req.version = verb < 240 ? SNAPFS_PROTO_VERSION : verb == 255 ? 0 : verb;
	req.op = opb < 240 ? opb % FZ_OPS : 0xffff0000u | opb;
	req.status = 0;
	size_t dlen = k > offsetof(struct snapfs_req, data) - hdr
			  ? k - (offsetof(struct snapfs_req, data) - hdr)
			  : 0;
	if (sel & 0x10)
		req.len = (uint32_t)dlen;
	if ((sel & 0x20) && (req.op == SNAPFS_OP_DIRECT || req.op == SNAPFS_OP_FREEZE)) {
		struct snapfs_req fr = {.version = SNAPFS_PROTO_VERSION, .op = SNAPFS_OP_FREEZE};
		struct snapfs_req *f = malloc(sizeof(*f));
		if (f) {
			*f = fr;
			if (fz_call(fd, f) == 0 && f->status == 0 && req.op == SNAPFS_OP_DIRECT &&
			    !(sel & 0x40))
				req.id = f->id;
			free(f);
		}
	}
	uint32_t op = req.op;
	int rc = fz_call(fd, &req);
	fz_feedback(op < FZ_OPS ? op : FZ_OPS, rc ? rc : req.status);
	if (rc == 0 && req.status == 0 && op == SNAPFS_OP_PIN)
		release(fd, req.id);
	if (++inputs % 256 == 0)
		release_all(fd);
	close(fd);
	fz_alive();
	if (op == SNAPFS_OP_RELEASE && rc == 0 && req.status == 0 && req.id == kept)
		keep_pin();
	return 0;
}
