// SPDX-License-Identifier: MIT
/*
 * Tree snapshots, model-based: an in-memory model of a small namespace
 * (directories, files with bytes, symlinks, FIFOs, hard links, modes,
 * owners, xattrs) and random operations applied to a real directory through the
 * store's hooks in the daemon's order (need -> save, entry -> change), with
 * random tree pins (of the root or a subdirectory; pinned or ephemeral),
 * releases and store
 * close/reopen. After every step the live tree must equal the model, and
 * every live tree snapshot, rebuilt through the read API plus the live
 * nodes it defers to (opened by handle), must equal the model's manifest
 * taken at its pin. SNAPFS_LONG=1 runs 20x longer, ASan builds 5x shorter;
 * a failure names the seed and the step. Also: 1,000 live tree snapshots
 * with changes between them, checked, reopened and released (no extent left).
 */
#include <sqlite3.h>

#include "tree_fx.h"

#define MBS	512u
#define MAXN	36
#define MAXENT	10
#define MAXSZ	(5 * MBS + 77)
#define MAXSNAP 1000 /* the model test keeps at most maxsnap of them */
#define NXA	3

enum { N_FREE, N_DIR, N_REG, N_LNK, N_FIFO };

struct ment {
	char name[8];
	int node;
};

struct mnode {
	int type;
	unsigned perm, uid;
	unsigned char data[MAXSZ];
	size_t size;
	char target[16];
	int xlen[NXA]; /* -1: absent */
	char xval[NXA][8];
	int parent; /* directories: the parent (root: -1) */
	char name[8];
	struct ment ent[MAXENT];
	int nent;
	struct store_file *sf; /* the daemon's reference, NULL until needed */
};

struct msnap {
	uint64_t id;
	int root, eph;
	char *man;
};

struct tmodel {
	uint64_t seed, rng, step;
	int maxsnap;
	struct mnode n[MAXN];
	struct msnap s[MAXSNAP];
	int ns;
	int ops[16];
};

static unsigned rnd(struct tmodel *m, unsigned n)
{
	return (unsigned)(tu_rand(&m->rng) % n);
}

#define OK(rc, what)                                                                               \
	cr_assert_eq((rc), 0, "seed %lu step %lu: %s: %s", (unsigned long)m->seed,                 \
		     (unsigned long)m->step, what, strerror(-(rc)))

/* ---- the model ---- */

static void dir_path(struct tmodel *m, int d, char *out, size_t len)
{
	if (d == 0) {
		snprintf(out, len, "%s", fx_src);
		return;
	}
	char p[1024];
	dir_path(m, m->n[d].parent, p, sizeof(p));
	snprintf(out, len, "%s/%s", p, m->n[d].name);
}

/* Relative path of directory d from directory r ("." for r itself). */
static void rel_path(struct tmodel *m, int r, int d, char *out, size_t len)
{
	if (d == r) {
		snprintf(out, len, ".");
		return;
	}
	char p[1024];
	rel_path(m, r, m->n[d].parent, p, sizeof(p));
	tf_join(out, len, p, m->n[d].name);
}

/* Some (dir, entry) naming node x. */
static void find_ent(struct tmodel *m, int x, int *dir, int *ent)
{
	for (int d = 0; d < MAXN; d++)
		if (m->n[d].type == N_DIR)
			for (int e = 0; e < m->n[d].nent; e++)
				if (m->n[d].ent[e].node == x) {
					*dir = d;
					*ent = e;
					return;
				}
	cr_assert_fail("node %d has no name", x);
}

static void node_path(struct tmodel *m, int x, char *out, size_t len)
{
	if (m->n[x].type == N_DIR) {
		dir_path(m, x, out, len);
		return;
	}
	int d, e;
	find_ent(m, x, &d, &e);
	char p[1024];
	dir_path(m, d, p, sizeof(p));
	snprintf(out, len, "%s/%s", p, m->n[d].ent[e].name);
}

static unsigned links(struct tmodel *m, int x)
{
	unsigned k = 0;
	if (m->n[x].type == N_DIR) {
		for (int e = 0; e < m->n[x].nent; e++)
			k += m->n[m->n[x].ent[e].node].type == N_DIR;
		return 2 + k;
	}
	for (int d = 0; d < MAXN; d++)
		if (m->n[d].type == N_DIR)
			for (int e = 0; e < m->n[d].nent; e++)
				k += m->n[d].ent[e].node == x;
	return k;
}

