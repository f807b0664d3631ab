/* SPDX-License-Identifier: MIT */
/*
 * Private to snapctl: the command line (cli.c: usage and help, options
 * anywhere through getopt_long, arguments, the mount and the daemon, the
 * progress line and SIGINT), the output (output.c: every table through
 * libsmartcols, -H, -r and JSON), mount discovery (mounts.c, libmount)
 * and the commands (snapctl.c). snapctl is single-threaded; the globals
 * below are set once in main() and by option parsing before a command
 * does its work. Every helper that can fail ends snapctl with the error
 * (exit 1, or 2 for usage errors).
 */
#ifndef SNAPCTL_I_H
#define SNAPCTL_I_H

#include "snapfs_proto.h"

#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { EXIT_USAGE = 2, EXIT_INTERRUPTED = 130 };

/* A column: its name (header, -o/-s name, lowercased JSON key). */
struct table;

struct col {
	const char *name;
	unsigned flags;
	const char *help;
};
#define COL_RIGHT   0x1u /* right-aligned */
#define COL_NUM	    0x2u /* a number in JSON (sorted numerically by its key) */
#define COL_DEFAULT 0x4u /* shown without -o */
#define COL_JSON    0x8u /* shown in JSON without -o (COL_DEFAULT ones are too) */

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage;	/* after "snapctl [-m MNT] " */
	const char *help;	/* what it does, its options, examples */
	const struct col *cols; /* its table's columns (-o, -s), or NULL */
};

extern const struct command *commands;	  /* the command table, ending in {0} */
extern const char *mnt_opt;		  /* -m MNT, or NULL */
extern const char *cmd;			  /* the running command's name, "" before */
extern volatile sig_atomic_t interrupted; /* SIGINT seen (after catch_sigint()) */

/* The output options of a command that prints a table. */
struct outopts {
	int scripted;	  /* -H: tab-separated, no header, bytes as they are */
	int exact;	  /* -p: exact numbers, unix times */
	int json;	  /* -J, --json */
	int raw;	  /* -r: libsmartcols raw (space-separated, encoded) */
	const char *cols; /* -o COLS, or NULL */
	const char *sort; /* -s COL, or NULL */
};

/* ---- cli.c ---- */

void usage_all(FILE *f);
const struct command *find_command(const char *name);
/* The command's help (usage, description, options, columns, examples). */
void command_help(const struct command *c, FILE *f);
/* A usage error: the message, the command's usage line, exit 2. */
void __attribute__((noreturn, format(printf, 1, 2))) usage_err(const char *fmt, ...);
/*
 * getopt_long over a command's arguments (argv[0] is the command), GNU
 * style: options anywhere, `--` ends them. Besides the command's own
 * options it takes -m/--mount MNT (any command), -h/--help (prints the
 * command's help, exit 0) and, when o is not NULL, the output options
 * -H -p -J/--json -r -o COLS -s COL into o. Unknown options and missing
 * arguments are usage errors. Returns the option, or -1 at the end
 * (optind is then the first operand).
 */
int next_opt(int argc, char **argv, const char *shortopts, const struct option *longopts,
	     struct outopts *o);

/* An ID: a positive number, or a usage error. */
uint64_t parse_id(const char *s);
/* ID or LABEL (the newest snapshot with that label) on the mount root. */
uint64_t parse_snap(const char *root, const char *s);
/* --expire: "90m", "12h", "7d", "1w", "30s" from now, or an ISO 8601
 * date or date and time ("2026-12-31", "2026-12-31T23:00[:00][Z|+01:00]",
 * local time without a zone): the unix time, or a usage error. */
int64_t parse_expire(const char *s, int64_t now);
/* A count for --keep: 0 to a million, or a usage error. */
unsigned parse_count(const char *opt, const char *s);

/* table_init(), or a usage error. */
void table_setup(struct table *t, const char *name, const struct col *cols,
		 const struct outopts *o);

/* The mount root for path (or -m, or "."), or exit 1. Without -m and
 * path, outside a mount: the only snapfs mount, if there is exactly one. */
void mount_root(const char *path, char *root, size_t len);
/* path's place relative to root (through its directory when it no longer
 * exists); exit 1 when it is not on that mount. */
void rel_path(const char *root, const char *path, char *rel, size_t len);
/* A zeroed request for op; free() it. */
struct snapfs_req *req_new(uint32_t op);
/* One request; on failure exit 1 with "what: why" (ENOENT naming a
 * snapshot reads "no such snapshot" when id_what). */
void call(const char *root, struct snapfs_req *r, const char *what, int id_what);
/* An error of a libsnapfs call about snapshot id (0: none): exit 1. */
void __attribute__((noreturn)) lib_fail(const char *root, uint64_t id);
/* A record codec error (rec.h: -EPROTO): exit 1. */
void __attribute__((noreturn)) malformed(void);

/* SIGINT sets `interrupted` instead of killing snapctl (once: a second
 * SIGINT kills); long commands stop between pages of the daemon's answer. */
void catch_sigint(void);
/* On a terminal (stderr), one self-erasing line, at most 10 times a second. */
void __attribute__((format(printf, 1, 2))) progress(const char *fmt, ...);
void progress_done(void);

/* ---- mounts.c ---- */

/* Every snapfs mount point, deduplicated, in mount order: n strings in a
 * malloc'ed array (free each, then the array). Exit 1 on failure. */
char **snapfs_mount_points(size_t *n);
/* The same with each mount's source (from mountinfo). */
struct mp {
	char *target, *source;
};
struct mps {
	struct mp *v;
	size_t n, alloc;
};
struct mps all_mounts(void);

/* ---- output.c ---- */

/* zfs-style human-readable size: 512B, 4K, 1.50M, 12.5G. */
const char *nicenum(uint64_t n, char *buf, size_t len);
/* A unix time as "2026-12-01 05:30:00" (local), or the number with -p. */
const char *fmt_time(int64_t t, int exact, char *buf, size_t len);

/* A table: rows collected, then sorted (-s) and printed by libsmartcols
 * (or tab-separated for -H). */
struct table {
	const struct col *cols;
	size_t ncol;
	const char *name; /* the JSON member holding the rows */
	const struct outopts *o;
	size_t sel[32], nsel; /* the columns shown, in order */
	ssize_t sortcol;      /* index into cols, or -1 */
	struct {
		struct row *v;
		size_t n, alloc;
	} rows; /* a vector (vec.h) */
};

/* Columns from cols ({0}-terminated) as -o asks; name is the JSON member
 * holding the rows. -EINVAL with *bad set to the unknown column (or too
 * many, or none) in o->cols or o->sort. */
int table_init(struct table *t, const char *name, const struct col *cols, const struct outopts *o,
	       const char **bad);
/* One row: a cell per column of cols (NULL: none; "-" in a table, null in
 * JSON) and for COL_NUM columns the number it sorts by. Strings are copied. */
void table_add(struct table *t, const char *const cells[], const int64_t keys[]);
/* Sort, print (JSON with an output_version naming command) and free. */
void table_print(struct table *t, const char *command);

const char *owner_name(uint32_t uid, char *buf, size_t len);
const char *snap_state(uint32_t flags, int64_t expires);

#endif /* SNAPCTL_I_H */
