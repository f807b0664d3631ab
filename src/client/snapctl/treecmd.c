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
 * answer (data: '\n'-separated, "" for the whole mount); without them
 * diff and restore need PATHs (the view's top directories list only the
 * way down to the pinned trees).
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
	char **roots; /* into buf */
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
	v->guessed = false;
	strlcpy(v->snapdir, r->data, sizeof(v->snapdir));
	if ((size_t)snprintf(v->dir, sizeof(v->dir), "%s/%s/%" PRIu64,
			     strcmp(root, "/") ? root : "", r->data, id) >= sizeof(v->dir))
		errx(1, "%s: %s: path too long", cmd, root);
	free(r);
	struct stat st;
	if (stat(v->dir, &st) && errno == ENOENT)
		errx(1, "%s: %" PRIu64 ": no such snapshot", cmd, id);
	if (stat(v->dir, &st))
		err(1, "%s: %s", cmd, v->dir);
	r = req_new(SNAPFS_OP_SHOW);
	r->id = id;
	v->nroots = 0;
	if (snapfs_call(root, r) == 0 || errno != ENOTSUP || !r->len || r->len > sizeof(r->data)) {
		v->buf[0] = 0; /* no roots told: the whole view */
		v->guessed = true;
	} else {
		memcpy(v->buf, r->data, r->len);
		v->buf[r->len - 1] = 0;
	}
	free(r);
	size_t n = 1;
	for (const char *p = v->buf; (p = strchr(p, '\n')); p++)
		n++;
	if (!(v->roots = calloc(n, sizeof(*v->roots))))
		err(1, "%s", cmd);
	for (char *p = v->buf, *e; p; p = e) {
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

static const char *type_char(mode_t m)
{
	return S_ISDIR(m)    ? "d"
	       : S_ISREG(m)  ? "-"
	       : S_ISLNK(m)  ? "l"
	       : S_ISFIFO(m) ? "p"
	       : S_ISCHR(m)  ? "c"
	       : S_ISBLK(m)  ? "b"
			     : "s";
}

static void fmt_size(uint64_t n, int exact, char *buf, size_t len)
{
	if (exact)
		snprintf(buf, len, "%" PRIu64, n);
	else
		nicenum(n, buf, len);
}

/* ---- show ---- */

static const struct col show_cols[] = {
    {"TYPE", COL_DEFAULT, "d directory, - file, l symlink, p FIFO, c or b device, s socket"},
    {"MODE", COL_DEFAULT, "permission bits, octal"},
    {"OWNER", COL_DEFAULT, "the owning user"},
    {"GROUP", COL_DEFAULT, "the owning group"},
    {"SIZE", COL_RIGHT | COL_NUM | COL_DEFAULT, "size in bytes"},
    {"MTIME", COL_NUM | COL_DEFAULT, "modification time"},
    {"PATH", COL_DEFAULT, "the entry, relative to the mount root"},
    {"TARGET", COL_JSON, "a symlink's target"},
    {"UID", COL_RIGHT | COL_NUM | COL_JSON, "the owner's user ID"},
    {"GID", COL_RIGHT | COL_NUM | COL_JSON, "the group ID"},
    {0},
};

struct show {
	struct table t;
	int exact;
	size_t n;
};

static int show_cb(void *arg, const char *path, const struct stat *st, const char *target)
{
	struct show *s = arg;
	if (interrupted)
		return -EINTR;
	char mode[8], size[24], mtime[32], uid[16], gid[16];
	snprintf(mode, sizeof(mode), "%04o", (unsigned)(st->st_mode & 07777));
	fmt_size((uint64_t)st->st_size, s->exact, size, sizeof(size));
	fmt_time(st->st_mtim.tv_sec, s->exact, mtime, sizeof(mtime));
	snprintf(uid, sizeof(uid), "%u", (unsigned)st->st_uid);
	snprintf(gid, sizeof(gid), "%u", (unsigned)st->st_gid);
	const char *cells[] = {type_char(st->st_mode),
			       mode,
			       user_name(st->st_uid),
			       group_name(st->st_gid),
			       size,
			       mtime,
			       *path ? path : ".",
			       target,
			       uid,
			       gid};
	const int64_t keys[] = {0, 0, 0,	  0,	     st->st_size, st->st_mtim.tv_sec,
				0, 0, st->st_uid, st->st_gid};
	table_add(&s->t, cells, keys);
	if (++s->n % 4096 == 0)
		progress("%zu entries", s->n);
	return 0;
}

int tree_show(const char *root, uint64_t id, const struct outopts *o)
{
	struct view v;
	view_open(root, id, &v);
	struct show s = {.exact = o->exact || o->json};
	table_setup(&s.t, "entries", show_cols, o);
	catch_sigint();
	int rc = tree_walk(v.dir, (const char *const *)v.roots, v.nroots, NULL, show_cb, &s);
	free(v.roots);
	progress_done();
	if (rc == -EINTR || interrupted) {
		warnx("%s: interrupted", cmd);
		exit(EXIT_INTERRUPTED);
	}
	if (rc)
		errx(1, "%s: %" PRIu64 ": %s", cmd, id, strerror(-rc));
	table_print(&s.t, "show");
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

static void engine_progress(void *arg, const char *phase, size_t done, size_t total)
{
	progress("%s %zu/%zu", phase, done, total);
}

/* The diff of v (or its subs) against to, or exit 1. */
static struct tree_diff *diff_make(const struct view *v, const char *to, const char *exclude,
				   const char **subs, size_t nsubs, unsigned flags)
{
	struct tree_opts o = {.ident = view_ident,
			      .exclude = exclude,
			      .flags = TREE_TRUST_CTIME | TREE_IGNORE_SETID | flags,
			      .stop = &interrupted,
			      .progress = engine_progress};
	struct tree_diff *d;
	catch_sigint();
	int rc = tree_diff_new(v->dir, to, subs, nsubs, &o, &d);
	progress_done();
	if (rc == -EINTR) {
		warnx("%s: interrupted", cmd);
		exit(EXIT_INTERRUPTED);
	}
	if (rc == -ENOENT && nsubs == 1)
		errx(1, "%s: %s: not in snapshot %" PRIu64 " nor live", cmd,
		     *subs[0] ? subs[0] : ".", v->id);
	if (rc)
		errx(1, "%s: %" PRIu64 ": %s", cmd, v->id, strerror(-rc));
	return d;
}

/* ---- diff ---- */

static const struct col diff_cols[] = {
    {"CHANGE", COL_DEFAULT, "+ added, - removed, M modified, R renamed"},
    {"PATH", COL_DEFAULT, "the entry (R: old -> new, in a table)"},
    {"WHAT", COL_DEFAULT, "what changed (M), with the changed byte ranges; the type (+, -)"},
    {"FROM", COL_JSON, "R: the old path"},
    {"TYPE", COL_JSON, "file, dir, symlink, fifo, char, block, socket"},
    {"FIELDS", COL_JSON, "M: what changed, comma-separated"},
    {"RANGES", COL_JSON, "M: the changed byte ranges, OFFSET+LENGTH comma-separated"},
    {0},
};

/* "type,mode,data" and, when ranges, "0+4096,8192+4096". */
static void fmt_fields(const struct tree_change *c, char *buf, size_t len)
{
	size_t at = 0;
	buf[0] = 0;
	for (unsigned b = 0; b < 10 && at < len; b++)
		if (c->fields & (1u << b))
			at += (size_t)snprintf(buf + at, len - at, "%s%s", at ? "," : "",
					       tree_field_names[b]);
}

static void fmt_ranges(const struct tree_change *c, int exact, char *buf, size_t len)
{
	size_t at = 0;
	buf[0] = 0;
	for (size_t k = 0; k < c->nranges && at < len; k++) {
		char o[24], l[24];
		fmt_size(c->ranges[k].off, exact, o, sizeof(o));
		fmt_size(c->ranges[k].len, exact, l, sizeof(l));
		at += (size_t)snprintf(buf + at, len - at, "%s%s+%s", k ? "," : "", o, l);
	}
	if (at >= len && len > 4)
		strcpy(buf + len - 4, "...");
}

int tree_diff(const char *root, uint64_t id, int nargs, char **args, const struct outopts *oo)
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
	struct table t;
	table_setup(&t, "changes", diff_cols, oo);
	struct tree_diff *d =
	    diff_make(&v, id2 ? v2.dir : root, id2 ? NULL : v.snapdir, subs, nsubs, 0);
	int exact = oo->exact || oo->json;
	size_t n = tree_diff_count(d);
	static char ranges[1 << 16], what[sizeof(ranges) + 256];
	for (size_t i = 0; i < n; i++) {
		const struct tree_change *c = tree_diff_get(d, i);
		const struct stat *cs = c->st_to ? c->st_to : c->st_from;
		char type[2] = {c->type, 0}, fields[256], path[2 * PATH_MAX + 8];
		const char *p = *c->path ? c->path : ".";
		if (c->type == 'R' && !oo->json)
			snprintf(path, sizeof(path), "%s -> %s", *c->from ? c->from : ".", p);
		else
			snprintf(path, sizeof(path), "%s", p);
		fmt_fields(c, fields, sizeof(fields));
		fmt_ranges(c, exact, ranges, sizeof(ranges));
		if (c->type == '+' || c->type == '-')
			snprintf(what, sizeof(what), "%s", type_name(cs->st_mode));
		else
			snprintf(what, sizeof(what), "%s%s%s", fields, *ranges ? " " : "", ranges);
		const char *cells[] = {type,
				       path,
				       c->type == 'R' ? NULL : what,
				       c->from,
				       type_name(cs->st_mode),
				       c->type == 'M' ? fields : NULL,
				       c->nranges ? ranges : NULL};
		const int64_t keys[] = {0, 0, 0, 0, 0, 0, 0};
		table_add(&t, cells, keys);
	}
	table_print(&t, "diff");
	tree_diff_free(d);
	if (subs != (const char **)v.roots) {
		for (size_t i = 0; i < nsubs; i++)
			free((char *)subs[i]);
		free(subs);
	}
	free(v.roots);
	if (id2)
		free(v2.roots);
	return 0;
}

/* ---- restore ---- */

struct rep {
	int rc;
};

static int report(void *arg, const struct tree_action *a)
{
	struct rep *r = arg;
	const char *path = *a->path ? a->path : ".";
	if (a->err) {
		progress_done();
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
	struct tree_diff *d = diff_make(&v, root, v.snapdir, subs, nsubs, dry ? TREE_DRY_RUN : 0);
	struct rep r = {0};
	struct tree_stats st = {0};
	int rc = tree_apply(d, report, &r, &st);
	progress_done();
	tree_diff_free(d);
	if (subs != (const char **)v.roots) {
		for (size_t i = 0; i < nsubs; i++)
			free((char *)subs[i]);
		free(subs);
	}
	free(v.roots);
	if (rc == -EINTR) {
		fflush(stdout);
		warnx("%s: interrupted (the steps printed are done; run it again to finish)", cmd);
		exit(EXIT_INTERRUPTED);
	}
	if (rc)
		errx(1, "%s: %" PRIu64 ": %s", cmd, id, strerror(-rc));
	return r.rc;
}
