// SPDX-License-Identifier: MIT
/*
 * A bounded concurrency soak through the mount: writer threads rewrite
 * their files in whole-file generations (every 4 KiB block stamped with
 * writer, generation and block), readers read the live files, and pin
 * loops pin several files at once, verify each snapshot is exactly one
 * generation the writer had between just before and just after the pin,
 * verify it again later (it must not change), and release it. ~10 s;
 * SNAPFS_LONG=1 runs 120 s. A deadlock trips the alarm.
 */
#include "snaputil.h"

#include <pthread.h>
#include <stdarg.h>

TestSuite(soak, .init = fx_setup, .fini = fx_teardown, .timeout = 600);

#define NW    3
#define NR    2
#define NP    2
#define BLK   4096
#define NBLK  16
#define FSIZE (BLK * NBLK)

struct stamp {
	uint64_t writer, gen, blk, check;
};

struct wstate {
	uint64_t started; /* generation being written (atomics) */
	uint64_t done;	  /* last generation fully written */
};

static struct wstate ws[NW];
static volatile int stop;
static uint64_t pins, reads, verified;
static char failure[512];

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (!failure[0])
		vsnprintf(failure, sizeof(failure), fmt, ap);
	va_end(ap);
	stop = 1;
}

static void gen_make(unsigned char *buf, uint64_t w, uint64_t g)
{
	for (uint64_t b = 0; b < NBLK; b++) {
		unsigned char *p = buf + b * BLK;
		tu_fill(p, BLK, (w << 48) ^ (g << 8) ^ b);
		struct stamp s = {w, g, b, w * 31 + g * 17 + b};
		memcpy(p, &s, sizeof(s));
	}
}

static void fname(char *buf, size_t len, int w)
{
	snprintf(buf, len, "w%d", w);
}

static void *writer(void *p)
{
	int w = (int)(intptr_t)p;
	char n[16];
	fname(n, sizeof(n), w);
	unsigned char *buf = malloc(FSIZE);
	int fd = open(MP(n), O_WRONLY);
	for (uint64_t g = 2; !stop; g++) {
		gen_make(buf, (uint64_t)w, g);
		__atomic_store_n(&ws[w].started, g, __ATOMIC_SEQ_CST);
		if (pwrite(fd, buf, FSIZE, 0) != FSIZE) {
			fail("writer %d: pwrite: %s", w, strerror(errno));
			break;
		}
		__atomic_store_n(&ws[w].done, g, __ATOMIC_SEQ_CST);
		if (g % 64 == 0)
			usleep(200);
	}
	close(fd);
	free(buf);
	return NULL;
}

/* Live reads: every block is a block some generation of this writer wrote
 * at this place, not later than what the writer has started. */
static void *reader(void *p)
{
	(void)p;
	unsigned char *buf = malloc(FSIZE);
	uint64_t s = 77;
	while (!stop) {
		int w = (int)(tu_rand(&s) % NW);
		char n[16];
		fname(n, sizeof(n), w);
		int fd = open(MP(n), O_RDONLY);
		if (fd < 0) {
			fail("reader: open: %s", strerror(errno));
			break;
		}
		ssize_t r = pread(fd, buf, FSIZE, 0);
		close(fd);
		if (r != FSIZE) {
			fail("reader: pread %zd: %s", r, strerror(errno));
			break;
		}
		uint64_t hi = __atomic_load_n(&ws[w].started, __ATOMIC_SEQ_CST);
		for (uint64_t b = 0; b < NBLK; b++) {
			struct stamp st;
			memcpy(&st, buf + b * BLK, sizeof(st));
			/* (the page cache may serve a block mid-copy: no more is
			 * promised for live reads than the fields that never change) */
			if (st.writer != (uint64_t)w || st.blk != b || st.gen > hi) {
				fail("live read of w%d block %llu: stamp w%llu g%llu b%llu "
				     "(started %llu)",
				     w, (unsigned long long)b, (unsigned long long)st.writer,
				     (unsigned long long)st.gen, (unsigned long long)st.blk,
				     (unsigned long long)hi);
				break;
			}
		}
		__atomic_add_fetch(&reads, 1, __ATOMIC_RELAXED);
	}
	free(buf);
	return NULL;
}

