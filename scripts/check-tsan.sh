#!/usr/bin/env bash
# The daemon under ThreadSanitizer: the mount suites (built normally, since
# Criterion cannot run under TSan) drive a TSan build of snapfs; any report
# from the daemon fails the run. usage: scripts/check-tsan.sh BUILD TSAN_BUILD
set -euo pipefail
build=${1:-build}
tsan=${2:-build-tsan}
export SNAPFS_BIN=$(realpath "$tsan/src/fuse/snapfs")
export SNAPCTL_BIN=$(realpath "$build/src/client/snapctl")
export TSAN_OPTIONS="halt_on_error=0 exitcode=0 suppressions=$(realpath test/tsan.supp)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
fail=0
for t in snap/test_snap_cow snap/test_snap_view snap/test_snap_life snap/test_snap_soak \
	fuse/test_fuse_passthrough fuse/test_fuse_mount snapctl/test_snapctl_cli \
	segment/test_segment_seg segment/test_segment_wb segment/test_segment_sec; do
	if ! "$build/test/$t" -j1 >"$log" 2>&1; then
		echo "check-tsan: $t failed"; tail -20 "$log"; fail=1
	fi
	n=$(grep -c 'WARNING: ThreadSanitizer' "$log" || true)
	echo "check-tsan: $t: $n ThreadSanitizer reports"
	if [ "$n" -gt 0 ]; then grep -A25 'WARNING: ThreadSanitizer' "$log" | head -60; fail=1; fi
done
exit $fail
