// SPDX-License-Identifier: MIT
/*
 * Every library call on a snapshot=open mount, where a read-only open is
 * frozen at open already: snapfs_freeze keeps the open's snapshot (and
 * fstat then shows its size, not the live one), snapfs_map and
 * snapseg_read pin a snapshot of the call's instant and read it (direct
 * fills included), snapfs_pread reads the open's snapshot; and the same
 * calls on a descriptor frozen with snapfs_freeze and on a view file.
 */
#include "segutil.h"

#include <signal.h>

TestSuite(modes, .init = fx_setup, .fini = fx_teardown, .timeout = 120);

#define FLEN (1 * MiB + 100)

static void grow_live(const unsigned char *nb, size_t len)
{
	int w = openm("f", O_WRONLY);
	pwrite_all(w, nb, len, 0);
	close(w);
}

static size_t n_ephemeral(void)
{
	struct snapfs_rec_snap v[64];
	size_t n = list_snaps(v, 64), k = 0;
	for (size_t i = 0; i < n; i++)
		k += v[i].kind == 1;
	return k;
}

Test(modes, freeze_on_open_mount_keeps_the_open_snapshot_and_fstat_shows_its_size)
{
	fx_mount("snapshot=open");
	unsigned char *old = mkfile("f", FLEN, 41), *nb = xmalloc(2 * FLEN),
		      *got = xmalloc(2 * FLEN);
	int fd = openm("f", O_RDONLY);
	cr_assert_eq(n_ephemeral(), 1, "no open-time snapshot");
	tu_fill(nb, 2 * FLEN, 42);
	grow_live(nb, 2 * FLEN);
	uint64_t id = 0;
	cr_assert_eq(snapfs_freeze(fd, &id), 0, "snapfs_freeze on a snapshot=open mount: %s",
		     strerror(errno));
	cr_assert_neq(id, 0);
	struct snapfs_rec_snap rec;
	cr_assert(listed_snap(id, &rec), "the frozen snapshot %llu is not listed",
		  (unsigned long long)id);
	cr_assert_eq(n_ephemeral(), 1, "freeze pinned a second snapshot");
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_size, (off_t)FLEN,
		     "fstat of the frozen descriptor: %lld bytes, the "
		     "snapshot has %zu (live %zu)",
		     (long long)st.st_size, (size_t)FLEN, (size_t)(2 * FLEN));
	ssize_t n = pread(fd, got, 2 * FLEN, 0);
	expect_bytes("frozen descriptor", got, n < 0 ? 0 : (size_t)n, old, FLEN);
	/* freezing again keeps it */
	uint64_t id2 = 0;
	cr_assert_eq(snapfs_freeze(fd, &id2), 0, "second freeze: %s", strerror(errno));
	cr_assert_eq(id2, id, "a second freeze gave %llu, not %llu", (unsigned long long)id2,
		     (unsigned long long)id);
	close(fd);
	for (int i = 0; i < 100 && n_ephemeral(); i++)
		msleep(20);
	cr_assert_eq(n_ephemeral(), 0, "the open-time snapshot outlived the close");
	free(old);
	free(nb);
	free(got);
}

Test(modes, map_segment_and_pread_work_on_an_open_mount)
{
	fx_mount("snapshot=open");
	unsigned char *old = mkfile("f", FLEN, 51), *nb = xmalloc(FLEN), *got = xmalloc(FLEN);
	int fd = openm("f", O_RDONLY); /* its snapshot: old */
	/* snapfs_map: a snapshot of the call's instant */
	unsigned char *mp = snapfs_map(fd, 0, FLEN, NULL);
	cr_assert_not_null(mp, "snapfs_map on a snapshot=open mount: %s", strerror(errno));
	struct snapseg *s = mkseg(2 * FLEN);
	unsigned char *b = snapseg_base(s);
	ssize_t k = snapseg_read(s, b + 10, fd, FLEN, 0);
	cr_assert_eq(k, (ssize_t)FLEN, "snapseg_read on a snapshot=open mount: %zd (%s)", k,
		     strerror(errno));
	tu_fill(nb, FLEN, 52);
	grow_live(nb, FLEN);
	expect_bytes("snapfs_map after the file changed", mp, FLEN, old, FLEN);
	expect_bytes("segment after the file changed", b + 10, FLEN, old, FLEN);
	cr_assert_eq(snapfs_unmap(mp, FLEN), 0);
	/* snapfs_pread reads the open's snapshot (as pread does), small and large */
	cr_assert_eq(snapfs_pread(fd, got, 5000, 3), 5000, "%s", strerror(errno));
	expect_bytes("snapfs_pread, 5000 bytes", got, 5000, old + 3, 5000);
	cr_assert_eq(snapfs_pread(fd, got, FLEN, 0), (ssize_t)FLEN, "%s", strerror(errno));
	expect_bytes("snapfs_pread, whole file", got, FLEN, old, FLEN);
	close(fd);
	/* a new open reads the new bytes, and so do the calls on it */
	fd = openm("f", O_RDONLY);
	mp = snapfs_map(fd, 0, FLEN, NULL);
	cr_assert_not_null(mp);
	expect_bytes("snapfs_map of a new open", mp, FLEN, nb, FLEN);
	cr_assert_eq(snapfs_unmap(mp, FLEN), 0);
	cr_assert_eq(snapseg_read(s, b, fd, FLEN, 0), (ssize_t)FLEN);
	expect_bytes("segment of a new open", b, FLEN, nb, FLEN);
	close(fd);
	snapseg_destroy(s);
	for (int i = 0; i < 100 && n_ephemeral(); i++)
		msleep(20);
	cr_assert_eq(n_ephemeral(), 0, "snapshots left after every call let go");
	free(old);
	free(nb);
	free(got);
}

