/* SPDX-License-Identifier: MIT */
/*
 * Shared by the tree-snapshot suites (issue 10): manifests of a tree (every
 * entry's type, mode & 01777, owner, size, link count, mtime, symlink
 * target, user.* xattrs, content hash, and which names share an inode),
 * their comparison naming the differences, pin -r through libsnapfs, a
 * runner for snapctl/git/cp with an optional descriptor limit, and a mount
 * of the daemon under a given RLIMIT_NOFILE. Builds on test/snap/snaputil.h
 * (fixture that always unmounts, MP/SP paths, pins, LIST). A manifest is
 * taken the same way of the live tree and of MNT/.snapshots/ID/..., so any
 * field the view gets wrong shows up as a named difference. Set-id bits
 * are masked (01777): a snapshot never grants a privilege.
 */
#ifndef TREEUTIL_H
#define TREEUTIL_H

#include "snaputil.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <signal.h>

/* SNAPFS_LONG=1: the long sizes of the issue. */
static __attribute__((unused)) int tr_long(void)
{
	const char *s = getenv("SNAPFS_LONG");
	return s && *s && strcmp(s, "0");
}

static __attribute__((unused)) double tr_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* MNT/.snapshots/ID/rel (rel may be "" for the snapshot's root). */
static __attribute__((unused)) const char *VR(uint64_t id, const char *rel)
{
	static char buf[8][1024];
	static int i;
	char *p = buf[__atomic_fetch_add(&i, 1, __ATOMIC_RELAXED) & 7];
	int n = snprintf(p, 1024, "%s/.snapshots/%" PRIu64 "%s%s", mnt, id, *rel ? "/" : "", rel);
	cr_assert(n > 0 && n < 1024);
	return p;
}

/* Scratch directories of this test process, removed at exit (also when
 * an assertion ends the test). */
static char *tr_scratch[16];

static void tr_scratch_clean(void)
{
	for (int i = 0; i < 16; i++)
		if (tr_scratch[i]) {
			tu_rm_rf(tr_scratch[i]);
			free(tr_scratch[i]);
			tr_scratch[i] = NULL;
		}
}

/* tu_tmpdir() that goes away at exit; do not free the result. */
static __attribute__((unused)) const char *tr_tmpdir(const char *tag)
{
	static int registered;
	if (!registered++)
		atexit(tr_scratch_clean);
	for (int i = 0; i < 16; i++)
		if (!tr_scratch[i])
			return tr_scratch[i] = tu_tmpdir(tag);
	cr_assert_fail("too many scratch directories");
	return NULL;
}

/* A writer process a test forked, killed by tr_teardown() if still there. */
static pid_t tr_child;

/* The suites' .fini: a leftover writer, scratch directories, the mount. */
static __attribute__((unused)) void tr_teardown(void)
{
	if (tr_child > 0) {
		kill(tr_child, SIGKILL);
		waitpid(tr_child, NULL, 0);
		tr_child = 0;
	}
	tr_scratch_clean();
	fx_teardown();
}

/* pin -r of n paths relative to the mount root, through libsnapfs; returns
 * the id or 0 with errno (never fails the test itself). */
static __attribute__((unused)) uint64_t try_pin_tree(const char *const rels[], size_t n)
{
	const char *abs[16];
	char buf[16][1024];
	cr_assert(n <= 16);
	for (size_t i = 0; i < n; i++) {
		tu_path(buf[i], sizeof(buf[i]), mnt, rels[i]);
		abs[i] = buf[i];
	}
	uint64_t id = 0;
	if (snapfs_pin_ex(abs, n, NULL, SNAPFS_RECURSIVE, 0, &id))
		return 0;
	return id;
}

static __attribute__((unused)) uint64_t pin_tree(const char *rel)
{
	uint64_t id = try_pin_tree(&rel, 1);
	cr_assert_neq(id, 0, "pin -r %s failed: %s", rel, strerror(errno));
	return id;
}

static __attribute__((unused)) size_t count_snaps(void)
{
	struct snapfs_rec_snap *recs = xmalloc(1024 * sizeof(*recs));
	size_t n = list_snaps(recs, 1024);
	free(recs);
	return n;
}

/* ---- running programs ---------------------------------------------------- */

struct tr_out {
	int status;
	char out[8192], err[8192];
};

/*
 * Run argv (argv[0] searched in PATH) in cwd (NULL: unchanged) with stdout
 * and stderr captured; nofile > 0 sets RLIMIT_NOFILE (soft and hard) in the
 * child first, as `ulimit -n nofile` would. Returns the exit status.
 */
static __attribute__((unused)) int tr_runv(struct tr_out *r, const char *cwd, long nofile,
					   const char *const argv[])
{
	char outp[] = "/dev/shm/trout.XXXXXX", errp[] = "/dev/shm/trerr.XXXXXX";
	int ofd = mkstemp(outp), efd = mkstemp(errp);
	cr_assert(ofd >= 0 && efd >= 0);
	unlink(outp);
	unlink(errp);
	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		if (nofile > 0) {
			struct rlimit rl = {(rlim_t)nofile, (rlim_t)nofile};
			if (setrlimit(RLIMIT_NOFILE, &rl))
				_exit(125);
		}
		if (cwd && chdir(cwd))
			_exit(126);
		dup2(ofd, 1);
		dup2(efd, 2);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	int st;
	waitpid(pid, &st, 0);
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	ssize_t n = pread(ofd, r->out, sizeof(r->out) - 1, 0);
	r->out[n > 0 ? n : 0] = 0;
	n = pread(efd, r->err, sizeof(r->err) - 1, 0);
	r->err[n > 0 ? n : 0] = 0;
	close(ofd);
	close(efd);
	return r->status;
}

/* tr_run(&r, cwd, nofile, "prog", "arg", ..., NULL) */
static __attribute__((unused)) int tr_run(struct tr_out *r, const char *cwd, long nofile, ...)
{
	const char *argv[64];
	int argc = 0;
	va_list ap;
	va_start(ap, nofile);
	const char *a;
	while ((a = va_arg(ap, const char *)) && argc < 63)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	return tr_runv(r, cwd, nofile, argv);
}

/* $SNAPCTL_BIN (set by ctest). */
static __attribute__((unused)) const char *snapctl_bin(void)
{
	const char *b = getenv("SNAPCTL_BIN");
	cr_assert_not_null(b, "SNAPCTL_BIN is not set (run the tests through ctest)");
	return b;
}

static __attribute__((unused)) int have_prog(const char *name)
{
	struct tr_out *r = xmalloc(sizeof(*r));
	int rc = tr_run(r, NULL, 0, "sh", "-c", "command -v \"$0\" >/dev/null", name, NULL);
	free(r);
	return rc == 0;
}

/*
 * fx_mount() with the daemon started under RLIMIT_NOFILE soft:hard (as
 * `prlimit --nofile=soft:hard snapfs ...`). The daemon may raise its soft
 * limit up to hard; the hard limit is checked in /proc/PID/limits.
 * Returns tu_mount()'s result.
 */
static __attribute__((unused)) int fx_mount_nofile(const char *opts, rlim_t soft, rlim_t hard)
{
	int rc = tu_mount_nofile(&m, src, mnt, opts, soft, hard);
	if (rc == 0) {
		char p[64], line[256];
		snprintf(p, sizeof(p), "/proc/%d/limits", (int)m.pid);
		FILE *f = fopen(p, "r");
		cr_assert_not_null(f);
		unsigned long s = 0, h = 0;
		while (fgets(line, sizeof(line), f))
			if (!strncmp(line, "Max open files", 14))
				sscanf(line + 14, "%lu %lu", &s, &h);
		fclose(f);
		cr_assert_eq(h, (unsigned long)hard, "daemon's hard RLIMIT_NOFILE is %lu, not %lu",
			     h, (unsigned long)hard);
	}
	return rc;
}

/* ---- manifests ----------------------------------------------------------- */

#define MF_MTIME 0x1u /* record and compare regular files' mtime */
#define MF_NLINK 0x2u /* compare regular files' link count */

struct mf_ent {
	char *path; /* relative to the walked root; "." is the root */
	mode_t type;
	unsigned mode; /* st_mode & 01777 */
	mode_t rawmode;
	uid_t uid;
	gid_t gid;
	off_t size;
	nlink_t nlink;
	int64_t mtime_s;
	long mtime_ns;
	char *target;  /* symlinks */
	char *xattrs;  /* "user.a=hex;user.b=hex" sorted by name, or "ERR:..." */
	uint64_t h[2]; /* content hash of regular files */
	char *cls;     /* smallest path in the manifest with the same st_ino */
	ino_t ino;     /* raw, compared only between walks of one view */
	int err;       /* errno reading the entry (content, link), 0 if fine */
};

struct mf {
	struct mf_ent *v;
	size_t n, cap;
	unsigned flags;
};

static void mf_hash(const unsigned char *p, size_t n, uint64_t h[2])
{
	for (size_t i = 0; i < n; i++) {
		h[0] = (h[0] ^ p[i]) * 0x100000001b3ull;
		h[1] = (h[1] + p[i] + 1) * 0x9e3779b97f4a7c15ull;
		h[1] ^= h[1] >> 31;
	}
}

static char *mf_hex(const unsigned char *p, size_t n)
{
	char *s = xmalloc(2 * n + 1);
	for (size_t i = 0; i < n; i++)
		sprintf(s + 2 * i, "%02x", p[i]);
	s[2 * n] = 0;
	return s;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted user.* xattrs of path, as "name=hexvalue;..." ("" when none). */
static char *mf_xattrs(const char *path)
{
	char names[8192];
	ssize_t n = llistxattr(path, names, sizeof(names));
	if (n < 0) {
		if (errno == ENOTSUP || errno == ENODATA)
			return strdup("");
		char e[64];
		snprintf(e, sizeof(e), "ERR:listxattr:%s", strerrorname_np(errno));
		return strdup(e);
	}
	char *list[256];
	size_t k = 0;
	for (char *p = names; p < names + n && k < 256; p += strlen(p) + 1)
		if (!strncmp(p, "user.", 5))
			list[k++] = p;
	qsort(list, k, sizeof(list[0]), cmp_str);
	size_t cap = 64, len = 0;
	char *out = xmalloc(cap);
	out[0] = 0;
	for (size_t i = 0; i < k; i++) {
		unsigned char val[4096];
		ssize_t vn = lgetxattr(path, list[i], val, sizeof(val));
		char *hex = vn >= 0 ? mf_hex(val, (size_t)vn) : strdup(strerrorname_np(errno));
		size_t need = len + strlen(list[i]) + strlen(hex) + 3;
		if (need > cap) {
			cap = need * 2;
			out = realloc(out, cap);
			cr_assert_not_null(out);
		}
		len += (size_t)sprintf(out + len, "%s%s=%s", i ? ";" : "", list[i], hex);
		free(hex);
	}
	return out;
}

static void mf_push(struct mf *mf, struct mf_ent *e)
{
	if (mf->n == mf->cap) {
		mf->cap = mf->cap ? 2 * mf->cap : 256;
		mf->v = reallocarray(mf->v, mf->cap, sizeof(*mf->v));
		cr_assert_not_null(mf->v);
	}
	mf->v[mf->n++] = *e;
}

static void mf_walk_at(struct mf *mf, const char *abs, const char *rel, int depth)
{
	struct mf_ent e = {0};
	struct stat st;
	e.path = strdup(rel);
	if (lstat(abs, &st)) {
		e.err = errno;
		mf_push(mf, &e);
		return;
	}
	e.type = st.st_mode & S_IFMT;
	e.mode = st.st_mode & 01777;
	e.rawmode = st.st_mode;
	e.uid = st.st_uid;
	e.gid = st.st_gid;
	e.ino = st.st_ino;
	e.xattrs = strdup("");
	if (S_ISREG(st.st_mode)) {
		e.size = st.st_size;
		e.nlink = st.st_nlink;
		e.mtime_s = st.st_mtim.tv_sec;
		e.mtime_ns = st.st_mtim.tv_nsec;
		e.h[0] = 0xcbf29ce484222325ull;
		e.h[1] = (uint64_t)st.st_size;
		int fd = open(abs, O_RDONLY | O_NOFOLLOW);
		if (fd < 0) {
			e.err = errno;
		} else {
			static unsigned char buf[1 << 16];
			ssize_t n;
			while ((n = read(fd, buf, sizeof(buf))) > 0)
				mf_hash(buf, (size_t)n, e.h);
			if (n < 0)
				e.err = errno;
			close(fd);
		}
		free(e.xattrs);
		e.xattrs = mf_xattrs(abs);
	} else if (S_ISLNK(st.st_mode)) {
		char t[PATH_MAX];
		ssize_t n = readlink(abs, t, sizeof(t) - 1);
		if (n < 0) {
			e.err = errno;
			n = 0;
		}
		t[n] = 0;
		e.target = strdup(t);
	} else if (S_ISDIR(st.st_mode)) {
		free(e.xattrs);
		e.xattrs = mf_xattrs(abs);
	}
	mf_push(mf, &e);
	if (!S_ISDIR(st.st_mode))
		return;
	cr_assert(depth < 64, "%s: too deep", abs);
	DIR *d = opendir(abs);
	if (!d) {
		mf->v[mf->n - 1].err = errno;
		return;
	}
	struct dirent *de;
	char *names[4096];
	size_t k = 0, capn = 4096;
	char **nv = names;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (k == capn) {
			char **nn = xmalloc(2 * capn * sizeof(*nn));
			memcpy(nn, nv, k * sizeof(*nn));
			if (nv != names)
				free(nv);
			nv = nn;
			capn *= 2;
		}
		nv[k++] = strdup(de->d_name);
	}
	closedir(d);
	for (size_t i = 0; i < k; i++) {
		char a[PATH_MAX], r[PATH_MAX];
		snprintf(a, sizeof(a), "%s/%s", abs, nv[i]);
		if (!strcmp(rel, "."))
			snprintf(r, sizeof(r), "%s", nv[i]);
		else
			snprintf(r, sizeof(r), "%s/%s", rel, nv[i]);
		mf_walk_at(mf, a, r, depth + 1);
		free(nv[i]);
	}
	if (nv != names)
		free(nv);
}

static int mf_cmp_path(const void *a, const void *b)
{
	return strcmp(((const struct mf_ent *)a)->path, ((const struct mf_ent *)b)->path);
}

struct ino_ref {
	ino_t ino;
	size_t idx;
};

static int cmp_ino(const void *a, const void *b)
{
	const struct ino_ref *x = a, *y = b;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The manifest of the tree at root (its entries sorted by path). */
static __attribute__((unused)) struct mf *mf_take(const char *root, unsigned flags)
{
	struct mf *mf = xmalloc(sizeof(*mf));
	memset(mf, 0, sizeof(*mf));
	mf->flags = flags;
	mf_walk_at(mf, root, ".", 0);
	qsort(mf->v, mf->n, sizeof(*mf->v), mf_cmp_path);
	/* inode classes: the smallest path (sorted order) sharing st_ino */
	struct ino_ref *r = xmalloc(mf->n * sizeof(*r));
	for (size_t i = 0; i < mf->n; i++)
		r[i] = (struct ino_ref){mf->v[i].ino, i};
	qsort(r, mf->n, sizeof(*r), cmp_ino);
	for (size_t i = 0; i < mf->n;) {
		size_t j = i;
		while (j < mf->n && r[j].ino == r[i].ino)
			j++;
		for (size_t k = i; k < j; k++)
			mf->v[r[k].idx].cls = strdup(mf->v[r[i].idx].path);
		i = j;
	}
	free(r);
	return mf;
}

static __attribute__((unused)) void mf_free(struct mf *mf)
{
	if (!mf)
		return;
	for (size_t i = 0; i < mf->n; i++) {
		free(mf->v[i].path);
		free(mf->v[i].target);
		free(mf->v[i].xattrs);
		free(mf->v[i].cls);
	}
	free(mf->v);
	free(mf);
}

static __attribute__((unused)) const struct mf_ent *mf_find(const struct mf *mf, const char *path)
{
	struct mf_ent key = {.path = (char *)path};
	return bsearch(&key, mf->v, mf->n, sizeof(key), mf_cmp_path);
}

static const char *mf_type(mode_t t)
{
	switch (t) {
	case S_IFREG:
		return "file";
	case S_IFDIR:
		return "dir";
	case S_IFLNK:
		return "symlink";
	case S_IFIFO:
		return "fifo";
	case S_IFCHR:
		return "chardev";
	case S_IFBLK:
		return "blockdev";
	case S_IFSOCK:
		return "socket";
	}
	return "missing";
}

enum {
	MFD_MISSING,
	MFD_EXTRA,
	MFD_ERROR,
	MFD_TYPE,
	MFD_MODE,
	MFD_OWNER,
	MFD_SIZE,
	MFD_CONTENT,
	MFD_NLINK,
	MFD_MTIME,
	MFD_TARGET,
	MFD_XATTR,
	MFD_INODE,
	MFD_N
};
static const char *const mfd_name[MFD_N] = {
    "missing", "extra", "error", "type",	   "mode",   "owner",	    "size",
    "content", "nlink", "mtime", "symlink target", "xattrs", "shared inode"};

/* One entry's differences appended to msg (at most cap bytes); returns a
 * bit per kind of difference (MFD_*). */
static unsigned mf_ent_diff(const struct mf_ent *g, const struct mf_ent *w, unsigned flags,
			    char *msg, size_t cap)
{
	size_t len = strlen(msg);
#define D(cat, ...)                                                                                \
	do {                                                                                       \
		if (len < cap)                                                                     \
			len += (size_t)snprintf(msg + len, cap - len, __VA_ARGS__);                \
		nd |= 1u << (cat);                                                                 \
	} while (0)
	unsigned nd = 0;
	if (g->err && g->err != w->err)
		D(MFD_ERROR, " error %s", strerrorname_np(g->err));
	if (g->type != w->type) {
		D(MFD_TYPE, " is a %s, expected a %s", mf_type(g->type), mf_type(w->type));
		return nd;
	}
	if (w->type != S_IFLNK) {
		if (g->mode != w->mode)
			D(MFD_MODE, " mode 0%o, expected 0%o", g->mode, w->mode);
		if (g->uid != w->uid || g->gid != w->gid)
			D(MFD_OWNER, " owner %u:%u, expected %u:%u", (unsigned)g->uid,
			  (unsigned)g->gid, (unsigned)w->uid, (unsigned)w->gid);
	}
	if (w->type == S_IFREG) {
		if (g->size != w->size)
			D(MFD_SIZE, " size %lld, expected %lld", (long long)g->size,
			  (long long)w->size);
		else if (g->h[0] != w->h[0] || g->h[1] != w->h[1])
			D(MFD_CONTENT, " content differs");
		if ((flags & MF_NLINK) && g->nlink != w->nlink)
			D(MFD_NLINK, " nlink %lu, expected %lu", (unsigned long)g->nlink,
			  (unsigned long)w->nlink);
		if ((flags & MF_MTIME) && (g->mtime_s != w->mtime_s || g->mtime_ns != w->mtime_ns))
			D(MFD_MTIME, " mtime %lld.%09ld, expected %lld.%09ld",
			  (long long)g->mtime_s, g->mtime_ns, (long long)w->mtime_s, w->mtime_ns);
	}
	if (w->type == S_IFLNK && strcmp(g->target ? g->target : "", w->target ? w->target : ""))
		D(MFD_TARGET, " target '%s', expected '%s'", g->target ? g->target : "",
		  w->target ? w->target : "");
	if (w->xattrs && g->xattrs && strcmp(g->xattrs, w->xattrs))
		D(MFD_XATTR, " xattrs {%.120s}, expected {%.120s}", g->xattrs, w->xattrs);
	if (strcmp(g->cls, w->cls))
		D(MFD_INODE, " shares its inode with '%s', expected with '%s'", g->cls, w->cls);
#undef D
	return nd;
}

/*
 * Compare manifest got (of a view) with want; flags: MF_MTIME, MF_NLINK.
 * Returns the number of differing entries and fills msg with the first
 * ones ("path: what differs").
 */
static __attribute__((unused)) size_t mf_diff(const struct mf *got, const struct mf *want,
					      unsigned flags, char *msg, size_t cap)
{
	size_t i = 0, j = 0, nd = 0, kinds[MFD_N] = {0};
	msg[0] = 0;
	while (i < got->n || j < want->n) {
		int c = i == got->n    ? 1
			: j == want->n ? -1
				       : strcmp(got->v[i].path, want->v[j].path);
		size_t len = strlen(msg);
		if (c < 0) {
			if (len + 200 < cap)
				snprintf(msg + len, cap - len,
					 "\n  %s: in the view, not expected (%s)", got->v[i].path,
					 mf_type(got->v[i].type));
			nd++;
			kinds[MFD_EXTRA]++;
			i++;
		} else if (c > 0) {
			if (len + 200 < cap)
				snprintf(msg + len, cap - len, "\n  %s: missing (a %s)",
					 want->v[j].path, mf_type(want->v[j].type));
			nd++;
			kinds[MFD_MISSING]++;
			j++;
		} else {
			char one[1024];
			snprintf(one, sizeof(one), "\n  %s:", want->v[j].path);
			unsigned k = mf_ent_diff(&got->v[i], &want->v[j], flags, one, sizeof(one));
			if (k) {
				if (len + strlen(one) + 1 < cap)
					strcat(msg, one);
				nd++;
				for (int b = 0; b < MFD_N; b++)
					kinds[b] += (k >> b) & 1;
			}
			i++;
			j++;
		}
	}
	if (nd) { /* a summary first: which kinds of differences, how many */
		char sum[512] = "";
		size_t sl = 0;
		for (int b = 0; b < MFD_N; b++)
			if (kinds[b])
				sl += (size_t)snprintf(sum + sl, sizeof(sum) - sl, "%s%s %zu",
						       sl ? ", " : " [", mfd_name[b], kinds[b]);
		snprintf(sum + sl, sizeof(sum) - sl, "]");
		size_t ml = strlen(msg), sumlen = strlen(sum);
		if (ml + sumlen + 1 > cap)
			ml = cap - sumlen - 1;
		memmove(msg + sumlen, msg, ml);
		memcpy(msg, sum, sumlen);
		msg[sumlen + ml] = 0;
	}
	return nd;
}

/* Fail with the differences between the manifest of view root and want. */
static __attribute__((unused)) void mf_expect(const char *what, const struct mf *got,
					      const struct mf *want, unsigned flags)
{
	static char msg[6000];
	size_t nd = mf_diff(got, want, flags, msg, sizeof(msg));
	cr_assert_eq(
	    nd, 0,
	    "%s: %zu of %zu entries differ from the manifest at pin time (%zu in the view);%s",
	    what, nd, want->n, got->n, msg);
}

/* The same view walked twice: every path keeps its inode number. */
static __attribute__((unused)) void mf_expect_same_inos(const char *what, const struct mf *a,
							const struct mf *b)
{
	size_t bad = 0;
	const char *first = NULL;
	for (size_t i = 0; i < a->n; i++) {
		const struct mf_ent *e = mf_find(b, a->v[i].path);
		if (e && e->ino != a->v[i].ino && !bad++)
			first = a->v[i].path;
	}
	cr_assert_eq(bad, 0, "%s: %zu paths changed inode number between two walks, first %s", what,
		     bad, first);
}

/* ---- building trees ------------------------------------------------------- */

static __attribute__((unused)) void mkdir_p(const char *path, mode_t mode)
{
	cr_assert(mkdir(path, mode) == 0 || errno == EEXIST, "mkdir %s: %s", path, strerror(errno));
}

/* A regular file of len bytes of seed's stream (holes when sparse: data
 * only in every other 64 KiB, the rest never written). */
static __attribute__((unused)) void put_file(const char *path, size_t len, uint64_t seed,
					     int sparse)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert(fd >= 0, "create %s: %s", path, strerror(errno));
	unsigned char *b = xmalloc(len);
	tu_fill(b, len, seed);
	if (!sparse) {
		if (len)
			pwrite_all(fd, b, len, 0);
	} else {
		for (size_t off = 0; off < len; off += 128 << 10) {
			size_t n = len - off < (64u << 10) ? len - off : (64u << 10);
			pwrite_all(fd, b + off, n, (off_t)off);
		}
		cr_assert_eq(ftruncate(fd, (off_t)len), 0);
		/* the holes read as zeros: the manifest hashes what is read */
	}
	free(b);
	cr_assert_eq(close(fd), 0, "close %s: %s", path, strerror(errno));
}

#endif
