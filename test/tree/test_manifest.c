// SPDX-License-Identifier: MIT
/*
 * A pinned tree's view is the tree as at pin time (issue 10): a tree of
 * nested directories (modes, owners incl. 65534, empty ones, xattrs),
 * files (random bytes, holes, empty, set-id, uid 65534, xattrs), symlinks
 * (dangling, to directories), hard links and FIFOs is built through the
 * mount, its manifest taken, then pinned with pin -r and changed heavily
 * (renamed and removed directories, new files, chmod/chown, xattr changes,
 * retargeted symlinks, overwrites, truncates, appends, removed hard links,
 * rename-over). The manifest of MNT/.snapshots/ID/... must equal the saved
 * one, before and after the changes, with stable inode numbers; paths
 * created after the pin and paths outside the pinned tree are absent; the
 * view is read-only. 2,000 files; SNAPFS_LONG=1: 40,000.
 */
#include "treeutil.h"

#include <dirent.h>

#include <linux/capability.h>
#include <sys/sysmacros.h>

TestSuite(manifest, .init = fx_setup, .fini = tr_teardown, .timeout = 1800);

struct built {
	char **dirs; /* relative to the tree root, "" is the root */
	size_t ndirs;
	int cap_set; /* security.capability set on capfile (in SOURCE) */
};

static const char *TP(const char *root, const char *rel)
{
	static char buf[8][1024];
	static int i;
	char *p = buf[i++ & 7];
	if (*rel)
		snprintf(p, 1024, "%s/%s", root, rel);
	else
		snprintf(p, 1024, "%s", root);
	return p;
}

static void chown_chmod(const char *p, uid_t u, gid_t g, mode_t mode)
{
	cr_assert_eq(lchown(p, u, g), 0, "chown %s: %s", p, strerror(errno));
	cr_assert_eq(chmod(p, mode), 0, "chmod %s: %s", p, strerror(errno));
}

static void setx(const char *p, const char *name, const void *v, size_t n)
{
	cr_assert_eq(lsetxattr(p, name, v, n, 0), 0, "setxattr %s %s: %s", p, name,
		     strerror(errno));
}

/* Build the tree at root (a path in the mount); nfiles regular files. */
static struct built build_tree(const char *root, size_t nfiles, uint64_t seed)
{
	static const mode_t dmodes[] = {0755, 0750, 0700, 0711, 01777, 02755, 0775, 0555};
	static const mode_t fmodes[] = {0644, 0600, 0755, 0444, 0640, 0664, 0700};
	struct built b = {0};
	uint64_t rs = seed;
	size_t ndirs = nfiles / 40 + 8;
	b.dirs = xmalloc((ndirs + 8) * sizeof(char *));
	mkdir_p(root, 0755);
	b.dirs[b.ndirs++] = strdup("");
	for (size_t i = 1; i < ndirs; i++) {
		char rel[512];
		const char *parent = (i < 8 || tu_rand(&rs) % 3 == 0)
					 ? ""
					 : b.dirs[1 + tu_rand(&rs) % (b.ndirs - 1)];
		snprintf(rel, sizeof(rel), "%s%sd%04zu", parent, *parent ? "/" : "", i);
		mkdir_p(TP(root, rel), 0755);
		b.dirs[b.ndirs++] = strdup(rel);
	}
	/* empty directories, one a chain */
	mkdir_p(TP(root, "empty0"), 0755);
	mkdir_p(TP(root, "d0001/empty1"), 0755);
	mkdir_p(TP(root, "e1"), 0755);
	mkdir_p(TP(root, "e1/e2"), 0700);
	mkdir_p(TP(root, "e1/e2/e3"), 0750);
	cr_assert_eq(lchown(TP(root, "e1/e2/e3"), 65534, 65534), 0);
	setx(TP(root, "empty0"), "user.empty", "yes", 3);

