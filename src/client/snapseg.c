// SPDX-License-Identifier: MIT
/*
 * The deferred-I/O segment (docs/SEGMENT.md): faults, reads, discard; the
 * association map is in snapseg_map.c, the write-back in snapseg_wb.c. A segment is an anonymous
 * MAP_NORESERVE region registered with its own userfaultfd in MISSING and write-protect modes, in
 * SIGBUS mode: a fault raises SIGBUS in the faulting thread, whose handler (on_bus) serves it and
 * returns. snapseg_read() pins an ephemeral snapshot of the file (struct snaphold) and records an
 * association "pages [s, e) of the segment show the snapshot at file offset
 * page address + delta"; nothing is copied. The first touch of such a page
 * is a MISSING fault: the handler reads the snapshot (the live file
 * directly when the daemon's bits say the block is unchanged, else the
 * view) and installs the bytes with UFFDIO_COPY, write-protected, so that
 * the first store to the page comes back as a WP fault and detaches it (a
 * store to an unfilled page is filled without protection and detached at
 * once). A snapshot whose last page detaches is dropped at once. Pages
 * without an association fill with zeros.
 *
 * Watch for: the handler holds seg->lock while it fills, so no thread may
 * touch segment memory while holding the lock (snapseg_write plans under
 * the lock and copies after), and everything it calls must be
 * async-signal-safe. The kernel does not fault segment pages in for a
 * system call (EFAULT), so every byte moved between files and unfilled
 * segment pages goes through a user-space copy or UFFDIO_COPY.
 */
#include "snapfs.h"
#include "snapfs_proto.h"
#include "client_i.h"
#include "snapseg_i.h"
#include "segment_i.h"
#include "fullio.h"
#include "vec.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

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

/*
 * The process-wide state of the library's segments: the segments on_bus
 * serves, and the SIGBUS disposition found before ours. on_bus takes
 * reg_lock for reading; old_bus is written once, under reg_lock for
 * writing, before our handler is installed, and only read after that.
 */
static pthread_rwlock_t reg_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct {
	struct snapseg **v;
	size_t n, alloc;
} reg;				 /* protected by reg_lock */
static struct sigaction old_bus; /* see above */
static bool bus_installed;	 /* protected by reg_lock */

/*
 * Where a fill's time goes, when SNAPSEG_PROFILE is set in the environment
 * at the first snapseg_create (docs/SEGMENT.md, "Cost of a fill"): the
 * handler's time, and within it the snapshot read per path (direct from
 * the live file, or the view through FUSE) and UFFDIO_COPY (which includes
 * the kernel's allocation of the fresh page). Process-wide, added
 * atomically in the handler (clock_gettime is async-signal-safe), printed
 * to stderr by snapseg_destroy.
 */
static struct {
	int on; /* set once, before the handler is installed */
	uint64_t faults, ns_handler, ns_copy;
	uint64_t fills[2], pages[2], ns_read[2]; /* [0] view, [1] direct */
} prof;

static uint64_t prof_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void prof_add(uint64_t *v, uint64_t n)
{
	__atomic_fetch_add(v, n, __ATOMIC_RELAXED);
}

static void prof_print(void)
{
	if (!prof.on)
		return;
	char line[512];
	int n = snprintf(
	    line, sizeof(line),
	    "snapseg profile: %llu faults, handler %.1f ms; view: %llu fills, %llu pages, read "
	    "%.1f ms; direct: %llu fills, %llu pages, read %.1f ms; UFFDIO_COPY %.1f ms\n",
	    (unsigned long long)prof.faults, prof.ns_handler / 1e6,
	    (unsigned long long)prof.fills[0], (unsigned long long)prof.pages[0],
	    prof.ns_read[0] / 1e6, (unsigned long long)prof.fills[1],
	    (unsigned long long)prof.pages[1], prof.ns_read[1] / 1e6, prof.ns_copy / 1e6);
	if (n > 0 && write(2, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1) < 0)
		return;
}

static void wake(struct snapseg *seg, uintptr_t pg)
{
	struct uffdio_range wr = {(uintptr_t)(seg->base + pg * PG), PG};
	ioctl(seg->uffd, UFFDIO_WAKE, &wr);
}

static int fill_copy(struct snapseg *seg, struct uffdio_copy *cp, uintptr_t pg, size_t n);

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
	uint64_t t0 = prof.on ? prof_ns() : 0;
	ssize_t k = foff < 0 ? -1 : snaphold_pread(&r->h, seg->fillbuf, n * PG, (uint64_t)foff);
	uint64_t t1 = prof.on ? prof_ns() : 0;
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
	int done = fill_copy(seg, &c, pg, n);
	if (prof.on) {
		int d = r->h.last_direct;
		prof_add(&prof.fills[d], 1);
		prof_add(&prof.pages[d], n);
		prof_add(&prof.ns_read[d], t1 - t0);
		prof_add(&prof.ns_copy, prof_ns() - t1);
	}
	return done;
}

