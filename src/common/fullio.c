// SPDX-License-Identifier: MIT
/*
 * The full-I/O loops of fullio.h. One loop each for reads and writes,
 * with or without an offset (off < 0 stands for "no offset": the
 * descriptor's file position moves instead).
 */
#include "fullio.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <unistd.h>

static ssize_t read_loop(int fd, char *buf, size_t len, off_t off)
{
	size_t got = 0;
	if (len > SSIZE_MAX)
		return -EINVAL;
	while (got < len) {
		ssize_t k = off < 0 ? read(fd, buf + got, len - got)
				    : pread(fd, buf + got, len - got, off + (off_t)got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		got += (size_t)k;
	}
	return (ssize_t)got;
}

static int write_loop(int fd, const char *buf, size_t len, off_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t k = off < 0 ? write(fd, buf + done, len - done)
				    : pwrite(fd, buf + done, len - done, off + (off_t)done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EIO;
		done += (size_t)k;
	}
	return 0;
}

ssize_t read_full(int fd, void *buf, size_t len)
{
	return read_loop(fd, buf, len, -1);
}

ssize_t pread_full(int fd, void *buf, size_t len, off_t off)
{
	if (off < 0)
		return -EINVAL;
	return read_loop(fd, buf, len, off);
}

int write_full(int fd, const void *buf, size_t len)
{
	return write_loop(fd, buf, len, -1);
}

int pwrite_full(int fd, const void *buf, size_t len, off_t off)
{
	if (off < 0)
		return -EINVAL;
	return write_loop(fd, buf, len, off);
}
