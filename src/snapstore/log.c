// SPDX-License-Identifier: MIT
/*
 * The store's log and test hooks: the logger and test-point callbacks the
 * embedding program sets (process-wide), and wall-clock time. The bottom
 * floor of the store: calls nothing else in it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "store_i.h"

static void (*log_fn)(int level, const char *msg);
static void (*test_hook)(const char *point);

void store_set_logger(void (*fn)(int level, const char *msg))
{
	log_fn = fn;
}

void store_set_test_hook(void (*fn)(const char *point))
{
	test_hook = fn;
}

void store_test_point(const char *point)
{
	if (test_hook)
		test_hook(point);
}

void store_vlogf(int level, const char *fmt, va_list ap)
{
	char msg[1024];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_fn)
		log_fn(level, msg);
	else
		fprintf(stderr, "%s\n", msg);
}

void store_logf(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	store_vlogf(level, fmt, ap);
	va_end(ap);
}

int64_t store_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t store_coarse_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return store_ts_ns(&ts);
}
