// SPDX-License-Identifier: MIT
/*
 * snapbench: the cost of snapshots through a snapfs mount, measured side by
 * side in one run (ratios, since these machines are noisy):
 *  - pin time through the control channel for a 4 KiB and a 4 GiB file;
 *  - write throughput to a file with a live snapshot against none (first
 *    overwrite copies, second does not), 1 MiB sequential and 4 KiB random;
 *  - reads from MNT/.snapshots against reads of the live file (cold cache).
 * usage: snapbench MNT [SIZE_MIB]
 */
#include <snapfs.h>

#include <err.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fill_file(const char *path, size_t size, int byte)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		err(1, "%s", path);
	char *buf = malloc(1 << 20);
	memset(buf, byte, 1 << 20);
	for (size_t off = 0; off < size; off += 1 << 20)
		if (pwrite(fd, buf, 1 << 20, (off_t)off) != 1 << 20)
			err(1, "write %s", path);
	free(buf);
	close(fd);
}

/* MiB/s of writing size bytes in bs-sized writes (random offsets if rnd). */
static double write_rate(const char *path, size_t size, size_t bs, int rnd, int byte)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		err(1, "%s", path);
	char *buf = malloc(bs);
	memset(buf, byte, bs);
	size_t n = size / bs;
	uint64_t s = 88172645463325252ull;
	double t0 = now();
	for (size_t i = 0; i < n; i++) {
		size_t blk = i;
		if (rnd) {
			s ^= s << 13, s ^= s >> 7, s ^= s << 17;
			blk = s % n;
		}
		if (pwrite(fd, buf, bs, (off_t)(blk * bs)) != (ssize_t)bs)
			err(1, "write");
	}
	fsync(fd);
	double t = now() - t0;
	free(buf);
	close(fd);
	return size / 1048576.0 / t;
}

static double read_rate(const char *path, size_t size)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		err(1, "%s", path);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); /* cold page cache */
	char *buf = malloc(1 << 20);
	double t0 = now();
	size_t got = 0;
	ssize_t r;
	while ((r = read(fd, buf, 1 << 20)) > 0)
		got += (size_t)r;
	double t = now() - t0;
	if (got != size)
		errx(1, "%s: read %zu of %zu bytes", path, got, size);
	free(buf);
	close(fd);
	return size / 1048576.0 / t;
}

static uint64_t pin1(const char *path, double *secs)
{
	const char *p[1] = {path};
	uint64_t id;
	double t0 = now();
	if (snapfs_pin(p, 1, "bench", &id))
		err(1, "pin %s", path);
	*secs = now() - t0;
	return id;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		errx(2, "usage: snapbench MNT [SIZE_MIB]");
	const char *mnt = argv[1];
	size_t size = (size_t)(argc > 2 ? atol(argv[2]) : 256) << 20;
	char small[4096], big[4096], a[4096], b[4096];
	snprintf(small, sizeof(small), "%s/pin-4k", mnt);
	snprintf(big, sizeof(big), "%s/pin-4g", mnt);
	snprintf(a, sizeof(a), "%s/plain.dat", mnt);
	snprintf(b, sizeof(b), "%s/snapped.dat", mnt);

	/* Pin time: median of 9 pins each. */
	fill_file(small, 4096, 'a');
	int fd = open(big, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || fallocate(fd, 0, 0, 4ull << 30))
		err(1, "fallocate 4 GiB");
	close(fd);
	double ts[9], tb[9];
	for (int i = 0; i < 9; i++) {
		uint64_t id = pin1(small, &ts[i]);
		snapfs_release(mnt, id);
		id = pin1(big, &tb[i]);
		snapfs_release(mnt, id);
	}
	for (int i = 0; i < 9; i++)
		for (int j = i + 1; j < 9; j++) {
			if (ts[j] < ts[i]) {
				double t = ts[i];
				ts[i] = ts[j];
				ts[j] = t;
			}
			if (tb[j] < tb[i]) {
				double t = tb[i];
				tb[i] = tb[j];
				tb[j] = t;
			}
		}
	unlink(big);
	unlink(small);
	printf("| pin, 4 KiB file | %.0f us |\n| pin, 4 GiB file | %.0f us |\n", ts[4] * 1e6,
	       tb[4] * 1e6);

	/* Writes with and without a live snapshot, same sizes, same run. */
	fill_file(a, size, 'x');
	fill_file(b, size, 'x');
	double t;
	uint64_t id = pin1(b, &t);
	double plain = write_rate(a, size, 1 << 20, 0, 'y');
	double first = write_rate(b, size, 1 << 20, 0, 'y');
	double second = write_rate(b, size, 1 << 20, 0, 'z');
	printf("| seq 1 MiB writes, no snapshot | %.0f MiB/s | 1.00 |\n", plain);
	printf(
	    "| seq 1 MiB writes, first overwrite under a snapshot (copies) | %.0f MiB/s | %.2f |\n",
	    first, first / plain);
	printf("| seq 1 MiB writes, second overwrite (no copy) | %.0f MiB/s | %.2f |\n", second,
	       second / plain);

	/* Snapshot reads against live reads. */
	char *view = snapfs_snapshot_path(b, id);
	double live = read_rate(a, size);
	double snap = read_rate(view, size);
	printf("| seq read, live file (cold) | %.0f MiB/s | 1.00 |\n", live);
	printf(
	    "| seq read, snapshot view (cold, all blocks from the store) | %.0f MiB/s | %.2f |\n",
	    snap, snap / live);
	snapfs_release(mnt, id);
	free(view);

	/* Random 4 KiB writes: a quarter of the file, fresh snapshot. */
	size_t rsize = size / 4;
	id = pin1(b, &t);
	double rplain = write_rate(a, rsize, 4096, 1, 'p');
	double rfirst = write_rate(b, rsize, 4096, 1, 'p');
	printf("| random 4 KiB writes, no snapshot | %.0f MiB/s | 1.00 |\n", rplain);
	printf("| random 4 KiB writes under a snapshot | %.0f MiB/s | %.2f |\n", rfirst,
	       rfirst / rplain);
	snapfs_release(mnt, id);
	unlink(a);
	unlink(b);
	return 0;
}
