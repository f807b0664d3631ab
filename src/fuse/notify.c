// SPDX-License-Identifier: MIT
/*
 * systemd readiness notification without libsystemd: one datagram on the
 * unix socket named by $NOTIFY_SOCKET (a path, or an abstract name when it
 * starts with '@'), as sd_notify(3) describes. Without $NOTIFY_SOCKET it
 * does nothing, so the daemon behaves the same outside a Type=notify unit.
 * Note that systemd only accepts the message from the unit's main process
 * (NotifyAccess=main): the shipped unit runs the daemon with -f.
 */
#include "sfs_i.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int sfs_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || !*path)
		return 0;
	if (path[0] != '/' && path[0] != '@')
		return -EAFNOSUPPORT; /* vsock:// and friends: not for us */

	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(path);
	if (len > sizeof(sa.sun_path) - (path[0] == '/'))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0'; /* abstract: no trailing NUL in the address */
	socklen_t salen =
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));

	/* MAINPID: after fuse_daemonize() the daemon is not the process systemd
	 * started; with NotifyAccess=all this tells systemd which one it is. */
	char msg[256];
	if (snprintf(msg, sizeof(msg), "%s\nMAINPID=%ld", state, (long)getpid()) >=
	    (int)sizeof(msg))
		return -EMSGSIZE;

	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int rc = 0;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0)
		rc = -errno;
	close(fd);
	if (rc)
		sfs_log(SFS_LOG_WARNING, "notify %s: %s", path, strerror(-rc));
	return rc;
}
