/* SPDX-License-Identifier: MIT */
/*
 * snapctl's show, diff and restore of tree snapshots (treecmd.c), called
 * by the commands in snapctl.c when snap_is_tree(). Each prints its
 * results on stdout and returns the exit status, or exits 1 with a
 * one-line error (130 when a restore is interrupted).
 */
#ifndef TREECMD_H
#define TREECMD_H

#include <stdbool.h>
#include <stdint.h>

struct outopts;

/* Whether snapshot id of the mount at root is a tree snapshot (pin -r). */
bool snap_is_tree(const char *root, uint64_t id);
int tree_show(const char *root, uint64_t id, const struct outopts *o);
/* args: [ID2] [PATH...], the arguments after ID. */
int tree_diff(const char *root, uint64_t id, int nargs, char **args, const struct outopts *o);
/* args: [PATH...]; dry: print the steps, change nothing. */
int tree_restore(const char *root, uint64_t id, int nargs, char **args, int dry);

#endif /* TREECMD_H */
