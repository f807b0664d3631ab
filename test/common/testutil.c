// SPDX-License-Identifier: MIT
/*
 * Test helpers: scratch directories, file I/O, and the daemon's mount
 * lifecycle. Every mount made here is torn down by an atexit handler and a
 * lazy unmount if the test dies first, so a failing test leaves no mount.
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

char *tu_tmpdir(const char *tag)
{
	char tmpl[512];
	const char *base = getenv("SNAPFS_TEST_DIR");
	snprintf(tmpl, sizeof(tmpl), "%s/snapfs-%s-XXXXXX", base && *base ? base : "/dev/shm", tag);
	char *d = mkdtemp(tmpl);
	cr_assert_not_null(d, "mkdtemp: %s", strerror(errno));
	return strdup(d);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		rmdir(p);
	else
		unlink(p);
	return 0;
}

void tu_rm_rf(const char *path)
{
	if (path)
		nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

void tu_path(char *buf, size_t len, const char *a, const char *b)
{
	int n = snprintf(buf, len, "%s/%s", a, b);
	cr_assert(n > 0 && (size_t)n < len, "path too long: %s/%s", a, b);
}

int tu_write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -errno;
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);
		if (n < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		done += n;
	}
	return close(fd) ? -errno : 0;
}

ssize_t tu_read_file(const char *path, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	size_t done = 0;
	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);
		if (n < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		if (n == 0)
			break;
		done += n;
	}
	close(fd);
	return done;
}

uint64_t tu_rand(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

void tu_fill(void *buf, size_t len, uint64_t seed)
{
	uint64_t s = seed | 1;
	unsigned char *p = buf;
	for (size_t i = 0; i < len; i += 8) {
		uint64_t r = tu_rand(&s);
		size_t n = len - i < 8 ? len - i : 8;
		memcpy(p + i, &r, n);
	}
}

int tu_count_fds(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Mounts to tear down if the test process exits without unmounting. */
static struct tu_mount *live[16];
static int atexit_done;

static void teardown_all(void)
{
	for (int i = 0; i < 16; i++)
		if (live[i])
			tu_umount(live[i]);
}

/*
 * A test that crashes (or trips ASan/UBSan, which abort in CI) skips .fini
 * and atexit: the first mount of a process also installs a handler that
 * tears every mount down on SIGABRT, SIGSEGV and SIGBUS, so no mount and no
 * daemon holding ctest's output open is left behind. Only in that process,
 * not in children it forks (a child's SIGBUS may be what a test expects).
 */
static pid_t guard_pid;

