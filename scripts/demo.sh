#!/usr/bin/env bash
# `make demo`: mount snapfs on top of a fresh tmpfs directory and use it
# with ordinary tools, then unmount and clean up, leaving no mount behind.
set -euo pipefail
build=${1:-build}
snapfs=$(realpath "$build/src/fuse/snapfs")
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it mounts a tmpfs and a FUSE filesystem)" >&2; exit 1; }

dir=$(mktemp -d /tmp/snapfs-demo-XXXXXX)
cleanup() {
	grep -q " $dir fuse.snapfs" /proc/mounts && { fusermount3 -u "$dir" 2>/dev/null || umount -l "$dir"; }
	grep -q " $dir tmpfs" /proc/mounts && umount "$dir"
	rmdir "$dir" 2>/dev/null || true
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "a fresh tmpfs at $dir, with a file in it"
mount -t tmpfs -o size=256m snapfs-demo "$dir"
echo "written before the mount" > "$dir/before.txt"
run ls -la "$dir"

step "mount snapfs on top of the same directory (SOURCE == MOUNTPOINT)"
run "$snapfs" "$dir" "$dir"
run grep " $dir " /proc/mounts
cd "$dir"

step "ordinary tools through the overlay"
run cat before.txt
run mkdir -p docs/sub
run cp before.txt docs/sub/copy.txt
run dd if=/dev/urandom of=data.bin bs=1M count=16 status=none
run sha256sum data.bin docs/sub/copy.txt
run ln -s docs/sub/copy.txt link
run mv data.bin docs/
run setfattr -n user.note -v hello docs/data.bin
run getfattr -n user.note docs/data.bin
run find . -printf '%M %n %s %p\n'
step "the store (.snapfs) exists in the directory but is invisible through the mount"
run ls -la
run stat .snapfs || true
run df -h .
cd /

step "unmount: the directory holds the live data as plain files"
run fusermount3 -u "$dir"
run ls -la "$dir" "$dir/docs"
run sha256sum "$dir/docs/data.bin"
echo
echo "demo: done, cleaning up"
