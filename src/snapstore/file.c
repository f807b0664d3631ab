// SPDX-License-Identifier: MIT
/*
 * The table of files: one struct store_file per kernel file handle while
 * anyone holds a reference or a snapshot covers it, indexed by handle and by
 * fid; its cover list (the live valid snapshots it must preserve for), the
 * cached live descriptor, and the daemon's per-file lock. Watch for: every
 * function here runs with st->mu held except get/put/lock/tracked/fid, and
 * a file leaves the table only when it has no reference and no cover.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_i.h"

static int cmp_handle(struct store_file *a, struct store_file *b)
{
	if (a->hlen != b->hlen)
		return a->hlen < b->hlen ? -1 : 1;
	return memcmp(a->handle, b->handle, a->hlen);
}

static int cmp_fid(struct store_file *a, struct store_file *b)
{
	return a->fid < b->fid ? -1 : a->fid > b->fid;
}

STORE_RB_GENERATE(sf_by_handle, store_file, by_handle, cmp_handle);
STORE_RB_GENERATE(sf_by_fid, store_file, by_fid, cmp_fid);

struct store_file *store_file_new(struct store *st, const unsigned char *h, uint32_t hlen)
{
	struct store_file *sf = calloc(1, sizeof(*sf));
	if (!sf)
		return NULL;
	sf->st = st;
	sf->hlen = hlen;
	memcpy(sf->handle, h, hlen);
	pthread_rwlock_init(&sf->lock, NULL);
	RB_INSERT(sf_by_handle, &st->files_h, sf);
	return sf;
}

struct store_file *store_file_first(struct store *st)
{
	return RB_MIN(sf_by_handle, &st->files_h);
}

struct store_file *store_file_next(struct store_file *sf)
{
	return RB_NEXT(sf_by_handle, &sf->st->files_h, sf);
}

void store_files_free(struct store *st)
{
	struct store_file *sf, *nx;
	RB_FOREACH_SAFE(sf, sf_by_handle, &st->files_h, nx)
	{
		sf->refs = 0;
		sf->ncov = 0;
		store_file_maybe_free(sf);
	}
}

struct store_file *store_file_by_fid(struct store *st, uint64_t fid)
{
	struct store_file key = {.fid = fid};
	return RB_FIND(sf_by_fid, &st->files_f, &key);
}

struct store_file *store_file_by_handle(struct store *st, const unsigned char *h, uint32_t hlen)
{
	struct store_file key;
	if (hlen > sizeof(key.handle))
		return NULL;
	key.hlen = hlen;
	memcpy(key.handle, h, hlen);
	return RB_FIND(sf_by_handle, &st->files_h, &key);
}

void store_file_set_fid(struct store_file *sf, uint64_t fid)
{
	struct store *st = sf->st;
	if (sf->fid)
		RB_REMOVE(sf_by_fid, &st->files_f, sf);
	__atomic_store_n(&sf->fid, fid, __ATOMIC_RELEASE);
	if (fid)
		RB_INSERT(sf_by_fid, &st->files_f, sf);
}

void store_file_maybe_free(struct store_file *sf)
{
	struct store *st = sf->st;
	if (sf->refs || sf->ncov)
		return;
	if (sf->fid)
		RB_REMOVE(sf_by_fid, &st->files_f, sf);
	RB_REMOVE(sf_by_handle, &st->files_h, sf);
	pthread_rwlock_destroy(&sf->lock);
	cowdone_free(&sf->done);
	free(sf->cov);
	free(sf);
}

int store_cover_add(struct store_file *sf, const struct cover *c)
{
	struct cover *na = store_grow(sf->cov, sf->ncov, &sf->capcov, sizeof(*na), 4);
	if (!na)
		return -ENOMEM;
	sf->cov = na;
	size_t i = sf->ncov;
	while (i && sf->cov[i - 1].epoch > c->epoch) {
		sf->cov[i] = sf->cov[i - 1];
		i--;
	}
	sf->cov[i] = *c;
	sf->ncov++;
	/* A new cover may need blocks that earlier hooks found done. */
	__atomic_store_n(&sf->covgen, sf->covgen + 1, __ATOMIC_RELEASE);
	__atomic_store_n(&sf->tracked, 1, __ATOMIC_RELEASE);
	return 0;
}

