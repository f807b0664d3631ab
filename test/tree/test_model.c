// SPDX-License-Identifier: MIT
/*
 * Model test of tree snapshots (issue 10), like the store's model test for
 * bytes: random namespace operations (create, write, truncate, unlink,
 * rename incl. over existing and RENAME_EXCHANGE, mkdir, rmdir, link,
 * symlink, chmod, chown, utimens, setxattr/removexattr) on a small
 * namespace, applied both through the mount and to a shadow copy on plain
 * tmpfs (the model); random pin -r (the root or a subtree), release and
 * unmount + remount. After every step the live mount must equal the model,
 * and every live snapshot's view must equal the manifest taken when it was
 * pinned (with mtimes and, for pins of the whole namespace, link counts).
 * Fixed seeds; a failure prints the seed, the step and the last operations.
 * Hundreds of steps per seed; SNAPFS_LONG=1: thousands.
 */
#include "treeutil.h"

#include <linux/fs.h>
#include <sys/syscall.h>

TestSuite(model, .init = fx_setup, .fini = tr_teardown, .timeout = 1800);

#define MAX_SNAPS 4
#define LOG_N	  12

struct msnap {
	uint64_t id;
	char rel[512]; /* pinned path relative to the mount root */
	unsigned flags;
	struct mf *at_pin; /* manifest of the live tree at pin time (with mtimes) */
};

struct model {
	uint64_t rs, seed;
	long step;
	char *shadow; /* the model's root: a directory on tmpfs */
	char *live;   /* MNT/m */
	struct msnap snaps[MAX_SNAPS];
	int nsnaps;
	char log[LOG_N][256];
	int nlog;
	long pins, releases, remounts, ops, failed_ops;
	const char *fake; /* harness check: snapshots are cp -a copies under here */
};

static const char *const names[] = {"a", "b", "c", "d", "e", "f"};
static const char *const targets[] = {"a", "b/c", "../a", "nowhere", "d/e/f", "."};
static const mode_t fmodes[] = {0644, 0600, 0755, 0444, 0700, 0640};
static const mode_t dmodes[] = {0755, 0700, 0750, 01777, 0711};

static unsigned rnd(struct model *md, unsigned n)
{
	return (unsigned)(tu_rand(&md->rs) % n);
}

static void logf_(struct model *md, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(md->log[md->nlog++ % LOG_N], 256, fmt, ap);
	va_end(ap);
}

static const char *history(struct model *md)
{
	static char buf[LOG_N * 260];
	buf[0] = 0;
	int from = md->nlog > LOG_N ? md->nlog - LOG_N : 0;
	for (int i = from; i < md->nlog; i++) {
		strcat(buf, "\n    ");
		strcat(buf, md->log[i % LOG_N]);
	}
	return buf;
}

/* A path in the namespace: an existing entry, or a new name in an
 * existing directory (depth at most 3). */
static void pick(struct model *md, const struct mf *cur, char *out, size_t len, unsigned pct_exist)
{
	const struct mf_ent *e = &cur->v[rnd(md, (unsigned)cur->n)];
	if (rnd(md, 100) < pct_exist && strcmp(e->path, ".")) {
		snprintf(out, len, "%s", e->path);
		return;
	}
	/* a directory: e itself or e's parent */
	char dir[512];
	snprintf(dir, sizeof(dir), "%s", e->path);
	if (e->type != S_IFDIR) {
		char *sl = strrchr(dir, '/');
		if (sl)
			*sl = 0;
		else
			snprintf(dir, sizeof(dir), ".");
	}
	int depth = 0;
	for (char *p = dir; *p; p++)
		depth += *p == '/';
	if (strcmp(dir, ".") && depth >= 2)
		snprintf(dir, sizeof(dir), ".");
	const char *n = names[rnd(md, 6)];
	if (!strcmp(dir, "."))
		snprintf(out, len, "%s", n);
	else
		cr_assert_lt((size_t)snprintf(out, len, "%s/%s", dir, n), len);
}

