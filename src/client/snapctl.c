// SPDX-License-Identifier: MIT
/*
 * snapctl: pin, release, list, show, diff, restore, stats and check the
 * snapshots of a snapfs mount, over the control ioctl (snapfs_proto.h).
 * Output follows zfs: a header and aligned columns, -H for tab-separated
 * lines without header, --json with an output_version, sizes exact with
 * -p. Results go to stdout only; every error is one line on stderr,
 * "snapctl: COMMAND: what: why", and the exit status is 0 (success),
 * 1 (failure) or 2 (usage). The daemon answers long results in pages;
 * each command loops on the cursor until it is 0. snapctl is built with
 * libsnapfs.c compiled in (the library exports only its public API, and
 * snapctl needs the private helpers of client_i.h).
 */
#include "snapfs.h"
#include "snapfs_proto.h"
#include "client_i.h"

#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef SNAPFS_VERSION
#define SNAPFS_VERSION "unknown"
#endif

#define JSON_VERS_MAJOR 0
#define JSON_VERS_MINOR 1

enum { EXIT_USAGE = 2 };

static const char *mnt_opt; /* -m MNT */
static const char *cmd = "";

/* ---- usage ---- */

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage;
};

static const struct command *commands;

static void usage_all(FILE *f)
{
	fprintf(f, "usage: snapctl [-m MNT] COMMAND [ARGS]\n"
		   "       snapctl --help | --version\n\ncommands:\n");
	for (const struct command *c = commands; c->name; c++)
		fprintf(f, "  %s\n", c->usage);
	fprintf(f, "\nsnapctl COMMAND --help shows one command's usage.\n");
}

