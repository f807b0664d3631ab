// SPDX-License-Identifier: MIT
/*
 * Crash test: a forked child runs random writes, truncates, punches, pins and
 * releases on pinned files and dies by SIGKILL at random points: from inside
 * the store (between the block copy and the commit, after a commit, between a
 * release's commit and its punching) and from the parent at random moments.
 * The child reports each operation before starting it and once it is done,
 * over a pipe. The parent then reopens the store and checks every snapshot it
 * knows against its model; only snapshots holding the file of the operation
 * in flight may have turned stale (its live write may have happened after the
 * last tick), and the store must check clean. Many iterations, one store.
 * Then threads in the child commit their copy-on-write in groups and die
 * together: every pinned snapshot reads its pinned bytes (or is stale).
 */
#include "fixture.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#define CBS	512u
#define NF	3
#define MAXSZ	(8 * CBS)
#define MAXSNAP 8

enum { OP_WRITE, OP_TRUNC, OP_PUNCH, OP_PIN, OP_RELEASE };

struct msg {
	int done; /* 0: about to start, 1: done */
	int op;
	int slot[NF], nslot;
	uint64_t off, len, seed, id;
};

struct csnap {
	uint64_t id;
	int nslot, slot[NF];
	uint64_t fid[NF];
	unsigned char data[NF][MAXSZ];
	size_t size[NF];
};

static unsigned char live[NF][MAXSZ];
static size_t live_size[NF];
static struct csnap snaps[MAXSNAP];
static int nsnaps;
static uint64_t crng;
static unsigned kill_odds;

static void path_of(int i, char *p, size_t len)
{
	char n[16];
	snprintf(n, sizeof(n), "c%d", i);
	tu_path(p, len, fx_src, n);
}

static void hook(const char *point)
{
	(void)point;
	if (kill_odds && tu_rand(&crng) % kill_odds == 0)
		raise(SIGKILL);
}

static void send_msg(int fd, const struct msg *m)
{
	if (write(fd, m, sizeof(*m)) != (ssize_t)sizeof(*m))
		_exit(3);
}

#define CHILD_OK(x)                                                                                \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "child: %s failed at line %d\n", #x, __LINE__);            \
			_exit(2);                                                                  \
		}                                                                                  \
	} while (0)

