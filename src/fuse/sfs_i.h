/* SPDX-License-Identifier: MIT */
/*
 * Private state of the snapfs daemon: options, the inode table, and the
 * helpers every request handler shares. The daemon serves SOURCE through a
 * descriptor opened before mounting, and does every backing operation with
 * *at() calls relative to descriptors, so it can be mounted on top of
 * SOURCE itself.
 */
#ifndef SFS_I_H
#define SFS_I_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

struct store;
struct store_file;
struct bits;
struct snapfs_req;

enum sfs_snapmode { SFS_SNAP_LIVE = 0, SFS_SNAP_OPEN = 1 };

/* Whether the kernel's writeback cache is on unless -o writeback or
 * nowriteback says (docs/BENCHMARKS.md, "Writeback cache", has the figures). */
#define SFS_WRITEBACK_DEFAULT 0

/* Filled by the fuse_opt table in opts.c, validated once, then read-only. */
struct sfs_opts {
	char *source;	  /* SOURCE as given */
	char *mountpoint; /* MOUNTPOINT as given */
	char *store;	  /* store=, default SOURCE/.snapfs */
	char *snapdir;	  /* snapdir=, default .snapshots */
	char *snapshot;	  /* snapshot=live|open */
	char *block_size_s;
	char *store_max_s;
	char *log_level_s;
	int foreground; /* -f */
	int debug;	/* -d */
	int allow_other;
	int default_permissions;
	int read_only;
	int writeback; /* -o writeback / nowriteback; -1 until validated */
	int show_help;
	int show_version;
	double timeout;	    /* attr/entry cache timeout, seconds */
	int coarse_backing; /* coarse_backing: mount on sshfs anyway (main.c) */
	/* derived by opts_validate() */
	enum sfs_snapmode snapmode;
	uint32_t block_size;
	uint64_t store_max;
	int log_level;
};

/*
 * One backing object the kernel knows about. Keyed by (dev, ino) of the
 * backing file; the FUSE node id is the address of this struct (the root is
 * FUSE_ROOT_ID). Freed when the kernel forgets its last lookup.
 */
enum sfs_kind {
	SFS_REAL = 0, /* a backing object */
	SFS_VROOT,    /* the snapshot view's root, MNT/<snapdir> */
	SFS_VDIR,     /* a directory inside a snapshot ("" = the ID directory) */
	SFS_VFILE,    /* a file inside a snapshot */
	SFS_TNODE,    /* any node inside a tree snapshot (treeview.c) */
};

struct sfs_inode {
	enum sfs_kind kind;
	int cfd;		/* cached O_PATH descriptor of the backing object, -1 when not
				   cached (or virtual); use inode_fd(); protected by sfs->mutex */
	unsigned fd_users;	/* calls using cfd now; protected by sfs->mutex */
	struct file_handle *fh; /* reopens the object once cfd is closed; NULL: cfd
				   is never closed (root, other filesystems) */
	struct sfs_inode *lru_prev, *lru_next; /* cached descriptors, protected by
						  sfs->mutex */
	dev_t dev;
	ino_t ino;
	mode_t type;		 /* S_IFMT bits, fixed for the object's life */
	uint64_t nlookup;	 /* protected by sfs->mutex */
	struct sfs_inode *hnext; /* hash chain, protected by sfs->mutex */
	pthread_rwlock_t rwlock; /* write: bytes changing; read: live read in flight */
	int nocaps;		 /* 1: known to carry no security.capability xattr */
	size_t wslot;		 /* 1 + its place among the files open for writing, 0: none
				   (quiesce.c, under its mutex) */
	unsigned capgen;	 /* bumped by every setxattr of it through the mount */
	struct store_file *sf;	 /* regular files, attached on first need; set once under
				    sfs->mutex, then read-only */
	struct bits *marks;	 /* change bitmaps of segments reading the file
				    directly (bits.c); protected by rwlock */
	/* Virtual nodes (snapview.c); read-only after creation (vst too). */
	uint64_t snap;		 /* snapshot id */
	char *vpath;		 /* path inside the snapshot; "" for the ID directory */
	uint64_t fid;		 /* SFS_VFILE: the file's id in the store; SFS_TNODE: the
				    node's id, 0 while the store has none */
	struct stat vst;	 /* attributes served for the node */
	char *vtarget;		 /* SFS_TNODE symlink: its target as at the snapshot */
	void *vxattrs;		 /* SFS_TNODE: its xattrs as at the snapshot (packed) */
	uint32_t vxattrs_len;	 /* (sf: SFS_TNODE: the live node's store file, or NULL) */
	struct sfs_inode *vnext; /* virtual-node hash chain, protected by sfs->mutex */
};

