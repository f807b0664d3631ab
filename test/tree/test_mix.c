// SPDX-License-Identifier: MIT
/*
 * Per-file pins beside tree pins (issue 10): `pin FILE` keeps working (old
 * bytes in the view, only that file on its way down, a directory without
 * -r refused) and stays O(1) in the file's size and extents and in the
 * number of files pinned elsewhere; one pin of a file and a tree (-r)
 * shows both, through libsnapfs and through snapctl; a pin -r that fails
 * names the path in one line and pins nothing.
 */
#include "treeutil.h"

TestSuite(mix, .init = fx_setup, .fini = tr_teardown, .timeout = 600);

static void expect_file(const char *p, size_t len, uint64_t seed)
{
	unsigned char *want = xmalloc(len), *got = xmalloc(len + 1);
	tu_fill(want, len, seed);
	ssize_t n = read_path(p, got, len + 1);
	cr_assert_geq(n, 0, "read %s: %s", p, strerror((int)-n));
	expect_bytes(p, got, (size_t)n, want, len);
	free(want);
	free(got);
}

static void expect_absent(const char *p)
{
	struct stat st;
	errno = 0;
	cr_assert(lstat(p, &st) == -1 && errno == ENOENT, "%s: in the view (or lstat: %s)", p,
		  strerrorname_np(errno));
}

Test(mix, per_file_pin_keeps_old_bytes_and_shows_only_that_file)
{
	fx_mount(NULL);
	mkdir_p(MP("d"), 0755);
	put_file(MP("d/f"), 70000, 1, 0);
	put_file(MP("d/g"), 100, 2, 0);
	mkdir_p(MP("d/sub"), 0755);
	uint64_t id = pin1("d/f");
	put_file(MP("d/f"), 5000, 3, 0);
	cr_assert_eq(unlink(MP("d/g")), 0);
	expect_file(VR(id, "d/f"), 70000, 1);
	expect_absent(VR(id, "d/g"));
	expect_absent(VR(id, "d/sub"));
	const char *dir = MP("d");
	uint64_t id2 = 0;
	errno = 0;
	cr_assert_eq(snapfs_pin(&dir, 1, NULL, &id2), -1, "pin of a directory without -r worked");
	cr_assert_eq(errno, EISDIR, "pin of a directory without -r: %s, expected EISDIR",
		     strerrorname_np(errno));
	release(id);
}

Test(mix, per_file_pin_is_o1_in_file_size_extents_and_pinned_trees)
{
	/* 5,000 files in SOURCE, pinned as a tree; a 64 MiB file with
	 * 2,000 preserved extents */
	size_t n = 5000;
	char rel[128];
	mkdir_p(SP("t"), 0755);
	for (size_t i = 0; i < n; i++) {
		if (i % 200 == 0) {
			snprintf(rel, sizeof(rel), "t/d%03zu", i / 200);
			mkdir_p(SP(rel), 0755);
		}
		snprintf(rel, sizeof(rel), "t/d%03zu/f%05zu", i / 200, i);
		write_path(SP(rel), "x", 1);
	}
	fx_mount(NULL);
	put_file(MP("small"), 4096, 1, 0);
	double t0 = tr_now_ms();
	uint64_t s1 = pin1("small");
	double small_ms = tr_now_ms() - t0;
	release(s1);

	int fd = open(MP("big"), O_RDWR | O_CREAT, 0644);
	cr_assert(fd >= 0);
	cr_assert_eq(ftruncate(fd, 64 << 20), 0);
	unsigned char blk[4096];
	tu_fill(blk, sizeof(blk), 9);
	for (int i = 0; i < 2000; i++)
		pwrite_all(fd, blk, sizeof(blk), (off_t)i * 32768);
	uint64_t keep = pin1("big");
	for (int i = 0; i < 2000; i++) /* every write preserves an extent */
		pwrite_all(fd, blk + 1, 1000, (off_t)i * 32768 + 8);
	close(fd);
	uint64_t tree = pin_tree("t");

	double best = 1e9;
	for (int k = 0; k < 3; k++) {
		t0 = tr_now_ms();
		uint64_t id = pin1("big");
		double ms = tr_now_ms() - t0;
		best = ms < best ? ms : best;
		release(id);
	}
	cr_assert_lt(best, 50.0,
		     "O(1) guarantee of per-file pins: pin of a 64 MiB file with 2,000 preserved "
		     "extents, beside a pinned 5,000-file tree, took %.1f ms (a 4 KiB file in an "
		     "empty store: %.1f ms); it must stay under 50 ms",
		     best, small_ms);
	cr_log_info("per-file pin: %.2f ms (4 KiB file, fresh mount %.2f ms)", best, small_ms);
	release(keep);
	release(tree);
}

/* A small tree with everything a tree holds. */
static void small_tree(const char *root)
{
	mkdir_p(root, 0750);
	char p[1100];
	snprintf(p, sizeof(p), "%s/empty", root);
	mkdir_p(p, 0700);
	snprintf(p, sizeof(p), "%s/sub", root);
	mkdir_p(p, 0755);
	cr_assert_eq(lsetxattr(p, "user.d", "1", 1, 0), 0);
	snprintf(p, sizeof(p), "%s/sub/file", root);
	put_file(p, 3000, 4, 0);
	cr_assert_eq(lchown(p, 65534, 65534), 0);
	cr_assert_eq(lsetxattr(p, "user.f", "22", 2, 0), 0);
	char q[1100];
	snprintf(q, sizeof(q), "%s/hard", root);
	cr_assert_eq(link(p, q), 0);
	snprintf(p, sizeof(p), "%s/link", root);
	cr_assert_eq(symlink("sub/file", p), 0);
	snprintf(p, sizeof(p), "%s/fifo", root);
	cr_assert_eq(mkfifo(p, 0600), 0);
}