static void child(int wfd, uint64_t seed)
{
	crng = seed;
	kill_odds = 40;
	store_set_test_hook(hook);
	struct store *st;
	struct store_opts o = {.block_size = CBS, .create = 1};
	CHILD_OK(store_open(fx_dir, fx_srcfd, &o, &st) == 0);
	int fd[NF];
	struct store_file *sf[NF];
	for (int i = 0; i < NF; i++) {
		char p[1024];
		path_of(i, p, sizeof(p));
		fd[i] = open(p, O_RDWR);
		CHILD_OK(fd[i] >= 0);
		CHILD_OK(store_file_get(st, fd[i], &sf[i]) == 0);
	}
	for (int n = 0; n < 400; n++) {
		struct msg m = {0};
		int i = (int)(tu_rand(&crng) % NF);
		unsigned r = (unsigned)(tu_rand(&crng) % 100);
		m.slot[0] = i;
		m.nslot = 1;
		if (r < 45) {
			m.op = OP_WRITE;
			m.off = tu_rand(&crng) % MAXSZ;
			m.len = 1 + tu_rand(&crng) % (3 * CBS);
			if (m.off + m.len > MAXSZ)
				m.len = MAXSZ - m.off;
			m.seed = tu_rand(&crng);
		} else if (r < 60) {
			m.op = OP_TRUNC;
			m.len = tu_rand(&crng) % (MAXSZ + 1);
		} else if (r < 68) {
			m.op = OP_PUNCH;
			m.off = tu_rand(&crng) % MAXSZ;
			m.len = 1 + tu_rand(&crng) % (3 * CBS);
		} else if (r < 84) {
			if (nsnaps == MAXSNAP)
				continue;
			m.op = OP_PIN;
			m.nslot = 1 + (int)(tu_rand(&crng) % NF);
			for (int k = 0; k < m.nslot; k++)
				m.slot[k] = (i + k) % NF;
		} else {
			if (!nsnaps)
				continue;
			m.op = OP_RELEASE;
			int k = (int)(tu_rand(&crng) % (unsigned)nsnaps);
			m.id = snaps[k].id;
			snaps[k] = snaps[--nsnaps];
		}
		send_msg(wfd, &m);
		if (m.op == OP_WRITE || m.op == OP_TRUNC || m.op == OP_PUNCH) {
			store_file_wrlock(sf[i]);
			if (m.op == OP_WRITE) {
				unsigned char buf[3 * CBS];
				tu_fill(buf, m.len, m.seed);
				CHILD_OK(store_cow_range(sf[i], fd[i], m.off, m.len) == 0);
				CHILD_OK(pwrite(fd[i], buf, m.len, (off_t)m.off) == (ssize_t)m.len);
			} else if (m.op == OP_TRUNC) {
				CHILD_OK(store_cow_truncate(sf[i], fd[i], m.len) == 0);
				CHILD_OK(ftruncate(fd[i], (off_t)m.len) == 0);
			} else {
				CHILD_OK(store_cow_range(sf[i], fd[i], m.off, m.len) == 0);
				CHILD_OK(fallocate(fd[i],
						   FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
						   (off_t)m.off, (off_t)m.len) == 0);
			}
			store_file_unlock(sf[i]);
		} else if (m.op == OP_PIN) {
			struct store_pin p = {.kind = STORE_PINNED};
			struct store_pin_file pf[NF];
			char names[NF][16];
			for (int k = 0; k < m.nslot; k++) {
				snprintf(names[k], sizeof(names[k]), "c%d", m.slot[k]);
				pf[k] = (struct store_pin_file){
				    .sf = sf[m.slot[k]], .fd = fd[m.slot[k]], .path = names[k]};
			}
			CHILD_OK(store_pin(st, &p, pf, (size_t)m.nslot, &m.id) == 0);
			snaps[nsnaps++].id = m.id;
		} else {
			CHILD_OK(store_release(st, m.id) == 0);
		}
		CHILD_OK(store_tick(st) == 0);
		m.done = 1;
		send_msg(wfd, &m);
	}
	/* survived every kill point: die anyway, uncleanly */
	raise(SIGKILL);
}

static void apply(const struct msg *m)
{
	int i = m->slot[0];
	switch (m->op) {
	case OP_WRITE:
		if (m->off > live_size[i])
			memset(live[i] + live_size[i], 0, m->off - live_size[i]);
		tu_fill(live[i] + m->off, m->len, m->seed);
		if (m->off + m->len > live_size[i])
			live_size[i] = m->off + m->len;
		break;
	case OP_TRUNC:
		if (m->len > live_size[i])
			memset(live[i] + live_size[i], 0, m->len - live_size[i]);
		live_size[i] = m->len;
		break;
	case OP_PUNCH:
		for (uint64_t k = m->off; k < m->off + m->len && k < live_size[i]; k++)
			live[i][k] = 0;
		break;
	}
}

static void add_snap(uint64_t id, const struct msg *m)
{
	cr_assert_lt(nsnaps, MAXSNAP);
	struct csnap *s = &snaps[nsnaps++];
	s->id = id;
	s->nslot = m->nslot;
	for (int k = 0; k < m->nslot; k++) {
		int i = m->slot[k];
		s->slot[k] = i;
		s->size[k] = live_size[i];
		memcpy(s->data[k], live[i], live_size[i]);
	}
}

static int in_flight_has(const struct msg *f, int have, int slot)
{
	return have && f->slot[0] == slot && f->op != OP_PIN && f->op != OP_RELEASE;
}

