// SPDX-License-Identifier: MIT
/*
 * Command line: `snapfs [-f] [-d] [-o OPT,...] SOURCE MOUNTPOINT`, the form
 * mount.fuse3 and fstab use. One fuse_opt table fills struct sfs_opts;
 * mount options we know are passed on to libfuse, options mount(8) keeps to
 * itself are dropped, and anything else is an error naming the option.
 * Values are validated once by opts_validate(), then read-only.
 */
#include "sfs_i.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	KEY_HELP,
	KEY_VERSION,
	KEY_FOREGROUND,
	KEY_DEBUG,
	KEY_ALLOW_OTHER,
	KEY_DEFAULT_PERMISSIONS,
	KEY_RO,
	KEY_WRITEBACK,
	KEY_NOWRITEBACK,
};

#define SFS_OPT(t, p)                                                                              \
	{                                                                                          \
		t, offsetof(struct sfs_opts, p), 1                                                 \
	}

/* In the order the help text lists them. */
static const struct fuse_opt sfs_opt_table[] = {
    SFS_OPT("store=%s", store),
    SFS_OPT("block_size=%s", block_size_s),
    SFS_OPT("snapshot=%s", snapshot),
    SFS_OPT("snapdir=%s", snapdir),
    SFS_OPT("store_max=%s", store_max_s),
    SFS_OPT("log_level=%s", log_level_s),
    SFS_OPT("timeout=%lf", timeout),
    FUSE_OPT_KEY("writeback", KEY_WRITEBACK),
    FUSE_OPT_KEY("nowriteback", KEY_NOWRITEBACK),
    FUSE_OPT_KEY("-h", KEY_HELP),
    FUSE_OPT_KEY("--help", KEY_HELP),
    FUSE_OPT_KEY("-V", KEY_VERSION),
    FUSE_OPT_KEY("--version", KEY_VERSION),
    FUSE_OPT_KEY("-f", KEY_FOREGROUND),
    FUSE_OPT_KEY("-d", KEY_DEBUG),
    FUSE_OPT_KEY("debug", KEY_DEBUG),
    FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
    FUSE_OPT_KEY("default_permissions", KEY_DEFAULT_PERMISSIONS),
    FUSE_OPT_KEY("ro", KEY_RO),
    FUSE_OPT_END,
};

/* Mount options libfuse understands: passed through. */
static const char *const pass_opts[] = {
    "rw",    "dev",	"nodev",    "suid",	  "nosuid",	 "exec",	  "noexec",
    "atime", "noatime", "relatime", "norelatime", "strictatime", "nostrictatime", "sync",
    "async", "dirsync", "lazytime", "nolazytime", "allow_root",	 "auto_unmount",  "blkdev",
    NULL,
};
static const char *const pass_prefixes[] = {
    "fsname=", "subtype=", "context=", "fscontext=", "defcontext=", "rootcontext=", NULL,
};
/* Options only mount(8) cares about: dropped. */
static const char *const drop_opts[] = {
    "defaults", "auto",	  "noauto",  "user", "nouser", "users", "owner",
    "group",	"nofail", "_netdev", "loud", "silent", NULL,
};

static int in_list(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(s, *list) == 0)
			return 1;
	return 0;
}

static int has_prefix(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strncmp(s, *list, strlen(*list)) == 0)
			return 1;
	return 0;
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct sfs_opts *o = data;
	switch (key) {
	case KEY_HELP:
		o->show_help = 1;
		return 0;
	case KEY_VERSION:
		o->show_version = 1;
		return 0;
	case KEY_FOREGROUND:
		o->foreground = 1;
		return 0;
	case KEY_DEBUG:
		o->debug = 1;
		o->foreground = 1;
		return 0;
	case KEY_ALLOW_OTHER:
		o->allow_other = 1;
		return 1;
	case KEY_DEFAULT_PERMISSIONS:
		o->default_permissions = 1;
		return 1;
	case KEY_RO:
		o->read_only = 1;
		return 1;
	case KEY_WRITEBACK:
		o->writeback = 1;
		return 0;
	case KEY_NOWRITEBACK:
		o->writeback = 0;
		return 0;
	case FUSE_OPT_KEY_NONOPT:
		if (!o->source) {
			o->source = strdup(arg);
			return 0;
		}
		if (!o->mountpoint) {
			o->mountpoint = strdup(arg);
			return 0;
		}
		fprintf(stderr, "snapfs: unexpected argument '%s'\n", arg);
		return -1;
	case FUSE_OPT_KEY_OPT:
		if (in_list(arg, pass_opts) || has_prefix(arg, pass_prefixes))
			return 1;
		if (in_list(arg, drop_opts) || strncmp(arg, "x-", 2) == 0)
			return 0;
		fprintf(stderr, "snapfs: unknown option '%s'\n", arg);
		return -1;
	default:
		fprintf(stderr, "snapfs: unknown argument '%s'\n", arg);
		return -1;
	}
}

int opts_parse(struct fuse_args *args, struct sfs_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->timeout = 86400.0;
	o->writeback = -1;
	int h = helper_args(args); /* run as mount.snapfs / mount.fuse.snapfs */
	if (h < 0)
		return -1;
	if (h > 0)
		exit(0); /* mount -f: a fake mount does nothing, successfully */
	if (fuse_opt_parse(args, o, sfs_opt_table, opt_proc) == -1)
		return -1;
	return 0;
}

static int parse_log_level(const char *s)
{
	static const char *const names[] = {"err", "warning", "notice", "info", "debug"};
	for (int i = 0; i < 5; i++)
		if (strcmp(s, names[i]) == 0)
			return SFS_LOG_ERR + i;
	return -1;
}

