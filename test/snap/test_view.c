// SPDX-License-Identifier: MIT
/*
 * The snapshot view MNT/<snapdir>/ID/<path> and libsnapfs: view files are
 * read-only (EROFS), the view is hidden from the root's readdir but lists
 * live IDs, a released ID is gone, snapdir= renames it, other users see
 * and release only their own snapshots, and libsnapfs reports its errors
 * with the documented errno values.
 */
#include "snaputil.h"

#include <dirent.h>
#include <grp.h>

TestSuite(view, .init = fx_setup, .fini = fx_teardown, .timeout = 60);

static int dir_has(const char *dir, const char *name)
{
	DIR *d = opendir(dir);
	cr_assert_not_null(d, "opendir %s: %s", dir, strerror(errno));
	int found = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (!strcmp(de->d_name, name))
			found = 1;
	closedir(d);
	return found;
}

static size_t dir_count(const char *dir)
{
	DIR *d = opendir(dir);
	cr_assert_not_null(d, "opendir %s: %s", dir, strerror(errno));
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void put(const char *rel, size_t len, uint64_t seed)
{
	unsigned char *b = xmalloc(len);
	tu_fill(b, len, seed);
	write_path(MP(rel), b, len);
	free(b);
}

static void expect_content(const char *path, size_t len, uint64_t seed)
{
	unsigned char *want = xmalloc(len), *got = xmalloc(len + 1);
	tu_fill(want, len, seed);
	ssize_t n = read_path(path, got, len + 1);
	cr_assert(n >= 0, "read %s: %s", path, strerror((int)-n));
	expect_bytes(path, got, (size_t)n, want, len);
	free(want);
	free(got);
}

#define EXPECT_ERRNO(call, e)                                                                      \
	do {                                                                                       \
		errno = 0;                                                                         \
		long r_ = (long)(call);                                                            \
		int e_ = errno;                                                                    \
		cr_expect(r_ == -1 && e_ == (e), "%s = %ld, errno %s; expected -1 %s", #call, r_,  \
			  strerrorname_np(e_), strerrorname_np(e));                                \
	} while (0)

Test(view, writes_to_snapshot_files_fail_with_erofs)
{
	fx_mount(NULL);
	put("f", 10000, 1);
	uint64_t id = pin1("f");
	const char *v = VP(id, "f");
	EXPECT_ERRNO(open(v, O_WRONLY), EROFS);
	EXPECT_ERRNO(open(v, O_RDWR), EROFS);
	EXPECT_ERRNO(open(v, O_RDONLY | O_TRUNC), EROFS);
	EXPECT_ERRNO(truncate(v, 0), EROFS);
	EXPECT_ERRNO(chmod(v, 0777), EROFS);
	EXPECT_ERRNO(unlink(v), EROFS);
	char other[1100];
	snprintf(other, sizeof(other), "%s/.snapshots/%llu/new", mnt, (unsigned long long)id);
	EXPECT_ERRNO(open(other, O_WRONLY | O_CREAT, 0644), EROFS);
	EXPECT_ERRNO(mkdir(other, 0755), EROFS);
	EXPECT_ERRNO(rename(v, other), EROFS);
	int fd = open(v, O_RDONLY);
	cr_assert(fd >= 0, "open %s read-only: %s", v, strerror(errno));
	EXPECT_ERRNO(write(fd, "x", 1), EBADF); /* the kernel refuses: opened read-only */
	EXPECT_ERRNO(ftruncate(fd, 0), EINVAL);
	close(fd);
	expect_content(v, 10000, 1);
}

Test(view, snapdir_hidden_from_root_readdir_but_lists_live_ids)
{
	fx_mount(NULL);
	put("f", 100, 2);
	uint64_t a = pin1("f"), b = pin1("f");
	cr_assert(!dir_has(mnt, ".snapshots"), "the root's readdir lists .snapshots");
	struct stat st;
	cr_assert_eq(stat(MP(".snapshots"), &st), 0, "stat .snapshots: %s", strerror(errno));
	cr_assert(S_ISDIR(st.st_mode));
	char ida[32], idb[32];
	snprintf(ida, sizeof(ida), "%llu", (unsigned long long)a);
	snprintf(idb, sizeof(idb), "%llu", (unsigned long long)b);
	cr_assert(dir_has(MP(".snapshots"), ida) && dir_has(MP(".snapshots"), idb),
		  "ls .snapshots does not list %s and %s", ida, idb);
	cr_assert_eq(dir_count(MP(".snapshots")), 2);
	release(a);
	cr_assert(!dir_has(MP(".snapshots"), ida), "released %s still listed", ida);
	cr_assert(dir_has(MP(".snapshots"), idb));
	cr_assert_eq(dir_count(MP(".snapshots")), 1);
}

Test(view, released_id_gives_enoent)
{
	fx_mount(NULL);
	put("f", 5000, 3);
	uint64_t id = pin1("f");
	char vp[1024];
	snprintf(vp, sizeof(vp), "%s", VP(id, "f"));
	expect_content(vp, 5000, 3);
	/* an open file of the view keeps nothing alive after release */
	release(id);
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s/.snapshots/%llu", mnt, (unsigned long long)id);
	struct stat st;
	EXPECT_ERRNO(stat(dir, &st), ENOENT);
	EXPECT_ERRNO(open(vp, O_RDONLY), ENOENT);
	errno = 0;
	cr_expect_eq(snapfs_release(mnt, id), -1);
	cr_expect_eq(errno, ENOENT, "second release: %s", strerrorname_np(errno));
}

Test(view, snapdir_option_renames_the_view)
{
	fx_mount("snapdir=snaps");
	put("f", 7777, 4);
	uint64_t id = pin1("f");
	char *p = snapfs_snapshot_path(MP("f"), id);
	cr_assert_not_null(p, "snapfs_snapshot_path: %s", strerror(errno));
	char want[1100];
	snprintf(want, sizeof(want), "%s/snaps/%llu/f", mnt, (unsigned long long)id);
	cr_assert_str_eq(p, want);
	expect_content(p, 7777, 4);
	free(p);
	struct stat st;
	EXPECT_ERRNO(stat(MP(".snapshots"), &st), ENOENT);
	cr_assert(!dir_has(mnt, "snaps"));
	cr_assert_eq(dir_count(MP("snaps")), 1);
	/* the name is reserved in the root */
	cr_expect_eq(mkdir(MP("snaps/x"), 0755), -1);
}

/* ---------------------------------------------------------- other users */

#define NOBODY 65534

/* Run fn as nobody in a child; returns its exit status (0: all checks held). */
static int as_nobody(int (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		alarm(20);
		gid_t g = NOBODY;
		if (setgroups(1, &g) || setgid(NOBODY) || setuid(NOBODY))
			_exit(126);
		_exit(fn(arg));
	}
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

struct nb_arg {
	uint64_t root_id;
	uint64_t own_id; /* out via a file */
	char idfile[1024];
};

#define NB_CHECK(n, cond)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "as nobody: check %d failed: %s (errno %s)\n", n, #cond,   \
				strerrorname_np(errno));                                           \
			return n;                                                                  \
		}                                                                                  \
	} while (0)

