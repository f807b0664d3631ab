// SPDX-License-Identifier: MIT
/*
 * snapctl: pin, release, list, show, diff, restore, stats and check the
 * snapshots of a snapfs mount, over the control ioctl (snapfs_proto.h).
 * Output follows zfs: a header and aligned columns, -H for tab-separated
 * lines without header, --json with an output_version, sizes exact with
 * -p (output.c). Results go to stdout only; every error is one line on
 * stderr, "snapctl: COMMAND: what: why", and the exit status is 0
 * (success), 1 (failure) or 2 (usage; cli.c). The daemon answers long
 * results in pages; each command loops on the cursor until it is 0 and
 * reads the records with the codec (rec.h), which refuses a malformed
 * answer. snapctl links libsnapfs' objects statically (client_i.h's
 * private helpers are not exported from the shared library).
 */
#include "snapctl_i.h"
#include "snapfs.h"
#include "snapfs_proto.h"
#include "client_i.h"
#include "path.h"
#include "rec.h"
#include "treecmd.h"

#include <err.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef SNAPFS_VERSION
#define SNAPFS_VERSION "unknown"
#endif

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
		struct rec_iter it;
		struct snapfs_rec_snap s;
		int rc;
		rec_iter_init(&it, r);
		while ((rc = rec_next_snap(&it, &s)) > 0) {
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
		if (rc < 0)
			malformed();
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
		struct rec_iter it;
		struct snapfs_rec_file f;
		const char *path;
		int rc;
		rec_iter_init(&it, r);
		while ((rc = rec_next_file(&it, &f, &path)) > 0)
			fn(arg, &f, path);
		if (rc < 0)
			malformed();
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
	if (snap_is_tree(root, id)) /* walk its view (treecmd.c) */
		return tree_show(root, id, scripted, c.exact, c.json);
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
	uint64_t id = parse_id(argv[optind]);
	char root[PATH_MAX];
	mount_root(optind + 1 < argc ? argv[optind + 1] : NULL, root, sizeof(root));
	if (snap_is_tree(root, id)) /* walk its view (treecmd.c) */
		return tree_diff(root, id, argc - optind - 1, argv + optind + 1, scripted, exact,
				 json);
	if (optind + 2 < argc)
		usage_err("%s: unexpected argument", argv[optind + 2]);
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
		struct rec_iter it;
		struct snapfs_rec_diff d;
		const void *ranges;
		const char *path;
		int more;
		rec_iter_init(&it, r);
		while ((more = rec_next_diff(&it, &d, &ranges, &path)) > 0) {
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
				struct snapfs_range rg = rec_range(ranges, k);
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
		}
		if (more < 0)
			malformed();
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
	static const struct option lo[] = {{"dry-run", no_argument, NULL, 'n'}, HELP_OPTION, {0}};
	int dry = 0;
	while (next_opt(argc, argv, "+n", lo) != -1)
		dry = 1;
	if (optind >= argc)
		usage_err("missing ID");
	uint64_t id = parse_id(argv[optind]);
	char root[PATH_MAX];
	mount_root(optind + 1 < argc ? argv[optind + 1] : NULL, root, sizeof(root));
	if (snap_is_tree(root, id)) /* walk its view (treecmd.c) */
		return tree_restore(root, id, argc - optind - 1, argv + optind + 1, dry);
	if (dry)
		usage_err("--dry-run: only for tree snapshots");
	struct snapfs_req *q = req_new(SNAPFS_OP_RESTORE);
	add_filters(root, id, q, argv + optind + 1, argc - optind - 1);
	struct snapfs_req *r = req_new(SNAPFS_OP_RESTORE);
	int rc = 0;
	for (uint64_t cursor = 0;;) {
		memcpy(r, q, sizeof(*r));
		r->id = id;
		r->cursor = cursor;
		call(root, r, NULL, 1);
		struct rec_iter it;
		struct snapfs_rec_restore s;
		const char *path;
		int more;
		rec_iter_init(&it, r);
		while ((more = rec_next_restore(&it, &s, &path)) > 0) {
			if (s.status) {
				warnx("%s: %s: %s", cmd, path, strerror(-s.status));
				rc = 1;
			} else if (s.written || s.flags) {
				printf("%s: %" PRIu64 " bytes written%s\n", path, s.written,
				       (s.flags & SNAPFS_RESTORE_CREATED) ? " (recreated)" : "");
			}
		}
		if (more < 0)
			malformed();
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
	if (r->len < sizeof(s) || r->len > sizeof(r->data))
		malformed();
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
		struct rec_iter it;
		const char *line;
		int more;
		rec_iter_init(&it, r);
		while ((more = rec_next_line(&it, &line)) > 0)
			printf("%s\n", line);
		if (more < 0)
			malformed();
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
    {"diff", cmd_diff, "diff [-H] [-p] [--json] ID [ID2] [PATH...]"},
    {"restore", cmd_restore, "restore [-n|--dry-run] ID [PATH...]"},
    {"stats", cmd_stats, "stats [-H] [-p] [--json]"},
    {"check", cmd_check, "check"},
    {0},
};

const struct command *commands = command_table;
const char *mnt_opt;
const char *cmd = "";

int main(int argc, char **argv)
{
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
