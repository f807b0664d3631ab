#!/usr/bin/env bash
# Where the daemon's time goes during one fio job on a fresh mount over
# /dev/shm: perf's call-graph samples of the daemon (by symbol and by
# library), then the daemon's system calls (strace -c) for 3 s of the same
# job. Needs perf and strace.
#
#   bench/profile.sh BUILD [RW [BS [SNAPFS_OPTS]]]   (randwrite 4k nowriteback)
#
# SNAPFS_BIN=path profiles another daemon build instead of BUILD's.
set -euo pipefail
build=${1:?usage: bench/profile.sh BUILD [RW [BS [SNAPFS_OPTS]]]}
rw=${2:-randwrite}
bs=${3:-4k}
opts=${4:-nowriteback}
bin=${SNAPFS_BIN:-$build/src/fuse/snapfs}
for t in fio perf strace; do
	command -v "$t" >/dev/null || { echo "profile.sh: $t is not installed" >&2; exit 1; }
done
work=$(mktemp -d /dev/shm/snapfs-prof-XXXXXX)
mkdir "$work/src" "$work/mnt"
pid=
cleanup() {
	if grep -q " $work/mnt fuse" /proc/mounts; then
		fusermount3 -u "$work/mnt" 2>/dev/null || umount -l "$work/mnt"
	fi
	[ -n "$pid" ] && wait "$pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
"$bin" -f "$work/src" "$work/mnt" -o "$opts" &
pid=$!
for _ in $(seq 100); do grep -q " $work/mnt fuse" /proc/mounts && break; sleep 0.05; done
job() {
	fio --name=j --directory="$work/mnt" --filename=b --size=256m --rw="$rw" --bs="$bs" \
		--ioengine=psync --time_based --runtime="$1" --output-format=terse --terse-version=3 |
		awk -F';' '{ print ($7 > 0 ? $7 : $48) " KiB/s" }'
}
fio --name=prep --directory="$work/mnt" --filename=b --size=256m --rw=write --bs=1m \
	--ioengine=psync --output=/dev/null
job 6 >"$work/fio" &
f=$!
sleep 1
perf record -q -F 1999 -g -p "$pid" -o "$work/perf.data" -- sleep 4 >/dev/null 2>&1
wait "$f"
echo "fio $rw $bs under perf: $(cat "$work/fio")"
echo "--- daemon samples by symbol (>= 1.5%)"
perf report -i "$work/perf.data" --no-children --sort sym --percent-limit 1.5 --stdio 2>/dev/null |
	grep -E '^ +[0-9]' || true
echo "--- by library"
perf report -i "$work/perf.data" --no-children --sort dso --stdio 2>/dev/null |
	grep -E '^ +[0-9]' | head -8 || true
job 5 >/dev/null &
f=$!
sleep 1
timeout -s INT 3 strace -c -f -p "$pid" -o "$work/strace" 2>/dev/null || true
wait "$f"
echo "--- daemon system calls, 3 s"
head -20 "$work/strace"
