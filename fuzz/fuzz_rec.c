// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the client side of the record codec (rec.c). An
 * input's first byte picks the record kind; the rest is laid over a
 * struct snapfs_req (header fields and data) as an answer from a hostile
 * daemon, which rec_next_*() must read without a byte outside the request
 * (ASan) and answer -EPROTO or records whose lengths fit. The same bytes
 * then drive the encoders: records put with rec_put_*() into an empty
 * request must come back from rec_next_*() equal, in order.
 */
#include "rec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static struct snapfs_req req;

/* Everything an answer may hand out lies inside req.data, before len. */
static void in_data(const void *p, size_t n)
{
	const char *c = p;
	if (c < req.data || c + n > req.data + sizeof(req.data))
		abort();
}

static void read_all(unsigned kind)
{
	struct rec_iter it;
	rec_iter_init(&it, &req);
	for (unsigned i = 0; i < 4096; i++) {
		int rc;
		const char *path = NULL;
		if (kind == 0) {
			struct snapfs_rec_file f;
			rc = rec_next_file(&it, &f, &path);
		} else if (kind == 1) {
			struct snapfs_rec_diff d;
			const void *rg = NULL;
			rc = rec_next_diff(&it, &d, &rg, &path);
			if (rc == 1 && d.nranges) {
				in_data(rg, (size_t)d.nranges * sizeof(struct snapfs_range));
				struct snapfs_range a = rec_range(rg, 0);
				struct snapfs_range b = rec_range(rg, d.nranges - 1);
				(void)a;
				(void)b;
			}
		} else if (kind == 2) {
			struct snapfs_rec_restore s;
			rc = rec_next_restore(&it, &s, &path);
		} else if (kind == 3) {
			struct snapfs_rec_snap s;
			rc = rec_next_snap(&it, &s);
			if (rc == 1 && strnlen(s.label, sizeof(s.label)) == sizeof(s.label))
				abort();
		} else {
			rc = rec_next_line(&it, &path);
		}
		if (rc != 1)
			return;
		if (path) {
			size_t n = strnlen(path, req.data + sizeof(req.data) - path);
			in_data(path, n + 1);
		}
	}
}

/* Put up to 16 records built from the input, read them back, compare.
 * Records but CHECK lines are padded to 8 bytes. */
static void round_trip(unsigned kind, const uint8_t *p, size_t n)
{
	static struct snapfs_req w;
	memset(&w, 0, offsetof(struct snapfs_req, data));
	w.version = SNAPFS_PROTO_VERSION;
	char path[512];
	struct snapfs_range rg[8];
	unsigned put = 0, lens[16];
	size_t at = 0;
	while (put < 16 && at + 2 <= n) {
		size_t plen = p[at] % sizeof(path);
		unsigned nr = p[at + 1] % 9;
		at += 2;
		if (plen > n - at)
			plen = n - at;
		memcpy(path, p + at, plen);
		path[plen] = 0;
		at += plen;
		memset(rg, 0, sizeof(rg));
		memcpy(rg, p + at, n - at < sizeof(rg) ? n - at : sizeof(rg));
		int rc;
		if (kind == 0) {
			struct snapfs_rec_file f = {.fid = put, .size = plen};
			rc = rec_put_file(&w, &f, path);
		} else if (kind == 1) {
			struct snapfs_rec_diff d = {.fid = put, .nranges = nr};
			rc = rec_put_diff(&w, &d, nr ? rg : NULL, path);
		} else if (kind == 2) {
			struct snapfs_rec_restore s = {.written = put, .size = plen};
			rc = rec_put_restore(&w, &s, path);
		} else if (kind == 3) {
			struct snapfs_rec_snap s = {.id = put};
			size_t l = strlen(path);
			memcpy(s.label, path, l < sizeof(s.label) ? l : sizeof(s.label));
			rc = rec_put_snap(&w, &s);
		} else {
			rc = rec_put_line(&w, path, strlen(path));
		}
		if (rc)
			break;
		lens[put++] = (unsigned)strlen(path);
	}
	if (w.count != put || w.len > sizeof(w.data) || (kind != 4 && w.len % 8))
		abort();
	struct rec_iter it;
	rec_iter_init(&it, &w);
	for (unsigned i = 0; i <= put; i++) {
		int rc;
		const char *got = NULL;
		uint64_t tag = i;
		if (kind == 0) {
			struct snapfs_rec_file f;
			rc = rec_next_file(&it, &f, &got);
			tag = f.fid;
		} else if (kind == 1) {
			struct snapfs_rec_diff d;
			const void *r;
			rc = rec_next_diff(&it, &d, &r, &got);
			tag = d.fid;
		} else if (kind == 2) {
			struct snapfs_rec_restore s;
			rc = rec_next_restore(&it, &s, &got);
			tag = s.written;
		} else if (kind == 3) {
			struct snapfs_rec_snap s;
			rc = rec_next_snap(&it, &s);
			tag = s.id;
			if (rc == 1 &&
			    strlen(s.label) !=
				(lens[i] < sizeof(s.label) ? lens[i] : sizeof(s.label) - 1))
				abort();
		} else {
			rc = rec_next_line(&it, &got);
		}
		if (i == put) {
			if (rc != 0)
				abort();
			break;
		}
		if (rc != 1 || tag != i || (got && strlen(got) != lens[i]))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *p, size_t n)
{
	if (n < 1)
		return 0;
	unsigned kind = p[0] % 5;
	memset(&req, 0, sizeof(req));
	size_t k = n - 1 < sizeof(req) ? n - 1 : sizeof(req);
	memcpy(&req, p + 1, k);
	read_all(kind);
	round_trip(kind, p + 1, n - 1);
	return 0;
}
