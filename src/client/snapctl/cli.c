// SPDX-License-Identifier: MIT
/*
 * snapctl's command line: usage, help and usage errors (exit 2), options
 * through getopt_long with GNU permutation (options anywhere, `--` ends
 * them; POSIXLY_CORRECT turns permutation off as for every GNU tool),
 * arguments (IDs, labels, --expire times, counts), and the way to the
 * daemon: which mount a path is on (or the only mount there is), a path's
 * place in it, and one request with its errors worded for the user (exit
 * 1). Also the progress line of long commands and SIGINT, which only sets
 * a flag the commands check between pages. See snapctl_i.h.
 */
#include "snapctl_i.h"
#include "client_i.h"
#include "snapfs.h"

#include <err.h>
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- usage and help ---- */

void usage_all(FILE *f)
{
	fprintf(f, "usage: snapctl [-m MNT] COMMAND [ARGS]\n"
		   "       snapctl help [COMMAND] | --help | --version\n\ncommands:\n");
	for (const struct command *c = commands; c->name; c++)
		fprintf(f, "  %s\n", c->usage);
	fprintf(f, "\nOptions may come anywhere; -- ends them. Without -m, the mount is the one\n"
		   "holding the PATH or the current directory, else the only snapfs mount.\n"
		   "snapctl help COMMAND (or COMMAND --help) describes a command.\n");
}

