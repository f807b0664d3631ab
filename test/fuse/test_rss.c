// SPDX-License-Identifier: MIT
/*
 * The daemon's memory stays bounded under a long mixed load: writers
 * rewriting blocks of their files, a reader of the live files and the root
 * directory, and a pin loop that pins every file, reads each through the
 * snapshot view, and releases the snapshot, every 20 ms. The daemon's VmRSS
 * is sampled each second; after a warm-up (a fifth of the run, at least
 * 5 s) it may grow by at most RSS_GROWTH, and never exceed RSS_MAX.
 * 20 s by default; SNAPFS_LONG=1 (make check-long) runs 10 minutes;
 * SNAPFS_SOAK_SECS overrides both. In a sanitizer build the load runs but
 * the bounds are not checked: ASan's quarantine holds freed memory.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "snapfs.h"
#include "testutil.h"

#define NW	   4
#define FSIZE	   (256 * 1024)
#define RSS_GROWTH (2 * 1024)  /* KiB after warm-up */
#define RSS_MAX	   (64 * 1024) /* KiB */

static char *src, *mnt;
static struct tu_mount m;
static volatile int stop;
static uint64_t pins, writes, reads;
static char failure[512];

static void setup(void)
{
	umask(022);
	src = tu_tmpdir("rsrc");
	mnt = tu_tmpdir("rmnt");
}

static void teardown(void)
{
	tu_umount(&m);
	tu_rm_rf(src);
	rmdir(mnt);
	free(src);
	free(mnt);
}

TestSuite(rss, .init = setup, .fini = teardown, .timeout = 900);

static void fail(const char *what, int err)
{
	if (!failure[0])
		snprintf(failure, sizeof(failure), "%s: %s", what, strerror(err));
	stop = 1;
}

static void fpath(char *buf, size_t len, int w)
{
	snprintf(buf, len, "%s/f%d", mnt, w);
}

static void *writer(void *p)
{
	int w = (int)(intptr_t)p;
	char path[1100], blk[4096];
	fpath(path, sizeof(path), w);
	int fd = open(path, O_WRONLY);
	if (fd < 0) {
		fail("writer open", errno);
		return NULL;
	}
	uint64_t s = 1 + (uint64_t)w;
	while (!stop) {
		tu_fill(blk, sizeof(blk), tu_rand(&s));
		off_t off = (off_t)(tu_rand(&s) % (FSIZE / sizeof(blk))) * (off_t)sizeof(blk);
		if (pwrite(fd, blk, sizeof(blk), off) != (ssize_t)sizeof(blk)) {
			fail("writer pwrite", errno);
			break;
		}
		__atomic_add_fetch(&writes, 1, __ATOMIC_RELAXED);
		if (writes % 16 == 0)
			usleep(1000);
	}
	close(fd);
	return NULL;
}

static void *reader(void *p)
{
	(void)p;
	char *buf = malloc(FSIZE);
	char path[1100];
	for (int w = 0; !stop; w = (w + 1) % NW) {
		fpath(path, sizeof(path), w);
		if (tu_read_file(path, buf, FSIZE) != FSIZE) {
			fail("live read", errno);
			break;
		}
		struct stat st;
		stat(mnt, &st);
		__atomic_add_fetch(&reads, 1, __ATOMIC_RELAXED);
		usleep(2000);
	}
	free(buf);
	return NULL;
}

static void *pinner(void *p)
{
	(void)p;
	char paths[NW][1100];
	const char *pp[NW];
	for (int w = 0; w < NW; w++) {
		fpath(paths[w], sizeof(paths[w]), w);
		pp[w] = paths[w];
	}
	char *buf = malloc(FSIZE);
	while (!stop) {
		uint64_t id;
		int rc = snapfs_pin(pp, NW, NULL, &id);
		if (rc) {
			fail("pin", -rc);
			break;
		}
		for (int w = 0; w < NW; w++) {
			char vp[1200];
			snprintf(vp, sizeof(vp), "%s/.snapshots/%llu/f%d", mnt,
				 (unsigned long long)id, w);
			if (tu_read_file(vp, buf, FSIZE) != FSIZE) {
				fail("view read", errno);
				break;
			}
		}
		if ((rc = snapfs_release(mnt, id))) {
			fail("release", -rc);
			break;
		}
		__atomic_add_fetch(&pins, 1, __ATOMIC_RELAXED);
		usleep(20 * 1000);
	}
	free(buf);
	return NULL;
}

static long rss_kib(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long kib = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

Test(rss, daemon_rss_stays_bounded_under_writes_pins_and_view_reads)
{
	int secs = getenv("SNAPFS_LONG") ? 600 : 20;
	if (getenv("SNAPFS_SOAK_SECS"))
		secs = atoi(getenv("SNAPFS_SOAK_SECS"));
	int warm = secs / 5 < 5 ? 5 : secs / 5;
	cr_assert_eq(tu_mount(&m, src, mnt, NULL), 0);
	char *zero = calloc(1, FSIZE);
	for (int w = 0; w < NW; w++) {
		char path[1100];
		fpath(path, sizeof(path), w);
		cr_assert_eq(tu_write_file(path, zero, FSIZE), 0);
	}
	free(zero);
	pthread_t tw[NW], tr, tp;
	for (int w = 0; w < NW; w++)
		pthread_create(&tw[w], NULL, writer, (void *)(intptr_t)w);
	pthread_create(&tr, NULL, reader, NULL);
	pthread_create(&tp, NULL, pinner, NULL);
	long at_warm = -1, peak = 0, last = 0, first = rss_kib(m.pid);
	for (int t = 1; t <= secs && !stop; t++) {
		sleep(1);
		last = rss_kib(m.pid);
		if (last < 0) {
			fail("daemon gone", ESRCH);
			break;
		}
		if (t == warm)
			at_warm = last;
		if (t >= warm && last > peak)
			peak = last;
		if (t % 60 == 0)
			cr_log_info("rss: %d s: %ld KiB (%llu pins)", t, last,
				    (unsigned long long)pins);
	}
	stop = 1;
	for (int w = 0; w < NW; w++)
		pthread_join(tw[w], NULL);
	pthread_join(tr, NULL);
	pthread_join(tp, NULL);
	cr_assert(!failure[0], "%s", failure);
	cr_log_info("rss over %d s: start %ld KiB, after %d s warm-up %ld KiB, peak %ld KiB, end "
		    "%ld KiB; %llu pins, %llu writes, %llu reads",
		    secs, first, warm, at_warm, peak, last, (unsigned long long)pins,
		    (unsigned long long)writes, (unsigned long long)reads);
	cr_assert(pins > (uint64_t)secs, "too few pins: %llu", (unsigned long long)pins);
#if defined(__SANITIZE_ADDRESS__)
	cr_expect_eq(tu_umount(&m), 0);
	return;
#endif
	cr_expect_lt(peak - at_warm, RSS_GROWTH,
		     "daemon RSS grew %ld KiB after warm-up (%ld -> peak %ld KiB over %d s, %llu "
		     "pins)",
		     peak - at_warm, at_warm, peak, secs, (unsigned long long)pins);
	cr_expect_lt(peak, RSS_MAX, "daemon RSS peak %ld KiB", peak);
	cr_expect_eq(tu_umount(&m), 0);
}