static void on_crash(int sig)
{
	if (getpid() == guard_pid)
		teardown_all();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void crash_guard(void)
{
	if (guard_pid == getpid())
		return;
	guard_pid = getpid();
	signal(SIGABRT, on_crash);
	signal(SIGSEGV, on_crash);
	signal(SIGBUS, on_crash);
}

/* Criterion's parallel runner (-j2, as ctest runs us) leaks a small
 * allocation now and then; that is not ours to fix. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libcriterion.so\n";
}

static void track(struct tu_mount *m, int on)
{
	for (int i = 0; i < 16; i++) {
		if (on && !live[i]) {
			live[i] = m;
			break;
		}
		if (!on && live[i] == m)
			live[i] = NULL;
	}
	if (!atexit_done) {
		atexit(teardown_all);
		atexit_done = 1;
	}
	if (on)
		crash_guard();
}

int tu_is_snapfs_mount(const char *path)
{
	FILE *f = fopen("/proc/self/mounts", "r");
	if (!f)
		return 0;
	char line[2048], dev[512], mp[512], type[64];
	int found = 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%511s %511s %63s", dev, mp, type) == 3 && !strcmp(mp, path) &&
		    !strcmp(type, "fuse.snapfs"))
			found = 1;
	fclose(f);
	return found;
}

static const char *snapfs_bin(void)
{
	const char *b = getenv("SNAPFS_BIN");
	cr_assert_not_null(b, "SNAPFS_BIN is not set (run the tests through ctest)");
	return b;
}

static int mount_with(struct tu_mount *m, const char *source, const char *mnt, const char *opts,
		      const struct rlimit *nofile)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->source, sizeof(m->source), "%s", source);
	snprintf(m->mnt, sizeof(m->mnt), "%s", mnt);
	struct stat before;
	if (stat(mnt, &before))
		return -1;
	/* The backing matrix (test/backing) puts the store on another
	 * filesystem: store=$SNAPFS_TEST_STORE/<SOURCE's name>, unless the test
	 * chose a store itself. */
	char withstore[2048];
	const char *sbase = getenv("SNAPFS_TEST_STORE");
	if (sbase && *sbase && !(opts && strstr(opts, "store="))) {
		const char *name = strrchr(source, '/');
		snprintf(withstore, sizeof(withstore), "%s%sstore=%s/%s", opts ? opts : "",
			 opts && *opts ? "," : "", sbase, name ? name + 1 : source);
		opts = withstore;
	}
	/* SNAPFS_TEST_OPTS adds options to every mount (the suites run again
	 * with -o writeback that way: test/fuse/CMakeLists.txt). */
	char withextra[4096];
	const char *extra = getenv("SNAPFS_TEST_OPTS");
	if (extra && *extra) {
		snprintf(withextra, sizeof(withextra), "%s%s%s", opts ? opts : "",
			 opts && *opts ? "," : "", extra);
		opts = withextra;
	}
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		if (nofile && setrlimit(RLIMIT_NOFILE, nofile))
			_exit(126);
		const char *argv[8];
		int i = 0;
		argv[i++] = snapfs_bin();
		argv[i++] = "-f";
		if (opts && *opts) {
			argv[i++] = "-o";
			argv[i++] = opts;
		}
		argv[i++] = source;
		argv[i++] = mnt;
		argv[i] = NULL;
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	m->pid = pid;
	track(m, 1);
	for (int i = 0; i < 1000; i++) {
		struct stat now;
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			m->pid = 0;
			track(m, 0);
			return -1;
		}
		if (tu_is_snapfs_mount(mnt) && stat(mnt, &now) == 0 && now.st_dev != before.st_dev)
			return 0;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	tu_umount(m);
	return -1;
}

int tu_mount(struct tu_mount *m, const char *source, const char *mnt, const char *opts)
{
	return mount_with(m, source, mnt, opts, NULL);
}

int tu_mount_nofile(struct tu_mount *m, const char *source, const char *mnt, const char *opts,
		    unsigned long soft, unsigned long hard)
{
	struct rlimit rl = {(rlim_t)soft, (rlim_t)hard};
	return mount_with(m, source, mnt, opts, &rl);
}

int tu_umount(struct tu_mount *m)
{
	int status = 0;
	if (tu_is_snapfs_mount(m->mnt)) {
		pid_t p = fork();
		if (p == 0) {
			int null = open("/dev/null", O_WRONLY);
			dup2(null, 2);
			execlp("fusermount3", "fusermount3", "-u", m->mnt, (char *)NULL);
			_exit(127);
		}
		int st;
		waitpid(p, &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			umount2(m->mnt, MNT_DETACH);
	}
	if (m->pid > 0) {
		for (int i = 0; i < 500; i++) {
			if (waitpid(m->pid, &status, WNOHANG) == m->pid)
				goto reaped;
			struct timespec ts = {0, 10 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
		kill(m->pid, SIGKILL);
		waitpid(m->pid, &status, 0);
		umount2(m->mnt, MNT_DETACH);
	reaped:
		m->pid = 0;
	}
	track(m, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int tu_run_snapfs(const char *const argv[], char *errbuf, size_t errlen)
{
	int pfd[2];
	cr_assert(pipe(pfd) == 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		dup2(pfd[1], 2);
		close(pfd[0]);
		execv(snapfs_bin(), (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	size_t got = 0;
	ssize_t n;
	while (errlen > 1 && (n = read(pfd[0], errbuf + got, errlen - 1 - got)) > 0)
		got += n;
	if (errlen)
		errbuf[got] = 0;
	close(pfd[0]);
	int status;
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
