// SPDX-License-Identifier: MIT
/*
 * show, diff and restore of tree snapshots (pin -r). The daemon answers
 * SHOW, DIFF and RESTORE of a tree with -ENOTSUP: snapctl walks the view
 * MNT/<snapdir>/ID instead, with the tree engine (tree.h). A node of a
 * tree snapshot has st_ino = VINO_BIT | (id & 0x7fffff) << 40 | (backing
 * inode & (2^40 - 1)), and the live mount passes backing inode numbers
 * through, so the low 40 bits identify a node on both sides (renames, hard
 * links). Restore works through the live mount as the caller: other
 * snapshots keep their state by copy-on-write, permissions are checked as
 * for any other program. The pinned paths come with SHOW's -ENOTSUP
 * answer (data: '\n'-separated, "" for the whole mount); a daemon that
 * does not send them gets the whole view compared.
 */
#include "snapctl_i.h"
#include "treecmd.h"
#include "client_i.h"
#include "path.h"
#include "rec.h"
#include "tree.h"

#include <err.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define INO_LOW ((1ull << 40) - 1)

bool snap_is_tree(const char *root, uint64_t id)
{
	struct snapfs_req *r = req_new(SNAPFS_OP_LIST);
	r->cursor = id;
	call(root, r, NULL, 0);
	struct rec_iter it;
	struct snapfs_rec_snap s;
	rec_iter_init(&it, r);
	int rc = rec_next_snap(&it, &s);
	if (rc < 0)
		malformed();
	bool tree = rc > 0 && s.id == id && (s.flags & SNAPFS_SNAP_TREE);
	free(r);
	return tree;
}

/* A tree snapshot's view and the paths it was pinned at. */
struct view {
	uint64_t id;
	char snapdir[SNAPFS_PROTO_LABEL];
	char dir[PATH_MAX];
	char *roots[64];
	size_t nroots;
	bool guessed; /* the daemon did not tell the pinned paths */
	char buf[SNAPFS_PROTO_DATA];
};

static void view_open(const char *root, uint64_t id, struct view *v)
{
	struct snapfs_req *r = req_new(SNAPFS_OP_INFO);
	call(root, r, NULL, 0);
	r->data[sizeof(r->data) - 1] = 0;
	v->id = id;
	strlcpy(v->snapdir, r->data, sizeof(v->snapdir));
	if ((size_t)snprintf(v->dir, sizeof(v->dir), "%s/%s/%" PRIu64,
			     strcmp(root, "/") ? root : "", r->data, id) >= sizeof(v->dir))
		errx(1, "%s: %s: path too long", cmd, root);
	free(r);
	struct stat st;
	if (stat(v->dir, &st))
		errx(1, "%s: %" PRIu64 ": no such snapshot", cmd, id);
	r = req_new(SNAPFS_OP_SHOW);
	r->id = id;
	v->nroots = 0;
	if (snapfs_call(root, r) == 0 || errno != ENOTSUP || !r->len || r->len > sizeof(r->data)) {
		v->roots[v->nroots++] = ""; /* no roots told: the whole view */
		v->guessed = true;
		free(r);
		return;
	}
	memcpy(v->buf, r->data, r->len);
	v->buf[r->len - 1] = 0;
	free(r);
	for (char *p = v->buf, *e; p && v->nroots < sizeof(v->roots) / sizeof(v->roots[0]); p = e) {
		if ((e = strchr(p, '\n')))
			*e++ = 0;
		v->roots[v->nroots++] = p;
	}
}

static uint64_t view_ident(void *arg, int side, const struct stat *st)
{
	return (uint64_t)st->st_ino & INO_LOW;
}

/* ---- names and formats ---- */

static const char *user_name(uint32_t uid)
{
	static struct {
		uint32_t id;
		char name[64];
	} cache[32];
	static size_t n;
	for (size_t i = 0; i < n; i++)
		if (cache[i].id == uid)
			return cache[i].name;
	size_t k = n < 32 ? n++ : uid % 32;
	cache[k].id = uid;
	owner_name(uid, cache[k].name, sizeof(cache[k].name));
	return cache[k].name;
}

static const char *group_name(uint32_t gid)
{
	static struct {
		uint32_t id;
		char name[64];
	} cache[32];
	static size_t n;
	for (size_t i = 0; i < n; i++)
		if (cache[i].id == gid)
			return cache[i].name;
	size_t k = n < 32 ? n++ : gid % 32;
	cache[k].id = gid;
	struct group *g = getgrgid(gid);
	if (g)
		strlcpy(cache[k].name, g->gr_name, sizeof(cache[k].name));
	else
		snprintf(cache[k].name, sizeof(cache[k].name), "%u", gid);
	return cache[k].name;
}

