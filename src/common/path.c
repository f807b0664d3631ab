// SPDX-License-Identifier: MIT
/*
 * path.h's helpers. path_under walks both strings one component at a
 * time, without copying or allocating, so it may run in a signal handler
 * or under any lock.
 */
#include "path.h"

#include <stddef.h>
#include <string.h>

char *procfd_path(int fd, char buf[PROCFD_PATH_LEN])
{
	static const char pre[] = "/proc/self/fd/";
	char digits[12];
	size_t n = 0;
	unsigned int u = fd < 0 ? 0u - (unsigned int)fd : (unsigned int)fd;
	do {
		digits[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	memcpy(buf, pre, sizeof(pre) - 1);
	char *p = buf + sizeof(pre) - 1;
	if (fd < 0)
		*p++ = '-';
	while (n)
		*p++ = digits[--n];
	*p = 0;
	return buf;
}

/* The next component at *p, skipping slashes and "." components: its
 * start (its length in *len), or NULL at the end. */
static const char *next_comp(const char **p, size_t *len)
{
	for (;;) {
		const char *s = *p;
		while (*s == '/')
			s++;
		size_t n = strcspn(s, "/");
		*p = s + n;
		if (!n)
			return NULL;
		if (n == 1 && s[0] == '.')
			continue;
		*len = n;
		return s;
	}
}

static bool has_dotdot(const char *p)
{
	const char *c;
	size_t n;
	while ((c = next_comp(&p, &n)))
		if (n == 2 && c[0] == '.' && c[1] == '.')
			return true;
	return false;
}

bool path_under(const char *path, const char *dir)
{
	if ((path[0] == '/') != (dir[0] == '/') || has_dotdot(path) || has_dotdot(dir))
		return false;
	for (;;) {
		size_t dl, pl;
		const char *dc = next_comp(&dir, &dl);
		if (!dc)
			return true;
		const char *pc = next_comp(&path, &pl);
		if (!pc || pl != dl || memcmp(pc, dc, dl))
			return false;
	}
}