static int nobody_checks(void *p)
{
	struct nb_arg *a = p;
	char ids[32];
	snprintf(ids, sizeof(ids), "%llu", (unsigned long long)a->root_id);
	/* root's snapshot is invisible */
	DIR *d = opendir(MP(".snapshots"));
	NB_CHECK(1, d != NULL);
	struct dirent *de;
	int seen = 0;
	while ((de = readdir(d)))
		if (!strcmp(de->d_name, ids))
			seen = 1;
	closedir(d);
	NB_CHECK(2, !seen);
	char vp[1100];
	snprintf(vp, sizeof(vp), "%s/.snapshots/%s/secret", mnt, ids);
	errno = 0;
	int fd = open(vp, O_RDONLY);
	NB_CHECK(3, fd < 0 && (errno == ENOENT || errno == EACCES));
	snprintf(vp, sizeof(vp), "%s/.snapshots/%s/public", mnt, ids);
	fd = open(vp, O_RDONLY);
	NB_CHECK(4, fd < 0 && errno == ENOENT);
	errno = 0;
	NB_CHECK(5, snapfs_release(mnt, a->root_id) == -1 && errno == ENOENT);
	struct snapfs_rec_snap recs[8];
	struct snapfs_req *r = calloc(1, sizeof(*r));
	r->op = SNAPFS_OP_LIST;
	NB_CHECK(6, ctl(r) == 0);
	for (uint32_t i = 0; i < r->count && i < 8; i++) {
		memcpy(&recs[i], r->data + i * sizeof(recs[0]), sizeof(recs[0]));
		NB_CHECK(7, recs[i].id != a->root_id);
	}
	free(r);
	/* nobody may not pin what it cannot read */
	const char *sec[] = {MP("secret")};
	uint64_t id;
	errno = 0;
	NB_CHECK(8, snapfs_pin(sec, 1, NULL, &id) == -1 && errno == EACCES);
	/* its own snapshot of a readable file works and is readable */
	const char *pub[] = {MP("public")};
	NB_CHECK(9, snapfs_pin(pub, 1, "nobody's", &id) == 0);
	char *s = snapfs_snapshot_path(MP("public"), id);
	NB_CHECK(10, s != NULL);
	char buf[64];
	ssize_t n = tu_read_file(s, buf, sizeof(buf));
	NB_CHECK(11, n == 6 && !memcmp(buf, "public", 6));
	free(s);
	FILE *f = fopen(a->idfile, "w");
	NB_CHECK(12, f != NULL);
	fprintf(f, "%llu\n", (unsigned long long)id);
	fclose(f);
	return 0;
}