static const char *type_name(mode_t m)
{
	return S_ISDIR(m)    ? "dir"
	       : S_ISREG(m)  ? "file"
	       : S_ISLNK(m)  ? "symlink"
	       : S_ISFIFO(m) ? "fifo"
	       : S_ISCHR(m)  ? "char"
	       : S_ISBLK(m)  ? "block"
			     : "socket";
}

static char type_char(mode_t m)
{
	return S_ISDIR(m)    ? 'd'
	       : S_ISREG(m)  ? '-'
	       : S_ISLNK(m)  ? 'l'
	       : S_ISFIFO(m) ? 'p'
	       : S_ISCHR(m)  ? 'c'
	       : S_ISBLK(m)  ? 'b'
			     : 's';
}

static void fmt_time(const struct timespec *t, int exact, char *buf, size_t len)
{
	if (exact) {
		snprintf(buf, len, "%lld", (long long)t->tv_sec);
		return;
	}
	struct tm tm;
	time_t tt = t->tv_sec;
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", localtime_r(&tt, &tm));
}

static void fmt_size(uint64_t n, int exact, char *buf, size_t len)
{
	if (exact)
		snprintf(buf, len, "%" PRIu64, n);
	else
		nicenum(n, buf, len);
}

static void json_node(const struct stat *st, const char *target)
{
	printf("\"type\": \"%s\", \"mode\": \"%04o\", \"uid\": %u, \"gid\": %u, \"size\": %lld, "
	       "\"mtime\": %lld",
	       type_name(st->st_mode), (unsigned)(st->st_mode & 07777), (unsigned)st->st_uid,
	       (unsigned)st->st_gid, (long long)st->st_size, (long long)st->st_mtim.tv_sec);
	if (target) {
		printf(", \"target\": ");
		json_str(target);
	}
}

/* ---- show ---- */

struct show {
	struct table t;
	int exact, json, first;
};

static int show_cb(void *arg, const char *path, const struct stat *st, const char *target)
{
	struct show *s = arg;
	if (!*path)
		path = ".";
	if (s->json) {
		printf("%s\n  {\"path\": ", s->first ? "" : ",");
		json_str(path);
		printf(", ");
		json_node(st, target);
		printf("}");
		s->first = 0;
		return 0;
	}
	char type[2] = {type_char(st->st_mode), 0}, mode[8], size[24], mtime[32], p[PATH_MAX * 2];
	snprintf(mode, sizeof(mode), "%04o", (unsigned)(st->st_mode & 07777));
	fmt_size((uint64_t)st->st_size, s->exact, size, sizeof(size));
	fmt_time(&st->st_mtim, s->exact, mtime, sizeof(mtime));
	if (target)
		snprintf(p, sizeof(p), "%s -> %s", path, target);
	table_add(&s->t, type, mode, user_name(st->st_uid), group_name(st->st_gid), size, mtime,
		  target ? p : path);
	return 0;
}

int tree_show(const char *root, uint64_t id, int scripted, int exact, int json)
{
	struct view v;
	view_open(root, id, &v);
	static const char *const head[] = {"TYPE", "MODE",  "OWNER", "GROUP",
					   "SIZE", "MTIME", "PATH"};
	struct show s = {.t = {.ncol = 7, .head = head, .align = "lllrrll"},
			 .exact = exact,
			 .json = json,
			 .first = 1};
	if (json) {
		json_head("show");
		printf(", \"id\": %" PRIu64 ", \"tree\": true, \"entries\": [", id);
	}
	int rc = tree_walk(v.dir, (const char *const *)v.roots, v.nroots, NULL, show_cb, &s);
	if (rc)
		errx(1, "%s: %" PRIu64 ": %s", cmd, id, strerror(-rc));
	if (json)
		printf("%s]}\n", s.first ? "" : "\n");
	else
		table_print(&s.t, scripted);
	return 0;
}

/* ---- arguments of diff and restore ---- */

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* The PATH arguments as paths relative to the mount root, each inside a
 * pinned tree of v. */
static const char **tree_subs(const char *root, const struct view *v, int n, char **paths,
			      size_t *nsubs)
{
	if (n <= 0) {
		/* The view's top directories list only the way to the pinned
		 * paths: compared with the whole live tree, everything else
		 * would look added (and a restore would remove it). */
		if (v->guessed)
			errx(1,
			     "%s: %" PRIu64
			     ": the daemon does not tell the pinned paths: give PATHs",
			     cmd, v->id);
		*nsubs = v->nroots;
		return (const char **)v->roots;
	}
	const char **subs = calloc((size_t)n, sizeof(*subs));
	if (!subs)
		err(1, "%s", cmd);
	for (int i = 0; i < n; i++) {
		char rel[PATH_MAX];
		rel_path(root, paths[i], rel, sizeof(rel));
		const char *r = strcmp(rel, ".") ? rel : "";
		bool in = false;
		for (size_t k = 0; k < v->nroots && !in; k++)
			in = path_under(r, v->roots[k]) || !*v->roots[k];
		if (!in)
			errx(1, "%s: %s: not in snapshot %" PRIu64, cmd, paths[i], v->id);
		if (!(subs[i] = strdup(r)))
			err(1, "%s", cmd);
	}
	*nsubs = (size_t)n;
	return subs;
}

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	interrupted = 1;
}