/* The snapshot of writer w's file is exactly one generation in [lo, hi]. */
static int snap_gen(uint64_t id, int w, uint64_t lo, uint64_t hi, unsigned char *buf,
		    unsigned char *want, uint64_t *gen)
{
	char n[16];
	fname(n, sizeof(n), w);
	char vp[1100];
	snprintf(vp, sizeof(vp), "%s/.snapshots/%llu/%s", mnt, (unsigned long long)id, n);
	ssize_t r = tu_read_file(vp, buf, FSIZE + 1);
	if (r != FSIZE) {
		fail("snapshot %llu of %s: read %zd (%s)", (unsigned long long)id, n, r,
		     r < 0 ? strerror((int)-r) : "size");
		return -1;
	}
	struct stamp st;
	memcpy(&st, buf, sizeof(st));
	if (st.gen < lo || st.gen > hi) {
		fail("snapshot %llu of %s: generation %llu, the writer was between %llu and %llu",
		     (unsigned long long)id, n, (unsigned long long)st.gen, (unsigned long long)lo,
		     (unsigned long long)hi);
		return -1;
	}
	gen_make(want, (uint64_t)w, st.gen);
	for (size_t i = 0; i < FSIZE; i++)
		if (buf[i] != want[i]) {
			fail("snapshot %llu of %s (generation %llu): byte %zu differs (block %zu)",
			     (unsigned long long)id, n, (unsigned long long)st.gen, i, i / BLK);
			return -1;
		}
	*gen = st.gen;
	return 0;
}

static void *pinner(void *p)
{
	uint64_t s = 1000 + (uint64_t)(intptr_t)p;
	unsigned char *buf = malloc(FSIZE + 1), *want = malloc(FSIZE);
	enum { HOLD = 4 };
	struct held {
		uint64_t id;
		uint64_t gen[NW];
		int used;
	} h[HOLD] = {0};
	int slot = 0;
	while (!stop) {
		/* pin all writers' files at once */
		const char *paths[NW];
		char pb[NW][1024];
		uint64_t lo[NW], hi[NW];
		for (int w = 0; w < NW; w++) {
			char n[16];
			fname(n, sizeof(n), w);
			tu_path(pb[w], sizeof(pb[w]), mnt, n);
			paths[w] = pb[w];
			lo[w] = __atomic_load_n(&ws[w].done, __ATOMIC_SEQ_CST);
		}
		uint64_t id;
		if (snapfs_pin(paths, NW, NULL, &id)) {
			fail("pin: %s", strerror(errno));
			break;
		}
		for (int w = 0; w < NW; w++)
			hi[w] = __atomic_load_n(&ws[w].started, __ATOMIC_SEQ_CST);
		__atomic_add_fetch(&pins, 1, __ATOMIC_RELAXED);
		struct held *x = &h[slot];
		/* the slot's previous snapshot must still read what it read then */
		if (x->used) {
			for (int w = 0; w < NW && !stop; w++) {
				uint64_t g;
				snap_gen(x->id, w, x->gen[w], x->gen[w], buf, want, &g);
			}
			if (snapfs_release(mnt, x->id))
				fail("release %llu: %s", (unsigned long long)x->id,
				     strerror(errno));
			__atomic_add_fetch(&verified, 1, __ATOMIC_RELAXED);
		}
		x->id = id;
		x->used = 1;
		for (int w = 0; w < NW && !stop; w++)
			snap_gen(id, w, lo[w], hi[w], buf, want, &x->gen[w]);
		slot = (slot + 1) % HOLD;
		if (tu_rand(&s) % 4 == 0)
			usleep(1000);
	}
	for (int i = 0; i < HOLD; i++)
		if (h[i].used)
			snapfs_release(mnt, h[i].id);
	free(buf);
	free(want);
	return NULL;
}

