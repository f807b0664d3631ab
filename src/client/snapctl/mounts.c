// SPDX-License-Identifier: MIT
/*
 * snapctl's view of the mounts: every fuse.snapfs mount point with its
 * source (libmount, through libsnapfs' snapfs_mounts()), once each, for
 * picking the only mount when none is named and for `snapctl mounts`.
 */
#include "snapctl_i.h"
#include "client_i.h"
#include "vec.h"

#include <err.h>
#include <errno.h>
#include <libmount.h>
#include <stdlib.h>
#include <string.h>

static int add_one(struct libmnt_fs *fs, void *arg)
{
	struct mps *m = arg;
	const char *t = mnt_fs_get_target(fs), *s = mnt_fs_get_source(fs);
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->v[i].target, t))
			return 0; /* the same mount point seen twice */
	struct mp e = {strdup(t), strdup(s ? s : "-")};
	if (!e.target || !e.source || vec_push(m, e))
		err(1, "%s", cmd);
	return 0;
}

struct mps all_mounts(void)
{
	struct mps m = {0};
	if (snapfs_mounts(add_one, &m))
		err(1, "%s: /proc/self/mountinfo", cmd);
	return m;
}

char **snapfs_mount_points(size_t *n)
{
	struct mps m = all_mounts();
	char **v = calloc(m.n + 1, sizeof(char *));
	if (!v)
		err(1, "%s", cmd);
	for (size_t i = 0; i < m.n; i++) {
		v[i] = m.v[i].target;
		free(m.v[i].source);
	}
	*n = m.n;
	vec_release(&m);
	return v;
}
