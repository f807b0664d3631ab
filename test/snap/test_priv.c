// SPDX-License-Identifier: MIT
/*
 * A snapshot never grants a privilege the live file no longer grants: a
 * set-user-ID program pinned, then made harmless on the live side, must not
 * run with its owner's rights from the view; file capabilities are not
 * served from the view either. The mount is made with -o suid (what
 * mount(8) and fstab give a root mount when the options do not say
 * nosuid), so the kernel would honour set-id bits the view showed.
 */
#include "snaputil.h"

#include <grp.h>
#include <sys/xattr.h>

TestSuite(priv, .init = fx_setup, .fini = fx_teardown, .timeout = 60);

#define NOBODY 65534

/* Run path as nobody; its stdout (first line) into out. */
static void run_as_nobody(const char *path, const char *arg, char *out, size_t len)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 1);
		if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
			_exit(100);
		execl(path, path, arg, (char *)NULL);
		_exit(101);
	}
	close(p[1]);
	ssize_t n = read(p[0], out, len - 1);
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s as nobody: status %d", path, st);
	out[n > 0 ? n : 0] = 0;
	char *nl = strchr(out, '\n');
	if (nl)
		*nl = 0;
}

static void copy_file(const char *from, const char *to)
{
	static char buf[1 << 20];
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0755);
	cr_assert(in >= 0 && out >= 0);
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		cr_assert_eq(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
}

Test(priv, setuid_program_pinned_then_defused_runs_without_privilege_from_the_view)
{
	fx_mount("allow_other,suid");
	chmod(mnt, 0755);
	copy_file("/usr/bin/id", MP("id"));
	cr_assert_eq(chown(MP("id"), 0, 0), 0);
	cr_assert_eq(chmod(MP("id"), 04755), 0);
	char out[64];
	/* Live and set-user-ID: the kernel honours it on this mount. */
	run_as_nobody(MP("id"), "-u", out, sizeof(out));
	cr_assert_str_eq(out, "0", "precondition: the live setuid copy runs as root (got %s)", out);
	uint64_t id = pin_as(NOBODY, "id") /* a user pins a set-user-ID program it may read */;
	cr_assert_eq(chmod(MP("id"), 0755), 0); /* root defuses the live file */
	run_as_nobody(VP(id, "id"), "-u", out, sizeof(out));
	cr_expect_str_eq(out, "65534", "the snapshot's copy ran with euid %s", out);
	struct stat st;
	cr_assert_eq(stat(VP(id, "id"), &st), 0);
	cr_expect_eq(st.st_mode & (S_ISUID | S_ISGID), 0, "view shows mode %o", st.st_mode);
}

Test(priv, file_capabilities_are_not_served_from_the_view)
{
	fx_mount("allow_other,suid");
	copy_file("/usr/bin/id", MP("capid"));
	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "setcap cap_setuid+ep '%s'", MP("capid"));
	if (system(cmd) != 0)
		cr_skip_test("setcap through the mount failed (no security.capability support?)");
	uint64_t id = pin1("capid");
	char val[64];
	cr_assert(getxattr(MP("capid"), "security.capability", val, sizeof(val)) > 0,
		  "precondition: the live file carries a capability");
	errno = 0;
	cr_expect_eq(getxattr(VP(id, "capid"), "security.capability", val, sizeof(val)), -1);
	cr_expect_eq(errno, ENODATA, "view served security.capability (errno %d)", errno);
}
