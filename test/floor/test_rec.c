// SPDX-License-Identifier: MIT
/*
 * The record codec (rec.h): what the daemon packs comes back unchanged,
 * pages fill up exactly, and a malformed answer (lying counts and lengths,
 * records without their NUL, too many ranges) is -EPROTO, never a read
 * outside the request: the request is placed at the end of a page followed
 * by an inaccessible one, so any overread crashes the test.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rec.h"

static void *guard_base;
static size_t guard_len;

/* A zeroed request whose last byte is the last byte before a PROT_NONE page. */
static struct snapfs_req *guarded_req(void)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t need = (sizeof(struct snapfs_req) + pg - 1) / pg * pg;
	guard_len = need + pg;
	guard_base =
	    mmap(NULL, guard_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(guard_base, MAP_FAILED);
	cr_assert_eq(mprotect((char *)guard_base + need, pg, PROT_NONE), 0);
	/* 8-aligned, as calloc's would be: the struct's size is a multiple of 8 */
	return (struct snapfs_req *)((char *)guard_base + need - sizeof(struct snapfs_req));
}

static void guard_fini(void)
{
	if (guard_base)
		munmap(guard_base, guard_len);
	guard_base = NULL;
}

TestSuite(rec, .fini = guard_fini);

Test(rec, file_records_come_back_as_put)
{
	struct snapfs_req *r = guarded_req();
	const char *paths[] = {"a", "dir/b.txt", "", "a/very/long/name/that/needs/padding"};
	for (int i = 0; i < 4; i++) {
		struct snapfs_rec_file f = {.fid = 10 + i,
					    .size = 4096 * i,
					    .mtime = -i,
					    .mode = 0100644,
					    .uid = 1000,
					    .gid = 100,
					    .reclen = 7};
		cr_assert_eq(rec_put_file(r, &f, paths[i]), 0);
	}
	cr_assert_eq(r->count, 4);
	cr_assert_eq(r->len % 8, 0);
	struct rec_iter it;
	struct snapfs_rec_file f;
	const char *path;
	rec_iter_init(&it, r);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(rec_next_file(&it, &f, &path), 1);
		cr_expect_eq(f.fid, 10u + i);
		cr_expect_eq(f.size, 4096u * i);
		cr_expect_eq(f.mtime, -i);
		cr_expect_eq(f.mode, 0100644);
		cr_expect_eq(f.reclen % 8, 0);
		cr_expect_str_eq(path, paths[i]);
	}
	cr_expect_eq(rec_next_file(&it, &f, &path), 0);
	cr_expect_eq(rec_next_file(&it, &f, &path), 0);
}

Test(rec, diff_records_carry_their_ranges)
{
	struct snapfs_req *r = guarded_req();
	struct snapfs_range v[5];
	for (int i = 0; i < 5; i++)
		v[i] = (struct snapfs_range){(uint64_t)i << 20, 4096u * (i + 1)};
	struct snapfs_rec_diff d = {
	    .fid = 7, .size = 1 << 30, .nranges = 5, .flags = SNAPFS_DIFF_MORE};
	cr_assert_eq(rec_put_diff(r, &d, v, "x/y"), 0);
	struct snapfs_rec_diff e = {.fid = 8, .status = -EIO, .nranges = 0};
	cr_assert_eq(rec_put_diff(r, &e, NULL, "gone"), 0);

	struct rec_iter it;
	const void *ranges;
	const char *path;
	rec_iter_init(&it, r);
	cr_assert_eq(rec_next_diff(&it, &d, &ranges, &path), 1);
	cr_expect_eq(d.fid, 7);
	cr_expect_eq(d.nranges, 5);
	cr_expect_eq(d.flags, SNAPFS_DIFF_MORE);
	cr_expect_str_eq(path, "x/y");
	for (uint32_t k = 0; k < 5; k++) {
		struct snapfs_range g = rec_range(ranges, k);
		cr_expect(g.off == v[k].off && g.len == v[k].len, "range %u: %lu+%lu", k,
			  (unsigned long)g.off, (unsigned long)g.len);
	}
	cr_assert_eq(rec_next_diff(&it, &d, &ranges, &path), 1);
	cr_expect_eq(d.status, -EIO);
	cr_expect_eq(d.nranges, 0);
	cr_expect_str_eq(path, "gone");
	cr_expect_eq(rec_next_diff(&it, &d, &ranges, &path), 0);
}

