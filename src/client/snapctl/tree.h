/* SPDX-License-Identifier: MIT */
/*
 * The tree engine under snapctl's show, diff and restore of tree
 * snapshots: it compares two directory trees given as paths, FROM (the
 * snapshot: MNT/<snapdir>/ID) and TO (the live mount, or a later
 * snapshot), and rolls TO back to FROM. It knows nothing of snapfs: the
 * identity of a node (what matches a renamed node with its old self, and
 * hard links with each other) comes from a function the caller gives, so
 * the engine runs on plain directories in the tests. Single-threaded;
 * functions return 0 or -errno; nothing here exits or prints.
 */
#ifndef TREE_H
#define TREE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

enum { TREE_FROM = 0, TREE_TO = 1 };

#define TREE_BLOCK 4096 /* content is compared and written in blocks of this size */

/* tree_opts.flags */
#define TREE_TRUST_CTIME  0x1u /* same identity and same ctime, size, mtime: unchanged */
#define TREE_IGNORE_SETID 0x2u /* FROM never shows set-id bits: do not compare them */
#define TREE_DRY_RUN	  0x4u /* tree_apply() reports its actions and changes nothing */

struct tree_opts {
	/* A node's identity on side (TREE_FROM, TREE_TO): equal for the same
	 * node on both sides and for hard links of one node. */
	uint64_t (*ident)(void *arg, int side, const struct stat *st);
	void *ident_arg;
	const char *exclude; /* a name left out at TO's top directory (the snapdir), or NULL */
	unsigned flags;
	volatile sig_atomic_t *stop; /* when set, stop between two entries with -EINTR */
	/* Called now and then during long work (may be NULL). */
	void (*progress)(void *arg, const char *phase, size_t done, size_t total);
	void *progress_arg;
};

/* The fields a change of type 'M' names. */
#define TREE_F_TYPE   0x001u
#define TREE_F_MODE   0x002u
#define TREE_F_OWNER  0x004u
#define TREE_F_SIZE   0x008u
#define TREE_F_MTIME  0x010u
#define TREE_F_TARGET 0x020u /* symlink target */
#define TREE_F_XATTR  0x040u /* user.* extended attributes */
#define TREE_F_DATA   0x080u /* bytes: see ranges */
#define TREE_F_RDEV   0x100u
#define TREE_F_LINK   0x200u /* another node now: hard links differ */

/* Names of the fields, in bit order ("type", "mode", ...). */
extern const char *const tree_field_names[];

struct tree_range {
	uint64_t off, len;
};

struct tree_change {
	char type;			    /* '+' added, '-' removed, 'M' modified, 'R' renamed */
	const char *path;		    /* '-': in FROM; '+', 'M', 'R': in TO */
	const char *from;		    /* 'R': the path in FROM */
	unsigned fields;		    /* 'M': TREE_F_* */
	const struct stat *st_from, *st_to; /* NULL on the side that has no node */
	const char *target_from, *target_to;
	const struct tree_range *ranges; /* 'M' with TREE_F_DATA: changed blocks, merged */
	size_t nranges;
};

struct tree_diff;

/*
 * Compare the subtrees subs (paths relative to both roots, "" for the
 * whole tree; NULL and 0 mean {""}) of from and to. A sub present on
 * neither side is -ENOENT. On success *out holds the changes, in path
 * order; free it with tree_diff_free(). Content is compared block by
 * block for every regular file on both sides (TREE_TRUST_CTIME skips
 * nodes whose identity, ctime, size and mtime are equal).
 */
int tree_diff_new(const char *from, const char *to, const char *const *subs, size_t nsubs,
		  const struct tree_opts *o, struct tree_diff **out);
void tree_diff_free(struct tree_diff *d);
size_t tree_diff_count(const struct tree_diff *d);
const struct tree_change *tree_diff_get(const struct tree_diff *d, size_t i);

/* One step of a restore, as reported. */
struct tree_action {
	const char *verb; /* "remove", "create", "link", "rename", "write", "truncate",
			     "attr", "retarget", "move-aside" */
	const char *path; /* in TO, relative to its root */
	const char *from; /* "rename", "link", "move-aside": the other path */
	uint64_t bytes;	  /* "write": bytes written (or to write, dry run) */
	unsigned fields;  /* "attr": TREE_F_* set back */
	int err;	  /* 0, or -errno: this step failed (the restore goes on) */
};

struct tree_stats {
	uint64_t actions, errors, bytes_written, bytes_compared;
};

/*
 * Make TO equal to FROM in d's subtrees: remove what FROM lacks, undo
 * renames (the node itself is moved back), create what is missing
 * (hard links as links), set back bytes (only the differing blocks are
 * written; sizes by truncation), symlink targets, user.* xattrs, mode,
 * owner (only when running as root) and times. report (may be NULL) sees
 * every step. A failed step is reported and counted in stats->errors;
 * the restore goes on. Returns 0, -EINTR when o->stop was set (every step
 * done so far is whole; running the restore again finishes it), or
 * -errno when it could not go on. TO must not change meanwhile. d is
 * spent: free it afterwards.
 */
int tree_apply(struct tree_diff *d, int (*report)(void *arg, const struct tree_action *a),
	       void *arg, struct tree_stats *stats);

/*
 * Walk subs of root in path order (pre-order, names in byte order), with
 * lstat and the symlink target (NULL for other types). fn returning
 * non-zero stops the walk with that value.
 */
int tree_walk(const char *root, const char *const *subs, size_t nsubs, const char *exclude,
	      int (*fn)(void *arg, const char *path, const struct stat *st, const char *target),
	      void *arg);

/* Compare paths component by component ("a/b" before "a-b"). */
int tree_path_cmp(const char *a, const char *b);

#endif /* TREE_H */
