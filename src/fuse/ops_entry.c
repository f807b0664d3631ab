// SPDX-License-Identifier: MIT
/*
 * Name operations: lookup and forget, and everything that creates, links,
 * removes or renames a directory entry. Each backing call is made relative
 * to the parent's O_PATH descriptor, as the requester when credentials are
 * switched. The store's own name answers ENOENT to removal and EPERM to
 * anything that would create or replace it.
 */
#include "sfs_i.h"
#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The snapshot view's name in the root: reserved, whatever SOURCE holds. */
static int is_snapdir(const struct sfs_inode *parent, const char *name)
{
	return parent == &sfs.root && strcmp(name, sfs.o.snapdir) == 0;
}

/* Names no one may create, replace or remove: the store's and the view's;
 * and nothing is made inside the view. 0 when name may change. */
static int reserved(const struct sfs_inode *parent, const char *name, int err)
{
	if (sfs_virtual(parent))
		return EROFS;
	if (inode_is_store_name(parent, name) || is_snapdir(parent, name))
		return err;
	return 0;
}

void sfs_lookup(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	struct fuse_entry_param e;
	struct sfs_inode *parent = inode_get(parent_ino);
	int rc;
	if (sfs_virtual(parent)) {
		rc = snapview_lookup(req, parent, name, &e);
		if (rc)
			fuse_reply_err(req, -rc);
		else
			fuse_reply_entry(req, &e);
		return;
	}
	if (is_snapdir(parent, name)) {
		memset(&e, 0, sizeof(e));
		e.ino = (uintptr_t)&sfs.vroot;
		e.attr = sfs.vroot.vst;
		fuse_reply_entry(req, &e);
		return;
	}
	struct sfs_cred c;
	rc = cred_enter(req, &c);
	if (rc == 0)
		rc = inode_lookup(parent, name, &e);
	cred_leave(&c);
	if (rc == -ENOENT) {
		/* A negative entry, cached like a positive one (and not at all where
		 * positive ones are not: see sfs_fill_attr_timeouts). */
		memset(&e, 0, sizeof(e));
		sfs_fill_attr_timeouts(&e);
		e.attr_timeout = 0;
		fuse_reply_entry(req, &e);
		return;
	}
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_entry(req, &e);
}

/* The kernel's forget reaches the table the node lives in. */
static void node_forget(struct sfs_inode *inode, uint64_t n)
{
	if (sfs_virtual(inode))
		snapview_forget(inode, n);
	else
		inode_forget(inode, n);
}

void sfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	node_forget(inode_get(ino), nlookup);
	fuse_reply_none(req);
}

void sfs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		node_forget(inode_get(forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

/* Reply with the entry of the object just made as name in parent. */
static void reply_new_entry(fuse_req_t req, struct sfs_inode *parent, const char *name)
{
	struct fuse_entry_param e;
	int rc = inode_lookup(parent, name, &e);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_entry(req, &e);
}

enum mk_kind { MK_NOD, MK_DIR, MK_SYMLINK };

static void make_node(fuse_req_t req, fuse_ino_t parent_ino, const char *name, mode_t mode,
		      dev_t rdev, const char *link, enum mk_kind kind)
{
	struct sfs_inode *parent = inode_get(parent_ino);
	int err = reserved(parent, name, EPERM);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	struct sfs_cred c = {0};
	struct ns_hold h = {0};
	ns_enter();
	int pfd = inode_fd(parent);
	int rc = pfd < 0 ? pfd : ns_hold_entry(&h, parent, name);
	if (rc == 0)
		rc = ns_hold_save(&h);
	if (rc == 0)
		rc = cred_enter(req, &c);
	if (rc)
		goto out;
	switch (kind) {
	case MK_DIR:
		rc = mkdirat(pfd, name, mode);
		break;
	case MK_SYMLINK:
		rc = symlinkat(link, pfd, name);
		break;
	case MK_NOD:
		rc = mknodat(pfd, name, mode, rdev);
		break;
	}
	rc = rc ? -errno : 0;
	if (rc == 0)
		ns_born(parent, name);
out:
	cred_leave(&c);
	ns_hold_release(&h);
	ns_leave();
	if (pfd >= 0)
		inode_fd_put(parent);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		reply_new_entry(req, parent, name);
}

void sfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	make_node(req, parent, name, mode, rdev, NULL, MK_NOD);
}

void sfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	make_node(req, parent, name, mode, 0, NULL, MK_DIR);
}

void sfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	make_node(req, parent, name, 0, 0, link, MK_SYMLINK);
}

void sfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct sfs_inode *inode = inode_get(ino), *parent = inode_get(newparent);
	int err = sfs_virtual(inode) ? EROFS : reserved(parent, newname, EPERM);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	char proc[PROCFD_PATH_LEN];
	struct sfs_cred c = {0};
	struct ns_hold h = {0};
	ns_enter();
	int fd = inode_fd(inode), pfd = fd < 0 ? -1 : inode_fd(parent);
	int rc = fd < 0 ? fd : pfd < 0 ? pfd : ns_hold_entry(&h, parent, newname);
	if (rc == 0)
		rc = ns_hold_inode(&h, inode); /* its link count */
	if (rc == 0)
		rc = ns_hold_save(&h);
	if (rc == 0)
		rc = cred_enter(req, &c);
	if (rc == 0 && linkat(AT_FDCWD, procfd_path(fd, proc), pfd, newname, AT_SYMLINK_FOLLOW))
		rc = -errno;
	cred_leave(&c);
	ns_hold_release(&h);
	ns_leave();
	if (pfd >= 0)
		inode_fd_put(parent);
	if (fd >= 0)
		inode_fd_put(inode);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		reply_new_entry(req, parent, newname);
}

static void remove_entry(fuse_req_t req, fuse_ino_t parent_ino, const char *name, int flags)
{
	struct sfs_inode *parent = inode_get(parent_ino);
	int err = inode_is_store_name(parent, name) ? ENOENT : reserved(parent, name, EPERM);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	struct store_file *victim = NULL;
	struct sfs_cred c = {0};
	struct ns_hold h = {0};
	ns_enter();
	int pfd = inode_fd(parent);
	/* The entry and what it names first (tree snapshots), then the bytes
	 * of a last link (cow_victim preserves for the covers that adds). */
	int rc = pfd < 0 ? pfd : ns_hold_entry(&h, parent, name);
	if (rc == 0)
		rc = ns_hold_save(&h);
	if (rc == 0 && !flags)
		rc = cow_victim(&h, parent, name, &victim);
	if (rc == 0)
		rc = cred_enter(req, &c);
	if (rc == 0 && unlinkat(pfd, name, flags))
		rc = -errno;
	cred_leave(&c);
	if (pfd >= 0)
		inode_fd_put(parent);
	cow_victim_done(victim);
	ns_hold_release(&h);
	ns_leave();
	fuse_reply_err(req, -rc);
}

void sfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, 0);
}

void sfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, AT_REMOVEDIR);
}

void sfs_rename(fuse_req_t req, fuse_ino_t parent_ino, const char *name, fuse_ino_t newparent_ino,
		const char *newname, unsigned int flags)
{
	struct sfs_inode *parent = inode_get(parent_ino), *newparent = inode_get(newparent_ino);
	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	int err = inode_is_store_name(parent, name) ? ENOENT : reserved(parent, name, EPERM);
	if (!err)
		err = reserved(newparent, newname, EPERM);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	/* A file replaced by the rename may lose its last link. */
	struct store_file *victim = NULL;
	struct sfs_cred c = {0};
	struct ns_hold h = {0};
	ns_enter();
	int pfd = inode_fd(parent), npfd = pfd < 0 ? -1 : inode_fd(newparent);
	int rc = pfd < 0 ? pfd : npfd < 0 ? npfd : 0;
	/* Both entries, and what each names: the moved node (its ctime, and a
	 * directory's ".."), the replaced one (its link count); all held to
	 * the end of the rename. */
	if (rc == 0)
		rc = ns_hold_entry(&h, parent, name);
	if (rc == 0)
		rc = ns_hold_entry(&h, newparent, newname);
	if (rc == 0)
		rc = ns_hold_save(&h);
	if (rc == 0 && !(flags & (RENAME_EXCHANGE | RENAME_NOREPLACE)))
		rc = cow_victim(&h, newparent, newname, &victim);
	if (rc == 0)
		rc = cred_enter(req, &c);
	if (rc == 0 && renameat2(pfd, name, npfd, newname, flags))
		rc = -errno;
	cred_leave(&c);
	if (npfd >= 0)
		inode_fd_put(newparent);
	if (pfd >= 0)
		inode_fd_put(parent);
	cow_victim_done(victim);
	ns_hold_release(&h);
	ns_leave();
	fuse_reply_err(req, -rc);
}
