#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `make demo`'s script, timed, its output into a pipe: it must finish in
# well under a minute (the build is there already), print no escape codes,
# show the snapshot's backup consistent, and end with three "what next"
# lines. Usage: demo.sh SRCDIR BUILDDIR
set -euo pipefail
src=$1 build=$2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s)
"$src/scripts/demo.sh" "$build" >"$out" 2>&1 || { cat "$out"; echo "demo failed"; exit 1; }
took=$(( $(date +%s) - start ))
cat "$out"
if grep -q $'\033' "$out"; then echo "FAIL: escape codes in a pipe"; exit 1; fi
grep -q '^a=.*=> consistent: one instant$' <(sed -n '/from the snapshot/,$p' "$out") ||
	{ echo "FAIL: the backup from the snapshot is not consistent"; exit 1; }
grep -q 'TORN\|consistent' <(sed -n '/backup of the plain tree/,/pin the snapfs/p' "$out") ||
	{ echo "FAIL: no verdict for the plain copy"; exit 1; }
tail -4 "$out" | head -1 | grep -q 'What next:$' || { echo "FAIL: no what next"; exit 1; }
[ "$(tail -3 "$out" | grep -c '^  ')" -eq 3 ] || { echo "FAIL: not three what-next lines"; exit 1; }
grep -qi 'warning\|error\|Scanning\|Building' "$out" && { echo "FAIL: build noise"; exit 1; }
echo "demo took ${took}s"
[ "$took" -lt 45 ] || { echo "FAIL: the demo took ${took}s"; exit 1; }