static const struct command *find_command(const char *name)
{
	for (const struct command *c = commands; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

/* A usage error: the message, the command's usage line, exit 2. */
static void __attribute__((noreturn, format(printf, 1, 2))) usage_err(const char *fmt, ...)
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

/*
 * getopt_long over a command's arguments (argv[0] is the command). Options
 * come first; unknown ones and missing arguments are usage errors; --help
 * prints the usage and exits 0. Returns the option, or -1 at the end.
 */
static int next_opt(int argc, char **argv, const char *shortopts, const struct option *longopts)
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

#define HELP_OPTION                                                                                \
	{                                                                                          \
		"help", no_argument, NULL, 'h' + 256                                               \
	}

static uint64_t parse_id(const char *s)
{
	const char *e = NULL;
	long long v = strtonum(s, 1, LLONG_MAX, &e);
	if (e)
		usage_err("%s: invalid snapshot ID", s);
	return (uint64_t)v;
}

/* "30m", "12h", "7d", "90s": seconds. */
static int64_t parse_duration(const char *s)
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

/* The mount root for path (or -m, or "."), or exit 1. */
static void mount_root(const char *path, char *root, size_t len)
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
static void rel_path(const char *root, const char *path, char *rel, size_t len)
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

static struct snapfs_req *req_new(uint32_t op)
{
	struct snapfs_req *r = snapfs_req_new(op);
	if (!r)
		err(1, "%s", cmd);
	return r;
}

/* One request; on failure exit 1 with "what: why" (ENOENT naming a snapshot
 * reads "no such snapshot"). */
/* The daemon's answers are records: a header, then (at path_at) a
 * NUL-terminated path, reclen bytes in all. These take a record's header and
 * its path, and end snapctl on anything malformed. */
static void rec_header(const struct snapfs_req *r, size_t off, void *hdr, size_t len)
{
	if (off + len > r->len)
		errx(1, "%s: malformed answer from the daemon", cmd);
	memcpy(hdr, r->data + off, len);
}

static const char *rec_path(const struct snapfs_req *r, size_t off, size_t path_at, uint32_t reclen)
{
	if (reclen > r->len - off || path_at + 1 > reclen ||
	    !memchr(r->data + off + path_at, 0, reclen - path_at))
		errx(1, "%s: malformed answer from the daemon", cmd);
	return r->data + off + path_at;
}

static void call(const char *root, struct snapfs_req *r, const char *what, int id_what)
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

/* ---- output ---- */

/* zfs-style human-readable size: 512B, 4K, 1.50M, 12.5G. */
static const char *nicenum(uint64_t n, char *buf, size_t len)
{
	static const char units[] = "BKMGTPE";
	int u = 0;
	uint64_t d = 1;
	while (u < 6 && n >= d * 1024) {
		d *= 1024;
		u++;
	}
	if (u == 0 || n % d == 0) {
		snprintf(buf, len, "%" PRIu64 "%c", n / d, units[u]);
		return buf;
	}
	for (int prec = 2; prec >= 0; prec--) {
		snprintf(buf, len, "%.*f%c", prec, (double)n / (double)d, units[u]);
		if (strlen(buf) <= 5)
			break;
	}
	return buf;
}

/* A table of string cells printed at the end, aligned or tab-separated. */
struct table {
	size_t ncol, nrow, alloc;
	const char *const *head;
	const char *align; /* per column: 'l' or 'r' */
	char **cells;
};

static void table_add(struct table *t, ...)
{
	if (t->nrow == t->alloc) {
		t->alloc = t->alloc ? t->alloc * 2 : 32;
		t->cells = reallocarray(t->cells, t->alloc * t->ncol, sizeof(char *));
		if (!t->cells)
			err(1, "%s", cmd);
	}
	va_list ap;
	va_start(ap, t);
	for (size_t c = 0; c < t->ncol; c++) {
		const char *s = va_arg(ap, const char *);
		if (!(t->cells[t->nrow * t->ncol + c] = strdup(s)))
			err(1, "%s", cmd);
	}
	va_end(ap);
	t->nrow++;
}

static void table_print(struct table *t, int scripted)
{
	size_t w[16] = {0};
	for (size_t c = 0; c < t->ncol; c++) {
		w[c] = strlen(t->head[c]);
		for (size_t r = 0; r < t->nrow; r++)
			if (strlen(t->cells[r * t->ncol + c]) > w[c])
				w[c] = strlen(t->cells[r * t->ncol + c]);
	}
	for (size_t r = 0; r <= t->nrow; r++) {
		if (r == 0 && scripted)
			continue;
		for (size_t c = 0; c < t->ncol; c++) {
			const char *s = r ? t->cells[(r - 1) * t->ncol + c] : t->head[c];
			if (scripted)
				printf("%s%s", c ? "\t" : "", s);
			else if (c + 1 == t->ncol && t->align[c] == 'l')
				printf("%s%s", c ? "  " : "", s);
			else
				printf(t->align[c] == 'r' ? "%s%*s" : "%s%-*s", c ? "  " : "",
				       (int)w[c], s);
		}
		putchar('\n');
	}
	for (size_t i = 0; i < t->nrow * t->ncol; i++)
		free(t->cells[i]);
	free(t->cells);
}

static void json_str(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p == '\n')
			printf("\\n");
		else if (*p == '\t')
			printf("\\t");
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static void json_head(const char *command)
{
	printf("{\"output_version\": {\"command\": \"snapctl %s\", \"vers_major\": %d, "
	       "\"vers_minor\": %d}",
	       command, JSON_VERS_MAJOR, JSON_VERS_MINOR);
}

static const char *owner_name(uint32_t uid, char *buf, size_t len)
{
	struct passwd *pw = getpwuid(uid);
	if (pw)
		strlcpy(buf, pw->pw_name, len);
	else
		snprintf(buf, len, "%u", uid);
	return buf;
}

static const char *snap_state(const struct snapfs_rec_snap *s)
{
	return s->state ? "stale" : s->kind ? "ephemeral" : s->expires ? "expiring" : "valid";
}

/* ---- commands ---- */

static const struct option json_opts[] = {
    {"json", no_argument, NULL, 'j'},
    HELP_OPTION,
    {0},
};

static int cmd_pin(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"expire", required_argument, NULL, 'e'},
	    {"label", required_argument, NULL, 'l'},
	    {"recursive", no_argument, NULL, 'r'},
	    HELP_OPTION,
	    {0},
	};
	int c, recursive = 0;
	const char *label = NULL;
	int64_t expire = 0;
	while ((c = next_opt(argc, argv, "+rl:", lo)) != -1) {
		if (c == 'r')
			recursive = 1;
		else if (c == 'l')
			label = optarg;
		else if (c == 'e')
			expire = parse_duration(optarg);
	}
	if (optind >= argc)
		usage_err("missing PATH");
	if (label && strlen(label) >= SNAPFS_PROTO_LABEL)
		usage_err("label longer than %d bytes", SNAPFS_PROTO_LABEL - 1);
	char root[PATH_MAX], rel[PATH_MAX];
	mount_root(argv[optind], root, sizeof(root));
	struct snapfs_req *r = req_new(SNAPFS_OP_PIN);
	for (int i = optind; i < argc; i++) {
		rel_path(root, argv[i], rel, sizeof(rel));
		struct stat st;
		if (stat(argv[i], &st))
			err(1, "%s: %s", cmd, argv[i]);
		if (S_ISDIR(st.st_mode) && !recursive)
			errx(1, "%s: %s: is a directory (use -r)", cmd, argv[i]);
		if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
			errx(1, "%s: %s: not a regular file", cmd, argv[i]);
		size_t n = strlen(rel) + 1;
		if (r->len + n > sizeof(r->data))
			errx(1, "%s: %s: too many paths for one snapshot", cmd, argv[i]);
		memcpy(r->data + r->len, rel, n);
		r->len += (uint32_t)n;
	}
	r->count = (uint32_t)(argc - optind);
	r->flags = recursive ? SNAPFS_PIN_RECURSIVE : 0;
	r->expires = expire ? (int64_t)time(NULL) + expire : 0;
	if (label)
		strlcpy(r->label, label, sizeof(r->label));
	if (snapfs_call(root, r)) {
		if (errno == ENOENT && recursive)
			errx(1, "%s: no regular file to pin", cmd);
		err(1, "%s", cmd);
	}
	printf("%" PRIu64 "\n", r->id);
	free(r);
	return 0;
}

