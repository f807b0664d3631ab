// SPDX-License-Identifier: MIT
/*
 * Acting as the requester. With allow_other a root daemon serves every
 * user: calls that create objects or check permission run with the
 * caller's fsuid, fsgid and supplementary groups, set per thread (raw
 * setgroups: glibc's wrapper would change every thread), so objects are
 * owned by the caller and the backing filesystem checks access as it
 * would for the caller directly. Root callers need no switch.
 */
#include "sfs_i.h"

#include <errno.h>
#include <grp.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SFS_MAX_GROUPS 256

/* The daemon's own supplementary groups, restored after every switch. */
static gid_t self_groups[SFS_MAX_GROUPS];
static int self_ngroups;

void cred_init(void)
{
	int n = getgroups(SFS_MAX_GROUPS, self_groups);
	self_ngroups = n < 0 ? 0 : n;
}

/* Set while this thread acts as a caller: an inner cred_enter (a helper
 * called inside an outer switch) leaves the outer one in charge. */
static __thread int cred_active;

/* Switch to uid, gid and groups[n] (at most SFS_MAX_GROUPS are used). */
static int cred_switch_to(uid_t uid, gid_t gid, const gid_t *groups, int n, struct sfs_cred *c)
{
	if (n < 0)
		n = 0;
	if (n > SFS_MAX_GROUPS)
		n = SFS_MAX_GROUPS;
	if (syscall(SYS_setgroups, (size_t)n, groups))
		return -errno;
	setfsgid(gid);
	setfsuid(uid);
	if ((uid_t)setfsuid(-1) != uid || (gid_t)setfsgid(-1) != gid) {
		cred_leave(&(struct sfs_cred){.switched = 1});
		return -EPERM;
	}
	c->switched = 1;
	cred_active = 1;
	return 0;
}

int cred_enter(fuse_req_t req, struct sfs_cred *c)
{
	c->switched = 0;
	if (!sfs.cred_switch || cred_active)
		return 0;
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	if (ctx->uid == sfs.self_uid && ctx->gid == 0)
		return 0;
	gid_t groups[SFS_MAX_GROUPS];
	int n = fuse_req_getgroups(req, SFS_MAX_GROUPS, groups);
	return cred_switch_to(ctx->uid, ctx->gid, groups, n, c);
}

int cred_enter_ids(uid_t uid, gid_t gid, const gid_t *groups, int n, struct sfs_cred *c)
{
	c->switched = 0;
	if (cred_active || sfs.self_uid != 0)
		return cred_active ? -EDEADLK : 0;
	return cred_switch_to(uid, gid, groups, n, c);
}

void cred_leave(struct sfs_cred *c)
{
	if (!c->switched)
		return;
	setfsuid(sfs.self_uid);
	setfsgid(getegid());
	syscall(SYS_setgroups, (size_t)self_ngroups, self_groups);
	c->switched = 0;
	cred_active = 0;
}
