// SPDX-License-Identifier: MIT
/*
 * Copy-on-write hooks: what a snapshot reads after writes, truncates, punches,
 * unlink, rename-over, hard links and inode reuse, and what the hooks copy
 * (nothing for second overwrites, appends past the snapshot, holes).
 */
#include "fixture.h"

#include <sys/mount.h>

TestSuite(cow, .init = fx_setup, .fini = fx_teardown, .timeout = 30);

#define BS 4096

static struct store_file *get(int fd)
{
	struct store_file *sf;
	int rc = store_file_get(fx_st, fd, &sf);
	cr_assert_eq(rc, 0, "store_file_get: %s", strerror(-rc));
	return sf;
}

Test(cow, overwrite_after_pin_keeps_old_bytes)
{
	char a[3 * BS], b[BS];
	tu_fill(a, sizeof(a), 1);
	tu_fill(b, sizeof(b), 2);
	int fd = fx_file("f");
	fx_pwrite(fd, a, sizeof(a), 0);
	struct store_file *sf = get(fd);
	cr_assert_not(store_file_tracked(sf));
	uint64_t id = fx_pin1(sf, fd, "f", STORE_PINNED);
	cr_assert(store_file_tracked(sf));
	uint64_t fid = store_file_fid(sf);
	cr_assert_neq(fid, 0);
	cr_assert_eq(fx_cow_write(sf, fd, b, 100, BS + 10), 0);
	fx_expect_snap(id, fid, a, sizeof(a));
	struct store_stats s = fx_stats();
	cr_assert_eq(s.cow_copies, 1);
	cr_assert_eq(s.cow_bytes, BS);
	cr_assert_eq(s.bytes_preserved, BS);
	fx_check();
	store_file_put(sf);
	close(fd);
}

Test(cow, second_overwrite_copies_nothing)
{
	char a[4 * BS], b[4 * BS];
	tu_fill(a, sizeof(a), 3);
	tu_fill(b, sizeof(b), 4);
	int fd = fx_file("f");
	fx_pwrite(fd, a, sizeof(a), 0);
	struct store_file *sf = get(fd);
	uint64_t id = fx_pin1(sf, fd, "f", STORE_PINNED);
	cr_assert_eq(fx_cow_write(sf, fd, b, sizeof(b), 0), 0);
	struct store_stats s1 = fx_stats();
	cr_assert_eq(s1.cow_bytes, sizeof(a));
	cr_assert_eq(fx_cow_write(sf, fd, a, sizeof(a), 0), 0);
	struct store_stats s2 = fx_stats();
	cr_assert_eq(s2.cow_bytes, s1.cow_bytes, "second overwrite copied %lu bytes",
		     (unsigned long)(s2.cow_bytes - s1.cow_bytes));
	cr_assert_eq(s2.cow_copies, s1.cow_copies);
	fx_expect_snap(id, store_file_fid(sf), a, sizeof(a));
	store_file_put(sf);
	close(fd);
}

Test(cow, append_beyond_snapshot_size_copies_nothing)
{
	char a[2 * BS], b[8 * BS];
	tu_fill(a, sizeof(a), 5);
	tu_fill(b, sizeof(b), 6);
	int fd = fx_file("f");
	fx_pwrite(fd, a, sizeof(a), 0);
	struct store_file *sf = get(fd);
	uint64_t id = fx_pin1(sf, fd, "f", STORE_PINNED);
	cr_assert_eq(fx_cow_write(sf, fd, b, sizeof(b), sizeof(a)), 0);
	cr_assert_eq(fx_stats().cow_bytes, 0);
	fx_expect_snap(id, store_file_fid(sf), a, sizeof(a));
	store_file_put(sf);
	close(fd);
}

Test(cow, partial_last_block_append_preserves_it)
{
	char a[BS + 100], b[500];
	tu_fill(a, sizeof(a), 7);
	tu_fill(b, sizeof(b), 8);
	int fd = fx_file("f");
	fx_pwrite(fd, a, sizeof(a), 0);
	struct store_file *sf = get(fd);
	uint64_t id = fx_pin1(sf, fd, "f", STORE_PINNED);
	cr_assert_eq(fx_cow_write(sf, fd, b, sizeof(b), sizeof(a) - 50), 0);
	fx_expect_snap(id, store_file_fid(sf), a, sizeof(a));
	fx_check();
	store_file_put(sf);
	close(fd);
}

