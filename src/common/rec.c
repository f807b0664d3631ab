// SPDX-License-Identifier: MIT
/*
 * rec.h's codec. Variable-length records (SHOW, DIFF, RESTORE) are a
 * header, an array (DIFF's ranges), a NUL-terminated path and zero padding
 * to 8 bytes, reclen bytes in all; LIST's records have a fixed size; CHECK
 * sends NUL-terminated lines. Headers and ranges are copied with memcpy:
 * the read side never makes a struct pointer into data.
 */
#include "rec.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#define ALIGN8(x) (((x) + 7) & ~(size_t)7)

/* Room for a record of len bytes (before padding): where it goes, or NULL. */
static char *put_room(struct snapfs_req *r, size_t len)
{
	assert(r->len % 8 == 0);
	if (r->len > sizeof(r->data) || len > sizeof(r->data) - r->len ||
	    ALIGN8(len) > sizeof(r->data) - r->len)
		return NULL;
	char *p = r->data + r->len;
	memset(p, 0, ALIGN8(len));
	r->len += (uint32_t)ALIGN8(len);
	r->count++;
	return p;
}

/* A header of hlen bytes whose reclen field is at reclen_at, arrays of
 * alen bytes from a, then path. */
static int put_var(struct snapfs_req *r, const void *h, size_t hlen, size_t reclen_at,
		   const void *a, size_t alen, const char *path)
{
	size_t plen = strlen(path) + 1;
	if (plen > sizeof(r->data) || alen > sizeof(r->data))
		return -ENOSPC;
	size_t len = hlen + alen + plen;
	char *p = put_room(r, len);
	if (!p)
		return -ENOSPC;
	uint32_t reclen = (uint32_t)ALIGN8(len);
	memcpy(p, h, hlen);
	memcpy(p + reclen_at, &reclen, sizeof(reclen));
	if (alen)
		memcpy(p + hlen, a, alen);
	memcpy(p + hlen + alen, path, plen);
	return 0;
}

int rec_put_file(struct snapfs_req *r, const struct snapfs_rec_file *f, const char *path)
{
	return put_var(r, f, sizeof(*f), offsetof(struct snapfs_rec_file, reclen), NULL, 0, path);
}

int rec_put_diff(struct snapfs_req *r, const struct snapfs_rec_diff *d,
		 const struct snapfs_range *v, const char *path)
{
	if (d->nranges > sizeof(r->data) / sizeof(*v))
		return -ENOSPC;
	return put_var(r, d, sizeof(*d), offsetof(struct snapfs_rec_diff, reclen), v,
		       (size_t)d->nranges * sizeof(*v), path);
}

int rec_put_restore(struct snapfs_req *r, const struct snapfs_rec_restore *s, const char *path)
{
	return put_var(r, s, sizeof(*s), offsetof(struct snapfs_rec_restore, reclen), NULL, 0,
		       path);
}

int rec_put_snap(struct snapfs_req *r, const struct snapfs_rec_snap *s)
{
	assert(r->len == r->count * sizeof(*s));
	char *p = put_room(r, sizeof(*s));
	if (!p)
		return -ENOSPC;
	memcpy(p, s, sizeof(*s));
	return 0;
}

int rec_put_line(struct snapfs_req *r, const char *line, size_t n)
{
	if (r->len > sizeof(r->data) || n >= sizeof(r->data) - r->len)
		return -ENOSPC;
	memcpy(r->data + r->len, line, n);
	r->data[r->len + n] = 0;
	r->len += (uint32_t)n + 1;
	r->count++;
	return 0;
}

ssize_t rec_diff_fit(const struct snapfs_req *r, size_t plen)
{
	size_t head = sizeof(struct snapfs_rec_diff);
	if (r->len > sizeof(r->data))
		return -ENOSPC;
	/* Records start on 8-byte boundaries and the data ends on one, so a
	 * record fits when its unpadded length does. */
	size_t room = (sizeof(r->data) - r->len) & ~(size_t)7;
	if (plen > room || head > room - plen)
		return -ENOSPC;
	return (ssize_t)((room - plen - head) / sizeof(struct snapfs_range));
}

void rec_iter_init(struct rec_iter *it, const struct snapfs_req *r)
{
	*it = (struct rec_iter){.r = r};
}