	char **files = xmalloc(nfiles * sizeof(char *));
	for (size_t k = 0; k < nfiles; k++) {
		const char *d = b.dirs[tu_rand(&rs) % b.ndirs];
		char rel[600];
		snprintf(rel, sizeof(rel), "%s%sf%06zu", d, *d ? "/" : "", k);
		files[k] = strdup(rel);
		const char *p = TP(root, rel);
		uint64_t r = tu_rand(&rs);
		size_t len;
		int sparse = 0;
		if (k % 20 == 0)
			len = 0;
		else if (k % 100 == 1)
			len = (256u << 10) + r % 5000, sparse = 1;
		else if (k % 10 == 2)
			len = 4096 + r % 60000;
		else
			len = 1 + r % 2000;
		put_file(p, len, seed ^ (k * 7919), sparse);
		uid_t u = k % 7 == 0 ? 65534 : 0;
		gid_t g = k % 7 == 0 || k % 11 == 0 ? 65534 : 0;
		mode_t mode = fmodes[r % 7];
		if (k % 50 == 5)
			mode = 04755;
		if (k % 50 == 6)
			mode = 02755;
		chown_chmod(p, u, g, mode);
		if (k % 9 == 0) {
			char v[32];
			int n = snprintf(v, sizeof(v), "v%zu", k);
			setx(p, "user.a", v, (size_t)n);
		}
		if (k % 27 == 0) {
			unsigned char v[40];
			tu_fill(v, sizeof(v), k);
			setx(p, "user.bb", v, sizeof(v));
		}
		/* hard links: a second name elsewhere, now and then a third */
		if (k % 50 == 3 || k % 500 == 7) {
			char l[600];
			const char *d2 = b.dirs[tu_rand(&rs) % b.ndirs];
			snprintf(l, sizeof(l), "%s%shl%06zu", d2, *d2 ? "/" : "", k);
			cr_assert_eq(link(p, TP(root, l)), 0, "link %s: %s", l, strerror(errno));
			if (k % 500 == 7) {
				snprintf(l, sizeof(l), "hl3_%06zu", k);
				cr_assert_eq(link(p, TP(root, l)), 0);
			}
		}
	}
	/* symlinks: to a file, to a directory, dangling, absolute */
	for (size_t i = 0; i < b.ndirs; i++) {
		char rel[600];
		const char *d = b.dirs[i];
		snprintf(rel, sizeof(rel), "%s%sln", d, *d ? "/" : "");
		const char *target = i % 3 == 0 ? "f000001" : i % 3 == 1 ? ".." : "no/such/target";
		if (i % 7 == 6)
			target = "/etc/passwd";
		cr_assert_eq(symlink(target, TP(root, rel)), 0, "symlink %s: %s", rel,
			     strerror(errno));
	}
	cr_assert_eq(symlink("d0002", TP(root, "ln_dir")), 0);
	cr_assert_eq(symlink(files[1], TP(root, "ln_file")), 0);
	/* FIFOs */
	cr_assert_eq(mkfifo(TP(root, "fifo"), 0640), 0, "mkfifo: %s", strerror(errno));
	cr_assert_eq(mkfifo(TP(root, "d0003/fifo2"), 0600), 0);
	cr_assert_eq(lchown(TP(root, "d0003/fifo2"), 65534, 65534), 0);
	/* set-id and capability files */
	put_file(TP(root, "suid"), 100, 5, 0);
	cr_assert_eq(chmod(TP(root, "suid"), 04755), 0);
	put_file(TP(root, "capfile"), 100, 6, 0);
	/* directory modes, owners and xattrs, last (files were created first) */
	for (size_t i = 1; i < b.ndirs; i++) {
		const char *p = TP(root, b.dirs[i]);
		uid_t u = i % 5 == 0 ? 65534 : 0;
		chown_chmod(p, u, u, dmodes[i % 8]);
		if (i % 4 == 0) {
			char v[32];
			int n = snprintf(v, sizeof(v), "dir%zu", i);
			setx(p, "user.dir", v, (size_t)n);
		}
	}
	for (size_t k = 0; k < nfiles; k++)
		free(files[k]);
	free(files);
	return b;
}

