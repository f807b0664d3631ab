// SPDX-License-Identifier: MIT
/*
 * Lifecycle of snapshots through the mount: multi-file pins are atomic,
 * pinned snapshots survive unmount and kill -9 of the daemon, files changed
 * while unmounted or beside the mount make their snapshots stale (EIO,
 * never wrong bytes),
 * open-time and frozen snapshots read the bytes at open/freeze and belong
 * to the open file (close or SIGKILL releases them and frees their space),
 * and release returns the space to the filesystem.
 */
#include "snaputil.h"

#include <pthread.h>
#include <signal.h>
#include <sys/mount.h>

TestSuite(life, .init = fx_setup, .fini = fx_teardown, .timeout = 90);

#define GEN_SIZE (32 * 1024)

/* A file whose every 8-byte word is its generation. */
static void gen_fill(uint64_t *buf, uint64_t gen)
{
	for (size_t i = 0; i < GEN_SIZE / 8; i++)
		buf[i] = gen;
}

/* The generation of a whole-file buffer, or fails naming the torn word. */
static uint64_t gen_of(const char *what, const uint64_t *buf, ssize_t n)
{
	cr_assert_eq(n, GEN_SIZE, "%s: %zd bytes, expected %d", what, n, GEN_SIZE);
	for (size_t i = 1; i < GEN_SIZE / 8; i++)
		cr_assert_eq(buf[i], buf[0], "%s: torn: word %zu has generation %llu, word 0 %llu",
			     what, i, (unsigned long long)buf[i], (unsigned long long)buf[0]);
	return buf[0];
}

struct alt {
	volatile int stop;
	uint64_t gen;
	int err;
};

/* Write generation N to A, then to B, forever. */
static void *alternate(void *p)
{
	struct alt *a = p;
	uint64_t *buf = malloc(GEN_SIZE);
	int fa = open(MP("A"), O_WRONLY), fb = open(MP("B"), O_WRONLY);
	for (uint64_t g = 1; !a->stop; g++) {
		gen_fill(buf, g);
		if (pwrite(fa, buf, GEN_SIZE, 0) != GEN_SIZE ||
		    pwrite(fb, buf, GEN_SIZE, 0) != GEN_SIZE) {
			a->err = errno;
			break;
		}
		__atomic_store_n(&a->gen, g, __ATOMIC_RELEASE);
	}
	close(fa);
	close(fb);
	free(buf);
	return NULL;
}

/*
 * The writer finishes A before it starts B, so at any one instant B's
 * generation is A's or one less. A pin that took A and B at different
 * instants would show B ahead of A, or A more than one ahead of B.
 */
Test(life, multi_file_pin_is_atomic_against_alternating_writer)
{
	fx_mount(NULL);
	uint64_t *buf = xmalloc(GEN_SIZE);
	gen_fill(buf, 0);
	write_path(MP("A"), buf, GEN_SIZE);
	write_path(MP("B"), buf, GEN_SIZE);
	struct alt a = {0};
	pthread_t t;
	pthread_create(&t, NULL, alternate, &a);
	const char *both[] = {"A", "B"};
	int mixed = 0, equal = 0, behind = 0;
	for (int i = 0; i < 150; i++) {
		uint64_t id = pin_paths(both, 2);
		ssize_t na = read_path(VP(id, "A"), buf, GEN_SIZE);
		uint64_t ga = gen_of("snapshot of A", buf, na);
		uint64_t gb = gen_of("snapshot of B", buf, read_path(VP(id, "B"), buf, GEN_SIZE));
		if (ga == gb)
			equal++;
		else if (ga == gb + 1)
			behind++;
		else
			mixed++;
		cr_assert(ga == gb || ga == gb + 1,
			  "snapshot %llu mixes instants: A at generation %llu, B at %llu",
			  (unsigned long long)id, (unsigned long long)ga, (unsigned long long)gb);
		release(id);
	}
	a.stop = 1;
	pthread_join(t, NULL);
	cr_assert_eq(a.err, 0, "writer: %s", strerror(a.err));
	cr_assert(a.gen > 10, "the writer made only %llu generations", (unsigned long long)a.gen);
	cr_log_info("atomic pins: %d equal, %d mid-pair, %d mixed; %llu generations", equal, behind,
		    mixed, (unsigned long long)a.gen);
	free(buf);
}