static int cmd_release(int argc, char **argv)
{
	static const struct option lo[] = {HELP_OPTION, {0}};
	while (next_opt(argc, argv, "+", lo) != -1)
		;
	if (optind >= argc)
		usage_err("missing ID");
	for (int i = optind; i < argc; i++)
		parse_id(argv[i]);
	char root[PATH_MAX];
	mount_root(NULL, root, sizeof(root));
	int rc = 0;
	for (int i = optind; i < argc; i++) {
		struct snapfs_req *r = req_new(SNAPFS_OP_RELEASE);
		r->id = parse_id(argv[i]);
		if (snapfs_call(root, r)) {
			if (errno == ENOENT)
				warnx("%s: %s: no such snapshot", cmd, argv[i]);
			else
				warn("%s: %s", cmd, argv[i]);
			rc = 1;
		}
		free(r);
	}
	return rc;
}

static int cmd_list(int argc, char **argv)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, HELP_OPTION, {0}};
	int c, scripted = 0, exact = 0, json = 0;
	while ((c = next_opt(argc, argv, "+Hp", lo)) != -1)
		scripted |= c == 'H', exact |= c == 'p', json |= c == 'j';
	if (optind < argc)
		usage_err("%s: unexpected argument", argv[optind]);
	char root[PATH_MAX];
	mount_root(NULL, root, sizeof(root));
	static const char *const head[] = {"ID",   "EPOCH", "CREATED", "FILES",
					   "HELD", "LABEL", "OWNER",   "STATE"};
	struct table t = {.ncol = 8, .head = head, .align = "rrlrrlll"};
	if (json) {
		json_head("list");
		printf(", \"snapshots\": [");
	}
	struct snapfs_req *r = req_new(SNAPFS_OP_LIST);
	int first = 1;
	for (uint64_t cursor = 0;;) {
		memset(r, 0, sizeof(*r));
		r->op = SNAPFS_OP_LIST;
		r->cursor = cursor;
		call(root, r, NULL, 0);
		for (uint32_t i = 0; i < r->count; i++) {
			struct snapfs_rec_snap s;
			memcpy(&s, r->data + (size_t)i * sizeof(s), sizeof(s));
			s.label[sizeof(s.label) - 1] = 0;
			char id[24], ep[24], cr[32], nf[24], held[24], own[64];
			owner_name(s.uid, own, sizeof(own));
			if (json) {
				printf("%s\n  {\"id\": %" PRIu64 ", \"epoch\": %" PRIu64
				       ", \"created\": %" PRId64 ", \"expires\": %" PRId64
				       ", \"files\": %" PRIu64 ", \"bytes_held\": %" PRIu64
				       ", \"label\": ",
				       first ? "" : ",", s.id, s.epoch, s.created, s.expires,
				       s.nfiles, s.bytes_held);
				json_str(s.label);
				printf(", \"owner\": ");
				json_str(own);
				printf(", \"uid\": %u, \"state\": \"%s\"}", s.uid, snap_state(&s));
				first = 0;
				continue;
			}
			snprintf(id, sizeof(id), "%" PRIu64, s.id);
			snprintf(ep, sizeof(ep), "%" PRIu64, s.epoch);
			snprintf(nf, sizeof(nf), "%" PRIu64, s.nfiles);
			if (exact) {
				snprintf(cr, sizeof(cr), "%" PRId64, s.created);
				snprintf(held, sizeof(held), "%" PRIu64, s.bytes_held);
			} else {
				time_t tt = (time_t)s.created;
				struct tm tm;
				strftime(cr, sizeof(cr), "%Y-%m-%d %H:%M:%S",
					 localtime_r(&tt, &tm));
				nicenum(s.bytes_held, held, sizeof(held));
			}
			table_add(&t, id, ep, cr, nf, held, s.label[0] ? s.label : "-", own,
				  snap_state(&s));
		}
		if (!(cursor = r->cursor))
			break;
	}
	free(r);
	if (json)
		printf("%s]}\n", first ? "" : "\n");
	else
		table_print(&t, scripted);
	return 0;
}