static size_t pack_x(struct mnode *x, char *out)
{
	size_t len = 0;
	for (int i = 0; i < NXA; i++) {
		if (x->xlen[i] < 0)
			continue;
		char name[16];
		snprintf(name, sizeof(name), "trusted.k%d", i);
		uint32_t l = (uint32_t)x->xlen[i];
		memcpy(out + len, name, strlen(name) + 1);
		len += strlen(name) + 1;
		memcpy(out + len, &l, 4);
		memcpy(out + len + 4, x->xval[i], l);
		len += 4 + l;
	}
	return len;
}

static void model_walk(struct tmodel *m, struct tf_man *man, int d, const char *path)
{
	char xa[256], key[16];
	struct mnode *x = &m->n[d];
	snprintf(key, sizeof(key), "n%d", d);
	tf_emit(man, path, S_IFDIR | x->perm, x->uid, links(m, d), NULL, 0, xa, pack_x(x, xa), NULL,
		0, key);
	for (int e = 0; e < x->nent; e++) {
		int c = x->ent[e].node;
		struct mnode *y = &m->n[c];
		char cp[1024];
		tf_join(cp, sizeof(cp), path, x->ent[e].name);
		if (y->type == N_DIR) {
			model_walk(m, man, c, cp);
			continue;
		}
		snprintf(key, sizeof(key), "n%d", c);
		uint32_t mode = (y->type == N_REG    ? S_IFREG
				 : y->type == N_FIFO ? S_IFIFO
						     : S_IFLNK) |
				y->perm;
		tf_emit(man, cp, mode, y->uid, links(m, c), y->target, strlen(y->target), xa,
			pack_x(y, xa), y->data, y->size, key);
	}
}

static char *model_manifest(struct tmodel *m, int root)
{
	struct tf_man man = {0};
	model_walk(m, &man, root, ".");
	return tf_finish(&man);
}

static int new_node(struct tmodel *m, int type)
{
	for (int i = 1; i < MAXN; i++)
		if (m->n[i].type == N_FREE) {
			struct mnode *x = &m->n[i];
			memset(x, 0, sizeof(*x));
			x->type = type;
			for (int k = 0; k < NXA; k++)
				x->xlen[k] = -1;
			return i;
		}
	return -1;
}

static void free_node(struct tmodel *m, int x)
{
	store_file_put(m->n[x].sf);
	m->n[x].sf = NULL;
	m->n[x].type = N_FREE;
}

static void ent_add(struct tmodel *m, int d, const char *name, int x)
{
	struct mnode *dn = &m->n[d];
	int e = dn->nent++;
	cr_assert(e < MAXENT);
	snprintf(dn->ent[e].name, sizeof(dn->ent[e].name), "%s", name);
	dn->ent[e].node = x;
	/* keep names sorted */
	while (e && strcmp(dn->ent[e - 1].name, dn->ent[e].name) > 0) {
		struct ment t = dn->ent[e - 1];
		dn->ent[e - 1] = dn->ent[e];
		dn->ent[e] = t;
		e--;
	}
	if (m->n[x].type == N_DIR) {
		m->n[x].parent = d;
		snprintf(m->n[x].name, sizeof(m->n[x].name), "%s", name);
	}
}

static int ent_find(struct tmodel *m, int d, const char *name)
{
	for (int e = 0; e < m->n[d].nent; e++)
		if (!strcmp(m->n[d].ent[e].name, name))
			return e;
	return -1;
}

static void ent_del(struct tmodel *m, int d, int e)
{
	struct mnode *dn = &m->n[d];
	memmove(&dn->ent[e], &dn->ent[e + 1], (size_t)(dn->nent - e - 1) * sizeof(dn->ent[0]));
	dn->nent--;
}

/* ---- the daemon's side ---- */

static int open_node(struct tmodel *m, int x, int flags)
{
	char p[1024];
	node_path(m, x, p, sizeof(p));
	int fd = open(p, flags | O_NOFOLLOW);
	cr_assert(fd >= 0, "open %s: %s", p, strerror(errno));
	return fd;
}

