// SPDX-License-Identifier: MIT
/*
 * A snapshot's namespace and the cheap lookups: store_snap_meta agrees with
 * store_snap_get after pins, releases, staleness and reopen;
 * store_snap_readdir and store_snap_isdir agree with a brute-force model
 * over random path sets whose names use bytes that sort before '/' (the
 * case where path order and name order differ), including resuming after
 * any name.
 */
#include "fixture.h"

#include <time.h>

TestSuite(dir, .init = fx_setup, .fini = fx_teardown, .timeout = 60);

static struct store_file *get(int fd)
{
	struct store_file *sf;
	cr_assert_eq(store_file_get(fx_st, fd, &sf), 0);
	return sf;
}

/* ---- store_snap_meta ---- */

static void expect_meta_matches(uint64_t id)
{
	struct store_snap s;
	struct store_snap_meta m;
	int rg = store_snap_get(fx_st, id, &s), rm = store_snap_meta(fx_st, id, &m);
	cr_assert_eq(rm, rg, "snap %lu: meta %d, get %d", (unsigned long)id, rm, rg);
	if (rg)
		return;
	cr_assert_eq(m.id, s.id);
	cr_assert_eq(m.epoch, s.epoch, "snap %lu: epoch %lu vs %lu", (unsigned long)id,
		     (unsigned long)m.epoch, (unsigned long)s.epoch);
	cr_assert_eq(m.created, s.created);
	cr_assert_eq(m.expires, s.expires);
	cr_assert_eq(m.uid, s.uid);
	cr_assert_eq(m.kind, s.kind);
	cr_assert_eq(m.state, s.state, "snap %lu: state %d vs %d", (unsigned long)id, m.state,
		     s.state);
}

static uint64_t pin_as(struct store_file *sf, int fd, uint32_t uid, int kind, int64_t expires)
{
	struct store_pin p = {.kind = kind, .uid = uid, .label = "m", .expires = expires};
	struct store_pin_file f = {.sf = sf, .fd = fd, .path = "f"};
	uint64_t id = 0;
	cr_assert_eq(store_pin(fx_st, &p, &f, 1, &id), 0);
	return id;
}

Test(dir, meta_agrees_with_get_through_pin_release_stale_reopen)
{
	int fa = fx_file("f"), fb = fx_file("g");
	fx_pwrite(fa, "abc", 3, 0);
	fx_pwrite(fb, "xyz", 3, 0);
	struct store_file *sa = get(fa), *sb = get(fb);
	uint64_t ids[6];
	ids[0] = pin_as(sa, fa, 10, STORE_PINNED, 0);
	ids[1] = pin_as(sb, fb, 11, STORE_PINNED, time(NULL) + 3600);
	ids[2] = pin_as(sa, fa, 12, STORE_EPHEMERAL, 0);
	ids[3] = pin_as(sa, fa, 13, STORE_PINNED, 0);
	ids[4] = pin_as(sb, fb, 14, STORE_PINNED, 0);
	ids[5] = ids[4] + 100; /* never existed */
	for (int i = 0; i < 6; i++)
		expect_meta_matches(ids[i]);
	cr_assert_eq(store_release(fx_st, ids[3]), 0);
	for (int i = 0; i < 6; i++)
		expect_meta_matches(ids[i]);
	struct store_snap_meta m;
	cr_assert_eq(store_snap_meta(fx_st, ids[3], &m), -ENOENT);
	store_file_put(sa);
	store_file_put(sb);
	close(fa);
	close(fb);

	/* Change g while closed: its snapshots go stale; the ephemeral one goes. */
	store_close(fx_st);
	fx_st = NULL;
	char p[1024];
	tu_path(p, sizeof(p), fx_src, "g");
	cr_assert_eq(tu_write_file(p, "changed", 7), 0);
	fx_open_bs(0, 0);
	for (int i = 0; i < 6; i++)
		expect_meta_matches(ids[i]);
	cr_assert_eq(store_snap_meta(fx_st, ids[1], &m), 0);
	cr_assert_eq(m.state, STORE_STALE);
	cr_assert_eq(m.uid, 11);
	cr_assert_eq(store_snap_meta(fx_st, ids[0], &m), 0);
	cr_assert_eq(m.state, STORE_VALID);
	cr_assert_eq(store_snap_meta(fx_st, ids[2], &m), -ENOENT);
	cr_assert_eq(store_release(fx_st, ids[1]), 0);
	for (int i = 0; i < 6; i++)
		expect_meta_matches(ids[i]);
}

