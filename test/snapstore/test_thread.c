// SPDX-License-Identifier: MIT
/*
 * Threads: writers on different files go through the hooks while a pinner
 * pins and releases and readers read snapshots. A snapshot must never change
 * (two reads of it at different times are equal) and never show a torn block
 * (writers write whole blocks whose every word names the same generation).
 */
#include "fixture.h"

#include <pthread.h>
#include <stdatomic.h>

#define TBS  4096
#define NW   3
#define NBLK 16
#define NSN  4

static struct store_file *wsf[NW];
static int wfd[NW];
static atomic_int stop;

struct tsnap {
	pthread_mutex_t mu;
	uint64_t id;	      /* 0: none */
	unsigned char *first; /* first read, per file */
};
static struct tsnap slots[NSN];
static atomic_long checks;

static void *writer(void *arg)
{
	int i = (int)(intptr_t)arg;
	uint64_t r = 77 + (uint64_t)i, gen = 1;
	uint64_t blk[TBS / 8];
	while (!atomic_load(&stop)) {
		unsigned b = (unsigned)(tu_rand(&r) % NBLK);
		gen++;
		for (size_t k = 0; k < TBS / 8; k++)
			blk[k] = gen << 8 | b;
		store_file_wrlock(wsf[i]);
		int rc = store_cow_range(wsf[i], wfd[i], (uint64_t)b * TBS, TBS);
		cr_assert_eq(rc, 0, "cow_range: %s", strerror(-rc));
		cr_assert_eq(pwrite(wfd[i], blk, TBS, (off_t)b * TBS), TBS);
		store_file_unlock(wsf[i]);
	}
	return NULL;
}

static void check_blocks(const unsigned char *buf, int file)
{
	for (int b = 0; b < NBLK; b++) {
		const uint64_t *w = (const uint64_t *)(buf + (size_t)b * TBS);
		for (size_t k = 1; k < TBS / 8; k++)
			if (w[k] != w[0])
				cr_assert_fail("file %d block %d torn: word %zu %#lx vs %#lx", file,
					       b, k, (unsigned long)w[k], (unsigned long)w[0]);
		cr_assert_eq(w[0] & 0xff, (uint64_t)b, "block %d holds block %lu's data", b,
			     (unsigned long)(w[0] & 0xff));
	}
}

static void read_all(uint64_t id, unsigned char *out)
{
	for (int i = 0; i < NW; i++) {
		ssize_t n = store_snap_read(fx_st, id, store_file_fid(wsf[i]),
					    out + (size_t)i * NBLK * TBS, NBLK * TBS, 0);
		cr_assert_eq(n, NBLK * TBS, "snapshot %lu read: %zd", (unsigned long)id, n);
		check_blocks(out + (size_t)i * NBLK * TBS, i);
	}
}

static void *pinner(void *arg)
{
	(void)arg;
	uint64_t r = 5;
	while (!atomic_load(&stop)) {
		struct tsnap *s = &slots[tu_rand(&r) % NSN];
		pthread_mutex_lock(&s->mu);
		if (s->id) {
			cr_assert_eq(store_release(fx_st, s->id), 0);
			s->id = 0;
		} else {
			struct store_pin p = {.kind =
						  tu_rand(&r) % 2 ? STORE_PINNED : STORE_EPHEMERAL};
			struct store_pin_file f[NW];
			char names[NW][8];
			for (int i = 0; i < NW; i++) {
				snprintf(names[i], sizeof(names[i]), "w%d", i);
				f[i] = (struct store_pin_file){wsf[i], wfd[i], names[i]};
			}
			cr_assert_eq(store_pin(fx_st, &p, f, NW, &s->id), 0);
			read_all(s->id, s->first);
		}
		pthread_mutex_unlock(&s->mu);
		usleep(500);
	}
	return NULL;
}

static void *reader(void *arg)
{
	uint64_t r = 9 + (uintptr_t)arg;
	unsigned char *buf = malloc((size_t)NW * NBLK * TBS);
	while (!atomic_load(&stop)) {
		struct tsnap *s = &slots[tu_rand(&r) % NSN];
		pthread_mutex_lock(&s->mu);
		if (s->id) {
			read_all(s->id, buf);
			cr_assert_arr_eq(buf, s->first, (size_t)NW * NBLK * TBS,
					 "snapshot %lu changed", (unsigned long)s->id);
			atomic_fetch_add(&checks, 1);
		}
		pthread_mutex_unlock(&s->mu);
	}
	free(buf);
	return NULL;
}

TestSuite(thread, .init = fx_setup, .fini = fx_teardown, .timeout = 60);