static struct store_file *node_sf(struct tmodel *m, int x)
{
	if (!m->n[x].sf) {
		int fd = open_node(m, x, O_PATH);
		OK(store_file_get(fx_st, fd, &m->n[x].sf), "store_file_get");
		close(fd);
	}
	return m->n[x].sf;
}

static void save(struct tmodel *m, int x)
{
	int fd = open_node(m, x, O_PATH);
	OK(tf_save(node_sf(m, x), fd), "save");
	close(fd);
}

static uint32_t ntype(struct tmodel *m, int x)
{
	return m->n[x].type == N_DIR	? S_IFDIR
	       : m->n[x].type == N_REG	? S_IFREG
	       : m->n[x].type == N_FIFO ? S_IFIFO
					: S_IFLNK;
}

static void entry(struct tmodel *m, int d, const char *name, int x)
{
	OK(store_ns_entry(fx_st, node_sf(m, d), name, x >= 0 ? node_sf(m, x) : NULL,
			  x >= 0 ? ntype(m, x) : 0),
	   "ns_entry");
}

static int rand_node(struct tmodel *m, int type)
{
	int c[MAXN], k = 0;
	for (int i = 0; i < MAXN; i++)
		if (m->n[i].type == type || (type == -1 && m->n[i].type != N_FREE))
			c[k++] = i;
	return k ? c[rnd(m, (unsigned)k)] : -1;
}

static void rand_name(struct tmodel *m, char *out)
{
	snprintf(out, 8, "%c", 'a' + rnd(m, 6));
}

static void born(struct tmodel *m, int x, const char *path)
{
	int fd = open(path, O_PATH | O_NOFOLLOW);
	cr_assert(fd >= 0);
	OK(store_file_get(fx_st, fd, &m->n[x].sf), "store_file_get");
	store_ns_born(m->n[x].sf);
	close(fd);
}

static void op_create(struct tmodel *m, int type)
{
	int d = rand_node(m, N_DIR);
	char name[8], p[1024];
	rand_name(m, name);
	if (ent_find(m, d, name) >= 0 || m->n[d].nent >= MAXENT)
		return;
	int x = new_node(m, type);
	if (x < 0)
		return;
	save(m, d);
	entry(m, d, name, -1);
	dir_path(m, d, p, sizeof(p));
	snprintf(p + strlen(p), sizeof(p) - strlen(p), "/%s", name);
	struct mnode *y = &m->n[x];
	y->perm = type == N_LNK ? 0777 : type == N_DIR ? 0755 : 0644;
	if (type == N_DIR) {
		cr_assert_eq(mkdir(p, 0755), 0);
	} else if (type == N_FIFO) {
		cr_assert_eq(mkfifo(p, 0640), 0);
		y->perm = 0640;
	} else if (type == N_LNK) {
		snprintf(y->target, sizeof(y->target), "t%u", rnd(m, 1000));
		cr_assert_eq(symlink(y->target, p), 0);
	} else {
		int fd = open(p, O_RDWR | O_CREAT | O_EXCL, 0644);
		cr_assert(fd >= 0);
		y->size = rnd(m, MAXSZ);
		tu_fill(y->data, y->size, tu_rand(&m->rng));
		fx_pwrite(fd, y->data, y->size, 0);
		close(fd);
	}
	born(m, x, p);
	ent_add(m, d, name, x);
}

static void op_write(struct tmodel *m)
{
	int x = rand_node(m, N_REG);
	if (x < 0)
		return;
	struct mnode *y = &m->n[x];
	size_t off = rnd(m, MAXSZ), len = 1 + rnd(m, 2 * MBS);
	if (off + len > MAXSZ)
		len = MAXSZ - off;
	if (!len)
		return;
	save(m, x);
	int fd = open_node(m, x, O_RDWR);
	store_file_wrlock(node_sf(m, x)); /* as the daemon: the unlock records the change */
	OK(store_cow_range(node_sf(m, x), fd, off, len), "cow_range");
	unsigned char buf[2 * MBS];
	tu_fill(buf, len, tu_rand(&m->rng));
	fx_pwrite(fd, buf, len, (off_t)off);
	store_file_unlock(node_sf(m, x));
	close(fd);
	memcpy(y->data + off, buf, len);
	if (off + len > y->size)
		y->size = off + len;
}

