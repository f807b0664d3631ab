// SPDX-License-Identifier: MIT
/*
 * snapctl: pin, release, prune, list, show, diff, restore, stats and check
 * the snapshots of a snapfs mount, over the control ioctl (snapfs_proto.h)
 * and libsnapfs' listing calls (snapfs_list, snapfs_show, snapfs_diff,
 * snapfs_lookup). Output follows zfs and lsblk: tables through
 * libsmartcols with -o, -s, -H, -p, -r and -J/--json (output.c). Results
 * go to stdout only; every error is one line on stderr, "snapctl:
 * COMMAND: what: why", and the exit status is 0 (success), 1 (failure),
 * 2 (usage; cli.c) or 130 (interrupted). The daemon answers long results
 * in pages; show, diff and restore print progress on a terminal and stop
 * cleanly between pages on SIGINT (a restore stopped so is finished by
 * running it again). snapctl links libsnapfs' objects statically
 * (client_i.h's private helpers are not exported from the shared library).
 */
#include "snapctl_i.h"
#include "snapfs.h"
#include "snapfs_proto.h"
#include "client_i.h"
#include "path.h"
#include "rec.h"
#include "treecmd.h"
#include "vec.h"

#include <err.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef SNAPFS_VERSION
#define SNAPFS_VERSION "unknown"
#endif

static void __attribute__((noreturn)) stop_interrupted(const char *what)
{
	progress_done();
	fflush(stdout);
	warnx("%s: interrupted%s", cmd, what ? what : "");
	exit(EXIT_INTERRUPTED);
}

/* ---- retention: the snapshots of a label, oldest first ---- */

struct ids {
	uint64_t *v;
	size_t n, alloc;
};

struct label_sel {
	const char *label;
	int pinned_only;
	struct ids ids;
};

static int label_one(const struct snapfs_snapshot *s, void *arg)
{
	struct label_sel *l = arg;
	if (strcmp(s->label, l->label) || (l->pinned_only && (s->flags & SNAPFS_SNAP_EPHEMERAL)))
		return 0;
	if (vec_push(&l->ids, s->id))
		err(1, "%s", cmd);
	return 0;
}

/* The IDs of the snapshots labelled label, by ascending ID (oldest first). */
static struct ids label_ids(const char *root, const char *label, int pinned_only)
{
	struct label_sel l = {label, pinned_only, {0}};
	if (snapfs_list(root, label_one, &l))
		lib_fail(root, 0);
	return l.ids;
}

/* Release the oldest pinned snapshots labelled label beyond the keep
 * newest; print each ID released (or to be, with dry). 0, or 1 when a
 * release failed. */
static int prune(const char *root, const char *label, unsigned keep, int dry)
{
	struct ids ids = label_ids(root, label, 1);
	int rc = 0;
	for (size_t i = 0; i + keep < ids.n; i++) {
		if (interrupted)
			stop_interrupted(NULL);
		if (!dry && snapfs_release(root, ids.v[i])) {
			warn("%s: %" PRIu64, cmd, ids.v[i]);
			rc = 1;
			continue;
		}
		printf("%" PRIu64 "\n", ids.v[i]);
	}
	vec_release(&ids);
	return rc;
}

/* ---- pin, release, prune ---- */