static void fill_seed(const char *rel, size_t len, uint64_t seed, unsigned char **out)
{
	unsigned char *b = xmalloc(len);
	tu_fill(b, len, seed);
	write_path(MP(rel), b, len);
	if (out)
		*out = b;
	else
		free(b);
}

static void expect_view(uint64_t id, const char *rel, const unsigned char *want, size_t len)
{
	unsigned char *got = xmalloc(len + 1);
	ssize_t n = read_path(VP(id, rel), got, len + 1);
	cr_assert(n >= 0, "read snapshot %llu of %s: %s", (unsigned long long)id, rel,
		  strerror((int)-n));
	char what[128];
	snprintf(what, sizeof(what), "snapshot %llu of %s", (unsigned long long)id, rel);
	expect_bytes(what, got, (size_t)n, want, len);
	free(got);
}

Test(life, pinned_snapshot_survives_unmount_and_remount)
{
	fx_mount(NULL);
	unsigned char *old;
	fill_seed("f", 300000, 1, &old);
	uint64_t id = pin1("f");
	expect_view(id, "f", old, 300000); /* from the live file */
	fill_seed("f", 200000, 2, NULL);   /* O_TRUNC + write */
	expect_view(id, "f", old, 300000); /* from the store */
	cr_assert_eq(tu_umount(&m), 0);
	fx_mount(NULL);
	cr_assert(listed_snap(id, NULL), "snapshot %llu gone after remount",
		  (unsigned long long)id);
	expect_view(id, "f", old, 300000);
	unsigned char *nb;
	fill_seed("f", 400000, 3, &nb); /* after the remount the file is still copied-on-write */
	expect_view(id, "f", old, 300000);
	unsigned char *got = xmalloc(400001);
	expect_bytes("live f", got, (size_t)read_path(MP("f"), got, 400001), nb, 400000);
	free(got);
	free(nb);
	free(old);
}

/* ------------------------------------------------------------- kill -9 */

#define KF    4
#define KSIZE (256 * 1024)

struct kw {
	pthread_mutex_t mu;
	unsigned char *model[KF]; /* the files' bytes, updated under mu with each write */
	volatile int stop;
	uint64_t writes;
};

static void *kill_writer(void *p)
{
	struct kw *k = p;
	uint64_t s = 12345;
	unsigned char buf[40000];
	char name[8];
	while (!k->stop) {
		int f = (int)(tu_rand(&s) % KF);
		size_t off = tu_rand(&s) % (KSIZE - sizeof(buf)),
		       len = 1 + tu_rand(&s) % sizeof(buf);
		tu_fill(buf, len, tu_rand(&s));
		snprintf(name, sizeof(name), "k%d", f);
		pthread_mutex_lock(&k->mu);
		int fd = open(MP(name), O_WRONLY);
		ssize_t n = fd < 0 ? -1 : pwrite(fd, buf, len, (off_t)off);
		if (fd >= 0)
			close(fd);
		if (n == (ssize_t)len)
			memcpy(k->model[f] + off, buf, len);
		pthread_mutex_unlock(&k->mu);
		if (n != (ssize_t)len)
			break; /* the daemon is gone */
		k->writes++;
	}
	return NULL;
}