Test(thread, writers_pinner_readers)
{
	uint64_t init[TBS / 8];
	for (int i = 0; i < NW; i++) {
		char n[8];
		snprintf(n, sizeof(n), "w%d", i);
		wfd[i] = fx_file(n);
		for (int b = 0; b < NBLK; b++) {
			for (size_t k = 0; k < TBS / 8; k++)
				init[k] = (uint64_t)b;
			fx_pwrite(wfd[i], init, TBS, (off_t)b * TBS);
		}
		cr_assert_eq(store_file_get(fx_st, wfd[i], &wsf[i]), 0);
	}
	for (int i = 0; i < NSN; i++) {
		pthread_mutex_init(&slots[i].mu, NULL);
		slots[i].first = malloc((size_t)NW * NBLK * TBS);
	}
	pthread_t t[NW + 3];
	for (int i = 0; i < NW; i++)
		pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i);
	pthread_create(&t[NW], NULL, pinner, NULL);
	pthread_create(&t[NW + 1], NULL, reader, (void *)1);
	pthread_create(&t[NW + 2], NULL, reader, (void *)2);
	usleep(3 * 1000 * 1000);
	atomic_store(&stop, 1);
	for (int i = 0; i < NW + 3; i++)
		pthread_join(t[i], NULL);
	cr_assert_gt(atomic_load(&checks), 10, "readers checked only %ld snapshots",
		     atomic_load(&checks));
	fx_check();
	for (int i = 0; i < NSN; i++)
		if (slots[i].id)
			cr_assert_eq(store_release(fx_st, slots[i].id), 0);
	cr_assert_eq(fx_stats().extents, 0);
	fx_check();
	for (int i = 0; i < NW; i++) {
		store_file_put(wsf[i]);
		close(wfd[i]);
	}
}

/* ---- group commit ---- */

#define GW   4
#define GBLK 48

static struct store_file *gsf[GW];
static int gfd[GW];
static uint64_t gsnap;

/* Slow a group's sync down (as a disk would) so that hooks queue meanwhile. */
static void slow_copy(const char *point)
{
	if (!strcmp(point, "cow:sync"))
		usleep(3000);
}

static int mark_changed(void *arg, uint64_t off, uint64_t len)
{
	unsigned char *m = arg;
	for (uint64_t b = off / TBS; b < (off + len + TBS - 1) / TBS && b < GBLK; b++)
		m[b] = 1;
	return 0;
}

/* Each writer changes every block of its file once, each a first change
 * since the pin: when its hook returns, the block's row must be committed
 * (the snapshot reports it changed), before the live write. */
static void *gwriter(void *arg)
{
	int i = (int)(intptr_t)arg;
	uint64_t blk[TBS / 8];
	for (int b = 0; b < GBLK; b++) {
		for (size_t k = 0; k < TBS / 8; k++)
			blk[k] = 1000u + (uint64_t)b;
		store_file_wrlock(gsf[i]);
		int rc = store_cow_range(gsf[i], gfd[i], (uint64_t)b * TBS, TBS);
		cr_assert_eq(rc, 0, "cow_range: %s", strerror(-rc));
		/* (the check reads under the file's read lock; no one else
		 * changes or pins this file meanwhile) */
		store_file_unlock(gsf[i]);
		unsigned char m[GBLK] = {0};
		cr_assert_eq(
		    store_snap_changed(fx_st, gsnap, store_file_fid(gsf[i]), mark_changed, m), 0);
		cr_assert(m[b], "file %d block %d: the hook returned before its row committed", i,
			  b);
		store_file_wrlock(gsf[i]);
		cr_assert_eq(pwrite(gfd[i], blk, TBS, (off_t)b * TBS), TBS);
		store_file_unlock(gsf[i]);
	}
	return NULL;
}

Test(thread, concurrent_first_changes_commit_in_groups)
{
	uint64_t init[TBS / 8];
	struct store_pin_file f[GW];
	char names[GW][8];
	for (int i = 0; i < GW; i++) {
		snprintf(names[i], sizeof(names[i]), "g%d", i);
		gfd[i] = fx_file(names[i]);
		for (int b = 0; b < GBLK; b++) {
			for (size_t k = 0; k < TBS / 8; k++)
				init[k] = (uint64_t)(i * 100 + b);
			fx_pwrite(gfd[i], init, TBS, (off_t)b * TBS);
		}
		cr_assert_eq(store_file_get(fx_st, gfd[i], &gsf[i]), 0);
		f[i] = (struct store_pin_file){gsf[i], gfd[i], names[i]};
	}
	struct store_pin p = {.kind = STORE_PINNED};
	cr_assert_eq(store_pin(fx_st, &p, f, GW, &gsnap), 0);
	store_set_test_hook(slow_copy);
	pthread_t t[GW];
	for (int i = 0; i < GW; i++)
		pthread_create(&t[i], NULL, gwriter, (void *)(intptr_t)i);
	for (int i = 0; i < GW; i++)
		pthread_join(t[i], NULL);
	store_set_test_hook(NULL);
	struct store_stats s = fx_stats();
	cr_assert_eq(s.cow_copies, GW * GBLK);
	cr_assert_lt(s.cow_commits, s.cow_copies * 3 / 4,
		     "%lu commits for %lu first changes: no group commit",
		     (unsigned long)s.cow_commits, (unsigned long)s.cow_copies);
	cr_log_info("group commit: %lu commits for %lu first changes", (unsigned long)s.cow_commits,
		    (unsigned long)s.cow_copies);
	uint64_t got[TBS / 8];
	for (int i = 0; i < GW; i++)
		for (int b = 0; b < GBLK; b++) {
			cr_assert_eq(store_snap_read(fx_st, gsnap, store_file_fid(gsf[i]), got, TBS,
						     (uint64_t)b * TBS),
				     TBS);
			cr_assert_eq(got[0], (uint64_t)(i * 100 + b), "file %d block %d", i, b);
			cr_assert_eq(got[TBS / 8 - 1], (uint64_t)(i * 100 + b));
		}
	fx_check();
	cr_assert_eq(store_release(fx_st, gsnap), 0);
	for (int i = 0; i < GW; i++) {
		store_file_put(gsf[i]);
		close(gfd[i]);
	}
}