static int cmd_pin(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"expire", required_argument, NULL, 'e'},
	    {"label", required_argument, NULL, 'l'},
	    {"recursive", no_argument, NULL, 'r'},
	    {"keep", required_argument, NULL, 'k'},
	    {0},
	};
	int c, recursive = 0, keep = -1;
	const char *label = NULL, *expire = NULL;
	while ((c = next_opt(argc, argv, "rl:e:", lo, NULL)) != -1) {
		if (c == 'r')
			recursive = 1;
		else if (c == 'l')
			label = optarg;
		else if (c == 'e')
			expire = optarg;
		else if (c == 'k')
			keep = (int)parse_count("--keep", optarg);
	}
	int64_t expires = expire ? parse_expire(expire, (int64_t)time(NULL)) : 0;
	if (optind >= argc)
		usage_err("missing PATH");
	if (label && strlen(label) >= SNAPFS_PROTO_LABEL)
		usage_err("label longer than %d bytes", SNAPFS_PROTO_LABEL - 1);
	if (keep >= 0 && (!label || !*label))
		usage_err("--keep needs a label (-l)");
	if (keep == 0)
		usage_err("--keep 0 would release the snapshot just taken");
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
	r->expires = expires;
	if (label)
		strlcpy(r->label, label, sizeof(r->label));
	if (snapfs_call(root, r)) {
		if (errno == ENOENT && recursive)
			errx(1, "%s: no regular file to pin", cmd);
		err(1, "%s", cmd);
	}
	printf("%" PRIu64 "\n", r->id);
	free(r);
	if (keep > 0) {
		/* the IDs released go to stderr: stdout is the new snapshot's */
		struct ids ids = label_ids(root, label, 1);
		int rc = 0;
		for (size_t i = 0; i + (size_t)keep < ids.n; i++) {
			if (snapfs_release(root, ids.v[i])) {
				warn("%s: release %" PRIu64, cmd, ids.v[i]);
				rc = 1;
			}
		}
		vec_release(&ids);
		return rc;
	}
	return 0;
}

static int cmd_release(int argc, char **argv)
{
	static const struct option lo[] = {{"label", required_argument, NULL, 'l'}, {0}};
	const char *label = NULL;
	int c;
	while ((c = next_opt(argc, argv, "l:", lo, NULL)) != -1)
		label = optarg;
	if (optind >= argc && !label)
		usage_err("missing ID");
	for (int i = optind; i < argc; i++)
		parse_id(argv[i]);
	char root[PATH_MAX];
	mount_root(NULL, root, sizeof(root));
	int rc = 0;
	if (label) {
		struct ids ids = label_ids(root, label, 0);
		if (!ids.n) {
			warnx("%s: %s: no such snapshot", cmd, label);
			rc = 1;
		}
		for (size_t i = 0; i < ids.n; i++)
			if (snapfs_release(root, ids.v[i]) && errno != ENOENT) {
				warn("%s: %" PRIu64, cmd, ids.v[i]);
				rc = 1;
			}
		vec_release(&ids);
	}
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

static int cmd_relabel(int argc, char **argv)
{
	while (next_opt(argc, argv, "", NULL, NULL) != -1)
		;
	if (argc - optind != 2)
		usage_err(argc - optind < 2 ? "missing ID or LABEL" : "too many operands");
	uint64_t id = parse_id(argv[optind]);
	const char *label = argv[optind + 1];
	if (strlen(label) >= SNAPFS_PROTO_LABEL)
		errx(1, "%s: %s: label too long (at most %d bytes)", cmd, label,
		     SNAPFS_PROTO_LABEL - 1);
	char root[PATH_MAX];
	mount_root(NULL, root, sizeof(root));
	if (snapfs_relabel(root, id, label)) {
		if (errno == ENOENT)
			warnx("%s: %s: no such snapshot", cmd, argv[optind]);
		else if (errno == EINVAL)
			warnx("%s: %s: not a pinned snapshot", cmd, argv[optind]);
		else
			warn("%s: %s", cmd, argv[optind]);
		return 1;
	}
	return 0;
}

static int cmd_prune(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"keep", required_argument, NULL, 'k'},
	    {"label", required_argument, NULL, 'l'},
	    {"dry-run", no_argument, NULL, 'n'},
	    {0},
	};
	const char *label = NULL;
	int c, keep = -1, dry = 0;
	while ((c = next_opt(argc, argv, "k:l:n", lo, NULL)) != -1) {
		if (c == 'k')
			keep = (int)parse_count("--keep", optarg);
		else if (c == 'l')
			label = optarg;
		else if (c == 'n')
			dry = 1;
	}
	if (optind < argc)
		usage_err("%s: unexpected argument", argv[optind]);
	if (keep < 0)
		usage_err("missing --keep N");
	if (!label || !*label)
		usage_err("missing -l LABEL");
	char root[PATH_MAX];
	mount_root(NULL, root, sizeof(root));
	catch_sigint();
	return prune(root, label, (unsigned)keep, dry);
}

/* ---- list ---- */