/* One open regular file: fi->fh points here. */
struct sfs_file {
	int fd;			  /* backing descriptor */
	int flags;		  /* open flags as the caller gave them */
	uint64_t snap;		  /* non-zero: reads are served from this snapshot */
	uint64_t fid;		  /* the file's id in that snapshot */
	struct sfs_inode *tnode;  /* a tree snapshot's file: its view node (the
				     kernel keeps it while the file is open) */
	struct sfs_inode *winode; /* open for writing: its inode (quiesce.c) */
	uint64_t ref_snap;	  /* non-zero: this open holds a reference on that
				     ephemeral snapshot, dropped at release;
				     protected by the holds' mutex (hold.c) */
};

static inline struct sfs_file *file_of(const struct fuse_file_info *fi)
{
	return (struct sfs_file *)(uintptr_t)fi->fh;
}

struct sfs {
	struct sfs_opts o;
	int source_fd;	 /* fd of SOURCE (O_RDONLY), opened before mounting */
	int store_dirfd; /* O_PATH fd of the store directory */
	/* SOURCE's filesystem answers FALLOC_FL_ZERO_RANGE without zeroing
	 * (GlusterFS's FUSE client): ops_file.c punches and allocates instead. */
	int zero_by_punch;
	struct sfs_inode root;
	/* The store directory is hidden: its identity and where it sits. */
	dev_t store_dev;
	ino_t store_ino;
	dev_t store_pdev; /* the directory holding the store, if inside SOURCE */
	ino_t store_pino;
	char store_name[NAME_MAX + 1]; /* its name there; "" when outside SOURCE */
	char *mnt_abs;		       /* the mount point's absolute path (quiesce.c) */
	struct store *store;
	struct fuse_session *se;

	pthread_mutex_t mutex;	 /* protects the inode table */
	struct sfs_inode **htab; /* protected by mutex */
	size_t hsize, count;	 /* protected by mutex */

	int cred_switch; /* serve callers with their own fsuid/fsgid/groups */
	uid_t self_uid;

	struct sfs_inode vroot;	 /* the snapshot view's root */
	struct sfs_inode **vtab; /* virtual nodes by (snap, path), protected by mutex */
	size_t vsize, vcount;	 /* buckets (doubled past 2 nodes each), nodes */
};

extern struct sfs sfs;

/* opts.c */
int opts_parse(struct fuse_args *args, struct sfs_opts *o);
int opts_validate(struct sfs_opts *o);
void opts_usage(const char *prog);

/* helper.c: when run as mount.snapfs or mount.fuse.snapfs, rewrite mount(8)'s
 * helper command line into the daemon's. 0: done (or not a helper), 1: fake
 * mount (mount -f), nothing to do; -1: bad arguments, message printed. */
int helper_args(struct fuse_args *args);

/* notify.c: send state ("READY=1", "STOPPING=1") to systemd over
 * $NOTIFY_SOCKET; nothing without it. Returns 0 or -errno. */
int sfs_notify(const char *state);

