// SPDX-License-Identifier: MIT
/*
 * segdb: the seed thread's scenario with a deferred-I/O segment. A "database"
 * file of fixed 256-byte records is read into a segment in one gulp (the
 * call returns at once: nothing is loaded yet), lookups touch only the
 * pages of the records they read, a few records are modified, and the whole
 * image is written back with snapseg_write(), which writes only the pages
 * that changed. The segment's counters are printed after each step.
 *
 *   segdb FILE create NRECORDS     make a database (on a snapfs mount)
 *   segdb FILE run [LOOKUPS] [UPDATES]
 */
#include <snapfs.h>

#include <err.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct record {
	uint64_t key;
	uint64_t counter;
	char name[240];
};
_Static_assert(sizeof(struct record) == 256, "records are 256 bytes");

static void show(const char *step, struct snapseg *seg)
{
	struct snapseg_stats st;
	if (snapseg_stats(seg, &st))
		err(1, "snapseg_stats");
	printf("%-22s faults %-6" PRIu64 " loaded %-10" PRIu64 " written %-6" PRIu64
	       " skipped %-8" PRIu64 " snapshots %" PRIu64 "\n",
	       step, st.faults, st.bytes_loaded, st.pages_written, st.pages_skipped,
	       st.snapshots_held);
}

static int create(const char *path, uint64_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		err(1, "%s", path);
	struct record r;
	for (uint64_t i = 0; i < n; i++) {
		memset(&r, 0, sizeof(r));
		r.key = i;
		snprintf(r.name, sizeof(r.name), "record %" PRIu64, i);
		if (pwrite(fd, &r, sizeof(r), (off_t)(i * sizeof(r))) != sizeof(r))
			err(1, "write");
	}
	close(fd);
	printf("%s: %" PRIu64 " records, %" PRIu64 " bytes\n", path, n, n * sizeof(r));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		errx(2, "usage: segdb FILE create NRECORDS | segdb FILE run [LOOKUPS] [UPDATES]");
	if (!strcmp(argv[2], "create"))
		return create(argv[1], argc > 3 ? strtoull(argv[3], NULL, 10) : 1000000);
	unsigned lookups = argc > 3 ? (unsigned)atoi(argv[3]) : 1000;
	unsigned updates = argc > 4 ? (unsigned)atoi(argv[4]) : 10;

	int fd = open(argv[1], O_RDWR);
	struct stat st;
	if (fd < 0 || fstat(fd, &st))
		err(1, "%s", argv[1]);
	size_t size = (size_t)st.st_size, n = size / sizeof(struct record);
	if (n == 0)
		errx(1, "%s: no records", argv[1]);
	struct snapseg *seg = snapseg_create(size);
	if (!seg)
		err(1, "snapseg_create");
	struct record *db = snapseg_base(seg);

	/* One gulp: returns once the snapshot is pinned. */
	if (snapseg_read(seg, db, fd, size, 0) != (ssize_t)size)
		err(1, "snapseg_read");
	show("read whole file", seg);

	uint64_t rng = 0x9e3779b97f4a7c15ull, sum = 0;
	for (unsigned i = 0; i < lookups; i++) {
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		const struct record *r = &db[rng % n];
		if (r->key != rng % n)
			errx(1, "record %" PRIu64 " has key %" PRIu64, rng % n, r->key);
		sum += r->counter;
	}
	show("lookups", seg);

	for (unsigned i = 0; i < updates; i++) {
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		db[rng % n].counter++;
	}
	show("updates (in memory)", seg);

	if (snapseg_write(seg, db, fd, size, 0) != (ssize_t)size)
		err(1, "snapseg_write");
	show("write back", seg);
	printf("%zu records, %u lookups (counter sum %" PRIu64 "), %u updates\n", n, lookups, sum,
	       updates);
	snapseg_destroy(seg);
	close(fd);
	return 0;
}