struct prog {
	int on;
	struct timespec last;
};

static void progress(void *arg, const char *phase, size_t done, size_t total)
{
	struct prog *p = arg;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if ((now.tv_sec - p->last.tv_sec) * 1000000000L + (now.tv_nsec - p->last.tv_nsec) <
	    100000000L)
		return;
	p->last = now;
	p->on = 1;
	fprintf(stderr, "\rsnapctl: %s: %s %zu/%zu\033[K", cmd, phase, done, total);
}

static void progress_end(struct prog *p)
{
	if (p->on)
		fprintf(stderr, "\r\033[K");
	p->on = 0;
}

/* The diff of v (or its subs) against to, or exit 1. */
static struct tree_diff *diff_make(const struct view *v, const char *to, const char *exclude,
				   const char **subs, size_t nsubs, unsigned flags, struct prog *p)
{
	struct tree_opts o = {.ident = view_ident,
			      .exclude = exclude,
			      .flags = TREE_TRUST_CTIME | TREE_IGNORE_SETID | flags,
			      .stop = &interrupted,
			      .progress = isatty(2) ? progress : NULL,
			      .progress_arg = p};
	struct tree_diff *d;
	int rc = tree_diff_new(v->dir, to, subs, nsubs, &o, &d);
	progress_end(p);
	if (rc == -EINTR) {
		warnx("%s: interrupted", cmd);
		exit(130);
	}
	if (rc == -ENOENT && nsubs == 1)
		errx(1, "%s: %s: not in snapshot %" PRIu64 " nor live", cmd,
		     *subs[0] ? subs[0] : ".", v->id);
	if (rc)
		errx(1, "%s: %" PRIu64 ": %s", cmd, v->id, strerror(-rc));
	return d;
}

/* ---- diff ---- */

static void fmt_what(const struct tree_change *c, int exact, char *buf, size_t len)
{
	size_t at = 0;
	buf[0] = 0;
	if (c->type == '+' || c->type == '-') {
		const struct stat *st = c->st_to ? c->st_to : c->st_from;
		snprintf(buf, len, "%s", type_name(st->st_mode));
		return;
	}
	for (unsigned b = 0; b < 10 && at < len; b++) {
		if (!(c->fields & (1u << b)))
			continue;
		at += (size_t)snprintf(buf + at, len - at, "%s%s", at ? "," : "",
				       tree_field_names[b]);
		if ((1u << b) != TREE_F_DATA)
			continue;
		for (size_t k = 0; k < c->nranges && at < len; k++) {
			char o[24], l[24];
			fmt_size(c->ranges[k].off, exact, o, sizeof(o));
			fmt_size(c->ranges[k].len, exact, l, sizeof(l));
			at += (size_t)snprintf(buf + at, len - at, "%s%s+%s", k ? " " : " ", o, l);
		}
	}
	if (at >= len && len > 4)
		strcpy(buf + len - 4, "...");
}

static void json_change(const struct tree_change *c, int first)
{
	char t[2] = {c->type, 0};
	printf("%s\n  {\"change\": \"%s\", \"path\": ", first ? "" : ",", t);
	json_str(c->path);
	if (c->from) {
		printf(", \"from\": ");
		json_str(c->from);
	}
	const struct stat *st = c->st_to ? c->st_to : c->st_from;
	printf(", \"type\": \"%s\"", type_name(st->st_mode));
	if (c->type == 'M') {
		printf(", \"fields\": [");
		int n = 0;
		for (unsigned b = 0; b < 10; b++)
			if (c->fields & (1u << b))
				printf("%s\"%s\"", n++ ? ", " : "", tree_field_names[b]);
		printf("], \"ranges\": [");
		for (size_t k = 0; k < c->nranges; k++)
			printf("%s[%" PRIu64 ", %" PRIu64 "]", k ? ", " : "", c->ranges[k].off,
			       c->ranges[k].len);
		printf("]");
	}
	if (c->st_from) {
		printf(", \"before\": {");
		json_node(c->st_from, c->target_from);
		printf("}");
	}
	if (c->st_to) {
		printf(", \"after\": {");
		json_node(c->st_to, c->target_to);
		printf("}");
	}
	printf("}");
}