/* Every file record of snapshot id, through fn. */
static void each_file(const char *root, uint64_t id,
		      void (*fn)(void *arg, const struct snapfs_rec_file *f, const char *path),
		      void *arg)
{
	struct snapfs_req *r = req_new(SNAPFS_OP_SHOW);
	for (uint64_t cursor = 0;;) {
		memset(r, 0, sizeof(*r));
		r->op = SNAPFS_OP_SHOW;
		r->id = id;
		r->cursor = cursor;
		call(root, r, NULL, 1);
		size_t off = 0;
		for (uint32_t i = 0; i < r->count; i++) {
			struct snapfs_rec_file f;
			rec_header(r, off, &f, sizeof(f));
			fn(arg, &f, rec_path(r, off, sizeof(f), f.reclen));
			off += f.reclen;
		}
		if (!(cursor = r->cursor))
			break;
	}
	free(r);
}

struct show_ctx {
	struct table t;
	int json, exact, first;
};

static void show_one(void *arg, const struct snapfs_rec_file *f, const char *path)
{
	struct show_ctx *c = arg;
	char size[24], mode[16];
	snprintf(mode, sizeof(mode), "%04o", f->mode & 07777);
	if (c->json) {
		printf("%s\n  {\"path\": ", c->first ? "" : ",");
		json_str(path);
		printf(", \"size\": %" PRIu64 ", \"mode\": \"%s\", \"uid\": %u, \"gid\": %u, "
		       "\"mtime\": %" PRId64 "}",
		       f->size, mode, f->uid, f->gid, f->mtime);
		c->first = 0;
		return;
	}
	if (c->exact)
		snprintf(size, sizeof(size), "%" PRIu64, f->size);
	else
		nicenum(f->size, size, sizeof(size));
	table_add(&c->t, path, size, mode);
}

