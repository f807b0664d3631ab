// SPDX-License-Identifier: MIT
/*
 * The one allocation routine behind vec.h's macros: how much to allocate
 * (double, or exactly what is needed when doubling is not enough, never
 * less than VEC_MIN), with every product and sum checked for overflow
 * before reallocarray sees it. No array may exceed PTRDIFF_MAX bytes (as
 * for any object in C; glibc's malloc refuses more too).
 */
#include "vec.h"

#include <stdint.h>

void *vec_grow(void *v, size_t n, size_t more, size_t *alloc, size_t size)
{
	size_t max = size ? (size_t)PTRDIFF_MAX / size : 0;
	if (n > max || more > max - n) {
		errno = ENOMEM;
		return NULL;
	}
	size_t need = n + more;
	size_t na = *alloc > max / 2 ? need : *alloc * 2;
	if (na < VEC_MIN)
		na = VEC_MIN;
	if (na < need || na > max)
		na = need;
	void *nv = reallocarray(v, na, size);
	if (!nv && na > need) /* doubling was too much: try what is needed */
		nv = reallocarray(v, na = need, size);
	if (!nv) {
		errno = ENOMEM;
		return NULL;
	}
	*alloc = na;
	return nv;
}