int tree_diff(const char *root, uint64_t id, int nargs, char **args, int scripted, int exact,
	      int json)
{
	uint64_t id2 = 0;
	struct stat st;
	if (nargs > 0 && all_digits(args[0]) && lstat(args[0], &st)) {
		id2 = parse_id(args[0]);
		if (!snap_is_tree(root, id2))
			errx(1, "%s: %s: not a tree snapshot", cmd, args[0]);
		nargs--, args++;
	}
	struct view v, v2;
	view_open(root, id, &v);
	if (id2)
		view_open(root, id2, &v2);
	size_t nsubs;
	const char **subs = tree_subs(root, &v, nargs, args, &nsubs);
	struct prog p = {0};
	struct tree_diff *d =
	    diff_make(&v, id2 ? v2.dir : root, id2 ? NULL : v.snapdir, subs, nsubs, 0, &p);
	static const char *const head[] = {"CHANGE", "PATH", "WHAT"};
	struct table t = {.ncol = 3, .head = head, .align = "lll"};
	if (json) {
		json_head("diff");
		printf(", \"id\": %" PRIu64 ", \"id2\": ", id);
		if (id2)
			printf("%" PRIu64, id2);
		else
			printf("null");
		printf(", \"changes\": [");
	}
	size_t n = tree_diff_count(d);
	for (size_t i = 0; i < n; i++) {
		const struct tree_change *c = tree_diff_get(d, i);
		if (json) {
			json_change(c, i == 0);
			continue;
		}
		char type[2] = {c->type, 0}, what[4096], path[PATH_MAX * 2 + 8];
		const char *pp = *c->path ? c->path : ".";
		if (c->type == 'R')
			snprintf(path, sizeof(path), "%s -> %s", *c->from ? c->from : ".", pp);
		else
			snprintf(path, sizeof(path), "%s", pp);
		fmt_what(c, exact, what, sizeof(what));
		table_add(&t, type, path, what);
	}
	if (json)
		printf("%s]}\n", n ? "\n" : "");
	else
		table_print(&t, scripted);
	tree_diff_free(d);
	if (subs != (const char **)v.roots) {
		for (size_t i = 0; i < nsubs; i++)
			free((char *)subs[i]);
		free(subs);
	}
	return 0;
}

/* ---- restore ---- */

struct rep {
	int rc;
	struct prog *p;
};

static int report(void *arg, const struct tree_action *a)
{
	struct rep *r = arg;
	const char *path = *a->path ? a->path : ".";
	if (a->err) {
		progress_end(r->p);
		warnx("%s: %s: %s: %s", cmd, path, a->verb, strerror(-a->err));
		r->rc = 1;
		return 0;
	}
	if (!strcmp(a->verb, "rename") || !strcmp(a->verb, "link") ||
	    !strcmp(a->verb, "move-aside")) {
		printf("%s\t%s -> %s\n", a->verb, a->from, path);
	} else if (!strcmp(a->verb, "write") || !strcmp(a->verb, "truncate") ||
		   (!strcmp(a->verb, "create") && a->bytes)) {
		printf("%s\t%s\t%" PRIu64 "\n", a->verb, path, a->bytes);
	} else if (!strcmp(a->verb, "attr")) {
		printf("attr\t%s\t", path);
		int n = 0;
		for (unsigned b = 0; b < 10; b++)
			if (a->fields & (1u << b))
				printf("%s%s", n++ ? "," : "", tree_field_names[b]);
		printf("\n");
	} else {
		printf("%s\t%s\n", a->verb, path);
	}
	return 0;
}

int tree_restore(const char *root, uint64_t id, int nargs, char **args, int dry)
{
	struct view v;
	view_open(root, id, &v);
	size_t nsubs;
	const char **subs = tree_subs(root, &v, nargs, args, &nsubs);
	struct sigaction sa = {.sa_handler = on_sigint};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	struct prog p = {0};
	struct tree_diff *d =
	    diff_make(&v, root, v.snapdir, subs, nsubs, dry ? TREE_DRY_RUN : 0, &p);
	struct rep r = {0, &p};
	struct tree_stats st = {0};
	int rc = tree_apply(d, report, &r, &st);
	progress_end(&p);
	tree_diff_free(d);
	if (subs != (const char **)v.roots) {
		for (size_t i = 0; i < nsubs; i++)
			free((char *)subs[i]);
		free(subs);
	}
	if (rc == -EINTR) {
		fflush(stdout);
		warnx("%s: interrupted: run it again to finish", cmd);
		exit(130);
	}
	if (rc)
		errx(1, "%s: %" PRIu64 ": %s", cmd, id, strerror(-rc));
	return r.rc;
}