Test(soak, writers_readers_and_pin_loops_every_snapshot_checked)
{
	const char *ss = getenv("SNAPFS_SOAK_SECS");
	int secs = ss ? atoi(ss) : getenv("SNAPFS_LONG") ? 120 : 10;
	alarm((unsigned)secs + 60); /* a deadlock kills the test */
	fx_mount(NULL);
	unsigned char *buf = xmalloc(FSIZE);
	for (int w = 0; w < NW; w++) {
		char n[16];
		fname(n, sizeof(n), w);
		gen_make(buf, (uint64_t)w, 1);
		write_path(MP(n), buf, FSIZE);
		ws[w].started = ws[w].done = 1;
	}
	free(buf);
	pthread_t tw[NW], tr[NR], tp[NP];
	for (int i = 0; i < NW; i++)
		pthread_create(&tw[i], NULL, writer, (void *)(intptr_t)i);
	for (int i = 0; i < NR; i++)
		pthread_create(&tr[i], NULL, reader, NULL);
	for (int i = 0; i < NP; i++)
		pthread_create(&tp[i], NULL, pinner, (void *)(intptr_t)i);
	for (int t = 0; t < secs * 10 && !stop; t++)
		msleep(100);
	stop = 1;
	for (int i = 0; i < NW; i++)
		pthread_join(tw[i], NULL);
	for (int i = 0; i < NR; i++)
		pthread_join(tr[i], NULL);
	for (int i = 0; i < NP; i++)
		pthread_join(tp[i], NULL);
	alarm(0);
	cr_assert(!failure[0], "%s", failure);
	uint64_t gens = 0;
	for (int w = 0; w < NW; w++)
		gens += ws[w].done;
	cr_log_info("soak %d s: %llu generations, %llu pins, %llu re-verified, %llu live reads",
		    secs, (unsigned long long)gens, (unsigned long long)pins,
		    (unsigned long long)verified, (unsigned long long)reads);
	cr_assert(pins > 20 && gens > 100 && reads > 20,
		  "too little happened: %llu pins, %llu generations, %llu reads",
		  (unsigned long long)pins, (unsigned long long)gens, (unsigned long long)reads);
	struct snapfs_rec_snap recs[8];
	cr_assert_eq(list_snaps(recs, 8), 0, "snapshots left after the soak");
	struct snapfs_rec_stats s = get_stats();
	cr_assert_eq(s.bytes_preserved, 0, "%llu bytes preserved after every release",
		     (unsigned long long)s.bytes_preserved);
}

/*
 * One write(2) is one operation, whatever the number of FUSE requests the
 * kernel cuts it into (a write larger than max_write always is several; a
 * write whose source page faults mid-copy can end a request mid-page): a
 * pin never lands between them. A writer rewrites an 8 MiB file with single
 * pwrites, each stamping every 4 KiB block with its generation; pins in a
 * loop must each see exactly one generation.
 */
#define BIG_BLKS 2048 /* 8 MiB: several max_write-sized requests */

static void big_make(unsigned char *buf, uint64_t g)
{
	for (uint64_t b = 0; b < BIG_BLKS; b++) {
		uint64_t *p = (uint64_t *)(void *)(buf + b * BLK);
		for (size_t i = 0; i < BLK / sizeof(uint64_t); i++)
			p[i] = g * 1000003 + b;
	}
}

static void *big_writer(void *p)
{
	(void)p;
	unsigned char *buf = malloc((size_t)BIG_BLKS * BLK);
	int fd = open(MP("d/big"), O_WRONLY);
	for (uint64_t g = 2; !stop; g++) {
		big_make(buf, g);
		if (pwrite(fd, buf, (size_t)BIG_BLKS * BLK, 0) != (ssize_t)BIG_BLKS * BLK) {
			fail("big writer: pwrite: %s", strerror(errno));
			break;
		}
		__atomic_store_n(&ws[0].done, g, __ATOMIC_SEQ_CST);
	}
	close(fd);
	free(buf);
	return NULL;
}

enum split_mode { BY_PIN, BY_TREE_PIN, BY_FREEZE, BY_OPEN };

