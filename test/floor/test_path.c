// SPDX-License-Identifier: MIT
/*
 * path_under, the one rule for "this path is that directory or under it"
 * (snapshot path filters), and procfd_path. Edge cases: "..", "//",
 * trailing slashes, "/" and "." themselves, a prefix that is not a parent.
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "path.h"

static void under(const char *path, const char *dir, bool want)
{
	cr_expect_eq(path_under(path, dir), want, "path_under(\"%s\", \"%s\") should be %s", path,
		     dir, want ? "true" : "false");
}

Test(path, a_path_is_under_itself_and_its_parents)
{
	under("a", "a", true);
	under("a/b", "a", true);
	under("a/b/c", "a/b", true);
	under("/a/b/c", "/a", true);
	under("/a/b", "/a/b", true);
}

Test(path, a_name_that_only_starts_like_the_dir_is_not_under_it)
{
	under("a/bc", "a/b", false);
	under("/a/bc", "/a/b", false);
	under("ab", "a", false);
	under("a", "a/b", false);
	under("b/a", "a", false);
}

Test(path, repeated_and_trailing_slashes_do_not_count)
{
	under("a//b", "a/b", true);
	under("a/b", "a//b", true);
	under("a/b/", "a/b", true);
	under("a/b", "a/b/", true);
	under("a/b/c", "a/", true);
	under("a//bc", "a/b", false);
	under("a/bc/", "a/b/", false);
}

Test(path, dot_components_do_not_count)
{
	under("./a/b", "a", true);
	under("a/./b", "a/b", true);
	under("a/b", "./a", true);
	under("a/.", "a", true);
	under("a/.b", "a", true);
	under("a/.b", "a/.", true);
}

Test(path, the_roots_hold_everything_of_their_kind)
{
	under("/", "/", true);
	under("//", "/", true);
	under("/x/y", "/", true);
	under("/x", "//", true);
	under("x", ".", true);
	under("x", "", true);
	under(".", ".", true);
	under("", "", true);
	under("x/y", "./", true);
	under("/", "/x", false);
	under(".", "x", false);
	under("", "x", false);
}

Test(path, absolute_and_relative_never_match)
{
	under("/a", "a", false);
	under("a", "/a", false);
	under("a", "/", false);
	under("/a", ".", false);
}

Test(path, dotdot_is_not_resolved_and_matches_nothing)
{
	under("a/../b", "a", false);
	under("a/..", "a", false);
	under("a/b/..", "a", false);
	under("..", ".", false);
	under("../a", "", false);
	under("/..", "/", false);
	under("a/b", "a/..", false);
	under("b", "a/..", false);
	/* names that merely contain dots are names */
	under("a/..b", "a", true);
	under("a/b..", "a", true);
	under("a/...", "a", true);
}

Test(path, procfd_path_names_the_descriptor)
{
	char buf[PROCFD_PATH_LEN];
	cr_expect_str_eq(procfd_path(0, buf), "/proc/self/fd/0");
	cr_expect_str_eq(procfd_path(42, buf), "/proc/self/fd/42");
	cr_expect_str_eq(procfd_path(INT_MAX, buf), "/proc/self/fd/2147483647");
	cr_expect_str_eq(procfd_path(-1, buf), "/proc/self/fd/-1");
	cr_expect_str_eq(procfd_path(INT_MIN, buf), "/proc/self/fd/-2147483648");
	cr_expect_lt(strlen(buf), PROCFD_PATH_LEN);

	int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	struct stat a, b;
	cr_assert_eq(fstat(fd, &a), 0);
	cr_assert_eq(stat(procfd_path(fd, buf), &b), 0, "stat %s: %m", buf);
	cr_expect(a.st_dev == b.st_dev && a.st_ino == b.st_ino, "%s is not the open file", buf);
	close(fd);
}
