// SPDX-License-Identifier: MIT
/*
 * The write gate: every writer (write, O_APPEND write, truncate, O_TRUNC
 * open, fallocate punch, copy_file_range, snapctl restore, a segment's
 * batched write-back) leaves set-id bits exactly as write(2) by the same
 * caller leaves them on a bare tmpfs: cleared for an unprivileged writer
 * (set-group-ID only when group-executable), kept for root. Each case runs
 * the same operation on a bare tmpfs directory and through a root daemon
 * mounted with allow_other, as uid 65534 and as root, and compares.
 */
#include "snaputil.h"

#include <grp.h>
#include <sys/sendfile.h>

TestSuite(gate, .init = fx_setup, .fini = fx_teardown, .timeout = 120);

#define NOBODY 65534

enum op { OP_WRITE, OP_APPEND, OP_TRUNCATE, OP_OTRUNC, OP_PUNCH, OP_COPY, OP_SEGWRITE, OP_N };
static const char *const op_name[OP_N] = {
    "write", "append write",	"truncate",	     "O_TRUNC open",
    "punch", "copy_file_range", "segment write-back"};

/* Do op on dir/f (dir/src is a readable copy source); 0 or an errno. */
static int do_op(enum op op, const char *dir)
{
	char f[1024], s[1024];
	tu_path(f, sizeof(f), dir, "f");
	tu_path(s, sizeof(s), dir, "src");
	int fd = -1, rc = 0;
	switch (op) {
	case OP_WRITE:
	case OP_APPEND:
		fd = open(f, O_WRONLY | (op == OP_APPEND ? O_APPEND : 0));
		if (fd < 0 || write(fd, "zz", 2) != 2)
			rc = errno;
		break;
	case OP_TRUNCATE:
		rc = truncate(f, 3) ? errno : 0;
		break;
	case OP_OTRUNC:
		fd = open(f, O_WRONLY | O_TRUNC);
		rc = fd < 0 ? errno : 0;
		break;
	case OP_PUNCH:
		fd = open(f, O_WRONLY);
		if (fd < 0 || fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096))
			rc = errno;
		break;
	case OP_COPY: {
		int in = open(s, O_RDONLY);
		fd = open(f, O_WRONLY);
		loff_t a = 0, b = 0;
		if (in < 0 || fd < 0 || copy_file_range(in, &a, fd, &b, 100, 0) != 100)
			rc = errno;
		if (in >= 0)
			close(in);
		break;
	}
	case OP_SEGWRITE: {
		/* On the bare tmpfs the same bytes go by pwrite. */
		fd = open(f, O_RDWR);
		if (fd < 0) {
			rc = errno;
			break;
		}
		char page[4096];
		memset(page, 'q', sizeof(page));
		if (strcmp(dir, mnt)) {
			rc = pwrite(fd, page, sizeof(page), 0) == (ssize_t)sizeof(page) ? 0 : errno;
			break;
		}
		struct snapseg *seg = snapseg_create(1 << 20);
		if (!seg) {
			rc = errno;
			break;
		}
		char *b = snapseg_base(seg);
		if (snapseg_read(seg, b, fd, 8192, 0) != 8192)
			rc = errno;
		memset(b, 'q', 4096);
		if (!rc && snapseg_write(seg, b, fd, 8192, 0) != 8192)
			rc = errno;
		snapseg_destroy(seg);
		break;
	}
	case OP_N:
		break;
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Run do_op as uid (and gid) in a child; its errno, 0 on success. */
static int run_as(uid_t uid, enum op op, const char *dir)
{
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		if (uid && (setgroups(0, NULL) || setgid(uid) || setuid(uid)))
			_exit(200);
		_exit(do_op(op, dir));
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st), "child died: %d", st);
	return WEXITSTATUS(st);
}

/* A root-owned file f (and a copy source src) in dir with mode. */
static void make_file(const char *dir, mode_t mode)
{
	char f[1024], s[1024];
	tu_path(f, sizeof(f), dir, "f");
	tu_path(s, sizeof(s), dir, "src");
	char buf[8192];
	memset(buf, 'a', sizeof(buf));
	unlink(f);
	cr_assert_eq(tu_write_file(f, buf, sizeof(buf)), 0);
	cr_assert_eq(tu_write_file(s, buf, sizeof(buf)), 0);
	chmod(s, 0644);
	cr_assert_eq(chmod(f, mode), 0, "chmod %s: %s", f, strerror(errno));
}

