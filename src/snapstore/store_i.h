/* SPDX-License-Identifier: MIT */
/*
 * Private shared state of the snapstore: struct store, struct store_file and
 * the helpers the store's modules call on each other. Everything here is
 * protected by st->mu unless a field says otherwise; the lock order is
 * file rwlocks -> st->space -> st->mu -> st->snaplock (see docs/SNAPSTORE.md),
 * and file rwlocks -> st->gmu (never held with any other store lock).
 */
#ifndef STORE_I_H
#define STORE_I_H

/* How far ahead each tick promises the store is alive (see check_file). */
#define STORE_ALIVE_GRACE_NS (2 * 1000000000LL)

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/tree.h>
#include <time.h>

#include "blk_i.h"
#include "extidx_i.h"
#include "grow_i.h"
#include "nsidx_i.h"
#include "snapstore.h"

#define STORE_HANDLE_MAX 136   /* 4 bytes handle_type + MAX_HANDLE_SZ (128) */
#define COWDONE_MAX	 4096  /* chunks of 64 blocks a file's done set holds at most */
#define COWDONE_SPAN	 65536 /* longer ranges are not recorded (one hook copies them anyway) */

/* A live, valid snapshot covering a file: what the hooks must preserve for. */
struct cover {
	uint64_t snap;
	uint64_t epoch;
	uint64_t size; /* file size at pin */
	int kind;      /* enum store_kind */
};

/*
 * The blocks of a file whose copy-on-write is done for its current covers
 * (cow.c): a hook adds the blocks it preserved (or found not needed) once it
 * succeeded; the set counts only while gen equals the file's covgen, which
 * every added cover bumps. Memory only (empty at open). A hash of chunks of
 * 64 blocks, at most COWDONE_MAX chunks (then it starts over).
 */
struct cowreq;

struct cowdone {
	uint64_t gen;	/* the covgen it was filled under */
	uint64_t *key;	/* chunk index + 1; 0: empty slot */
	uint64_t *bits; /* bit i: block key * 64 + i is done */
	size_t cap, n;
};

struct store_file {
	RB_ENTRY(store_file) by_handle; /* st->mu */
	RB_ENTRY(store_file) by_fid;	/* st->mu; only while fid != 0 */
	struct store *st;
	pthread_rwlock_t lock; /* the daemon's file lock (see snapstore.h) */
	unsigned refs;	       /* st->mu */
	uint64_t fid;	       /* st->mu for writes; read atomically by store_file_fid() */
	int detached;	       /* st->mu */
	struct cover *cov;     /* st->mu; sorted by epoch */
	size_t ncov, capcov;   /* st->mu */
	int tracked;	       /* ncov != 0, read atomically without the lock */
	int hooked;	       /* lock (write): a hook ran under this hold of the write lock */
	uint64_t covgen;       /* st->mu and lock: bumped by every store_cover_add */
	struct cowdone done;   /* lock (write): blocks whose copy-on-write is done */
	uint32_t maxnblk; /* st->mu; >= nblk of every extent of the file (range-query window) */
	/* Tree snapshots (ns.c): the epoch since which the node's live attributes
	 * hold (t_last) and the epoch it was born in (0: unknown); written under
	 * st->mu, read atomically once ns_known is set. */
	uint64_t ns_tlast, ns_born;
	int ns_known;
	uint32_t hlen;
	unsigned char handle[STORE_HANDLE_MAX];
};

RB_HEAD(sf_by_handle, store_file);
RB_HEAD(sf_by_fid, store_file);

/* Blocks of one file an ephemeral snapshot gave up (store_snap_forgo). */
struct snapforgo {
	uint64_t fid, nblk;
	uint64_t *bits; /* bit b: block b is forgone */
	struct snapforgo *next;
};

/* The index's state of a snapshot made stale by damage to the store (a
 * truncated block file, lost index transactions); in memory: STORE_STALE
 * with damaged set. store_check reports these. */
#define STORE_STATE_DAMAGED 2

/* A live snapshot as the store keeps it in memory. */
struct snapmem {
	uint64_t id, epoch;
	int64_t created, expires;
	uint32_t uid;
	int kind, state;
	int damaged;		 /* stale because the store was damaged (index state 2) */
	struct snapforgo *forgo; /* mu; ephemeral snapshots only */
};