static void op_truncate(struct tmodel *m)
{
	int x = rand_node(m, N_REG);
	if (x < 0)
		return;
	struct mnode *y = &m->n[x];
	size_t ns = rnd(m, MAXSZ);
	save(m, x);
	int fd = open_node(m, x, O_RDWR);
	store_file_wrlock(node_sf(m, x));
	OK(store_cow_truncate(node_sf(m, x), fd, ns), "cow_truncate");
	cr_assert_eq(ftruncate(fd, (off_t)ns), 0);
	store_file_unlock(node_sf(m, x));
	close(fd);
	if (ns < y->size)
		memset(y->data + ns, 0, y->size - ns);
	y->size = ns;
}

/* The last link of a regular file is going: preserve its blocks. */
static void last_link(struct tmodel *m, int x)
{
	if (m->n[x].type != N_REG || links(m, x) != 1)
		return;
	int fd = open_node(m, x, O_RDONLY);
	OK(store_cow_unlink(node_sf(m, x), fd), "cow_unlink");
	close(fd);
}

static void op_unlink(struct tmodel *m, int dirs)
{
	int d = rand_node(m, N_DIR);
	if (!m->n[d].nent)
		return;
	int e = (int)rnd(m, (unsigned)m->n[d].nent), x = m->n[d].ent[e].node;
	if ((m->n[x].type == N_DIR) != dirs || (dirs && m->n[x].nent))
		return;
	char p[1024];
	node_path(m, x, p, sizeof(p));
	if (m->n[x].type != N_DIR) { /* the entry's own path, not another link's */
		dir_path(m, d, p, sizeof(p));
		snprintf(p + strlen(p), sizeof(p) - strlen(p), "/%s", m->n[d].ent[e].name);
	}
	save(m, d);
	save(m, x);
	entry(m, d, m->n[d].ent[e].name, x);
	last_link(m, x);
	cr_assert_eq(dirs ? rmdir(p) : unlink(p), 0, "%s: %s", p, strerror(errno));
	ent_del(m, d, e);
	if (dirs || !links(m, x))
		free_node(m, x);
}

static void op_link(struct tmodel *m)
{
	int x = rand_node(m, N_REG), d = rand_node(m, N_DIR);
	char name[8], p[1024], q[1024];
	rand_name(m, name);
	if (x < 0 || ent_find(m, d, name) >= 0 || m->n[d].nent >= MAXENT)
		return;
	node_path(m, x, p, sizeof(p));
	dir_path(m, d, q, sizeof(q));
	snprintf(q + strlen(q), sizeof(q) - strlen(q), "/%s", name);
	save(m, d);
	save(m, x);
	entry(m, d, name, -1);
	cr_assert_eq(link(p, q), 0);
	ent_add(m, d, name, x);
}

static int under(struct tmodel *m, int d, int x) /* d is x or below it */
{
	for (; d >= 0; d = m->n[d].parent)
		if (d == x)
			return 1;
	return 0;
}

static void op_rename(struct tmodel *m)
{
	int sd = rand_node(m, N_DIR), dd = rand_node(m, N_DIR);
	if (!m->n[sd].nent)
		return;
	int se = (int)rnd(m, (unsigned)m->n[sd].nent), x = m->n[sd].ent[se].node;
	char sn[8], dn[8], sp[1024], dp[1024];
	snprintf(sn, sizeof(sn), "%s", m->n[sd].ent[se].name);
	rand_name(m, dn);
	int de = ent_find(m, dd, dn), y = de >= 0 ? m->n[dd].ent[de].node : -1;
	if (sd == dd && !strcmp(sn, dn))
		return;
	if (m->n[x].type == N_DIR && under(m, dd, x))
		return;
	if (y >= 0 && (y == x || (m->n[y].type == N_DIR) != (m->n[x].type == N_DIR) ||
		       (m->n[y].type == N_DIR && m->n[y].nent)))
		return;
	if (y < 0 && m->n[dd].nent >= MAXENT)
		return;
	dir_path(m, sd, sp, sizeof(sp));
	snprintf(sp + strlen(sp), sizeof(sp) - strlen(sp), "/%s", sn);
	dir_path(m, dd, dp, sizeof(dp));
	snprintf(dp + strlen(dp), sizeof(dp) - strlen(dp), "/%s", dn);
	save(m, sd);
	if (dd != sd)
		save(m, dd);
	save(m, x);
	if (y >= 0)
		save(m, y);
	entry(m, sd, sn, x);
	entry(m, dd, dn, y);
	if (y >= 0)
		last_link(m, y);
	cr_assert_eq(rename(sp, dp), 0, "rename %s %s: %s", sp, dp, strerror(errno));
	ent_del(m, sd, se);
	if (y >= 0) {
		ent_del(m, dd, ent_find(m, dd, dn));
		if (m->n[y].type == N_DIR || !links(m, y))
			free_node(m, y);
	}
	ent_add(m, dd, dn, x);
}