static mode_t mode_of(const char *path)
{
	struct stat st;
	cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
	return st.st_mode & 07777;
}

static const mode_t modes[] = {04777, 02777, 06777, 02767, 04666, 06755};

Test(gate, every_writer_leaves_setid_bits_as_write_on_tmpfs)
{
	fx_mount("allow_other");
	char *bare = tu_tmpdir("bare");
	chmod(bare, 0777);
	chmod(mnt, 0777);
	for (enum op op = 0; op < OP_N; op++)
		for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
			for (int who = 0; who < 2; who++) {
				uid_t uid = who ? NOBODY : 0;
				make_file(bare, modes[i]);
				make_file(mnt, modes[i]);
				pin1("f"); /* copy-on-write in the path too */
				int want_rc = run_as(uid, op, bare);
				int got_rc = run_as(uid, op, mnt);
				char bf[1024];
				tu_path(bf, sizeof(bf), bare, "f");
				mode_t want = mode_of(bf), got = mode_of(SP("f"));
				cr_expect_eq(got_rc, want_rc,
					     "%s as uid %u on mode %04o: snapfs %s, tmpfs %s",
					     op_name[op], uid, modes[i], strerror(got_rc),
					     strerror(want_rc));
				cr_expect_eq(got, want,
					     "%s as uid %u on mode %04o: snapfs left %04o, "
					     "tmpfs %04o",
					     op_name[op], uid, modes[i], got, want);
			}
	tu_rm_rf(bare);
	free(bare);
}

/* RESTORE by uid of the snapshot id (theirs); 0 or -errno. */
static int restore_as(uid_t uid, uint64_t id)
{
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		if (uid && (setgroups(0, NULL) || setgid(uid) || setuid(uid)))
			_exit(200);
		struct snapfs_req *r = calloc(1, sizeof(*r));
		r->op = SNAPFS_OP_RESTORE;
		r->id = id;
		int rc = ctl(r);
		struct snapfs_rec_restore rec;
		memcpy(&rec, r->data, sizeof(rec));
		_exit(rc ? -rc : r->count != 1 ? 201 : rec.status ? -rec.status : 0);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st), "child died: %d", st);
	return WEXITSTATUS(st);
}

Test(gate, restore_leaves_setid_bits_as_write_by_the_restorer)
{
	fx_mount("allow_other");
	chmod(mnt, 0777);
	char *bare = tu_tmpdir("bare");
	chmod(bare, 0777);
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		for (int who = 0; who < 2; who++) {
			uid_t uid = who ? NOBODY : 0;
			if (uid && !(modes[i] & 02))
				continue; /* nobody could not write it back */
			/* What a write by uid does to the mode on tmpfs. */
			make_file(bare, modes[i]);
			cr_assert_eq(run_as(uid, OP_WRITE, bare), 0);
			char bf[1024];
			tu_path(bf, sizeof(bf), bare, "f");
			mode_t want = mode_of(bf);
			/* The same file pinned by uid, changed, set-id again, restored by uid. */
			make_file(mnt, 0666);
			uint64_t id = pin_as(uid, "f");
			int fd = open(MP("f"), O_WRONLY);
			cr_assert(fd >= 0);
			cr_assert_eq(pwrite(fd, "CHANGED", 7, 100), 7);
			close(fd);
			cr_assert_eq(chmod(MP("f"), modes[i]), 0);
			int rc = restore_as(uid, id);
			cr_expect_eq(rc, 0, "restore as %u on mode %04o: %s", uid, modes[i],
				     strerror(rc));
			cr_expect_eq(mode_of(SP("f")), want,
				     "restore as uid %u on mode %04o left %04o; write(2) on "
				     "tmpfs leaves %04o",
				     uid, modes[i], mode_of(SP("f")), want);
		}
	tu_rm_rf(bare);
	free(bare);
}