Test(cow, hole_preservation_copies_nothing)
{
	char b[BS];
	tu_fill(b, sizeof(b), 9);
	int fd = fx_file("f");
	cr_assert_eq(ftruncate(fd, 64 * BS), 0); /* all hole */
	fx_pwrite(fd, b, BS, 63 * BS);		 /* one data block at the end */
	struct store_file *sf = get(fd);
	uint64_t id = fx_pin1(sf, fd, "f", STORE_PINNED);
	char *big = malloc(64 * BS), *want = calloc(1, 64 * BS);
	tu_fill(big, 64 * BS, 10);
	memcpy(want + 63 * BS, b, BS);
	cr_assert_eq(fx_cow_write(sf, fd, big, 63 * BS, 0), 0);
	struct store_stats s = fx_stats();
	cr_assert_eq(s.cow_bytes, 0, "holes copied %lu bytes", (unsigned long)s.cow_bytes);
	cr_assert_gt(s.extents, 0);
	fx_expect_snap(id, store_file_fid(sf), want, 64 * BS);
	fx_check();
	free(big);
	free(want);
	store_file_put(sf);
	close(fd);
}

Test(cow, truncate_then_extend_reads_old_bytes)
{
	char a[5 * BS + 7];
	tu_fill(a, sizeof(a), 11);
	int fd = fx_file("f");
	fx_pwrite(fd, a, sizeof(a), 0);
	struct store_file *sf = get(fd);
	uint64_t id = fx_pin1(sf, fd, "f", STORE_PINNED);
	cr_assert_eq(fx_cow_truncate(sf, fd, 100), 0);
	cr_assert_eq(fx_cow_truncate(sf, fd, 10 * BS), 0);
	char z[BS];
	tu_fill(z, sizeof(z), 12);
	cr_assert_eq(fx_cow_write(sf, fd, z, BS, 2 * BS), 0);
	fx_expect_snap(id, store_file_fid(sf), a, sizeof(a));
	fx_check();
	store_file_put(sf);
	close(fd);
}

Test(cow, punch_hole_keeps_old_bytes)
{
	char a[6 * BS];
	tu_fill(a, sizeof(a), 13);
	int fd = fx_file("f");
	fx_pwrite(fd, a, sizeof(a), 0);
	struct store_file *sf = get(fd);
	uint64_t id = fx_pin1(sf, fd, "f", STORE_PINNED);
	store_file_wrlock(sf);
	cr_assert_eq(store_cow_range(sf, fd, BS / 2, 3 * BS), 0);
	cr_assert_eq(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, BS / 2, 3 * BS), 0);
	store_file_unlock(sf);
	fx_expect_snap(id, store_file_fid(sf), a, sizeof(a));
	store_file_put(sf);
	close(fd);
}

Test(cow, unlink_detaches_and_snapshot_still_reads)
{
	char a[3 * BS], b[3 * BS];
	tu_fill(a, sizeof(a), 14);
	tu_fill(b, sizeof(b), 15);
	int fd = fx_file("f");
	fx_pwrite(fd, a, sizeof(a), 0);
	struct store_file *sf = get(fd);
	uint64_t id = fx_pin1(sf, fd, "f", STORE_PINNED);
	uint64_t fid = store_file_fid(sf);
	store_file_wrlock(sf);
	cr_assert_eq(store_cow_unlink(sf, fd), 0);
	char p[1024];
	tu_path(p, sizeof(p), fx_src, "f");
	cr_assert_eq(unlink(p), 0);
	store_file_unlock(sf);
	/* the open-unlinked file keeps changing: the snapshot must not care */
	cr_assert_eq(fx_cow_write(sf, fd, b, sizeof(b), 0), 0);
	fx_expect_snap(id, fid, a, sizeof(a));
	struct store_pin pn = {.kind = STORE_PINNED};
	struct store_pin_file pf = {.sf = sf, .fd = fd, .path = "f"};
	uint64_t id2;
	cr_assert_eq(store_pin(fx_st, &pn, &pf, 1, &id2), -ENOENT);
	store_file_put(sf);
	close(fd);
	fx_reopen();
	fx_expect_snap(id, fid, a, sizeof(a));
	fx_check();
	cr_assert_eq(store_release(fx_st, id), 0);
	cr_assert_eq(fx_stats().extents, 0);
	fx_check();
}