Test(life, pinned_snapshots_survive_kill_9_of_daemon_during_writes)
{
	fx_mount(NULL);
	struct kw k = {.mu = PTHREAD_MUTEX_INITIALIZER};
	char name[8];
	for (int f = 0; f < KF; f++) {
		snprintf(name, sizeof(name), "k%d", f);
		fill_seed(name, KSIZE, 100 + f, &k.model[f]);
	}
	pthread_t t;
	pthread_create(&t, NULL, kill_writer, &k);
	enum { NPIN = 8 };
	uint64_t ids[NPIN];
	int file[NPIN];
	unsigned char *copy[NPIN];
	for (int i = 0; i < NPIN; i++) {
		msleep(40);
		file[i] = i % KF;
		snprintf(name, sizeof(name), "k%d", file[i]);
		pthread_mutex_lock(&k.mu); /* no write in flight: the model is the file */
		ids[i] = pin1(name);
		copy[i] = xmalloc(KSIZE);
		memcpy(copy[i], k.model[file[i]], KSIZE);
		pthread_mutex_unlock(&k.mu);
		unsigned char *got = xmalloc(KSIZE + 1);
		ssize_t n = read_path(VP(ids[i], name), got, KSIZE + 1);
		if (n < 0) { /* stop the writer before failing or skipping */
			k.stop = 1;
			pthread_join(t, NULL);
		}
		cr_assert(n >= 0, "read snapshot: %s", strerror((int)-n));
		expect_bytes("snapshot right after the pin", got, (size_t)n, copy[i], KSIZE);
		free(got);
	}
	msleep(150);
	uint64_t before = k.writes;
	cr_assert_eq(kill(m.pid, SIGKILL), 0);
	int st;
	waitpid(m.pid, &st, 0);
	m.pid = 0;
	k.stop = 1;
	pthread_join(t, NULL);
	cr_assert_eq(umount2(mnt, MNT_DETACH), 0, "umount -l: %s", strerror(errno));
	tu_umount(&m); /* forget the dead mount */
	cr_assert(before > 20, "only %llu writes before the kill", (unsigned long long)before);
	fx_mount(NULL);
	/* The one writer had at most one file's write in flight when it was
	 * killed: the store cannot tell that write from a foreign one made
	 * after the crash, so that file's snapshots may come back stale (and
	 * then read EIO); every other snapshot must be valid with its bytes. */
	int stale_file = -1;
	for (int i = 0; i < NPIN; i++) {
		snprintf(name, sizeof(name), "k%d", file[i]);
		struct snapfs_rec_snap rec;
		cr_assert(listed_snap(ids[i], &rec), "snapshot %llu lost in the crash",
			  (unsigned long long)ids[i]);
		if (rec.state != 0) {
			cr_assert(
			    stale_file < 0 || stale_file == file[i],
			    "snapshot %llu (file k%d) is stale after a crash, and so is one of "
			    "k%d: more than the one file in flight",
			    (unsigned long long)ids[i], file[i], stale_file);
			stale_file = file[i];
			unsigned char buf[16];
			ssize_t n = read_path(VP(ids[i], name), buf, sizeof(buf));
			cr_assert_eq(n, -EIO, "stale snapshot %llu read %zd, not EIO",
				     (unsigned long long)ids[i], n);
		} else {
			expect_view(ids[i], name, copy[i], KSIZE);
		}
		free(copy[i]);
	}
	for (int f = 0; f < KF; f++)
		free(k.model[f]);
}

/* --------------------------------------------------------------- stale */

