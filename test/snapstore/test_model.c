// SPDX-License-Identifier: MIT
/*
 * Model-based randomized test: random writes, truncates, punches, unlinks,
 * renames-over, pins of 1-3 files, releases and close-and-reopen, against an
 * in-memory model of every file's bytes and every live snapshot's bytes.
 * After every step every live snapshot, read through the store, must equal
 * the model byte for byte, and what store_snap_changed reports must cover
 * every byte that differs from the live file. SNAPFS_LONG=1 runs 20x longer;
 * a failure names the seed and the step.
 */
#include "fixture.h"

#define MBS	512u
#define NSLOT	4
#define MAXSZ	(8 * MBS)
#define MAXSNAP 6

struct mfile {
	int fd; /* -1: slot empty */
	struct store_file *sf;
	unsigned char data[MAXSZ + MBS];
	size_t size;
};

struct msnapf {
	uint64_t fid;
	unsigned char data[MAXSZ + MBS];
	size_t size;
};

struct msnap {
	uint64_t id;
	int n;
	struct msnapf f[3];
};

struct model {
	uint64_t seed, rng, step;
	struct mfile f[NSLOT];
	struct msnap s[MAXSNAP];
	int ns;
	int live; /* files ever created, for names */
};

static unsigned rnd(struct model *m, unsigned n)
{
	return (unsigned)(tu_rand(&m->rng) % n);
}

static void slot_path(int i, char *p, size_t len)
{
	char name[16];
	snprintf(name, sizeof(name), "f%d", i);
	tu_path(p, len, fx_src, name);
}

static void create(struct model *m, int i)
{
	char p[1024];
	slot_path(i, p, sizeof(p));
	struct mfile *f = &m->f[i];
	f->fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
	cr_assert(f->fd >= 0);
	cr_assert_eq(store_file_get(fx_st, f->fd, &f->sf), 0);
	f->size = rnd(m, MAXSZ);
	tu_fill(f->data, f->size, tu_rand(&m->rng));
	fx_pwrite(f->fd, f->data, f->size, 0);
}

static void drop(struct mfile *f)
{
	store_file_put(f->sf);
	close(f->fd);
	f->fd = -1;
	f->sf = NULL;
}

#define CHECK_RC(rc, what)                                                                         \
	cr_assert_eq((rc), 0, "seed %lu step %lu: %s: %s", (unsigned long)m->seed,                 \
		     (unsigned long)m->step, what, strerror(-(rc)))

static void op_write(struct model *m, struct mfile *f)
{
	size_t off = rnd(m, MAXSZ), len = 1 + rnd(m, 3 * MBS);
	if (off + len > MAXSZ)
		len = MAXSZ - off;
	unsigned char buf[3 * MBS];
	tu_fill(buf, len, tu_rand(&m->rng));
	store_file_wrlock(f->sf);
	int rc = store_cow_range(f->sf, f->fd, off, len);
	CHECK_RC(rc, "cow_range");
	fx_pwrite(f->fd, buf, len, (off_t)off);
	store_file_unlock(f->sf);
	if (off > f->size)
		memset(f->data + f->size, 0, off - f->size);
	memcpy(f->data + off, buf, len);
	if (off + len > f->size)
		f->size = off + len;
}

static void op_truncate(struct model *m, struct mfile *f)
{
	size_t ns = rnd(m, MAXSZ + 1);
	store_file_wrlock(f->sf);
	int rc = store_cow_truncate(f->sf, f->fd, ns);
	CHECK_RC(rc, "cow_truncate");
	cr_assert_eq(ftruncate(f->fd, (off_t)ns), 0);
	store_file_unlock(f->sf);
	if (ns > f->size)
		memset(f->data + f->size, 0, ns - f->size);
	f->size = ns;
}

static void op_punch(struct model *m, struct mfile *f)
{
	size_t off = rnd(m, MAXSZ), len = 1 + rnd(m, 4 * MBS);
	store_file_wrlock(f->sf);
	int rc = store_cow_range(f->sf, f->fd, off, len);
	CHECK_RC(rc, "cow_range(punch)");
	cr_assert_eq(
	    fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len),
	    0);
	store_file_unlock(f->sf);
	for (size_t i = off; i < off + len && i < f->size; i++)
		f->data[i] = 0;
}

static void op_unlink(struct model *m, int i)
{
	struct mfile *f = &m->f[i];
	char p[1024];
	slot_path(i, p, sizeof(p));
	store_file_wrlock(f->sf);
	int rc = store_cow_unlink(f->sf, f->fd);
	CHECK_RC(rc, "cow_unlink");
	cr_assert_eq(unlink(p), 0);
	store_file_unlock(f->sf);
	drop(f);
}

