// SPDX-License-Identifier: MIT
/*
 * The full-I/O loops (fullio.h) and the growable array (vec.h): reads and
 * writes go on through short counts and EINTR, a short read means the end
 * of the file, errors come back as -errno; a vector keeps its elements
 * while it grows and refuses sizes that overflow without changing.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "fullio.h"
#include "vec.h"

/* ---- full I/O ---- */

struct dribble {
	int fd;
	const char *buf;
	size_t len, chunk;
};

/* Write buf to fd a few bytes at a time, with pauses, then close fd. */
static void *dribble(void *arg)
{
	struct dribble *d = arg;
	for (size_t at = 0; at < d->len; at += d->chunk) {
		size_t n = d->len - at < d->chunk ? d->len - at : d->chunk;
		cr_assert_eq(write(d->fd, d->buf + at, n), (ssize_t)n);
		usleep(2000);
	}
	close(d->fd);
	return NULL;
}

static void on_alarm(int sig)
{
	(void)sig;
}

Test(fullio, read_full_goes_on_after_short_reads_and_eintr)
{
	/* Interrupt the blocked reads: a handler without SA_RESTART makes
	 * read(2) fail with EINTR. */
	struct sigaction sa = {.sa_handler = on_alarm};
	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGALRM, &sa, NULL), 0);
	struct itimerval it = {{0, 500}, {0, 500}};
	cr_assert_eq(setitimer(ITIMER_REAL, &it, NULL), 0);

	char src[3000], dst[4000];
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (char)(i * 7);
	int p[2];
	cr_assert_eq(pipe(p), 0);
	struct dribble d = {p[1], src, sizeof(src), 97};
	pthread_t t;
	/* the writer thread must not take the signals */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	cr_assert_eq(pthread_create(&t, NULL, dribble, &d), 0);
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	ssize_t n = read_full(p[0], dst, sizeof(dst)); /* more than comes: ends at EOF */
	struct itimerval off = {0};
	setitimer(ITIMER_REAL, &off, NULL);
	pthread_join(t, NULL);
	cr_assert_eq(n, (ssize_t)sizeof(src), "read_full: %zd", n);
	cr_expect_eq(memcmp(src, dst, sizeof(src)), 0);
	close(p[0]);
}

Test(fullio, pread_and_pwrite_full_round_trip_and_stop_at_the_end)
{
	char path[] = "/dev/shm/floor-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	unlink(path);
	static char buf[1 << 20], back[1 << 20];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i ^ (i >> 9));
	cr_assert_eq(pwrite_full(fd, buf, sizeof(buf), 4096), 0);
	cr_expect_eq(pread_full(fd, back, sizeof(back), 4096), (ssize_t)sizeof(back));
	cr_expect_eq(memcmp(buf, back, sizeof(buf)), 0);
	/* a read across the end: the count of what is there */
	cr_expect_eq(pread_full(fd, back, sizeof(back), 4096 + 1000), (ssize_t)sizeof(back) - 1000);
	cr_expect_eq(pread_full(fd, back, 10, 1 << 30), 0);
	cr_expect_eq(pread_full(fd, back, 0, 0), 0);
	/* the file position is not used by the p-variants, and moves with the others */
	cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
	cr_expect_eq(write_full(fd, "abc", 3), 0);
	cr_expect_eq(lseek(fd, 0, SEEK_CUR), 3);
	cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
	cr_expect_eq(read_full(fd, back, 3), 3);
	cr_expect_eq(memcmp(back, "abc", 3), 0);
	close(fd);
}

Test(fullio, errors_are_negative_errno)
{
	char b[8];
	cr_expect_eq(pread_full(-1, b, sizeof(b), 0), -EBADF);
	cr_expect_eq(read_full(-1, b, sizeof(b)), -EBADF);
	cr_expect_eq(pwrite_full(-1, b, sizeof(b), 0), -EBADF);
	cr_expect_eq(write_full(-1, b, sizeof(b)), -EBADF);
	cr_expect_eq(pread_full(0, b, sizeof(b), -1), -EINVAL);
	cr_expect_eq(pwrite_full(1, b, sizeof(b), -1), -EINVAL);
	cr_expect_eq(read_full(0, b, (size_t)SSIZE_MAX + 1), -EINVAL);

	int p[2];
	cr_assert_eq(pipe(p), 0);
	close(p[0]);
	signal(SIGPIPE, SIG_IGN);
	cr_expect_eq(write_full(p[1], b, sizeof(b)), -EPIPE);
	close(p[1]);
	/* pread on a pipe: ESPIPE */
	cr_assert_eq(pipe(p), 0);
	cr_expect_eq(pread_full(p[0], b, sizeof(b), 0), -ESPIPE);
	close(p[0]);
	close(p[1]);
}

/* ---- the vector ---- */

struct ints {
	int *v;
	size_t n, alloc;
};

struct pair {
	int a;
	char b;
};

struct pairs {
	struct pair *v;
	size_t n, alloc;
};

Test(vec, push_keeps_every_element_while_growing)
{
	struct ints x = {0};
	for (int i = 0; i < 10000; i++)
		cr_assert_eq(vec_push(&x, i * 3), 0);
	cr_assert_eq(x.n, 10000);
	cr_expect_geq(x.alloc, x.n);
	for (int i = 0; i < 10000; i++)
		cr_assert_eq(x.v[i], i * 3);
	vec_release(&x);
	cr_expect(x.v == NULL && x.n == 0 && x.alloc == 0);

	struct pairs p = {0};
	cr_assert_eq(vec_push(&p, (struct pair){1, 'x'}), 0);
	cr_assert_eq(vec_push(&p, (struct pair){.a = 2, .b = 'y'}), 0);
	cr_expect(p.n == 2 && p.v[1].a == 2 && p.v[1].b == 'y' && p.v[0].b == 'x');
	vec_release(&p);
}

Test(vec, reserve_makes_room_once)
{
	struct ints x = {0};
	cr_expect_eq(vec_reserve(&x, 0), 0);
	cr_expect(x.v == NULL, "no room asked, nothing allocated");
	cr_assert_eq(vec_reserve(&x, 1000), 0);
	cr_expect_geq(x.alloc, 1000);
	int *v = x.v;
	for (int i = 0; i < 1000; i++)
		x.v[x.n++] = i;
	cr_expect_eq(x.v, v, "no reallocation inside the reserved room");
	cr_assert_eq(vec_reserve(&x, 1), 0);
	cr_expect_geq(x.alloc, 2000, "growth doubles");
	vec_release(&x);
}

Test(vec, sizes_that_overflow_are_refused_and_change_nothing)
{
	struct ints x = {0};
	cr_assert_eq(vec_push(&x, 5), 0);
	int *v = x.v;
	size_t alloc = x.alloc;
	cr_expect_eq(vec_reserve(&x, SIZE_MAX), -ENOMEM);
	cr_expect_eq(vec_reserve(&x, SIZE_MAX / 2), -ENOMEM); /* * sizeof(int) overflows */
	cr_expect_eq(vec_reserve(&x, SIZE_MAX / sizeof(int) - 1), -ENOMEM);
	cr_expect(x.v == v && x.n == 1 && x.alloc == alloc && x.v[0] == 5);
	errno = 0;
	cr_expect_null(vec_grow(x.v, x.n, SIZE_MAX, &x.alloc, sizeof(int)));
	cr_expect_eq(errno, ENOMEM);
	vec_release(&x);
}