/* log.c */
enum {
	SFS_LOG_ERR = 3,
	SFS_LOG_WARNING = 4,
	SFS_LOG_NOTICE = 5,
	SFS_LOG_INFO = 6,
	SFS_LOG_DEBUG = 7
};
void sfs_log_init(int to_stderr, int level);
void sfs_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* quiesce.c: pins between two write(2) calls. quiesce_begin holds the
 * kernel's lock of each of v[0..n) (inodes open for writing) through an
 * fsync(2) whose FSYNC is left unanswered until quiesce_end; -ETIMEDOUT
 * when a file does not come to rest. */
struct quiesce;
int quiesce_begin(struct sfs_inode *const *v, size_t n, struct quiesce **out);
void quiesce_end(struct quiesce *q);
int quiesce_fsync(fuse_req_t req, struct sfs_inode *inode); /* 1: held, answered later */
int quiesce_own(fuse_req_t req);			    /* 1: a request of a quiesce thread */
void quiesce_writer(struct sfs_inode *inode, int delta);    /* writable opens +1/-1 */
size_t quiesce_writers(struct sfs_inode ***out);	    /* the inodes open for writing */
int quiesce_is_writer(const struct sfs_inode *inode);

/* inode.c */
int inode_table_init(struct sfs *fs);
void inode_table_release(struct sfs *fs);
struct sfs_inode *inode_get(fuse_ino_t ino);
/* Look up name in parent on the backing side, fill e, take a lookup reference.
 * Returns 0 or -errno. Hidden objects (the store) are -ENOENT. */
int inode_lookup(struct sfs_inode *parent, const char *name, struct fuse_entry_param *e);
/* Drop n lookup references of a backing node (not a virtual one). */
void inode_forget(struct sfs_inode *inode, uint64_t n);
int inode_is_hidden(dev_t dev, ino_t ino);
/* Leave the hidden store out of its parent directory's link count. */
void inode_hide_store_nlink(struct stat *st);
/* True when name in parent is the hidden store's own name. */
int inode_is_store_name(const struct sfs_inode *parent, const char *name);
/* The store file of a regular file, attached on first use; NULL when the
 * store cannot identify it (then no snapshot can cover it either). */
struct store_file *inode_sf(struct sfs_inode *inode);
/* inode_sf, through hint (a descriptor of the file, or -1) when given, with
 * why it failed: -errno, and *out NULL. */
int inode_sf_get(struct sfs_inode *inode, int hint, struct store_file **out);
/* A new read descriptor on the inode (for the store's copies); close it. */
int inode_rfd(struct sfs_inode *inode);
/*
 * The inode's O_PATH descriptor for the length of one call: cached, or
 * reopened by its file handle (the daemon keeps no descriptor per known
 * inode: at most a quarter of the soft RLIMIT_NOFILE stay cached, least
 * recently used first out). Give it back with inode_fd_put(). -ENOENT when
 * the object is gone, -EBADF for a virtual node.
 */
int inode_fd(struct sfs_inode *inode);
void inode_fd_put(struct sfs_inode *inode);
void sfs_fill_attr_timeouts(struct fuse_entry_param *e);
/* Tell the kernel to drop its cached attributes and pages [off, off + len)
 * (len 0: to the end) of the backing object (dev, ino), if it knows it: for
 * changes the daemon makes behind the kernel's back (restore). Call with no
 * inode or store lock held: the kernel may wait for a read in flight. */
void inode_invalidate(dev_t dev, ino_t ino, off_t off, off_t len);

/* cred.c: run the backing call as the requester when cred_switch is on. */
struct sfs_cred {
	int switched;
};
void cred_init(void);
int cred_enter(fuse_req_t req, struct sfs_cred *c);
/* The same for a caller known by its ids (the side channel's peer),
 * whatever cred_switch says; no switch unless the daemon is root. */
int cred_enter_ids(uid_t uid, gid_t gid, const gid_t *groups, int n, struct sfs_cred *c);
void cred_leave(struct sfs_cred *c);

/* cow.c: the write gate, through which every change of a regular file's
 * bytes goes (see the file's comment for the steps). */