static void built_free(struct built *b)
{
	for (size_t i = 0; i < b->ndirs; i++)
		free(b->dirs[i]);
	free(b->dirs);
}

static void set_capability(const char *srcpath, struct built *b)
{
	struct vfs_cap_data cap = {0};
	cap.magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE;
	cap.data[0].permitted = 1u << CAP_NET_RAW;
	b->cap_set = setxattr(srcpath, "security.capability", &cap, XATTR_CAPS_SZ_2, 0) == 0;
}

static void ignore_enodata(int rc, const char *what)
{
	cr_assert(rc == 0 || errno == ENODATA, "%s: %s", what, strerror(errno));
}

/* Heavy changes through the mount to the tree at root, driven by the
 * manifest taken at pin time. Returns paths created since (relative). */
static void change_tree(const char *root, const struct mf *at_pin)
{
	unsigned char buf[4096];
	tu_fill(buf, sizeof(buf), 99);
	/* files, symlinks, FIFOs: each by the class of its position */
	for (size_t i = 0; i < at_pin->n; i++) {
		const struct mf_ent *e = &at_pin->v[i];
		const char *p = TP(root, e->path);
		if (e->type == S_IFLNK) {
			cr_assert_eq(unlink(p), 0, "unlink %s: %s", p, strerror(errno));
			if (i % 2 == 0)
				cr_assert_eq(symlink("retargeted/after/pin", p), 0);
			continue;
		}
		if (e->type == S_IFIFO) {
			cr_assert_eq(unlink(p), 0);
			continue;
		}
		if (e->type != S_IFREG || !strcmp(e->path, "suid") || !strcmp(e->path, "capfile"))
			continue; /* suid gains a link below */
		if (e->nlink > 1) {
			if (strcmp(e->cls, e->path)) { /* remove one of the names */
				cr_assert_eq(unlink(p), 0, "unlink %s: %s", p, strerror(errno));
			} else {
				int fd = open(p, O_WRONLY | O_APPEND);
				cr_assert(fd >= 0, "open %s: %s", p, strerror(errno));
				ssize_t wn = write(fd, buf, 333);
				cr_assert_eq(wn, 333, "append %s: %zd (%s)", p, wn,
					     strerror(errno));
				close(fd);
			}
			continue;
		}
		int fd;
		switch (i % 12) {
		case 0:
			cr_assert_eq(unlink(p), 0, "unlink %s: %s", p, strerror(errno));
			break;
		case 1:
			fd = open(p, O_WRONLY);
			cr_assert(fd >= 0, "open %s: %s", p, strerror(errno));
			pwrite_all(fd, buf, 100, e->size / 2);
			close(fd);
			break;
		case 2:
			cr_assert_eq(truncate(p, e->size / 2), 0);
			break;
		case 3:
			fd = open(p, O_WRONLY | O_APPEND);
			cr_assert(fd >= 0);
			cr_assert_eq(write(fd, buf, 1000), 1000);
			close(fd);
			break;
		case 4:
			cr_assert_eq(chmod(p, e->mode == 0600 ? 0644 : 0600), 0);
			break;
		case 5:
			cr_assert_eq(lchown(p, e->uid ? 0 : 65534, e->gid ? 0 : 65534), 0);
			break;
		case 6:
			cr_assert_eq(lsetxattr(p, "user.a", "changed", 7, 0), 0, "setxattr %s: %s",
				     p, strerror(errno));
			ignore_enodata(lremovexattr(p, "user.bb"), p);
			break;
		case 7: {
			char tmp[1100];
			snprintf(tmp, sizeof(tmp), "%s.tmp", p);
			put_file(tmp, 777, i, 0);
			cr_assert_eq(rename(tmp, p), 0, "rename over %s: %s", p, strerror(errno));
			break;
		}
		case 8: {
			struct timespec ts[2] = {{1000000, 5}, {1000000, 5}};
			cr_assert_eq(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
			break;
		}
		case 9:
			put_file(p, 1234, i + 1, 0);
			break;
		default:
			break;
		}
	}
	/* directories: metadata, new entries inside (not in the empty ones
	 * removed below: which directory gets which change depends on the
	 * tree's size) */
	size_t j = 0;
	for (size_t i = 0; i < at_pin->n; i++) {
		const struct mf_ent *e = &at_pin->v[i];
		if (e->type != S_IFDIR || !strcmp(e->path, ".") || !strcmp(e->path, "empty0") ||
		    !strcmp(e->path, "e1/e2/e3"))
			continue;
		const char *p = TP(root, e->path);
		char q[1100];
		switch (j++ % 6) {
		case 0:
			cr_assert_eq(chmod(p, e->mode == 0700 ? 0755 : 0700), 0);
			break;
		case 1:
			cr_assert_eq(lchown(p, e->uid ? 0 : 65534, e->uid ? 0 : 65534), 0);
			break;
		case 2:
			cr_assert_eq(lsetxattr(p, "user.dir", "changed", 7, 0), 0,
				     "setxattr %s: %s", p, strerror(errno));
			cr_assert_eq(lsetxattr(p, "user.new", "n", 1, 0), 0);
			break;
		case 3:
			snprintf(q, sizeof(q), "%s/new_after_pin", p);
			put_file(q, 50, 1, 0);
			snprintf(q, sizeof(q), "%s/newdir_after_pin", p);
			mkdir_p(q, 0755);
			break;
		case 4:
			ignore_enodata(lremovexattr(p, "user.dir"), p);
			break;
		default:
			break;
		}
	}
	/* structure: rename and remove top-level directories, remove the
	 * empty ones, new files and links at the top */
	for (size_t i = 0; i < at_pin->n; i++) {
		const struct mf_ent *e = &at_pin->v[i];
		if (e->type != S_IFDIR || strchr(e->path, '/') || e->path[0] != 'd')
			continue;
		int n = atoi(e->path + 1);
		char q[1100];
		if (n % 5 == 0) {
			tu_rm_rf(TP(root, e->path));
			errno = 0;
			cr_assert_eq(access(TP(root, e->path), F_OK), -1, "rm -r %s left it",
				     e->path);
		} else if (n % 3 == 0) {
			snprintf(q, sizeof(q), "%s.renamed", TP(root, e->path));
			cr_assert_eq(rename(TP(root, e->path), q), 0, "rename %s: %s", e->path,
				     strerror(errno));
		}
	}
	if (rmdir(TP(root, "empty0"))) {
		int e = errno;
		char names[512] = "";
		DIR *dp = opendir(TP(root, "empty0"));
		struct dirent *de;
		while (dp && (de = readdir(dp)))
			if (strlen(names) + strlen(de->d_name) + 2 < sizeof(names))
				strcat(strcat(names, de->d_name), " ");
		if (dp)
			closedir(dp);
		cr_assert_fail("rmdir empty0: %s; it holds: %s", strerror(e), names);
	}
	cr_assert_eq(rmdir(TP(root, "e1/e2/e3")), 0);
	put_file(TP(root, "created_after_pin"), 4096, 3, 0);
	cr_assert_eq(symlink("x", TP(root, "symlink_after_pin")), 0);
	cr_assert_eq(link(TP(root, "suid"), TP(root, "link_after_pin")), 0);
	cr_assert_eq(mkdir(TP(root, "e1/e2/e3"), 0777), 0); /* same name, new directory */
	put_file(TP(root, "e1/e2/e3/inside_new"), 10, 3, 0);
}

static void expect_absent(const char *p)
{
	struct stat st;
	errno = 0;
	cr_expect(lstat(p, &st) == -1 && errno == ENOENT,
		  "%s exists in the view (created after the pin), or lstat failed with %s", p,
		  strerrorname_np(errno));
}

static void expect_only_child(const char *dir, const char *name)
{
	DIR *d = opendir(dir);
	cr_assert_not_null(d, "opendir %s: %s", dir, strerror(errno));
	struct dirent *de;
	size_t n = 0;
	int seen = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		n++;
		if (!strcmp(de->d_name, name))
			seen = 1;
		else
			cr_expect_fail("%s lists %s, which is outside the pinned tree", dir,
				       de->d_name);
	}
	closedir(d);
	cr_assert(seen && n == 1, "%s: %zu entries, %s %s", dir, n, name,
		  seen ? "listed" : "missing");
}

