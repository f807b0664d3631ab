#!/usr/bin/env bash
# Install the Debian packages snapfs needs to build, test and benchmark.
# Installs only what is missing; when not root, prints the apt-get line and stops.
set -euo pipefail
# Why each is needed: README.md, "Dependencies".
pkgs=(build-essential cmake pkg-config libfuse3-dev fuse3 libsqlite3-dev sqlite3
      libbsd-dev libmount-dev libsmartcols-dev libcriterion-dev fio attr mandoc util-linux
      e2fsprogs systemd clang-format clang bash-completion
      dpkg-dev debhelper fakeroot lintian devscripts
      xfsprogs btrfs-progs sshfs openssh-server openssh-client glusterfs-server glusterfs-client)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "snapfs: missing packages; run as root: apt-get install -y ${missing[*]}" >&2
	exit 1
fi
echo "snapfs: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
