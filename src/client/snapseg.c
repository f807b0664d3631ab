// SPDX-License-Identifier: MIT
/*
 * The deferred-I/O segment (docs/SEGMENT.md). A segment is an anonymous
 * MAP_NORESERVE region registered with its own userfaultfd in MISSING and
 * write-protect modes, served by one handler thread. snapseg_read() pins
 * an ephemeral snapshot of the file (struct snaphold) and records an
 * association "pages [s, e) of the segment show the snapshot at file offset
 * page address + delta"; nothing is copied. The first touch of such a page
 * is a MISSING fault: the handler preads the view file and installs the
 * bytes with UFFDIO_COPY, write-protected, so that the first store to the
 * page comes back as a WP fault and detaches it (a store to an unfilled
 * page arrives as a write MISSING fault: filled without protection and
 * detached at once). A snapshot whose last page detaches is dropped at
 * once. Pages without an association fill with zeros.
 *
 * Watch for: the handler holds seg->lock while it fills, so no thread may
 * touch segment memory while holding the lock (snapseg_write plans under
 * the lock and copies after). Under UFFD_USER_MODE_ONLY the kernel does
 * not fault segment pages in for a system call (EFAULT), so every byte
 * moved between files and the segment goes through a user-space bounce
 * buffer or UFFDIO_COPY.
 */
#include "snapfs.h"
#include "snapfs_proto.h"
#include "client_i.h"
#include "snapseg_i.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define PG	      4096UL
#define BOUNCE	      (1UL << 20) /* bounce buffers and the largest fill */
#define FILL_FIRST    16	  /* pages of the first sequential batch (64 KiB) */
#define FILL_MAX      (BOUNCE / PG)
#define WB_MIN_RUNS   8		    /* write-back: fewer runs go through write() */
#define WB_MAX_BYTES  (256UL << 20) /* and so do more bytes than this */
#define WB_KEEP_BYTES (32UL << 20)  /* a write-back buffer this small is kept */

/* One snapseg_read's snapshot and the pages that still show it. */
struct segsnap {
	struct snaphold h;
	int64_t delta;	      /* file offset of a byte = its address + delta */
	int advice;	      /* posix_fadvise mode set on h.view; handler only */
	uint64_t pages;	      /* pages still associated; protected by seg->lock */
	struct segsnap *next; /* protected by seg->lock */
};

/* Pages [s, e) (page indices from base) show snapshot r. */
struct segext {
	uintptr_t s, e;
	struct segsnap *r;
};

struct snapseg {
	char *base;
	size_t size;
	int uffd;
	char *fillbuf;		   /* protected by lock */
	struct snapfs_req *relreq; /* releases in the fault handler; protected by lock */
	pthread_mutex_t wb_lock;   /* protects wbfd, wbsize */
	int wbfd;		   /* write-back buffer kept between calls, -1: none */
	uint64_t wbsize;
	pthread_mutex_t lock;
	struct segext *ext;	 /* sorted, disjoint; protected by lock */
	size_t next, aext;	 /* protected by lock */
	struct segsnap *snaps;	 /* protected by lock */
	struct segsnap *zombies; /* dropped, to be freed outside the handler; lock */
	uintptr_t seq_end;	 /* first page after the last fill; protected by lock */
	size_t seq_batch;	 /* size of the last fill in pages; protected by lock */
	struct snapseg_stats st; /* protected by lock */
};

/* ---- the association map ---- */