static int list_ids(void *arg, const struct store_snap *s)
{
	uint64_t *ids = arg;
	ids[++ids[0]] = s->id;
	return 0;
}

static void verify_snap(struct csnap *s, int may_be_stale, int iter)
{
	struct store_snap info;
	cr_assert_eq(store_snap_get(fx_st, s->id, &info), 0, "iter %d: snapshot %lu lost", iter,
		     (unsigned long)s->id);
	if (info.state == STORE_STALE) {
		cr_assert(may_be_stale, "iter %d: snapshot %lu stale without cause", iter,
			  (unsigned long)s->id);
		return;
	}
	unsigned char buf[MAXSZ + CBS];
	for (int k = 0; k < s->nslot; k++) {
		ssize_t n = store_snap_read(fx_st, s->id, s->fid[k], buf, sizeof(buf), 0);
		cr_assert_eq(n, (ssize_t)s->size[k],
			     "iter %d: snapshot %lu file c%d: read %zd want %zu", iter,
			     (unsigned long)s->id, s->slot[k], n, s->size[k]);
		for (size_t b = 0; b < s->size[k]; b++)
			if (buf[b] != s->data[k][b])
				cr_assert_fail(
				    "iter %d: snapshot %lu file c%d byte %zu: %#x want %#x", iter,
				    (unsigned long)s->id, s->slot[k], b, buf[b], s->data[k][b]);
	}
}

static uint64_t file_fid(int i)
{
	char p[1024];
	path_of(i, p, sizeof(p));
	int fd = open(p, O_RDONLY);
	struct store_file *sf;
	cr_assert_eq(store_file_get(fx_st, fd, &sf), 0);
	uint64_t fid = store_file_fid(sf);
	store_file_put(sf);
	close(fd);
	return fid;
}

static void setup_crash(void)
{
	fx_setup_bs(CBS);
}

TestSuite(crash, .init = setup_crash, .fini = fx_teardown, .timeout = 120);