Test(cow, rename_over_keeps_replaced_file_snapshot)
{
	char a[2 * BS], b[3 * BS];
	tu_fill(a, sizeof(a), 16);
	tu_fill(b, sizeof(b), 17);
	int fa = fx_file("a"), fb = fx_file("b");
	fx_pwrite(fa, a, sizeof(a), 0);
	fx_pwrite(fb, b, sizeof(b), 0);
	struct store_file *sa = get(fa), *sb = get(fb);
	uint64_t id = fx_pin1(sa, fa, "a", STORE_PINNED);
	uint64_t fid = store_file_fid(sa);
	/* rename b over a: a's last link goes */
	store_file_wrlock(sa);
	cr_assert_eq(store_cow_unlink(sa, fa), 0);
	char pa[1024], pb[1024];
	tu_path(pa, sizeof(pa), fx_src, "a");
	tu_path(pb, sizeof(pb), fx_src, "b");
	cr_assert_eq(rename(pb, pa), 0);
	store_file_unlock(sa);
	store_file_put(sa);
	close(fa);
	fx_expect_snap(id, fid, a, sizeof(a));
	/* the new "a" is a different file */
	cr_assert_neq(store_file_fid(sb), fid);
	store_file_put(sb);
	close(fb);
	fx_reopen();
	fx_expect_snap(id, fid, a, sizeof(a));
}

Test(cow, hard_links_share_one_store_file)
{
	char a[2 * BS], b[BS];
	tu_fill(a, sizeof(a), 18);
	tu_fill(b, sizeof(b), 19);
	int fd = fx_file("x");
	fx_pwrite(fd, a, sizeof(a), 0);
	char px[1024], py[1024];
	tu_path(px, sizeof(px), fx_src, "x");
	tu_path(py, sizeof(py), fx_src, "y");
	cr_assert_eq(link(px, py), 0);
	int fy = open(py, O_RDWR);
	struct store_file *s1 = get(fd), *s2 = get(fy);
	cr_assert_eq(s1, s2, "two links, two store_files");
	uint64_t id = fx_pin1(s1, fd, "x", STORE_PINNED);
	cr_assert_eq(fx_cow_write(s2, fy, b, BS, 0), 0);
	fx_expect_snap(id, store_file_fid(s1), a, sizeof(a));
	store_file_put(s1);
	store_file_put(s2);
	close(fd);
	close(fy);
}

/* tmpfs never reuses inode numbers, so this one runs on a small ext4 image. */
static char ext_mnt[600];

static void ext_fini(void)
{
	if (ext_mnt[0])
		umount2(ext_mnt, MNT_DETACH);
	fx_teardown();
}