static const struct col list_cols[] = {
    {"ID", COL_RIGHT | COL_NUM | COL_DEFAULT, "snapshot ID"},
    {"EPOCH", COL_RIGHT | COL_NUM | COL_DEFAULT, "the store epoch it was taken at"},
    {"CREATED", COL_NUM | COL_DEFAULT, "when it was taken"},
    {"EXPIRES", COL_NUM | COL_DEFAULT, "when the daemon releases it (- never)"},
    {"FILES", COL_RIGHT | COL_NUM | COL_DEFAULT, "files in it"},
    {"HELD", COL_RIGHT | COL_NUM | COL_DEFAULT, "store bytes only it keeps"},
    {"LABEL", COL_DEFAULT, "its label (- none)"},
    {"OWNER", COL_DEFAULT, "who pinned it"},
    {"UID", COL_RIGHT | COL_NUM | COL_JSON, "the owner's user ID"},
    {"STATE", COL_DEFAULT, "valid, expiring, ephemeral or stale"},
    {0},
};

struct list_ctx {
	struct table t;
	const char *label;
	int exact;
};

static int list_one(const struct snapfs_snapshot *s, void *arg)
{
	struct list_ctx *l = arg;
	if (l->label && strcmp(l->label, s->label))
		return 0;
	char id[24], ep[24], cr[32], ex[32], nf[24], held[24], own[64], uid[16];
	snprintf(id, sizeof(id), "%" PRIu64, s->id);
	snprintf(ep, sizeof(ep), "%" PRIu64, s->epoch);
	snprintf(nf, sizeof(nf), "%" PRIu64, s->files);
	snprintf(uid, sizeof(uid), "%u", s->uid);
	fmt_time(s->created, l->exact, cr, sizeof(cr));
	fmt_time(s->expires, l->exact, ex, sizeof(ex));
	if (l->exact)
		snprintf(held, sizeof(held), "%" PRIu64, s->bytes_held);
	else
		nicenum(s->bytes_held, held, sizeof(held));
	const char *cells[] = {id,
			       ep,
			       cr,
			       s->expires ? ex : NULL,
			       nf,
			       held,
			       s->label[0] ? s->label : NULL,
			       owner_name(s->uid, own, sizeof(own)),
			       uid,
			       snap_state(s->flags, s->expires)};
	const int64_t keys[] = {(int64_t)s->id,
				(int64_t)s->epoch,
				s->created,
				s->expires,
				(int64_t)s->files,
				(int64_t)s->bytes_held,
				0,
				0,
				s->uid,
				0};
	table_add(&l->t, cells, keys);
	return 0;
}

static int cmd_list(int argc, char **argv)
{
	static const struct option lo[] = {{"label", required_argument, NULL, 'l'}, {0}};
	struct outopts o = {0};
	struct list_ctx l = {0};
	while (next_opt(argc, argv, "l:", lo, &o) != -1)
		l.label = optarg;
	if (optind < argc)
		usage_err("%s: unexpected argument", argv[optind]);
	char root[PATH_MAX];
	mount_root(NULL, root, sizeof(root));
	l.exact = o.exact || o.json;
	table_setup(&l.t, "snapshots", list_cols, &o);
	if (snapfs_list(root, list_one, &l))
		lib_fail(root, 0);
	table_print(&l.t, "list");
	return 0;
}

/* ---- show ---- */

static const struct col show_cols[] = {
    {"PATH", COL_DEFAULT, "the file, relative to the mount root"},
    {"SIZE", COL_RIGHT | COL_NUM | COL_DEFAULT, "its size at pin time"},
    {"MODE", COL_DEFAULT, "its permissions at pin time"},
    {"UID", COL_RIGHT | COL_NUM | COL_JSON, "its owner"},
    {"GID", COL_RIGHT | COL_NUM | COL_JSON, "its group"},
    {"MTIME", COL_NUM | COL_JSON, "its modification time at pin time"},
    {0},
};

struct show_ctx {
	struct table t;
	int exact;
	uint64_t n;
};