static int cmd_show(int argc, char **argv)
{
	int ch, scripted = 0;
	struct show_ctx c = {.first = 1};
	while ((ch = next_opt(argc, argv, "+Hp", json_opts)) != -1)
		scripted |= ch == 'H', c.exact |= ch == 'p', c.json |= ch == 'j';
	if (optind >= argc)
		usage_err("missing ID");
	if (optind + 1 < argc)
		usage_err("%s: unexpected argument", argv[optind + 1]);
	uint64_t id = parse_id(argv[optind]);
	char root[PATH_MAX];
	mount_root(NULL, root, sizeof(root));
	static const char *const head[] = {"PATH", "SIZE", "MODE"};
	c.t = (struct table){.ncol = 3, .head = head, .align = "lrl"};
	if (c.json) {
		json_head("show");
		printf(", \"id\": %" PRIu64 ", \"files\": [", id);
	}
	each_file(root, id, show_one, &c);
	if (c.json)
		printf("%s]}\n", c.first ? "" : "\n");
	else
		table_print(&c.t, scripted);
	return 0;
}

/* Whether snapshot file path is filter or under it (as the daemon matches). */
static int path_under(const char *path, const char *filter)
{
	if (!strcmp(filter, "."))
		return 1;
	size_t n = strlen(filter);
	return !strncmp(path, filter, n) && (path[n] == 0 || path[n] == '/');
}

struct match_ctx {
	const char *filter;
	int found;
};

static void match_one(void *arg, const struct snapfs_rec_file *f, const char *path)
{
	struct match_ctx *m = arg;
	m->found |= path_under(path, m->filter);
}

/* The PATH arguments as filters for the daemon: each must name a file (or
 * a directory holding files) of the snapshot, else exit 1. */
static void add_filters(const char *root, uint64_t id, struct snapfs_req *r, char **paths, int n)
{
	for (int i = 0; i < n; i++) {
		char rel[PATH_MAX];
		rel_path(root, paths[i], rel, sizeof(rel));
		struct match_ctx m = {rel, 0};
		each_file(root, id, match_one, &m);
		if (!m.found)
			errx(1, "%s: %s: not in snapshot %" PRIu64, cmd, paths[i], id);
		size_t len = strlen(rel) + 1;
		if (r->len + len > sizeof(r->data))
			errx(1, "%s: %s: too many paths", cmd, paths[i]);
		memcpy(r->data + r->len, rel, len);
		r->len += (uint32_t)len;
		r->count++;
	}
}

static int cmd_diff(int argc, char **argv)
{
	int ch, scripted = 0, exact = 0, json = 0;
	while ((ch = next_opt(argc, argv, "+Hp", json_opts)) != -1)
		scripted |= ch == 'H', exact |= ch == 'p', json |= ch == 'j';
	if (optind >= argc)
		usage_err("missing ID");
	if (optind + 2 < argc)
		usage_err("%s: unexpected argument", argv[optind + 2]);
	uint64_t id = parse_id(argv[optind]);
	char root[PATH_MAX];
	mount_root(optind + 1 < argc ? argv[optind + 1] : NULL, root, sizeof(root));
	struct snapfs_req *q = req_new(SNAPFS_OP_DIFF);
	add_filters(root, id, q, argv + optind + 1, argc - optind - 1);
	static const char *const head[] = {"PATH", "OFFSET", "LENGTH"};
	struct table t = {.ncol = 3, .head = head, .align = "lrr"};
	if (json) {
		json_head("diff");
		printf(", \"id\": %" PRIu64 ", \"files\": [", id);
	}
	struct snapfs_req *r = req_new(SNAPFS_OP_DIFF);
	int rc = 0, first = 1, open_file = 0;
	for (uint64_t cursor = 0;;) {
		memcpy(r, q, sizeof(*r));
		r->id = id;
		r->cursor = cursor;
		call(root, r, NULL, 1);
		size_t off = 0;
		for (uint32_t i = 0; i < r->count; i++) {
			struct snapfs_rec_diff d;
			rec_header(r, off, &d, sizeof(d));
			if (d.nranges > SNAPFS_PROTO_DATA / sizeof(struct snapfs_range))
				errx(1, "%s: malformed answer from the daemon", cmd);
			size_t ar = sizeof(d) + (size_t)d.nranges * sizeof(struct snapfs_range);
			const char *path = rec_path(r, off, ar, d.reclen);
			if (d.status) {
				warnx("%s: %s: %s", cmd, path, strerror(-d.status));
				rc = 1;
			}
			if (json && !open_file && !d.status) {
				printf("%s\n  {\"path\": ", first ? "" : ",");
				json_str(path);
				printf(", \"size\": %" PRIu64 ", \"ranges\": [", d.size);
				first = 0;
				open_file = 1;
			} else if (json && !d.status && d.nranges) {
				printf(", ");
			}
			for (uint32_t k = 0; k < d.nranges; k++) {
				struct snapfs_range rg;
				memcpy(&rg, r->data + off + sizeof(d) + k * sizeof(rg), sizeof(rg));
				char o[24], l[24];
				if (json) {
					printf("%s[%" PRIu64 ", %" PRIu64 "]", k ? ", " : "",
					       rg.off, rg.len);
					continue;
				}
				if (exact) {
					snprintf(o, sizeof(o), "%" PRIu64, rg.off);
					snprintf(l, sizeof(l), "%" PRIu64, rg.len);
				} else {
					nicenum(rg.off, o, sizeof(o));
					nicenum(rg.len, l, sizeof(l));
				}
				table_add(&t, path, o, l);
			}
			if (json && open_file && !(d.flags & SNAPFS_DIFF_MORE)) {
				printf("]}");
				open_file = 0;
			}
			off += d.reclen;
		}
		if (!(cursor = r->cursor))
			break;
	}
	free(r);
	free(q);
	if (json)
		printf("%s]}\n", first ? "" : "\n");
	else
		table_print(&t, scripted);
	return rc;
}