const struct command *find_command(const char *name)
{
	for (const struct command *c = commands; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

static void cols_help(const struct col *cols, FILE *f)
{
	fprintf(f, "\ncolumns (* shown by default):\n");
	for (size_t i = 0; cols[i].name; i++)
		fprintf(f, "  %c%-10s %s\n", (cols[i].flags & COL_DEFAULT) ? '*' : ' ',
			cols[i].name, cols[i].help);
}

void command_help(const struct command *c, FILE *f)
{
	/* help is "description\n\noptions:\n<own options>\nexamples:\n..." */
	const char *ex = strstr(c->help, "\nexamples:\n");
	int head = ex ? (int)(ex - c->help) : (int)strlen(c->help);
	fprintf(f, "usage: snapctl [-m MNT] %s\n\n%.*s", c->usage, head, c->help);
	fprintf(f, "  -m, --mount MNT   the snapfs mount (default: see snapctl --help)\n"
		   "  -h, --help        this help\n");
	if (c->cols) {
		fprintf(f,
			"  -H                scripted: tab-separated, no header\n"
			"  -p                exact numbers and unix times\n"
			"  -J, --json        JSON (every column unless -o), with output_version\n"
			"  -r, --raw         raw: space-separated, special bytes as \\xNN\n"
			"  -o, --output COLS the columns, comma-separated (+COLS: added)\n"
			"  -s, --sort COL    sort by that column\n");
		cols_help(c->cols, f);
	}
	if (ex)
		fputs(ex, f);
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

/* ---- options ---- */

static char shortbuf[96];
static struct option longbuf[40];

static void build_opts(const char *shortopts, const struct option *longopts, int out)
{
	snprintf(shortbuf, sizeof(shortbuf), ":hm:%s%s", shortopts, out ? "HpJro:s:" : "");
	size_t n = 0;
	for (const struct option *lo = longopts; lo && lo->name; lo++)
		longbuf[n++] = *lo;
	static const struct option common[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"mount", required_argument, NULL, 'm'},
	};
	static const struct option output[] = {
	    {"json", no_argument, NULL, 'J'},
	    {"raw", no_argument, NULL, 'r'},
	    {"output", required_argument, NULL, 'o'},
	    {"sort", required_argument, NULL, 's'},
	};
	for (size_t i = 0; i < 2; i++)
		longbuf[n++] = common[i];
	for (size_t i = 0; out && i < 4; i++)
		longbuf[n++] = output[i];
	longbuf[n] = (struct option){0};
}

int next_opt(int argc, char **argv, const char *shortopts, const struct option *longopts,
	     struct outopts *o)
{
	if (!shortbuf[0])
		build_opts(shortopts, longopts, o != NULL);
	for (;;) {
		int c = getopt_long(argc, argv, shortbuf, longbuf, NULL);
		const char *a = optind > 0 && optind <= argc ? argv[optind - 1] : "";
		switch (c) {
		case 'h':
			command_help(find_command(cmd), stdout);
			exit(0);
		case 'm':
			mnt_opt = optarg;
			continue;
		case ':':
			if (!strncmp(a, "--", 2))
				usage_err("%.*s: missing argument", (int)strcspn(a, "="), a);
			usage_err("-%c: missing argument", optopt);
		case '?':
			if (!strncmp(a, "--", 2) && !optopt)
				usage_err("%.*s: unknown option", (int)strcspn(a, "="), a);
			usage_err("-%c: unknown option", optopt);
		}
		if (!o)
			return c;
		switch (c) {
		case 'H':
			o->scripted = 1;
			continue;
		case 'p':
			o->exact = 1;
			continue;
		case 'J':
			o->json = 1;
			continue;
		case 'r':
			o->raw = 1;
			continue;
		case 'o':
			o->cols = optarg;
			continue;
		case 's':
			o->sort = optarg;
			continue;
		}
		return c;
	}
}

/* ---- arguments ---- */

uint64_t parse_id(const char *s)
{
	const char *e = NULL;
	long long v = strtonum(s, 1, LLONG_MAX, &e);
	if (e)
		usage_err("%s: invalid snapshot ID", s);
	return (uint64_t)v;
}

uint64_t parse_snap(const char *root, const char *s)
{
	if (*s && strspn(s, "0123456789") == strlen(s))
		return parse_id(s);
	uint64_t id;
	if (snapfs_lookup(root, s, &id)) {
		if (errno == ENOENT)
			errx(1, "%s: %s: no such snapshot", cmd, s);
		lib_fail(root, 0);
	}
	return id;
}

unsigned parse_count(const char *opt, const char *s)
{
	const char *e = NULL;
	long long v = strtonum(s, 0, 1000000, &e);
	if (e)
		usage_err("%s %s: not a count (0 to 1000000)", opt, s);
	return (unsigned)v;
}

#define EXPIRE_FORMS "a duration such as 90m, 12h, 7d or 1w, or a time such as 2026-12-31T23:00"

/* "2026-12-31", "2026-12-31T23:00", "...:ss", a space for the T, then
 * nothing (local time), "Z" or "+HH:MM"/"-HHMM". -1 when not one. */
static int64_t parse_iso(const char *s)
{
	struct tm tm = {0};
	const char *p = strptime(s, "%Y-%m-%d", &tm);
	if (!p)
		return -1;
	if (*p == 'T' || *p == ' ') {
		const char *q = strptime(p + 1, "%H:%M", &tm);
		if (!q)
			return -1;
		p = q;
		if (*p == ':' && !(p = strptime(p + 1, "%S", &tm)))
			return -1;
	}
	if (!*p) {
		tm.tm_isdst = -1;
		time_t t = mktime(&tm);
		return t == (time_t)-1 ? -1 : (int64_t)t;
	}
	long off = 0;
	if (*p == 'Z' && !p[1]) {
		off = 0;
	} else if ((*p == '+' || *p == '-') && strlen(p) >= 3) {
		int hh, mm = 0;
		char tail[8] = "";
		if (sscanf(p + 1, "%2d:%2d%7s", &hh, &mm, tail) < 2 &&
		    sscanf(p + 1, "%2d%2d%7s", &hh, &mm, tail) < 1)
			return -1;
		if (tail[0] || hh > 23 || mm > 59)
			return -1;
		off = (*p == '-' ? -1 : 1) * (hh * 3600L + mm * 60L);
	} else {
		return -1;
	}
	time_t t = timegm(&tm);
	return t == (time_t)-1 ? -1 : (int64_t)t - off;
}

int64_t parse_expire(const char *s, int64_t now)
{
	size_t n = strlen(s);
	int64_t mult = 0;
	if (n >= 2 && n < 24 && strspn(s, "0123456789") == n - 1)
		mult = s[n - 1] == 's'	 ? 1
		       : s[n - 1] == 'm' ? 60
		       : s[n - 1] == 'h' ? 3600
		       : s[n - 1] == 'd' ? 86400
		       : s[n - 1] == 'w' ? 7 * 86400
					 : 0;
	const int64_t max = 100LL * 365 * 86400;
	if (mult) {
		char num[24];
		memcpy(num, s, n - 1);
		num[n - 1] = 0;
		const char *e = NULL;
		long long v = strtonum(num, 1, max, &e);
		if (e || v > max / mult)
			usage_err("%s: invalid expiry (%s)", s, EXPIRE_FORMS);
		return now + v * mult;
	}
	int64_t t = parse_iso(s);
	if (t < 0)
		usage_err("%s: invalid expiry (%s)", s, EXPIRE_FORMS);
	if (t <= now)
		usage_err("%s: expiry in the past", s);
	if (t - now > max)
		usage_err("%s: expiry more than 100 years ahead", s);
	return t;
}

void table_setup(struct table *t, const char *name, const struct col *cols, const struct outopts *o)
{
	const char *bad;
	if (table_init(t, name, cols, o, &bad))
		usage_err("%.*s: unknown column", (int)strcspn(bad, ","), bad);
}

/* ---- the mount and the daemon ---- */

/* Outside a mount, without -m: the only snapfs mount, or exit 1. */
static void only_mount(const char *where, char *root, size_t len)
{
	size_t n;
	char **mp = snapfs_mount_points(&n);
	if (n == 1) {
		if (strlcpy(root, mp[0], len) >= len)
			errx(1, "%s: %s: path too long", cmd, mp[0]);
		free(mp[0]);
		free(mp);
		return;
	}
	if (n == 0)
		errx(1, "%s: %s: not on a snapfs mount", cmd, where);
	char list[2048] = "";
	for (size_t i = 0; i < n; i++) {
		if (i)
			strlcat(list, ", ", sizeof(list));
		strlcat(list, mp[i], sizeof(list));
	}
	errx(1, "%s: %s: not on a snapfs mount, and there are %zu (%s): choose one with -m", cmd,
	     where, n, list);
}

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
		if (errno == ENOTSUP && !mnt_opt && !path)
			only_mount(p, root, len);
		else if (errno == ENOTSUP)
			errx(1, "%s: %s: not on a snapfs mount", cmd, p);
		else
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

void lib_fail(const char *root, uint64_t id)
{
	progress_done();
	if (errno == ENOENT && id)
		errx(1, "%s: %" PRIu64 ": no such snapshot", cmd, id);
	if (errno == ENOTSUP)
		errx(1, "%s: %s: not on a snapfs mount", cmd, root);
	if (errno == EPROTO)
		malformed();
	err(1, "%s", cmd);
}

void malformed(void)
{
	errx(1, "%s: malformed answer from the daemon", cmd);
}

/* ---- SIGINT and progress ---- */

volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

void catch_sigint(void)
{
	struct sigaction sa = {.sa_handler = on_sigint, .sa_flags = SA_RESTART | SA_RESETHAND};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGINT);
	sigprocmask(SIG_UNBLOCK, &s, NULL);
}

static int progress_shown;

void progress(const char *fmt, ...)
{
	static struct timespec last;
	static int tty = -1;
	if (tty < 0)
		tty = isatty(STDERR_FILENO);
	if (!tty)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (progress_shown &&
	    (now.tv_sec - last.tv_sec) * 1000000000L + (now.tv_nsec - last.tv_nsec) < 100000000L)
		return;
	last = now;
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "\rsnapctl: %s: %s\033[K", cmd, msg);
	progress_shown = 1;
}

void progress_done(void)
{
	if (progress_shown)
		fputs("\r\033[K", stderr);
	progress_shown = 0;
}
