// SPDX-License-Identifier: MIT
/*
 * Namespace copy-on-write for tree snapshots (docs/ARCHITECTURE.md, "Tree
 * snapshots"). A tree pin records an epoch and nothing else; what a
 * snapshot of a tree shows is the live tree minus everything changed since,
 * which the store keeps: before any change of a node's attributes (mode,
 * owner, times, size, link count, xattrs, symlink target) or of a directory
 * entry, while a tree snapshot lives, the old state is saved. Every
 * handler that changes the namespace or a node calls in here first:
 *
 *   ns_enter()            shared hold of the pin lock: a tree pin (which
 *                         takes it exclusively) falls between two changes,
 *                         never inside one;
 *   ns_hold_entry(h, dir, name)   the entry is about to change: the
 *                         directory and what the name names now (or that
 *                         it is absent) join the hold;
 *   ns_hold_inode(h, node)         the node's attributes are about to change;
 *   ns_hold_save(h)       locks every held node's store file for writing
 *                         (address order) and saves what live tree snapshots
 *                         need: each entry, its child and its directory
 *                         (times, link count), then the nodes;
 *   the change;
 *   ns_born(dir, name)    after a create: the new node has no past;
 *   ns_hold_release(h)    unlocks: a tracked file's unlock records what it
 *                         shows after the change (crash recovery);
 *   ns_leave().
 *
 * With no tree snapshot alive everything here is one atomic load. What to
 * watch for: the save must come before the change, and the node's store
 * lock must be held from the save to the end of the change (released in
 * between, a crash after the change would find a change recorded nowhere:
 * a false stale); an entry's save comes before its child's cow_victim
 * (which preserves bytes for the covers the save adds, under the hold's
 * lock).
 */
#include "sfs_i.h"
#include "snapstore.h"
#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Writer-preferring, so a pin is not starved by a stream of writes; hence
 * not recursive: a thread's nested ns_enter() only counts. */
static pthread_rwlock_t pin_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
static __thread int depth;

void ns_enter(void)
{
	if (depth++ == 0)
		pthread_rwlock_rdlock(&pin_lock);
}

void ns_leave(void)
{
	if (--depth == 0)
		pthread_rwlock_unlock(&pin_lock);
}

void ns_pin_lock(void)
{
	pthread_rwlock_wrlock(&pin_lock);
}

void ns_pin_unlock(void)
{
	pthread_rwlock_unlock(&pin_lock);
}

static int active(void)
{
	return sfs.store && store_ns_active(sfs.store);
}

/* The xattrs of the object at path, packed as the store wants them: name,
 * NUL, u32 value length, value; sorted by name. *out is malloc'ed. */
static int pack_xattrs(const char *path, void **out, uint32_t *outlen)
{
	*out = NULL;
	*outlen = 0;
	ssize_t n = listxattr(path, NULL, 0);
	if (n < 0)
		return errno == ENOTSUP || errno == EPERM ? 0 : -errno;
	if (n == 0)
		return 0;
	char *names = malloc((size_t)n + 1);
	if (!names)
		return -ENOMEM;
	n = listxattr(path, names, (size_t)n);
	if (n < 0) {
		free(names);
		return -errno;
	}
	/* Sort the names (a short list: insertion into an index array). */
	size_t cnt = 0;
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(names + i) + 1)
		cnt++;
	const char **v = calloc(cnt ? cnt : 1, sizeof(*v));
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int rc = v ? 0 : -ENOMEM;
	size_t k = 0;
	for (ssize_t i = 0; rc == 0 && i < n; i += (ssize_t)strlen(names + i) + 1) {
		size_t j = k++;
		while (j && strcmp(v[j - 1], names + i) > 0) {
			v[j] = v[j - 1];
			j--;
		}
		v[j] = names + i;
	}
	for (size_t i = 0; rc == 0 && i < cnt; i++) {
		ssize_t vl = getxattr(path, v[i], NULL, 0);
		if (vl < 0) {
			if (errno == ENODATA)
				continue; /* removed meanwhile by a foreign writer */
			rc = -errno;
			break;
		}
		size_t nl = strlen(v[i]) + 1, need = len + nl + 4 + (size_t)vl;
		if (need > cap) {
			size_t nc = need * 2;
			char *nb = realloc(buf, nc);
			if (!nb) {
				rc = -ENOMEM;
				break;
			}
			buf = nb;
			cap = nc;
		}
		memcpy(buf + len, v[i], nl);
		vl = getxattr(path, v[i], buf + len + nl + 4, (size_t)vl);
		if (vl < 0) {
			rc = -errno;
			break;
		}
		uint32_t l32 = (uint32_t)vl;
		memcpy(buf + len + nl, &l32, 4);
		len += nl + 4 + (size_t)vl;
	}
	free(v);
	free(names);
	if (rc) {
		free(buf);
		return rc;
	}
	*out = buf;
	*outlen = (uint32_t)len;
	return 0;
}

