// SPDX-License-Identifier: MIT
/*
 * Copy-on-write through the mount: after a pin, every way of changing a
 * file (write, truncate, fallocate, rename over, unlink, O_TRUNC,
 * copy_file_range, MAP_SHARED writeback, O_APPEND) leaves the snapshot
 * reading exactly the pin-time bytes, size, mode and mtime, through read()
 * and through mmap(), while the live file has the new bytes. Identity
 * follows the inode: hard links and renames don't disturb a snapshot.
 */
#include "snaputil.h"

#include <linux/falloc.h>

TestSuite(cow, .init = fx_setup, .fini = fx_teardown, .timeout = 60);

/* A file written through the mount with a fixed past mtime, its pin-time
 * bytes and attributes, and a model of the live file. */
struct pinned {
	const char *rel;
	unsigned char *old;
	size_t oldlen;
	struct stat st;
	uint64_t id;
	unsigned char *live;
	size_t livelen, livecap;
};

static void make_file(const char *rel, size_t len, uint64_t seed, mode_t mode)
{
	unsigned char *b = xmalloc(len);
	tu_fill(b, len, seed);
	write_path(MP(rel), b, len);
	free(b);
	cr_assert_eq(chmod(MP(rel), mode), 0);
	struct timespec ts[2] = {{1000000000, 0}, {1000000000, 123456789}};
	cr_assert_eq(utimensat(AT_FDCWD, MP(rel), ts, 0), 0);
}

static void pin_file(struct pinned *p, const char *rel, size_t cap)
{
	memset(p, 0, sizeof(*p));
	p->rel = rel;
	p->livecap = cap;
	p->old = xmalloc(cap);
	p->live = xmalloc(cap);
	cr_assert_eq(stat(MP(rel), &p->st), 0);
	ssize_t n = read_path(MP(rel), p->old, cap);
	cr_assert(n >= 0 && (size_t)n == (size_t)p->st.st_size);
	p->oldlen = (size_t)n;
	memcpy(p->live, p->old, p->oldlen);
	p->livelen = p->oldlen;
	p->id = pin1(rel);
}

static void make_and_pin(struct pinned *p, const char *rel, size_t len, uint64_t seed, size_t cap)
{
	make_file(rel, len, seed, 0640);
	pin_file(p, rel, cap);
}

/* The snapshot at view path vrel still holds the pin-time file. */
static void check_snap_at(const struct pinned *p, const char *vrel)
{
	const char *vp = VP(p->id, vrel);
	unsigned char *got = xmalloc(p->livecap + 1);
	ssize_t n = read_path(vp, got, p->livecap + 1);
	cr_assert(n >= 0, "read %s: %s", vp, strerror((int)-n));
	expect_bytes("snapshot via read()", got, (size_t)n, p->old, p->oldlen);
	memset(got, 0, p->livecap);
	n = mmap_path(vp, got, p->livecap + 1);
	cr_assert(n >= 0, "mmap %s: %s", vp, strerror((int)-n));
	expect_bytes("snapshot via mmap()", got, (size_t)n, p->old, p->oldlen);
	free(got);
	struct stat st;
	cr_assert_eq(stat(vp, &st), 0, "stat %s: %s", vp, strerror(errno));
	cr_assert_eq(st.st_size, p->st.st_size, "snapshot size %lld, pin-time %lld",
		     (long long)st.st_size, (long long)p->st.st_size);
	cr_assert_eq(st.st_mode & ~0222u, p->st.st_mode & ~0222u,
		     "snapshot mode %o, pin-time %o (write bits aside)", st.st_mode, p->st.st_mode);
	cr_assert_eq(st.st_mode & 0222u, 0, "snapshot file mode %o has write bits", st.st_mode);
	cr_assert(st.st_mtim.tv_sec == p->st.st_mtim.tv_sec &&
		      st.st_mtim.tv_nsec == p->st.st_mtim.tv_nsec,
		  "snapshot mtime %lld.%09ld, pin-time %lld.%09ld", (long long)st.st_mtim.tv_sec,
		  st.st_mtim.tv_nsec, (long long)p->st.st_mtim.tv_sec, p->st.st_mtim.tv_nsec);
}

static void check_snap(const struct pinned *p)
{
	check_snap_at(p, p->rel);
}