Test(rec, restore_snap_and_line_records_come_back_as_put)
{
	struct snapfs_req *r = guarded_req();
	struct snapfs_rec_restore s = {.written = 12, .size = 34, .flags = SNAPFS_RESTORE_CREATED};
	cr_assert_eq(rec_put_restore(r, &s, "f"), 0);
	struct rec_iter it;
	const char *path;
	rec_iter_init(&it, r);
	memset(&s, 0, sizeof(s));
	cr_assert_eq(rec_next_restore(&it, &s, &path), 1);
	cr_expect(s.written == 12 && s.size == 34 && s.flags == SNAPFS_RESTORE_CREATED);
	cr_expect_str_eq(path, "f");
	cr_expect_eq(rec_next_restore(&it, &s, &path), 0);

	memset(r, 0, sizeof(*r));
	struct snapfs_rec_snap sn = {.id = 3, .epoch = 9, .uid = 1000};
	strcpy(sn.label, "nightly");
	cr_assert_eq(rec_put_snap(r, &sn), 0);
	sn.id = 4;
	memset(sn.label, 'x', sizeof(sn.label)); /* no NUL: cut on the way out */
	cr_assert_eq(rec_put_snap(r, &sn), 0);
	cr_assert_eq(r->len, 2 * sizeof(sn));
	rec_iter_init(&it, r);
	cr_assert_eq(rec_next_snap(&it, &sn), 1);
	cr_expect(sn.id == 3 && sn.epoch == 9 && !strcmp(sn.label, "nightly"));
	cr_assert_eq(rec_next_snap(&it, &sn), 1);
	cr_expect_eq(sn.id, 4);
	cr_expect_eq(strlen(sn.label), sizeof(sn.label) - 1);
	cr_expect_eq(rec_next_snap(&it, &sn), 0);

	memset(r, 0, sizeof(*r));
	cr_assert_eq(rec_put_line(r, "one problem", 3), 0);
	cr_assert_eq(rec_put_line(r, "two", 3), 0);
	const char *line;
	rec_iter_init(&it, r);
	cr_assert_eq(rec_next_line(&it, &line), 1);
	cr_expect_str_eq(line, "one");
	cr_assert_eq(rec_next_line(&it, &line), 1);
	cr_expect_str_eq(line, "two");
	cr_expect_eq(rec_next_line(&it, &line), 0);
}

Test(rec, a_page_fills_up_to_the_last_byte_and_no_further)
{
	struct snapfs_req *r = guarded_req();
	struct snapfs_rec_file f = {.fid = 1};
	char path[48];
	int n = 0, rc;
	for (;; n++) {
		snprintf(path, sizeof(path), "file-%06d", n); /* 40 + 12 bytes -> 56 */
		uint32_t len = r->len;
		if ((rc = rec_put_file(r, &f, path)))
			break;
		cr_assert_eq(r->len, len + 56);
	}
	cr_expect_eq(rc, -ENOSPC);
	cr_expect_eq((size_t)n, SNAPFS_PROTO_DATA / 56);
	cr_expect_eq(r->count, (uint32_t)n);
	cr_expect_leq(r->len, SNAPFS_PROTO_DATA);
	cr_expect_lt(SNAPFS_PROTO_DATA - r->len, 56);

	struct rec_iter it;
	const char *p;
	rec_iter_init(&it, r);
	for (int i = 0; i < n; i++)
		cr_assert_eq(rec_next_file(&it, &f, &p), 1);
	cr_expect_eq(rec_next_file(&it, &f, &p), 0);

	memset(r, 0, sizeof(*r));
	struct snapfs_rec_snap sn = {0};
	for (n = 0; rec_put_snap(r, &sn) == 0; n++)
		;
	cr_expect_eq((size_t)n, SNAPFS_PROTO_DATA / sizeof(sn));
}