Test(cow, inode_reuse_is_not_confused, .fini = ext_fini)
{
	char img[600], cmd[4096];
	snprintf(img, sizeof(img), "%s/ext4.img", fx_root);
	snprintf(ext_mnt, sizeof(ext_mnt), "%s/ext", fx_root);
	cr_assert_eq(mkdir(ext_mnt, 0755), 0);
	snprintf(cmd, sizeof(cmd),
		 "truncate -s 64M %s && mkfs.ext4 -q -F -N 256 %s && mount -o loop %s %s", img, img,
		 img, ext_mnt);
	if (system(cmd) != 0) {
		ext_mnt[0] = 0;
		cr_skip_test("cannot mount an ext4 image (needs root and loop devices)");
	}
	store_close(fx_st);
	fx_st = NULL;
	close(fx_srcfd);
	fx_srcfd = open(ext_mnt, O_DIRECTORY | O_RDONLY);
	cr_assert(fx_srcfd >= 0);
	fx_open_bs(4096, 0);

	char a[2 * BS], p[1024];
	tu_fill(a, sizeof(a), 20);
	tu_path(p, sizeof(p), ext_mnt, "victim");
	int fd = open(p, O_RDWR | O_CREAT, 0644);
	fx_pwrite(fd, a, sizeof(a), 0);
	struct stat sb;
	fstat(fd, &sb);
	struct store_file *sf = get(fd);
	uint64_t id = fx_pin1(sf, fd, "victim", STORE_PINNED);
	uint64_t fid = store_file_fid(sf);
	store_file_wrlock(sf);
	cr_assert_eq(store_cow_unlink(sf, fd), 0);
	cr_assert_eq(unlink(p), 0);
	store_file_unlock(sf);
	store_file_put(sf);
	close(fd);
	int found = 0;
	for (int i = 0; i < 200 && !found; i++) {
		char name[64];
		snprintf(name, sizeof(name), "n%d", i);
		tu_path(p, sizeof(p), ext_mnt, name);
		int f2 = open(p, O_RDWR | O_CREAT, 0644);
		cr_assert(f2 >= 0);
		struct stat s2;
		fstat(f2, &s2);
		if (s2.st_ino == sb.st_ino) {
			found = 1;
			char junk[BS];
			tu_fill(junk, sizeof(junk), 21);
			struct store_file *n = get(f2);
			cr_assert_neq(store_file_fid(n), fid, "new inode took the old file's id");
			cr_assert_not(store_file_tracked(n));
			cr_assert_eq(fx_cow_write(n, f2, junk, BS, 0), 0);
			store_file_put(n);
		}
		close(f2);
	}
	cr_assert(found, "inode number %lu never reused", (unsigned long)sb.st_ino);
	fx_expect_snap(id, fid, a, sizeof(a));
	fx_reopen();
	fx_expect_snap(id, fid, a, sizeof(a));
	struct store_snap s;
	cr_assert_eq(store_snap_get(fx_st, id, &s), 0);
	cr_assert_eq(s.state, STORE_VALID, "a detached file's snapshot went stale");
	store_close(fx_st);
	fx_st = NULL;
}

Test(cow, ephemeral_snapshot_dropped_at_reopen)
{
	char a[2 * BS], b[2 * BS];
	tu_fill(a, sizeof(a), 22);
	tu_fill(b, sizeof(b), 23);
	int fd = fx_file("f");
	fx_pwrite(fd, a, sizeof(a), 0);
	struct store_file *sf = get(fd);
	uint64_t id = fx_pin1(sf, fd, "f", STORE_EPHEMERAL);
	cr_assert_eq(fx_cow_write(sf, fd, b, sizeof(b), 0), 0);
	fx_expect_snap(id, store_file_fid(sf), a, sizeof(a));
	store_file_put(sf);
	close(fd);
	fx_reopen();
	char buf[16];
	cr_assert_eq(store_snap_read(fx_st, id, 1, buf, sizeof(buf), 0), -ENOENT);
	struct store_stats s = fx_stats();
	cr_assert_eq(s.extents, 0);
	cr_assert_eq(s.snapshots, 0);
	fx_check();
}

Test(cow, store_max_fails_with_enospc_and_changes_nothing)
{
	store_close(fx_st);
	fx_open_bs(4096, 2 * BS);
	char a[4 * BS], b[4 * BS];
	tu_fill(a, sizeof(a), 24);
	tu_fill(b, sizeof(b), 25);
	int fd = fx_file("f");
	fx_pwrite(fd, a, sizeof(a), 0);
	struct store_file *sf = get(fd);
	uint64_t id = fx_pin1(sf, fd, "f", STORE_PINNED);
	cr_assert_eq(fx_cow_write(sf, fd, b, 3 * BS, 0), -ENOSPC);
	struct store_stats s = fx_stats();
	cr_assert_eq(s.extents, 0);
	cr_assert_eq(s.bytes_preserved, 0);
	cr_assert_eq(fx_cow_write(sf, fd, b, 2 * BS, 0), 0);
	cr_assert_eq(fx_cow_write(sf, fd, b, BS, 3 * BS), -ENOSPC);
	memcpy(a, b, 2 * BS); /* live now */
	char live[4 * BS];
	cr_assert_eq(pread(fd, live, sizeof(live), 0), (ssize_t)sizeof(live));
	cr_assert_arr_eq(live, a, sizeof(a));
	tu_fill(a, 2 * BS, 24);
	fx_expect_snap(id, store_file_fid(sf), a, sizeof(a));
	fx_check();
	store_file_put(sf);
	close(fd);
}

