/* SPDX-License-Identifier: MIT */
/*
 * Private to snapctl: the command line (cli.c: usage, options, arguments,
 * the mount and the daemon), the output (output.c: zfs-style tables, JSON)
 * and the commands (snapctl.c). snapctl is single-threaded; the globals
 * below are set once in main() before a command runs. Every helper that
 * can fail ends snapctl with the error (exit 1, or 2 for usage errors).
 */
#ifndef SNAPCTL_I_H
#define SNAPCTL_I_H

#include "snapfs_proto.h"

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { EXIT_USAGE = 2 };

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage;
};

extern const struct command *commands; /* the command table, ending in {0} */
extern const char *mnt_opt;	       /* -m MNT, or NULL */
extern const char *cmd;		       /* the running command's name, "" before */

/* ---- cli.c ---- */

void usage_all(FILE *f);
const struct command *find_command(const char *name);
/* A usage error: the message, the command's usage line, exit 2. */
void __attribute__((noreturn, format(printf, 1, 2))) usage_err(const char *fmt, ...);
/*
 * getopt_long over a command's arguments (argv[0] is the command). Options
 * come first; unknown ones and missing arguments are usage errors; --help
 * prints the usage and exits 0. Returns the option, or -1 at the end.
 */
int next_opt(int argc, char **argv, const char *shortopts, const struct option *longopts);

#define HELP_OPTION                                                                                \
	{                                                                                          \
		"help", no_argument, NULL, 'h' + 256                                               \
	}

uint64_t parse_id(const char *s);
/* "30m", "12h", "7d", "90s": seconds. */
int64_t parse_duration(const char *s);

/* The mount root for path (or -m, or "."), or exit 1. */
void mount_root(const char *path, char *root, size_t len);
/* path's place relative to root (through its directory when it no longer
 * exists); exit 1 when it is not on that mount. */
void rel_path(const char *root, const char *path, char *rel, size_t len);
/* A zeroed request for op; free() it. */
struct snapfs_req *req_new(uint32_t op);
/* One request; on failure exit 1 with "what: why" (ENOENT naming a
 * snapshot reads "no such snapshot" when id_what). */
void call(const char *root, struct snapfs_req *r, const char *what, int id_what);
/* A record codec error (rec.h: -EPROTO): exit 1. */
void __attribute__((noreturn)) malformed(void);

/* ---- output.c ---- */

/* zfs-style human-readable size: 512B, 4K, 1.50M, 12.5G. */
const char *nicenum(uint64_t n, char *buf, size_t len);

/* A table of string cells printed at the end, aligned or tab-separated. */
struct table {
	size_t ncol; /* at most 16 */
	const char *const *head;
	const char *align; /* per column: 'l' or 'r' */
	struct {
		char **v; /* row r, column c at v[r * ncol + c] */
		size_t n, alloc;
	} cells; /* a vector (vec.h) */
};

/* One row: ncol strings, copied. */
void table_add(struct table *t, ...);
/* Print the table (a header unless scripted, then -H's tab-separated rows)
 * and free its cells. */
void table_print(struct table *t, int scripted);

void json_str(const char *s);
void json_head(const char *command);
const char *owner_name(uint32_t uid, char *buf, size_t len);
const char *snap_state(const struct snapfs_rec_snap *s);

#endif /* SNAPCTL_I_H */
