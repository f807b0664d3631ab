// SPDX-License-Identifier: MIT
/*
 * libsnapfs: pin, release, freeze and snapshot paths, over the control
 * ioctl (snapfs_proto.h). A path is mapped to its mount by resolving it
 * (realpath) and taking the longest fuse.snapfs mount point in
 * /proc/self/mountinfo that contains it; requests name files by their
 * path relative to that mount's root.
 */
#include "snapfs.h"
#include "snapfs_proto.h"
#include "client_i.h"
#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* Undo the octal escapes mountinfo uses for spaces and the like. */
static void unescape(char *s)
{
	char *d = s;
	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] && s[3]) {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 4;
		} else {
			*d++ = *s++;
		}
	}
	*d = 0;
}

int snapfs_locate(const char *path, char *root, size_t rootlen, char *rel, size_t rellen)
{
	char abs[PATH_MAX];
	if (!realpath(path, abs))
		return -1;
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -1;
	char line[4096], best[PATH_MAX] = "";
	size_t bestlen = 0;
	while (fgets(line, sizeof(line), f)) {
		/* id parent major:minor root mountpoint opts... - fstype source superopts */
		char mp[PATH_MAX], *sep = strstr(line, " - ");
		char fstype[64];
		if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1 ||
		    sscanf(sep + 3, "%63s", fstype) != 1 || strcmp(fstype, "fuse.snapfs"))
			continue;
		unescape(mp);
		size_t len = strlen(mp);
		int inside = !strcmp(mp, "/") ||
			     (!strncmp(abs, mp, len) && (abs[len] == '/' || abs[len] == 0));
		if (inside && len >= bestlen) {
			strlcpy(best, mp, sizeof(best));
			bestlen = len;
		}
	}
	fclose(f);
	if (!bestlen) {
		errno = ENOTSUP;
		return -1;
	}
	const char *r = !strcmp(best, "/") ? abs + 1 : abs + bestlen;
	while (*r == '/')
		r++;
	if ((root && strlcpy(root, best, rootlen) >= rootlen) ||
	    (rel && strlcpy(rel, *r ? r : ".", rellen) >= rellen)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int snapfs_call_fd(int fd, struct snapfs_req *r)
{
	r->version = SNAPFS_PROTO_VERSION;
	if (ioctl(fd, SNAPFS_IOC_CALL, r) < 0) {
		if (errno == ENOTTY || errno == EINVAL)
			errno = ENOTSUP;
		return -1;
	}
	if (r->status < 0) {
		errno = -r->status;
		return -1;
	}
	return 0;
}

int snapfs_call(const char *root, struct snapfs_req *r)
{
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = snapfs_call_fd(fd, r);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

struct snapfs_req *snapfs_req_new(uint32_t op)
{
	struct snapfs_req *r = calloc(1, sizeof(*r));
	if (r)
		r->op = op;
	return r;
}

int snapfs_pin_ex(const char *const paths[], size_t n, const char *label, unsigned flags,
		  int64_t expires, uint64_t *id)
{
	if (!paths || n == 0 || n > UINT32_MAX || (flags & ~SNAPFS_RECURSIVE) ||
	    (label && strlen(label) >= SNAPFS_PROTO_LABEL)) {
		errno = EINVAL;
		return -1;
	}
	struct snapfs_req *r = snapfs_req_new(SNAPFS_OP_PIN);
	if (!r)
		return -1;
	char root[PATH_MAX], first[PATH_MAX], rel[PATH_MAX];
	int rc = -1;
	for (size_t i = 0; i < n; i++) {
		if (snapfs_locate(paths[i], root, sizeof(root), rel, sizeof(rel)))
			goto out;
		if (i == 0)
			strlcpy(first, root, sizeof(first));
		else if (strcmp(first, root)) {
			errno = EXDEV;
			goto out;
		}
		size_t len = strlen(rel) + 1;
		if (r->len + len > sizeof(r->data)) {
			errno = E2BIG;
			goto out;
		}
		memcpy(r->data + r->len, rel, len);
		r->len += (uint32_t)len;
	}
	r->count = (uint32_t)n;
	r->flags = (flags & SNAPFS_RECURSIVE) ? SNAPFS_PIN_RECURSIVE : 0;
	r->expires = expires;
	if (label)
		strlcpy(r->label, label, sizeof(r->label));
	if (snapfs_call(first, r) == 0) {
		if (id)
			*id = r->id;
		rc = 0;
	}
out:
	free(r);
	return rc;
}

int snapfs_pin(const char *const paths[], size_t n, const char *label, uint64_t *id)
{
	return snapfs_pin_ex(paths, n, label, 0, 0, id);
}

int snapfs_release(const char *path_in_mount, uint64_t id)
{
	char root[PATH_MAX];
	if (snapfs_locate(path_in_mount, root, sizeof(root), NULL, 0))
		return -1;
	struct snapfs_req *r = snapfs_req_new(SNAPFS_OP_RELEASE);
	if (!r)
		return -1;
	r->id = id;
	int rc = snapfs_call(root, r);
	int e = errno;
	free(r);
	errno = e;
	return rc;
}

int snapfs_freeze(int fd, uint64_t *id)
{
	char proc[PROCFD_PATH_LEN], root[PATH_MAX], view[2 * PATH_MAX];
	if (snapfs_locate(procfd_path(fd, proc), root, sizeof(root), NULL, 0))
		return -1;
	struct snapfs_req *r = snapfs_req_new(SNAPFS_OP_FREEZE);
	if (!r)
		return -1;
	int rc = -1, nfd = -1;
	off_t pos = lseek(fd, 0, SEEK_CUR);
	if (snapfs_call_fd(fd, r))
		goto out;
	/* Reopen through the snapshot view, then put it in fd's place: the
	 * view's inode has its own page cache, so fd can never be served the
	 * live file's cached pages. The reference the ioctl took on fd's open
	 * passes to the new open as fd's old open is closed by dup2. */
	if ((size_t)snprintf(view, sizeof(view), "%s/%s", strcmp(root, "/") ? root : "", r->data) >=
	    sizeof(view)) {
		errno = ENAMETOOLONG;
		goto out;
	}
	int fl = fcntl(fd, F_GETFD);
	nfd = open(view, O_RDONLY | ((fl > 0 && (fl & FD_CLOEXEC)) ? O_CLOEXEC : 0));
	if (nfd < 0 || (pos >= 0 && lseek(nfd, pos, SEEK_SET) < 0))
		goto out;
	if (dup3(nfd, fd, (fl > 0 && (fl & FD_CLOEXEC)) ? O_CLOEXEC : 0) < 0)
		goto out;
	if (id)
		*id = r->id;
	rc = 0;
out:
	if (nfd >= 0) {
		int e = errno;
		close(nfd);
		errno = e;
	}
	int e = errno;
	free(r);
	errno = e;
	return rc;
}

char *snapfs_mount_root(const char *path)
{
	char root[PATH_MAX];
	if (snapfs_locate(path, root, sizeof(root), NULL, 0))
		return NULL;
	return strdup(root);
}

char *snapfs_snapshot_path(const char *path, uint64_t id)
{
	char root[PATH_MAX], rel[PATH_MAX];
	if (snapfs_locate(path, root, sizeof(root), rel, sizeof(rel)))
		return NULL;
	struct snapfs_req *r = snapfs_req_new(SNAPFS_OP_INFO);
	if (!r)
		return NULL;
	char *out = NULL;
	if (snapfs_call(root, r) == 0 &&
	    asprintf(&out, "%s/%s/%llu%s%s", strcmp(root, "/") ? root : "", r->data,
		     (unsigned long long)id, strcmp(rel, ".") ? "/" : "",
		     strcmp(rel, ".") ? rel : "") < 0)
		out = NULL;
	int e = errno;
	free(r);
	errno = e;
	return out;
}
