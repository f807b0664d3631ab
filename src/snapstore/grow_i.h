/* SPDX-License-Identifier: MIT */
/*
 * The store's one growable-array step. Header-only and dependency-free, so
 * the index module (which must not include store_i.h) can use it too.
 */
#ifndef GROW_I_H
#define GROW_I_H

#include <stdlib.h>

/*
 * Room for element n of array a (cap elements of elem bytes allocated):
 * returns a itself when n < *cap, else a reallocation to twice the capacity
 * (at least first) and updates *cap; NULL (a untouched, still owned by the
 * caller) when out of memory.
 */
static inline void *store_grow(void *a, size_t n, size_t *cap, size_t elem, size_t first)
{
	if (n < *cap)
		return a;
	size_t nc = *cap ? *cap * 2 : first;
	if (nc <= n)
		nc = n + 1;
	void *na = reallocarray(a, nc, elem);
	if (na)
		*cap = nc;
	return na;
}

#endif /* GROW_I_H */