static void expect_no_setid(const struct mf *v)
{
	for (size_t i = 0; i < v->n; i++)
		cr_assert_eq(v->v[i].rawmode & 06000, 0,
			     "%s: the view shows mode 0%o with a set-id bit (a snapshot never "
			     "grants a privilege)",
			     v->v[i].path, (unsigned)v->v[i].rawmode & 07777);
}

Test(manifest, view_equals_manifest_at_pin_after_heavy_changes)
{
	fx_mount(NULL);
	size_t nfiles = tr_long() ? 40000 : 2000;
	mkdir_p(MP("top"), 0755);
	put_file(MP("top/outside_file"), 100, 1, 0);
	mkdir_p(MP("top/odir"), 0755);
	put_file(MP("top/odir/x"), 100, 2, 0);
	const char *root = strdup(MP("top/t"));
	struct built b = build_tree(root, nfiles, 0x5eed);
	set_capability(SP("top/t/capfile"), &b);
	struct mf *live = mf_take(root, MF_MTIME);
	uint64_t id = pin_tree("top/t");
	const unsigned cmp = MF_MTIME | MF_NLINK;

	struct mf *v1 = mf_take(VR(id, "top/t"), MF_MTIME);
	mf_expect("view right after pin -r", v1, live, cmp);

	change_tree(root, live);
	struct mf *now = mf_take(root, MF_MTIME);
	char msg[200];
	cr_assert_gt(mf_diff(now, live, cmp, msg, sizeof(msg)), live->n / 4,
		     "the changes did not change the live tree much");
	mf_free(now);

	struct mf *v2 = mf_take(VR(id, "top/t"), MF_MTIME);
	mf_expect("view after heavy changes", v2, live, cmp);
	mf_expect_same_inos("view before and after the changes", v1, v2);
	expect_no_setid(v2);

	expect_absent(VR(id, "top/t/created_after_pin"));
	expect_absent(VR(id, "top/t/symlink_after_pin"));
	expect_absent(VR(id, "top/t/d0003.renamed"));
	expect_absent(VR(id, "top/t/e1/e2/e3/inside_new"));
	expect_absent(VR(id, "top/t/d0004/new_after_pin"));
	/* outside the pinned tree: only the way down */
	expect_only_child(VR(id, ""), "top");
	expect_only_child(VR(id, "top"), "t");
	expect_absent(VR(id, "top/outside_file"));
	expect_absent(VR(id, "top/odir"));
	if (b.cap_set) {
		char v[64];
		errno = 0;
		cr_expect(lgetxattr(VR(id, "top/t/capfile"), "security.capability", v, sizeof(v)) <
			      0,
			  "the view shows security.capability of capfile");
	}
	built_free(&b);
	mf_free(v1);
	mf_free(v2);
	mf_free(live);
	free((void *)root);
	release(id);
}

