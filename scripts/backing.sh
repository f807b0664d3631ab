#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Bring a backing filesystem up on a directory and take it down again, for
# the backing test matrix (test/backing/) and the reflink benchmark
# (bench/reflink.sh). Everything lives under one state directory on tmpfs
# (/dev/shm): the image or the daemon's files, logs, keys. `down` undoes
# everything `up` did, also after a half-done `up`, and first lazily unmounts
# anything still mounted below the backing (a snapfs overlay left by a failing
# test), so the loop device is always detached.
#
#   scripts/backing.sh up KIND STATE MNT     # KIND: ext4 xfs xfs-noreflink btrfs sshfs gluster tmpfs
#   scripts/backing.sh down STATE            # unmount, stop daemons, detach, remove STATE
#   scripts/backing.sh have KIND             # exit 0 when this machine can bring KIND up
#
# Exit status of `up`: 0, 1 on failure, 77 when KIND cannot run here (a tool
# or a kernel filesystem is missing): callers turn 77 into a skip.
set -uo pipefail

SKIP=77
say() { echo "backing: $*" >&2; }

have() {
	local kind=$1
	[ "$(id -u)" -eq 0 ] || { say "$kind: needs root (mount)"; return $SKIP; }
	case $kind in
	ext4) need mkfs.ext4 && kfs ext4 ;;
	xfs | xfs-noreflink) need mkfs.xfs && kfs xfs ;;
	btrfs) need mkfs.btrfs && kfs btrfs ;;
	sshfs) need sshfs sshd ssh-keygen && kfs fuse ;;
	gluster) need glusterd gluster && kfs fuse ;;
	tmpfs) return 0 ;;
	*) say "unknown backing '$kind'"; return 1 ;;
	esac
}

need() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ] ||
			{ say "'$t' is not installed (scripts/deps.sh installs it)"; return $SKIP; }
	done
}

kfs() {
	grep -qw "$1" /proc/filesystems || { say "the kernel has no $1 filesystem"; return $SKIP; }
}

# Unmount everything at or below $1, deepest first; lazily if busy.
umount_below() {
	local m
	for m in $(awk -v p="$1" '$2 == p || index($2, p "/") == 1 { print $2 }' /proc/self/mounts |
		sort -r); do
		umount "$m" 2>/dev/null || fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
}

up_loop() {
	local kind=$1 state=$2 mnt=$3 img=$2/image
	truncate -s "${BACKING_SIZE:-2G}" "$img" || return 1
	case $kind in
	ext4) mkfs.ext4 -q -F "$img" ;;
	xfs) mkfs.xfs -q -f -m reflink=1 "$img" ;;
	xfs-noreflink) mkfs.xfs -q -f -m reflink=0 "$img" ;;
	btrfs) mkfs.btrfs -q -f "$img" >/dev/null 2>&1 ;;
	esac || { say "$kind: mkfs failed"; return 1; }
	echo "$mnt" >"$state/mnt"
	# XFS: no speculative preallocation, so st_blocks and SEEK_DATA/SEEK_HOLE
	# depend on what was written, not on how the writes were split (the
	# differential traces compare a bare directory with the overlay).
	local opts=loop
	case $kind in xfs*) opts=loop,allocsize=4k ;; esac
	mount -o "${BACKING_MOUNT_OPTS:-$opts}" "$img" "$mnt" || {
		say "$kind: mount -o loop failed"
		return 1
	}
	chmod 0755 "$mnt"
}

# sshd on 127.0.0.1 with a throwaway host key and client key, sshfs of
# $state/export onto $mnt.
up_sshfs() {
	local state=$1 mnt=$2 port
	mkdir -p "$state/export" "$state/ssh" && chmod 700 "$state/ssh"
	ssh-keygen -q -t ed25519 -N '' -f "$state/ssh/host" || return 1
	ssh-keygen -q -t ed25519 -N '' -f "$state/ssh/client" || return 1
	cp "$state/ssh/client.pub" "$state/ssh/authorized_keys"
	mkdir -p /run/sshd
	local try
	for try in 1 2 3 4 5; do # a random port may be taken: try another
		port=$((20000 + RANDOM % 20000))
		cat >"$state/ssh/sshd_config" <<-EOF
			ListenAddress 127.0.0.1
			Port $port
			HostKey $state/ssh/host
			AuthorizedKeysFile $state/ssh/authorized_keys
			PidFile $state/ssh/sshd.pid
			PermitRootLogin prohibit-password
			PasswordAuthentication no
			StrictModes no
			UsePAM no
			Subsystem sftp internal-sftp
		EOF
		/usr/sbin/sshd -f "$state/ssh/sshd_config" -E "$state/ssh/sshd.log" && break
		[ $try -lt 5 ] || {
			say "sshfs: sshd did not start: $(tail -n 3 "$state/ssh/sshd.log")"
			return 1
		}
	done
	echo "$mnt" >"$state/mnt"
	for _ in $(seq 50); do
		sshfs -p "$port" -o IdentityFile="$state/ssh/client" -o StrictHostKeyChecking=no \
			-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o allow_other \
			"root@127.0.0.1:$state/export" "$mnt" 2>"$state/ssh/sshfs.err" && return 0
		sleep 0.1
	done
	say "sshfs: mount failed: $(cat "$state/ssh/sshfs.err")"
	return 1
}

