// SPDX-License-Identifier: MIT
/*
 * snapctl's output, as zfs prints: sizes (nicenum), tables with a header
 * and aligned columns or, with -H, tab-separated rows without one, and
 * JSON with an output_version. Results go to stdout only.
 */
#include "snapctl_i.h"
#include "vec.h"

#include <err.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define JSON_VERS_MAJOR 0
#define JSON_VERS_MINOR 1

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

void table_add(struct table *t, ...)
{
	if (vec_reserve(&t->cells, t->ncol))
		err(1, "%s", cmd);
	va_list ap;
	va_start(ap, t);
	for (size_t c = 0; c < t->ncol; c++) {
		const char *s = va_arg(ap, const char *);
		if (!(t->cells.v[t->cells.n++] = strdup(s)))
			err(1, "%s", cmd);
	}
	va_end(ap);
}

void table_print(struct table *t, int scripted)
{
	size_t w[16] = {0}, nrow = t->cells.n / t->ncol;
	char **cells = t->cells.v;
	for (size_t c = 0; c < t->ncol; c++) {
		w[c] = strlen(t->head[c]);
		for (size_t r = 0; r < nrow; r++)
			if (strlen(cells[r * t->ncol + c]) > w[c])
				w[c] = strlen(cells[r * t->ncol + c]);
	}
	for (size_t r = 0; r <= nrow; r++) {
		if (r == 0 && scripted)
			continue;
		for (size_t c = 0; c < t->ncol; c++) {
			const char *s = r ? cells[(r - 1) * t->ncol + c] : t->head[c];
			if (scripted)
				printf("%s%s", c ? "\t" : "", s);
			else if (c + 1 == t->ncol && t->align[c] == 'l')
				printf("%s%s", c ? "  " : "", s);
			else
				printf(t->align[c] == 'r' ? "%s%*s" : "%s%-*s", c ? "  " : "",
				       (int)w[c], s);
		}
		putchar('\n');
	}
	for (size_t i = 0; i < t->cells.n; i++)
		free(cells[i]);
	vec_release(&t->cells);
}

void json_str(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p == '\n')
			printf("\\n");
		else if (*p == '\t')
			printf("\\t");
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

void json_head(const char *command)
{
	printf("{\"output_version\": {\"command\": \"snapctl %s\", \"vers_major\": %d, "
	       "\"vers_minor\": %d}",
	       command, JSON_VERS_MAJOR, JSON_VERS_MINOR);
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

const char *snap_state(const struct snapfs_rec_snap *s)
{
	return s->state ? "stale" : s->kind ? "ephemeral" : s->expires ? "expiring" : "valid";
}