static void op_meta(struct tmodel *m)
{
	int x = rand_node(m, -1);
	struct mnode *y = &m->n[x];
	char p[1024];
	node_path(m, x, p, sizeof(p));
	unsigned what = rnd(m, 3);
	if ((y->type == N_LNK || y->type == N_FIFO) && what == 2)
		what = 1; /* no xattrs on those */
	if (y->type == N_LNK && what != 1)
		what = 1;
	save(m, x);
	if (what == 0) {
		unsigned perm = (y->type == N_DIR ? 0700 : 0600) | (rnd(m, 64) & 055);
		cr_assert_eq(chmod(p, perm), 0);
		y->perm = perm;
	} else if (what == 1) {
		unsigned uid = rnd(m, 3) * 1000;
		cr_assert_eq(lchown(p, uid, (gid_t)-1), 0);
		y->uid = uid;
	} else {
		int k = (int)rnd(m, NXA);
		char name[16];
		snprintf(name, sizeof(name), "trusted.k%d", k);
		if (y->xlen[k] >= 0 && rnd(m, 2)) {
			cr_assert_eq(removexattr(p, name), 0);
			y->xlen[k] = -1;
		} else {
			y->xlen[k] = (int)rnd(m, 8);
			tu_fill(y->xval[k], (size_t)y->xlen[k], tu_rand(&m->rng));
			cr_assert_eq(setxattr(p, name, y->xval[k], (size_t)y->xlen[k], 0), 0,
				     "setxattr: %s", strerror(errno));
		}
	}
}

static void op_pin(struct tmodel *m)
{
	if (m->ns == m->maxsnap)
		return;
	int r = rnd(m, 2) ? 0 : rand_node(m, N_DIR);
	char rel[1024];
	rel_path(m, 0, r, rel, sizeof(rel));
	int eph = rnd(m, 4) == 0; /* some ephemeral: dropped at reopen */
	struct store_pin p = {.kind = eph ? STORE_EPHEMERAL : STORE_PINNED, .label = "tree"};
	struct msnap *s = &m->s[m->ns];
	OK(store_pin_tree(fx_st, &p, node_sf(m, r), rel, &s->id), "pin_tree");
	s->root = r;
	s->eph = eph;
	s->man = model_manifest(m, r);
	m->ns++;
}

static void op_release(struct tmodel *m)
{
	if (!m->ns)
		return;
	int i = (int)rnd(m, (unsigned)m->ns);
	OK(store_release(fx_st, m->s[i].id), "release");
	free(m->s[i].man);
	m->s[i] = m->s[--m->ns];
}

static void op_reopen(struct tmodel *m)
{
	for (int i = 0; i < MAXN; i++) {
		store_file_put(m->n[i].sf);
		m->n[i].sf = NULL;
	}
	fx_reopen();
	for (int i = 0; i < m->ns;) { /* ephemeral snapshots die with the store */
		if (!m->s[i].eph) {
			i++;
			continue;
		}
		cr_assert_eq(store_snap_is_tree(fx_st, m->s[i].id, NULL, NULL, 0), -ENOENT);
		free(m->s[i].man);
		m->s[i] = m->s[--m->ns];
	}
}

static void verify_snap(struct tmodel *m, int i)
{
	char ctx[128];
	snprintf(ctx, sizeof(ctx), "seed %lu step %lu: snapshot %lu", (unsigned long)m->seed,
		 (unsigned long)m->step, (unsigned long)m->s[i].id);
	char *got = tf_snap_manifest(fx_st, m->s[i].id, ctx);
	tf_expect_same(m->s[i].man, got, ctx);
	free(got);
}

