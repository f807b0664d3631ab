// SPDX-License-Identifier: MIT
/*
 * Logging: to stderr in the foreground (-f), to syslog once daemonized.
 * Messages above the configured level are dropped before formatting.
 */
#include "sfs_i.h"

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

static int log_stderr = 1;
static int log_level = SFS_LOG_NOTICE;

void sfs_log_init(int to_stderr, int level)
{
	log_stderr = to_stderr;
	log_level = level;
	if (!to_stderr)
		openlog("snapfs", LOG_PID, LOG_DAEMON);
}

void sfs_log(int level, const char *fmt, ...)
{
	if (level > log_level)
		return;
	va_list ap;
	va_start(ap, fmt);
	if (log_stderr) {
		char line[1024];
		vsnprintf(line, sizeof(line), fmt, ap);
		fprintf(stderr, "snapfs: %s\n", line);
	} else {
		vsyslog(level, fmt, ap);
	}
	va_end(ap);
}