static int cmd_restore(int argc, char **argv)
{
	static const struct option lo[] = {HELP_OPTION, {0}};
	while (next_opt(argc, argv, "+", lo) != -1)
		;
	if (optind >= argc)
		usage_err("missing ID");
	uint64_t id = parse_id(argv[optind]);
	char root[PATH_MAX];
	mount_root(optind + 1 < argc ? argv[optind + 1] : NULL, root, sizeof(root));
	struct snapfs_req *q = req_new(SNAPFS_OP_RESTORE);
	add_filters(root, id, q, argv + optind + 1, argc - optind - 1);
	struct snapfs_req *r = req_new(SNAPFS_OP_RESTORE);
	int rc = 0;
	for (uint64_t cursor = 0;;) {
		memcpy(r, q, sizeof(*r));
		r->id = id;
		r->cursor = cursor;
		call(root, r, NULL, 1);
		size_t off = 0;
		for (uint32_t i = 0; i < r->count; i++) {
			struct snapfs_rec_restore s;
			rec_header(r, off, &s, sizeof(s));
			const char *path = rec_path(r, off, sizeof(s), s.reclen);
			if (s.status) {
				warnx("%s: %s: %s", cmd, path, strerror(-s.status));
				rc = 1;
			} else if (s.written || s.flags) {
				printf("%s: %" PRIu64 " bytes written%s\n", path, s.written,
				       (s.flags & SNAPFS_RESTORE_CREATED) ? " (recreated)" : "");
			}
			off += s.reclen;
		}
		if (!(cursor = r->cursor))
			break;
	}
	free(r);
	free(q);
	return rc;
}