Test(life, file_changed_while_unmounted_makes_snapshot_stale)
{
	fx_mount(NULL);
	unsigned char *old, *keep;
	fill_seed("f", 100000, 4, &old);
	fill_seed("g", 50000, 5, &keep);
	uint64_t id = pin1("f"), idg = pin1("g");
	expect_view(id, "f", old, 100000);
	cr_assert_eq(tu_umount(&m), 0);
	/* same size, other bytes, behind the daemon's back */
	int fd = open(SP("f"), O_WRONLY);
	cr_assert(fd >= 0);
	unsigned char x[100];
	memset(x, 0xAB, sizeof(x));
	pwrite_all(fd, x, sizeof(x), 5000);
	close(fd);
	fx_mount(NULL);
	unsigned char *got = xmalloc(100001);
	int vfd = open(VP(id, "f"), O_RDONLY);
	ssize_t n = vfd < 0 ? -errno : read(vfd, got, 100001);
	if (n < 0 && vfd >= 0)
		n = -errno;
	if (vfd >= 0)
		close(vfd);
	cr_assert_eq(n, -EIO, "read of a stale snapshot: %zd (%s), expected EIO", n,
		     n < 0 ? strerror((int)-n) : "bytes");
	struct snapfs_rec_snap rec;
	cr_assert(listed_snap(id, &rec));
	cr_assert_eq(rec.state, 1, "LIST state %u, expected 1 (stale)", rec.state);
	cr_assert(listed_snap(idg, &rec));
	cr_assert_eq(rec.state, 0, "the untouched file's snapshot is stale");
	expect_view(idg, "g", keep, 50000);
	free(got);
	free(old);
	free(keep);
}

/* Read the whole snapshot file from the daemon (not from the kernel's
 * cache of an earlier read): its length, or -errno. */
static ssize_t read_view(uint64_t id, const char *rel, unsigned char *buf, size_t cap)
{
	int vfd = open(VP(id, rel), O_RDONLY);
	if (vfd < 0)
		return -errno;
	(void)posix_fadvise(vfd, 0, 0, POSIX_FADV_DONTNEED);
	ssize_t n = read(vfd, buf, cap);
	if (n < 0)
		n = -errno;
	close(vfd);
	return n;
}

/*
 * A process writes SOURCE directly while the overlay is mounted (as another
 * host writing a network filesystem would): the daemon never saw the write,
 * so the snapshot's unchanged blocks, read from the live file, would be the
 * new bytes. The read must fail with EIO, the snapshot be listed stale (also
 * after a clean unmount and a mount), and another file's snapshot of the
 * same pin stay valid.
 */
Test(life, file_changed_outside_the_mount_while_mounted_is_stale)
{
	fx_mount(NULL);
	unsigned char *old, *keep;
	fill_seed("f", 100000, 6, &old);
	fill_seed("g", 50000, 7, &keep);
	uint64_t id = pin1("f"), idg = pin1("g");
	/* A write through the mount: preserved, the snapshot stays valid. */
	unsigned char y[64];
	memset(y, 0x5A, sizeof(y));
	int fd = open(MP("f"), O_WRONLY);
	cr_assert(fd >= 0);
	pwrite_all(fd, y, sizeof(y), 70000);
	close(fd);
	expect_view(id, "f", old, 100000);
	/* Same size, other bytes, in a block the daemon never preserved. */
	fd = open(SP("f"), O_WRONLY);
	cr_assert(fd >= 0);
	unsigned char x[100];
	memset(x, 0xAB, sizeof(x));
	pwrite_all(fd, x, sizeof(x), 5000);
	close(fd);
	unsigned char *got = xmalloc(100001);
	ssize_t n = read_view(id, "f", got, 100001);
	cr_assert(!(n == 100000 && !memcmp(got + 5000, x, sizeof(x))),
		  "the snapshot reads the bytes written beside the mount");
	cr_assert_eq(n, -EIO, "read of a file changed beside the mount: %zd (%s), expected EIO", n,
		     n < 0 ? strerror((int)-n) : "bytes");
	struct snapfs_rec_snap rec;
	cr_assert(listed_snap(id, &rec));
	cr_assert_eq(rec.state, 1, "LIST state %u, expected 1 (stale)", rec.state);
	cr_assert(listed_snap(idg, &rec));
	cr_assert_eq(rec.state, 0, "the untouched file's snapshot is stale");
	expect_view(idg, "g", keep, 50000);
	/* A clean unmount must not record the other writer's state as ours. */
	cr_assert_eq(tu_umount(&m), 0);
	fx_mount(NULL);
	cr_assert(listed_snap(id, &rec));
	cr_assert_eq(rec.state, 1, "stale no more after a remount (state %u)", rec.state);
	n = read_view(id, "f", got, 100001);
	cr_assert_eq(n, -EIO, "after a remount: %zd (%s), expected EIO", n,
		     n < 0 ? strerror((int)-n) : "bytes");
	expect_view(idg, "g", keep, 50000);
	free(got);
	free(old);
	free(keep);
}

