#!/usr/bin/env bash
# Passthrough benchmark: the same fio jobs on a bare tmpfs directory and
# through a snapfs mount of another directory on the same tmpfs, in one run,
# so the ratio is read off one machine state. Prints a Markdown table.
#
#   bench/run.sh [BUILD_DIR]        (defaults: build; SIZE=1g RUNTIME=5 REPS=3)
#
# Then the cost of snapshots through the mount (bench/snapbench.c), the
# deferred-I/O segment (bench/segbench.c; SEG_MIB, SEG_REPS) and the
# store's own benchmarks (bench/store/bench_store.c, no FUSE). With
# PEER=/path/to/passthrough_hp (libfuse's example, built by you), last the
# side-by-side comparison against it (bench/peer.sh); without, a line says
# it was skipped.
set -euo pipefail
build=${1:-build}
snapfs=$(realpath "$build/src/fuse/snapfs")
SIZE=${SIZE:-1g}
RUNTIME=${RUNTIME:-5}
REPS=${REPS:-3}
command -v fio >/dev/null || { echo "bench: fio is not installed (make deps)" >&2; exit 1; }

work=$(mktemp -d /dev/shm/snapfs-bench-XXXXXX)
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
for _ in $(seq 100); do grep -q " $work/mnt fuse.snapfs" /proc/mounts && break; sleep 0.05; done
grep -q " $work/mnt fuse.snapfs" /proc/mounts || { echo "bench: mount failed" >&2; exit 1; }

# name rw bs extra...
jobs=(
	"seqread read 1m --invalidate=1"
	"seqwrite write 1m"
	"randread randread 4k --invalidate=1"
	"randwrite randwrite 4k"
)

# fio_bw DIR NAME RW BS EXTRA... -> MiB/s (median of REPS)
fio_bw() {
	local dir=$1 name=$2 rw=$3 bs=$4
	shift 4
	local vals=()
	for _ in $(seq "$REPS"); do
		local out
		out=$(fio --name="$name" --directory="$dir" --filename=bench.dat --size="$SIZE" \
			--rw="$rw" --bs="$bs" --ioengine=psync --numjobs=1 --time_based \
			--runtime="$RUNTIME" --group_reporting --output-format=terse --terse-version=3 "$@")
		# terse v3: field 7 read KiB/s, field 48 write KiB/s
		local kbs
		kbs=$(echo "$out" | awk -F';' '{ print ($7 > 0 ? $7 : $48) }')
		vals+=("$((kbs / 1024))")
	done
	printf '%s\n' "${vals[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

# Lay the file down once on each side so reads have data.
for d in "$work/bare" "$work/mnt"; do
	fio --name=prep --directory="$d" --filename=bench.dat --size="$SIZE" --rw=write --bs=1m \
		--ioengine=psync --output=/dev/null
done

echo "| job | bare tmpfs MiB/s | snapfs MiB/s | ratio |"
echo "|---|---|---|---|"
for j in "${jobs[@]}"; do
	set -- $j
	name=$1 rw=$2 bs=$3
	shift 3
	bare=$(fio_bw "$work/bare" "$name" "$rw" "$bs" "$@")
	over=$(fio_bw "$work/mnt" "$name" "$rw" "$bs" "$@")
	ratio=$(awk -v a="$over" -v b="$bare" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
	echo "| $name ($bs) | $bare | $over | $ratio |"
done

echo
echo "| snapshots through the mount (snapbench, ${SNAP_MIB:-256} MiB files) | value | ratio |"
echo "|---|---|---|"
"$(dirname "$snapfs")/../../bench/snapbench" "$work/mnt" "${SNAP_MIB:-256}"

echo
echo "deferred-I/O segment (segbench, ${SEG_MIB:-1024} MiB, ${SEG_REPS:-5} runs):"
"$(dirname "$snapfs")/../../bench/segbench" "$work/mnt" "${SEG_MIB:-1024}" "${SEG_REPS:-5}"

echo
"$(dirname "$snapfs")/../../bench/store/bench_store" ${STORE_BENCH:-pin cow}

echo
if [ -n "${PEER:-}" ]; then
	"$(dirname "$0")/peer.sh" "$build" "$PEER"
else
	echo "bench/peer.sh skipped: set PEER=/path/to/passthrough_hp (libfuse's example, built from its source) to compare"
fi
