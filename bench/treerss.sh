#!/usr/bin/env bash
# What the daemon holds with a large tree known and pinned: builds a tree of
# NFILES empty files (directories of 1,000) directly in SOURCE, mounts the
# daemon under a soft descriptor limit of 1024 (hard 20,000, which the
# daemon raises its soft limit to), and after each step prints its VmRSS,
# VmHWM and open descriptors (from /proc/PID):
#   mount      right after the mount;
#   walk       `find MNT/tree -type f -printf '%s\n'` (a stat of every file:
#              the daemon then knows every inode);
#   pin        `snapctl pin -r MNT/tree`;
#   view       `find` of the snapshot's view MNT/.snapshots/ID/tree;
#   change     chmod of one file in each directory (namespace saves);
#   drop       `echo 2 > /proc/sys/vm/drop_caches` (the kernel forgets its
#              dentries and inodes, and sends FORGET for them);
#   rewalk     the live walk and the view walk again.
# Root only (mount, drop_caches). Everything lives in /dev/shm/snapfs-treerss-*
# and is removed at the end.
#
#   bench/treerss.sh [BUILD_DIR] [NFILES]     (defaults: build 1000000)
set -euo pipefail
build=${1:-build}
nfiles=${2:-1000000}
snapfs=$(realpath "$build/src/fuse/snapfs")
snapctl=$(realpath "$build/src/client/snapctl")
[ "$(id -u)" = 0 ] || { echo "treerss: run as root (mount, drop_caches)" >&2; exit 1; }

work=$(mktemp -d /dev/shm/snapfs-treerss-XXXXXX)
mkdir -p "$work/src/tree" "$work/mnt"
pid=
cleanup() {
	if grep -q " $work/mnt fuse.snapfs" /proc/mounts; then
		fusermount3 -u "$work/mnt" 2>/dev/null || umount -l "$work/mnt"
	fi
	[ -n "$pid" ] && wait "$pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

t0=$(date +%s.%N)
ndirs=$(((nfiles + 999) / 1000))
if command -v python3 >/dev/null; then # no fork per directory
	python3 - "$work/src/tree" "$nfiles" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = "%s/d%d" % (root, i // 1000)
    if i % 1000 == 0:
        os.mkdir(d)
    os.close(os.open("%s/f%d" % (d, i % 1000), os.O_WRONLY | os.O_CREAT, 0o644))
PY
else
	for ((d = 0; d < ndirs; d++)); do
		n=$((nfiles - d * 1000))
		((n > 1000)) && n=1000
		mkdir "$work/src/tree/d$d"
		(cd "$work/src/tree/d$d" && seq -f 'f%.0f' 0 $((n - 1)) | xargs touch)
	done
fi
printf 'tree: %d files in %d directories, made in %.1f s\n' "$nfiles" "$ndirs" \
	"$(echo "$(date +%s.%N) - $t0" | bc)"

prlimit --nofile=1024:20000 "$snapfs" -f "$work/src" "$work/mnt" &
pid=$!
for _ in $(seq 200); do grep -q " $work/mnt fuse.snapfs" /proc/mounts && break; sleep 0.05; done
grep -q " $work/mnt fuse.snapfs" /proc/mounts || { echo "treerss: mount failed" >&2; exit 1; }

kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$pid/status"; }
printf '| step | seconds | VmRSS KiB | VmHWM KiB | descriptors | bytes/file (RSS) |\n'
printf '|---|---|---|---|---|---|\n'
base=
step() { # NAME SECONDS
	local rss hwm fds
	rss=$(kib VmRSS)
	hwm=$(kib VmHWM)
	fds=$(ls "/proc/$pid/fd" | wc -l)
	[ -n "$base" ] || base=$rss
	printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$rss" "$hwm" "$fds" \
		"$(((rss - base) * 1024 / nfiles))"
}
timed() { # NAME CMD...: runs CMD, then prints the step with its time
	local name=$1 s e
	shift
	s=$(date +%s.%N)
	"$@"
	e=$(date +%s.%N)
	step "$name" "$(printf '%.1f' "$(echo "$e - $s" | bc)")"
}
count() { # DIR: find must see (and stat: a lookup each) every file
	local got
	got=$(find "$1" -type f -printf '%s\n' | wc -l)
	[ "$got" = "$nfiles" ] || { echo "treerss: $1: $got files, not $nfiles" >&2; exit 1; }
}
pin() { id=$("$snapctl" pin -r "$work/mnt/tree"); }
change() {
	for ((d = 0; d < ndirs; d++)); do chmod 600 "$work/mnt/tree/d$d/f0"; done
}
drop() { sync; echo 2 >/proc/sys/vm/drop_caches; sleep 2; }

step mount 0
timed walk count "$work/mnt/tree"
timed pin pin
view="$work/mnt/.snapshots/$id/tree"
timed view count "$view"
timed change change
timed drop drop
timed "walk again" count "$work/mnt/tree"
timed "view again" count "$view"
timed "drop again" drop
grep -E '^(Max open files)' "/proc/$pid/limits" | sed 's/^/daemon: /'
"$snapctl" -m "$work/mnt" release "$id" >/dev/null
