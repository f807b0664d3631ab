// SPDX-License-Identifier: MIT
/*
 * Descriptor limits (issue 10): the daemon, started with RLIMIT_NOFILE
 * 1024:20000 (as under `prlimit --nofile=1024:20000`), serves 5,000 files
 * (SNAPFS_LONG=1: 100,000) through the mount, pins them with pin -r,
 * mounts the same store again and serves every file of the pin through the
 * view. And pin -r never leaves files out silently: from a client under
 * `ulimit -n 1024`, and with a daemon whose limit is 1024:1024, a pin -r of
 * 1,500 files either holds every file or fails (one line naming the path,
 * nothing pinned).
 */
#include "treeutil.h"

TestSuite(fdlimit, .init = fx_setup, .fini = tr_teardown, .timeout = 1800);

#define PER_DIR 500

static void file_rel(char *buf, size_t len, size_t i)
{
	snprintf(buf, len, "t/d%03zu/f%06zu", i / PER_DIR, i);
}

/* n files under t/, through the mount (in_src 0) or in SOURCE */
static void make_files(size_t n, int in_src)
{
	const char *(*P)(const char *) = in_src ? SP : MP;
	mkdir_p(P("t"), 0755);
	char rel[128], content[64];
	for (size_t i = 0; i < n; i++) {
		if (i % PER_DIR == 0) {
			snprintf(rel, sizeof(rel), "t/d%03zu", i / PER_DIR);
			mkdir_p(P(rel), 0755);
		}
		file_rel(rel, sizeof(rel), i);
		int len = snprintf(content, sizeof(content), "file %zu of the tree\n", i);
		write_path(P(rel), content, (size_t)len);
	}
}

/* Read every file under base (MNT or a view) and check its bytes; fails
 * naming the first file that does not read. */
static void read_all(const char *what, uint64_t id, size_t n)
{
	char rel[128], want[64], got[65];
	for (size_t i = 0; i < n; i++) {
		file_rel(rel, sizeof(rel), i);
		const char *p = id ? VR(id, rel) : MP(rel);
		int wl = snprintf(want, sizeof(want), "file %zu of the tree\n", i);
		ssize_t r = read_path(p, got, sizeof(got));
		cr_assert_geq(r, 0, "%s: reading file %zu of %zu (%s) fails: %s", what, i, n, p,
			      strerror((int)-r));
		expect_bytes(p, got, (size_t)r, want, (size_t)wl);
	}
}

Test(fdlimit, daemon_under_nofile_1024_20000_reads_pins_and_remounts_many_files)
{
	size_t n = tr_long() ? 100000 : 5000;
	cr_assert_eq(fx_mount_nofile(NULL, 1024, 20000), 0,
		     "snapfs did not mount under RLIMIT_NOFILE 1024:20000");
	make_files(n, 0);
	read_all("through the mount", 0, n);
	uint64_t id = pin_tree("t");
	read_all("through the view", id, n);
	tu_umount(&m);
	cr_assert_eq(fx_mount_nofile(NULL, 1024, 20000), 0,
		     "a store holding a %zu-file pin does not mount again under RLIMIT_NOFILE "
		     "1024:20000",
		     n);
	cr_assert(listed_snap(id, NULL), "snapshot %" PRIu64 " is gone after the remount", id);
	read_all("through the view after a remount", id, n);
	read_all("through the mount after a remount", 0, n);
	release(id);
}

/* The view holds every file of t, or there is no new snapshot. */
static void expect_all_or_nothing(const char *what, int status, const char *out, const char *err,
				  size_t before, size_t n)
{
	if (status != 0) {
		cr_assert_eq(count_snaps(), before, "%s: pin -r failed but left a snapshot", what);
		const char *nl = strchr(err, '\n');
		cr_assert(nl && nl[1] == 0, "%s: the error is not one line: '%s'", what, err);
		cr_assert(strstr(err, "t/d") || strstr(err, " t:") || strstr(err, " t\n"),
			  "%s: the error does not name the path (t or a file under it): %s", what,
			  err);
		cr_log_info("%s: pin -r failed honestly: %s", what, err);
		return;
	}
	uint64_t id = strtoull(out, NULL, 10);
	cr_assert_neq(id, 0, "%s: pin -r printed '%s'", what, out);
	struct snapfs_rec_snap rec;
	cr_assert(listed_snap(id, &rec));
	char rel[128];
	size_t missing = 0;
	const char *first = NULL;
	for (size_t i = 0; i < n; i++) {
		file_rel(rel, sizeof(rel), i);
		if (access(VR(id, rel), F_OK) && !missing++)
			first = strdup(rel);
	}
	cr_assert_eq(missing, 0,
		     "%s: pin -r exited 0 but %zu of %zu files are not in the snapshot (first %s; "
		     "LIST says %" PRIu64 " files): a silently incomplete snapshot",
		     what, missing, n, first, rec.nfiles);
	release(id);
}

Test(fdlimit, pin_r_under_client_ulimit_1024_never_drops_files)
{
	size_t n = 1500;
	make_files(n, 1);
	fx_mount(NULL);
	size_t before = count_snaps();
	struct tr_out *r = xmalloc(sizeof(*r));
	tr_run(r, mnt, 1024, snapctl_bin(), "pin", "-r", "t", NULL);
	expect_all_or_nothing("client under ulimit -n 1024", r->status, r->out, r->err, before, n);
	free(r);
}

Test(fdlimit, pin_r_with_daemon_at_nofile_1024_never_drops_files)
{
	/* the files are made in SOURCE: the daemon meets them in the walk */
	size_t n = 1500;
	make_files(n, 1);
	cr_assert_eq(fx_mount_nofile(NULL, 1024, 1024), 0,
		     "snapfs did not mount under RLIMIT_NOFILE 1024:1024");
	size_t before = count_snaps();
	struct tr_out *r = xmalloc(sizeof(*r));
	tr_run(r, mnt, 0, snapctl_bin(), "pin", "-r", "t", NULL);
	expect_all_or_nothing("daemon under nofile 1024:1024", r->status, r->out, r->err, before,
			      n);
	free(r);
}
