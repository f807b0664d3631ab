#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Reflink benchmark (issue 13): the first overwrite under a pin against the
# same overwrite without one, through a snapfs mount whose SOURCE and store
# share a loop-mounted XFS (reflink=1) or btrfs image on /dev/shm, with
# reflink copies (default) and with SNAPFS_REFLINK=0 (copies), side by side.
# ext4 and XFS without reflink are the filesystems that cannot clone.
# Prints a Markdown table.
#
#   bench/reflink.sh [BUILD_DIR]   (SIZE_MIB=256 REPS=5 BS_KIB=1024 KINDS="xfs btrfs ...")
set -uo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
snapfs=$(realpath "$build/src/fuse/snapfs")
bench=$(realpath "$build/bench/reflinkbench")
SIZE_MIB=${SIZE_MIB:-256}
REPS=${REPS:-5}
BS_KIB=${BS_KIB:-1024}
KINDS=${KINDS:-xfs btrfs xfs-noreflink ext4}

top=$(mktemp -d /dev/shm/snapfs-rlbench-XXXXXX) || exit 1
pid=
cleanup() {
	if grep -q " $top/mnt fuse.snapfs" /proc/mounts; then
		fusermount3 -u "$top/mnt" 2>/dev/null || umount -l "$top/mnt"
	fi
	[ -n "$pid" ] && wait "$pid" 2>/dev/null
	"$here/../scripts/backing.sh" down "$top/state"
	rm -rf "$top"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "| backing | copies | no pin MiB/s | first overwrite under a pin MiB/s | ratio |"
echo "|---|---|---|---|---|"
for kind in $KINDS; do
	for mode in reflink copy; do
		case $kind in xfs | btrfs) ;; *) [ $mode = copy ] || continue ;; esac
		BACKING_SIZE=$((SIZE_MIB * 6))M "$here/../scripts/backing.sh" up "$kind" "$top/state" \
			"$top/back" || { echo "| $kind | (cannot bring up) | | | |"; continue; }
		mkdir -p "$top/back/src" "$top/mnt"
		if [ $mode = copy ]; then
			SNAPFS_REFLINK=0 "$snapfs" -f "$top/back/src" "$top/mnt" 2>"$top/err" &
		else
			"$snapfs" -f "$top/back/src" "$top/mnt" 2>"$top/err" &
		fi
		pid=$!
		for _ in $(seq 100); do
			grep -q " $top/mnt fuse.snapfs" /proc/mounts && break
			sleep 0.05
		done
		if read -r plain pinned ratio < <("$bench" "$top/mnt" "$SIZE_MIB" "$REPS" "$BS_KIB"); then
			echo "| $kind | $mode | $plain | $pinned | $ratio |"
		else
			echo "| $kind | $mode | (failed: $(tail -n 1 "$top/err")) | | |"
		fi
		fusermount3 -u "$top/mnt" 2>/dev/null || umount -l "$top/mnt"
		wait "$pid" 2>/dev/null
		pid=
		"$here/../scripts/backing.sh" down "$top/state"
	done
done
