/* SPDX-License-Identifier: MIT */
/*
 * Full reads and writes: read(2), write(2), pread(2) and pwrite(2) in a
 * loop that retries after EINTR and goes on after a short count, so that a
 * caller sees either all of its bytes, the end of the file, or an error.
 * They call nothing but the system call and touch nothing but errno, so
 * they are async-signal-safe (libsnapfs' SIGBUS handler reads with
 * pread_full). Errors are returned as -errno; errno is left as the failing
 * call set it.
 */
#ifndef FULLIO_H
#define FULLIO_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Read len bytes (at off for pread_full). Returns the count read, fewer
 * than len only at the end of the file, or -errno when a call failed: the
 * bytes read before the failure are in buf but not counted, so a short
 * count always means the end of the file. -EINVAL for len > SSIZE_MAX or
 * a negative off.
 */
ssize_t read_full(int fd, void *buf, size_t len);
ssize_t pread_full(int fd, void *buf, size_t len, off_t off);

/*
 * Write all len bytes (at off for pwrite_full). 0, or -errno when a call
 * failed; -EIO when the kernel wrote nothing and gave no error (a full
 * pipe in non-blocking mode gives -EAGAIN instead). -EINVAL for a negative
 * off.
 */
int write_full(int fd, const void *buf, size_t len);
int pwrite_full(int fd, const void *buf, size_t len, off_t off);

#endif /* FULLIO_H */
