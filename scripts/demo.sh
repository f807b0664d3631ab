#!/usr/bin/env bash
# `make demo`: the main job of snapfs, as it happens. A writer keeps
# rewriting a small ledger (four files that always hold the same counter,
# give or take the one being written) in two trees: one plain, one under
# snapfs. A slow backup copies each tree file by file while the writer
# runs: the plain copy tears (its files come from different instants),
# the copy read from a snapshot pinned of the snapfs tree does not.
# Builds only the daemon and snapctl, prints no build output, and no
# colour unless stdout is a terminal. Leaves no mount behind.
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it mounts a tmpfs and a FUSE filesystem)" >&2; exit 1; }
if [ -t 1 ]; then b=$'\033[1m' n=$'\033[0m'; else b= n=; fi
step() { printf '\n%s== %s%s\n' "$b" "$*" "$n"; }
t0=$(date +%s.%N)

step "build the daemon and snapctl"
log=$(mktemp /tmp/snapfs-demo-build.XXXXXX)
# configure only a new build directory (an existing one keeps its type)
if ! { { [ -f "$build/CMakeCache.txt" ] || cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo; } &&
	cmake --build "$build" -j"$(nproc)" --target snapfs snapctl; } >"$log" 2>&1; then
	cat "$log" >&2
	exit 1
fi
rm -f "$log"
snapfs=$(realpath "$build/src/fuse/snapfs")
snapctl=$(realpath "$build/src/client/snapctl")
printf 'built in %.1fs: %s, %s\n' "$(echo "$(date +%s.%N) - $t0" | bc)" "$snapfs" "$snapctl"

dir=$(mktemp -d /tmp/snapfs-demo-XXXXXX)
writer=
cleanup() {
	[ -n "$writer" ] && kill "$writer" 2>/dev/null && wait "$writer" 2>/dev/null
	cd /
	grep -q " $dir/snap fuse.snapfs" /proc/mounts && { fusermount3 -u "$dir/snap" 2>/dev/null || umount -l "$dir/snap"; }
	for _ in $(seq 50); do # the daemon holds the tmpfs until it has exited
		grep -q " $dir tmpfs" /proc/mounts || break
		umount "$dir" 2>/dev/null && break
		sleep 0.1
	done
	grep -q " $dir tmpfs" /proc/mounts && umount -l "$dir"
	rmdir "$dir" 2>/dev/null || true
}
trap cleanup EXIT

step "two trees on a tmpfs: $dir/plain, and $dir/snap under snapfs"
mount -t tmpfs -o size=64m snapfs-demo "$dir"
mkdir -p "$dir/plain/ledger" "$dir/snap/ledger" "$dir/out"
"$snapfs" "$dir/snap" "$dir/snap"
echo "\$ snapctl mounts"
"$snapctl" mounts
for t in plain snap; do
	for f in a b c d; do printf '%08d' 0 >"$dir/$t/ledger/$f"; done
done

step "a writer rewrites the ledger, round after round, in both trees"
echo "(each round writes the round number into a, b, c, d in turn: at any instant"
echo " the four files differ by at most one round)"
(
	i=0
	while :; do
		i=$((i + 1))
		for f in a b c d; do
			printf '%08d' $i 1<>"$dir/plain/ledger/$f"
			printf '%08d' $i 1<>"$dir/snap/ledger/$f"
		done
	done
) &
writer=$!
sleep 0.5

# read the four files slowly, as a backup of a big tree would
slow_copy() { # FROM TO
	mkdir -p "$2"
	for f in a b c d; do
		cat "$1/$f" >"$2/$f"
		sleep 0.3
	done
}
verdict() { # DIR: the four counters, and whether they are one instant
	local v=() f
	for f in a b c d; do v+=("$(cat "$1/$f")"); done
	local max=$((10#${v[0]})) min=$((10#${v[3]}))
	printf 'a=%s b=%s c=%s d=%s  ' "${v[@]}"
	if [ $((max - min)) -le 1 ] && [ $((10#${v[0]})) -ge $((10#${v[3]})) ]; then
		echo "=> consistent: one instant"
	else
		echo "=> TORN: $((min - max < 0 ? max - min : min - max)) rounds apart"
	fi
}

step "while it writes: a backup of the plain tree, file by file (cp, 0.3s a file)"
slow_copy "$dir/plain/ledger" "$dir/out/plain"
verdict "$dir/out/plain"

step "while it writes: pin the snapfs tree, then the same slow backup from the snapshot"
echo "\$ snapctl pin -r -l demo $dir/snap/ledger"
id=$("$snapctl" pin -r -l demo "$dir/snap/ledger")
echo "$id"
slow_copy "$dir/snap/.snapshots/$id/ledger" "$dir/out/snap"
verdict "$dir/out/snap"
echo "(meanwhile the writer went on: the live ledger/a is at $(cat "$dir/snap/ledger/a"))"

kill "$writer" && wait "$writer" 2>/dev/null || true
writer=

step "the snapshot, its changes since, and the store"
echo "\$ snapctl list -o ID,CREATED,FILES,LABEL,STATE"
"$snapctl" -m "$dir/snap" list -o ID,CREATED,FILES,LABEL,STATE
echo "\$ snapctl diff demo"
"$snapctl" -m "$dir/snap" diff demo
echo "\$ snapctl release -l demo"
"$snapctl" -m "$dir/snap" release -l demo
fusermount3 -u "$dir/snap"

printf '\ndemo: done in %.1fs, cleaned up. What next:\n' "$(echo "$(date +%s.%N) - $t0" | bc)"
echo "  snapctl help                  every command with its options and examples (man snapctl)"
echo "  make install; man libsnapfs   pin, list and diff snapshots from your own program"
echo "  systemctl enable --now \"snapfs@\$(systemd-escape --path /srv/data).service\"   a real mount"