Test(view, other_user_sees_and_releases_only_own_snapshots)
{
	fx_mount("allow_other");
	write_path(MP("secret"), "secret", 6);
	cr_assert_eq(chmod(MP("secret"), 0600), 0);
	write_path(MP("public"), "public", 6);
	cr_assert_eq(chmod(MP("public"), 0644), 0);
	const char *both[] = {"secret", "public"};
	struct nb_arg a = {0};
	a.root_id = pin_paths(both, 2);
	char *d = tu_tmpdir("nbid");
	chmod(d, 0777);
	snprintf(a.idfile, sizeof(a.idfile), "%s/id", d);
	int rc = as_nobody(nobody_checks, &a);
	cr_assert_eq(rc, 0, "a check as nobody failed (see stderr): %d", rc);
	FILE *f = fopen(a.idfile, "r");
	cr_assert_not_null(f);
	unsigned long long own = 0;
	cr_assert_eq(fscanf(f, "%llu", &own), 1);
	fclose(f);
	tu_rm_rf(d);
	free(d);
	/* root sees both, and reads both */
	struct snapfs_rec_snap rec;
	cr_assert(listed_snap(a.root_id, &rec) && rec.uid == 0);
	cr_assert(listed_snap(own, &rec), "root does not see nobody's snapshot");
	cr_assert_eq(rec.uid, NOBODY);
	char ids[32];
	snprintf(ids, sizeof(ids), "%llu", own);
	cr_assert(dir_has(MP(".snapshots"), ids));
	char buf[16];
	cr_assert_eq(read_path(VP(own, "public"), buf, sizeof(buf)), 6);
	cr_assert_eq(read_path(VP(a.root_id, "secret"), buf, sizeof(buf)), 6);
	cr_assert(!memcmp(buf, "secret", 6));
	release(own); /* root may release anyone's */
	cr_assert(!listed_snap(own, NULL));
}

/* Root's snapshot of a 0600 file: nobody can open its view file (the
 * snapshot is invisible to nobody, and its pin-time mode forbids it). */
