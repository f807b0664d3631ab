#!/bin/sh
# SPDX-License-Identifier: MIT
# Write each literal block of the mdoc page $1 that holds a main() into
# ex1.c, ex2.c, ... in the current directory, with mdoc's escapes undone
# (\e is a backslash, a leading \& is nothing); print how many.
awk '
/^\.Bd -literal/ { b = ""; on = 1; next }
/^\.Ed/ {
	if (on && b ~ /main\(/) { n++; f = "ex" n ".c"; printf "%s", b > f; close(f) }
	on = 0; next
}
on { gsub(/\\e/, "\\"); sub(/^\\&/, ""); b = b $0 "\n" }
END { print n + 0 }' "$1"
