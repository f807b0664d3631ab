/* SPDX-License-Identifier: MIT */
/*
 * The namespace index: the SQL of tree snapshots (tables ns_trees, ns_attr,
 * ns_entry), on the extent index's connection. Same rules as extidx: SQLite
 * codes become -errno here, callers hold the store mutex. The tables are
 * part of the index's schema from version 3 on (nsidx_schema_sql, run by
 * extidx when it creates or upgrades an index); nsidx_open checks they are
 * there.
 */
#ifndef NSIDX_I_H
#define NSIDX_I_H

#include <stddef.h>
#include <stdint.h>

#include "extidx_i.h"

struct nsidx;

/* The tables and indexes of tree snapshots, for extidx's create and upgrade
 * transactions (CREATE ... IF NOT EXISTS). */
extern const char nsidx_schema_sql[];

/* A tree snapshot's row. */
struct nsidx_tree {
	uint64_t id, root;
	int64_t created_ns;
	char *path; /* owned by the array (nsidx_trees_free) */
};

/* An attribute row: node nid had these attributes for every epoch in
 * [efrom, eto). target and xattrs point into a caller's buffer or the row. */
struct nsidx_attr {
	uint64_t nid, efrom, eto;
	uint32_t mode, uid, gid;
	uint64_t nlink, size, rdev, ino;
	int64_t atime_ns, mtime_ns, ctime_ns;
	const void *target;
	uint32_t target_len;
	const void *xattrs;
	uint32_t xattrs_len;
};

/* An entry row: entry name of directory dir named child (0: absent), of type
 * ctype, for every epoch in [efrom, eto). */
struct nsidx_entry {
	uint64_t dir, efrom, eto, child;
	uint32_t ctype;
	char *name; /* owned by the array (nsidx_entries_free), or borrowed */
};

int nsidx_open(struct extidx *x, struct nsidx **out);
void nsidx_close(struct nsidx *n);

int nsidx_tree_insert(struct nsidx *n, const struct nsidx_tree *t);
int nsidx_tree_delete(struct nsidx *n, uint64_t id);
int nsidx_trees_all(struct nsidx *n, struct nsidx_tree **out, size_t *cnt);
void nsidx_trees_free(struct nsidx_tree *a, size_t cnt);

int nsidx_attr_insert(struct nsidx *n, const struct nsidx_attr *a);
int nsidx_attr_delete(struct nsidx *n, uint64_t nid, uint64_t efrom);
/* The row of nid covering epoch s: its target and xattrs copied into buf
 * (-ERANGE if too small). -ENOENT if none. */
int nsidx_attr_at(struct nsidx *n, uint64_t nid, uint64_t s, struct nsidx_attr *out, char *buf,
		  size_t buflen);
/* The largest eto of nid's rows, 0 if none. */
int nsidx_attr_tlast(struct nsidx *n, uint64_t nid, uint64_t *tlast);
/* Rows (target and xattrs not filled) with eto > s and efrom <= s (s ==
 * UINT64_MAX: every row), appended to *a. */
int nsidx_attrs(struct nsidx *n, uint64_t s, struct nsidx_attr **a, size_t *cnt);

int nsidx_entry_insert(struct nsidx *n, const struct nsidx_entry *e);
int nsidx_entry_delete(struct nsidx *n, uint64_t dir, const char *name, uint64_t efrom);
/* The row of (dir, name) covering s: -ENOENT if none (name not filled). */
int nsidx_entry_at(struct nsidx *n, uint64_t dir, const char *name, uint64_t s,
		   struct nsidx_entry *out);
int nsidx_entry_tlast(struct nsidx *n, uint64_t dir, const char *name, uint64_t *tlast);
/* dir's rows covering s in name order (dir == 0: every directory's rows
 * covering s; s == UINT64_MAX: all rows). Names owned by the array. */
int nsidx_entries(struct nsidx *n, uint64_t dir, uint64_t s, struct nsidx_entry **a, size_t *cnt);
/* dir's rows covering s with names after `after` (NULL or "": all). */
int nsidx_entries_after(struct nsidx *n, uint64_t dir, uint64_t s, const char *after,
			struct nsidx_entry **a, size_t *cnt);
void nsidx_entries_free(struct nsidx_entry *a, size_t cnt);

/* Whether any namespace row or tree names fid (so its files row must stay). */
int nsidx_fid_refs(struct nsidx *n, uint64_t fid, int *refs);
/* The handle of files row fid: -ENOENT. */
int nsidx_file_handle(struct nsidx *n, uint64_t fid, unsigned char *h, uint32_t *hlen);

#endif /* NSIDX_I_H */
