// SPDX-License-Identifier: MIT
/*
 * snapctl's command line: usage lines and usage errors (exit 2), option
 * and argument parsing, and the way to the daemon: which mount a path is
 * on, a path's place in it, and one request with its errors worded for
 * the user (exit 1). See snapctl_i.h.
 */
#include "snapctl_i.h"
#include "client_i.h"

#include <err.h>
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- usage ---- */

void usage_all(FILE *f)
{
	fprintf(f, "usage: snapctl [-m MNT] COMMAND [ARGS]\n"
		   "       snapctl --help | --version\n\ncommands:\n");
	for (const struct command *c = commands; c->name; c++)
		fprintf(f, "  %s\n", c->usage);
	fprintf(f, "\nsnapctl COMMAND --help shows one command's usage.\n");
}

const struct command *find_command(const char *name)
{
	for (const struct command *c = commands; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

void usage_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char msg[1024];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (*cmd)
		warnx("%s: %s", cmd, msg);
	else
		warnx("%s", msg);
	const struct command *c = *cmd ? find_command(cmd) : NULL;
	if (c)
		fprintf(stderr, "usage: snapctl [-m MNT] %s\n", c->usage);
	else
		usage_all(stderr);
	exit(EXIT_USAGE);
}

int next_opt(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
	int c = getopt_long(argc, argv, shortopts, longopts, NULL);
	if (c == 'h' + 256) {
		printf("usage: snapctl [-m MNT] %s\n", find_command(cmd)->usage);
		exit(0);
	}
	if (c == '?') {
		const char *a = argv[optind - 1];
		if (!strncmp(a, "--", 2)) {
			size_t n = strcspn(a + 2, "=");
			for (const struct option *o = longopts; o->name; o++)
				if (strlen(o->name) == n && !strncmp(o->name, a + 2, n))
					usage_err("%.*s: missing argument", (int)n + 2, a);
			usage_err("%.*s: unknown option", (int)n + 2, a);
		}
		if (optopt && strchr(shortopts + 1, optopt))
			usage_err("-%c: missing argument", optopt);
		usage_err("-%c: unknown option", optopt);
	}
	return c;
}

uint64_t parse_id(const char *s)
{
	const char *e = NULL;
	long long v = strtonum(s, 1, LLONG_MAX, &e);
	if (e)
		usage_err("%s: invalid snapshot ID", s);
	return (uint64_t)v;
}

int64_t parse_duration(const char *s)
{
	char num[32];
	size_t n = strlen(s);
	if (n < 2 || n >= sizeof(num))
		usage_err("%s: invalid duration (NUMBER followed by s, m, h or d)", s);
	memcpy(num, s, n - 1);
	num[n - 1] = 0;
	int64_t mult = s[n - 1] == 's'	 ? 1
		       : s[n - 1] == 'm' ? 60
		       : s[n - 1] == 'h' ? 3600
		       : s[n - 1] == 'd' ? 86400
					 : 0;
	const char *e = NULL;
	long long v = strtonum(num, 1, 100LL * 365 * 86400, &e);
	if (!mult || e || v * mult > 100LL * 365 * 86400)
		usage_err("%s: invalid duration (NUMBER followed by s, m, h or d)", s);
	return v * mult;
}

/* ---- the mount and the daemon ---- */

void mount_root(const char *path, char *root, size_t len)
{
	const char *p = mnt_opt ? mnt_opt : path ? path : ".";
	int rc = snapfs_locate(p, root, len, NULL, 0);
	if (rc && errno == ENOENT && !mnt_opt) {
		/* a file deleted since the pin: its directory tells the mount */
		char dir[PATH_MAX];
		strlcpy(dir, p, sizeof(dir));
		rc = snapfs_locate(dirname(dir), root, len, NULL, 0);
		if (rc && errno != ENOTSUP)
			errno = ENOENT;
	}
	if (rc) {
		char cwd[PATH_MAX];
		int e = errno;
		if (p[0] == '.' && !p[1] && getcwd(cwd, sizeof(cwd)))
			p = cwd;
		errno = e;
		if (errno == ENOTSUP)
			errx(1, "%s: %s: not on a snapfs mount", cmd, p);
		err(1, "%s: %s", cmd, p);
	}
}

/*
 * path's place relative to root. A path that no longer exists (a file
 * deleted since the pin) is placed through its directory. Exits 1 when it
 * is not on that mount.
 */
void rel_path(const char *root, const char *path, char *rel, size_t len)
{
	char r2[PATH_MAX], dir[PATH_MAX], base[PATH_MAX];
	int rc = snapfs_locate(path, r2, sizeof(r2), rel, len);
	if (rc && errno == ENOENT) {
		strlcpy(dir, path, sizeof(dir));
		strlcpy(base, path, sizeof(base));
		const char *b = basename(base);
		char drel[PATH_MAX];
		rc = snapfs_locate(dirname(dir), r2, sizeof(r2), drel, sizeof(drel));
		if (rc == 0 && (!strcmp(b, ".") || !strcmp(b, "..") || !strcmp(b, "/"))) {
			errno = ENOENT;
			rc = -1;
		}
		if (rc == 0 && (size_t)snprintf(rel, len, "%s%s%s", strcmp(drel, ".") ? drel : "",
						strcmp(drel, ".") ? "/" : "", b) >= len) {
			errno = ENAMETOOLONG;
			rc = -1;
		}
		if (rc && errno != ENOTSUP)
			errno = ENOENT;
	}
	if (rc && errno == ENOTSUP)
		errx(1, "%s: %s: not on a snapfs mount", cmd, path);
	if (rc)
		err(1, "%s: %s", cmd, path);
	if (strcmp(r2, root))
		errx(1, "%s: %s: not on the snapfs mount %s", cmd, path, root);
}

struct snapfs_req *req_new(uint32_t op)
{
	struct snapfs_req *r = snapfs_req_new(op);
	if (!r)
		err(1, "%s", cmd);
	return r;
}

void call(const char *root, struct snapfs_req *r, const char *what, int id_what)
{
	uint32_t op = r->op;
	uint64_t id = r->id;
	if (snapfs_call(root, r) == 0)
		return;
	if (errno == ENOENT && id_what)
		errx(1, "%s: %" PRIu64 ": no such snapshot", cmd, id);
	if (errno == ENOTSUP)
		errx(1, "%s: %s: not on a snapfs mount", cmd, root);
	if (errno == EPERM && op == SNAPFS_OP_CHECK)
		errx(1, "%s: only root can check the store", cmd);
	if (what)
		err(1, "%s: %s", cmd, what);
	err(1, "%s", cmd);
}

void malformed(void)
{
	errx(1, "%s: malformed answer from the daemon", cmd);
}
