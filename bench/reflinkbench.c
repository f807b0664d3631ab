// SPDX-License-Identifier: MIT
/*
 * reflinkbench: the first overwrite of a file under a pin against the same
 * overwrite of a file without one, through a snapfs mount, side by side in
 * one run (REPS rounds, alternating which file goes first; medians). Run by
 * bench/reflink.sh on XFS and btrfs with the store beside SOURCE, once with
 * reflink copies and once with SNAPFS_REFLINK=0 (copies through memory).
 * usage: reflinkbench MNT [SIZE_MIB [REPS [BS_KIB]]]
 * Prints: plain MiB/s, pinned MiB/s, ratio (medians).
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

static void write_all(const char *path, size_t size, size_t bs, int byte, int flags)
{
	int fd = open(path, O_WRONLY | flags, 0644);
	if (fd < 0)
		err(1, "%s", path);
	char *buf = malloc(bs);
	memset(buf, byte, bs);
	for (size_t off = 0; off < size; off += bs)
		if (pwrite(fd, buf, bs, (off_t)off) != (ssize_t)bs)
			err(1, "write %s", path);
	if (fsync(fd))
		err(1, "fsync %s", path);
	free(buf);
	close(fd);
}

/* MiB/s of overwriting the whole file in bs-sized writes, fsync included. */
static double overwrite_rate(const char *path, size_t size, size_t bs, int byte)
{
	double t0 = now();
	write_all(path, size, bs, byte, 0);
	return size / 1048576.0 / (now() - t0);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		errx(2, "usage: reflinkbench MNT [SIZE_MIB [REPS [BS_KIB]]]");
	const char *mnt = argv[1];
	size_t size = (size_t)(argc > 2 ? atol(argv[2]) : 256) << 20;
	int reps = argc > 3 ? atoi(argv[3]) : 5;
	size_t bs = (size_t)(argc > 4 ? atol(argv[4]) : 1024) << 10;
	if (reps < 1 || reps > 64 || !bs || size % bs)
		errx(2, "bad REPS or BS_KIB");
	char a[4096], b[4096];
	snprintf(a, sizeof(a), "%s/plain.dat", mnt);
	snprintf(b, sizeof(b), "%s/pinned.dat", mnt);
	double plain[64], pinned[64], ratio[64];
	for (int r = 0; r < reps; r++) {
		write_all(a, size, 1 << 20, 'x', O_CREAT | O_TRUNC);
		write_all(b, size, 1 << 20, 'x', O_CREAT | O_TRUNC);
		const char *p[1] = {b};
		uint64_t id;
		if (snapfs_pin(p, 1, "reflinkbench", &id))
			err(1, "pin %s", b);
		if (r % 2) {
			pinned[r] = overwrite_rate(b, size, bs, 'y');
			plain[r] = overwrite_rate(a, size, bs, 'y');
		} else {
			plain[r] = overwrite_rate(a, size, bs, 'y');
			pinned[r] = overwrite_rate(b, size, bs, 'y');
		}
		ratio[r] = pinned[r] / plain[r];
		if (snapfs_release(mnt, id))
			err(1, "release");
		unlink(a);
		unlink(b);
	}
	printf("%.0f %.0f %.2f\n", median(plain, reps), median(pinned, reps), median(ratio, reps));
	return 0;
}