int ns_gather(int fd, struct store_attr *a, char *target, size_t tlen, void **xattrs)
{
	struct stat st;
	*xattrs = NULL;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))
		return -errno;
	*a = (struct store_attr){
	    .mode = st.st_mode,
	    .uid = st.st_uid,
	    .gid = st.st_gid,
	    .nlink = st.st_nlink,
	    .size = (uint64_t)st.st_size,
	    .rdev = st.st_rdev,
	    .ino = st.st_ino,
	    .atime = st.st_atim,
	    .mtime = st.st_mtim,
	    .ctime = st.st_ctim,
	};
	if (S_ISLNK(st.st_mode)) {
		/* Symlinks' xattrs are out of reach from an O_PATH descriptor
		 * (ops_attr.c): they have none here. */
		ssize_t n = readlinkat(fd, "", target, tlen);
		if (n < 0)
			return -errno;
		a->target = target;
		a->target_len = (uint32_t)n;
		return 0;
	}
	char proc[PROCFD_PATH_LEN];
	int rc = pack_xattrs(procfd_path(fd, proc), xattrs, &a->xattrs_len);
	a->xattrs = *xattrs;
	return rc;
}

/* Save the attributes of the node open as fd (O_PATH is fine) if a tree
 * snapshot needs them; sf is its store file, locked for writing by the
 * caller. */
static int save_locked(struct store_file *sf, int fd)
{
	if (!store_ns_need(sf))
		return 0;
	struct store_attr a;
	char target[PATH_MAX];
	void *xattrs = NULL;
	int rc = ns_gather(fd, &a, target, sizeof(target), &xattrs);
	int rfd = -1;
	char proc[PROCFD_PATH_LEN];
	if (rc == 0 && S_ISREG(a.mode) &&
	    (rfd = open(procfd_path(fd, proc), O_RDONLY | O_CLOEXEC)) < 0)
		rc = -errno;
	if (rc == 0)
		rc = store_ns_save(sf, rfd, &a);
	if (rfd >= 0)
		close(rfd);
	free(xattrs);
	return rc;
}

int ns_save_locked(struct store_file *sf, struct sfs_inode *inode)
{
	if (!active() || !sf || !store_ns_need(sf))
		return 0;
	int fd = inode_fd(inode);
	if (fd < 0)
		return fd;
	int rc = save_locked(sf, fd);
	inode_fd_put(inode);
	return rc;
}

/* The node sf (open as fd, owned by the hold from now on) joins h once;
 * its index in h, or -errno. */
static int hold_add(struct ns_hold *h, struct store_file *sf, int fd)
{
	for (int i = 0; i < h->n; i++)
		if (h->sf[i] == sf) {
			store_file_put(sf);
			close(fd);
			return i;
		}
	if (h->n == NS_HOLD_MAX) {
		store_file_put(sf);
		close(fd);
		return -EINVAL;
	}
	h->sf[h->n] = sf;
	h->fd[h->n] = fd;
	return h->n++;
}

/* An O_PATH descriptor of the node at dfd/name (NULL: a copy of dfd), and
 * its store file, into h. */
static int hold_open(struct ns_hold *h, int dfd, const char *name, uint32_t *type)
{
	int fd = name ? openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC)
		      : fcntl(dfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return errno == ENOENT && name ? -ENOENT : -errno;
	struct stat st;
	struct store_file *sf;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)) {
		int e = errno;
		close(fd);
		return -e;
	}
	int rc = store_file_get(sfs.store, fd, &sf);
	if (rc) {
		close(fd);
		return rc;
	}
	if (type)
		*type = st.st_mode & S_IFMT;
	return hold_add(h, sf, fd);
}

