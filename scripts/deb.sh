#!/usr/bin/env bash
# `make deb`: build the Debian packages from debian/ the way a packager does
# (`dpkg-buildpackage -us -uc -b` on a clean copy of the tree: the files
# git knows, with local changes), then run lintian on them; any lintian
# error fails. Installs nothing (see scripts/deps.sh for what it needs).
set -euo pipefail
out=${1:-build-deb}
cd "$(dirname "$0")/.."
for t in dpkg-buildpackage dh lintian; do
	command -v "$t" >/dev/null || { echo "deb: $t is missing: make deps" >&2; exit 1; }
done
rm -rf "$out"
mkdir -p "$out/src"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$out/src" 2>/dev/null ||
	git ls-files -z --cached --others --exclude-standard |
	while IFS= read -r -d '' f; do [ -e "$f" ] && cp --parents -- "$f" "$out/src"; done
cd "$out/src"
start=$(date +%s)
dpkg-buildpackage -us -uc -b >../build.log 2>&1 || { tail -40 ../build.log >&2; exit 1; }
cd ..
ls -1 *.deb
changes=$(ls *.changes)
# errors fail; warnings are printed
lintian --fail-on error --suppress-tags-from-file /dev/null "$changes" | tee lintian.log
# mount(8) runs /sbin/mount.fuse.snapfs for -t fuse.snapfs
dpkg -c snapfs_*.deb | grep ' ./sbin/mount.fuse.snapfs -> snapfs$' >/dev/null ||
	{ echo "deb: no /sbin/mount.fuse.snapfs in the snapfs package" >&2; exit 1; }
echo "deb: built and checked in $(( $(date +%s) - start ))s"
