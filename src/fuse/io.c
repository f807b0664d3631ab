// SPDX-License-Identifier: MIT
/*
 * Whole-buffer I/O for the daemon: loops over EINTR and short counts.
 */
#include "sfs_i.h"

#include <errno.h>
#include <unistd.h>

int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;
	while (len) {
		ssize_t k = pwrite(fd, p, len, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EIO;
		p += k;
		off += (uint64_t)k;
		len -= (size_t)k;
	}
	return 0;
}