/* Whether buf (the file as some snapshot shows it) is one write's bytes. */
static int one_write(const unsigned char *buf, const char *what)
{
	uint64_t g0 = *(const uint64_t *)(const void *)buf / 1000003;
	for (uint64_t b = 0; b < BIG_BLKS; b++) {
		const uint64_t *q = (const uint64_t *)(const void *)(buf + b * BLK);
		if (q[0] != g0 * 1000003 + b || q[BLK / 8 - 1] != q[0]) {
			fail("%s: block 0 is of write %llu, block %llu of write %llu: "
			     "the snapshot was taken inside one pwrite",
			     what, (unsigned long long)g0, (unsigned long long)b,
			     (unsigned long long)((q[0] - b) / 1000003));
			return -1;
		}
	}
	return 0;
}

/* Read all of fd from offset 0. */
static ssize_t read_fd_all(int fd, unsigned char *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t k = pread(fd, buf + got, len - got, (off_t)got);
		if (k <= 0)
			return k < 0 ? -errno : (ssize_t)got;
		got += (size_t)k;
	}
	return (ssize_t)got;
}

static void split_run(enum split_mode mode)
{
	const char *ss = getenv("SNAPFS_SOAK_SECS");
	int secs = ss ? atoi(ss) : getenv("SNAPFS_LONG") ? 60 : 4;
	alarm((unsigned)secs + 120);
	fx_mount(mode == BY_OPEN ? "snapshot=open" : NULL);
	size_t len = (size_t)BIG_BLKS * BLK;
	unsigned char *buf = xmalloc(len + 1);
	big_make(buf, 1);
	cr_assert_eq(mkdir(MP("d"), 0755), 0);
	write_path(MP("d/big"), buf, len);
	ws[0].done = 1;
	pthread_t t;
	pthread_create(&t, NULL, big_writer, NULL);
	const char *path = MP("d/big"), *dir = MP("d");
	uint64_t n = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!stop) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (t1.tv_sec - t0.tv_sec >= secs)
			break;
		char what[64];
		snprintf(what, sizeof(what), "snapshot %llu", (unsigned long long)n);
		ssize_t r;
		if (mode == BY_PIN || mode == BY_TREE_PIN) {
			uint64_t id;
			int rc = mode == BY_PIN
				     ? snapfs_pin(&path, 1, NULL, &id)
				     : snapfs_pin_ex(&dir, 1, NULL, SNAPFS_RECURSIVE, 0, &id);
			if (rc) {
				fail("pin: %s", strerror(errno));
				break;
			}
			char vp[1100];
			snprintf(vp, sizeof(vp), "%s/.snapshots/%llu/d/big", mnt,
				 (unsigned long long)id);
			r = tu_read_file(vp, buf, len + 1);
			if (snapfs_release(mnt, id))
				fail("release: %s", strerror(errno));
		} else {
			int fd = open(path, O_RDONLY);
			uint64_t id;
			if (fd < 0 || (mode == BY_FREEZE && snapfs_freeze(fd, &id))) {
				fail("open/freeze: %s", strerror(errno));
				break;
			}
			r = read_fd_all(fd, buf, len);
			close(fd);
		}
		if (r != (ssize_t)len)
			fail("%s: read %zd", what, r);
		else
			one_write(buf, what);
		n++;
	}
	stop = 1;
	pthread_join(t, NULL);
	alarm(0);
	free(buf);
	cr_assert(!failure[0], "%s", failure);
	cr_assert(n > 0);
	cr_log_info(
	    "%llu snapshots of an 8 MiB file under %llu whole-file pwrites, none inside one",
	    (unsigned long long)n, (unsigned long long)ws[0].done);
}

Test(soak, a_pin_never_lands_inside_one_write_call)
{
	split_run(BY_PIN);
}

Test(soak, a_tree_pin_never_lands_inside_one_write_call)
{
	split_run(BY_TREE_PIN);
}

Test(soak, a_freeze_never_lands_inside_one_write_call)
{
	split_run(BY_FREEZE);
}

Test(soak, an_open_time_snapshot_never_lands_inside_one_write_call)
{
	split_run(BY_OPEN);
}
