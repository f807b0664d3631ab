/* SPDX-License-Identifier: MIT */
/*
 * Private to the tree engine (tree.c: walk, pairing, comparison;
 * tree_restore.c: the roll-back). Both sides are arrays of nodes in path
 * order (pre-order, names in byte order), so a node's descendants follow
 * it up to its end index. A pair joins a FROM node and a TO node that are
 * "the same entry": at the same path, or by identity when it moved.
 */
#ifndef TREE_I_H
#define TREE_I_H

#include "tree.h"

#include <stdbool.h>
#include <sys/types.h>

#define PAIR_RENAME  0x1u /* paired by identity at another path */
#define PAIR_IMPLIED 0x2u /* the rename follows from the parent's */
#define PAIR_REPLACE 0x4u /* another node now (type or hard links): remove and recreate */

struct tnode {
	char *path;	  /* relative to the side's root, "" for the root */
	const char *name; /* the last component, inside path */
	struct stat st;
	uint64_t ident;
	char *target;	/* symlink target, else NULL */
	ssize_t parent; /* index of the parent on this side, -1 at a subtree top */
	size_t end;	/* one past the last descendant */
	ssize_t pair;	/* index on the other side, -1 when unpaired */
	unsigned pflags;
	/* FROM side: what differs from the pair */
	unsigned fields;
	struct {
		struct tree_range *v;
		size_t n, alloc;
	} ranges;
	size_t group; /* FROM: index of the first node with the same identity
			 (in identity order); TO: count of TO nodes sharing it */
	size_t gsize; /* nodes with this identity on this side */
	/* restore state */
	char *cur;    /* TO: where it is now, when moved; FROM: unused */
	bool removed; /* TO: gone */
	bool holds;   /* TO: it or a descendant stays (is paired and kept) */
	bool done;    /* FROM: in place; for the group leader: content and attributes set */
	bool created; /* FROM: made by the restore */
	bool touched; /* FROM dirs: an entry was made or removed inside */
};

struct tside {
	char *root;
	int rootfd;
	struct {
		struct tnode *v;
		size_t n, alloc;
	} nodes;
	struct {
		size_t *v; /* node indices sorted by identity, then index */
		size_t n, alloc;
	} byid;
};

struct tree_diff {
	struct tree_opts o;
	struct tside side[2];
	char **subs;
	size_t nsubs;
	struct {
		struct tree_change *v;
		size_t n, alloc;
	} changes;
	char *buf; /* TREE_CHUNK bytes for tree_blocks(), made at first use */
};

#define TREE_CHUNK (128 * TREE_BLOCK)

/* tree.c */
/* The first index in side's identity order holding ident, or byid.n. */
size_t tree_id_first(const struct tside *s, uint64_t ident);
/* "root/rel" into buf, or -ENAMETOOLONG. */
int tree_full(const struct tside *s, const char *rel, char *buf, size_t len);
/* rel for the *at() calls on rootfd: "." for the root. */
static inline const char *tree_at(const char *rel)
{
	return *rel ? rel : ".";
}
/* The user.* xattrs of path, as a sorted, NUL-separated "name\0len\0value"
 * blob; *out is malloc'ed (NULL when none). */
int tree_xattrs(const char *path, char **out, size_t *len);
/* Compare (and, when wfd >= 0, copy into wfd) the regular files rfd
 * (FROM, size rsize) and ofd (TO, size osize; -1: empty) block by block;
 * differing blocks go to ranges (may be NULL) and, when writing, are
 * written to wfd (blocks past osize that are all zeros are skipped: the
 * size is set afterwards). */
int tree_blocks(struct tree_diff *d, int rfd, off_t rsize, int ofd, off_t osize, int wfd,
		struct tnode *n, uint64_t *written, uint64_t *compared);

#endif /* TREE_I_H */