static void verify(struct tmodel *m)
{
	char ctx[128];
	snprintf(ctx, sizeof(ctx), "seed %lu step %lu: live", (unsigned long)m->seed,
		 (unsigned long)m->step);
	char *want = model_manifest(m, 0), *got = tf_live_manifest(fx_src);
	tf_expect_same(want, got, ctx);
	free(want);
	free(got);
	for (int i = 0; i < m->ns; i++)
		verify_snap(m, i);
}

static struct tmodel *model_new(uint64_t seed)
{
	struct tmodel *m = calloc(1, sizeof(*m));
	cr_assert_not_null(m);
	m->seed = m->rng = seed;
	m->maxsnap = 5;
	umask(0);
	m->n[0].type = N_DIR;
	m->n[0].perm = 0755;
	m->n[0].parent = -1;
	for (int k = 0; k < NXA; k++)
		m->n[0].xlen[k] = -1;
	cr_assert_eq(chmod(fx_src, 0755), 0);
	return m;
}

/* One random change (no pin, release or reopen). */
static void op_change(struct tmodel *m)
{
	unsigned op = rnd(m, 85);
	if (op < 12)
		op_create(m, N_REG);
	else if (op < 18)
		op_create(m, N_DIR);
	else if (op < 21)
		op_create(m, N_LNK);
	else if (op < 22)
		op_create(m, N_FIFO);
	else if (op < 36)
		op_write(m);
	else if (op < 42)
		op_truncate(m);
	else if (op < 52)
		op_unlink(m, 0);
	else if (op < 56)
		op_unlink(m, 1);
	else if (op < 61)
		op_link(m);
	else if (op < 73)
		op_rename(m);
	else
		op_meta(m);
}

static void model_end(struct tmodel *m)
{
	fx_check();
	while (m->ns)
		op_release(m);
	fx_check();
	for (int i = 0; i < MAXN; i++)
		store_file_put(m->n[i].sf);
	struct store_stats s = fx_stats();
	cr_assert_eq(s.extents, 0, "extents left after releasing every snapshot");
	free(m);
}

static void run_model(uint64_t seed, unsigned steps)
{
	struct tmodel *m = model_new(seed);
	const char *l = getenv("SNAPFS_LONG");
	if (l && *l == '1')
		steps *= 20;
#if defined(__SANITIZE_ADDRESS__)
	else
		steps /= 5;
#endif
	for (m->step = 0; m->step < steps; m->step++) {
		unsigned op = rnd(m, 100);
		if (op < 85)
			op_change(m);
		else if (op < 92)
			op_pin(m);
		else if (op < 97)
			op_release(m);
		else
			op_reopen(m);
		verify(m);
		if (m->step % 50 == 0)
			fx_check();
	}
	model_end(m);
}

static void setup512(void)
{
	fx_setup_bs(MBS);
}

TestSuite(tree, .init = setup512, .fini = fx_teardown, .timeout = 600);

Test(tree, model_seed_1)
{
	run_model(1, 500);
}

Test(tree, model_seed_2)
{
	run_model(2, 500);
}

Test(tree, model_seed_3)
{
	run_model(3, 500);
}

Test(tree, model_seed_4)
{
	run_model(0x5eed, 500);
}

/* 1,000 live tree snapshots, each followed by a few changes: sampled
 * snapshots checked as they accumulate, every one at the end and after a
 * reopen, then a release of every other one and all of them. */
Test(tree, thousand_live_trees)
{
	struct tmodel *m = model_new(42);
	m->maxsnap = MAXSNAP;
#if defined(__SANITIZE_ADDRESS__)
	m->maxsnap = MAXSNAP / 5;
#endif
	for (m->step = 0; m->ns < m->maxsnap; m->step++) {
		op_pin(m);
		for (int k = 0; k < 3; k++)
			op_change(m);
		if (m->ns % 100 == 0)
			for (int k = 0; k < 5; k++)
				verify_snap(m, (int)rnd(m, (unsigned)m->ns));
	}
	for (int i = 0; i < m->ns; i++)
		verify_snap(m, i);
	op_reopen(m);
	verify(m);
	for (int i = m->ns - 1; i >= 0; i -= 2) {
		OK(store_release(fx_st, m->s[i].id), "release");
		free(m->s[i].man);
		m->s[i] = m->s[--m->ns];
	}
	fx_check();
	verify(m);
	model_end(m);
}