Test(crash, sigkill_anywhere_loses_no_committed_snapshot)
{
	int iters = getenv("SNAPFS_LONG") ? 3000 : 300;
	uint64_t rng = 42;
	for (int i = 0; i < NF; i++) {
		char p[1024];
		path_of(i, p, sizeof(p));
		live_size[i] = 3 * CBS + 17 * (size_t)i;
		tu_fill(live[i], live_size[i], 100 + (uint64_t)i);
		cr_assert_eq(tu_write_file(p, live[i], live_size[i]), 0);
	}
	int died_inside = 0, died_outside = 0;
	for (int it = 0; it < iters; it++) {
		store_close(fx_st);
		fx_st = NULL;
		int pfd[2];
		cr_assert_eq(pipe(pfd), 0);
		uint64_t cseed = tu_rand(&rng);
		pid_t pid = fork();
		cr_assert(pid >= 0);
		if (pid == 0) {
			close(pfd[0]);
			child(pfd[1], cseed);
		}
		close(pfd[1]);
		/* the parent kills at a random message unless the store did first */
		unsigned kill_after = (unsigned)(tu_rand(&rng) % 300);
		struct msg m, flight = {0};
		int have_flight = 0;
		unsigned seen = 0;
		while (read(pfd[0], &m, sizeof(m)) == (ssize_t)sizeof(m)) {
			if (!m.done) {
				flight = m;
				have_flight = 1;
			} else {
				have_flight = 0;
				if (m.op == OP_PIN)
					add_snap(m.id, &m);
				else if (m.op == OP_RELEASE) {
					for (int k = 0; k < nsnaps; k++)
						if (snaps[k].id == m.id)
							snaps[k] = snaps[--nsnaps];
				} else
					apply(&m);
			}
			if (++seen == kill_after) {
				if (tu_rand(&rng) % 2)
					usleep((useconds_t)(tu_rand(&rng) % 300));
				kill(pid, SIGKILL);
			}
		}
		close(pfd[0]);
		int status;
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
			  "iter %d: child failed (status %#x)", it, status);
		if (seen >= kill_after)
			died_outside++;
		else
			died_inside++;

		fx_open_bs(CBS, 0);
		/* an in-flight pin may have committed: the one unknown snapshot */
		uint64_t ids[64] = {0};
		cr_assert_eq(store_snap_list(fx_st, list_ids, ids), 0);
		for (uint64_t k = 1; k <= ids[0]; k++) {
			int known = 0;
			for (int j = 0; j < nsnaps; j++)
				known |= snaps[j].id == ids[k];
			if (known)
				continue;
			cr_assert(have_flight && flight.op == OP_PIN,
				  "iter %d: unknown snapshot %lu", it, (unsigned long)ids[k]);
			add_snap(ids[k], &flight);
		}
		/* an in-flight release: done or not; either way the parent finishes it */
		if (have_flight && flight.op == OP_RELEASE) {
			for (int k = 0; k < nsnaps; k++)
				if (snaps[k].id == flight.id)
					snaps[k] = snaps[--nsnaps];
			int rc = store_release(fx_st, flight.id);
			cr_assert(rc == 0 || rc == -ENOENT, "iter %d: release: %s", it,
				  strerror(-rc));
		}
		for (int j = 0; j < nsnaps; j++) {
			struct csnap *s = &snaps[j];
			for (int k = 0; k < s->nslot; k++)
				s->fid[k] = file_fid(s->slot[k]);
			int may = 0;
			for (int k = 0; k < s->nslot; k++)
				may |= in_flight_has(&flight, have_flight, s->slot[k]);
			verify_snap(s, may, it);
		}
		for (int j = 0; j < nsnaps;) {
			struct store_snap info;
			store_snap_get(fx_st, snaps[j].id, &info);
			if (info.state == STORE_STALE) {
				cr_assert_eq(store_release(fx_st, snaps[j].id), 0);
				snaps[j] = snaps[--nsnaps];
			} else
				j++;
		}
		fx_check();
		/* resync the live model: an in-flight change may or may not have landed */
		for (int i = 0; i < NF; i++) {
			char p[1024];
			path_of(i, p, sizeof(p));
			ssize_t n = tu_read_file(p, live[i], MAXSZ);
			cr_assert(n >= 0);
			live_size[i] = (size_t)n;
		}
	}
	cr_assert_gt(died_inside, 0, "no kill ever hit a store kill point");
	cr_assert_gt(died_outside, 0);
	/* all released: nothing left behind */
	while (nsnaps)
		cr_assert_eq(store_release(fx_st, snaps[--nsnaps].id), 0);
	fx_check();
	cr_assert_eq(fx_stats().extents, 0);
}

/* ---- group commit: several writer threads die together ---- */

#define GNF   3
#define GNBLK 16

static void ghook(const char *point)
{
	if (!strcmp(point, "cow:sync"))
		usleep(200); /* let hooks queue behind the group */
	if (tu_rand(&crng) % 25 == 0)
		raise(SIGKILL);
}

static struct store *gst;
static struct store_file *gsf[GNF];
static int gfd[GNF];

/* Writes new bytes over random blocks of its file through the hooks. */
static void *gthread(void *arg)
{
	int i = (int)(intptr_t)arg;
	uint64_t r = (uint64_t)(intptr_t)arg * 7919 + (uint64_t)getpid();
	unsigned char b[CBS];
	for (int n = 0; n < 300; n++) {
		uint64_t blk = tu_rand(&r) % GNBLK;
		tu_fill(b, CBS, tu_rand(&r));
		store_file_wrlock(gsf[i]);
		CHILD_OK(store_cow_range(gsf[i], gfd[i], blk * CBS, CBS) == 0);
		CHILD_OK(pwrite(gfd[i], b, CBS, (off_t)(blk * CBS)) == CBS);
		store_file_unlock(gsf[i]);
	}
	return NULL;
}