/* The live file (at rel) equals the model. */
static void check_live_at(const struct pinned *p, const char *rel)
{
	unsigned char *got = xmalloc(p->livecap + 1);
	ssize_t n = read_path(MP(rel), got, p->livecap + 1);
	cr_assert(n >= 0, "read live %s: %s", rel, strerror((int)-n));
	expect_bytes("live file", got, (size_t)n, p->live, p->livelen);
	free(got);
	struct stat st;
	cr_assert_eq(stat(MP(rel), &st), 0);
	cr_assert_eq((size_t)st.st_size, p->livelen);
}

static void check_live(const struct pinned *p)
{
	check_live_at(p, p->rel);
}

static void pinned_free(struct pinned *p)
{
	free(p->old);
	free(p->live);
}

/* Model edits. */
static void live_write(struct pinned *p, const void *b, size_t len, size_t off)
{
	cr_assert(off + len <= p->livecap);
	if (off > p->livelen)
		memset(p->live + p->livelen, 0, off - p->livelen);
	memcpy(p->live + off, b, len);
	if (off + len > p->livelen)
		p->livelen = off + len;
}

static void live_truncate(struct pinned *p, size_t size)
{
	cr_assert(size <= p->livecap);
	if (size > p->livelen)
		memset(p->live + p->livelen, 0, size - p->livelen);
	p->livelen = size;
}

#define MIB (1024 * 1024)

/* A full store (store_max) refuses the write that needs a copy: ENOSPC, and
 * neither the live file nor the snapshot changes. Writes needing no copy
 * (appends past every snapshot's size) still work. */
Test(cow, full_store_fails_the_write_with_enospc_and_changes_nothing)
{
	fx_mount("store_max=64K");
	struct pinned p;
	make_and_pin(&p, "f", MIB, 3, 2 * MIB);
	unsigned char nb[256 * 1024];
	tu_fill(nb, sizeof(nb), 77);
	int fd = open(MP("f"), O_WRONLY);
	cr_assert(fd >= 0);
	pwrite_all(fd, nb, 32 * 1024, 0); /* 32 KiB of copies: fits */
	live_write(&p, nb, 32 * 1024, 0);
	errno = 0;
	ssize_t n = pwrite(fd, nb, sizeof(nb), 256 * 1024); /* 256 KiB more: does not */
	cr_assert(n == -1 && errno == ENOSPC, "write needing copies past store_max: %zd (%s)", n,
		  strerror(errno));
	pwrite_all(fd, nb, 4096, MIB); /* an append needs no copy */
	live_write(&p, nb, 4096, MIB);
	close(fd);
	check_snap(&p);
	check_live(&p);
	release(p.id); /* and the space comes back: the big write now succeeds */
	fd = open(MP("f"), O_WRONLY);
	pwrite_all(fd, nb, sizeof(nb), 256 * 1024);
	close(fd);
	pinned_free(&p);
}

Test(cow, overwrite_after_pin_keeps_old_bytes)
{
	fx_mount(NULL);
	struct pinned p;
	make_and_pin(&p, "f", MIB + 333, 1, 2 * MIB);
	unsigned char nb[200000];
	tu_fill(nb, sizeof(nb), 99);
	int fd = open(MP("f"), O_WRONLY);
	cr_assert(fd >= 0);
	pwrite_all(fd, nb, sizeof(nb), 4095); /* unaligned, spans many blocks */
	live_write(&p, nb, sizeof(nb), 4095);
	pwrite_all(fd, nb, 10, MIB + 330); /* across the old EOF */
	live_write(&p, nb, 10, MIB + 330);
	close(fd);
	check_snap(&p);
	check_live(&p);
	pinned_free(&p);
}

Test(cow, truncate_shrink_then_regrow_keeps_old_bytes)
{
	fx_mount(NULL);
	struct pinned p;
	make_and_pin(&p, "f", 300000, 2, MIB);
	cr_assert_eq(truncate(MP("f"), 1000), 0);
	live_truncate(&p, 1000);
	check_snap(&p);
	cr_assert_eq(truncate(MP("f"), 300000), 0); /* the tail reads zeros now */
	live_truncate(&p, 300000);
	check_snap(&p);
	check_live(&p);
	pinned_free(&p);
}

Test(cow, truncate_grow_then_write_keeps_old_size_and_bytes)
{
	fx_mount(NULL);
	struct pinned p;
	make_and_pin(&p, "f", 70001, 3, MIB);
	cr_assert_eq(truncate(MP("f"), 500000), 0);
	live_truncate(&p, 500000);
	check_snap(&p);
	int fd = open(MP("f"), O_WRONLY);
	unsigned char nb[100000];
	tu_fill(nb, sizeof(nb), 33);
	pwrite_all(fd, nb, sizeof(nb), 60000); /* over the old tail and the grown part */
	live_write(&p, nb, sizeof(nb), 60000);
	close(fd);
	check_snap(&p);
	check_live(&p);
	pinned_free(&p);
}