/* store_check reports namespace rows that break the invariants: overlapping
 * ranges of one node, a row no tree snapshot needs, an unknown child. */
Test(tree, check_reports_bad_rows)
{
	struct tmodel *m = model_new(7);
	op_create(m, N_REG);
	op_create(m, N_DIR);
	op_pin(m);
	for (int k = 0; k < 20; k++)
		op_change(m);
	fx_check();
	for (int i = 0; i < MAXN; i++) {
		store_file_put(m->n[i].sf);
		m->n[i].sf = NULL;
	}
	store_close(fx_st);
	fx_st = NULL;
	char db[1024];
	tu_path(db, sizeof(db), fx_dir, "index.db");
	sqlite3 *h;
	cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
	int n = 0;
	sqlite3_stmt *q;
	cr_assert_eq(sqlite3_prepare_v2(h, "SELECT count(*) FROM ns_attr", -1, &q, NULL), 0);
	cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
	n = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	cr_assert(n > 0, "the changes left no attribute row");
	cr_assert_eq(
	    sqlite3_exec(h,
			 "INSERT INTO ns_attr(nid, efrom, eto, mode) VALUES "
			 "(123456, 0, 2, 0), (123456, 1, 2, 0);"
			 "INSERT INTO ns_entry(dir, name, efrom, eto, child, ctype) VALUES "
			 "(1, 'zz', 0, 1, 999999, 0);",
			 NULL, NULL, NULL),
	    SQLITE_OK, "%s", sqlite3_errmsg(h));
	sqlite3_close(h);
	fx_open_bs(MBS, 0);
	int problems = store_check(fx_st, NULL, NULL);
	cr_assert_geq(problems, 2, "store_check found %d problems", problems);
	free(m->s[0].man);
	free(m);
}

static int count_rows(const char *table)
{
	char db[1024], q[128];
	tu_path(db, sizeof(db), fx_dir, "index.db");
	sqlite3 *h;
	sqlite3_stmt *s;
	cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
	snprintf(q, sizeof(q), "SELECT count(*) FROM %s", table);
	cr_assert_eq(sqlite3_prepare_v2(h, q, -1, &s, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
	int n = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(h);
	return n;
}

/* Nodes born after every live tree snapshot cost nothing: creating a
 * directory under a pinned tree records the parent's attributes and the new
 * name's absence, and nothing for what is then created and changed inside
 * it (the daemon keeps the references from creation, as here). */
Test(tree, nodes_born_after_the_pin_cost_no_rows)
{
	struct tmodel *m = model_new(11);
	op_pin(m);
	m->maxsnap = m->ns; /* no more pins */
	char name[8] = "n";
	cr_assert_lt(ent_find(m, 0, name), 0);
	/* mkdir n at the root, through the hooks */
	int d = new_node(m, N_DIR);
	char p[1024];
	save(m, 0);
	entry(m, 0, name, -1);
	tu_path(p, sizeof(p), fx_src, name);
	cr_assert_eq(mkdir(p, 0755), 0);
	m->n[d].perm = 0755;
	born(m, d, p);
	ent_add(m, 0, name, d);
	int before_attr = count_rows("ns_attr"), before_ent = count_rows("ns_entry");
	cr_assert_eq(before_attr, 1, "the root's attributes: %d rows", before_attr);
	cr_assert_eq(before_ent, 1, "the new name's absence: %d rows", before_ent);
	for (int k = 0; k < 5; k++) { /* files inside n, written, chmod'ed, renamed */
		char fn[8];
		snprintf(fn, sizeof(fn), "f%d", k);
		int x = new_node(m, N_REG);
		save(m, d);
		entry(m, d, fn, -1);
		char fp[1100];
		snprintf(fp, sizeof(fp), "%s/%s", p, fn);
		cr_assert_eq(tu_write_file(fp, "abc", 3), 0);
		born(m, x, fp);
		memcpy(m->n[x].data, "abc", 3);
		m->n[x].size = 3;
		m->n[x].perm = 0644;
		ent_add(m, d, fn, x);
		save(m, x);
		cr_assert_eq(chmod(fp, 0600), 0);
		m->n[x].perm = 0600;
	}
	cr_assert_eq(count_rows("ns_attr"), before_attr);
	cr_assert_eq(count_rows("ns_entry"), before_ent);
	verify(m);
	model_end(m);
}
