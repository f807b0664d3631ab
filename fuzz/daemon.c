// SPDX-License-Identifier: MIT
/*
 * daemon.h's harness. The daemon is our child, started with -f and
 * PR_SET_PDEATHSIG so that it goes (and unmounts) when the fuzzer dies in
 * a way atexit() does not see; its log goes to SOURCE/../daemon.log,
 * printed when it died. Scratch lives in /dev/shm (tmpfs), removed at exit.
 */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FUSE_MAGIC 0x65735546

char fz_source[64], fz_mnt[80];
static char scratch[48], logpath[80];
static pid_t daemon_pid;
static void print_answers(void);

static void put_file(const char *rel, const char *text, size_t reps)
{
	char p[160];
	snprintf(p, sizeof(p), "%s/%s", fz_source, rel);
	FILE *f = fopen(p, "w");
	if (!f) {
		perror(p);
		exit(1);
	}
	for (size_t i = 0; i < reps; i++)
		fputs(text, f);
	fclose(f);
}

static int mounted(void)
{
	struct statfs s;
	return statfs(fz_mnt, &s) == 0 && s.f_type == FUSE_MAGIC;
}

static void stop(void)
{
	if (daemon_pid <= 0)
		return;
	pid_t pid = daemon_pid;
	daemon_pid = 0;
	/* A dead daemon's mount fails statfs (ENOTCONN): unmount regardless. */
	if (umount2(fz_mnt, 0))
		umount2(fz_mnt, MNT_DETACH);
	int st;
	for (int i = 0; i < 300 && waitpid(pid, &st, WNOHANG) == 0; i++)
		usleep(10000);
	if (kill(pid, 0) == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
	umount2(fz_mnt, MNT_DETACH);
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch);
	if (system(cmd))
		fprintf(stderr, "snapfs-fuzz: could not remove %s\n", scratch);
}

static void on_signal(int sig)
{
	stop();
	signal(sig, SIG_DFL);
	raise(sig);
}

void fz_start(void)
{
	if (daemon_pid)
		return;
	const char *bin = getenv("SNAPFS_BIN");
	if (!bin || access(bin, X_OK)) {
		fprintf(stderr,
			"snapfs-fuzz: set SNAPFS_BIN to the daemon (build/src/fuse/snapfs)\n");
		exit(1);
	}
	snprintf(scratch, sizeof(scratch), "/dev/shm/snapfs-fuzz.XXXXXX");
	if (!mkdtemp(scratch)) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(fz_source, sizeof(fz_source), "%s/src", scratch);
	snprintf(fz_mnt, sizeof(fz_mnt), "%s/mnt", scratch);
	snprintf(logpath, sizeof(logpath), "%s/daemon.log", scratch);
	char sub[96];
	snprintf(sub, sizeof(sub), "%s/dir", fz_source);
	if (mkdir(fz_source, 0755) || mkdir(fz_mnt, 0755) || mkdir(sub, 0755)) {
		perror("mkdir");
		exit(1);
	}
	put_file("a", "the first file\n", 1);
	put_file("b", "0123456789abcdef", 8192); /* 128 KiB: several blocks */
	put_file("dir/c", "in a directory\n", 10);
	put_file("dir/d", "", 0);
	struct stat before;
	stat(fz_mnt, &before);
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(1);
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(bin, bin, "-f", fz_source, fz_mnt, (char *)NULL);
		_exit(127);
	}
	daemon_pid = pid;
	atexit(stop);
	if (getenv("SNAPFS_FUZZ_ANSWERS"))
		atexit(print_answers);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	for (int i = 0; i < 1000; i++) {
		struct stat now;
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			fprintf(stderr, "snapfs-fuzz: the daemon did not start\n");
			exit(1); /* stop() at exit */
		}
		if (mounted() && stat(fz_mnt, &now) == 0 && now.st_dev != before.st_dev)
			return;
		usleep(10000);
	}
	fprintf(stderr, "snapfs-fuzz: no mount after 10 s\n");
	stop();
	exit(1);
}

void fz_alive(void)
{
	int st;
	struct stat s;
	pid_t w = waitpid(daemon_pid, &st, WNOHANG);
	if (w == 0 && kill(daemon_pid, 0) == 0 && stat(fz_mnt, &s) == 0 && mounted())
		return;
	fprintf(stderr, "snapfs-fuzz: the daemon (pid %d) died", (int)daemon_pid);
	if (w == daemon_pid && WIFSIGNALED(st))
		fprintf(stderr, " of signal %d", WTERMSIG(st));
	else if (w == daemon_pid)
		fprintf(stderr, ", exit %d", WEXITSTATUS(st));
	fprintf(stderr, "; its log:\n");
	FILE *f = fopen(logpath, "r");
	char line[512];
	while (f && fgets(line, sizeof(line), f))
		fputs(line, stderr);
	if (f)
		fclose(f);
	stop();
	abort();
}

/* libFuzzer's extra counters: one per (what, -status) pair. */
__attribute__((used, section("__libfuzzer_extra_counters"))) static uint8_t answers[64 * 160];
static uint32_t seen[64 * 160];

void fz_feedback(unsigned what, int status)
{
	unsigned e = status <= 0 && status > -158 ? (unsigned)-status : 159;
	answers[(what % 64) * 160 + e]++;
	seen[(what % 64) * 160 + e]++;
}

/* SNAPFS_FUZZ_ANSWERS=1: print how often each answer came, at exit. */
static void print_answers(void)
{
	for (unsigned i = 0; i < 64 * 160; i++)
		if (seen[i])
			fprintf(stderr, "snapfs-fuzz: answer %u/-%u: %u\n", i / 160, i % 160,
				seen[i]);
}

int fz_call(int fd, struct snapfs_req *r)
{
	return ioctl(fd, SNAPFS_IOC_CALL, r) ? -errno : 0;
}