struct store {
	pthread_mutex_t mu;
	pthread_rwlock_t space; /* read: a snapshot read uses block-file space;
				   write: release/GC returns space */
	struct extidx *x;	/* mu */
	struct blk blk;		/* mu (allocator); the fd is used without it */
	int dirfd, lockfd, srcfd;
	uint32_t bs;
	uint64_t max_bytes;
	uint64_t epoch;		  /* mu: the next snapshot's epoch */
	uint64_t preserved_bytes; /* mu: data bytes of all extents */
	uint64_t reserved_bytes;  /* mu: allocated by hooks in flight */
	uint64_t nextents;	  /* mu */
	/* The snapshot table: written with mu and snaplock (write) held; read with
	 * either (store_snap_meta takes only snaplock, so it never waits for
	 * SQL work done under mu). */
	pthread_rwlock_t snaplock;
	struct snapmem *snaps; /* sorted by id */
	size_t nsnaps, capsnaps;
	struct sf_by_handle files_h;   /* mu */
	struct sf_by_fid files_f;      /* mu */
	struct nstab *ns;	       /* tree snapshots (nstab.c) */
	int reservefd, marksfd, genfd; /* side files (disk.c) */
	int reserve_held;	       /* mu */
	uint64_t gen;		       /* mu: the index's last committed write transaction */
	int sums_all;		       /* every data extent carries checksums (meta "sums") */
	uint64_t lost_tx;	       /* committed transactions the index lost (found at open) */
	/* Group commit of copy-on-write (cow.c): the queue of hooks waiting
	 * for a commit, and whether a leader is committing a group. */
	pthread_mutex_t gmu; /* taken with a file lock held, never with mu */
	pthread_cond_t gcv;
	struct cowreq *gq, **gtail; /* gmu */
	int gleader;		    /* gmu */
	/* counters since open */
	uint64_t cow_copies, cow_bytes;		/* mu */
	uint64_t cow_commits;			/* mu: index transactions of the hooks */
	uint64_t store_reads, store_read_bytes; /* atomic (__atomic_*), no lock */
};

