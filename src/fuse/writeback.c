// SPDX-License-Identifier: MIT
/*
 * A segment's batched write-back (docs/SEGMENT.md, "Write-back"), served
 * on the side channel (sidechan.c): DIRECT_WRITEBACK carries the
 * write-back key of a handed-over record, n byte ranges of its file and a
 * sealed memfd with their bytes packed in order; the daemon writes them
 * through the write gate (cow.c), after the record's snapshot gave up the
 * blocks the segment shows no more.
 *
 * What to watch for: the daemon is root and the caller may be anyone. The
 * right to write is proven on the target itself: the file is opened for
 * writing as the caller (its fsuid, fsgid and groups), so the backing
 * filesystem checks the mode, ACLs and append-only flags as for the caller
 * directly, and the opened file must be the record's inode (device and
 * inode number). The caller's RLIMIT_FSIZE applies (-EFBIG past it). The
 * bytes are copied in chunks of at most WB_CHUNK bytes and WB_CHUNK_RANGES
 * ranges, each its own pass through the gate, so neither the daemon's
 * memory nor the time a file stays locked grows with the request, and a
 * request carries at most DIRECT_WB_MAX_BYTES. No descriptor of our own
 * mount is involved: the caller's descriptor is not needed.
 */
#include "side_i.h"
#include "snapstore.h"
#include "fullio.h"
#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define WB_CHUNK	(1u << 20) /* bytes per pass through the gate */
#define WB_CHUNK_RANGES 4096	   /* and ranges */

struct wb {
	uint64_t snap;
	const uint64_t (*fg)[2];
	uint32_t nfg;
	const char *buf; /* the chunk's bytes, packed in range order */
};

/* Under the gate, before anything is preserved: what the segment's
 * snapshot gives up, it gives up before the writes (only its own snapshot:
 * a failure just means more copying). */
static ssize_t wb_prepare(void *arg, struct gate_op *op, struct store_file *sf)
{
	struct wb *w = arg;
	(void)op;
	for (uint32_t i = 0; i < w->nfg && sf; i++)
		(void)store_snap_forgo(sfs.store, w->snap, store_file_fid(sf), w->fg[i][0],
				       w->fg[i][1]);
	return 0;
}

static ssize_t wb_write(void *arg, struct gate_op *op)
{
	struct wb *w = arg;
	uint64_t doff = 0;
	for (size_t i = 0; i < op->n; i++) {
		int rc = pwrite_full(op->fd, w->buf + doff, op->r[i][1], (off_t)op->r[i][0]);
		if (rc)
			return rc;
		doff += op->r[i][1];
	}
	return 0;
}

/* len bytes of data at off into buf; 0 or -errno (-EIO when short: the
 * sender sealed the file against shrinking, so it cannot be). A hole reads
 * as zeros without allocating. */