# glusterd with its working and run directories in $state, a one-brick volume
# on the eth0 address's name, mounted with the FUSE client. A second client
# mount ($state/direct) is "another host": it writes to the volume directly.
# GLUSTER_VOLUME_SET="key=value ..." sets volume options before the start.
up_gluster() {
	local state=$1 mnt=$2 host vol
	host=$(hostname)
	vol=snapfs$$
	if ps -eo stat=,comm= | awk '$1 !~ /Z/ && $2 == "glusterd" { f = 1 } END { exit !f }'; then
		say "gluster: a glusterd is already running on this machine; not starting another"
		return $SKIP
	fi
	mkdir -p "$state/wd" "$state/run" "$state/log" "$state/brick" "$state/direct"
	glusterd --xlator-option management.working-directory="$state/wd" \
		--xlator-option management.run-directory="$state/run" \
		-l "$state/log/glusterd.log" -p "$state/glusterd.pid" || {
		say "gluster: glusterd did not start"
		return $SKIP
	}
	for _ in $(seq 50); do
		gluster --mode=script volume list >/dev/null 2>&1 && break
		sleep 0.2
	done
	echo "$vol" >"$state/vol"
	gluster --mode=script volume create "$vol" "$host:$state/brick" force >"$state/log/cli" 2>&1 &&
		for o in ${GLUSTER_VOLUME_SET:-}; do
			gluster --mode=script volume set "$vol" "${o%%=*}" "${o#*=}" >>"$state/log/cli" 2>&1
		done &&
		gluster --mode=script volume start "$vol" >>"$state/log/cli" 2>&1 || {
		say "gluster: volume create/start failed: $(tail -n 2 "$state/log/cli")"
		return $SKIP
	}
	echo "$mnt" >"$state/mnt"
	mount -t glusterfs -o log-file="$state/log/client.log" "$host:/$vol" "$mnt" &&
		mount -t glusterfs -o log-file="$state/log/direct.log" "$host:/$vol" "$state/direct" || {
		say "gluster: FUSE client mount failed"
		return 1
	}
}

up() {
	local kind=$1 state=$2 mnt=$3 rc
	have "$kind" || return $?
	mkdir -p "$state" "$mnt" || return 1
	echo "$kind" >"$state/kind"
	case $kind in
	ext4 | xfs | xfs-noreflink | btrfs) up_loop "$kind" "$state" "$mnt" ;;
	sshfs) up_sshfs "$state" "$mnt" ;;
	gluster) up_gluster "$state" "$mnt" ;;
	tmpfs) echo "$mnt" >"$state/mnt" && mount -t tmpfs -o size=2g snapfs-backing "$mnt" ;;
	esac
	rc=$?
	[ $rc -eq 0 ] || down "$state"
	return $rc
}

down() {
	local state=$1 mnt vol
	[ -d "$state" ] || return 0
	if [ -f "$state/mnt" ]; then
		mnt=$(cat "$state/mnt")
		umount_below "$mnt"
	fi
	[ -d "$state/direct" ] && umount_below "$state/direct"
	if [ -f "$state/ssh/sshd.pid" ]; then
		kill "$(cat "$state/ssh/sshd.pid")" 2>/dev/null
	fi
	if [ -f "$state/glusterd.pid" ]; then
		if [ -f "$state/vol" ]; then
			vol=$(cat "$state/vol")
			gluster --mode=script volume stop "$vol" force >/dev/null 2>&1
			gluster --mode=script volume delete "$vol" >/dev/null 2>&1
		fi
		# The brick and self-heal processes glusterd started for this volume.
		pkill -F "$state/glusterd.pid" 2>/dev/null
		local p
		for p in "$state"/run/*.pid "$state"/run/*/*.pid "$state"/run/*/*/*.pid; do
			[ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null
		done
	fi
	# mount -o loop sets autoclear: the loop device goes with the unmount.
	# Detach explicitly in case the unmount was lazy and left it behind.
	losetup -j "$state/image" 2>/dev/null | cut -d: -f1 | while read -r dev; do
		losetup -d "$dev" 2>/dev/null
	done
	rm -rf "$state"
}

cmd=${1:-}
shift || true
case $cmd in
up) [ $# -eq 3 ] || { say "usage: $0 up KIND STATE MNT"; exit 2; }; up "$@" ;;
down) [ $# -eq 1 ] || { say "usage: $0 down STATE"; exit 2; }; down "$@" ;;
have) [ $# -eq 1 ] || { say "usage: $0 have KIND"; exit 2; }; have "$@" ;;
*) say "usage: $0 up KIND STATE MNT | down STATE | have KIND"; exit 2 ;;
esac