static void op_rename(struct model *m, int a, int b)
{
	char pa[1024], pb[1024];
	slot_path(a, pa, sizeof(pa));
	slot_path(b, pb, sizeof(pb));
	struct mfile *fb = &m->f[b];
	if (fb->fd >= 0) {
		store_file_wrlock(fb->sf);
		int rc = store_cow_unlink(fb->sf, fb->fd);
		CHECK_RC(rc, "cow_unlink(rename)");
		cr_assert_eq(rename(pa, pb), 0);
		store_file_unlock(fb->sf);
		drop(fb);
	} else {
		cr_assert_eq(rename(pa, pb), 0);
	}
	memcpy(fb, &m->f[a], sizeof(*fb));
	m->f[a].fd = -1;
	m->f[a].sf = NULL;
}

static void op_pin(struct model *m)
{
	int idx[3], n = 0;
	int want = 1 + rnd(m, 3);
	for (int k = 0; k < NSLOT && n < want; k++) {
		int i = (int)rnd(m, NSLOT);
		int dup = 0;
		for (int j = 0; j < n; j++)
			dup |= idx[j] == i;
		if (!dup && m->f[i].fd >= 0)
			idx[n++] = i;
	}
	if (!n)
		return;
	if (m->ns == MAXSNAP)
		return;
	struct store_pin_file pf[3];
	char names[3][16];
	for (int j = 0; j < n; j++) {
		snprintf(names[j], sizeof(names[j]), "f%d", idx[j]);
		pf[j] = (struct store_pin_file){
		    .sf = m->f[idx[j]].sf, .fd = m->f[idx[j]].fd, .path = names[j]};
	}
	struct store_pin p = {.kind = rnd(m, 4) ? STORE_PINNED : STORE_EPHEMERAL};
	struct msnap *s = &m->s[m->ns];
	int rc = store_pin(fx_st, &p, pf, (size_t)n, &s->id);
	CHECK_RC(rc, "pin");
	s->n = n;
	for (int j = 0; j < n; j++) {
		struct mfile *f = &m->f[idx[j]];
		s->f[j].fid = store_file_fid(f->sf);
		s->f[j].size = f->size;
		memcpy(s->f[j].data, f->data, f->size);
	}
	/* ephemeral snapshots do not survive a reopen: remember the kind */
	s->f[0].data[MAXSZ] = p.kind == STORE_EPHEMERAL;
	m->ns++;
}

static void op_release(struct model *m)
{
	if (!m->ns)
		return;
	int i = (int)rnd(m, (unsigned)m->ns);
	int rc = store_release(fx_st, m->s[i].id);
	CHECK_RC(rc, "release");
	m->s[i] = m->s[--m->ns];
}

static void op_reopen(struct model *m)
{
	for (int i = 0; i < NSLOT; i++)
		if (m->f[i].fd >= 0)
			store_file_put(m->f[i].sf);
	store_close(fx_st);
	fx_st = NULL;
	fx_open_bs(MBS, 0);
	for (int i = 0; i < NSLOT; i++)
		if (m->f[i].fd >= 0)
			cr_assert_eq(store_file_get(fx_st, m->f[i].fd, &m->f[i].sf), 0);
	for (int i = 0; i < m->ns;)
		if (m->s[i].f[0].data[MAXSZ])
			m->s[i] = m->s[--m->ns];
		else
			i++;
}

struct chg {
	unsigned char mark[MAXSZ * 2];
};

static int chg_cb(void *arg, uint64_t off, uint64_t len)
{
	struct chg *c = arg;
	for (uint64_t i = off; i < off + len && i < sizeof(c->mark); i++)
		c->mark[i] = 1;
	return 0;
}

static struct mfile *live_of(struct model *m, uint64_t fid)
{
	for (int i = 0; i < NSLOT; i++)
		if (m->f[i].fd >= 0 && store_file_fid(m->f[i].sf) == fid)
			return &m->f[i];
	return NULL;
}

