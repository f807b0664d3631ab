// SPDX-License-Identifier: MIT
/*
 * snapctl's output. Every table goes through libsmartcols (util-linux's
 * table library behind lsblk and findmnt): aligned columns with a header
 * by default, -r its raw format, -J/--json its JSON, to which snapctl
 * adds an output_version member first. -H is zfs' scripted format, tab-
 * separated rows without header with every byte as it is, printed here
 * from the same rows. Rows are collected, sorted for -s (numbers by their
 * value, strings bytewise; ties keep the daemon's order), then handed to
 * libsmartcols. JSON stays valid whatever the bytes of a file name: a byte
 * that is not part of valid UTF-8 is written as the four characters \xNN.
 * Results go to stdout only.
 */
#include "snapctl_i.h"
#include "snapfs.h"
#include "vec.h"

#include <err.h>
#include <errno.h>
#include <inttypes.h>
#include <libsmartcols.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define JSON_VERS_MAJOR 1
#define JSON_VERS_MINOR 0

struct row {
	char **cells; /* ncol strings or NULL */
	int64_t *keys;
	size_t seq; /* the order it came in */
};

const char *nicenum(uint64_t n, char *buf, size_t len)
{
	static const char units[] = "BKMGTPE";
	int u = 0;
	uint64_t d = 1;
	while (u < 6 && n >= d * 1024) {
		d *= 1024;
		u++;
	}
	if (u == 0 || n % d == 0) {
		snprintf(buf, len, "%" PRIu64 "%c", n / d, units[u]);
		return buf;
	}
	for (int prec = 2; prec >= 0; prec--) {
		snprintf(buf, len, "%.*f%c", prec, (double)n / (double)d, units[u]);
		if (strlen(buf) <= 5)
			break;
	}
	return buf;
}

const char *fmt_time(int64_t t, int exact, char *buf, size_t len)
{
	if (exact) {
		snprintf(buf, len, "%" PRId64, t);
		return buf;
	}
	time_t tt = (time_t)t;
	struct tm tm;
	if (!localtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, len, "%" PRId64, t);
	return buf;
}

static void oom(void)
{
	err(1, "%s", cmd);
}

static ssize_t col_find(const struct col *cols, const char *name, size_t n)
{
	for (size_t i = 0; cols[i].name; i++)
		if (strlen(cols[i].name) == n && !strncasecmp(cols[i].name, name, n))
			return (ssize_t)i;
	return -1;
}

int table_init(struct table *t, const char *name, const struct col *cols, const struct outopts *o,
	       const char **bad)
{
	*t = (struct table){.cols = cols, .name = name, .o = o, .sortcol = -1};
	while (cols[t->ncol].name)
		t->ncol++;
	*bad = NULL;
	if (o->cols) {
		/* "+COLS" adds to the defaults, as lsblk -o does */
		const char *p = o->cols;
		if (*p == '+') {
			p++;
			for (size_t i = 0; i < t->ncol; i++)
				if (cols[i].flags & COL_DEFAULT)
					t->sel[t->nsel++] = i;
		}
		while (*p) {
			size_t n = strcspn(p, ",");
			ssize_t c = col_find(cols, p, n);
			if (c < 0 || t->nsel == sizeof(t->sel) / sizeof(t->sel[0])) {
				*bad = p;
				return -EINVAL;
			}
			t->sel[t->nsel++] = (size_t)c;
			p += n + (p[n] == ',');
		}
		if (!t->nsel) {
			*bad = o->cols;
			return -EINVAL;
		}
	} else {
		unsigned want = o->json ? COL_DEFAULT | COL_JSON : COL_DEFAULT;
		for (size_t i = 0; i < t->ncol; i++)
			if (cols[i].flags & want)
				t->sel[t->nsel++] = i;
	}
	if (o->sort) {
		t->sortcol = col_find(cols, o->sort, strlen(o->sort));
		if (t->sortcol < 0) {
			*bad = o->sort;
			return -EINVAL;
		}
	}
	return 0;
}

void table_add(struct table *t, const char *const cells[], const int64_t keys[])
{
	struct row r = {calloc(t->ncol, sizeof(char *)), calloc(t->ncol, sizeof(int64_t)),
			t->rows.n};
	if (!r.cells || !r.keys || vec_push(&t->rows, r))
		oom();
	for (size_t i = 0; i < t->ncol; i++) {
		if (cells[i] && !(r.cells[i] = strdup(cells[i])))
			oom();
		if (keys)
			r.keys[i] = keys[i];
	}
}

static const struct table *sort_t;

static int row_cmp(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	size_t c = (size_t)sort_t->sortcol;
	int d;
	if (sort_t->cols[c].flags & COL_NUM)
		d = (x->keys[c] > y->keys[c]) - (x->keys[c] < y->keys[c]);
	else
		d = strcmp(x->cells[c] ? x->cells[c] : "", y->cells[c] ? y->cells[c] : "");
	return d ? d : (x->seq > y->seq) - (x->seq < y->seq);
}