Test(rec, diff_fit_is_exact)
{
	struct snapfs_req *r = guarded_req();
	static struct snapfs_range v[SNAPFS_PROTO_DATA / sizeof(struct snapfs_range)];
	const char *path = "some/file"; /* 10 bytes with the NUL */
	ssize_t fit = rec_diff_fit(r, strlen(path) + 1);
	cr_assert_eq(fit, (SNAPFS_PROTO_DATA - 32 - 10) / 16);
	struct snapfs_rec_diff d = {.nranges = (uint32_t)fit + 1};
	cr_expect_eq(rec_put_diff(r, &d, v, path), -ENOSPC);
	cr_expect_eq(r->len, 0);
	cr_expect_eq(r->count, 0);
	d.nranges = (uint32_t)fit;
	cr_assert_eq(rec_put_diff(r, &d, v, path), 0);
	cr_expect_eq(rec_diff_fit(r, 1), -ENOSPC);
	cr_expect_eq(rec_diff_fit(r, 0), -ENOSPC);

	memset(r, 0, sizeof(*r));
	r->len = SNAPFS_PROTO_DATA - 48; /* room for a header and a 16-byte path, no range */
	cr_expect_eq(rec_diff_fit(r, 16), 0);
	cr_expect_eq(rec_diff_fit(r, 17), -ENOSPC);
	r->len = SNAPFS_PROTO_DATA + 8; /* a lying len */
	cr_expect_eq(rec_diff_fit(r, 1), -ENOSPC);
}

/* One SHOW record with path "p" at offset 0, as the daemon would send it. */
static struct snapfs_req *one_file(void)
{
	struct snapfs_req *r = guarded_req();
	struct snapfs_rec_file f = {.fid = 1};
	cr_assert_eq(rec_put_file(r, &f, "p"), 0);
	return r;
}

static void set_reclen(struct snapfs_req *r, size_t at, size_t field, uint32_t v)
{
	memcpy(r->data + at + field, &v, sizeof(v));
}

static int next_file(struct snapfs_req *r)
{
	struct rec_iter it;
	struct snapfs_rec_file f;
	const char *p;
	int rc;
	rec_iter_init(&it, r);
	while ((rc = rec_next_file(&it, &f, &p)) > 0)
		;
	return rc;
}

Test(rec, malformed_file_answers_are_eproto)
{
	struct snapfs_req *r = one_file();
	size_t rl = offsetof(struct snapfs_rec_file, reclen);
	cr_assert_eq(next_file(r), 0);

	r->count = 2; /* more records than bytes */
	cr_expect_eq(next_file(r), -EPROTO);
	r->count = 1;

	uint32_t len = r->len;
	r->len = SNAPFS_PROTO_DATA + 8; /* len beyond data */
	cr_expect_eq(next_file(r), -EPROTO);
	r->len = 16; /* shorter than a header */
	cr_expect_eq(next_file(r), -EPROTO);
	r->len = len;

	set_reclen(r, 0, rl, 0); /* would loop forever on the same record */
	cr_expect_eq(next_file(r), -EPROTO);
	set_reclen(r, 0, rl, 40); /* no room for the path */
	cr_expect_eq(next_file(r), -EPROTO);
	set_reclen(r, 0, rl, 44); /* not a multiple of 8 */
	cr_expect_eq(next_file(r), -EPROTO);
	set_reclen(r, 0, rl, len + 8); /* past len */
	cr_expect_eq(next_file(r), -EPROTO);
	set_reclen(r, 0, rl, UINT32_MAX);
	cr_expect_eq(next_file(r), -EPROTO);
	set_reclen(r, 0, rl, len);
	memset(r->data + 40, 'x', len - 40); /* path without its NUL */
	cr_expect_eq(next_file(r), -EPROTO);
}

