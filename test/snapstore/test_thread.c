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