#define EXPECT_EROFS(call)                                                                         \
	do {                                                                                       \
		errno = 0;                                                                         \
		long r_ = (long)(call);                                                            \
		int e_ = errno;                                                                    \
		cr_expect(r_ == -1 && e_ == EROFS, "%s = %ld, errno %s; expected -1 EROFS", #call, \
			  r_, strerrorname_np(e_));                                                \
	} while (0)

Test(manifest, view_of_a_tree_is_read_only)
{
	fx_mount(NULL);
	const char *root = strdup(MP("t"));
	struct built b = build_tree(root, 40, 7);
	struct mf *live = mf_take(root, MF_MTIME);
	uint64_t id = pin_tree("t");
	const char *d = VR(id, "t/d0001");
	char p[1100], q[1100];
	snprintf(p, sizeof(p), "%s/newfile", d);
	EXPECT_EROFS(open(p, O_CREAT | O_WRONLY, 0644));
	EXPECT_EROFS(mkdir(p, 0755));
	EXPECT_EROFS(mkfifo(p, 0644));
	EXPECT_EROFS(symlink("x", p));
	EXPECT_EROFS(link(VR(id, "t/suid"), p));
	EXPECT_EROFS(rename(VR(id, "t/suid"), p));
	EXPECT_EROFS(unlink(VR(id, "t/suid")));
	EXPECT_EROFS(unlink(VR(id, "t/ln_dir")));
	EXPECT_EROFS(rmdir(VR(id, "t/empty0")));
	EXPECT_EROFS(rmdir(d));
	EXPECT_EROFS(chmod(d, 0777));
	EXPECT_EROFS(lchown(d, 65534, 65534));
	EXPECT_EROFS(lsetxattr(d, "user.x", "1", 1, 0));
	EXPECT_EROFS(lremovexattr(VR(id, "t/empty0"), "user.empty"));
	EXPECT_EROFS(truncate(VR(id, "t/suid"), 0));
	/* from the live tree into the view: EXDEV is as good a refusal */
	snprintf(q, sizeof(q), "%s/new2", VR(id, "t"));
	errno = 0;
	cr_expect(rename(MP("t/suid"), q) == -1 && (errno == EROFS || errno == EXDEV),
		  "rename of a live file into the view: %s, expected EROFS or EXDEV",
		  strerrorname_np(errno));
	errno = 0;
	cr_expect(link(MP("t/suid"), q) == -1 && (errno == EROFS || errno == EXDEV),
		  "link of a live file into the view: %s, expected EROFS or EXDEV",
		  strerrorname_np(errno));
	cr_assert_eq(access(MP("t/suid"), F_OK), 0, "the live file is gone");
	struct mf *v2 = mf_take(VR(id, "t"), MF_MTIME);
	mf_expect("view after refused writes", v2, live, MF_MTIME | MF_NLINK);
	built_free(&b);
	mf_free(v2);
	mf_free(live);
	free((void *)root);
	release(id);
}