static void verify(struct model *m, int deep)
{
	unsigned char buf[MAXSZ + MBS];
	for (int i = 0; i < m->ns; i++) {
		struct msnap *s = &m->s[i];
		for (int j = 0; j < s->n; j++) {
			struct msnapf *f = &s->f[j];
			size_t off = deep ? 0 : rnd(m, MAXSZ);
			ssize_t n = store_snap_read(fx_st, s->id, f->fid, buf, sizeof(buf), off);
			size_t want = off < f->size ? f->size - off : 0;
			cr_assert_eq(
			    n, (ssize_t)want,
			    "seed %lu step %lu: snapshot %lu fid %lu read at %zu: %zd, want %zu",
			    (unsigned long)m->seed, (unsigned long)m->step, (unsigned long)s->id,
			    (unsigned long)f->fid, off, n, want);
			for (size_t k = 0; k < want; k++)
				if (buf[k] != f->data[off + k])
					cr_assert_fail(
					    "seed %lu step %lu: snapshot %lu fid %lu byte %zu:"
					    " %#x, want %#x",
					    (unsigned long)m->seed, (unsigned long)m->step,
					    (unsigned long)s->id, (unsigned long)f->fid, off + k,
					    buf[k], f->data[off + k]);
			if (!deep)
				continue;
			struct mfile *lf = live_of(m, f->fid);
			static struct chg c;
			memset(&c, 0, sizeof(c));
			int rc = store_snap_changed(fx_st, s->id, f->fid, chg_cb, &c);
			CHECK_RC(rc, "snap_changed");
			if (!lf)
				continue; /* detached: everything reported */
			size_t top = lf->size > f->size ? lf->size : f->size;
			for (size_t k = 0; k < top; k++) {
				int differ =
				    k >= lf->size || k >= f->size || lf->data[k] != f->data[k];
				if (differ && !c.mark[k])
					cr_assert_fail(
					    "seed %lu step %lu: snapshot %lu fid %lu byte %zu"
					    " changed but not reported",
					    (unsigned long)m->seed, (unsigned long)m->step,
					    (unsigned long)s->id, (unsigned long)f->fid, k);
			}
		}
	}
}

static uint64_t steps_for(uint64_t base)
{
	const char *l = getenv("SNAPFS_LONG");
	if (l && *l == '1')
		return base * 20;
#if defined(__SANITIZE_ADDRESS__)
	return base / 10;
#else
	const char *a = getenv("SNAPFS_ASAN");
	return a && *a == '1' ? base / 10 : base;
#endif
}

static void run_model(uint64_t seed, uint64_t steps)
{
	static struct model mm;
	struct model *m = &mm;
	memset(m, 0, sizeof(*m));
	m->seed = seed;
	m->rng = seed * 0x9E3779B97F4A7C15ull + 1;
	for (int i = 0; i < NSLOT; i++)
		m->f[i].fd = -1;
	for (m->step = 0; m->step < steps; m->step++) {
		int i = (int)rnd(m, NSLOT);
		struct mfile *f = &m->f[i];
		unsigned op = rnd(m, 1000);
		if (f->fd < 0) {
			create(m, i);
		} else if (op < 400) {
			op_write(m, f);
		} else if (op < 500) {
			op_truncate(m, f);
		} else if (op < 560) {
			op_punch(m, f);
		} else if (op < 600) {
			op_unlink(m, i);
		} else if (op < 640) {
			op_rename(m, i, (i + 1 + (int)rnd(m, NSLOT - 1)) % NSLOT);
		} else if (op < 800) {
			op_pin(m);
		} else if (op < 960) {
			op_release(m);
		} else if (op < 962) {
			op_reopen(m);
		}
		verify(m, m->step % 64 == 0);
		if (m->step % 2000 == 0)
			fx_check();
	}
	/* Release everything: nothing may stay behind. */
	while (m->ns)
		op_release(m);
	for (int i = 0; i < NSLOT; i++)
		if (m->f[i].fd >= 0)
			drop(&m->f[i]);
	fx_check();
	struct store_stats s = fx_stats();
	cr_assert_eq(s.extents, 0, "seed %lu: %lu extents left after releasing everything",
		     (unsigned long)seed, (unsigned long)s.extents);
	cr_assert_eq(s.bytes_preserved, 0);
}

static void setup512(void)
{
	fx_setup_bs(MBS);
}

TestSuite(model, .init = setup512, .fini = fx_teardown, .timeout = 600);

Test(model, seed_1)
{
	run_model(1, steps_for(50000));
}
Test(model, seed_2)
{
	run_model(2, steps_for(50000));
}
Test(model, seed_3)
{
	run_model(3, steps_for(50000));
}
Test(model, seed_4)
{
	run_model(4, steps_for(50000));
}
Test(model, seed_5)
{
	run_model(5, steps_for(50000));
}
Test(model, seed_6)
{
	run_model(6, steps_for(50000));
}