/*
 * A size: decimal digits, then at most one unit letter k, M, G, T, P or E
 * (powers of 1024, either case) or b (bytes). Nothing else: no sign (libbsd's
 * expand_number() took "-1" for 2^64 - 1, "no limit"), no hex, no fraction,
 * and a value past 2^64 - 1 is an error rather than a wrapped one.
 */
static int parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "bkmgtpe";
	uint64_t v = 0;
	const char *p = s;
	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (*p) {
		const char *u = strchr(units, *p | 0x20);
		if (!u || !*u || p[1])
			return -EINVAL;
		unsigned shift = 10 * (unsigned)(u - units);
		if (shift && v > (UINT64_MAX >> shift))
			return -ERANGE;
		v <<= shift;
	}
	*out = v;
	return 0;
}

int opts_validate(struct sfs_opts *o)
{
	const char *err;
	if (!o->source || !o->mountpoint) {
		fprintf(
		    stderr,
		    "snapfs: missing %s (usage: snapfs [-f] [-d] [-o OPT,...] SOURCE MOUNTPOINT)\n",
		    o->source ? "MOUNTPOINT" : "SOURCE");
		return -1;
	}
	o->snapmode = SFS_SNAP_LIVE;
	if (o->snapshot) {
		if (strcmp(o->snapshot, "open") == 0)
			o->snapmode = SFS_SNAP_OPEN;
		else if (strcmp(o->snapshot, "live") != 0) {
			fprintf(stderr, "snapfs: bad snapshot= value '%s' (live or open)\n",
				o->snapshot);
			return -1;
		}
	}
	if (!o->snapdir)
		o->snapdir = strdup(".snapshots");
	if (!*o->snapdir || strchr(o->snapdir, '/') || !strcmp(o->snapdir, ".") ||
	    !strcmp(o->snapdir, "..") || strlen(o->snapdir) > NAME_MAX) {
		fprintf(stderr, "snapfs: bad snapdir= value '%s' (one path component)\n",
			o->snapdir);
		return -1;
	}
	o->block_size = 0;
	if (o->block_size_s) {
		long long v = strtonum(o->block_size_s, 512, 1 << 20, &err);
		if (err || (v & (v - 1))) {
			fprintf(
			    stderr,
			    "snapfs: bad block_size= value '%s' (a power of two, 512 to 1048576)\n",
			    o->block_size_s);
			return -1;
		}
		o->block_size = (uint32_t)v;
	}
	o->store_max = 0;
	if (o->store_max_s) {
		int rc = parse_size(o->store_max_s, &o->store_max);
		if (rc) {
			fprintf(stderr, "snapfs: bad store_max= value '%s' (%s)\n", o->store_max_s,
				rc == -ERANGE
				    ? "too large: at most 16E - 1"
				    : "a size such as 10G: digits and one of k M G T P E");
			return -1;
		}
	}
	o->log_level = o->debug ? SFS_LOG_DEBUG : SFS_LOG_NOTICE;
	if (o->log_level_s && (o->log_level = parse_log_level(o->log_level_s)) < 0) {
		fprintf(stderr,
			"snapfs: bad log_level= value '%s' (err, warning, notice, info, debug)\n",
			o->log_level_s);
		return -1;
	}
	/* An open-time snapshot is taken by the daemon, which cannot make the
	 * kernel send the dirty pages it holds first: no writeback cache then. */
	if (o->writeback == 1 && o->snapmode == SFS_SNAP_OPEN) {
		fprintf(stderr, "snapfs: writeback cannot be used with snapshot=open (an open-time "
				"snapshot would miss the kernel's unsent pages)\n");
		return -1;
	}
	if (o->writeback < 0)
		o->writeback = o->snapmode == SFS_SNAP_OPEN ? 0 : SFS_WRITEBACK_DEFAULT;
	if (o->timeout < 0 || o->timeout > 1e7) {
		fprintf(stderr, "snapfs: bad timeout= value (0 to 10000000 seconds)\n");
		return -1;
	}
	return 0;
}

void opts_usage(const char *prog)
{
	printf("usage: %s [-f] [-d] [-o OPT,...] SOURCE MOUNTPOINT\n"
	       "\n"
	       "Mount a copy-on-write snapshotting overlay of SOURCE on MOUNTPOINT\n"
	       "(they may be the same directory).\n"
	       "\n"
	       "  -f                   stay in the foreground, log to stderr\n"
	       "  -d                   FUSE debug output (implies -f)\n"
	       "  -h, --help           this text\n"
	       "  -V, --version        version\n"
	       "\n"
	       "snapfs options (-o):\n"
	       "  store=DIR            snapshot store (default SOURCE/.snapfs, hidden)\n"
	       "  block_size=N         store block size, power of two, fixed at creation\n"
	       "                       (default %u)\n"
	       "  snapshot=live|open   open: every read-only open reads a snapshot taken\n"
	       "                       at open (default live)\n"
	       "  snapdir=NAME         name of the snapshot view (default .snapshots)\n"
	       "  store_max=SIZE       most bytes the store may preserve (default no limit)\n"
	       "  log_level=LEVEL      err, warning, notice (default), info, debug\n"
	       "  timeout=SECONDS      kernel attribute and entry cache time (default 86400)\n"
	       "  writeback            the kernel's writeback cache: write() returns once the\n"
	       "                       page cache has the bytes%s\n"
	       "  nowriteback          every write() reaches the daemon before it returns%s\n"
	       "\n"
	       "FUSE options: allow_other, default_permissions, ro, fsname=, auto_unmount,\n"
	       "and the generic mount options (nosuid, nodev, noexec, noatime, ...).\n",
	       prog, 4096u, SFS_WRITEBACK_DEFAULT ? " (default)" : "",
	       SFS_WRITEBACK_DEFAULT ? "" : " (default)");
}