enum gate_what {
	GATE_NONE,     /* no byte a snapshot can read changes (plain allocation) */
	GATE_RANGE,    /* [off, off + len) changes */
	GATE_APPEND,   /* len bytes are appended at the end of file, whatever it is */
	GATE_RANGES,   /* the n ranges r[i] = {off, len}, increasing and disjoint */
	GATE_TRUNCATE, /* the size becomes off */
	GATE_TAIL,     /* everything from off on moves or changes */
};
struct gate_op {
	enum gate_what what;
	uint64_t off, len;
	const uint64_t (*r)[2];
	size_t n;
	int fd;	      /* backing descriptor the change is made through */
	int readable; /* fd is open for reading too: the store copies from it */
	uid_t caller; /* who writes: 0 keeps set-id bits, as CAP_FSETID does */
	/* The writer's groups, asked only for a set-group-ID file that is not
	 * group-executable (cleared unless the writer is in its group): from
	 * req when set, else gid and groups[ngroups]. */
	fuse_req_t req;
	gid_t gid;
	const gid_t *groups;
	int ngroups;
	struct sfs_inode *src; /* a copy's source, held for reading meanwhile; or NULL */
	int held;	       /* the caller's ns_hold holds the inode's rwlock and store lock */
	/* Optional, under the locks before anything is preserved: may set what,
	 * r and n from what it finds; 0 or -errno. sf may be NULL. */
	ssize_t (*prepare)(void *arg, struct gate_op *op, struct store_file *sf);
	/* The change itself, under the locks; a count or -errno. For
	 * GATE_APPEND op->off holds the end of file found under the lock. */
	ssize_t (*apply)(void *arg, struct gate_op *op);
	void *arg;
};
/* Lock, prepare, mark, preserve, kill privileges, apply, unlock. Returns
 * apply's value, or -errno when an earlier step failed (then nothing
 * changed: a full store is -ENOSPC). Call with no inode lock held, unless
 * op->held. */
ssize_t gate_write(struct sfs_inode *inode, struct gate_op *op);
/* Before name in parent loses what may be its file's last link (unlink,
 * rename over it): preserves what snapshots need. On success *held is the
 * store file kept locked (or NULL: none, or h holds it already); pass it to
 * cow_victim_done() after the backing call. */
struct ns_hold;
int cow_victim(const struct ns_hold *h, struct sfs_inode *parent, const char *name,
	       struct store_file **held);
void cow_victim_done(struct store_file *held);

/* ns.c: namespace copy-on-write for tree snapshots. Every handler that
 * changes a node or an entry brackets the change with ns_enter/ns_leave
 * (nestable) and saves first; 0 or -errno (then don't change). */
void ns_enter(void);
void ns_leave(void);
/* Exclusive: no change is in flight (a tree pin). */
void ns_pin_lock(void);
void ns_pin_unlock(void);
/* The same with sf (the node's store file) already locked for writing. */
int ns_save_locked(struct store_file *sf, struct sfs_inode *inode);

/*
 * The nodes one change touches, held from their saves to the end of the
 * change: each node's store file locked for writing (address order, so two
 * changes sharing nodes cannot deadlock; a regular node's rwlock first, as
 * in the write gate). The unlock after the change records what a tracked
 * file shows then, so recovery after a crash knows the change as ours.
 * Usage: struct ns_hold h = {0}; ns_hold_entry()/ns_hold_inode() for every
 * entry and node the change touches; ns_hold_save(); the change if it
 * returned 0; ns_hold_release() in any case. With no tree snapshot alive
 * nothing is held. Call with no inode or store file lock held.
 */
