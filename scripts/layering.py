#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A source folder's files call and include downwards only.

Builds the file-level call graph of a folder such as src/snapstore (a call from a.c to a
non-static function defined in b.c is an edge a -> b) and the include graph
of its headers, prints both as layers, and fails (exit 1) on any cycle or on
a call from extidx.c or blk.c into another store file. No compiler needed:
definitions are lines starting at column 0 as `type name(` without `;`.
Usage: layering.py [SRC_DIR]
"""
import os
import re
import sys

src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), "..", "src", "snapstore")
files = sorted(f for f in os.listdir(src) if f.endswith((".c", ".h")))
text, raw = {}, {}
for f in files:
    t = open(os.path.join(src, f)).read()
    t = re.sub(r"/\*.*?\*/", " ", t, flags=re.S)  # comments
    raw[f] = t
    text[f] = re.sub(r'"(\\.|[^"\\])*"', '""', t)  # strings

defs = {}  # function -> file
for f in files:
    if not f.endswith(".c"):
        continue
    for m in re.finditer(r"^(?!static)[a-z][^;{()=]*?\b(\w+)\(([^;{]*?)\)\s*\{", text[f], re.M):
        defs[m.group(1)] = f

calls = {f: set() for f in files if f.endswith(".c")}
for f in calls:
    for name in set(re.findall(r"\b(\w+)\s*\(", text[f])):
        g = defs.get(name)
        if g and g != f:
            calls[f].add(g)

incl = {f: set(re.findall(r'#include\s+"([^"]+)"', raw[f])) & set(files) for f in files}


def cycles(graph):
    """Return a cycle as a list, or None."""
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if not state.get(m):
                c = visit(m)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if not state.get(n):
            c = visit(n)
            if c:
                return c
    return None


def layers(graph):
    depth = {}

    def d(n):
        if n not in depth:
            depth[n] = 0
            depth[n] = 1 + max((d(m) for m in graph.get(n, ())), default=-1)
        return depth[n]

    for n in graph:
        d(n)
    out = {}
    for n, k in depth.items():
        out.setdefault(k, []).append(n)
    return [sorted(out[k]) for k in sorted(out)]


bad = 0
for name, g in (("calls", calls), ("includes", incl)):
    c = cycles(g)
    if c:
        print(f"{name}: cycle: {' -> '.join(c)}")
        bad = 1
        continue
    print(f"{name}: no cycle; layers from the bottom:")
    for i, layer in enumerate(layers(g)):
        print(f"  {i}: {' '.join(layer)}")
for f in ("extidx.c", "blk.c", "log.c"):
    if calls.get(f):
        print(f"{f} calls up into {' '.join(sorted(calls[f]))}")
        bad = 1
print("edges:")
for f in sorted(calls):
    print(f"  {f} -> {' '.join(sorted(calls[f])) or '-'}")
sys.exit(bad)