/* s as valid UTF-8: each byte outside a valid sequence becomes \xNN. */
static char *utf8_clean(const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(4 * n + 1), *d = out;
	if (!out)
		oom();
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		size_t len = *p < 0x80		   ? 1
			     : (*p & 0xe0) == 0xc0 ? 2
			     : (*p & 0xf0) == 0xe0 ? 3
			     : (*p & 0xf8) == 0xf0 ? 4
						   : 0;
		int ok = len > 0 && !(len == 2 && *p < 0xc2) && !(len == 4 && *p > 0xf4);
		for (size_t i = 1; ok && i < len; i++)
			ok = (p[i] & 0xc0) == 0x80;
		if (ok && len == 3)
			ok = !(*p == 0xe0 && p[1] < 0xa0) && !(*p == 0xed && p[1] >= 0xa0);
		if (ok && len == 4)
			ok = !(*p == 0xf0 && p[1] < 0x90) && !(*p == 0xf4 && p[1] >= 0x90);
		if (!ok) {
			d += sprintf(d, "\\x%02x", *p++);
			continue;
		}
		memcpy(d, p, len);
		d += len;
		p += len;
	}
	*d = 0;
	return out;
}

static void print_scripted(const struct table *t)
{
	for (size_t r = 0; r < t->rows.n; r++) {
		for (size_t i = 0; i < t->nsel; i++) {
			const char *s = t->rows.v[r].cells[t->sel[i]];
			printf("%s%s", i ? "\t" : "", s ? s : "-");
		}
		putchar('\n');
	}
}

static void print_scols(const struct table *t, const char *command)
{
	const struct outopts *o = t->o;
	struct libscols_table *tb = scols_new_table();
	if (!tb)
		oom();
	struct libscols_column *sc[32];
	for (size_t i = 0; i < t->nsel; i++) {
		const struct col *c = &t->cols[t->sel[i]];
		int fl = (c->flags & COL_RIGHT) ? SCOLS_FL_RIGHT : 0;
		if (!(sc[i] = scols_table_new_column(tb, c->name, 0, fl)))
			oom();
		if (o->json && (c->flags & COL_NUM))
			scols_column_set_json_type(sc[i], SCOLS_JSON_NUMBER);
	}
	for (size_t r = 0; r < t->rows.n; r++) {
		struct libscols_line *ln = scols_table_new_line(tb, NULL);
		if (!ln)
			oom();
		for (size_t i = 0; i < t->nsel; i++) {
			const char *s = t->rows.v[r].cells[t->sel[i]];
			char *v = s && o->json ? utf8_clean(s) : NULL;
			/* libsmartcols prints an empty cell as null in JSON */
			if (scols_line_set_data(ln, i, v ? v : s ? s : o->json ? "" : "-"))
				oom();
			free(v);
		}
	}
	char *buf = NULL;
	size_t len = 0;
	FILE *f = o->json ? open_memstream(&buf, &len) : NULL;
	if (o->json) {
		if (!f)
			oom();
		scols_table_enable_json(tb, 1);
		scols_table_set_name(tb, t->name);
		scols_table_set_stream(tb, f);
	} else if (o->raw) {
		scols_table_enable_raw(tb, 1);
	} else {
		scols_table_set_column_separator(tb, "  ");
	}
	if (t->rows.n || o->json) {
		scols_print_table(tb);
	} else {
		/* libsmartcols prints nothing for no rows; a header says what was asked */
		for (size_t i = 0; i < t->nsel; i++)
			printf("%s%s", i ? (o->raw ? " " : "  ") : "", t->cols[t->sel[i]].name);
		putchar('\n');
	}
	scols_unref_table(tb);
	if (f) {
		if (fclose(f) || !buf)
			oom();
		/* {"output_version": {...}, then libsmartcols' members */
		const char *body = strchr(buf, '{');
		printf("{\"output_version\": {\"command\": \"snapctl %s\", \"vers_major\": %d, "
		       "\"vers_minor\": %d},%s",
		       command, JSON_VERS_MAJOR, JSON_VERS_MINOR, body ? body + 1 : "}\n");
		free(buf);
	}
}

void table_print(struct table *t, const char *command)
{
	if (t->sortcol >= 0) {
		sort_t = t;
		qsort(t->rows.v, t->rows.n, sizeof(struct row), row_cmp);
	}
	if (t->o->scripted && !t->o->json)
		print_scripted(t);
	else
		print_scols(t, command);
	for (size_t r = 0; r < t->rows.n; r++) {
		for (size_t i = 0; i < t->ncol; i++)
			free(t->rows.v[r].cells[i]);
		free(t->rows.v[r].cells);
		free(t->rows.v[r].keys);
	}
	vec_release(&t->rows);
}

const char *owner_name(uint32_t uid, char *buf, size_t len)
{
	struct passwd *pw = getpwuid(uid);
	if (pw)
		strlcpy(buf, pw->pw_name, len);
	else
		snprintf(buf, len, "%u", uid);
	return buf;
}

const char *snap_state(uint32_t flags, int64_t expires)
{
	return (flags & SNAPFS_SNAP_STALE)	 ? "stale"
	       : (flags & SNAPFS_SNAP_EPHEMERAL) ? "ephemeral"
	       : expires			 ? "expiring"
						 : "valid";
}