/* Index of the first extent with e > pg. */
static size_t ext_find(const struct snapseg *seg, uintptr_t pg)
{
	size_t lo = 0, hi = seg->next;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (seg->ext[mid].e <= pg)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct segext *ext_lookup(struct snapseg *seg, uintptr_t pg)
{
	size_t i = ext_find(seg, pg);
	return i < seg->next && seg->ext[i].s <= pg ? &seg->ext[i] : NULL;
}

/* Grows with mmap/mremap: called in the fault handler too. */
static int ext_room(struct snapseg *seg, size_t more)
{
	if (seg->next + more <= seg->aext)
		return 0;
	size_t na = seg->aext ? seg->aext * 2 : PG / sizeof(*seg->ext);
	while (na < seg->next + more)
		na *= 2;
	void *v = seg->ext ? mremap(seg->ext, seg->aext * sizeof(*seg->ext), na * sizeof(*seg->ext),
				    MREMAP_MAYMOVE)
			   : mmap(NULL, na * sizeof(*seg->ext), PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (v == MAP_FAILED)
		return -ENOMEM;
	seg->ext = v;
	seg->aext = na;
	return 0;
}

static void snap_unlink(struct snapseg *seg, struct segsnap *r)
{
	struct segsnap **pp = &seg->snaps;
	while (*pp != r)
		pp = &(*pp)->next;
	*pp = r->next;
	snaphold_drop(&r->h, seg->relreq);
	r->next = seg->zombies;
	seg->zombies = r;
	seg->st.snapshots_held--;
}

/* Drop snapshots no page shows any more. */
static void snaps_reap(struct snapseg *seg)
{
	for (struct segsnap *r = seg->snaps, *n; r; r = n) {
		n = r->next;
		if (!r->pages)
			snap_unlink(seg, r);
	}
}

/* Detach pages [s, e). Needs room for one more extent (a split). */
static void ext_clear(struct snapseg *seg, uintptr_t s, uintptr_t e)
{
	size_t i = ext_find(seg, s);
	while (i < seg->next && seg->ext[i].s < e) {
		struct segext *x = &seg->ext[i];
		if (x->s < s && x->e > e) { /* split */
			memmove(x + 1, x, (seg->next - i) * sizeof(*x));
			seg->next++;
			x[1].s = e;
			x->e = s;
			x->r->pages -= e - s;
			return;
		}
		if (x->s < s) {
			x->r->pages -= x->e - s;
			x->e = s;
			i++;
		} else if (x->e > e) {
			x->r->pages -= e - x->s;
			x->s = e;
			return;
		} else {
			x->r->pages -= x->e - x->s;
			memmove(x, x + 1, (seg->next - i - 1) * sizeof(*x));
			seg->next--;
		}
	}
}

/* Pages [s, e) now show r (after ext_clear of the same range). */
static void ext_insert(struct snapseg *seg, uintptr_t s, uintptr_t e, struct segsnap *r)
{
	size_t i = ext_find(seg, s);
	memmove(&seg->ext[i + 1], &seg->ext[i], (seg->next - i) * sizeof(seg->ext[0]));
	seg->ext[i] = (struct segext){s, e, r};
	seg->next++;
	r->pages += e - s;
}

/* ---- the fault handler ---- */

/*
 * Faults are served on the thread that takes them: the userfaultfd is
 * opened with UFFD_FEATURE_SIGBUS, so a touch of a missing or
 * write-protected page raises SIGBUS in the faulting thread, whose handler
 * (on_bus) fills or detaches the page and returns; the access then runs
 * again. Nothing here may call what is not async-signal-safe: the maps
 * grow with mmap/mremap, a dropped snapshot is released with a request
 * buffer allocated beforehand, and its memory is freed later (zombies).
 */

/* Segments on_bus serves, and the SIGBUS disposition found before ours. */
static pthread_rwlock_t reg_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct snapseg **reg; /* protected by reg_lock */
static size_t nreg, areg;    /* protected by reg_lock */
static struct sigaction old_bus;
static bool bus_installed; /* protected by reg_lock */

static void wake(struct snapseg *seg, uintptr_t pg)
{
	struct uffdio_range wr = {(uintptr_t)(seg->base + pg * PG), PG};
	ioctl(seg->uffd, UFFDIO_WAKE, &wr);
}

/* Fill up to n pages at pg (all in extent x) from the snapshot. Returns
 * the pages filled (>= 1), 0 when pg was there already, or -errno when
 * nothing could be read or installed. Called with seg->lock held. */
static int fill(struct snapseg *seg, struct segext *x, uintptr_t pg, size_t n, bool wp)
{
	struct segsnap *r = x->r;
	off_t foff = (off_t)((int64_t)(uintptr_t)(seg->base + pg * PG) + r->delta);
	size_t got = 0;
	/* One page: no kernel read-ahead (it would read 16+ pages per fault).
	 * A batch: read-ahead on, or FUSE gets one request per page. Only
	 * fills through the view (not direct) care. */
	int advice = n == 1 ? POSIX_FADV_RANDOM : POSIX_FADV_SEQUENTIAL;
	if (r->h.direct_state <= 0 && r->advice != advice) {
		posix_fadvise(r->h.view, 0, 0, advice);
		r->advice = advice;
	}
	ssize_t k = foff < 0 ? -1 : snaphold_pread(&r->h, seg->fillbuf, n * PG, (uint64_t)foff);
	if (k > 0)
		got = (size_t)k;
	if (got < n * PG && (uint64_t)foff + got < r->h.size) {
		/* Short where the snapshot has bytes: keep the whole pages read. */
		if (got < PG)
			return -EIO;
		n = got / PG;
	}
	if (got < n * PG)
		memset(seg->fillbuf + got, 0, n * PG - got);
	seg->st.bytes_loaded += n * PG;
	struct uffdio_copy c = {
	    .dst = (uintptr_t)(seg->base + pg * PG),
	    .src = (uintptr_t)seg->fillbuf,
	    .len = n * PG,
	    .mode = wp ? UFFDIO_COPY_MODE_WP : 0,
	};
	for (;;) {
		if (ioctl(seg->uffd, UFFDIO_COPY, &c) == 0)
			return (int)n;
		if (errno == EEXIST) {
			wake(seg, pg);
			return c.copy > 0 ? (int)((uint64_t)c.copy / PG) : 0;
		}
		if (errno != EAGAIN)
			return -errno;
		if (c.copy > 0) {
			c.dst += (uint64_t)c.copy;
			c.src += (uint64_t)c.copy;
			c.len -= (uint64_t)c.copy;
		}
		c.copy = 0;
	}
}

/* A missing page: fill it (and, when the faults walk forward, the pages
 * after it). False when it cannot be filled. Called with seg->lock held. */
static bool on_missing(struct snapseg *seg, uintptr_t pg, bool write)
{
	seg->st.faults++;
	struct segext *x = ext_lookup(seg, pg);
	if (!x) {
		struct uffdio_zeropage z = {.range = {(uintptr_t)(seg->base + pg * PG), PG}};
		while (ioctl(seg->uffd, UFFDIO_ZEROPAGE, &z) && errno == EAGAIN)
			z.zeropage = 0;
		return true;
	}
	/* Batch when the faults walk forward, one page when they jump. */
	size_t n = 1;
	if (!write && pg == seg->seq_end) {
		n = seg->seq_batch < FILL_FIRST ? FILL_FIRST : seg->seq_batch * 2;
		if (n > FILL_MAX)
			n = FILL_MAX;
		if (n > x->e - pg)
			n = x->e - pg;
	}
	/* Detaching a page may split its extent: make room first. Without
	 * memory the page cannot be tracked, so it is not filled. */
	if (ext_room(seg, 1))
		return false;
	x = ext_lookup(seg, pg);
	int rc = fill(seg, x, pg, n, !write);
	if (rc < 0)
		return false;
	if (write && rc > 0) { /* the store that faults detaches the page */
		ext_clear(seg, pg, pg + 1);
		snaps_reap(seg);
	}
	if (rc > 0) {
		seg->seq_end = pg + (size_t)rc;
		seg->seq_batch = (size_t)rc;
	}
	return true;
}

/* A store to a filled, write-protected page: detach it and let the store
 * through. False when the detach cannot be recorded (a later write-back
 * would skip the page). Called with seg->lock held. */
static bool on_wp(struct snapseg *seg, uintptr_t pg)
{
	if (ext_lookup(seg, pg)) {
		if (ext_room(seg, 1))
			return false;
		ext_clear(seg, pg, pg + 1);
		snaps_reap(seg);
	}
	struct uffdio_writeprotect w = {.range = {(uintptr_t)(seg->base + pg * PG), PG}, .mode = 0};
	while (ioctl(seg->uffd, UFFDIO_WRITEPROTECT, &w) && errno == EAGAIN)
		;
	return true;
}

/* Was the faulting page present (a write-protect fault), and was it a store? */
static void fault_kind(void *ucv, const void *page, bool *present, bool *write)
{
#if defined(__x86_64__)
	/* The page-fault error code: bit 0 present, bit 1 write. */
	const ucontext_t *uc = ucv;
	long long err = uc->uc_mcontext.gregs[REG_ERR];
	*present = err & 1;
	*write = err & 2;
#else
	(void)ucv;
	unsigned char v = 0;
	*present = mincore((void *)page, PG, &v) == 0 && (v & 1);
	*write = false; /* a store to a missing page comes back as a WP fault */
#endif
}

/* Hand a SIGBUS that is not ours (or a page that cannot be filled) to the
 * disposition that was there before: the program's handler, or the
 * default action, which ends the process with SIGBUS. */
static void chain(int sig, siginfo_t *si, void *uc)
{
	if ((old_bus.sa_flags & SA_SIGINFO) && old_bus.sa_sigaction) {
		old_bus.sa_sigaction(sig, si, uc);
		return;
	}
	if (old_bus.sa_handler != SIG_DFL && old_bus.sa_handler != SIG_IGN) {
		old_bus.sa_handler(sig);
		return;
	}
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigaction(SIGBUS, &dfl, NULL);
	if (si->si_code <= 0) /* sent, not a fault: send it again */
		raise(sig);
	/* a fault: the access runs again and takes the default action */
}

static void on_bus(int sig, siginfo_t *si, void *uc)
{
	int e = errno;
	bool done = false, ours = false;
	uintptr_t a = (uintptr_t)si->si_addr;
	if (si->si_code > 0) {
		pthread_rwlock_rdlock(&reg_lock);
		for (size_t i = 0; i < nreg && !ours; i++) {
			struct snapseg *seg = reg[i];
			if (a - (uintptr_t)seg->base >= seg->size)
				continue;
			ours = true;
			uintptr_t pg = (a - (uintptr_t)seg->base) / PG;
			bool present, write;
			fault_kind(uc, seg->base + pg * PG, &present, &write);
			pthread_mutex_lock(&seg->lock);
			done = present ? on_wp(seg, pg) : on_missing(seg, pg, write);
			pthread_mutex_unlock(&seg->lock);
		}
		pthread_rwlock_unlock(&reg_lock);
	}
	if (!done)
		chain(sig, si, uc);
	errno = e;
}

static int reg_add(struct snapseg *seg)
{
	int rc = 0;
	pthread_rwlock_wrlock(&reg_lock);
	if (!bus_installed) {
		struct sigaction sa = {.sa_sigaction = on_bus,
				       .sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK};
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGBUS, &sa, &old_bus)) {
			rc = -1;
			goto out;
		}
		bus_installed = true;
	}
	if (nreg == areg) {
		size_t n = areg ? areg * 2 : 8;
		struct snapseg **v = reallocarray(reg, n, sizeof(*v));
		if (!v) {
			rc = -1;
			goto out;
		}
		reg = v;
		areg = n;
	}
	reg[nreg++] = seg;
out:
	pthread_rwlock_unlock(&reg_lock);
	return rc;
}