void store_cover_del(struct store_file *sf, uint64_t snap)
{
	size_t j = 0;
	for (size_t i = 0; i < sf->ncov; i++)
		if (sf->cov[i].snap != snap)
			sf->cov[j++] = sf->cov[i];
	sf->ncov = j;
	__atomic_store_n(&sf->tracked, j != 0, __ATOMIC_RELEASE);
}

/* ---- the done set ---- */

static size_t cowdone_hash(uint64_t chunk, size_t cap)
{
	return (size_t)((chunk * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);
}

void cowdone_free(struct cowdone *d)
{
	free(d->key);
	free(d->bits);
	memset(d, 0, sizeof(*d));
}

static void cowdone_clear(struct cowdone *d)
{
	if (d->cap)
		memset(d->key, 0, d->cap * sizeof(*d->key));
	d->n = 0;
}

/* The bits of chunk, or NULL when absent. */
static uint64_t *cowdone_find(const struct cowdone *d, uint64_t chunk)
{
	if (!d->cap)
		return NULL;
	for (size_t i = cowdone_hash(chunk, d->cap);; i = (i + 1) & (d->cap - 1)) {
		if (d->key[i] == chunk + 1)
			return &d->bits[i];
		if (!d->key[i])
			return NULL;
	}
}

/* Room for one more chunk: double up to COWDONE_MAX, then start over.
 * Returns 0 when out of memory (the set is then just left as it is). */
static int cowdone_room(struct cowdone *d)
{
	if (d->cap && (d->n + 1) * 4 <= d->cap * 3)
		return 1;
	if (d->cap >= COWDONE_MAX) {
		cowdone_clear(d);
		return 1;
	}
	size_t nc = d->cap ? d->cap * 2 : 64;
	uint64_t *nk = calloc(nc, sizeof(*nk)), *nb = malloc(nc * sizeof(*nb));
	if (!nk || !nb) {
		free(nk);
		free(nb);
		return 0;
	}
	for (size_t i = 0; i < d->cap; i++) {
		if (!d->key[i])
			continue;
		size_t j = cowdone_hash(d->key[i] - 1, nc);
		while (nk[j])
			j = (j + 1) & (nc - 1);
		nk[j] = d->key[i];
		nb[j] = d->bits[i];
	}
	free(d->key);
	free(d->bits);
	d->key = nk;
	d->bits = nb;
	d->cap = nc;
	return 1;
}

int cowdone_has(struct store_file *sf, uint64_t b0, uint64_t b1)
{
	const struct cowdone *d = &sf->done;
	if (b1 <= b0 || b1 - b0 > COWDONE_SPAN || !d->n ||
	    d->gen != __atomic_load_n(&sf->covgen, __ATOMIC_ACQUIRE))
		return 0;
	for (uint64_t b = b0; b < b1;) {
		const uint64_t *w = cowdone_find(d, b / 64);
		uint64_t lo = b % 64, hi = b1 - b / 64 * 64 < 64 ? b1 - b / 64 * 64 : 64;
		uint64_t want = (hi == 64 ? ~0ull : (1ull << hi) - 1) & ~((1ull << lo) - 1);
		if (!w || (*w & want) != want)
			return 0;
		b = b / 64 * 64 + hi;
	}
	return 1;
}

void cowdone_add(struct store_file *sf, uint64_t gen, uint64_t b0, uint64_t b1)
{
	struct cowdone *d = &sf->done;
	if (gen != __atomic_load_n(&sf->covgen, __ATOMIC_ACQUIRE) || b1 <= b0 ||
	    b1 - b0 > COWDONE_SPAN)
		return; /* a cover came meanwhile, or too long to be worth it */
	if (d->gen != gen) {
		cowdone_clear(d);
		d->gen = gen;
	}
	for (uint64_t b = b0; b < b1;) {
		uint64_t lo = b % 64, hi = b1 - b / 64 * 64 < 64 ? b1 - b / 64 * 64 : 64;
		uint64_t set = (hi == 64 ? ~0ull : (1ull << hi) - 1) & ~((1ull << lo) - 1);
		uint64_t *w = cowdone_find(d, b / 64);
		if (!w) {
			if (!cowdone_room(d))
				return;
			size_t i = cowdone_hash(b / 64, d->cap);
			while (d->key[i])
				i = (i + 1) & (d->cap - 1);
			d->key[i] = b / 64 + 1;
			d->bits[i] = 0;
			d->n++;
			w = &d->bits[i];
		}
		*w |= set;
		b = b / 64 * 64 + hi;
	}
}

int store_sync_mode(const struct cover *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (c[i].kind == STORE_PINNED)
			return 1;
	return 0;
}

void store_mark_set(struct store_file *sf, const struct stat *sb)
{
	sf->mark = (struct live_mark){.valid = 1,
				      .ino = (uint64_t)sb->st_ino,
				      .size = (uint64_t)sb->st_size,
				      .mtime_ns = store_ts_ns(&sb->st_mtim),
				      .ctime_ns = store_ts_ns(&sb->st_ctim)};
}

int store_mark_same(const struct store_file *sf, const struct stat *sb)
{
	/* Not ctime: the daemon's own chmod, chown, xattr, link and rename
	 * move it without changing a byte, and none of them goes through the
	 * file's lock. A change of bytes moves mtime (write, truncate,
	 * fallocate, copy_file_range, clone, mmap at write-back). */
	const struct live_mark *m = &sf->mark;
	return !m->valid || (m->ino == (uint64_t)sb->st_ino && m->size == (uint64_t)sb->st_size &&
			     m->mtime_ns == store_ts_ns(&sb->st_mtim));
}

int store_open_handle(struct store *st, const unsigned char *h, uint32_t hlen, int flags)
{
	union {
		struct file_handle fh;
		char buf[sizeof(struct file_handle) + STORE_HANDLE_MAX];
	} u;
	if (hlen < 4 || hlen > STORE_HANDLE_MAX)
		return -EINVAL;
	int32_t type;
	memcpy(&type, h, 4);
	u.fh.handle_type = type;
	u.fh.handle_bytes = hlen - 4;
	memcpy(u.fh.f_handle, h + 4, hlen - 4);
	int fd = open_by_handle_at(st->srcfd, &u.fh, flags | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int store_file_open(struct store_file *sf, int flags)
{
	return store_open_handle(sf->st, sf->handle, sf->hlen, flags);
}

int store_live_fd(struct store_file *sf)
{
	/* A new descriptor each time, closed by the caller: the store keeps no
	 * descriptor per tracked file (a tree snapshot may track any number). */
	if (sf->detached)
		return -EIO;
	int fd = store_open_handle(sf->st, sf->handle, sf->hlen, O_RDONLY);
	if (fd == -ESTALE || fd == -ENOENT)
		return -EIO;
	return fd;
}

int store_file_get(struct store *st, int fd, struct store_file **out)
{
	union {
		struct file_handle fh;
		char buf[sizeof(struct file_handle) + STORE_HANDLE_MAX];
	} u;
	int mnt;
	u.fh.handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(fd, "", &u.fh, &mnt, AT_EMPTY_PATH))
		return -errno;
	unsigned char h[STORE_HANDLE_MAX];
	int32_t type = u.fh.handle_type;
	memcpy(h, &type, 4);
	memcpy(h + 4, u.fh.f_handle, u.fh.handle_bytes);
	struct store_file key;
	key.hlen = 4 + u.fh.handle_bytes;
	memcpy(key.handle, h, key.hlen);

	pthread_mutex_lock(&st->mu);
	struct store_file *sf = RB_FIND(sf_by_handle, &st->files_h, &key);
	if (!sf)
		sf = store_file_new(st, h, key.hlen);
	if (sf)
		sf->refs++;
	pthread_mutex_unlock(&st->mu);
	if (!sf)
		return -ENOMEM;
	*out = sf;
	return 0;
}

void store_file_put(struct store_file *sf)
{
	if (!sf)
		return;
	struct store *st = sf->st;
	pthread_mutex_lock(&st->mu);
	sf->refs--;
	store_file_maybe_free(sf);
	pthread_mutex_unlock(&st->mu);
}

void store_file_rdlock(struct store_file *sf)
{
	pthread_rwlock_rdlock(&sf->lock);
}

void store_file_wrlock(struct store_file *sf)
{
	pthread_rwlock_wrlock(&sf->lock);
}

void store_file_unlock(struct store_file *sf)
{
	if (sf->hooked) {
		/* The end of a change by the daemon: record what the file shows now,
		 * so recovery after a crash can tell this change from a later one
		 * made without us (see recover.c). */
		struct store *st = sf->st;
		struct stat sb;
		sf->hooked = 0;
		pthread_mutex_lock(&st->mu);
		int fd = sf->detached ? -1 : store_live_fd(sf);
		uint64_t fid = sf->fid;
		pthread_mutex_unlock(&st->mu);
		int ok = fd >= 0 && !fstat(fd, &sb);
		if (ok && fid)
			store_mark_write(st, fid, &sb);
		if (fd >= 0)
			close(fd);
		/* Still under the write lock: no snapshot read compares in between. */
		pthread_mutex_lock(&st->mu);
		if (ok)
			store_mark_set(sf, &sb);
		else
			sf->mark.valid = 0; /* gone or unreadable: the reads fail anyway */
		pthread_mutex_unlock(&st->mu);
	}
	pthread_rwlock_unlock(&sf->lock);
}

void store_file_touch(struct store_file *sf)
{
	if (store_file_tracked(sf))
		sf->hooked = 1;
}

void store_file_unlock_fd(struct store_file *sf, int fd)
{
	struct stat sb;
	if (fd < 0 || !sf->hooked) {
		store_file_unlock(sf);
		return;
	}
	/* detached is set only under this write lock (or at open); a release
	 * may zero fid meanwhile, which leaves at worst a mark nobody reads. */
	sf->hooked = 0;
	uint64_t fid = store_file_fid(sf);
	int ok = !sf->detached && !fstat(fd, &sb);
	if (ok && fid)
		store_mark_write(sf->st, fid, &sb);
	/* Still under the write lock: no snapshot read compares in between. */
	pthread_mutex_lock(&sf->st->mu);
	if (ok)
		store_mark_set(sf, &sb);
	else
		sf->mark.valid = 0; /* gone or unreadable: the reads fail anyway */
	pthread_mutex_unlock(&sf->st->mu);
	pthread_rwlock_unlock(&sf->lock);
}

int store_file_tracked(const struct store_file *sf)
{
	return __atomic_load_n(&sf->tracked, __ATOMIC_ACQUIRE);
}

uint64_t store_file_fid(const struct store_file *sf)
{
	return __atomic_load_n(&sf->fid, __ATOMIC_ACQUIRE);
}

/* mu held: the snapshot's cover of fid, with a new reference to its file. */
int store_cover_find(struct store *st, uint64_t id, uint64_t fid, struct store_file **sfp,
		     struct cover *c)
{
	struct snapmem *sm = store_snap_find(st, id);
	if (!sm)
		return -ENOENT;
	if (sm->state != STORE_VALID)
		return -EIO;
	struct store_file *sf = store_file_by_fid(st, fid);
	if (!sf)
		return -ENOENT;
	for (size_t i = 0; i < sf->ncov; i++)
		if (sf->cov[i].snap == id) {
			*c = sf->cov[i];
			*sfp = sf;
			return 0;
		}
	return -ENOENT;
}

int store_cover_sanity(const struct store_file *sf)
{
	struct store *st = sf->st;
	if (sf->ncov > sf->capcov || store_file_tracked(sf) != (sf->ncov != 0))
		return 0;
	for (size_t i = 0; i < sf->ncov; i++) {
		const struct cover *c = &sf->cov[i];
		if (i && c->epoch <= c[-1].epoch)
			return 0; /* sorted by epoch; one per snapshot (epochs are unique) */
		const struct snapmem *s = store_snap_find(st, c->snap);
		if (!s || s->state != STORE_VALID || s->epoch != c->epoch || s->kind != c->kind)
			return 0;
	}
	return 1;
}
