/* SPDX-License-Identifier: MIT */
/*
 * Path helpers shared by the daemon and the client: the /proc/self/fd
 * name of a descriptor, and the one rule for "this path is that directory
 * or inside it" (snapshot path filters: the daemon applies them, snapctl
 * checks them before it asks). Both are pure string functions, async-signal-
 * safe, and need no lock.
 */
#ifndef PATH_H
#define PATH_H

#include <stdbool.h>

/* "/proc/self/fd/" and a non-negative int in decimal, with the NUL. */
#define PROCFD_PATH_LEN 32

/* "/proc/self/fd/FD" into buf; returns buf. A negative fd gives a name
 * that opens nothing ("/proc/self/fd/-1"). */
char *procfd_path(int fd, char buf[PROCFD_PATH_LEN]);

/*
 * Whether path names dir or something under it, compared component by
 * component: repeated slashes, "." components and trailing slashes do not
 * count ("a//b/./" is "a/b"); "a/bc" is not under "a/b". "" and "." are
 * the root of relative paths (every relative path is under them), "/" the
 * root of absolute ones; an absolute path is never under a relative
 * directory, nor the other way round. ".." is not resolved (that needs the
 * file system: symlinks), so a path or dir with a ".." component is under
 * nothing and holds nothing.
 */
bool path_under(const char *path, const char *dir);

#endif /* PATH_H */
