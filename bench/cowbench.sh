#!/usr/bin/env bash
# Writes under a pinned snapshot against writes with no pin, and several
# writers and readers on one file, through one snapfs mount on tmpfs, in one
# run, rounds alternating so that the ratios are read off one machine state.
# Prints Markdown tables (medians over the rounds, ratios paired per round).
#
#   bench/cowbench.sh [BUILD_DIR]     (defaults: build; SIZE=32m ROUNDS=3
#                                      NJOBS=4 RUNTIME=5)
#
# Per round, on two fresh files of SIZE laid down with 1 MiB writes, the
# second pinned, passes of random 4 KiB writes (fio's random map: every
# block once) alternate between them:
#   nopin  the unpinned file (mean of its two passes, before and after);
#   first  the pinned file's first pass: every write is the block's first
#          change since the pin (a copy-on-write each);
#   later  its second pass: every block already preserved;
# then NJOBS writers on one shared file (randwrite 4 KiB, psync, RUNTIME s)
# on bare tmpfs, through snapfs with no pin and under a pin (after one
# preserving pass), and NJOBS readers of one file (randread 4 KiB,
# O_DIRECT so that every read reaches the daemon) on bare tmpfs and snapfs.
set -euo pipefail
build=${1:-build}
snapfs=$(realpath "$build/src/fuse/snapfs")
snapctl=$(realpath "$build/src/client/snapctl")
SIZE=${SIZE:-32m}
ROUNDS=${ROUNDS:-3}
NJOBS=${NJOBS:-4}
RUNTIME=${RUNTIME:-5}
command -v fio >/dev/null || {
	echo "cowbench: fio is not installed (make deps)" >&2
	exit 1
}
[ -x "$snapfs" ] && [ -x "$snapctl" ] || {
	echo "cowbench: no snapfs or snapctl in $build (make build)" >&2
	exit 1
}

work=$(mktemp -d /dev/shm/snapfs-cowbench-XXXXXX)
mkdir -p "$work/bare" "$work/src" "$work/mnt"
pid=
cleanup() {
	if grep -q " $work/mnt fuse.snapfs" /proc/mounts; then
		fusermount3 -u "$work/mnt" 2>/dev/null || umount -l "$work/mnt"
	fi
	[ -n "$pid" ] && wait "$pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

"$snapfs" -f "$work/src" "$work/mnt" ${SNAPFS_OPTS:+-o "$SNAPFS_OPTS"} &
pid=$!
for _ in $(seq 100); do
	grep -q " $work/mnt fuse.snapfs" /proc/mounts && break
	sleep 0.05
done
grep -q " $work/mnt fuse.snapfs" /proc/mounts || {
	echo "cowbench: mount failed" >&2
	exit 1
}

# fio_iops DIR FILE RW NJOBS EXTRA... -> IOPS (write IOPS for writes)
fio_iops() {
	local dir=$1 file=$2 rw=$3 nj=$4
	shift 4
	fio --name=cb --directory="$dir" --filename="$file" --size="$SIZE" --rw="$rw" --bs=4k \
		--ioengine=psync --numjobs="$nj" --group_reporting --output-format=terse \
		--terse-version=3 "$@" |
		awk -F';' '{ printf "%d\n", ($8 > 0 ? $8 : $49) }'
}

lay() { # DIR FILE
	rm -f "$1/$2"
	fio --name=lay --directory="$1" --filename="$2" --size="$SIZE" --rw=write --bs=1m \
		--ioengine=psync --output=/dev/null
}

pin() { "$snapctl" -m "$work/mnt" pin "$work/mnt/$1" | awk '{ print $NF; exit }'; }
release() { "$snapctl" -m "$work/mnt" release "$1" >/dev/null; }

declare -a nopin first later mbare mnopin mpinned rbare rsnap
for r in $(seq "$ROUNDS"); do
	# a: never pinned; b: pinned. Passes alternate a b a b, so that the
	# no-pin figure (mean of a's two passes) brackets b's in time.
	lay "$work/mnt" a.dat
	lay "$work/mnt" b.dat
	id=$(pin b.dat)
	n1=$(fio_iops "$work/mnt" a.dat randwrite 1)
	first+=("$(fio_iops "$work/mnt" b.dat randwrite 1)")
	n2=$(fio_iops "$work/mnt" a.dat randwrite 1)
	later+=("$(fio_iops "$work/mnt" b.dat randwrite 1)")
	nopin+=("$(((n1 + n2) / 2))")
	release "$id"
	rm -f "$work/mnt/a.dat" "$work/mnt/b.dat"

	lay "$work/bare" m.dat
	lay "$work/mnt" m.dat
	mbare+=("$(fio_iops "$work/bare" m.dat randwrite "$NJOBS" --time_based --runtime="$RUNTIME")")
	mnopin+=("$(fio_iops "$work/mnt" m.dat randwrite "$NJOBS" --time_based --runtime="$RUNTIME")")
	id=$(pin m.dat)
	fio_iops "$work/mnt" m.dat randwrite 1 >/dev/null # preserve every block once
	mpinned+=("$(fio_iops "$work/mnt" m.dat randwrite "$NJOBS" --time_based --runtime="$RUNTIME")")
	release "$id"
	rbare+=("$(fio_iops "$work/bare" m.dat randread "$NJOBS" --direct=1 --time_based --runtime="$RUNTIME")")
	rsnap+=("$(fio_iops "$work/mnt" m.dat randread "$NJOBS" --direct=1 --time_based --runtime="$RUNTIME")")
done

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
# ratios A B: per-round A[i]/B[i], median
ratio() {
	local -n a=$1 b=$2
	local v=()
	for i in "${!a[@]}"; do
		v+=("$(awk -v x="${a[$i]}" -v y="${b[$i]}" 'BEGIN { printf "%.2f", (y > 0 ? x / y : 0) }')")
	done
	echo "$(median "${v[@]}") (rounds: ${v[*]})"
}

echo "random 4 KiB writes, one pass over a $SIZE file, $ROUNDS rounds (IOPS, median):"
echo
echo "| pass | IOPS | ratio to no pin |"
echo "|---|---|---|"
echo "| no pin | $(median "${nopin[@]}") | 1.00 |"
echo "| under a pin, first overwrite | $(median "${first[@]}") | $(ratio first nopin) |"
echo "| under a pin, later overwrite | $(median "${later[@]}") | $(ratio later nopin) |"
echo
echo "$NJOBS jobs on one $SIZE file, ${RUNTIME} s each (IOPS, median):"
echo
echo "| job | bare tmpfs | snapfs | ratio |"
echo "|---|---|---|---|"
echo "| $NJOBS writers, no pin | $(median "${mbare[@]}") | $(median "${mnopin[@]}") | $(ratio mnopin mbare) |"
echo "| $NJOBS writers, under a pin (blocks preserved) | $(median "${mbare[@]}") | $(median "${mpinned[@]}") | $(ratio mpinned mbare) |"
echo "| $NJOBS readers (O_DIRECT) | $(median "${rbare[@]}") | $(median "${rsnap[@]}") | $(ratio rsnap rbare) |"