enum {
	OP_CREATE,
	OP_WRITE,
	OP_TRUNC,
	OP_UNLINK,
	OP_RENAME,
	OP_EXCHANGE,
	OP_MKDIR,
	OP_RMDIR,
	OP_LINK,
	OP_SYMLINK,
	OP_CHMOD,
	OP_CHOWN,
	OP_UTIMENS,
	OP_SETXATTR,
	OP_RMXATTR,
	OP_N
};
static const char *const op_names[OP_N] = {"create",   "write", "truncate", "unlink",	"rename",
					   "exchange", "mkdir", "rmdir",    "link",	"symlink",
					   "chmod",    "chown", "utimens",  "setxattr", "rmxattr"};

struct op {
	int kind;
	char a[512], b[512];
	uint64_t seed;
	size_t len;
	off_t off;
	unsigned arg;
};

/* Apply o under base; returns 0 or the errno. Same bytes on both sides. */
static int apply(const char *base, const struct op *o)
{
	char a[1100], b[1100];
	snprintf(a, sizeof(a), "%s/%s", base, o->a);
	snprintf(b, sizeof(b), "%s/%s", base, o->b);
	unsigned char buf[9000];
	tu_fill(buf, o->len, o->seed);
	int fd, rc = 0;
	struct stat st;
	switch (o->kind) {
	case OP_CREATE:
	case OP_WRITE:
	case OP_TRUNC:
		fd = open(a,
			  o->kind == OP_CREATE ? O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW
					       : O_WRONLY | O_NOFOLLOW,
			  0644);
		if (fd < 0)
			return errno;
		if (o->kind == OP_TRUNC)
			rc = ftruncate(fd, o->off);
		else if (o->len)
			rc = pwrite(fd, buf, o->len, o->off) == (ssize_t)o->len ? 0 : -1;
		rc = rc ? errno : 0;
		close(fd);
		return rc;
	case OP_UNLINK:
		return unlink(a) ? errno : 0;
	case OP_RENAME:
		return rename(a, b) ? errno : 0;
	case OP_EXCHANGE:
		return syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) ? errno
											 : 0;
	case OP_MKDIR:
		return mkdir(a, dmodes[o->arg % 5]) ? errno : 0;
	case OP_RMDIR:
		return rmdir(a) ? errno : 0;
	case OP_LINK:
		return link(a, b) ? errno : 0;
	case OP_SYMLINK:
		return symlink(targets[o->arg % 6], a) ? errno : 0;
	case OP_CHMOD:
	case OP_CHOWN:
	case OP_SETXATTR:
	case OP_RMXATTR:
		/* not on symlinks: the call would follow them */
		if (lstat(a, &st))
			return errno;
		if (S_ISLNK(st.st_mode))
			return ELOOP;
		if (o->kind == OP_CHMOD)
			return chmod(a,
				     S_ISDIR(st.st_mode) ? dmodes[o->arg % 5] : fmodes[o->arg % 6])
				   ? errno
				   : 0;
		if (o->kind == OP_CHOWN)
			return lchown(a, o->arg % 2 ? 65534 : 0, o->arg % 3 ? 65534 : 0) ? errno
											 : 0;
		if (o->kind == OP_SETXATTR) {
			char name[32];
			snprintf(name, sizeof(name), "user.k%u", o->arg % 3);
			return lsetxattr(a, name, buf, o->len % 64, 0) ? errno : 0;
		} else {
			char name[32];
			snprintf(name, sizeof(name), "user.k%u", o->arg % 3);
			return lremovexattr(a, name) ? errno : 0;
		}
	case OP_UTIMENS: {
		struct timespec ts[2] = {{1000000 + o->arg, 0}, {2000000 + o->arg, o->arg * 1000}};
		return utimensat(AT_FDCWD, a, ts, AT_SYMLINK_NOFOLLOW) ? errno : 0;
	}
	}
	return EINVAL;
}

static void describe(const struct op *o, int rc, char *out, size_t len)
{
	snprintf(out, len, "%s %s%s%s len %zu off %lld arg %u -> %s", op_names[o->kind], o->a,
		 o->kind == OP_RENAME || o->kind == OP_EXCHANGE || o->kind == OP_LINK ? " " : "",
		 o->kind == OP_RENAME || o->kind == OP_EXCHANGE || o->kind == OP_LINK ? o->b : "",
		 o->len, (long long)o->off, o->arg, rc ? strerrorname_np(rc) : "ok");
}