static int cmd_stats(int argc, char **argv)
{
	int ch, scripted = 0, exact = 0, json = 0;
	while ((ch = next_opt(argc, argv, "+Hp", json_opts)) != -1)
		scripted |= ch == 'H', exact |= ch == 'p', json |= ch == 'j';
	if (optind < argc)
		usage_err("%s: unexpected argument", argv[optind]);
	char root[PATH_MAX];
	mount_root(NULL, root, sizeof(root));
	struct snapfs_req *r = req_new(SNAPFS_OP_STATS);
	call(root, r, NULL, 0);
	struct snapfs_rec_stats s;
	if (r->len < sizeof(s))
		errx(1, "%s: malformed answer from the daemon", cmd);
	memcpy(&s, r->data, sizeof(s));
	free(r);
	const struct {
		const char *name;
		uint64_t v;
		int size;
	} f[] = {
	    {"bytes_on_disk", s.bytes_on_disk, 1},
	    {"bytes_preserved", s.bytes_preserved, 1},
	    {"extents", s.extents, 0},
	    {"snapshots", s.snapshots, 0},
	    {"epoch", s.epoch, 0},
	    {"block_size", s.block_size, 1},
	    {"cow_copies", s.cow_copies, 0},
	    {"cow_bytes", s.cow_bytes, 1},
	    {"store_reads", s.store_reads, 0},
	    {"store_read_bytes", s.store_read_bytes, 1},
	};
	if (json) {
		json_head("stats");
		printf(", \"stats\": {");
		for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
			printf("%s\"%s\": %" PRIu64, i ? ", " : "", f[i].name, f[i].v);
		printf("}}\n");
		return 0;
	}
	static const char *const head[] = {"PROPERTY", "VALUE"};
	struct table t = {.ncol = 2, .head = head, .align = "lr"};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		char v[24];
		if (f[i].size && !exact)
			nicenum(f[i].v, v, sizeof(v));
		else
			snprintf(v, sizeof(v), "%" PRIu64, f[i].v);
		table_add(&t, f[i].name, v);
	}
	table_print(&t, scripted);
	return 0;
}

static int cmd_check(int argc, char **argv)
{
	static const struct option lo[] = {HELP_OPTION, {0}};
	while (next_opt(argc, argv, "+", lo) != -1)
		;
	if (optind < argc)
		usage_err("%s: unexpected argument", argv[optind]);
	char root[PATH_MAX];
	mount_root(NULL, root, sizeof(root));
	struct snapfs_req *r = req_new(SNAPFS_OP_CHECK);
	uint64_t problems = 0;
	for (uint64_t cursor = 0;;) {
		memset(r, 0, sizeof(*r));
		r->op = SNAPFS_OP_CHECK;
		r->cursor = cursor;
		call(root, r, NULL, 0);
		size_t off = 0;
		for (uint32_t i = 0; i < r->count && off < r->len; i++) {
			const char *line = r->data + off;
			size_t n = strnlen(line, r->len - off);
			printf("%.*s\n", (int)n, line);
			off += n + 1;
		}
		problems = r->id;
		if (!(cursor = r->cursor))
			break;
	}
	free(r);
	if (problems)
		warnx("%s: %" PRIu64 " problem%s found", cmd, problems, problems == 1 ? "" : "s");
	return problems ? 1 : 0;
}

static const struct command command_table[] = {
    {"pin", cmd_pin, "pin [-r] [-l LABEL] [--expire DURATION] PATH..."},
    {"release", cmd_release, "release ID..."},
    {"list", cmd_list, "list [-H] [-p] [--json]"},
    {"show", cmd_show, "show [-H] [-p] [--json] ID"},
    {"diff", cmd_diff, "diff [-H] [-p] [--json] ID [PATH]"},
    {"restore", cmd_restore, "restore ID [PATH...]"},
    {"stats", cmd_stats, "stats [-H] [-p] [--json]"},
    {"check", cmd_check, "check"},
    {0},
};

int main(int argc, char **argv)
{
	commands = command_table;
	opterr = 0;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage_all(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "-V")) {
			printf("snapctl %s\n", SNAPFS_VERSION);
			return 0;
		} else if (!strcmp(argv[i], "-m")) {
			if (++i == argc)
				usage_err("-m: missing argument");
			mnt_opt = argv[i];
		} else if (!strncmp(argv[i], "-m", 2)) {
			mnt_opt = argv[i] + 2;
		} else {
			usage_err("%s: unknown option", argv[i]);
		}
	}
	if (i == argc)
		usage_err("missing COMMAND");
	const struct command *c = find_command(argv[i]);
	if (!c)
		usage_err("%s: unknown command", argv[i]);
	cmd = c->name;
	optind = 0; /* GNU getopt: full re-initialisation */
	int rc = c->run(argc - i, argv + i);
	if (fflush(stdout) || ferror(stdout))
		err(1, "%s: stdout", cmd);
	return rc;
}