static int show_one(const struct snapfs_file *f, void *arg)
{
	struct show_ctx *c = arg;
	if (interrupted)
		return 1;
	char size[24], mode[16], uid[16], gid[16], mt[32];
	snprintf(mode, sizeof(mode), "%04o", f->mode & 07777);
	snprintf(uid, sizeof(uid), "%u", f->uid);
	snprintf(gid, sizeof(gid), "%u", f->gid);
	fmt_time(f->mtime, c->exact, mt, sizeof(mt));
	if (c->exact)
		snprintf(size, sizeof(size), "%" PRIu64, f->size);
	else
		nicenum(f->size, size, sizeof(size));
	const char *cells[] = {f->path, size, mode, uid, gid, mt};
	const int64_t keys[] = {0, (int64_t)f->size, 0, f->uid, f->gid, f->mtime};
	table_add(&c->t, cells, keys);
	if (++c->n % 1024 == 0)
		progress("%" PRIu64 " files", c->n);
	return 0;
}

static int cmd_show(int argc, char **argv)
{
	struct outopts o = {0};
	struct show_ctx c = {0};
	while (next_opt(argc, argv, "", NULL, &o) != -1)
		;
	if (optind >= argc)
		usage_err("missing ID");
	if (optind + 1 < argc)
		usage_err("%s: unexpected argument", argv[optind + 1]);
	char root[PATH_MAX];
	mount_root(NULL, root, sizeof(root));
	uint64_t id = parse_snap(root, argv[optind]);
	if (snap_is_tree(root, id)) /* walk its view (treecmd.c) */
		return tree_show(root, id, &o);
	c.exact = o.exact || o.json;
	table_setup(&c.t, "files", show_cols, &o);
	catch_sigint();
	int rc = snapfs_show(root, id, show_one, &c);
	if (rc > 0 || interrupted)
		stop_interrupted(NULL);
	if (rc < 0)
		lib_fail(root, id);
	progress_done();
	table_print(&c.t, "show");
	return 0;
}

/* ---- diff and restore ---- */

static int match_one(const struct snapfs_file *f, void *arg)
{
	return path_under(f->path, arg) ? 1 : 0;
}

/* The PATH arguments as filters for the daemon: each must name a file (or
 * a directory holding files) of the snapshot, else exit 1. */
static void add_filters(const char *root, uint64_t id, struct snapfs_req *r, char **paths, int n)
{
	for (int i = 0; i < n; i++) {
		char rel[PATH_MAX];
		rel_path(root, paths[i], rel, sizeof(rel));
		int rc = snapfs_show(root, id, match_one, rel);
		if (rc < 0)
			lib_fail(root, id);
		if (!rc)
			errx(1, "%s: %s: not in snapshot %" PRIu64, cmd, paths[i], id);
		size_t len = strlen(rel) + 1;
		if (r->len + len > sizeof(r->data))
			errx(1, "%s: %s: too many paths", cmd, paths[i]);
		memcpy(r->data + r->len, rel, len);
		r->len += (uint32_t)len;
		r->count++;
	}
}

static const struct col diff_cols[] = {
    {"PATH", COL_DEFAULT, "the file, relative to the mount root"},
    {"OFFSET", COL_RIGHT | COL_NUM | COL_DEFAULT, "where the changed range starts"},
    {"LENGTH", COL_RIGHT | COL_NUM | COL_DEFAULT, "how long it is"},
    {"SIZE", COL_RIGHT | COL_NUM | COL_JSON, "the file's size at pin time"},
    {0},
};

struct diff_ctx {
	struct table t;
	int exact, rc;
	uint64_t files, ranges;
	const char *last;
};

static int diff_one(const struct snapfs_change *ch, void *arg)
{
	struct diff_ctx *c = arg;
	if (interrupted)
		return 1;
	if (ch->error) {
		warnx("%s: %s: %s", cmd, ch->path, strerror(ch->error));
		c->rc = 1;
		return 0;
	}
	char o[24], l[24], sz[24];
	if (c->exact) {
		snprintf(o, sizeof(o), "%" PRIu64, ch->offset);
		snprintf(l, sizeof(l), "%" PRIu64, ch->length);
		snprintf(sz, sizeof(sz), "%" PRIu64, ch->size);
	} else {
		nicenum(ch->offset, o, sizeof(o));
		nicenum(ch->length, l, sizeof(l));
		nicenum(ch->size, sz, sizeof(sz));
	}
	const char *cells[] = {ch->path, o, l, sz};
	const int64_t keys[] = {0, (int64_t)ch->offset, (int64_t)ch->length, (int64_t)ch->size};
	table_add(&c->t, cells, keys);
	if (++c->ranges % 1024 == 0)
		progress("%" PRIu64 " ranges", c->ranges);
	return 0;
}