static void gchild(uint64_t seed)
{
	crng = seed;
	struct store_opts o = {.block_size = CBS, .create = 1};
	CHILD_OK(store_open(fx_dir, fx_srcfd, &o, &gst) == 0);
	for (int i = 0; i < GNF; i++) {
		char p[1024], n[16];
		snprintf(n, sizeof(n), "g%d", i);
		tu_path(p, sizeof(p), fx_src, n);
		CHILD_OK((gfd[i] = open(p, O_RDWR)) >= 0);
		CHILD_OK(store_file_get(gst, gfd[i], &gsf[i]) == 0);
	}
	store_set_test_hook(ghook);
	pthread_t t[GNF];
	for (int i = 0; i < GNF; i++)
		CHILD_OK(pthread_create(&t[i], NULL, gthread, (void *)(intptr_t)i) == 0);
	for (int i = 0; i < GNF; i++)
		pthread_join(t[i], NULL);
	_exit(0);
}

Test(crash, sigkill_in_a_group_commit_keeps_every_pinned_byte)
{
	int iters = getenv("SNAPFS_LONG") ? 400 : 40;
	uint64_t rng = 4242;
	static unsigned char want[GNF][GNBLK * CBS], got[GNBLK * CBS + CBS];
	int killed = 0, checked = 0, stale = 0;
	for (int it = 0; it < iters; it++) {
		uint64_t id[GNF], fid[GNF];
		for (int i = 0; i < GNF; i++) {
			char p[1024], n[16];
			snprintf(n, sizeof(n), "g%d", i);
			tu_path(p, sizeof(p), fx_src, n);
			tu_fill(want[i], sizeof(want[i]), tu_rand(&rng));
			cr_assert_eq(tu_write_file(p, want[i], sizeof(want[i])), 0);
			int fd = open(p, O_RDONLY);
			struct store_file *sf;
			cr_assert_eq(store_file_get(fx_st, fd, &sf), 0);
			id[i] = fx_pin1(sf, fd, n, STORE_PINNED);
			fid[i] = store_file_fid(sf);
			store_file_put(sf);
			close(fd);
		}
		store_close(fx_st);
		fx_st = NULL;
		uint64_t cseed = tu_rand(&rng);
		pid_t pid = fork();
		cr_assert(pid >= 0);
		if (pid == 0)
			gchild(cseed);
		usleep((useconds_t)(tu_rand(&rng) % 20000));
		kill(pid, SIGKILL);
		int status;
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFSIGNALED(status) || (WIFEXITED(status) && !WEXITSTATUS(status)),
			  "iter %d: child failed (status %#x)", it, status);
		killed += WIFSIGNALED(status);
		fx_open_bs(CBS, 0);
		for (int i = 0; i < GNF; i++) {
			struct store_snap info;
			cr_assert_eq(store_snap_get(fx_st, id[i], &info), 0, "iter %d: lost", it);
			if (info.state == STORE_STALE) {
				stale++; /* a live write after the last record: never wrong bytes */
			} else {
				ssize_t n =
				    store_snap_read(fx_st, id[i], fid[i], got, sizeof(got), 0);
				cr_assert_eq(n, (ssize_t)sizeof(want[i]), "iter %d: read %zd", it,
					     n);
				for (size_t k = 0; k < sizeof(want[i]); k++)
					if (got[k] != want[i][k])
						cr_assert_fail(
						    "iter %d file g%d byte %zu: %#x want %#x", it,
						    i, k, got[k], want[i][k]);
				checked++;
			}
			cr_assert_eq(store_release(fx_st, id[i]), 0);
		}
		fx_check();
	}
	cr_log_info("group crash: %d of %d children killed, %d snapshots checked, %d stale", killed,
		    iters, checked, stale);
	cr_assert_gt(killed, iters / 2);
	cr_assert_gt(checked, iters, "too few snapshots checked (%d; %d stale)", checked, stale);
	cr_assert_eq(fx_stats().extents, 0);
}