/* ---- the namespace against a model ---- */

#define MAXP 400
#define PLEN 64

static char paths[MAXP][PLEN];
static int npaths;

/* Random paths: 1-4 components of 1-3 bytes from an alphabet with bytes
 * below, at and above '/'. */
static void make_paths(uint64_t *seed, int n)
{
	static const char alpha[] = "!-.0ab";
	npaths = 0;
	while (npaths < n) {
		char p[PLEN];
		size_t l = 0;
		int depth = 1 + (int)(tu_rand(seed) % 4);
		for (int d = 0; d < depth; d++) {
			if (d)
				p[l++] = '/';
			int cl = 1 + (int)(tu_rand(seed) % 3);
			for (int c = 0; c < cl; c++)
				p[l++] = alpha[tu_rand(seed) % (sizeof(alpha) - 1)];
		}
		p[l] = 0;
		int dup = 0;
		for (int i = 0; i < npaths && !dup; i++)
			dup = !strcmp(paths[i], p);
		if (!dup)
			strcpy(paths[npaths++], p);
	}
}

struct ent {
	char name[PLEN];
	int is_dir;
};

/* The model: entries of dir (prefix pre) sorted by name; a name that is
 * both a file and a directory prefix is a file. */
static int model_dir(const char *pre, struct ent *out)
{
	size_t pl = strlen(pre);
	int n = 0;
	for (int i = 0; i < npaths; i++) {
		if (strncmp(paths[i], pre, pl))
			continue;
		const char *nm = paths[i] + pl;
		const char *sl = strchr(nm, '/');
		size_t nl = sl ? (size_t)(sl - nm) : strlen(nm);
		int k;
		for (k = 0; k < n; k++)
			if (strlen(out[k].name) == nl && !strncmp(out[k].name, nm, nl))
				break;
		if (k == n) {
			memcpy(out[n].name, nm, nl);
			out[n].name[nl] = 0;
			out[n++].is_dir = 1;
		}
		if (!sl)
			out[k].is_dir = 0;
	}
	qsort(out, (size_t)n, sizeof(*out), (int (*)(const void *, const void *))strcmp);
	return n;
}

static int model_isdir(const char *p)
{
	if (!*p)
		return 1;
	size_t l = strlen(p);
	for (int i = 0; i < npaths; i++)
		if (!strncmp(paths[i], p, l) && paths[i][l] == '/')
			return 1;
	return 0;
}

static uint64_t the_fid;

struct got {
	struct ent e[MAXP];
	int n;
	uint64_t fid;
};

static int got_cb(void *arg, const char *name, int is_dir, uint64_t fid, const struct stat *st)
{
	struct got *g = arg;
	cr_assert(g->n < MAXP);
	cr_assert_lt(strlen(name), PLEN);
	strcpy(g->e[g->n].name, name);
	g->e[g->n++].is_dir = is_dir;
	if (is_dir) {
		cr_assert_eq(fid, 0);
		cr_assert_null(st);
	} else {
		cr_assert_eq(fid, g->fid);
		cr_assert_not_null(st);
		cr_assert(S_ISREG(st->st_mode));
	}
	return 0;
}

static void expect_listing(uint64_t id, const char *dir, const char *after)
{
	char pre[PLEN + 2];
	snprintf(pre, sizeof(pre), "%s%s", dir, *dir ? "/" : "");
	struct ent *want = calloc(MAXP, sizeof(*want));
	struct got *g = calloc(1, sizeof(*g));
	g->fid = the_fid;
	int n = model_dir(pre, want), k = 0;
	if (after)
		while (k < n && strcmp(want[k].name, after) <= 0)
			k++;
	int rc = store_snap_readdir(fx_st, id, dir, after, got_cb, g);
	cr_assert_eq(rc, 0, "readdir '%s': %d", dir, rc);
	cr_assert_eq(g->n, n - k, "readdir '%s' after '%s': %d entries, model %d", dir,
		     after ? after : "", g->n, n - k);
	for (int i = 0; i < g->n; i++) {
		cr_assert_str_eq(g->e[i].name, want[k + i].name, "readdir '%s' after '%s': #%d",
				 dir, after ? after : "", i);
		cr_assert_eq(g->e[i].is_dir, want[k + i].is_dir, "readdir '%s': '%s' is_dir", dir,
			     g->e[i].name);
	}
	free(want);
	free(g);
}

