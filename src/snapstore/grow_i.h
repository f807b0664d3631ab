/* SPDX-License-Identifier: MIT */
/*
 * The store's growable-array step, on the project's one growth routine
 * (vec_grow, src/common/vec.h: doubling, overflow-checked). Header-only, so
 * the index module (which must not include store_i.h) can use it too.
 */
#ifndef GROW_I_H
#define GROW_I_H

#include "vec.h"

#include <stdlib.h>

/*
 * Room for element n of array a (cap elements of elem bytes allocated):
 * returns a itself when n < *cap, else a reallocation to twice the capacity
 * (at least first) and updates *cap; NULL (a untouched, still owned by the
 * caller) when out of memory.
 */
static inline void *store_grow(void *a, size_t n, size_t *cap, size_t elem, size_t first)
{
	(void)first; /* vec_grow starts at VEC_MIN */
	return n < *cap ? a : vec_grow(a, n, 1, cap, elem);
}

#endif /* GROW_I_H */