static void reg_remove(struct snapseg *seg)
{
	pthread_rwlock_wrlock(&reg_lock);
	for (size_t i = 0; i < nreg; i++)
		if (reg[i] == seg) {
			reg[i] = reg[--nreg];
			break;
		}
	pthread_rwlock_unlock(&reg_lock);
}

/* ---- the API ---- */

static int uffd_open(void)
{
	/* Kernel-mode faults too when allowed (root, or the sysctl); user mode
	 * only otherwise. With the SIGBUS feature, kernel-mode faults fail
	 * with EFAULT either way: see docs/SEGMENT.md. */
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno == EPERM)
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0) {
		if (errno == ENOSYS)
			errno = ENOTSUP;
		return -1;
	}
	struct uffdio_api api = {.api = UFFD_API,
				 .features = UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_SIGBUS};
	if (ioctl(fd, UFFDIO_API, &api)) {
		int e = errno;
		close(fd);
		errno = e == EINVAL ? ENOTSUP : e;
		return -1;
	}
	return fd;
}

struct snapseg *snapseg_create(size_t size)
{
	if (size == 0 || size > (SIZE_MAX >> 1)) {
		errno = EINVAL;
		return NULL;
	}
	size = (size + PG - 1) & ~(PG - 1);
	struct snapseg *seg = calloc(1, sizeof(*seg));
	if (!seg)
		return NULL;
	seg->size = size;
	seg->seq_end = UINTPTR_MAX;
	seg->wbfd = -1;
	pthread_mutex_init(&seg->lock, NULL);
	pthread_mutex_init(&seg->wb_lock, NULL);
	seg->relreq = snapfs_req_new(SNAPFS_OP_RELEASE);
	if (!seg->relreq)
		goto out_free;
	seg->uffd = uffd_open();
	if (seg->uffd < 0)
		goto out_free;
	seg->base = mmap(NULL, size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (seg->base == MAP_FAILED)
		goto out_uffd;
	/* A child would see the region without its handler: zeros where the
	 * snapshot's bytes belong. Better no mapping at all. */
	madvise(seg->base, size, MADV_DONTFORK);
	struct uffdio_register ureg = {
	    .range = {(uintptr_t)seg->base, size},
	    .mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
	};
	if (ioctl(seg->uffd, UFFDIO_REGISTER, &ureg))
		goto out_unmap;
	uint64_t need = (1ULL << _UFFDIO_COPY) | (1ULL << _UFFDIO_ZEROPAGE) |
			(1ULL << _UFFDIO_WAKE) | (1ULL << _UFFDIO_WRITEPROTECT);
	if ((ureg.ioctls & need) != need) {
		errno = ENOTSUP;
		goto out_unmap;
	}
	seg->fillbuf =
	    mmap(NULL, BOUNCE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (seg->fillbuf == MAP_FAILED) {
		seg->fillbuf = NULL;
		goto out_unmap;
	}
	if (reg_add(seg))
		goto out_buf;
	return seg;
out_buf:
	munmap(seg->fillbuf, BOUNCE);
out_unmap:;
	int e = errno;
	munmap(seg->base, size);
	errno = e;
out_uffd:
	e = errno;
	close(seg->uffd);
	errno = e;
out_free:
	e = errno;
	free(seg->relreq);
	pthread_mutex_destroy(&seg->lock);
	pthread_mutex_destroy(&seg->wb_lock);
	free(seg);
	errno = e;
	return NULL;
}

void *snapseg_base(const struct snapseg *seg)
{
	if (!seg) {
		errno = EINVAL;
		return NULL;
	}
	return seg->base;
}

/* Free the snapshots dropped in the fault handler. Called with seg->lock
 * held, outside the handler. */
static void zombies_free(struct snapseg *seg)
{
	while (seg->zombies) {
		struct segsnap *r = seg->zombies;
		seg->zombies = r->next;
		free(r);
	}
}

void snapseg_destroy(struct snapseg *seg)
{
	if (!seg)
		return;
	int e = errno;
	reg_remove(seg);
	munmap(seg->base, seg->size);
	close(seg->uffd);
	munmap(seg->fillbuf, BOUNCE);
	while (seg->snaps) {
		struct segsnap *r = seg->snaps;
		seg->snaps = r->next;
		snaphold_drop(&r->h, seg->relreq);
		free(r);
	}
	zombies_free(seg);
	if (seg->ext)
		munmap(seg->ext, seg->aext * sizeof(*seg->ext));
	free(seg->relreq);
	if (seg->wbfd >= 0)
		close(seg->wbfd);
	pthread_mutex_destroy(&seg->lock);
	pthread_mutex_destroy(&seg->wb_lock);
	free(seg);
	errno = e;
}

int snapseg_stats(const struct snapseg *seg, struct snapseg_stats *st)
{
	if (!seg || !st) {
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_lock((pthread_mutex_t *)&seg->lock);
	*st = seg->st;
	pthread_mutex_unlock((pthread_mutex_t *)&seg->lock);
	return 0;
}

static bool inside(const struct snapseg *seg, const void *p, size_t len)
{
	uintptr_t a = (uintptr_t)p, b = (uintptr_t)seg->base;
	return a >= b && len <= seg->size && a - b <= seg->size - len;
}

/* Full pages of [p, p + len) as page indices [*s, *e); *e <= *s when none. */
static void full_pages(const struct snapseg *seg, const void *p, size_t len, uintptr_t *s,
		       uintptr_t *e)
{
	uintptr_t a = (uintptr_t)p - (uintptr_t)seg->base;
	*s = (a + PG - 1) / PG;
	*e = (a + len) / PG;
}

/* Detach pages [s, e) and drop their contents: they read as zeros (or as
 * whatever is associated next) without loading anything. */
static int pages_forget(struct snapseg *seg, uintptr_t s, uintptr_t e)
{
	if (e <= s)
		return 0;
	if (ext_room(seg, 2))
		return -ENOMEM;
	ext_clear(seg, s, e);
	if (madvise(seg->base + s * PG, (e - s) * PG, MADV_DONTNEED))
		return -errno;
	return 0;
}

/* Copy n bytes from buf into the segment at dst (user mode: faults are
 * served). Whole pages not yet present go in by UFFDIO_COPY. */
static void seg_put(struct snapseg *seg, char *dst, const char *buf, size_t n)
{
	while (n) {
		uintptr_t a = (uintptr_t)dst;
		size_t chunk = PG - (a & (PG - 1));
		if (chunk > n)
			chunk = n;
		bool done = false;
		if (chunk == PG) {
			struct uffdio_copy c = {.dst = a, .src = (uintptr_t)buf, .len = PG};
			done = ioctl(seg->uffd, UFFDIO_COPY, &c) == 0;
		}
		if (!done)
			memcpy(dst, buf, chunk);
		dst += chunk;
		buf += chunk;
		n -= chunk;
	}
}

/* pread of exactly up to n bytes; the count, or -1. */
static ssize_t pread_full(int fd, char *buf, size_t n, off_t off)
{
	size_t got = 0;
	while (got < n) {
		ssize_t k = pread(fd, buf + got, n - got, off + (off_t)got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return got ? (ssize_t)got : -1;
		if (k == 0)
			break;
		got += (size_t)k;
	}
	return (ssize_t)got;
}

/* Eager read of [off, off + len) from fd into dst through a bounce buffer. */
static ssize_t read_eager(struct snapseg *seg, char *dst, int fd, size_t len, off_t off)
{
	if (len >= PG) {
		uintptr_t s, e;
		full_pages(seg, dst, len, &s, &e);
		pthread_mutex_lock(&seg->lock);
		int rc = pages_forget(seg, s, e);
		snaps_reap(seg);
		zombies_free(seg);
		pthread_mutex_unlock(&seg->lock);
		if (rc) {
			errno = -rc;
			return -1;
		}
	}
	char *buf = malloc(len < BOUNCE ? len : BOUNCE);
	if (!buf)
		return -1;
	size_t done = 0;
	while (done < len) {
		size_t n = len - done < BOUNCE ? len - done : BOUNCE;
		ssize_t k = pread_full(fd, buf, n, off + (off_t)done);
		if (k < 0) {
			int e = errno;
			free(buf);
			errno = e;
			return -1;
		}
		seg_put(seg, dst + done, buf, (size_t)k);
		done += (size_t)k;
		if ((size_t)k < n)
			break;
	}
	free(buf);
	return (ssize_t)done;
}

ssize_t snapseg_read(struct snapseg *seg, void *dst, int fd, size_t len, off_t off)
{
	if (!seg || off < 0 || (len && !inside(seg, dst, len))) {
		errno = EINVAL;
		return -1;
	}
	if (len == 0)
		return 0;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -1;
	if ((fl & O_ACCMODE) == O_WRONLY) { /* as pread(2) */
		errno = EBADF;
		return -1;
	}
	uintptr_t s, e;
	full_pages(seg, dst, len, &s, &e);
	if (e <= s)
		return read_eager(seg, dst, fd, len, off);
	struct segsnap *r = calloc(1, sizeof(*r));
	if (!r)
		return -1;
	if (snaphold_take(fd, &r->h)) {
		free(r);
		if (errno != ENOTSUP)
			return -1;
		return read_eager(seg, dst, fd, len, off);
	}
	r->advice = POSIX_FADV_NORMAL;
	/* pread semantics: the bytes that exist at pin time. */
	size_t n = (uint64_t)off >= r->h.size	     ? 0
		   : r->h.size - (uint64_t)off < len ? (size_t)(r->h.size - (uint64_t)off)
						     : len;
	full_pages(seg, dst, n, &s, &e);
	if (e <= s) {
		ssize_t k = n ? read_eager(seg, dst, r->h.view, n, off) : 0;
		snaphold_drop(&r->h, NULL);
		free(r);
		return k;
	}
	r->delta = (int64_t)off - (int64_t)(uintptr_t)dst;
	/* Fills straight from the live file where the daemon allows it; the
	 * set-up costs a request, so not for a few pages. */
	if (e - s >= FILL_FIRST)
		(void)snaphold_direct(&r->h);
	/* The fragments at either end, eagerly and from the snapshot. */
	char *d = dst, *ps = seg->base + s * PG, *pe = seg->base + e * PG;
	if ((ps > d && read_eager(seg, d, r->h.view, (size_t)(ps - d), off) < 0) ||
	    (pe < d + n &&
	     read_eager(seg, pe, r->h.view, (size_t)(d + n - pe), off + (pe - d)) < 0)) {
		int err = errno;
		snaphold_drop(&r->h, NULL);
		free(r);
		errno = err;
		return -1;
	}
	pthread_mutex_lock(&seg->lock);
	int rc = pages_forget(seg, s, e);
	if (!rc) {
		ext_insert(seg, s, e, r);
		r->next = seg->snaps;
		seg->snaps = r;
		seg->st.snapshots_held++;
	}
	snaps_reap(seg);
	zombies_free(seg);
	pthread_mutex_unlock(&seg->lock);
	if (rc) {
		snaphold_drop(&r->h, NULL);
		free(r);
		errno = -rc;
		return -1;
	}
	return (ssize_t)n;
}

int snapseg_discard(struct snapseg *seg, void *addr, size_t len)
{
	if (!seg || (len && !inside(seg, addr, len))) {
		errno = EINVAL;
		return -1;
	}
	if (len == 0)
		return 0;
	uintptr_t s, e;
	full_pages(seg, addr, len, &s, &e);
	char *a = addr, *ps = seg->base + s * PG, *pe = seg->base + e * PG;
	if (e <= s) {
		memset(a, 0, len);
		return 0;
	}
	memset(a, 0, (size_t)(ps - a));
	memset(pe, 0, (size_t)(a + len - pe));
	pthread_mutex_lock(&seg->lock);
	int rc = pages_forget(seg, s, e);
	snaps_reap(seg);
	zombies_free(seg);
	pthread_mutex_unlock(&seg->lock);
	if (rc) {
		errno = -rc;
		return -1;
	}
	return 0;
}

/* ---- write-back ---- */

/* The ranges of r's file changed since its snapshot, sorted; from DIFF. */
struct changed {
	struct segsnap *r;
	struct snapfs_range *v;
	size_t n;
	bool all; /* the daemon could not tell: everything counts as changed */
};

static int range_cmp(const void *a, const void *b)
{
	const struct snapfs_range *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

static int changed_load(struct changed *c)
{
	struct snapfs_req *q = snapfs_req_new(SNAPFS_OP_DIFF);
	if (!q)
		return -ENOMEM;
	size_t alloc = 0;
	int rc = 0;
	do {
		q->op = SNAPFS_OP_DIFF;
		q->id = c->r->h.id;
		q->len = q->count = 0;
		if (snapfs_call_fd(c->r->h.holder, q)) {
			rc = -errno;
			break;
		}
		size_t at = 0;
		for (uint32_t i = 0; i < q->count && at + sizeof(struct snapfs_rec_diff) <= q->len;
		     i++) {
			struct snapfs_rec_diff d;
			memcpy(&d, q->data + at, sizeof(d));
			if (d.reclen < sizeof(d) || at + d.reclen > q->len ||
			    d.nranges > (d.reclen - sizeof(d)) / sizeof(struct snapfs_range)) {
				rc = -EPROTO;
				break;
			}
			if (d.status)
				c->all = true;
			if (c->n + d.nranges > alloc) {
				size_t na = (c->n + d.nranges) * 2;
				struct snapfs_range *v = reallocarray(c->v, na, sizeof(*v));
				if (!v) {
					rc = -ENOMEM;
					break;
				}
				c->v = v;
				alloc = na;
			}
			memcpy(c->v + c->n, q->data + at + sizeof(d), d.nranges * sizeof(*c->v));
			c->n += d.nranges;
			at += d.reclen;
		}
	} while (!rc && q->cursor);
	free(q);
	if (!rc && c->n)
		qsort(c->v, c->n, sizeof(*c->v), range_cmp);
	return rc;
}

/* Whether [off, off + len) of the file changed since c's snapshot. */
static bool changed_hit(const struct changed *c, uint64_t off, uint64_t len)
{
	if (c->all)
		return true;
	size_t lo = 0, hi = c->n;
	while (lo < hi) { /* first range ending after off */
		size_t mid = (lo + hi) / 2;
		if (c->v[mid].off + c->v[mid].len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < c->n && c->v[i].off < off + len; i++)
		if (c->v[i].off + c->v[i].len > off)
			return true;
	return false;
}

static int pwrite_full(int fd, const char *buf, size_t n, off_t off)
{
	while (n) {
		ssize_t k = pwrite(fd, buf, n, off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO;
		buf += k;
		n -= (size_t)k;
		off += k;
	}
	return 0;
}

/* Write src[a, b) at off + a, through a bounce buffer: the copy runs in
 * user mode, so unfilled pages are faulted in by the handler. */
static int write_run(int fd, const char *src, size_t a, size_t b, off_t off, char *bounce)
{
	while (a < b) {
		size_t n = b - a < BOUNCE ? b - a : BOUNCE;
		memcpy(bounce, src + a, n);
		int rc = pwrite_full(fd, bounce, n, off + (off_t)a);
		if (rc)
			return rc;
		a += n;
	}
	return 0;
}

struct wrun {
	size_t at, end; /* bytes [at, end) of the source */
};

/* Copy len bytes from the segment into the file data at off through a
 * bounce buffer, in user mode (unfilled pages fill). */
static int pack_slow(int data, const char *src, size_t len, uint64_t off)
{
	char *b = malloc(len < BOUNCE ? len : BOUNCE);
	if (!b)
		return -ENOMEM;
	int rc = 0;
	for (size_t done = 0; done < len && !rc;) {
		size_t k = len - done < BOUNCE ? len - done : BOUNCE;
		memcpy(b, src + done, k);
		rc = pwrite_full(data, b, k, (off_t)(off + done));
		done += k;
	}
	free(b);
	return rc;
}

/*
 * The blocks of the file that r's snapshot can give up before the runs are
 * written: whole blocks inside a run that no page of the segment still
 * shows from r (a page never comes back to r: re-reads take new
 * snapshots). Then the daemon need not preserve them for r. Merged byte
 * ranges into fg (room for n); their count. Called with seg->lock held.
 */
static size_t forgo_plan(struct snapseg *seg, struct segsnap *r, off_t off, const struct wrun *runs,
			 size_t n, uint64_t (*fg)[2])
{
	uint64_t bs = 1ull << r->h.bshift;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t fs = (uint64_t)off + runs[i].at, fe = (uint64_t)off + runs[i].end;
		for (uint64_t b = (fs + bs - 1) / bs; (b + 1) * bs <= fe; b++) {
			/* r's pages for block b: addresses b * bs - delta onwards. */
			int64_t a0 = (int64_t)(b * bs) - r->delta, a1 = a0 + (int64_t)bs;
			int64_t lo = (int64_t)(uintptr_t)seg->base, hi = lo + (int64_t)seg->size;
			bool shown = false;
			if (a1 > lo && a0 < hi) {
				uintptr_t p0 = (uintptr_t)((a0 > lo ? a0 : lo) - lo) / PG;
				uintptr_t p1 =
				    (uintptr_t)(((a1 < hi ? a1 : hi) - lo) + (int64_t)PG - 1) / PG;
				for (size_t x = ext_find(seg, p0);
				     x < seg->next && seg->ext[x].s < p1 && !shown; x++)
					shown = seg->ext[x].r == r;
			}
			if (shown)
				continue;
			if (k && fg[k - 1][0] + fg[k - 1][1] == b * bs)
				fg[k - 1][1] += bs;
			else if (k < n) {
				fg[k][0] = b * bs;
				fg[k++][1] = bs;
			}
		}
	}
	return k;
}

/*
 * Many scattered runs of a file this segment reads directly: hand them to
 * the daemon in one request (one copy-on-write transaction, no FUSE write
 * per run). The bytes are packed into a memfd by memcpy, in user mode, so
 * unfilled pages fill first. -ENOTSUP (or any failure): the caller writes.
 */
static int write_batch(struct snapseg *seg, int fd, const struct stat *st, const char *p, off_t off,
		       const struct wrun *runs, size_t n)
{
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += runs[i].end - runs[i].at;
	if (n < WB_MIN_RUNS || total > WB_MAX_BYTES)
		return -ENOTSUP;
	struct snaphold h = {.direct_state = 0};
	uint64_t(*rg)[2] = calloc(2 * n, sizeof(*rg)), (*fg)[2] = rg ? rg + n : NULL;
	size_t nfg = 0;
	pthread_mutex_lock(&seg->lock);
	for (struct segsnap *r = seg->snaps; rg && r; r = r->next)
		if (r->h.dev == st->st_dev && r->h.ino == st->st_ino && r->h.direct_state > 0) {
			h = r->h;
			nfg = forgo_plan(seg, r, off, runs, n, fg);
			break;
		}
	pthread_mutex_unlock(&seg->lock);
	if (h.direct_state <= 0) {
		free(rg);
		return -ENOTSUP;
	}
	/* A small batch reuses the segment's buffer (its pages stay allocated
	 * between calls); a large one, or one while another call packs, gets
	 * its own. Sealed against shrinking: the daemon maps it. */
	int data = -1, rc = -ENOMEM;
	bool kept = total <= WB_KEEP_BYTES && pthread_mutex_trylock(&seg->wb_lock) == 0;
	if (kept) {
		if (seg->wbfd < 0) {
			seg->wbfd =
			    memfd_create("snapseg-writeback", MFD_CLOEXEC | MFD_ALLOW_SEALING);
			seg->wbsize = 0;
			if (seg->wbfd >= 0 && fcntl(seg->wbfd, F_ADD_SEALS, F_SEAL_SHRINK)) {
				close(seg->wbfd);
				seg->wbfd = -1;
			}
		}
		if (seg->wbfd >= 0 && total > seg->wbsize &&
		    ftruncate(seg->wbfd, (off_t)total) == 0)
			seg->wbsize = total;
		if (seg->wbfd >= 0 && seg->wbsize >= total)
			data = seg->wbfd;
	} else {
		data = memfd_create("snapseg-writeback", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		if (data >= 0 &&
		    (ftruncate(data, (off_t)total) ||
		     fcntl(data, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL))) {
			close(data);
			data = -1;
		}
	}
	if (!rg || data < 0)
		goto out;
	/* Packed by the kernel straight from the segment, up to IOV_MAX runs a
	 * call; a run with an unfilled page (EFAULT: the kernel does not fill
	 * segment pages) is copied in user mode instead. */
	uint64_t at = 0;
	for (size_t i = 0; i < n; i++) {
		rg[i][0] = (uint64_t)off + runs[i].at;
		rg[i][1] = runs[i].end - runs[i].at;
	}
	struct iovec iov[64];
	for (size_t i = 0; i < n;) {
		size_t k = 0;
		uint64_t bytes = 0;
		for (; k < 64 && i + k < n; k++) {
			iov[k].iov_base = (void *)(p + runs[i + k].at);
			iov[k].iov_len = rg[i + k][1];
			bytes += rg[i + k][1];
		}
		if (pwritev(data, iov, (int)k, (off_t)at) != (ssize_t)bytes) {
			for (size_t j = 0; j < k; j++) {
				if (pwrite(data, iov[j].iov_base, iov[j].iov_len, (off_t)at) ==
				    (ssize_t)iov[j].iov_len) {
					at += iov[j].iov_len;
					continue;
				}
				if ((rc = pack_slow(data, iov[j].iov_base, iov[j].iov_len, at)))
					goto out;
				at += iov[j].iov_len;
			}
		} else {
			at += bytes;
		}
		i += k;
	}
	rc = snaphold_writeback(&h, fd, (const uint64_t(*)[2])rg, n, (const uint64_t(*)[2])fg, nfg,
				data);
out:
	if (kept)
		pthread_mutex_unlock(&seg->wb_lock);
	else if (data >= 0)
		close(data);
	free(rg);
	return rc;
}

static int write_runs(struct snapseg *seg, int fd, const struct stat *st, const char *p, off_t off,
		      const struct wrun *runs, size_t n)
{
	if (write_batch(seg, fd, st, p, off, runs, n) == 0)
		return 0;
	char *bounce = n ? malloc(BOUNCE) : NULL;
	if (n && !bounce)
		return -ENOMEM;
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++)
		rc = write_run(fd, p, runs[i].at, runs[i].end, off, bounce);
	free(bounce);
	return rc;
}

/* Which full pages [s, e) of the segment need no write: skip[i] for page
 * s + i. Runs under seg->lock (DIFF is asked at most once per snapshot). */
static int plan_skips(struct snapseg *seg, uintptr_t s, uintptr_t e, const struct stat *st,
		      int64_t delta, bool *skip, uint64_t *nskip)
{
	struct changed cache[8];
	size_t nc = 0;
	int rc = 0;
	*nskip = 0;
	size_t i = ext_find(seg, s);
	for (; i < seg->next && seg->ext[i].s < e; i++) {
		struct segext *x = &seg->ext[i];
		struct segsnap *r = x->r;
		if (r->h.dev != st->st_dev || r->h.ino != st->st_ino || r->delta != delta)
			continue;
		struct changed *c = NULL;
		for (size_t k = 0; k < nc; k++)
			if (cache[k].r == r)
				c = &cache[k];
		if (!c) {
			if (nc == sizeof(cache) / sizeof(cache[0])) {
				free(cache[0].v);
				memmove(cache, cache + 1, (nc - 1) * sizeof(cache[0]));
				nc--;
			}
			c = &cache[nc++];
			*c = (struct changed){.r = r};
			if ((rc = changed_load(c)))
				break;
		}
		uintptr_t a = x->s > s ? x->s : s, b = x->e < e ? x->e : e;
		for (uintptr_t pg = a; pg < b; pg++) {
			uint64_t fo = (uint64_t)((int64_t)(uintptr_t)(seg->base + pg * PG) + delta);
			if (!changed_hit(c, fo, PG)) {
				skip[pg - s] = true;
				(*nskip)++;
			}
		}
	}
	for (size_t k = 0; k < nc; k++)
		free(cache[k].v);
	return rc;
}

ssize_t snapseg_write(struct snapseg *seg, const void *src, int fd, size_t len, off_t off)
{
	if (!seg || off < 0 || (ssize_t)len < 0) {
		errno = EINVAL;
		return -1;
	}
	if (len == 0)
		return 0;
	struct stat st;
	if (fstat(fd, &st))
		return -1;
	const char *p = src;
	uintptr_t s = 0, e = 0;
	if (inside(seg, src, len))
		full_pages(seg, src, len, &s, &e);
	bool *skip = NULL;
	uint64_t nskip = 0;
	int rc = 0;
	if (e > s) {
		skip = calloc(e - s, sizeof(*skip));
		if (!skip)
			return -1;
		pthread_mutex_lock(&seg->lock);
		rc = plan_skips(seg, s, e, &st, (int64_t)off - (int64_t)(uintptr_t)src, skip,
				&nskip);
		pthread_mutex_unlock(&seg->lock);
		if (rc == -ENOTSUP) { /* no daemon to ask: write everything */
			memset(skip, 0, e - s);
			nskip = 0;
			rc = 0;
		}
	}
	/* Walk [0, len) as runs of bytes to write, jumping over skipped pages. */
	struct wrun *runs = NULL;
	size_t nruns = 0, aruns = 0, at = 0;
	while (!rc && at < len) {
		size_t end = at;
		while (end < len) {
			if (!skip) {
				end = len;
				break;
			}
			uintptr_t pg = ((uintptr_t)(p + end) - (uintptr_t)seg->base) / PG;
			if (pg >= s && pg < e && skip[pg - s])
				break;
			end = (size_t)(seg->base + (pg + 1) * PG - p);
			if (end > len)
				end = len;
		}
		if (end > at) {
			if (nruns == aruns) {
				size_t na = aruns ? 2 * aruns : 64;
				struct wrun *v = reallocarray(runs, na, sizeof(*v));
				if (!v) {
					rc = -ENOMEM;
					break;
				}
				runs = v;
				aruns = na;
			}
			runs[nruns].at = at;
			runs[nruns++].end = end;
		}
		at = end;
		while (at < len) { /* skipped pages */
			uintptr_t pg = ((uintptr_t)(p + at) - (uintptr_t)seg->base) / PG;
			if (!(skip && pg >= s && pg < e && skip[pg - s]))
				break;
			at = (size_t)(seg->base + (pg + 1) * PG - p);
		}
	}
	if (!rc)
		rc = write_runs(seg, fd, &st, p, off, runs, nruns);
	free(runs);
	free(skip);
	if (rc) {
		errno = -rc;
		return -1;
	}
	pthread_mutex_lock(&seg->lock);
	uintptr_t first = (uintptr_t)p / PG, last = ((uintptr_t)p + len - 1) / PG;
	seg->st.pages_written += last - first + 1 - nskip;
	seg->st.pages_skipped += nskip;
	pthread_mutex_unlock(&seg->lock);
	return (ssize_t)len;
}