/* The same change beside the mount, then a clean unmount before any
 * snapshot read: the next mount finds the snapshot stale. */
Test(life, file_changed_outside_the_mount_then_unmounted_is_stale)
{
	fx_mount(NULL);
	unsigned char *old;
	fill_seed("f", 100000, 8, &old);
	uint64_t id = pin1("f");
	int fd = open(SP("f"), O_WRONLY);
	cr_assert(fd >= 0);
	unsigned char x[100];
	memset(x, 0xCD, sizeof(x));
	pwrite_all(fd, x, sizeof(x), 5000);
	close(fd);
	cr_assert_eq(tu_umount(&m), 0);
	fx_mount(NULL);
	struct snapfs_rec_snap rec;
	cr_assert(listed_snap(id, &rec));
	cr_assert_eq(rec.state, 1, "LIST state %u, expected 1 (stale)", rec.state);
	unsigned char *got = xmalloc(100001);
	ssize_t n = read_view(id, "f", got, 100001);
	cr_assert_eq(n, -EIO, "%zd (%s), expected EIO", n, n < 0 ? strerror((int)-n) : "bytes");
	free(got);
	free(old);
}

/* The daemon's own changes of every kind (write, truncate, fallocate,
 * times, mode, a hard link, a rename) are not taken for a change beside
 * the mount: the snapshot stays valid and reads its bytes, also after a
 * remount. */
Test(life, own_changes_through_the_mount_keep_the_snapshot_valid)
{
	fx_mount(NULL);
	unsigned char *old;
	fill_seed("f", 100000, 9, &old);
	uint64_t id = pin1("f");
	unsigned char y[300];
	memset(y, 0x77, sizeof(y));
	int fd = open(MP("f"), O_RDWR);
	cr_assert(fd >= 0);
	pwrite_all(fd, y, sizeof(y), 90000);
	expect_view(id, "f", old, 100000);
	cr_assert_eq(ftruncate(fd, 120000), 0);
	int pr = fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 40960, 4096);
	cr_assert(pr == 0 || errno == EOPNOTSUPP, "punch: %s", strerror(errno)); /* sshfs: none */
	expect_view(id, "f", old, 100000);
	struct timespec ts[2] = {{.tv_sec = 1000000, .tv_nsec = 5},
				 {.tv_sec = 2000000, .tv_nsec = 7}};
	cr_assert_eq(futimens(fd, ts), 0);
	close(fd);
	expect_view(id, "f", old, 100000);
	cr_assert_eq(utimensat(AT_FDCWD, MP("f"), NULL, 0), 0); /* touch */
	cr_assert_eq(chmod(MP("f"), 0600), 0);
	cr_assert_eq(link(MP("f"), MP("f2")), 0);
	cr_assert_eq(rename(MP("f2"), MP("f3")), 0);
	expect_view(id, "f", old, 100000);
	struct snapfs_rec_snap rec;
	cr_assert(listed_snap(id, &rec));
	cr_assert_eq(rec.state, 0, "the daemon's own changes made the snapshot stale");
	cr_assert_eq(tu_umount(&m), 0);
	fx_mount(NULL);
	cr_assert(listed_snap(id, &rec));
	cr_assert_eq(rec.state, 0, "stale after a remount");
	expect_view(id, "f", old, 100000);
	free(old);
}

/* ---------------------------------------------------- open-time, freeze */

#define OSIZE (1024 * 1024)