/* The bytes of the answer left to read, or -1 when r->len lies. */
static ssize_t iter_left(const struct rec_iter *it)
{
	if (it->r->len > sizeof(it->r->data) || it->off > it->r->len)
		return -1;
	return (ssize_t)(it->r->len - it->off);
}

/*
 * The next variable-length record: its header (hlen bytes, reclen field at
 * reclen_at) copied to h, its start in *rec and its reclen. 1, 0 at the
 * end, -EPROTO.
 */
static int next_var(struct rec_iter *it, void *h, size_t hlen, size_t reclen_at, const char **rec,
		    uint32_t *reclen)
{
	if (it->seen == it->r->count)
		return 0;
	ssize_t left = iter_left(it);
	if (left < 0 || hlen > (size_t)left)
		return -EPROTO;
	const char *p = it->r->data + it->off;
	memcpy(reclen, p + reclen_at, sizeof(*reclen));
	if (*reclen < hlen + 1 || *reclen > (size_t)left || *reclen % 8)
		return -EPROTO;
	memcpy(h, p, hlen);
	*rec = p;
	it->off += *reclen;
	it->seen++;
	return 1;
}

/* The path at path_at of a record of reclen bytes at rec: NULL when it has
 * no NUL inside the record. */
static const char *var_path(const char *rec, size_t path_at, uint32_t reclen)
{
	if (path_at >= reclen || !memchr(rec + path_at, 0, reclen - path_at))
		return NULL;
	return rec + path_at;
}

int rec_next_file(struct rec_iter *it, struct snapfs_rec_file *f, const char **path)
{
	const char *rec;
	uint32_t reclen;
	int rc =
	    next_var(it, f, sizeof(*f), offsetof(struct snapfs_rec_file, reclen), &rec, &reclen);
	if (rc <= 0)
		return rc;
	if (!(*path = var_path(rec, sizeof(*f), reclen)))
		return -EPROTO;
	return 1;
}

int rec_next_diff(struct rec_iter *it, struct snapfs_rec_diff *d, const void **ranges,
		  const char **path)
{
	const char *rec;
	uint32_t reclen;
	int rc =
	    next_var(it, d, sizeof(*d), offsetof(struct snapfs_rec_diff, reclen), &rec, &reclen);
	if (rc <= 0)
		return rc;
	/* next_var checked reclen > sizeof(*d) */
	if (d->nranges > (reclen - sizeof(*d) - 1) / sizeof(struct snapfs_range))
		return -EPROTO;
	size_t path_at = sizeof(*d) + (size_t)d->nranges * sizeof(struct snapfs_range);
	if (!(*path = var_path(rec, path_at, reclen)))
		return -EPROTO;
	*ranges = rec + sizeof(*d);
	return 1;
}

int rec_next_restore(struct rec_iter *it, struct snapfs_rec_restore *s, const char **path)
{
	const char *rec;
	uint32_t reclen;
	int rc =
	    next_var(it, s, sizeof(*s), offsetof(struct snapfs_rec_restore, reclen), &rec, &reclen);
	if (rc <= 0)
		return rc;
	if (!(*path = var_path(rec, sizeof(*s), reclen)))
		return -EPROTO;
	return 1;
}

int rec_next_snap(struct rec_iter *it, struct snapfs_rec_snap *s)
{
	if (it->seen == it->r->count)
		return 0;
	ssize_t left = iter_left(it);
	if (left < 0 || sizeof(*s) > (size_t)left)
		return -EPROTO;
	memcpy(s, it->r->data + it->off, sizeof(*s));
	s->label[sizeof(s->label) - 1] = 0;
	it->off += sizeof(*s);
	it->seen++;
	return 1;
}

int rec_next_line(struct rec_iter *it, const char **line)
{
	if (it->seen == it->r->count)
		return 0;
	ssize_t left = iter_left(it);
	if (left <= 0)
		return -EPROTO;
	const char *p = it->r->data + it->off;
	const char *nul = memchr(p, 0, (size_t)left);
	if (!nul)
		return -EPROTO;
	*line = p;
	it->off += (size_t)(nul - p) + 1;
	it->seen++;
	return 1;
}

struct snapfs_range rec_range(const void *ranges, uint32_t k)
{
	struct snapfs_range rg;
	memcpy(&rg, (const char *)ranges + (size_t)k * sizeof(rg), sizeof(rg));
	return rg;
}
