/* SPDX-License-Identifier: MIT */
/*
 * A growable array. Any struct with the members
 *
 *	T *v;		   the elements, malloc'ed
 *	size_t n, alloc;   elements in use, elements allocated
 *
 * is a vector of T; zero-initialised it is empty. vec_reserve() and
 * vec_push() grow it with reallocarray() (doubling, at least VEC_MIN
 * elements), checking every size computation for overflow; on failure the
 * vector is unchanged. vec_release() frees the elements' array (not what
 * they point to). The macros evaluate their vector argument once. Not
 * async-signal-safe (malloc), and not locked: the caller's lock covers the
 * vector as it covers the struct that holds it.
 */
#ifndef VEC_H
#define VEC_H

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#define VEC_MIN 16

/*
 * The new array for a vector of n elements (alloc allocated, each size
 * bytes) that needs room for more: v reallocated, with *alloc updated; or
 * NULL with errno ENOMEM (v untouched), also when (n + more) * size
 * would pass PTRDIFF_MAX.
 * Use the macros.
 */
void *vec_grow(void *v, size_t n, size_t more, size_t *alloc, size_t size);

/* Room for more elements after the n in use: 0 or -ENOMEM. */
#define vec_reserve(vec, more)                                                                     \
	__extension__({                                                                            \
		__typeof__(vec) vr_ = (vec);                                                       \
		size_t vm_ = (more);                                                               \
		int vrc_ = 0;                                                                      \
		if (vm_ > vr_->alloc - vr_->n) {                                                   \
			void *vp_ = vec_grow(vr_->v, vr_->n, vm_, &vr_->alloc, sizeof(*vr_->v));   \
			if (vp_)                                                                   \
				vr_->v = vp_;                                                      \
			else                                                                       \
				vrc_ = -ENOMEM;                                                    \
		}                                                                                  \
		vrc_;                                                                              \
	})

/* Append one element (an expression of the element type): 0 or -ENOMEM. */
#define vec_push(vec, ...)                                                                         \
	__extension__({                                                                            \
		__typeof__(vec) vq_ = (vec);                                                       \
		int vqc_ = vec_reserve(vq_, 1);                                                    \
		if (!vqc_)                                                                         \
			vq_->v[vq_->n++] = (__VA_ARGS__);                                          \
		vqc_;                                                                              \
	})

/* Free the array and make the vector empty again. */
#define vec_release(vec)                                                                           \
	do {                                                                                       \
		__typeof__(vec) vl_ = (vec);                                                       \
		free(vl_->v);                                                                      \
		vl_->v = NULL;                                                                     \
		vl_->n = vl_->alloc = 0;                                                           \
	} while (0)

#endif /* VEC_H */