static int stop_cb(void *arg, const char *name, int is_dir, uint64_t fid, const struct stat *st)
{
	(void)name, (void)is_dir, (void)fid, (void)st;
	return ++*(int *)arg == 2 ? 77 : 0;
}

Test(dir, readdir_and_isdir_match_a_brute_force_model)
{
	int fd = fx_file("f");
	fx_pwrite(fd, "data", 4, 0);
	struct store_file *sf = get(fd);
	uint64_t seed = 42;
	for (int round = 0; round < 8; round++) {
		make_paths(&seed, round < 2 ? 10 + round * 20 : MAXP);
		struct store_pin_file *pf = calloc((size_t)npaths, sizeof(*pf));
		for (int i = 0; i < npaths; i++)
			pf[i] = (struct store_pin_file){.sf = sf, .fd = fd, .path = paths[i]};
		struct store_pin p = {.kind = STORE_PINNED};
		uint64_t id;
		cr_assert_eq(store_pin(fx_st, &p, pf, (size_t)npaths, &id), 0);
		free(pf);
		the_fid = store_file_fid(sf);

		/* Every directory the model knows, and every prefix of every path. */
		expect_listing(id, "", NULL);
		for (int i = 0; i < npaths; i++) {
			char d[PLEN];
			strcpy(d, paths[i]);
			for (char *s = strrchr(d, '/'); s; s = strrchr(d, '/')) {
				*s = 0;
				cr_assert_eq(store_snap_isdir(fx_st, id, d), 1, "isdir %s", d);
				expect_listing(id, d, NULL);
			}
			cr_assert_eq(store_snap_isdir(fx_st, id, paths[i]), model_isdir(paths[i]),
				     "isdir %s", paths[i]);
		}
		/* Resuming after every name of the root, and after names that are not
		 * there. */
		struct ent *root = calloc(MAXP, sizeof(*root));
		int nr = model_dir("", root);
		for (int i = 0; i < nr; i++)
			expect_listing(id, "", root[i].name);
		static const char *const odd[] = {"!",	"a",  "a!", "a-", "a.",
						  "a/", "b0", "zz", ".."};
		for (size_t i = 0; i < sizeof(odd) / sizeof(*odd); i++) {
			if (!strchr(odd[i], '/'))
				expect_listing(id, "", odd[i]);
			const char *q = strcmp(odd[i], "a/") ? odd[i] : "a";
			cr_assert_eq(store_snap_isdir(fx_st, id, odd[i]), model_isdir(q),
				     "isdir %s", odd[i]);
		}
		free(root);
		cr_assert_eq(store_snap_isdir(fx_st, id, ""), 1);
		/* Stop value passes through. */
		int cnt = 0;
		if (nr >= 2)
			cr_assert_eq(store_snap_readdir(fx_st, id, "", NULL, stop_cb, &cnt), 77);
		/* A file is not a directory; nothing is not one either. */
		for (int i = 0; i < npaths; i++)
			if (!model_isdir(paths[i])) {
				struct got *g = calloc(1, sizeof(*g));
				cr_assert_eq(
				    store_snap_readdir(fx_st, id, paths[i], NULL, got_cb, g),
				    -ENOTDIR);
				free(g);
				break;
			}
		cr_assert_eq(store_snap_readdir(fx_st, id, "zzz", NULL, got_cb, NULL), -ENOENT);
		cr_assert_eq(store_release(fx_st, id), 0);
		cr_assert_eq(store_snap_isdir(fx_st, id, ""), -ENOENT);
	}
	store_file_put(sf);
	close(fd);
	fx_check();
}