/* UFFDIO_COPY of the n filled pages at pg: as fill() returns. */
static int fill_copy(struct snapseg *seg, struct uffdio_copy *cp, uintptr_t pg, size_t n)
{
	struct uffdio_copy c = *cp;
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
	struct segext *x = seg_ext_lookup(seg, pg);
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
	if (seg_ext_room(seg, 1))
		return false;
	x = seg_ext_lookup(seg, pg);
	int rc = fill(seg, x, pg, n, !write);
	if (rc < 0)
		return false;
	if (write && rc > 0) { /* the store that faults detaches the page */
		seg_ext_clear(seg, pg, pg + 1);
		seg_snaps_reap(seg);
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
	if (seg_ext_lookup(seg, pg)) {
		if (seg_ext_room(seg, 1))
			return false;
		seg_ext_clear(seg, pg, pg + 1);
		seg_snaps_reap(seg);
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
		for (size_t i = 0; i < reg.n && !ours; i++) {
			struct snapseg *seg = reg.v[i];
			if (a - (uintptr_t)seg->base >= seg->size)
				continue;
			ours = true;
			uint64_t t0 = prof.on ? prof_ns() : 0;
			uintptr_t pg = (a - (uintptr_t)seg->base) / PG;
			bool present, write;
			fault_kind(uc, seg->base + pg * PG, &present, &write);
			pthread_mutex_lock(&seg->lock);
			done = present ? on_wp(seg, pg) : on_missing(seg, pg, write);
			assert(seg_sanity(seg));
			pthread_mutex_unlock(&seg->lock);
			if (prof.on) {
				prof_add(&prof.faults, 1);
				prof_add(&prof.ns_handler, prof_ns() - t0);
			}
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
		const char *p = getenv("SNAPSEG_PROFILE");
		prof.on = p && *p && strcmp(p, "0");
		struct sigaction sa = {.sa_sigaction = on_bus,
				       .sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK};
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGBUS, &sa, &old_bus)) {
			rc = -1;
			goto out;
		}
		bus_installed = true;
	}
	if (vec_push(&reg, seg)) {
		errno = ENOMEM;
		rc = -1;
	}
out:
	pthread_rwlock_unlock(&reg_lock);
	return rc;
}

static void reg_remove(struct snapseg *seg)
{
	pthread_rwlock_wrlock(&reg_lock);
	for (size_t i = 0; i < reg.n; i++)
		if (reg.v[i] == seg) {
			reg.v[i] = reg.v[--reg.n];
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

void snapseg_destroy(struct snapseg *seg)
{
	if (!seg)
		return;
	int e = errno;
	reg_remove(seg);
	prof_print();
	munmap(seg->base, seg->size);
	close(seg->uffd);
	munmap(seg->fillbuf, BOUNCE);
	while (seg->snaps) {
		struct segsnap *r = seg->snaps;
		seg->snaps = r->next;
		snaphold_drop(&r->h, seg->relreq);
		free(r);
	}
	seg_zombies_free(seg);
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

/* Detach pages [s, e) and drop their contents: they read as zeros (or as
 * whatever is associated next) without loading anything. */
static int pages_forget(struct snapseg *seg, uintptr_t s, uintptr_t e)
{
	if (e <= s)
		return 0;
	if (seg_ext_room(seg, 2))
		return -ENOMEM;
	seg_ext_clear(seg, s, e);
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

/* Eager read of [off, off + len) from fd into dst through a bounce buffer. */
static ssize_t read_eager(struct snapseg *seg, char *dst, int fd, size_t len, off_t off)
{
	if (len >= PG) {
		uintptr_t s, e;
		seg_full_pages(seg, dst, len, &s, &e);
		pthread_mutex_lock(&seg->lock);
		int rc = pages_forget(seg, s, e);
		seg_snaps_reap(seg);
		seg_zombies_free(seg);
		assert(seg_sanity(seg));
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
			free(buf);
			errno = (int)-k;
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
	if (!seg || off < 0 || (len && !seg_inside(seg, dst, len))) {
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
	seg_full_pages(seg, dst, len, &s, &e);
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
	seg_full_pages(seg, dst, n, &s, &e);
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
		seg_ext_insert(seg, s, e, r);
		r->next = seg->snaps;
		seg->snaps = r;
		seg->st.snapshots_held++;
	}
	seg_snaps_reap(seg);
	seg_zombies_free(seg);
	assert(seg_sanity(seg));
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
	if (!seg || (len && !seg_inside(seg, addr, len))) {
		errno = EINVAL;
		return -1;
	}
	if (len == 0)
		return 0;
	uintptr_t s, e;
	seg_full_pages(seg, addr, len, &s, &e);
	char *a = addr, *ps = seg->base + s * PG, *pe = seg->base + e * PG;
	if (e <= s) {
		memset(a, 0, len);
		return 0;
	}
	memset(a, 0, (size_t)(ps - a));
	memset(pe, 0, (size_t)(a + len - pe));
	pthread_mutex_lock(&seg->lock);
	int rc = pages_forget(seg, s, e);
	seg_snaps_reap(seg);
	seg_zombies_free(seg);
	assert(seg_sanity(seg));
	pthread_mutex_unlock(&seg->lock);
	if (rc) {
		errno = -rc;
		return -1;
	}
	return 0;
}
