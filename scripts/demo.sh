#!/usr/bin/env bash
# `make demo`: mount snapfs on top of a fresh tmpfs directory and use it
# with ordinary tools, then unmount and clean up, leaving no mount behind.
set -euo pipefail
build=${1:-build}
snapfs=$(realpath "$build/src/fuse/snapfs")
snapctl=$(realpath "$build/src/client/snapctl")
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it mounts a tmpfs and a FUSE filesystem)" >&2; exit 1; }

dir=$(mktemp -d /tmp/snapfs-demo-XXXXXX)
cleanup() {
	cd /
	grep -q " $dir fuse.snapfs" /proc/mounts && { fusermount3 -u "$dir" 2>/dev/null || umount -l "$dir"; }
	# The daemon holds the tmpfs until it has exited: give it a moment.
	for _ in $(seq 50); do
		grep -q " $dir tmpfs" /proc/mounts || break
		umount "$dir" 2>/dev/null && break
		sleep 0.1
	done
	grep -q " $dir tmpfs" /proc/mounts && umount -l "$dir"
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

step "snapshots: mount again, with open-time snapshots (-o snapshot=open)"
run "$snapfs" -o snapshot=open "$dir" "$dir"
cd "$dir"
run dd if=/dev/urandom of=live.bin bs=1M count=32 status=none
before=$(sha256sum live.bin | cut -d' ' -f1)
printf '$ %s\n' "$snapctl pin -l demo live.bin"
id=$("$snapctl" pin -l demo live.bin)
echo "$id"
run "$snapctl" list

step "a reader opens live.bin, a writer rewrites every byte, then the reader reads"
exec 3< live.bin # a read-only open: its own snapshot, taken now
run dd if=/dev/urandom of=live.bin bs=1M count=32 conv=notrunc status=none
reader=$(sha256sum <&3 | cut -d' ' -f1)
exec 3<&-
after=$(sha256sum live.bin | cut -d' ' -f1)
snap=$(sha256sum ".snapshots/$id/live.bin" | cut -d' ' -f1)
printf '%-34s %s\n' "sha256 at pin time:" "$before" "live file now:" "$after" \
	"the reader (opened before):" "$reader" "snapshot $id (.snapshots/$id):" "$snap"
if [ "$reader" = "$before" ] && [ "$snap" = "$before" ] && [ "$after" != "$before" ]; then
	echo "=> the snapshot and the reader still see the bytes of their instant"
else
	echo "demo: snapshot mismatch" >&2
	exit 1
fi

step "the store kept the old blocks; releasing the snapshot frees them"
run "$snapctl" stats
run "$snapctl" release "$id"
run "$snapctl" stats
run ls .snapshots
cd /
run fusermount3 -u "$dir"
echo
echo "demo: done, cleaning up"