static void change_small_tree(const char *root)
{
	char p[1100];
	snprintf(p, sizeof(p), "%s/empty", root);
	cr_assert_eq(rmdir(p), 0);
	snprintf(p, sizeof(p), "%s/hard", root);
	cr_assert_eq(unlink(p), 0);
	snprintf(p, sizeof(p), "%s/link", root);
	cr_assert_eq(unlink(p), 0);
	cr_assert_eq(symlink("elsewhere", p), 0);
	snprintf(p, sizeof(p), "%s/sub/file", root);
	put_file(p, 10, 5, 0);
	cr_assert_eq(chmod(root, 0755), 0);
	snprintf(p, sizeof(p), "%s/new", root);
	put_file(p, 10, 6, 0);
}

static void check_mixed(uint64_t id, const struct mf *at_pin)
{
	expect_file(VR(id, "x/file1"), 9000, 7);
	expect_absent(VR(id, "x/other"));
	struct mf *v = mf_take(VR(id, "t"), MF_MTIME);
	mf_expect("the tree of a pin of a file and a tree", v, at_pin, MF_MTIME | MF_NLINK);
	mf_free(v);
	/* inode numbers are unique in the whole snapshot: only the two names
	 * of the hard link share one */
	struct mf *all = mf_take(VR(id, ""), 0);
	for (size_t i = 0; i < all->n; i++) {
		const char *path = all->v[i].path, *cls = all->v[i].cls;
		int linked = !strcmp(path, "t/hard") || !strcmp(path, "t/sub/file");
		if (linked)
			cr_assert_str_eq(cls, "t/hard", "%s: does not share its inode with t/hard",
					 path);
		else
			cr_assert_str_eq(
			    cls, path, "%s and %s have the same inode number %llu in one snapshot",
			    path, cls, (unsigned long long)all->v[i].ino);
	}
	mf_free(all);
}

Test(mix, one_pin_of_a_file_and_a_tree_shows_both)
{
	fx_mount(NULL);
	mkdir_p(MP("x"), 0755);
	put_file(MP("x/file1"), 9000, 7, 0);
	put_file(MP("x/other"), 10, 8, 0);
	small_tree(MP("t"));
	struct mf *at_pin = mf_take(MP("t"), MF_MTIME);
	uint64_t id = try_pin_tree((const char *[]){"x/file1", "t"}, 2);
	cr_assert_neq(id, 0, "pin -r x/file1 t: %s", strerror(errno));
	put_file(MP("x/file1"), 100, 9, 0);
	change_small_tree(MP("t"));
	check_mixed(id, at_pin);
	release(id);
	mf_free(at_pin);
}

Test(mix, snapctl_pin_r_of_a_file_and_a_tree_shows_both)
{
	fx_mount(NULL);
	mkdir_p(MP("x"), 0755);
	put_file(MP("x/file1"), 9000, 7, 0);
	put_file(MP("x/other"), 10, 8, 0);
	small_tree(MP("t"));
	struct mf *at_pin = mf_take(MP("t"), MF_MTIME);
	struct tr_out *r = xmalloc(sizeof(*r));
	int rc = tr_run(r, mnt, 0, snapctl_bin(), "pin", "-r", "x/file1", "t", NULL);
	cr_assert_eq(rc, 0, "snapctl pin -r x/file1 t: exit %d: %s", rc, r->err);
	uint64_t id = strtoull(r->out, NULL, 10);
	cr_assert_neq(id, 0, "snapctl pin printed '%s'", r->out);
	put_file(MP("x/file1"), 100, 9, 0);
	change_small_tree(MP("t"));
	check_mixed(id, at_pin);
	release(id);
	mf_free(at_pin);
	free(r);
}

Test(mix, failed_pin_r_names_the_path_in_one_line_and_pins_nothing)
{
	fx_mount(NULL);
	small_tree(MP("t"));
	put_file(MP("f"), 10, 1, 0);
	size_t before = count_snaps();
	struct tr_out *r = xmalloc(sizeof(*r));
	int rc = tr_run(r, mnt, 0, snapctl_bin(), "pin", "-r", "t", "f", "no_such_dir", NULL);
	cr_assert_neq(rc, 0, "pin -r of a missing path succeeded: %s", r->out);
	const char *nl = strchr(r->err, '\n');
	cr_assert(nl && nl[1] == 0, "the error is not one line: '%s'", r->err);
	cr_assert(strstr(r->err, "no_such_dir"), "the error does not name the path: %s", r->err);
	cr_assert_eq(count_snaps(), before, "a failed pin -r left a snapshot");
	/* the same through libsnapfs */
	uint64_t id = try_pin_tree((const char *[]){"t", "no_such_dir"}, 2);
	cr_assert_eq(id, 0, "pin -r of a missing path succeeded");
	cr_assert_eq(errno, ENOENT, "pin -r of a missing path: %s", strerrorname_np(errno));
	cr_assert_eq(count_snaps(), before, "a failed pin -r left a snapshot");
	free(r);
}
