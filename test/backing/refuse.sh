#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Run by test/backing/run.sh sshfs: snapfs refuses SOURCE on sshfs with one
# line naming the reason, exits non-zero, mounts nothing and creates no
# store; with -o coarse_backing it mounts. Needs SNAPFS_BIN and
# SNAPFS_TEST_DIR (the sshfs mount).
set -uo pipefail
bin=${SNAPFS_BIN:?} base=${SNAPFS_TEST_DIR:?}
work=$(mktemp -d "$base/snapfs-refuse-XXXXXX") || exit 1
mnt=$(mktemp -d /dev/shm/snapfs-refuse-mnt-XXXXXX) || exit 1
pid=
cleanup() {
	if grep -q " $mnt fuse.snapfs" /proc/mounts; then
		fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"
	fi
	[ -n "$pid" ] && wait "$pid" 2>/dev/null
	rm -rf "$work"
	rmdir "$mnt" 2>/dev/null
}
trap cleanup EXIT
fail() { echo "refuse.sh: FAIL: $*" >&2; exit 1; }
mkdir "$work/src" && echo data >"$work/src/f" || fail "cannot make SOURCE on $base"

timeout 60 "$bin" -f "$work/src" "$mnt" 2>"$work/err" </dev/null
rc=$?
[ $rc -ne 0 ] || fail "snapfs mounted SOURCE on sshfs without coarse_backing"
[ $rc -ne 124 ] || fail "snapfs neither refused nor exited (timeout)"
[ "$(wc -l <"$work/err")" -eq 1 ] || fail "not one line: $(cat "$work/err")"
grep -q "is on sshfs" "$work/err" || fail "the message does not name sshfs: $(cat "$work/err")"
grep -q " $mnt fuse.snapfs" /proc/mounts && fail "mounted after refusing"
[ ! -e "$work/src/.snapfs" ] || fail "a store was created although the mount was refused"
[ "$(cat "$work/src/f")" = data ] || fail "SOURCE changed"

"$bin" -f -o coarse_backing "$work/src" "$mnt" 2>"$work/err2" &
pid=$!
for _ in $(seq 200); do
	grep -q " $mnt fuse.snapfs" /proc/mounts && break
	sleep 0.05
done
grep -q " $mnt fuse.snapfs" /proc/mounts || fail "-o coarse_backing did not mount: $(cat "$work/err2")"
[ "$(cat "$mnt/f")" = data ] || fail "the mount does not show SOURCE"
echo "refuse.sh: refused without coarse_backing, mounted with it" >&2
echo "[====] Synthesis: Tested: 2 | Passing: 2 | Failing: 0 | Crashing: 0" >&2