static void check_view(struct model *md, struct msnap *s)
{
	char what[1100], fake[1100];
	if (md->fake)
		snprintf(fake, sizeof(fake), "%s/%" PRIu64, md->fake, s->id);
	struct mf *v = mf_take(md->fake ? fake : VR(s->id, s->rel), MF_MTIME);
	static char msg[6000];
	size_t nd = mf_diff(v, s->at_pin, s->flags, msg, sizeof(msg));
	snprintf(what, sizeof(what), "seed %llu step %ld: snapshot %" PRIu64 " of %s",
		 (unsigned long long)md->seed, md->step, s->id, s->rel);
	cr_assert_eq(nd, 0,
		     "%s: %zu of %zu entries differ from the manifest at pin time;%s\n  last "
		     "operations:%s",
		     what, nd, s->at_pin->n, msg, history(md));
	mf_free(v);
}

static void check_live(struct model *md)
{
	struct mf *l = mf_take(md->live, 0), *sh = mf_take(md->shadow, 0);
	static char msg[6000];
	size_t nd = mf_diff(l, sh, MF_NLINK, msg, sizeof(msg));
	cr_assert_eq(nd, 0,
		     "seed %llu step %ld: the live tree differs from the model in %zu entries;%s\n"
		     "  last operations:%s",
		     (unsigned long long)md->seed, md->step, nd, msg, history(md));
	mf_free(l);
	mf_free(sh);
}

static void do_pin(struct model *md, const struct mf *cur)
{
	if (md->nsnaps == MAX_SNAPS)
		return;
	struct msnap *s = &md->snaps[md->nsnaps];
	const struct mf_ent *e = &cur->v[rnd(md, (unsigned)cur->n)];
	if (rnd(md, 2) == 0 || e->type != S_IFDIR || !strcmp(e->path, ".")) {
		snprintf(s->rel, sizeof(s->rel), "m");
		s->flags = MF_MTIME | MF_NLINK;
	} else {
		/* a subtree: its files may have links outside it, whose count the
		 * view need not reproduce */
		snprintf(s->rel, sizeof(s->rel), "m/%s", e->path);
		s->flags = MF_MTIME;
	}
	char live[1100];
	snprintf(live, sizeof(live), "%s/%s", mnt, s->rel);
	s->at_pin = mf_take(live, MF_MTIME);
	if (md->fake) {
		static uint64_t next;
		char to[1100];
		s->id = ++next;
		snprintf(to, sizeof(to), "%s/%" PRIu64, md->fake, s->id);
		struct tr_out *r = xmalloc(sizeof(*r));
		cr_assert_eq(tr_run(r, NULL, 0, "cp", "-a", live, to, NULL), 0, "cp -a: %s",
			     r->err);
		free(r);
	} else {
		s->id = try_pin_tree((const char *[]){s->rel}, 1);
	}
	int e2 = errno;
	logf_(md, "step %ld: pin -r %s -> %" PRIu64 " (%zu entries)", md->step, s->rel, s->id,
	      s->at_pin->n);
	cr_assert_neq(s->id, 0, "seed %llu step %ld: pin -r %s failed: %s\n  last operations:%s",
		      (unsigned long long)md->seed, md->step, s->rel, strerror(e2), history(md));
	md->nsnaps++;
	md->pins++;
}

static void do_release(struct model *md)
{
	if (!md->nsnaps)
		return;
	int i = (int)rnd(md, (unsigned)md->nsnaps);
	struct msnap *s = &md->snaps[i];
	logf_(md, "step %ld: release %" PRIu64, md->step, s->id);
	if (md->fake) {
		char to[1100];
		snprintf(to, sizeof(to), "%s/%" PRIu64, md->fake, s->id);
		tu_rm_rf(to);
	} else {
		release(s->id);
		struct stat st;
		errno = 0;
		cr_assert(lstat(VR(s->id, ""), &st) == -1 && errno == ENOENT,
			  "seed %llu step %ld: released snapshot %" PRIu64 " still has a view",
			  (unsigned long long)md->seed, md->step, s->id);
	}
	mf_free(s->at_pin);
	md->snaps[i] = md->snaps[--md->nsnaps];
	md->releases++;
}