/* store_cow_ranges: several scattered ranges (two sharing a block, one past
 * the end) preserved in one call; the snapshot reads the old bytes, the
 * copies are exactly the blocks touched, and bad input changes nothing. */
Test(cow, ranges_preserve_every_range_in_one_call)
{
	enum { NB = 64 };
	char *a = malloc(NB * BS), *live = malloc(NB * BS);
	tu_fill(a, NB * BS, 41);
	memcpy(live, a, NB * BS);
	int fd = fx_file("f");
	fx_pwrite(fd, a, NB * BS, 0);
	struct store_file *sf = get(fd);
	uint64_t id = fx_pin1(sf, fd, "f", STORE_PINNED);
	/* blocks 3, 10 (two ranges in it), 20-22, 63 and past the end */
	const uint64_t r[][2] = {{3 * BS + 5, 10},
				 {10 * BS, 100},
				 {10 * BS + 200, 50},
				 {20 * BS + 1, 3 * BS - 2},
				 {63 * BS + BS - 1, BS + 1}};
	const uint64_t bad[][2] = {{5 * BS, BS}, {4 * BS, BS}}; /* not increasing */
	cr_assert_eq(store_cow_ranges(sf, fd, bad, 2), -EINVAL);
	cr_assert_eq(fx_stats().cow_bytes, 0, "a refused call copied");
	cr_assert_eq(store_cow_ranges(sf, fd, r, sizeof(r) / sizeof(r[0])), 0);
	struct store_stats s = fx_stats();
	cr_assert_eq(s.cow_bytes, 6 * BS, "copied %lu bytes, expected blocks 3, 10, 20-22, 63",
		     (unsigned long)s.cow_bytes);
	/* Now change those ranges; the snapshot keeps the old bytes. */
	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
		uint64_t end = r[i][0] + r[i][1] < NB * BS ? r[i][0] + r[i][1] : NB * BS;
		memset(live + r[i][0], 0xee, end - r[i][0]);
		fx_pwrite(fd, live + r[i][0], end - r[i][0], (off_t)r[i][0]);
	}
	fx_expect_snap(id, store_file_fid(sf), a, NB * BS);
	/* A second call over the same ranges copies nothing more. */
	cr_assert_eq(store_cow_ranges(sf, fd, r, sizeof(r) / sizeof(r[0])), 0);
	cr_assert_eq(fx_stats().cow_bytes, s.cow_bytes);
	fx_check();
	store_file_put(sf);
	close(fd);
	free(a);
	free(live);
}

static int changed_collect(void *arg, uint64_t off, uint64_t len)
{
	uint64_t(*v)[2] = arg;
	size_t i = 0;
	while (v[i][1])
		i++;
	v[i][0] = off;
	v[i][1] = len;
	return 0;
}

/* store_snap_forgo: an ephemeral snapshot gives up blocks. They are not
 * preserved for it (unless another snapshot needs them), reading them from
 * it fails with EIO (never the changed live bytes), DIFF calls them changed,
 * the rest of the snapshot reads right; a pinned snapshot cannot forgo. */