int ns_hold_entry(struct ns_hold *h, struct sfs_inode *dir, const char *name)
{
	if (!active())
		return 0;
	if (h->locked || h->nent == NS_HOLD_ENTRIES)
		return -EINVAL;
	int dfd = inode_fd(dir);
	if (dfd < 0)
		return dfd;
	int d = hold_open(h, dfd, NULL, NULL), c = 0;
	uint32_t type = 0;
	if (d >= 0)
		c = hold_open(h, dfd, name, &type);
	inode_fd_put(dir);
	if (d < 0)
		return d;
	if (c == -ENOENT)
		c = NS_HOLD_NONE; /* the entry is absent: the save records that */
	else if (c < 0)
		return c;
	h->ent[h->nent++] = (struct ns_hold_ent){.dir = d, .child = c, .type = type, .name = name};
	return 0;
}

int ns_hold_inode(struct ns_hold *h, struct sfs_inode *inode)
{
	if (!active() || sfs_virtual(inode))
		return 0;
	if (h->locked || (h->inode && h->inode != inode))
		return -EINVAL;
	int fd = inode_fd(inode);
	if (fd < 0)
		return fd;
	int rc = hold_open(h, fd, NULL, NULL);
	inode_fd_put(inode);
	if (rc < 0)
		return rc;
	if (h->nnode == 2)
		return -EINVAL;
	h->node[h->nnode++] = rc;
	/* A regular file's attributes also change in the write gate, under its
	 * rwlock: held too, so the gate cannot run in between (gate_op.held). */
	if (S_ISREG(inode->type))
		h->inode = inode;
	return 0;
}

int ns_hold_save(struct ns_hold *h)
{
	if (!h->n)
		return 0;
	/* Address order, so two changes sharing nodes cannot deadlock; the
	 * rwlock of a regular node first, as in the write gate. */
	int ord[NS_HOLD_MAX];
	for (int i = 0; i < h->n; i++) {
		int j = i;
		while (j && h->sf[ord[j - 1]] > h->sf[i]) {
			ord[j] = ord[j - 1];
			j--;
		}
		ord[j] = i;
	}
	if (h->inode)
		pthread_rwlock_wrlock(&h->inode->rwlock);
	for (int i = 0; i < h->n; i++)
		store_file_wrlock(h->sf[ord[i]]);
	h->locked = 1;
	/* Each entry: its child first (link count, ctime), then the entry,
	 * then the directory (times, link count); then the nodes. */
	int rc = 0;
	for (int i = 0; rc == 0 && i < h->nent; i++) {
		const struct ns_hold_ent *e = &h->ent[i];
		struct store_file *csf = e->child != NS_HOLD_NONE ? h->sf[e->child] : NULL;
		if (csf)
			rc = save_locked(csf, h->fd[e->child]);
		if (rc == 0)
			rc = store_ns_entry(sfs.store, h->sf[e->dir], e->name, csf, e->type);
		if (rc == 0)
			rc = save_locked(h->sf[e->dir], h->fd[e->dir]);
	}
	for (int i = 0; rc == 0 && i < h->nnode; i++)
		rc = save_locked(h->sf[h->node[i]], h->fd[h->node[i]]);
	return rc;
}

int ns_hold_has(const struct ns_hold *h, const struct store_file *sf)
{
	for (int i = 0; h->locked && i < h->n; i++)
		if (h->sf[i] == sf)
			return 1;
	return 0;
}

void ns_hold_release(struct ns_hold *h)
{
	/* The unlock of a tracked file records what it shows now, after the
	 * change (store_file_unlock): recovery after a crash then knows the
	 * change as ours. */
	for (int i = h->n; i-- > 0;) {
		if (h->locked)
			store_file_unlock(h->sf[i]);
		store_file_put(h->sf[i]);
		close(h->fd[i]);
	}
	if (h->locked && h->inode)
		pthread_rwlock_unlock(&h->inode->rwlock);
	*h = (struct ns_hold){0};
}

void ns_born(struct sfs_inode *dir, const char *name)
{
	if (!active())
		return;
	int dfd = inode_fd(dir);
	if (dfd < 0)
		return;
	int fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	inode_fd_put(dir);
	struct store_file *sf;
	if (fd >= 0 && store_file_get(sfs.store, fd, &sf) == 0) {
		store_ns_born(sf);
		store_file_put(sf);
	}
	if (fd >= 0)
		close(fd);
}