Test(life, open_time_reader_keeps_bytes_at_open_across_rewrite)
{
	fx_mount("snapshot=open");
	unsigned char *old, *nb = xmalloc(OSIZE), *got = xmalloc(OSIZE + 1);
	fill_seed("f", OSIZE, 6, &old);
	/* warm the live page cache through a read-write open */
	int rw = open(MP("f"), O_RDWR);
	cr_assert(rw >= 0);
	cr_assert_eq(pread(rw, got, OSIZE, 0), OSIZE);
	int r = open(MP("f"), O_RDONLY);
	cr_assert(r >= 0);
	size_t done = 0;
	while (done < OSIZE / 2) {
		ssize_t n = read(r, got + done, OSIZE / 2 - done);
		cr_assert(n > 0, "read: %s", strerror(errno));
		done += (size_t)n;
	}
	tu_fill(nb, OSIZE, 66);
	int w = open(MP("f"), O_WRONLY);
	pwrite_all(w, nb, OSIZE, 0);
	close(w);
	ssize_t n;
	while ((n = read(r, got + done, OSIZE + 1 - done)) > 0)
		done += (size_t)n;
	cr_assert_eq(n, 0, "read: %s", strerror(errno));
	close(r);
	expect_bytes("open-time reader", got, done, old, OSIZE);
	/* later readers see the new bytes: read-only (own snapshot) and read-write (page cache) */
	expect_bytes("later read-only reader", got, (size_t)read_path(MP("f"), got, OSIZE + 1), nb,
		     OSIZE);
	cr_assert_eq(pread(rw, got, OSIZE, 0), OSIZE);
	expect_bytes("read-write reader (page cache)", got, OSIZE, nb, OSIZE);
	close(rw);
	/* the open-time snapshot went with the close */
	struct snapfs_rec_snap recs[8];
	for (int i = 0; i < 100 && list_snaps(recs, 8); i++)
		msleep(20);
	cr_assert_eq(list_snaps(recs, 8), 0, "open-time snapshot left after close");
	free(old);
	free(nb);
	free(got);
}

Test(life, freeze_keeps_fd_on_frozen_bytes_and_close_releases)
{
	fx_mount(NULL);
	unsigned char *old, *nb = xmalloc(OSIZE), *got = xmalloc(OSIZE + 1);
	fill_seed("f", OSIZE, 7, &old);
	int fd = open(MP("f"), O_RDONLY);
	cr_assert(fd >= 0);
	cr_assert_eq(read(fd, got, 1000), 1000); /* offset 1000, page cache warm */
	uint64_t id = 0;
	cr_assert_eq(snapfs_freeze(fd, &id), 0, "snapfs_freeze: %s", strerror(errno));
	cr_assert_neq(id, 0);
	struct snapfs_rec_snap rec;
	cr_assert(listed_snap(id, &rec), "frozen snapshot not listed");
	cr_assert_eq(rec.kind, 1, "frozen snapshot kind %u, expected ephemeral", rec.kind);
	cr_assert_eq(lseek(fd, 0, SEEK_CUR), 1000, "freeze moved the offset");
	tu_fill(nb, OSIZE, 77);
	int w = open(MP("f"), O_WRONLY);
	pwrite_all(w, nb, OSIZE, 0);
	close(w);
	ssize_t n = pread(fd, got, OSIZE + 1, 0);
	expect_bytes("frozen fd", got, n < 0 ? 0 : (size_t)n, old, OSIZE);
	expect_bytes("live file", got, (size_t)read_path(MP("f"), got, OSIZE + 1), nb, OSIZE);
	close(fd);
	for (int i = 0; i < 100 && listed_snap(id, NULL); i++)
		msleep(20);
	cr_assert(!listed_snap(id, NULL), "frozen snapshot %llu still listed after close",
		  (unsigned long long)id);
	free(old);
	free(nb);
	free(got);
}

/* A child holding an open-time snapshot and a frozen fd is SIGKILLed:
 * both are released and their preserved bytes freed. */