static int nobody_reads_view_of_0600(void *p)
{
	uint64_t id = *(uint64_t *)p;
	char vp[1100];
	snprintf(vp, sizeof(vp), "%s/.snapshots/%llu/f600", mnt, (unsigned long long)id);
	errno = 0;
	int fd = open(vp, O_RDONLY);
	NB_CHECK(1, fd < 0 && (errno == EACCES || errno == ENOENT));
	return 0;
}

Test(view, other_user_cannot_read_snapshot_of_0600_file)
{
	fx_mount("allow_other");
	write_path(MP("f600"), "private", 7);
	cr_assert_eq(chmod(MP("f600"), 0600), 0);
	uint64_t id = pin1("f600");
	int rc = as_nobody(nobody_reads_view_of_0600, &id);
	cr_assert_eq(rc, 0, "nobody could open root's 0600 snapshot file");
	char buf[16];
	cr_assert_eq(read_path(VP(id, "f600"), buf, sizeof(buf)), 7);
}

/* A raw PIN of one path relative to the mount root, as the daemon sees it
 * (libsnapfs would already fail in realpath). Returns the status. */
static int raw_pin_id(const char *rel, uint32_t flags, uint64_t *id)
{
	struct snapfs_req *r = calloc(1, sizeof(*r));
	r->op = SNAPFS_OP_PIN;
	r->count = 1;
	r->flags = flags;
	r->len = (uint32_t)strlen(rel) + 1;
	memcpy(r->data, rel, r->len);
	int rc = ctl(r);
	if (id)
		*id = r->id;
	free(r);
	return rc;
}

static int raw_pin(const char *rel, uint32_t flags)
{
	return raw_pin_id(rel, flags, NULL);
}

static int nobody_pins_through_closed_dir(void *p)
{
	(void)p;
	NB_CHECK(1, raw_pin("closed/open.txt", 0) == -EACCES);
	/* A tree pin looks at nothing below its root; what it holds is read
	 * with the rights each directory gave at the pin. */
	uint64_t id = 0;
	NB_CHECK(2, raw_pin_id(".", SNAPFS_PIN_RECURSIVE, &id) == 0);
	char vp[1100];
	snprintf(vp, sizeof(vp), "%s/.snapshots/%llu/closed/open.txt", mnt, (unsigned long long)id);
	errno = 0;
	NB_CHECK(4, open(vp, O_RDONLY) < 0 && errno == EACCES);
	snprintf(vp, sizeof(vp), "%s/.snapshots/%llu/open.txt", mnt, (unsigned long long)id);
	NB_CHECK(5, access(vp, R_OK) == 0);
	NB_CHECK(3, raw_pin("open.txt", 0) == 0);
	return 0;
}

Test(view, other_user_cannot_pin_through_a_directory_it_cannot_search)
{
	fx_mount("allow_other");
	cr_assert_eq(mkdir(MP("closed"), 0700), 0);
	write_path(MP("closed/open.txt"), "readable", 8);
	cr_assert_eq(chmod(MP("closed/open.txt"), 0644), 0);
	write_path(MP("open.txt"), "readable", 8);
	cr_assert_eq(chmod(MP("open.txt"), 0644), 0);
	int rc = as_nobody(nobody_pins_through_closed_dir, NULL);
	cr_assert_eq(rc, 0, "a check as nobody failed (see stderr): %d", rc);
}

/* ------------------------------------------------------- libsnapfs errors */

Test(view, release_of_unknown_id_is_enoent)
{
	fx_mount(NULL);
	errno = 0;
	cr_assert_eq(snapfs_release(mnt, 424242), -1);
	cr_assert_eq(errno, ENOENT, "errno %s", strerrorname_np(errno));
}

