// SPDX-License-Identifier: MIT
/*
 * The store's lifecycle: open (create, lock, version checks, recovery:
 * ephemeral and expired snapshots dropped, stale files detected, unneeded
 * extents and orphan block-file space freed, the allocator rebuilt), close,
 * the periodic tick, statistics, the table of struct store_file, and
 * logging. Watch for: store_open must not write anything until every check
 * that can refuse the store has passed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store_i.h"

static void (*log_fn)(int level, const char *msg);
static void (*test_hook)(const char *point);

void store_set_logger(void (*fn)(int level, const char *msg))
{
	log_fn = fn;
}

void store_set_test_hook(void (*fn)(const char *point))
{
	test_hook = fn;
}

void store_test_point(const char *point)
{
	if (test_hook)
		test_hook(point);
}

void store_logf(int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_fn)
		log_fn(level, msg);
	else
		fprintf(stderr, "%s\n", msg);
}

int64_t store_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

/* ---- the table of files ---- */

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

static struct store_file *sf_new(struct store *st, const unsigned char *h, uint32_t hlen)
{
	struct store_file *sf = calloc(1, sizeof(*sf));
	if (!sf)
		return NULL;
	sf->st = st;
	sf->livefd = -1;
	sf->hlen = hlen;
	memcpy(sf->handle, h, hlen);
	pthread_rwlock_init(&sf->lock, NULL);
	RB_INSERT(sf_by_handle, &st->files_h, sf);
	return sf;
}

struct store_file *store_file_by_fid(struct store *st, uint64_t fid)
{
	struct store_file key = {.fid = fid};
	return RB_FIND(sf_by_fid, &st->files_f, &key);
}

static void sf_set_fid(struct store_file *sf, uint64_t fid)
{
	struct store *st = sf->st;
	if (sf->fid)
		RB_REMOVE(sf_by_fid, &st->files_f, sf);
	__atomic_store_n(&sf->fid, fid, __ATOMIC_RELEASE);
	if (fid)
		RB_INSERT(sf_by_fid, &st->files_f, sf);
}

void store_file_set_fid(struct store_file *sf, uint64_t fid)
{
	sf_set_fid(sf, fid);
}

void store_file_maybe_free(struct store_file *sf)
{
	struct store *st = sf->st;
	if (sf->refs || sf->ncov)
		return;
	if (sf->fid)
		RB_REMOVE(sf_by_fid, &st->files_f, sf);
	RB_REMOVE(sf_by_handle, &st->files_h, sf);
	if (sf->livefd >= 0)
		close(sf->livefd);
	pthread_rwlock_destroy(&sf->lock);
	free(sf->cov);
	free(sf);
}