static int cmd_diff(int argc, char **argv)
{
	struct outopts o = {0};
	struct diff_ctx c = {0};
	while (next_opt(argc, argv, "", NULL, &o) != -1)
		;
	if (optind >= argc)
		usage_err("missing ID");
	char root[PATH_MAX];
	mount_root(optind + 1 < argc ? argv[optind + 1] : NULL, root, sizeof(root));
	uint64_t id = parse_snap(root, argv[optind]);
	if (snap_is_tree(root, id)) /* walk its view (treecmd.c) */
		return tree_diff(root, id, argc - optind - 1, argv + optind + 1, &o);
	struct snapfs_req *q = req_new(SNAPFS_OP_DIFF);
	add_filters(root, id, q, argv + optind + 1, argc - optind - 1);
	/* the filters as add_filters checked and placed them */
	const char *paths[SNAPFS_PROTO_DATA / 2];
	size_t n = 0;
	for (uint32_t off = 0; n < q->count; n++) {
		paths[n] = q->data + off;
		off += (uint32_t)strlen(q->data + off) + 1;
	}
	c.exact = o.exact || o.json;
	table_setup(&c.t, "ranges", diff_cols, &o);
	catch_sigint();
	int rc = snapfs_diff(root, id, paths, n, diff_one, &c);
	free(q);
	if (rc > 0 || interrupted)
		stop_interrupted(NULL);
	if (rc < 0)
		lib_fail(root, id);
	progress_done();
	table_print(&c.t, "diff");
	return c.rc;
}

/*
 * On a mount with the writeback cache the kernel keeps its own idea of a
 * regular file's size and does not take the daemon's again: after RESTORE
 * set a size back, tell it through the mount (the truncate to the size the
 * file has already changes no byte). Without the writeback cache the
 * kernel's size is the restored one and nothing is sent.
 */
static void restore_kernel_size(const char *root, const char *path, uint64_t size)
{
	char full[2 * PATH_MAX];
	struct stat st;
	if ((size_t)snprintf(full, sizeof(full), "%s/%s", strcmp(root, "/") ? root : "", path) >=
	    sizeof(full))
		return;
	if (lstat(full, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size != size &&
	    truncate(full, (off_t)size))
		warn("%s: %s: setting the size the kernel shows", cmd, path);
}

static int cmd_restore(int argc, char **argv)
{
	static const struct option lo[] = {{"dry-run", no_argument, NULL, 'n'}, {0}};
	int c, dry = 0;
	while ((c = next_opt(argc, argv, "n", lo, NULL)) != -1)
		dry |= c == 'n';
	if (optind >= argc)
		usage_err("missing ID");
	char root[PATH_MAX];
	mount_root(optind + 1 < argc ? argv[optind + 1] : NULL, root, sizeof(root));
	uint64_t id = parse_snap(root, argv[optind]);
	if (snap_is_tree(root, id)) /* walk its view (treecmd.c) */
		return tree_restore(root, id, argc - optind - 1, argv + optind + 1, dry);
	if (dry)
		usage_err("--dry-run: only for tree snapshots");
	struct snapfs_req *q = req_new(SNAPFS_OP_RESTORE);
	add_filters(root, id, q, argv + optind + 1, argc - optind - 1);
	struct snapfs_req *r = req_new(SNAPFS_OP_RESTORE);
	int rc = 0;
	uint64_t files = 0;
	catch_sigint();
	for (uint64_t cursor = 0;;) {
		if (interrupted)
			stop_interrupted(
			    " (the files listed are restored; run it again to finish)");
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
			files++;
			if (s.status) {
				progress_done();
				warnx("%s: %s: %s", cmd, path, strerror(-s.status));
				rc = 1;
			} else if (s.written || s.flags) {
				if (s.flags & SNAPFS_RESTORE_RESIZED)
					restore_kernel_size(root, path, s.size);
				progress_done();
				printf("%s: %" PRIu64 " bytes written%s\n", path, s.written,
				       (s.flags & SNAPFS_RESTORE_CREATED) ? " (recreated)" : "");
				fflush(stdout);
			}
		}
		if (more < 0)
			malformed();
		progress("%" PRIu64 " files checked", files);
		if (!(cursor = r->cursor))
			break;
	}
	progress_done();
	free(r);
	free(q);
	return rc;
}