Test(modes, segment_map_and_freeze_on_a_frozen_descriptor_and_a_view_file)
{
	fx_mount(NULL);
	unsigned char *old = mkfile("f", FLEN, 61), *nb = xmalloc(FLEN);
	int fd = openm("f", O_RDONLY);
	uint64_t id = 0, id2 = 0;
	cr_assert_eq(snapfs_freeze(fd, &id), 0, "%s", strerror(errno));
	cr_assert_eq(snapfs_freeze(fd, &id2), 0, "freeze of a frozen descriptor: %s",
		     strerror(errno));
	cr_assert_eq(id2, id);
	uint64_t pinned = pin1("f");
	int v = open(VP(pinned, "f"), O_RDONLY);
	cr_assert(v >= 0);
	tu_fill(nb, FLEN, 62);
	grow_live(nb, FLEN);
	struct snapseg *s = mkseg(2 * FLEN);
	unsigned char *b = snapseg_base(s);
	int fds[2] = {fd, v};
	for (int i = 0; i < 2; i++) {
		const char *what = i ? "view file" : "frozen descriptor";
		unsigned char *mp = snapfs_map(fds[i], 0, FLEN, NULL);
		cr_assert_not_null(mp, "snapfs_map of a %s: %s", what, strerror(errno));
		expect_bytes(what, mp, FLEN, old, FLEN);
		cr_assert_eq(snapfs_unmap(mp, FLEN), 0);
		cr_assert_eq(snapseg_read(s, b, fds[i], FLEN, 0), (ssize_t)FLEN,
			     "snapseg_read of a %s: %s", what, strerror(errno));
		expect_bytes(what, b, FLEN, old, FLEN);
		cr_assert_eq(snapseg_discard(s, b, 2 * FLEN), 0);
	}
	snapseg_destroy(s);
	/* neither call released the snapshots they read */
	cr_assert(listed_snap(id, NULL), "the frozen descriptor's snapshot was released");
	cr_assert(listed_snap(pinned, NULL), "the pinned snapshot was released");
	close(v);
	close(fd);
	release(pinned);
	free(old);
	free(nb);
}

/* What snapfs(8) says tail -f shows on a snapshot=open mount: the file as
 * it was when tail opened it; lines appended later never appear (its
 * reads end at the open-time size), while fstat shows the live size. */
Test(modes, tail_f_on_an_open_mount_shows_the_file_as_at_open)
{
	fx_mount("snapshot=open");
	write_path(MP("log"), "first\n", 6);
	char out[256];
	snprintf(out, sizeof(out), "%s/tail.out", src);
	int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert(o >= 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		dup2(o, 1);
		execlp("tail", "tail", "-f", "-s", "0.1", MP("log"), (char *)NULL);
		_exit(127);
	}
	close(o);
	msleep(700);
	int fd = openm("log", O_WRONLY | O_APPEND);
	cr_assert_eq(write(fd, "second\n", 7), 7);
	close(fd);
	msleep(1500);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	char got[256] = "";
	ssize_t n = tu_read_file(out, got, sizeof(got) - 1);
	cr_assert(n >= 0);
	got[n] = 0;
	cr_assert_str_eq(got, "first\n", "tail -f printed \"%s\"", got);
	/* a new open sees both lines */
	n = tu_read_file(MP("log"), got, sizeof(got) - 1);
	got[n < 0 ? 0 : n] = 0;
	cr_assert_str_eq(got, "first\nsecond\n");
}