int store_cover_add(struct store_file *sf, const struct cover *c)
{
	if (sf->ncov == sf->capcov) {
		size_t nc = sf->capcov ? sf->capcov * 2 : 4;
		struct cover *na = reallocarray(sf->cov, nc, sizeof(*na));
		if (!na)
			return -ENOMEM;
		sf->cov = na;
		sf->capcov = nc;
	}
	size_t i = sf->ncov;
	while (i && sf->cov[i - 1].epoch > c->epoch) {
		sf->cov[i] = sf->cov[i - 1];
		i--;
	}
	sf->cov[i] = *c;
	sf->ncov++;
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

int store_sync_mode(const struct cover *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (c[i].kind == STORE_PINNED)
			return 1;
	return 0;
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

int store_live_fd(struct store_file *sf)
{
	if (sf->livefd >= 0)
		return sf->livefd;
	if (sf->detached)
		return -EIO;
	int fd = store_open_handle(sf->st, sf->handle, sf->hlen, O_RDONLY);
	if (fd == -ESTALE || fd == -ENOENT)
		return -EIO;
	if (fd < 0)
		return fd;
	sf->livefd = fd;
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
		sf = sf_new(st, h, key.hlen);
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

uint32_t store_block_size(const struct store *st)
{
	return st->bs;
}

/* ---- the list of live snapshots ---- */

struct snapmem *store_snap_find(struct store *st, uint64_t id)
{
	size_t lo = 0, hi = st->nsnaps;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (st->snaps[mid].id == id)
			return &st->snaps[mid];
		if (st->snaps[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int store_snap_reserve(struct store *st, size_t more)
{
	if (st->capsnaps - st->nsnaps >= more)
		return 0;
	size_t nc = st->capsnaps ? st->capsnaps * 2 : 16;
	if (nc < st->nsnaps + more)
		nc = st->nsnaps + more;
	pthread_rwlock_wrlock(&st->snaplock);
	struct snapmem *na = reallocarray(st->snaps, nc, sizeof(*na));
	if (na) {
		st->snaps = na;
		st->capsnaps = nc;
	}
	pthread_rwlock_unlock(&st->snaplock);
	return na ? 0 : -ENOMEM;
}

int store_snap_add(struct store *st, const struct snapmem *s)
{
	int rc = store_snap_reserve(st, 1);
	if (rc)
		return rc;
	pthread_rwlock_wrlock(&st->snaplock);
	size_t i = st->nsnaps;
	while (i && st->snaps[i - 1].id > s->id) {
		st->snaps[i] = st->snaps[i - 1];
		i--;
	}
	st->snaps[i] = *s;
	st->nsnaps++;
	pthread_rwlock_unlock(&st->snaplock);
	return 0;
}

void store_snap_set_state(struct store *st, struct snapmem *sm, int state)
{
	pthread_rwlock_wrlock(&st->snaplock);
	sm->state = state;
	pthread_rwlock_unlock(&st->snaplock);
}

void store_snap_del(struct store *st, uint64_t id)
{
	struct snapmem *s = store_snap_find(st, id);
	if (!s)
		return;
	size_t i = (size_t)(s - st->snaps);
	store_forgo_free(s);
	pthread_rwlock_wrlock(&st->snaplock);
	memmove(&st->snaps[i], &st->snaps[i + 1], (st->nsnaps - i - 1) * sizeof(*s));
	st->nsnaps--;
	pthread_rwlock_unlock(&st->snaplock);
}

int store_snap_meta(struct store *st, uint64_t id, struct store_snap_meta *out)
{
	pthread_rwlock_rdlock(&st->snaplock);
	const struct snapmem *sm = store_snap_find(st, id);
	if (sm)
		*out = (struct store_snap_meta){.id = sm->id,
						.epoch = sm->epoch,
						.created = sm->created,
						.expires = sm->expires,
						.uid = sm->uid,
						.kind = (enum store_kind)sm->kind,
						.state = (enum store_state)sm->state};
	pthread_rwlock_unlock(&st->snaplock);
	return sm ? 0 : -ENOENT;
}

void store_forgo_free(struct snapmem *sm)
{
	while (sm->forgo) {
		struct snapforgo *f = sm->forgo;
		sm->forgo = f->next;
		free(f->bits);
		free(f);
	}
}

const struct snapforgo *store_forgo_get(struct store *st, uint64_t snap, uint64_t fid)
{
	struct snapmem *sm = store_snap_find(st, snap);
	for (struct snapforgo *f = sm ? sm->forgo : NULL; f; f = f->next)
		if (f->fid == fid)
			return f;
	return NULL;
}

/* ---- recovery ---- */

struct recover_ext {
	struct ext *a;
	size_t n, cap;
};

static int collect_ext(void *arg, const struct ext *e)
{
	struct recover_ext *r = arg;
	if (r->n == r->cap) {
		size_t nc = r->cap ? r->cap * 2 : 1024;
		struct ext *na = reallocarray(r->a, nc, sizeof(*na));
		if (!na)
			return -ENOMEM;
		r->a = na;
		r->cap = nc;
	}
	r->a[r->n++] = *e;
	return 0;
}

static void mark_stale(struct store *st, uint64_t snap)
{
	struct snapmem *s = store_snap_find(st, snap);
	if (!s || s->state == STORE_STALE)
		return;
	store_snap_set_state(st, s, STORE_STALE);
	store_logf(4, "snapstore: snapshot %" PRIu64 " is stale: a file changed while unmounted",
		   snap);
}

/*
 * Staleness of one attached file: clean close -> any difference of size,
 * mtime, ctime or inode from the recorded stat; after a crash -> a ctime later
 * than alive_until, the time up to which the store had promised to be alive
 * (each tick promises STORE_ALIVE_GRACE_NS ahead, and the daemon ticks every
 * second), so the daemon's own last writes are trusted. The cost: a change
 * made from outside within that grace after a crash is not detected.
 */
static int check_file(struct store *st, struct store_file *sf, const struct extidx_file *row,
		      int clean, int64_t alive_ns, int *stale)
{
	*stale = 0;
	int fd = store_open_handle(st, sf->handle, sf->hlen, O_RDONLY);
	if (fd == -ESTALE || fd == -ENOENT) {
		*stale = 1;
		return 0;
	}
	if (fd < 0) {
		store_logf(3, "snapstore: cannot reopen a snapshotted file by handle: %s",
			   strerror(-fd));
		return fd;
	}
	struct stat sb;
	if (fstat(fd, &sb)) {
		int e = errno;
		close(fd);
		return -e;
	}
	if (clean)
		*stale = (uint64_t)sb.st_size != row->size || (uint64_t)sb.st_ino != row->ino ||
			 ts_ns(&sb.st_mtim) != row->mtime_ns || ts_ns(&sb.st_ctim) != row->ctime_ns;
	else
		*stale = ts_ns(&sb.st_ctim) > alive_ns;
	int rc = 0;
	if (!*stale)
		rc =
		    extidx_file_set_stat(st->x, row->fid, (uint64_t)sb.st_ino, (uint64_t)sb.st_size,
					 ts_ns(&sb.st_mtim), ts_ns(&sb.st_ctim));
	sf->livefd = fd;
	return rc;
}

static int recover(struct store *st)
{
	int64_t clean = 0, alive = 0, epoch = 1;
	int rc;
	struct extidx_snap *snaps = NULL;
	struct extidx_file *files = NULL;
	struct extidx_sfile *sfiles = NULL;
	size_t nsnaps = 0, nfiles = 0, nsfiles = 0;
	struct recover_ext ex = {0};
	uint64_t *ustart = NULL, *un = NULL;
	size_t nused = 0;

	if ((rc = extidx_meta_get(st->x, "clean", &clean)) ||
	    (rc = extidx_meta_get(st->x, "alive_until", &alive)) ||
	    (rc = extidx_meta_get(st->x, "epoch", &epoch)))
		return rc == -ENOENT ? -EIO : rc;
	st->epoch = (uint64_t)epoch;
	if ((rc = extidx_begin(st->x, 1)))
		return rc;

	/* 1. Ephemeral snapshots die with the daemon; expired ones are released. */
	if ((rc = extidx_snaps_all(st->x, &snaps, &nsnaps)))
		goto out;
	int64_t now = time(NULL);
	for (size_t i = 0; i < nsnaps; i++) {
		struct extidx_snap *s = &snaps[i];
		if (s->kind == STORE_EPHEMERAL || (s->expires && s->expires <= now)) {
			if ((rc = extidx_snap_delete(st->x, s->id)))
				goto out;
			continue;
		}
		struct snapmem m = {.id = s->id,
				    .epoch = s->epoch,
				    .created = s->created,
				    .expires = s->expires,
				    .uid = s->uid,
				    .kind = s->kind,
				    .state = s->state};
		if ((rc = store_snap_add(st, &m)))
			goto out;
	}

	/* 2. Files and the valid snapshots covering them. */
	if ((rc = extidx_files_all(st->x, &files, &nfiles)) ||
	    (rc = extidx_sfiles(st->x, 0, &sfiles, &nsfiles)))
		goto out;
	for (size_t i = 0; i < nfiles; i++) {
		struct store_file *sf = sf_new(st, files[i].handle, files[i].hlen);
		if (!sf) {
			rc = -ENOMEM;
			goto out;
		}
		sf_set_fid(sf, files[i].fid);
		sf->detached = files[i].state == 1;
	}
	for (size_t i = 0; i < nsfiles; i++) {
		struct snapmem *s = store_snap_find(st, sfiles[i].snap);
		struct store_file *sf = store_file_by_fid(st, sfiles[i].fid);
		if (!s || !sf || s->state != STORE_VALID)
			continue;
		struct cover c = {
		    .snap = s->id, .epoch = s->epoch, .size = sfiles[i].size, .kind = s->kind};
		if ((rc = store_cover_add(sf, &c)))
			goto out;
	}

	/* 3. Files changed while nobody watched make their snapshots stale. */
	for (size_t i = 0; i < nfiles; i++) {
		struct store_file *sf = store_file_by_fid(st, files[i].fid);
		if (!sf->ncov || sf->detached)
			continue;
		int stale;
		if ((rc = check_file(st, sf, &files[i], clean == 1, alive, &stale)))
			goto out;
		if (stale)
			for (size_t j = 0; j < sf->ncov; j++)
				mark_stale(st, sf->cov[j].snap);
	}
	for (size_t i = 0; i < st->nsnaps; i++) {
		struct snapmem *s = &st->snaps[i];
		if (s->state != STORE_STALE)
			continue;
		if ((rc = extidx_snap_set_state(st->x, s->id, STORE_STALE)))
			goto out;
		for (size_t j = 0; j < nfiles; j++)
			store_cover_del(store_file_by_fid(st, files[j].fid), s->id);
	}

	/* 4. File rows no snapshot names any more go; the in-memory table keeps
	 * the tracked files only. */
	for (size_t i = 0; i < nfiles; i++) {
		struct store_file *sf = store_file_by_fid(st, files[i].fid);
		uint64_t refs = 0;
		if (!sf->ncov) {
			if ((rc = extidx_sfile_fid_refs(st->x, files[i].fid, &refs)))
				goto out;
			if (!refs && (rc = extidx_file_delete(st->x, files[i].fid)))
				goto out;
			store_file_maybe_free(sf);
		}
	}

	/* 5. GC: every extent no valid snapshot needs; the rest is the used space. */
	if ((rc = extidx_ext_each(st->x, collect_ext, &ex)))
		goto out;
	ustart = malloc((ex.n + 1) * sizeof(*ustart));
	un = malloc((ex.n + 1) * sizeof(*un));
	if (!ustart || !un) {
		rc = -ENOMEM;
		goto out;
	}
	st->nextents = 0;
	st->preserved_bytes = 0;
	for (size_t i = 0; i < ex.n; i++) {
		struct ext *e = &ex.a[i];
		struct store_file *sf = store_file_by_fid(st, e->fid);
		if (!sf || !store_ext_needed(sf->cov, sf->ncov, st->bs, e->blk, e->efrom, e->eto)) {
			if ((rc = extidx_ext_delete(st->x, e->fid, e->blk, e->efrom)))
				goto out;
			continue;
		}
		st->nextents++;
		if (e->nblk > sf->maxnblk)
			sf->maxnblk = e->nblk;
		if (e->loc >= 0) {
			if ((uint64_t)e->loc % st->bs) {
				store_logf(3, "snapstore: extent at unaligned offset %" PRId64,
					   e->loc);
				rc = -EIO;
				goto out;
			}
			ustart[nused] = (uint64_t)e->loc / st->bs;
			un[nused++] = e->nblk;
			st->preserved_bytes += (uint64_t)e->nblk * st->bs;
		}
	}

	if ((rc = extidx_meta_set(st->x, "clean", 0)) ||
	    (rc = extidx_meta_set(st->x, "alive_until", store_now_ns() + STORE_ALIVE_GRACE_NS)))
		goto out;
	if ((rc = extidx_commit(st->x)))
		goto out;
	/* 6. Only now (rows durable) may unreferenced space be punched. */
	rc = blk_rebuild(&st->blk, ustart, un, nused);
	if (rc == -EIO)
		store_logf(3, "snapstore: two extents share block-file space: run check");
	goto out_free;
out:
	extidx_rollback(st->x);
out_free:
	free(snaps);
	free(files);
	extidx_sfiles_free(sfiles, nsfiles);
	free(ex.a);
	free(ustart);
	free(un);
	return rc;
}

/* ---- open / close ---- */

static void free_all(struct store *st)
{
	struct store_file *sf, *nx;
	RB_FOREACH_SAFE(sf, sf_by_handle, &st->files_h, nx)
	{
		sf->refs = 0;
		sf->ncov = 0;
		store_file_maybe_free(sf);
	}
	for (size_t i = 0; i < st->nsnaps; i++)
		store_forgo_free(&st->snaps[i]);
	free(st->snaps);
	blk_release(&st->blk);
	extidx_close(st->x);
	if (st->blk.fd >= 0)
		close(st->blk.fd);
	if (st->lockfd >= 0)
		close(st->lockfd);
	if (st->dirfd >= 0)
		close(st->dirfd);
	pthread_mutex_destroy(&st->mu);
	pthread_rwlock_destroy(&st->space);
	pthread_rwlock_destroy(&st->snaplock);
	free(st);
}

static int valid_bs(uint32_t bs)
{
	return bs >= 512 && bs <= (1u << 20) && !(bs & (bs - 1));
}

/* Make a new store in dirfd: blocks first, then the index under a temporary
 * name renamed into place, so a crash leaves either no index (retried) or a
 * complete one. */
static int create_store(struct store *st, const char *dir, uint32_t bs)
{
	char tmp[4096], fin[4096];
	int fd = openat(st->dirfd, "blocks", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	struct stat sb;
	if (fstat(fd, &sb) || sb.st_size != 0) {
		close(fd);
		store_logf(3, "snapstore: %s: a block file without an index: refusing to reuse it",
			   dir);
		return -EIO;
	}
	st->blk.fd = fd;
	if (snprintf(tmp, sizeof(tmp), "%s/index.db.new", dir) >= (int)sizeof(tmp) ||
	    snprintf(fin, sizeof(fin), "%s/index.db", dir) >= (int)sizeof(fin))
		return -ENAMETOOLONG;
	unlinkat(st->dirfd, "index.db.new", 0);
	unlinkat(st->dirfd, "index.db.new-wal", 0);
	unlinkat(st->dirfd, "index.db.new-shm", 0);
	uint32_t b = bs;
	int rc = extidx_open(tmp, 1, &b, &st->x);
	if (rc)
		return rc;
	extidx_close(st->x); /* checkpoints and removes the WAL */
	st->x = NULL;
	if (renameat(st->dirfd, "index.db.new", st->dirfd, "index.db"))
		return -errno;
	fsync(st->dirfd);
	return extidx_open(fin, 0, &b, &st->x);
}

int store_open(const char *dir, int source_fd, const struct store_opts *o, struct store **out)
{
	struct store_opts def = {0};
	if (!o)
		o = &def;
	if (o->block_size && !valid_bs(o->block_size))
		return -EINVAL;
	struct store *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->dirfd = st->lockfd = -1;
	st->blk.fd = -1;
	st->srcfd = source_fd;
	st->max_bytes = o->max_bytes;
	pthread_mutex_init(&st->mu, NULL);
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&st->space, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_rwlock_init(&st->snaplock, NULL);
	RB_INIT(&st->files_h);
	RB_INIT(&st->files_f);

	int rc;
	st->dirfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (st->dirfd < 0 && errno == ENOENT && o->create) {
		if (mkdir(dir, 0700) && errno != EEXIST) {
			rc = -errno;
			goto out_free;
		}
		st->dirfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	}
	if (st->dirfd < 0) {
		rc = -errno;
		goto out_free;
	}
	int exists = faccessat(st->dirfd, "index.db", F_OK, 0) == 0;
	if (!exists && !o->create) {
		rc = -ENOENT;
		goto out_free;
	}
	st->lockfd = openat(st->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (st->lockfd < 0) {
		rc = -errno;
		goto out_free;
	}
	if (flock(st->lockfd, LOCK_EX | LOCK_NB)) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		if (rc == -EBUSY)
			store_logf(3, "snapstore: %s: in use by another process", dir);
		goto out_free;
	}
	uint32_t bs = o->block_size ? o->block_size : STORE_DEFAULT_BLOCK_SIZE;
	if (!exists) {
		rc = create_store(st, dir, bs);
		if (rc)
			goto out_free;
	} else {
		char path[4096];
		if (snprintf(path, sizeof(path), "%s/index.db", dir) >= (int)sizeof(path)) {
			rc = -ENAMETOOLONG;
			goto out_free;
		}
		bs = o->block_size;
		if ((rc = extidx_open(path, 0, &bs, &st->x)))
			goto out_free;
		st->blk.fd = openat(st->dirfd, "blocks", O_RDWR | O_CLOEXEC);
		if (st->blk.fd < 0) {
			rc = -errno;
			store_logf(3, "snapstore: %s/blocks: %s", dir, strerror(-rc));
			if (rc == -ENOENT)
				rc = -EIO;
			goto out_free;
		}
	}
	st->bs = bs;
	int bfd = st->blk.fd;
	blk_init(&st->blk, bfd, bs);
	if ((rc = recover(st)))
		goto out_free;
	*out = st;
	return 0;
out_free:
	free_all(st);
	return rc;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	pthread_mutex_lock(&st->mu);
	int rc = extidx_begin(st->x, 1);
	struct store_file *sf;
	RB_FOREACH(sf, sf_by_handle, &st->files_h)
	{
		if (rc || !sf->ncov || sf->detached || !sf->fid)
			continue;
		int fd = store_live_fd(sf);
		struct stat sb;
		if (fd < 0 || fstat(fd, &sb))
			continue; /* gone: the next open finds it stale */
		rc = extidx_file_set_stat(st->x, sf->fid, (uint64_t)sb.st_ino, (uint64_t)sb.st_size,
					  ts_ns(&sb.st_mtim), ts_ns(&sb.st_ctim));
	}
	if (!rc)
		rc = extidx_meta_set(st->x, "clean", 1);
	if (!rc)
		rc = extidx_commit(st->x);
	else
		extidx_rollback(st->x);
	if (rc)
		store_logf(3,
			   "snapstore: close: could not record file state (%s): the next open "
			   "treats this as a crash",
			   strerror(-rc));
	pthread_mutex_unlock(&st->mu);
	free_all(st);
}

int store_tick(struct store *st)
{
	int64_t now = time(NULL);
	int rc = 0;
	pthread_rwlock_wrlock(&st->space);
	pthread_mutex_lock(&st->mu);
	for (size_t i = 0; i < st->nsnaps && !rc;) {
		struct snapmem *s = &st->snaps[i];
		if (s->expires && s->expires <= now)
			rc = snap_release_locked(st, s->id, s->kind == STORE_PINNED);
		else
			i++;
	}
	if (!rc && !(rc = extidx_begin(st->x, 0))) {
		rc = extidx_meta_set(st->x, "alive_until", store_now_ns() + STORE_ALIVE_GRACE_NS);
		rc = rc ? (extidx_rollback(st->x), rc) : extidx_commit(st->x);
	}
	pthread_mutex_unlock(&st->mu);
	pthread_rwlock_unlock(&st->space);
	return rc;
}

int store_stats(struct store *st, struct store_stats *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&st->mu);
	struct stat sb;
	out->bytes_on_disk = (uint64_t)extidx_db_bytes(st->x);
	if (!fstat(st->blk.fd, &sb))
		out->bytes_on_disk += (uint64_t)sb.st_blocks * 512;
	out->bytes_preserved = st->preserved_bytes;
	out->extents = st->nextents;
	out->snapshots = st->nsnaps;
	out->epoch = st->epoch;
	out->block_size = st->bs;
	out->cow_copies = st->cow_copies;
	out->cow_bytes = st->cow_bytes;
	out->store_reads = st->store_reads;
	out->store_read_bytes = st->store_read_bytes;
	pthread_mutex_unlock(&st->mu);
	return 0;
}