Test(life, ephemeral_snapshots_released_when_holder_is_killed)
{
	fx_mount("snapshot=open");
	fill_seed("a", 500000, 8, NULL);
	fill_seed("b", 500000, 9, NULL);
	int pfd[2];
	cr_assert_eq(pipe(pfd), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		int fa = open(MP("a"), O_RDONLY); /* open-time snapshot */
		int fb = open(MP("b"), O_RDWR);	  /* not snapshotted... */
		uint64_t id = 0;
		char c = (fa >= 0 && fb >= 0 && snapfs_freeze(fb, &id) == 0)
			     ? 'y'
			     : 'n'; /* ...until now */
		if (write(pfd[1], &c, 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(pfd[1]);
	char c = 0;
	cr_assert_eq(read(pfd[0], &c, 1), 1);
	close(pfd[0]);
	if (c != 'y') {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		cr_assert_fail("the child could not open and freeze");
	}
	struct snapfs_rec_snap recs[8];
	size_t n = list_snaps(recs, 8);
	int eph = 0;
	for (size_t i = 0; i < n; i++)
		eph += recs[i].kind == 1;
	if (eph != 2) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		cr_assert_fail("%d ephemeral snapshots listed while the child holds 2", eph);
	}
	/* overwrite both: the snapshots now hold preserved bytes */
	fill_seed("a", 500000, 80, NULL);
	int w = open(MP("b"), O_WRONLY);
	unsigned char *nb = xmalloc(500000);
	tu_fill(nb, 500000, 90);
	pwrite_all(w, nb, 500000, 0);
	close(w);
	free(nb);
	struct snapfs_rec_stats s = get_stats();
	uint64_t held = s.bytes_preserved;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	for (int i = 0; i < 200 && (list_snaps(recs, 8) || get_stats().bytes_preserved); i++)
		msleep(20);
	n = list_snaps(recs, 8);
	cr_assert_eq(n, 0, "%zu snapshots left after the holder was killed (first %llu, kind %u)",
		     n, n ? (unsigned long long)recs[0].id : 0ull, n ? recs[0].kind : 0);
	s = get_stats();
	cr_assert(held >= 2 * 400000, "only %llu bytes preserved while held",
		  (unsigned long long)held);
	cr_assert_eq(s.bytes_preserved, 0, "%llu bytes still preserved",
		     (unsigned long long)s.bytes_preserved);
}

Test(life, release_frees_space_in_block_file)
{
	fx_mount(NULL);
	const size_t len = 4 * 1024 * 1024;
	fill_seed("f", len, 10, NULL);
	uint64_t id = pin1("f");
	unsigned char *nb = xmalloc(len);
	tu_fill(nb, len, 11);
	int w = open(MP("f"), O_WRONLY);
	pwrite_all(w, nb, len, 0);
	close(w);
	free(nb);
	struct snapfs_rec_stats s = get_stats();
	cr_assert(s.bytes_preserved >= len, "bytes_preserved %llu after overwriting a pinned 4 MiB",
		  (unsigned long long)s.bytes_preserved);
	struct stat st;
	cr_assert_eq(stat(SP(".snapfs/blocks"), &st), 0, "stat blocks: %s", strerror(errno));
	cr_assert(st.st_blocks * 512 >= (blkcnt_t)len, "block file holds %lld bytes",
		  (long long)st.st_blocks * 512);
	release(id);
	s = get_stats();
	cr_assert_eq(s.bytes_preserved, 0, "bytes_preserved %llu after release",
		     (unsigned long long)s.bytes_preserved);
	cr_assert_eq(s.snapshots, 0);
	cr_assert_eq(stat(SP(".snapfs/blocks"), &st), 0);
	cr_assert(st.st_blocks * 512 <= 64 * 1024,
		  "block file still holds %lld bytes after release", (long long)st.st_blocks * 512);
}