/*
 * The harness itself: a `cp -a` copy of the tree taken at "pin time" (on
 * tmpfs, outside snapfs) must match the saved manifest after the same heavy
 * changes to the live tree, so a difference reported for a view is the
 * view's, not the manifest's. Passes whatever the daemon does.
 */
Test(manifest, cp_a_copy_matches_manifest_harness_check)
{
	fx_mount(NULL);
	const char *root = strdup(MP("t"));
	struct built b = build_tree(root, 300, 11);
	struct mf *live = mf_take(root, MF_MTIME);
	const char *copy = tr_tmpdir("trcopy");
	struct tr_out *r = xmalloc(sizeof(*r));
	char dst[1100];
	snprintf(dst, sizeof(dst), "%s/t", copy);
	cr_assert_eq(tr_run(r, NULL, 0, "cp", "-a", root, dst, NULL), 0, "cp -a: %s", r->err);
	change_tree(root, live);
	struct mf *c = mf_take(dst, MF_MTIME);
	mf_expect("cp -a copy", c, live, MF_MTIME | MF_NLINK);
	struct mf *now = mf_take(root, MF_MTIME);
	char msg[200];
	cr_assert_gt(mf_diff(now, live, MF_MTIME | MF_NLINK, msg, sizeof(msg)), live->n / 4);
	free(r);
	mf_free(c);
	mf_free(now);
	mf_free(live);
	built_free(&b);
	free((void *)root);
}