#define NS_HOLD_MAX	6 /* rename: two directories, the moved node, the replaced one */
#define NS_HOLD_ENTRIES 2
#define NS_HOLD_NONE	(-1)
struct ns_hold {
	struct store_file *sf[NS_HOLD_MAX]; /* a reference each */
	int fd[NS_HOLD_MAX];		    /* O_PATH, owned */
	int n, locked;
	struct ns_hold_ent {
		int dir, child; /* indexes into sf[]; child NS_HOLD_NONE: absent */
		uint32_t type;	/* the child's S_IFMT */
		const char *name;
	} ent[NS_HOLD_ENTRIES];
	int nent;
	int node[2]; /* indexes of nodes whose attributes change */
	int nnode;
	struct sfs_inode *inode; /* a regular node: its rwlock held too */
};
/* Entry name of dir is about to change (created, removed, replaced): the
 * directory and what name names now join the hold. */
int ns_hold_entry(struct ns_hold *h, struct sfs_inode *dir, const char *name);
/* The node's attributes are about to change (at most one regular node). */
int ns_hold_inode(struct ns_hold *h, struct sfs_inode *inode);
/* Lock everything held and save what live tree snapshots need. */
int ns_hold_save(struct ns_hold *h);
/* Whether sf is held (locked) by h. */
int ns_hold_has(const struct ns_hold *h, const struct store_file *sf);
void ns_hold_release(struct ns_hold *h);
/* name was just created in dir. */
void ns_born(struct sfs_inode *dir, const char *name);
/* The live state of the node open as fd, as the store keeps it: target
 * (symlinks) into target[tlen], xattrs packed into *xattrs (free it). */
struct store_attr;
int ns_gather(int fd, struct store_attr *a, char *target, size_t tlen, void **xattrs);

/* bits.c: change bitmaps for segments' direct fills */
/* A bitmap for a file of size bytes, all clear; -errno. */
int bits_new(uint64_t size, struct bits **out);
void bits_free(struct bits *m);
int bits_memfd(const struct bits *m);
/* Catch m up with what changed in fid since snapshot snap, then attach it
 * to inode so that every later change marks it; 0 or -errno. */
int bits_attach(struct sfs_inode *inode, struct bits *m, uint64_t snap, uint64_t fid);
/* Set every bit and detach. */
void bits_detach(struct sfs_inode *inode, struct bits *m);
/* Under the inode's write lock, before [off, off + len) changes in the
 * live file (len UINT64_MAX: to the end). */
void bits_mark(struct sfs_inode *inode, uint64_t off, uint64_t len);

/* hold.c: ephemeral snapshots and the open files holding them, and who may
 * see a snapshot (its owner and root). */
struct store_snap_meta;
static inline int hold_may_see(uid_t uid, uint32_t owner)
{
	return uid == 0 || uid == owner;
}
/* Whether the caller may see snapshot id; fills *m. 0: unknown or not
 * theirs. Cheap: no scan of the snapshot's files. */
int hold_visible(fuse_req_t req, uint64_t id, struct store_snap_meta *m);
/* Pin one ephemeral snapshot of a regular file for the caller; its path
 * relative to SOURCE is left in rel. */
int hold_pin(fuse_req_t req, struct sfs_inode *inode, char *rel, size_t rellen, uint64_t *id);
/* Take / drop an open file's reference on ephemeral snapshot id; the last
 * drop releases it. */
int hold_ref(uint64_t id);
void hold_unref(uint64_t id);
/* The open file f holds a new ephemeral snapshot of inode from now on
 * (FREEZE; with snapshot=open, at open when serve is set: reads come from
 * it). -EBUSY if f holds one already. */
int hold_freeze(fuse_req_t req, struct sfs_inode *inode, struct sfs_file *f, int serve, char *rel,
		size_t rellen, uint64_t *id);
/* Whether f holds id. */
int hold_has(struct sfs_file *f, uint64_t id);
/* f lets go of id if it holds it: 1 if it did, else 0. */
int hold_drop(struct sfs_file *f, uint64_t id);
/* Close an open file's descriptor, drop its hold, free it. */
void hold_file_free(struct sfs_file *f);

/* sidechan.c: the segment's side channel: direct fills from the live file
 * and batched write-backs (writeback.c) (docs/SEGMENT.md) */
