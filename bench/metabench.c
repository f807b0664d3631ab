// SPDX-License-Identifier: MIT
/*
 * Metadata rates in DIR: create N empty files (open O_CREAT + close), stat
 * each, unlink each; one line per phase, "create|stat|unlink OPS/s". The
 * stat pass runs right after the creates, so a file system that caches
 * entries and attributes answers it from the kernel. Used by bench/peer.sh.
 *
 *   metabench DIR [N]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: metabench DIR [N]\n");
		return 2;
	}
	long n = argc > 2 ? strtol(argv[2], NULL, 10) : 10000;
	if (n <= 0) {
		fprintf(stderr, "metabench: bad N '%s'\n", argv[2]);
		return 2;
	}
	int dfd = open(argv[1], O_RDONLY | O_DIRECTORY);
	if (dfd < 0) {
		perror(argv[1]);
		return 1;
	}
	char name[32];
	struct stat st;
	const char *phase[3] = {"create", "stat", "unlink"};
	for (int p = 0; p < 3; p++) {
		double t0 = now();
		for (long i = 0; i < n; i++) {
			snprintf(name, sizeof(name), "m%07ld", i);
			int rc;
			if (p == 0) {
				int fd = openat(dfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC,
						0644);
				rc = fd < 0 ? -1 : close(fd);
			} else if (p == 1) {
				rc = fstatat(dfd, name, &st, 0);
			} else {
				rc = unlinkat(dfd, name, 0);
			}
			if (rc) {
				fprintf(stderr, "metabench: %s %s: ", phase[p], name);
				perror(NULL);
				return 1;
			}
		}
		double dt = now() - t0;
		printf("%s %.0f\n", phase[p], dt > 0 ? (double)n / dt : 0.0);
	}
	close(dfd);
	return 0;
}