Test(rec, a_record_at_the_very_end_of_data_is_read_without_overread)
{
	struct snapfs_req *r = guarded_req();
	/* a lying answer: count 1, the record's header in the last 40 bytes,
	 * reclen claiming more than is there */
	size_t at = SNAPFS_PROTO_DATA - 40;
	r->len = SNAPFS_PROTO_DATA;
	struct snapfs_rec_file f = {.reclen = 48};
	memcpy(r->data + at, &f, sizeof(f));
	/* walk to it: a first record of reclen `at` with a NUL path */
	struct snapfs_rec_file g = {.reclen = (uint32_t)at};
	memcpy(r->data, &g, sizeof(g));
	r->count = 2;
	cr_expect_eq(next_file(r), -EPROTO);
	f.reclen = 40; /* no path */
	memcpy(r->data + at, &f, sizeof(f));
	cr_expect_eq(next_file(r), -EPROTO);
}

Test(rec, malformed_diff_answers_are_eproto)
{
	struct snapfs_req *r = guarded_req();
	struct snapfs_range v[2] = {{0, 4096}, {8192, 4096}};
	struct snapfs_rec_diff d = {.nranges = 2};
	cr_assert_eq(rec_put_diff(r, &d, v, "p"), 0); /* 32 + 32 + 2 -> 72 */
	cr_assert_eq(r->len, 72);
	struct rec_iter it;
	const void *ranges;
	const char *path;
	size_t nr = offsetof(struct snapfs_rec_diff, nranges);
	static const uint32_t bads[] = {3, 1u << 28, UINT32_MAX};
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		uint32_t bad = bads[i];
		memcpy(r->data + nr, &bad, sizeof(bad)); /* ranges run over the path */
		rec_iter_init(&it, r);
		cr_expect_eq(rec_next_diff(&it, &d, &ranges, &path), -EPROTO, "nranges %u", bad);
	}
	uint32_t two = 2;
	memcpy(r->data + nr, &two, sizeof(two));
	r->data[64] = 'p';
	memset(r->data + 65, 'x', 7); /* the path loses its NUL */
	rec_iter_init(&it, r);
	cr_expect_eq(rec_next_diff(&it, &d, &ranges, &path), -EPROTO);
	r->data[65] = 0;
	rec_iter_init(&it, r);
	cr_expect_eq(rec_next_diff(&it, &d, &ranges, &path), 1);
}

Test(rec, malformed_list_and_check_answers_are_eproto)
{
	struct snapfs_req *r = guarded_req();
	struct snapfs_rec_snap sn = {.id = 1};
	cr_assert_eq(rec_put_snap(r, &sn), 0);
	struct rec_iter it;
	r->count = 49; /* 49 * 320 > data: the old reader read past the request */
	r->len = SNAPFS_PROTO_DATA;
	rec_iter_init(&it, r);
	int rc, n = 0;
	while ((rc = rec_next_snap(&it, &sn)) > 0)
		n++;
	cr_expect_eq(rc, -EPROTO);
	cr_expect_eq(n, 48);
	r->count = 2;
	r->len = 320; /* fewer bytes than records */
	rec_iter_init(&it, r);
	cr_expect_eq(rec_next_snap(&it, &sn), 1);
	cr_expect_eq(rec_next_snap(&it, &sn), -EPROTO);

	memset(r, 0, sizeof(*r));
	const char *line;
	cr_assert_eq(rec_put_line(r, "abc", 3), 0);
	r->count = 2;
	rec_iter_init(&it, r);
	cr_expect_eq(rec_next_line(&it, &line), 1);
	cr_expect_eq(rec_next_line(&it, &line), -EPROTO);
	memset(r->data, 'x', SNAPFS_PROTO_DATA); /* a line without a NUL up to the end */
	r->len = SNAPFS_PROTO_DATA;
	r->count = 1;
	rec_iter_init(&it, r);
	cr_expect_eq(rec_next_line(&it, &line), -EPROTO);
	r->len = SNAPFS_PROTO_DATA + 1;
	rec_iter_init(&it, r);
	cr_expect_eq(rec_next_line(&it, &line), -EPROTO);
}