Test(cow, forgone_blocks_are_not_preserved_and_never_read)
{
	enum { NB = 16 };
	char a[NB * BS], b[BS];
	tu_fill(a, sizeof(a), 51);
	tu_fill(b, sizeof(b), 52);
	int fd = fx_file("f");
	fx_pwrite(fd, a, sizeof(a), 0);
	struct store_file *sf = get(fd);
	uint64_t eph = fx_pin1(sf, fd, "f", STORE_EPHEMERAL);
	uint64_t fid = store_file_fid(sf);
	cr_assert_eq(store_snap_forgo(fx_st, eph + 1000, fid, 0, BS), -ENOENT);
	/* Blocks 2 and 3 (the partial blocks around them stay). */
	cr_assert_eq(store_snap_forgo(fx_st, eph, fid, 2 * BS - 10, 2 * BS + 20), 0);
	cr_assert_eq(fx_cow_write(sf, fd, b, BS, 2 * BS), 0);
	cr_assert_eq(fx_stats().cow_bytes, 0, "a forgone block was preserved");
	cr_assert_eq(fx_cow_write(sf, fd, b, BS, 5 * BS), 0);
	cr_assert_eq(fx_stats().cow_bytes, BS, "block 5 must be preserved");
	char got[NB * BS];
	cr_assert_eq(store_snap_read(fx_st, eph, fid, got, BS, 2 * BS), -EIO);
	cr_assert_eq(store_snap_read(fx_st, eph, fid, got, 3 * BS, BS), -EIO);
	cr_assert_eq(store_snap_read(fx_st, eph, fid, got, BS, 5 * BS), BS);
	cr_assert_arr_eq(got, a + 5 * BS, BS);
	cr_assert_eq(store_snap_read(fx_st, eph, fid, got, BS, 4 * BS), BS);
	cr_assert_arr_eq(got, a + 4 * BS, BS);
	uint64_t ch[8][2] = {{0}};
	cr_assert_eq(store_snap_changed(fx_st, eph, fid, changed_collect, ch), 0);
	cr_assert(ch[0][0] == 2 * BS && ch[0][1] == 2 * BS && ch[1][0] == 5 * BS &&
		      ch[1][1] == BS && ch[2][1] == 0,
		  "changed: [%lu,+%lu) [%lu,+%lu) [%lu,+%lu)", (unsigned long)ch[0][0],
		  (unsigned long)ch[0][1], (unsigned long)ch[1][0], (unsigned long)ch[1][1],
		  (unsigned long)ch[2][0], (unsigned long)ch[2][1]);
	/* A pinned snapshot taken now needs block 3 again: it is preserved. */
	uint64_t pin = fx_pin1(sf, fd, "f", STORE_PINNED);
	cr_assert_eq(store_snap_forgo(fx_st, pin, fid, 0, BS), -EINVAL);
	char live[NB * BS];
	cr_assert_eq(pread(fd, live, sizeof(live), 0), (ssize_t)sizeof(live));
	uint64_t before = fx_stats().cow_bytes;
	cr_assert_eq(fx_cow_write(sf, fd, b, BS, 3 * BS), 0);
	cr_assert_eq(fx_stats().cow_bytes, before + BS);
	fx_expect_snap(pin, fid, live, sizeof(live));
	cr_assert_eq(store_release(fx_st, eph), 0);
	fx_check();
	store_file_put(sf);
	close(fd);
}

static int cached(struct store_file *sf, uint64_t off, uint64_t len)
{
	store_file_wrlock(sf);
	int r = store_cow_cached(sf, off, len);
	store_file_unlock(sf);
	return r;
}

/* The done set: a block preserved once is not looked up again for the same
 * covers; a new pin (a new cover) makes every block count again, a release
 * does not, and a reopen starts empty. */