Test(view, pin_of_path_not_on_snapfs_is_enotsup)
{
	fx_mount(NULL);
	char *d = tu_tmpdir("notsnap");
	char f[1024];
	tu_path(f, sizeof(f), d, "x");
	write_path(f, "x", 1);
	const char *paths[] = {f};
	uint64_t id;
	errno = 0;
	int rc = snapfs_pin(paths, 1, NULL, &id);
	int e = errno;
	errno = 0;
	int rc2 = snapfs_release(f, 1);
	int e2 = errno;
	tu_rm_rf(d);
	free(d);
	cr_assert_eq(rc, -1);
	cr_assert_eq(e, ENOTSUP, "pin errno %s", strerrorname_np(e));
	cr_assert_eq(rc2, -1);
	cr_assert_eq(e2, ENOTSUP, "release errno %s", strerrorname_np(e2));
	errno = 0;
	cr_assert_null(snapfs_mount_root("/tmp"));
	cr_assert_eq(errno, ENOTSUP);
}

Test(view, pin_of_directory_without_recursion_is_eisdir)
{
	fx_mount(NULL);
	cr_assert_eq(mkdir(MP("d"), 0755), 0);
	put("d/a", 10, 5);
	const char *paths[] = {MP("d")};
	uint64_t id;
	errno = 0;
	cr_assert_eq(snapfs_pin(paths, 1, NULL, &id), -1);
	cr_assert_eq(errno, EISDIR, "errno %s", strerrorname_np(errno));
	struct snapfs_rec_snap recs[4];
	cr_assert_eq(list_snaps(recs, 4), 0, "a failed pin left a snapshot");
}

Test(view, pin_of_missing_file_is_enoent)
{
	fx_mount(NULL);
	const char *paths[] = {MP("nope")};
	uint64_t id;
	errno = 0;
	cr_assert_eq(snapfs_pin(paths, 1, NULL, &id), -1);
	cr_assert_eq(errno, ENOENT, "errno %s", strerrorname_np(errno));
}

Test(view, recursive_pin_of_directory_has_the_tree)
{
	fx_mount(NULL);
	cr_assert_eq(mkdir(MP("d"), 0755), 0);
	cr_assert_eq(mkdir(MP("d/sub"), 0755), 0);
	cr_assert_eq(mkdir(MP("d/sub/deeper"), 0755), 0);
	put("d/a", 1000, 6);
	put("d/sub/b", 70000, 7);
	put("d/sub/deeper/c", 1, 8);
	put("outside", 10, 9);
	const char *paths[] = {MP("d")};
	uint64_t id;
	cr_assert_eq(snapfs_pin_ex(paths, 1, "tree", SNAPFS_RECURSIVE, 0, &id), 0,
		     "recursive pin: %s", strerror(errno));
	put("d/a", 5, 60); /* change everything afterwards */
	put("d/sub/b", 5, 70);
	cr_assert_eq(unlink(MP("d/sub/deeper/c")), 0);
	char base[1100];
	snprintf(base, sizeof(base), "%s/.snapshots/%llu", mnt, (unsigned long long)id);
	char p[1200];
	snprintf(p, sizeof(p), "%s/d", base);
	cr_assert(dir_has(p, "a") && dir_has(p, "sub"));
	cr_assert_eq(dir_count(p), 2);
	snprintf(p, sizeof(p), "%s/d/sub", base);
	cr_assert(dir_has(p, "b") && dir_has(p, "deeper"));
	cr_assert_eq(dir_count(base), 1, "only d/ in the snapshot's root");
	snprintf(p, sizeof(p), "%s/d/a", base);
	expect_content(p, 1000, 6);
	snprintf(p, sizeof(p), "%s/d/sub/b", base);
	expect_content(p, 70000, 7);
	snprintf(p, sizeof(p), "%s/d/sub/deeper/c", base);
	expect_content(p, 1, 8);
	snprintf(p, sizeof(p), "%s/outside", base);
	struct stat st;
	EXPECT_ERRNO(stat(p, &st), ENOENT);
	struct snapfs_rec_snap rec;
	cr_assert(listed_snap(id, &rec));
	cr_assert(rec.flags & SNAPFS_SNAP_TREE, "a recursive pin is a tree snapshot");
	cr_assert_str_eq(rec.label, "tree");
}