/* ---- log.c: the bottom floor ---- */
void store_logf(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void store_vlogf(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void store_test_point(const char *point);
int64_t store_now_ns(void);
/* The wall clock the kernel stamps ctime from (CLOCK_REALTIME_COARSE). */
int64_t store_coarse_now_ns(void);

static inline int64_t store_ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

static inline struct timespec store_ns_ts(int64_t v)
{
	return (struct timespec){.tv_sec = v / 1000000000, .tv_nsec = v % 1000000000};
}

/* ---- disk.c: side files of the store directory, and transactions ---- */
/* After every refusal check: opens (creates) them; fresh: a new store, so
 * marks and gen left by an earlier store in the directory are dropped. */
int store_disk_open(struct store *st, int fresh);
void store_disk_close(struct store *st);
int store_reserve_make(struct store *st); /* best effort: 0 or -errno */
int store_reserve_drop(struct store *st); /* 1 if it gave space back (then retry) */
void store_mark_write(struct store *st, uint64_t fid, const struct stat *sb);
int store_mark_matches(struct store *st, uint64_t fid, const struct stat *sb);
uint64_t store_gen_read(struct store *st);
void store_gen_write(struct store *st, uint64_t gen);
/* A write transaction that counts in st->gen (mu held). */
int store_begin(struct store *st, int full);
int store_commit(struct store *st);

/* ---- snaptab.c: the snapshot table (mu held unless said otherwise) ---- */
struct snapmem *store_snap_find(struct store *st, uint64_t id); /* mu or snaplock held */
int store_snap_reserve(struct store *st, size_t more); /* room for more adds without failing */
int store_snap_add(struct store *st, const struct snapmem *s);
void store_snap_set_state(struct store *st, struct snapmem *sm, int state);
void store_snap_del(struct store *st, uint64_t id);
/* The forgone-blocks bitmap of (snapshot, file), or NULL. */
const struct snapforgo *store_forgo_get(struct store *st, uint64_t snap, uint64_t fid);
static inline int store_forgone(const struct snapforgo *f, uint64_t b)
{
	return f && b < f->nblk && (f->bits[b / 64] >> (b & 63) & 1);
}
void store_forgo_free(struct snapmem *sm);
/* Invariant checker, for assert() only: ids strictly increasing, epochs
 * strictly increasing with them and below st->epoch, kinds and states in
 * range; with_index: the index's snapshots table holds exactly these rows
 * (id, epoch, kind, state, uid, created, expires). Returns 1 when it holds. */
int store_snaps_sanity(struct store *st, int with_index);

/* ---- file.c: the table of files (mu held unless said otherwise) ---- */
struct store_file *store_file_new(struct store *st, const unsigned char *h, uint32_t hlen);
struct store_file *store_file_by_fid(struct store *st, uint64_t fid);
struct store_file *store_file_by_handle(struct store *st, const unsigned char *h, uint32_t hlen);
struct store_file *store_file_first(struct store *st); /* in handle order; NULL: none */
struct store_file *store_file_next(struct store_file *sf);
void store_files_free(struct store *st); /* at close: every file, whatever its references */
void store_file_set_fid(struct store_file *sf, uint64_t fid);
void store_file_maybe_free(struct store_file *sf); /* frees an unused, untracked sf */
int store_cover_add(struct store_file *sf, const struct cover *c); /* bumps sf->covgen */
void store_cover_del(struct store_file *sf, uint64_t snap);
/* The snapshot's cover of fid and the file: -ENOENT, -EIO (stale). */
int store_cover_find(struct store *st, uint64_t id, uint64_t fid, struct store_file **sfp,
		     struct cover *c);
int store_live_fd(struct store_file *sf); /* a new read fd of the live file (close it), or -errno */
int store_open_handle(struct store *st, const unsigned char *h, uint32_t hlen, int flags);
int store_sync_mode(const struct cover *c, size_t n); /* 1 if a pinned snapshot is among them */
/* The done set (struct cowdone), under the file's write lock: whether every
 * block of [b0, b1) is done for the current covers; record [b0, b1) as done
 * under covgen gen (the covgen a hook read when it planned); free it. */
int cowdone_has(struct store_file *sf, uint64_t b0, uint64_t b1);
void cowdone_add(struct store_file *sf, uint64_t gen, uint64_t b0, uint64_t b1);
void cowdone_free(struct cowdone *d);
/* Invariant checker, for assert() only: covers sorted by strictly increasing
 * epoch, one per snapshot, each naming a valid snapshot of the table with
 * that epoch and kind; tracked == (ncov != 0). Returns 1 when it holds. */
int store_cover_sanity(const struct store_file *sf);

/* Whether an extent [blk, blk+nblk) x [efrom, eto) is needed by one of the covers. */
static inline int store_ext_needed(const struct cover *c, size_t n, uint32_t bs, uint64_t blk,
				   uint64_t efrom, uint64_t eto)
{
	for (size_t i = 0; i < n; i++)
		if (c[i].epoch >= efrom && c[i].epoch < eto && blk * bs < c[i].size)
			return 1;
	return 0;
}

/* ---- gc.c: release and garbage collection ---- */
/* Space to give back after a commit. */
struct freelist {
	uint64_t (*r)[2]; /* {start, n} in blocks */
	size_t len, cap;
	uint64_t rows, bytes; /* rows deleted, data bytes they held */
};
int freelist_push(struct freelist *fr, uint64_t start, uint32_t n);
void freelist_apply(struct store *st, struct freelist *fr);
/* GC every extent of fid that the covers c no longer need, from epoch s
 * (extents with efrom <= s < eto; UINT64_MAX: all); mu held inside a
 * transaction. Frees nothing yet: appends the space to *fr. */
int snap_gc_fid(struct store *st, uint64_t fid, uint64_t s, const struct cover *c, size_t nc,
		struct freelist *fr);
/* Release one snapshot's hold and GC what nobody needs; mu and the space
 * write lock held; commits with FULL sync when full != 0. */
int snap_release_locked(struct store *st, uint64_t id, int full);

/* ---- nstab.c: tree snapshots in memory (mu held unless said otherwise) ---- */
struct nstree {
	uint64_t id, epoch, root;
	int64_t created_ns;
	int kind;
	char *path;
};
struct nstab {
	struct nsidx *nx;
	struct nstree *t; /* sorted by id (and so by epoch) */
	size_t n, cap;
	uint64_t max_live; /* the largest epoch of a valid tree snapshot, 0: none; atomic */
};
int ns_init(struct store *st); /* at open, before recovery */
void ns_free(struct store *st);
struct nstree *ns_tree_find(struct store *st, uint64_t id);
int ns_tree_add(struct store *st, const struct nstree *t); /* takes t->path */
void ns_tree_del(struct store *st, uint64_t id);
void ns_max_update(struct store *st); /* after a change of trees or states */
/* The valid tree snapshots with epoch in [lo, hi): their indexes into the
 * table, at most max; returns the count (more than max: not all stored). */
size_t ns_live_in(struct store *st, uint64_t lo, uint64_t hi, size_t *idx, size_t max);
/* Load sf's t_last (and nid, from its handle) if not known yet. */
int ns_load(struct store_file *sf);
/* The nid of sf: its files row, inserted when absent and create != 0
 * (inside a transaction); 0 when absent and !create. */
int ns_nid(struct store_file *sf, int create, uint64_t *nid);
/* Release: delete tree id's row and every namespace row no other tree
 * snapshot needs (inside the caller's transaction); *fids (to free) gets the
 * files holding a cover of id. */
int ns_release_rows(struct store *st, uint64_t id, uint64_t **fids, size_t *n);
/* Recovery, inside its transaction: load the trees (dropping those whose
 * snapshot is gone) and delete rows no tree snapshot needs; later, once the
 * files are loaded, the covers of regular files from their rows. */
int ns_recover_rows(struct store *st);
int ns_recover_covers(struct store *st);
/* Whether namespace rows name fid (its files row must stay). */
int ns_fid_refs(struct store *st, uint64_t fid, int *refs);
/* store_check's part: problems through report(arg, message). */
int ns_check(struct store *st, void (*report)(void *arg, const char *msg), void *arg);

/* ---- dir.c ---- */
/* A snapshot file row as the API shows it. */
void store_sfile_stat(const struct extidx_sfile *f, struct store_snap_file *o);

/* ---- recover.c ---- */
/* Recovery at open (see recover.c); mu need not be held (single-threaded). */
int store_recover(struct store *st);

#endif /* STORE_I_H */