static void run_model(uint64_t seed, long steps, int fake)
{
	struct model *md = xmalloc(sizeof(*md));
	memset(md, 0, sizeof(*md));
	if (fake)
		md->fake = tr_tmpdir("trfake");
	md->seed = seed;
	md->rs = seed * 0x9e3779b97f4a7c15ull + 1;
	const char *sroot = tr_tmpdir("trmodel");
	char p[600];
	snprintf(p, sizeof(p), "%s/m", sroot);
	fx_mount(NULL);
	md->shadow = strdup(p);
	md->live = strdup(MP("m"));
	mkdir_p(md->shadow, 0755);
	mkdir_p(md->live, 0755);
	/* a start: a few files and directories */
	for (int i = 0; i < 6; i++) {
		struct op o = {.kind = i % 3 == 2 ? OP_MKDIR : OP_CREATE,
			       .seed = (uint64_t)i,
			       .len = 100u * (unsigned)i};
		snprintf(o.a, sizeof(o.a), "%s", names[i]);
		cr_assert_eq(apply(md->shadow, &o), 0);
		cr_assert_eq(apply(md->live, &o), 0);
	}
	struct mf *cur = mf_take(md->shadow, 0);
	for (md->step = 0; md->step < steps; md->step++) {
		unsigned r = rnd(md, 100);
		if (r < 7) {
			do_pin(md, cur);
		} else if (r < 11) {
			do_release(md);
		} else if (r < 13) {
			logf_(md, "step %ld: unmount + remount", md->step);
			tu_umount(&m);
			fx_mount(NULL);
			for (int i = 0; i < md->nsnaps && !md->fake; i++)
				cr_assert(listed_snap(md->snaps[i].id, NULL),
					  "seed %llu step %ld: snapshot %" PRIu64
					  " not listed after a remount",
					  (unsigned long long)seed, md->step, md->snaps[i].id);
			md->remounts++;
		} else {
			struct op o = {.kind = (int)rnd(md, OP_N)};
			int makes =
			    o.kind == OP_CREATE || o.kind == OP_MKDIR || o.kind == OP_SYMLINK;
			pick(md, cur, o.a, sizeof(o.a), makes ? 30 : 85);
			pick(md, cur, o.b, sizeof(o.b), o.kind == OP_EXCHANGE ? 85 : 40);
			o.seed = tu_rand(&md->rs);
			o.len = rnd(md, 9000);
			o.off = rnd(md, 4) ? (off_t)rnd(md, 20000) : 0;
			o.arg = rnd(md, 1000);
			int want = apply(md->shadow, &o), got = apply(md->live, &o);
			char d[1200];
			describe(&o, want, d, sizeof(d));
			logf_(md, "step %ld: %s", md->step, d);
			cr_assert_eq(
			    got, want,
			    "seed %llu step %ld: %s through the mount gives %s, the model %s"
			    "\n  last operations:%s",
			    (unsigned long long)seed, md->step, op_names[o.kind],
			    got ? strerrorname_np(got) : "ok", want ? strerrorname_np(want) : "ok",
			    history(md));
			md->ops++;
			md->failed_ops += want != 0;
			mf_free(cur);
			cur = mf_take(md->shadow, 0);
		}
		check_live(md);
		for (int i = 0; i < md->nsnaps; i++)
			check_view(md, &md->snaps[i]);
	}
	cr_log_info("seed %llu: %ld steps, %ld ops (%ld refused), %ld pins, %ld releases, %ld "
		    "remounts",
		    (unsigned long long)seed, steps, md->ops, md->failed_ops, md->pins,
		    md->releases, md->remounts);
	cr_assert_gt(md->pins, 3, "seed %llu: too few pins", (unsigned long long)seed);
	while (md->nsnaps)
		do_release(md);
	mf_free(cur);
	tu_rm_rf(md->live);
	tu_umount(&m);
	free(md->shadow);
	free(md->live);
	free(md);
}

static long model_steps(void)
{
	return tr_long() ? 5000 : 400;
}

Test(model, seed_1)
{
	run_model(1, model_steps(), 0);
}

Test(model, seed_2)
{
	run_model(2, model_steps(), 0);
}

Test(model, seed_3)
{
	run_model(3, model_steps(), 0);
}

/* The harness itself: the same run with `cp -a` copies of the live tree
 * (on tmpfs) as "snapshots" passes, so a failure of the seeds above is the
 * view's; it also runs the live mount against the model for every step. */
Test(model, harness_check_with_cp_a_copies_as_snapshots)
{
	run_model(1, model_steps(), 1);
}