int direct_init(struct sfs *fs);
int direct_start(void);
void direct_stop(void);
/* Register the ephemeral snapshot id, frozen on inode, for direct fills;
 * out gets the token, socket name and block size. 0 or -errno; -EAGAIN
 * when the owner or the daemon has as many records as it may keep. */
int direct_register(struct sfs_inode *inode, uint64_t id, struct snapfs_req *out);
/* The snapshot is being released: its records end. */
void direct_forget(uint64_t id);

/* snapview.c: MNT/<snapdir>, the read-only view of snapshots */
int snapview_init(struct sfs *fs);
void snapview_release(struct sfs *fs);
int snapview_lookup(fuse_req_t req, struct sfs_inode *parent, const char *name,
		    struct fuse_entry_param *e);
void snapview_forget(struct sfs_inode *inode, uint64_t n);
/* Let the kernel drop the view of released snapshots (from the tick thread,
 * never from a request), so their nodes are forgotten and freed. */
void snapview_prune(struct sfs *fs);
void snapview_getattr(fuse_req_t req, struct sfs_inode *inode);
void snapview_opendir(fuse_req_t req, struct sfs_inode *inode, struct fuse_file_info *fi);
void snapview_readdir(fuse_req_t req, struct sfs_inode *inode, size_t size, off_t off,
		      struct fuse_file_info *fi, int plus);
void snapview_releasedir(fuse_req_t req, struct fuse_file_info *fi);
void snapview_open(fuse_req_t req, struct sfs_inode *inode, struct fuse_file_info *fi);
/* Serve a read from a snapshot: the view's files and open-time snapshots. */
void snapview_read(fuse_req_t req, struct sfs_file *f, size_t size, off_t off);
/* The same into buf: the bytes read (fewer only at the end), or -errno. */
ssize_t snapview_pread(struct sfs_file *f, void *buf, size_t size, off_t off);
void snapview_readlink(fuse_req_t req, struct sfs_inode *inode);
/* getxattr (name) / listxattr (NULL) of a view node: a count or -errno. */
ssize_t snapview_xattr(struct sfs_inode *inode, const char *name, char *buf, size_t size);
static inline int sfs_virtual(const struct sfs_inode *inode)
{
	return inode->kind != SFS_REAL;
}

/* ctl.c: the control ioctl */
void sfs_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg,
	       struct fuse_file_info *fi, unsigned flags, const void *in_buf, size_t in_bufsz,
	       size_t out_bufsz);

/* ctl_files.c: the ops that walk a snapshot's files (see snapfs_proto.h);
 * each returns 0 or -errno with r filled for the reply. */
struct snapfs_req;
struct store_snap;
int ctl_show(fuse_req_t req, struct snapfs_req *r);
int ctl_diff(fuse_req_t req, struct snapfs_req *r);

/* ops_*.c */
extern const struct fuse_lowlevel_ops sfs_ops;
void sfs_init(void *userdata, struct fuse_conn_info *conn);
void sfs_destroy(void *userdata);
void sfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void sfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void sfs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);
void sfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void sfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
		 struct fuse_file_info *fi);
void sfs_readlink(fuse_req_t req, fuse_ino_t ino);
void sfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void sfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void sfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void sfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void sfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void sfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void sfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		const char *newname, unsigned int flags);
void sfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void sfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void sfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi);
void sfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void sfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void sfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void sfs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		struct fuse_file_info *fi);
void sfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void sfs_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in_buf, off_t off,
		   struct fuse_file_info *fi);
void sfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void sfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void sfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void sfs_statfs(fuse_req_t req, fuse_ino_t ino);
void sfs_access(fuse_req_t req, fuse_ino_t ino, int mask);
void sfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
		   struct fuse_file_info *fi);
void sfs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			 struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			 struct fuse_file_info *fi_out, size_t len, int flags);
void sfs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi);
void sfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
		  int flags);
void sfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void sfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void sfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

#endif /* SFS_I_H */