/* ---- stats, check ---- */

static const struct col stats_cols[] = {
    {"PROPERTY", COL_DEFAULT, "the counter"},
    {"VALUE", COL_RIGHT | COL_NUM | COL_DEFAULT, "its value"},
    {0},
};

static int cmd_stats(int argc, char **argv)
{
	struct outopts o = {0};
	while (next_opt(argc, argv, "", NULL, &o) != -1)
		;
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
	enum { N = sizeof(f) / sizeof(f[0]) };
	struct table t;
	if (o.json) {
		/* one object: a column per counter */
		struct col cols[N + 1] = {0};
		const char *cells[N];
		int64_t keys[N];
		char v[N][24];
		for (size_t i = 0; i < N; i++) {
			cols[i] = (struct col){f[i].name, COL_NUM | COL_DEFAULT, ""};
			snprintf(v[i], sizeof(v[i]), "%" PRIu64, f[i].v);
			cells[i] = v[i];
			keys[i] = (int64_t)f[i].v;
		}
		if (o.cols || o.sort)
			usage_err("-o and -s do not apply to stats --json");
		table_setup(&t, "stats", cols, &o);
		table_add(&t, cells, keys);
		table_print(&t, "stats");
		return 0;
	}
	table_setup(&t, "stats", stats_cols, &o);
	for (size_t i = 0; i < N; i++) {
		char v[24];
		if (f[i].size && !o.exact)
			nicenum(f[i].v, v, sizeof(v));
		else
			snprintf(v, sizeof(v), "%" PRIu64, f[i].v);
		const char *cells[] = {f[i].name, v};
		const int64_t keys[] = {0, (int64_t)f[i].v};
		table_add(&t, cells, keys);
	}
	table_print(&t, "stats");
	return 0;
}

