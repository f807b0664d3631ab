// SPDX-License-Identifier: MIT
/*
 * mount(8) helper conventions. mount -t fuse.snapfs (or -t snapfs, or an
 * fstab line) runs /sbin/mount.fuse.snapfs (mount.snapfs) as
 *
 *	mount.fuse.snapfs SOURCE MOUNTPOINT [-s] [-f] [-n] [-v] [-o OPTS] [-t TYPE]
 *
 * and those names are links to the daemon. When argv[0] is one of them,
 * helper_args() rewrites the command line into the daemon's own form the
 * way mount.fuse3(8) would: -s, -n, -v and -t TYPE are dropped, -f (fake:
 * do everything but mount) exits 0 at once, and "dev,suid" are added unless
 * nodev/nosuid were given, since mount(8) defaults to them and libfuse to
 * their opposite. Note -f means "fake" here, not "foreground".
 */
#include "sfs_i.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_helper_name(const char *argv0)
{
	const char *base = strrchr(argv0, '/');
	base = base ? base + 1 : argv0;
	return strcmp(base, "mount.snapfs") == 0 || strcmp(base, "mount.fuse.snapfs") == 0;
}

/* Whether the comma-separated list has exactly the option opt. */
static int has_opt(const char *list, const char *opt)
{
	size_t n = strlen(opt);
	for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (strncmp(p, opt, n) == 0 && (p[n] == ',' || p[n] == '\0'))
			return 1;
	return 0;
}

int helper_args(struct fuse_args *args)
{
	if (args->argc < 1 || !is_helper_name(args->argv[0]))
		return 0;

	struct fuse_args out = FUSE_ARGS_INIT(0, NULL);
	char *opts = NULL;
	int fake = 0, rc = -1;
	if (fuse_opt_add_arg(&out, args->argv[0]))
		goto out_free;
	for (int i = 1; i < args->argc; i++) {
		const char *a = args->argv[i];
		if (!strcmp(a, "-s") || !strcmp(a, "-n") || !strcmp(a, "-v"))
			continue;
		if (!strcmp(a, "-f")) {
			fake = 1;
			continue;
		}
		if (!strcmp(a, "-t") || !strcmp(a, "-o")) {
			if (++i == args->argc) {
				fprintf(stderr, "snapfs: %s: missing argument\n", a);
				goto out_free;
			}
			if (a[1] == 't')
				continue;
			size_t old = opts ? strlen(opts) : 0, add = strlen(args->argv[i]);
			char *n = realloc(opts, old + add + 2);
			if (!n)
				goto out_free;
			opts = n;
			if (old)
				opts[old++] = ',';
			memcpy(opts + old, args->argv[i], add + 1);
			continue;
		}
		if (a[0] == '-') {
			fprintf(stderr, "snapfs: unknown mount helper argument '%s'\n", a);
			goto out_free;
		}
		if (fuse_opt_add_arg(&out, a))
			goto out_free;
	}
	if (fake) {
		rc = 1;
		goto out_free;
	}
	char extra[16] = "";
	if (!has_opt(opts, "nodev"))
		strlcat(extra, ",dev", sizeof(extra));
	if (!has_opt(opts, "nosuid"))
		strlcat(extra, ",suid", sizeof(extra));
	size_t len = (opts ? strlen(opts) : 0) + sizeof(extra) + 1;
	char *all = malloc(len);
	if (!all)
		goto out_free;
	snprintf(all, len, "%s%s", opts ? opts : "", opts && *opts ? extra : extra + 1);
	if (*all && (fuse_opt_add_arg(&out, "-o") || fuse_opt_add_arg(&out, all))) {
		free(all);
		goto out_free;
	}
	free(all);
	fuse_opt_free_args(args);
	*args = out;
	out = (struct fuse_args)FUSE_ARGS_INIT(0, NULL);
	rc = 0;
out_free:
	free(opts);
	fuse_opt_free_args(&out);
	return rc;
}