static void falloc_test(int mode, size_t off, size_t len, int collapse)
{
	struct pinned p;
	make_and_pin(&p, "f", 1 * MIB, 4, 2 * MIB);
	int fd = open(MP("f"), O_RDWR);
	cr_assert(fd >= 0);
	if (fallocate(fd, mode, (off_t)off, (off_t)len)) {
		int e = errno;
		close(fd);
		pinned_free(&p);
		if (e == EOPNOTSUPP)
			cr_skip_test(
			    "fallocate mode %#x: EOPNOTSUPP (FUSE passes only keep-size, punch "
			    "and zero range to the daemon)",
			    mode);
		cr_assert_fail("fallocate(%#x, %zu, %zu): %s", mode, off, len, strerror(e));
	}
	close(fd);
	if (collapse) {
		memmove(p.live + off, p.live + off + len, p.livelen - off - len);
		p.livelen -= len;
	} else {
		memset(p.live + off, 0, len);
	}
	check_snap(&p);
	check_live(&p);
	pinned_free(&p);
}

Test(cow, punch_hole_keeps_old_bytes)
{
	fx_mount(NULL);
	falloc_test(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8192, 300000, 0);
}

Test(cow, punch_hole_unaligned_keeps_old_bytes)
{
	fx_mount(NULL);
	falloc_test(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1234, 77777, 0);
}

/* tmpfs has neither zero range nor collapse range: SOURCE on ext4 (/var/tmp). */
static void setup_ext4(void)
{
	fx_teardown(); /* the suite's .init made a tmpfs SOURCE first */
	fx_setup_in("/var/tmp");
}

Test(cow, zero_range_keeps_old_bytes, .init = setup_ext4)
{
	fx_mount(NULL);
	falloc_test(FALLOC_FL_ZERO_RANGE, 5000, 200000, 0);
}

Test(cow, collapse_range_keeps_old_bytes, .init = setup_ext4)
{
	fx_mount(NULL);
	falloc_test(FALLOC_FL_COLLAPSE_RANGE, 65536, 131072, 1);
}

Test(cow, rename_over_keeps_old_bytes)
{
	fx_mount(NULL);
	struct pinned p;
	make_and_pin(&p, "f", 123457, 5, MIB);
	make_file("g", 5000, 55, 0644);
	unsigned char gb[5000];
	tu_fill(gb, sizeof(gb), 55);
	cr_assert_eq(rename(MP("g"), MP("f")), 0);
	live_truncate(&p, 0);
	live_write(&p, gb, sizeof(gb), 0);
	check_snap(&p);
	check_live(&p);
	pinned_free(&p);
}

Test(cow, unlink_keeps_old_bytes)
{
	fx_mount(NULL);
	struct pinned p;
	make_and_pin(&p, "f", 654321, 6, MIB);
	cr_assert_eq(unlink(MP("f")), 0);
	check_snap(&p);
	cr_assert_eq(access(MP("f"), F_OK), -1);
	pinned_free(&p);
}

Test(cow, unlink_while_open_then_write_keeps_old_bytes)
{
	fx_mount(NULL);
	struct pinned p;
	make_and_pin(&p, "f", 200000, 16, MIB);
	int fd = open(MP("f"), O_RDWR);
	cr_assert(fd >= 0);
	cr_assert_eq(unlink(MP("f")), 0);
	unsigned char nb[50000];
	tu_fill(nb, sizeof(nb), 17);
	pwrite_all(fd, nb, sizeof(nb), 100);
	cr_assert_eq(ftruncate(fd, 10), 0);
	close(fd);
	check_snap(&p);
	pinned_free(&p);
}

Test(cow, o_trunc_open_keeps_old_bytes)
{
	fx_mount(NULL);
	struct pinned p;
	make_and_pin(&p, "f", 400000, 7, MIB);
	int fd = open(MP("f"), O_WRONLY | O_TRUNC);
	cr_assert(fd >= 0);
	live_truncate(&p, 0);
	check_snap(&p);
	unsigned char nb[3000];
	tu_fill(nb, sizeof(nb), 77);
	pwrite_all(fd, nb, sizeof(nb), 0);
	live_write(&p, nb, sizeof(nb), 0);
	close(fd);
	check_snap(&p);
	check_live(&p);
	pinned_free(&p);
}