static int cmd_check(int argc, char **argv)
{
	while (next_opt(argc, argv, "", NULL, NULL) != -1)
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

/* ---- mounts ---- */

static const struct col mounts_cols[] = {
    {"MOUNTPOINT", COL_DEFAULT, "where it is mounted"},
    {"SOURCE", COL_DEFAULT, "the directory it overlays"},
    {"STORE", COL_DEFAULT, "its snapshot store (the default place, SOURCE/.snapfs)"},
    {"SNAPSHOTS", COL_RIGHT | COL_NUM | COL_DEFAULT, "snapshots in the store"},
    {"HELD", COL_RIGHT | COL_NUM | COL_DEFAULT, "bytes the store keeps for snapshots"},
    {"EPOCH", COL_RIGHT | COL_NUM | COL_JSON, "the store's current epoch"},
    {0},
};

static int cmd_mounts(int argc, char **argv)
{
	struct outopts o = {0};
	while (next_opt(argc, argv, "", NULL, &o) != -1)
		;
	if (optind < argc)
		usage_err("%s: unexpected argument", argv[optind]);
	struct table t;
	table_setup(&t, "mounts", mounts_cols, &o);
	struct mps m = all_mounts();
	for (size_t i = 0; i < m.n; i++) {
		char store[4200], nsnap[24] = "", held[24] = "", epoch[24] = "";
		snprintf(store, sizeof(store), "%s/.snapfs",
			 strcmp(m.v[i].source, "/") ? m.v[i].source : "");
		struct snapfs_req *r = req_new(SNAPFS_OP_STATS);
		struct snapfs_rec_stats s = {0};
		int ok = snapfs_call(m.v[i].target, r) == 0 && r->len >= sizeof(s);
		if (ok) {
			memcpy(&s, r->data, sizeof(s));
			snprintf(nsnap, sizeof(nsnap), "%" PRIu64, s.snapshots);
			snprintf(epoch, sizeof(epoch), "%" PRIu64, s.epoch);
			if (o.exact || o.json)
				snprintf(held, sizeof(held), "%" PRIu64, s.bytes_preserved);
			else
				nicenum(s.bytes_preserved, held, sizeof(held));
		}
		free(r);
		const char *cells[] = {m.v[i].target,	  m.v[i].source,    store,
				       ok ? nsnap : NULL, ok ? held : NULL, ok ? epoch : NULL};
		const int64_t keys[] = {
		    0, 0, 0, (int64_t)s.snapshots, (int64_t)s.bytes_preserved, (int64_t)s.epoch};
		table_add(&t, cells, keys);
		free(m.v[i].target);
		free(m.v[i].source);
	}
	vec_release(&m);
	table_print(&t, "mounts");
	return 0;
}

static int cmd_help(int argc, char **argv)
{
	while (next_opt(argc, argv, "", NULL, NULL) != -1)
		;
	if (optind + 1 < argc)
		usage_err("%s: unexpected argument", argv[optind + 1]);
	if (optind == argc) {
		usage_all(stdout);
		return 0;
	}
	const struct command *c = find_command(argv[optind]);
	if (!c)
		usage_err("%s: unknown command", argv[optind]);
	command_help(c, stdout);
	return 0;
}

static const struct command command_table[] = {
    {"pin", cmd_pin, "pin [-r] [-l LABEL] [-e WHEN] [--keep N] PATH...",
     "Pin one snapshot of every PATH at one instant and print its ID.\n\n"
     "options:\n"
     "  -r, --recursive   pin every regular file under the directories given\n"
     "  -l, --label LABEL label it (select it later by label)\n"
     "  -e, --expire WHEN the daemon releases it then: a duration from now\n"
     "                    (30s, 90m, 12h, 7d, 1w) or an ISO 8601 date or time\n"
     "                    (2026-12-31, 2026-12-31T23:00, ...T23:00:00+01:00)\n"
     "      --keep N      then release the oldest snapshots with this label\n"
     "                    beyond the N newest (as prune)\n"
     "\nexamples:\n"
     "  snapctl pin db.sqlite db.sqlite-wal\n"
     "  snapctl pin -r -l nightly --keep 7 /srv/data\n"
     "  snapctl pin --expire 1w -l before-upgrade -r etc\n\n",
     NULL},
    {"release", cmd_release, "release [-l LABEL] [ID...]",
     "Release snapshots: the blocks only they kept are freed.\n\n"
     "options:\n"
     "  -l, --label LABEL every snapshot with this label\n"
     "\nexamples:\n"
     "  snapctl release 12 13\n"
     "  snapctl release -l before-upgrade\n\n",
     NULL},
    {"relabel", cmd_relabel, "relabel ID LABEL",
     "Give a pinned snapshot another label (\"\" for none).\n"
     "\nexamples:\n"
     "  snapctl relabel 12 keep-forever\n"
     "  snapctl relabel 12 ''\n\n",
     NULL},
    {"prune", cmd_prune, "prune --keep N -l LABEL [-n]",
     "Release the oldest pinned snapshots labelled LABEL beyond the N newest\n"
     "(snapper's number cleanup) and print their IDs.\n\n"
     "options:\n"
     "  -k, --keep N      how many to keep\n"
     "  -l, --label LABEL which snapshots\n"
     "  -n, --dry-run     only print what would be released\n"
     "\nexamples:\n"
     "  snapctl prune --keep 24 -l hourly\n\n",
     NULL},
    {"list", cmd_list, "list [-l LABEL] [-H|-J|-r] [-p] [-o COLS] [-s COL]",
     "List the snapshots of the mount (yours, or all for root), oldest first.\n\n"
     "options:\n"
     "  -l, --label LABEL only those with this label\n"
     "\nexamples:\n"
     "  snapctl list -l nightly\n"
     "  snapctl list -o ID,LABEL,HELD -s HELD\n"
     "  snapctl list --json | jq '.snapshots[].id'\n\n",
     list_cols},
    {"show", cmd_show, "show [-H|-J|-r] [-p] [-o COLS] [-s COL] ID|LABEL",
     "List the files of a snapshot (LABEL: the newest with that label); of a\n"
     "tree snapshot (pin -r), every entry: type, mode, owner, size, mtime, path.\n\n"
     "options:\n"
     "\nexamples:\n"
     "  snapctl show 3\n"
     "  snapctl show nightly -s SIZE\n\n",
     show_cols},
    {"diff", cmd_diff, "diff [-H|-J|-r] [-p] [-o COLS] [-s COL] ID|LABEL [ID2] [PATH...]",
     "List the byte ranges of the files that changed since the snapshot, or\n"
     "only those of the PATHs (files, or directories holding files). For a\n"
     "tree snapshot, what changed since it (or until snapshot ID2), as zfs\n"
     "diff: + added, - removed, M modified (with what), R renamed.\n\n"
     "options:\n"
     "\nexamples:\n"
     "  snapctl diff 3\n"
     "  snapctl diff nightly db.sqlite --json\n\n",
     diff_cols},
    {"restore", cmd_restore, "restore [-n] ID|LABEL [PATH...]",
     "Write back the blocks that differ from the snapshot, into the same\n"
     "files (recreated when gone), or only the PATHs. A tree snapshot is\n"
     "rolled back: what was created since is removed, renames undone, the\n"
     "rest recreated or set back. It may be stopped with ^C and run again.\n\n"
     "options:\n"
     "  -n, --dry-run     print the steps of a tree restore, change nothing\n"
     "\nexamples:\n"
     "  snapctl restore 3\n"
     "  snapctl restore nightly db.sqlite db.sqlite-wal\n\n",
     NULL},
    {"stats", cmd_stats, "stats [-H|-J|-r] [-p] [-o COLS] [-s COL]",
     "Print the store's counters.\n\n"
     "options:\n"
     "\nexamples:\n"
     "  snapctl stats -H -p\n\n",
     stats_cols},
    {"check", cmd_check, "check",
     "Check the store against its index (root only); print each problem\n"
     "and exit 1 when there is one.\n\n"
     "options:\n"
     "\nexamples:\n"
     "  snapctl -m /srv/data check\n\n",
     NULL},
    {"mounts", cmd_mounts, "mounts [-H|-J|-r] [-p] [-o COLS] [-s COL]",
     "List the snapfs mounts: mount point, source, store, snapshots and the\n"
     "bytes they hold (- where the daemon does not answer).\n\n"
     "options:\n"
     "\nexamples:\n"
     "  snapctl mounts\n\n",
     mounts_cols},
    {"help", cmd_help, "help [COMMAND]",
     "Describe snapctl, or one command.\n\n"
     "options:\n"
     "\nexamples:\n"
     "  snapctl help pin\n\n",
     NULL},
    {0, 0, 0, 0, 0},
};

const struct command *commands = command_table;
const char *mnt_opt;
const char *cmd = "";

int main(int argc, char **argv)
{
	setlocale(LC_CTYPE, "");
	opterr = 0;
	static const struct option lo[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {"mount", required_argument, NULL, 'm'},
	    {0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "+:hVm:", lo, NULL)) != -1) {
		const char *a = argv[optind - 1];
		if (c == 'h') {
			usage_all(stdout);
			return 0;
		} else if (c == 'V') {
			printf("snapctl %s\n", SNAPFS_VERSION);
			return 0;
		} else if (c == 'm') {
			mnt_opt = optarg;
		} else if (c == ':') {
			usage_err("%.*s: missing argument", (int)strcspn(a, "="), a);
		} else if (!strncmp(a, "--", 2) && !optopt) {
			usage_err("%.*s: unknown option", (int)strcspn(a, "="), a);
		} else {
			usage_err("-%c: unknown option", optopt);
		}
	}
	if (optind == argc)
		usage_err("missing COMMAND");
	const struct command *cm = find_command(argv[optind]);
	if (!cm)
		usage_err("%s: unknown command", argv[optind]);

	cmd = cm->name;
	int i = optind;
	optind = 0; /* GNU getopt: full re-initialisation */
	int rc = cm->run(argc - i, argv + i);
	if (fflush(stdout) || ferror(stdout))
		err(1, "%s: stdout", cmd);
	return rc;
}