static int read_bytes(int data, char *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t k = pread(data, buf, len, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO;
		buf += k;
		len -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

/* Write the ranges' bytes from data into the file through wfd, chunk by
 * chunk through the write gate. */
static int wb_apply(const struct wb_req *q, int wfd, struct wb *w, const uint64_t (*rg)[2],
		    uint32_t n, uint64_t total)
{
	char *buf = malloc(total < WB_CHUNK ? total : WB_CHUNK);
	uint64_t(*cur)[2] = calloc(n < WB_CHUNK_RANGES ? n : WB_CHUNK_RANGES, sizeof(*cur));
	int rc = buf && cur ? 0 : -ENOMEM;
	uint32_t i = 0;
	uint64_t in = 0, doff = 0; /* in: bytes of range i already taken */
	while (!rc && i < n) {
		if (__atomic_load_n(q->stop, __ATOMIC_RELAXED)) {
			rc = -ESHUTDOWN;
			break;
		}
		size_t k = 0;
		uint64_t bytes = 0;
		while (i < n && k < WB_CHUNK_RANGES && bytes < WB_CHUNK) {
			uint64_t take = rg[i][1] - in;
			if (take > WB_CHUNK - bytes)
				take = WB_CHUNK - bytes;
			cur[k][0] = rg[i][0] + in;
			cur[k++][1] = take;
			bytes += take;
			in += take;
			if (in == rg[i][1]) {
				i++;
				in = 0;
			}
		}
		if ((rc = read_bytes(q->data, buf, bytes, doff)))
			break;
		doff += bytes;
		w->buf = buf;
		struct gate_op op = {.what = GATE_RANGES,
				     .r = (const uint64_t(*)[2])cur,
				     .n = k,
				     .fd = wfd,
				     .caller = q->who->cr.uid,
				     .gid = q->who->cr.gid,
				     .groups = q->who->groups,
				     .ngroups = q->who->ngroups,
				     .prepare = w->nfg ? wb_prepare : NULL,
				     .apply = wb_write,
				     .arg = w};
		rc = (int)gate_write(q->inode, &op);
		w->nfg = 0; /* given up with the first chunk */
	}
	free(cur);
	free(buf);
	return rc;
}

/* The soft RLIMIT_FSIZE of process pid: prlimit, or (without
 * CAP_SYS_RESOURCE, which a root daemon may lack) /proc/PID/limits, which
 * anyone may read. 0 or -errno. */
static int fsize_limit(pid_t pid, rlim_t *lim)
{
	struct rlimit rl;
	if (prlimit(pid, RLIMIT_FSIZE, NULL, &rl) == 0) {
		*lim = rl.rlim_cur;
		return 0;
	}
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = 0;
	const char *p = strstr(buf, "Max file size");
	if (!p)
		return -EIO;
	p += strlen("Max file size");
	while (*p == ' ')
		p++;
	if (!strncmp(p, "unlimited", 9)) {
		*lim = RLIM_INFINITY;
		return 0;
	}
	char *end;
	errno = 0;
	unsigned long long v = strtoull(p, &end, 10);
	if (errno || end == p)
		return -EIO;
	*lim = (rlim_t)v;
	return 0;
}

/* Whether writing up to end stays within the caller's RLIMIT_FSIZE. */
static int fsize_ok(const struct side_peer *who, uint64_t end)
{
	rlim_t lim;
	int rc = fsize_limit(who->cr.pid, &lim);
	if (rc)
		return rc;
	return lim == RLIM_INFINITY || end <= lim ? 0 : -EFBIG;
}

/* Open inode's file for writing as who; the descriptor, or -errno. */
static int open_as(const struct side_peer *who, struct sfs_inode *inode)
{
	char proc[PROCFD_PATH_LEN];
	int pfd = inode_fd(inode);
	if (pfd < 0)
		return pfd;
	struct sfs_cred c = {0};
	int rc = who->cr.uid == 0 && who->cr.gid == 0
		     ? 0
		     : cred_enter_ids(who->cr.uid, who->cr.gid, who->groups, who->ngroups, &c);
	int fd = -1;
	if (rc == 0) {
		fd = open(procfd_path(pfd, proc), O_WRONLY | O_CLOEXEC | O_NOCTTY);
		rc = fd < 0 ? -errno : 0;
		cred_leave(&c);
	}
	inode_fd_put(inode);
	if (rc)
		return rc;
	struct stat st;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_dev != inode->dev ||
	    st.st_ino != inode->ino) {
		close(fd);
		return -ESTALE;
	}
	return fd;
}

int wb_serve(int c, const struct wb_req *q, uint64_t *written)
{
	const struct direct_msg *h = q->h;
	uint64_t(*rg)[2] = NULL, total = 0;
	int rc = -EINVAL;
	if (h->n == 0 || h->n > DIRECT_MAX_RANGES || h->nforgo > DIRECT_MAX_RANGES)
		goto out;
	size_t nall = (size_t)h->n + h->nforgo;
	rg = malloc(nall * sizeof(*rg));
	if (!rg || recv(c, rg, nall * sizeof(*rg), MSG_WAITALL) != (ssize_t)(nall * sizeof(*rg)))
		goto out;
	for (uint32_t i = 0; i < h->n; i++) {
		if (rg[i][1] == 0 || rg[i][0] + rg[i][1] < rg[i][0] ||
		    rg[i][0] + rg[i][1] > (uint64_t)INT64_MAX ||
		    (i && rg[i][0] < rg[i - 1][0] + rg[i - 1][1]))
			goto out;
		total += rg[i][1];
	}
	rc = -E2BIG;
	if (total > DIRECT_WB_MAX_BYTES)
		goto out;
	struct stat dst;
	int seals = fcntl(q->data, F_GET_SEALS);
	rc = -EBADF;
	if (seals < 0 || !(seals & F_SEAL_SHRINK) || fstat(q->data, &dst) ||
	    (uint64_t)dst.st_size < total)
		goto out;
	if ((rc = fsize_ok(q->who, rg[h->n - 1][0] + rg[h->n - 1][1])))
		goto out;
	int wfd = open_as(q->who, q->inode);
	if (wfd < 0) {
		rc = wfd;
		goto out;
	}
	struct wb w = {.snap = q->snap, .fg = (const uint64_t(*)[2])(rg + h->n), .nfg = h->nforgo};
	rc = wb_apply(q, wfd, &w, (const uint64_t(*)[2])rg, h->n, total);
	close(wfd);
	/* The kernel's cached pages and attributes of the file are stale. */
	inode_invalidate(q->inode->dev, q->inode->ino, 0, 0);
	if (rc == 0)
		*written = total;
out:
	free(rg);
	return rc;
}