Test(cow, creat_over_existing_keeps_old_bytes)
{
	fx_mount(NULL);
	struct pinned p;
	make_and_pin(&p, "f", 40000, 18, MIB);
	int fd = open(MP("f"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert(fd >= 0);
	close(fd);
	live_truncate(&p, 0);
	check_snap(&p);
	check_live(&p);
	pinned_free(&p);
}

Test(cow, copy_file_range_into_keeps_old_bytes)
{
	fx_mount(NULL);
	struct pinned p;
	make_and_pin(&p, "f", 500000, 8, MIB);
	make_file("g", 300000, 88, 0644);
	unsigned char *gb = xmalloc(300000);
	tu_fill(gb, 300000, 88);
	int in = open(MP("g"), O_RDONLY), out = open(MP("f"), O_WRONLY);
	cr_assert(in >= 0 && out >= 0);
	loff_t oin = 1000, oout = 250001;
	size_t want = 290000, done = 0;
	while (done < want) {
		ssize_t n = copy_file_range(in, &oin, out, &oout, want - done, 0);
		cr_assert(n > 0, "copy_file_range: %s", n < 0 ? strerror(errno) : "short");
		done += (size_t)n;
	}
	close(in);
	close(out);
	live_write(&p, gb + 1000, want, 250001);
	free(gb);
	check_snap(&p);
	check_live(&p);
	pinned_free(&p);
}

Test(cow, shared_mmap_write_and_msync_keeps_old_bytes)
{
	fx_mount(NULL);
	struct pinned p;
	make_and_pin(&p, "f", 256 * 1024, 9, MIB);
	int fd = open(MP("f"), O_RDWR);
	cr_assert(fd >= 0);
	unsigned char *map = mmap(NULL, 256 * 1024, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert(map != MAP_FAILED, "mmap: %s", strerror(errno));
	unsigned char nb[20000];
	tu_fill(nb, sizeof(nb), 999);
	memcpy(map + 70000, nb, sizeof(nb));
	map[0] ^= 0xff;
	cr_assert_eq(msync(map, 256 * 1024, MS_SYNC), 0, "msync: %s", strerror(errno));
	live_write(&p, nb, sizeof(nb), 70000);
	p.live[0] ^= 0xff;
	munmap(map, 256 * 1024);
	close(fd);
	check_snap(&p);
	check_live(&p);
	pinned_free(&p);
}

Test(cow, o_append_write_keeps_old_bytes)
{
	fx_mount(NULL);
	struct pinned p;
	make_and_pin(&p, "f", 10000, 10, MIB); /* EOF inside a block */
	int fd = open(MP("f"), O_WRONLY | O_APPEND);
	cr_assert(fd >= 0);
	unsigned char nb[9000];
	tu_fill(nb, sizeof(nb), 1010);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(write(fd, nb, sizeof(nb)), (ssize_t)sizeof(nb));
		live_write(&p, nb, sizeof(nb), p.livelen);
	}
	close(fd);
	check_snap(&p);
	check_live(&p);
	pinned_free(&p);
}

Test(cow, o_append_after_shrink_keeps_old_bytes)
{
	fx_mount(NULL);
	struct pinned p;
	make_and_pin(&p, "f", 100000, 19, MIB);
	int fd = open(MP("f"), O_WRONLY | O_APPEND);
	cr_assert(fd >= 0);
	cr_assert_eq(ftruncate(fd, 5000), 0);
	live_truncate(&p, 5000);
	unsigned char nb[60000];
	tu_fill(nb, sizeof(nb), 1919);
	cr_assert_eq(write(fd, nb, sizeof(nb)), (ssize_t)sizeof(nb));
	live_write(&p, nb, sizeof(nb), 5000);
	close(fd);
	check_snap(&p);
	check_live(&p);
	pinned_free(&p);
}

Test(cow, hard_link_snapshot_survives_unlink_of_other_name)
{
	fx_mount(NULL);
	struct pinned p;
	make_file("a", 222222, 11, 0640);
	cr_assert_eq(link(MP("a"), MP("b")), 0);
	pin_file(&p, "a", MIB);
	unsigned char nb[30000];
	tu_fill(nb, sizeof(nb), 1111);
	int fd = open(MP("b"), O_WRONLY);
	pwrite_all(fd, nb, sizeof(nb), 5);
	close(fd);
	live_write(&p, nb, sizeof(nb), 5);
	check_live_at(&p, "a");
	cr_assert_eq(unlink(MP("a")), 0); /* the pinned name; b keeps the inode */
	check_snap(&p);
	check_live_at(&p, "b");
	fd = open(MP("b"), O_WRONLY | O_TRUNC);
	close(fd);
	cr_assert_eq(unlink(MP("b")), 0); /* the last link */
	check_snap(&p);
	pinned_free(&p);
}

Test(cow, rename_of_live_file_keeps_snapshot_at_pin_time_path)
{
	fx_mount(NULL);
	cr_assert_eq(mkdir(MP("d"), 0755), 0);
	cr_assert_eq(mkdir(MP("e"), 0755), 0);
	struct pinned p;
	make_and_pin(&p, "d/f", 99999, 12, MIB);
	cr_assert_eq(rename(MP("d/f"), MP("e/g")), 0);
	unsigned char nb[4096];
	tu_fill(nb, sizeof(nb), 1212);
	int fd = open(MP("e/g"), O_WRONLY);
	pwrite_all(fd, nb, sizeof(nb), 8192);
	close(fd);
	live_write(&p, nb, sizeof(nb), 8192);
	check_snap_at(&p, "d/f");
	check_live_at(&p, "e/g");
	char vp[1024];
	snprintf(vp, sizeof(vp), "%s/.snapshots/%llu/e/g", mnt, (unsigned long long)p.id);
	cr_assert_eq(access(vp, F_OK), -1, "%s exists: the view must keep pin-time paths", vp);
	pinned_free(&p);
}

Test(cow, chmod_after_pin_keeps_pin_time_mode)
{
	fx_mount(NULL);
	struct pinned p;
	make_and_pin(&p, "f", 5000, 13, MIB);
	cr_assert_eq(chmod(MP("f"), 0604), 0);
	struct timespec ts[2] = {{1500000000, 0}, {1500000000, 0}};
	cr_assert_eq(utimensat(AT_FDCWD, MP("f"), ts, 0), 0);
	check_snap(&p);
	pinned_free(&p);
}

Test(cow, two_snapshots_each_keep_their_own_bytes)
{
	fx_mount(NULL);
	struct pinned p1, p2;
	make_and_pin(&p1, "f", 300000, 14, MIB);
	unsigned char nb[100000];
	tu_fill(nb, sizeof(nb), 1414);
	int fd = open(MP("f"), O_WRONLY);
	pwrite_all(fd, nb, sizeof(nb), 50000);
	close(fd);
	pin_file(&p2, "f", MIB);
	tu_fill(nb, sizeof(nb), 1415);
	fd = open(MP("f"), O_WRONLY);
	pwrite_all(fd, nb, sizeof(nb), 0);
	close(fd);
	live_write(&p2, nb, sizeof(nb), 0);
	check_snap(&p1);
	check_snap(&p2);
	check_live(&p2);
	release(p1.id);
	check_snap(&p2);
	pinned_free(&p1);
	pinned_free(&p2);
}

/* Writes to blocks already preserved skip the store (the done set); a new
 * pin must preserve them again, for itself, whatever descriptor writes
 * (O_RDWR lends the writer's descriptor to the copy, O_WRONLY does not). */
Test(cow, rewrites_across_pins_keep_each_snapshot)
{
	fx_mount(NULL);
	enum { N = 4, LEN = 64 * 1024 };
	struct pinned p[N];
	make_file("f", LEN, 5, 0640);
	unsigned char b[LEN];
	for (int k = 0; k < N; k++) {
		pin_file(&p[k], "f", LEN);
		int fd = open(MP("f"), k % 2 ? O_WRONLY : O_RDWR);
		cr_assert(fd >= 0);
		for (int rep = 0; rep < 3; rep++) { /* first write, then rewrites */
			tu_fill(b, sizeof(b), 100 + (uint64_t)(k * 3 + rep));
			pwrite_all(fd, b, 5000, 4096 * 3 + 17);
			pwrite_all(fd, b + 5000, 4096, 0);
		}
		close(fd);
	}
	struct snapfs_rec_stats s = get_stats();
	cr_assert_eq(s.cow_copies, N * 2, "%llu extents copied for %d pins",
		     (unsigned long long)s.cow_copies, N);
	for (int k = 0; k < N; k++) {
		check_snap(&p[k]);
		release(p[k].id);
		pinned_free(&p[k]);
	}
}
