#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Run one test binary with SOURCE (and the tests' scratch directories) on a
# backing filesystem, and the store on the same or on another one:
#
#   test/backing/run.sh [--long] SRCKIND STOREKIND|same -- COMMAND [ARGS...] [-- COMMAND...]
#
# Brings the backings up with scripts/backing.sh (loop images on /dev/shm,
# sshd/sshfs, glusterd), points the test helpers at them
# (SNAPFS_TEST_DIR, SNAPFS_TEST_STORE; test/common/testutil.h), runs each
# COMMAND in turn (all of them, even after a failure), and takes everything down on every exit path (trap), so a failing test
# leaves no mount, loop device or daemon. Prints the number of Criterion
# tests that ran. Exits 77 (ctest: skipped) when the backing cannot run on
# this machine or, with --long, when SNAPFS_LONG is not set.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
backing=$here/../../scripts/backing.sh
long=0
if [ "${1:-}" = --long ]; then
	long=1
	shift
fi
[ $# -ge 4 ] && [ "$3" = -- ] || {
	echo "usage: $0 [--long] SRCKIND STOREKIND|same -- COMMAND..." >&2
	exit 2
}
srckind=$1 storekind=$2
shift 3
if [ $long -eq 1 ] && [ -z "${SNAPFS_LONG:-}" ]; then
	echo "backing: $srckind/$storekind: long matrix entry; runs in make check-long (SNAPFS_LONG=1)"
	exit 77
fi

# The suites' own long variants (more seeds and steps) run on tmpfs; here
# each runs its standard length on every backing.
unset SNAPFS_LONG

top=$(mktemp -d /dev/shm/snapfs-bk-XXXXXX) || exit 1
chmod 0755 "$top" # the view's tests act as nobody below it
cleanup() {
	"$backing" down "$top/src" 2>/dev/null
	[ "$storekind" != same ] && "$backing" down "$top/store" 2>/dev/null
	rm -rf "$top"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$backing" up "$srckind" "$top/src" "$top/src.mnt"
rc=$?
[ $rc -eq 0 ] || exit $rc
export SNAPFS_TEST_DIR=$top/src.mnt
unset SNAPFS_TEST_STORE
if [ "$storekind" != same ]; then
	"$backing" up "$storekind" "$top/store" "$top/store.mnt"
	rc=$?
	[ $rc -eq 0 ] || exit $rc
	export SNAPFS_TEST_STORE=$top/store.mnt
fi
[ -d "$top/src/direct" ] && export SNAPFS_TEST_DIRECT=$top/src/direct
# sshfs exports this directory: a writer on the "server" side.
[ -d "$top/src/export" ] && export SNAPFS_TEST_DIRECT=$top/src/export
# snapfs refuses SOURCE on sshfs unless told that only the mount writes it
# (docs/BACKINGS.md); the suites run there with that said, except the test
# of the refusal itself (refuse.sh, which runs snapfs by itself).
unset SNAPFS_TEST_OPTS
[ "$srckind" = sshfs ] && export SNAPFS_TEST_OPTS=coarse_backing

rc=0
cmd=()
run_one() {
	[ ${#cmd[@]} -gt 0 ] || return 0
	"${cmd[@]}" 2>"$top/err.one"
	local r=$?
	cat "$top/err.one" >&2
	cat "$top/err.one" >>"$top/err"
	[ $r -eq 0 ] || rc=$r
	cmd=()
}
for a in "$@"; do
	if [ "$a" = -- ]; then
		run_one
	else
		cmd+=("$a")
	fi
done
run_one
n=$(grep -o "Tested: [0-9]*" "$top/err" | awk "{ s += \$2 } END { print s }")
echo "backing: source on $srckind, store on $storekind: ${n:-?} tests, exit $rc"
# A filter that matches nothing must not pass for a green run; every test
# skipping itself (e.g. reflink tests on a filesystem that cannot clone) is a
# skip.
if [ $rc -eq 0 ] && [ "${n:-0}" = 0 ]; then
	if grep -q '^\[SKIP\]' "$top/err"; then
		echo "backing: every test skipped itself on $srckind"
		rc=77
	else
		echo "backing: no test ran (check the --filter patterns)" >&2
		rc=1
	fi
fi
exit $rc