Test(cow, done_set_skips_later_writes_until_a_new_cover)
{
	char a[4 * BS], b[BS], c[BS], d[BS], e[BS], want[4 * BS];
	tu_fill(a, sizeof(a), 40);
	tu_fill(b, sizeof(b), 41);
	tu_fill(c, sizeof(c), 42);
	tu_fill(d, sizeof(d), 43);
	tu_fill(e, sizeof(e), 44);
	int fd = fx_file("f");
	fx_pwrite(fd, a, sizeof(a), 0);
	struct store_file *sf = get(fd);
	cr_assert_eq(cached(sf, BS, 100), 1, "untracked: nothing to do");
	uint64_t s1 = fx_pin1(sf, fd, "f", STORE_PINNED);
	uint64_t fid = store_file_fid(sf);
	cr_assert_eq(cached(sf, BS, 100), 0, "nothing preserved yet");
	cr_assert_eq(fx_cow_write(sf, fd, b, 100, BS + 7), 0);
	cr_assert_eq(fx_stats().cow_copies, 1);
	cr_assert_eq(cached(sf, BS, BS), 1, "block 1 is done");
	cr_assert_eq(cached(sf, BS - 1, 2), 0, "block 0 is not");
	cr_assert_eq(cached(sf, 2 * BS, 1), 0, "block 2 is not");
	cr_assert_eq(fx_cow_write(sf, fd, c, sizeof(c), BS), 0);
	cr_assert_eq(fx_stats().cow_copies, 1, "a done block was copied again");

	/* A new pin: block 1 must be preserved again, for s2. */
	uint64_t s2 = fx_pin1(sf, fd, "f", STORE_PINNED);
	cr_assert_eq(cached(sf, BS, BS), 0, "a new cover keeps the done set");
	cr_assert_eq(fx_cow_write(sf, fd, d, sizeof(d), BS), 0);
	cr_assert_eq(fx_stats().cow_copies, 2);
	memcpy(want, a, sizeof(want));
	fx_expect_snap(s1, fid, want, sizeof(want));
	memcpy(want + BS, c, BS);
	fx_expect_snap(s2, fid, want, sizeof(want));

	/* A release only lowers the need: the set stays, s1 stays right. */
	cr_assert_eq(store_release(fx_st, s2), 0);
	cr_assert_eq(cached(sf, BS, BS), 1);
	cr_assert_eq(fx_cow_write(sf, fd, e, sizeof(e), BS), 0);
	cr_assert_eq(fx_stats().cow_copies, 2);
	fx_expect_snap(s1, fid, a, sizeof(a));

	/* A reopen starts empty (the set is memory only). */
	store_file_put(sf);
	fx_reopen();
	sf = get(fd);
	cr_assert_eq(cached(sf, BS, BS), 0, "the done set survived a reopen");
	cr_assert_eq(fx_cow_write(sf, fd, d, sizeof(d), BS), 0);
	fx_expect_snap(s1, fid, a, sizeof(a));
	fx_check();
	store_file_put(sf);
	close(fd);
}

/* Many chunks: past the set's bound it starts over, and stays right. */
Test(cow, done_set_bound_starts_over_and_stays_right)
{
	size_t nb = 64 * 4096 + 64 * 8; /* more chunks of 64 blocks than it holds */
	int fd = fx_file("f");
	cr_assert_eq(ftruncate(fd, (off_t)(nb * BS)), 0);
	struct store_file *sf = get(fd);
	uint64_t s1 = fx_pin1(sf, fd, "f", STORE_PINNED);
	char one = 1;
	for (size_t b = 0; b < nb; b += 64)
		cr_assert_eq(fx_cow_write(sf, fd, &one, 1, (off_t)(b * BS)), 0);
	size_t hits = 0;
	for (size_t b = 0; b < nb; b += 64)
		hits += (size_t)cached(sf, b * BS, 1);
	cr_assert(hits > 0 && hits < nb / 64, "%zu of %zu chunks done", hits, nb / 64);
	uint64_t s2 = fx_pin1(sf, fd, "f", STORE_PINNED);
	char two = 2;
	for (size_t b = 0; b < nb; b += 64)
		cr_assert_eq(fx_cow_write(sf, fd, &two, 1, (off_t)(b * BS)), 0);
	char got;
	for (size_t b = 0; b < nb; b += 64 * 97) {
		cr_assert_eq(store_snap_read(fx_st, s1, store_file_fid(sf), &got, 1, b * BS), 1);
		cr_assert_eq(got, 0, "s1 block %zu", b);
		cr_assert_eq(store_snap_read(fx_st, s2, store_file_fid(sf), &got, 1, b * BS), 1);
		cr_assert_eq(got, 1, "s2 block %zu", b);
	}
	store_file_put(sf);
	close(fd);
}
