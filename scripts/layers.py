#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Check that the files of each source folder call each other without
cycles: every call between two files of one folder must go "down".

For each .c file in a folder, the functions it defines (non-static) are
found with a simple scan of definitions at column 0; a file A depends on B
when A's text names a function B defines. Prints the file graph and any
cycle; exits 1 when there is one. Usage: layers.py DIR..."""
import re
import sys
from pathlib import Path

DEF = re.compile(r'^(?!static\b)[A-Za-z_][\w \*]*?\b([a-z_][a-z0-9_]*)\s*\([^;]*$', re.M)
COMMENT = re.compile(r'/\*.*?\*/|//[^\n]*', re.S)
STRING = re.compile(r'"(?:\\.|[^"\\])*"')


def graph(folder):
    files = sorted(Path(folder).glob('*.c'))
    text = {f.name: STRING.sub('""', COMMENT.sub(' ', f.read_text())) for f in files}
    defs = {}
    for name, t in text.items():
        for m in DEF.finditer(t):
            defs.setdefault(m.group(1), name)
    deps = {n: set() for n in text}
    for name, t in text.items():
        for ident in set(re.findall(r'\b([a-z_][a-z0-9_]*)\s*\(', t)):
            owner = defs.get(ident)
            if owner and owner != name:
                deps[name].add(owner)
    return deps


def cycles(deps):
    found, state = [], {}

    def visit(n, stack):
        state[n] = 1
        stack.append(n)
        for m in sorted(deps[n]):
            if state.get(m) == 1:
                found.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m, stack)
        stack.pop()
        state[n] = 2

    for n in sorted(deps):
        if n not in state:
            visit(n, [])
    return found


def main():
    bad = 0
    for folder in sys.argv[1:]:
        deps = graph(folder)
        print(f'{folder}:')
        for n in sorted(deps):
            print(f'  {n} -> {", ".join(sorted(deps[n])) or "-"}')
        for c in cycles(deps):
            print(f'  CYCLE: {" -> ".join(c)}')
            bad = 1
    return bad


if __name__ == '__main__':
    sys.exit(main())
