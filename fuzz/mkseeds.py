#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Writes the seed corpus (corpus/ctl, corpus/side, corpus/rec): a few valid
# inputs in each target's layout (see the comment at the top of each
# fuzz_*.c), so the fuzzer starts past the first checks. Run from fuzz/.
import os
import struct

LABEL, DATA = 256, 15360
PIN, RELEASE, FREEZE, LIST, STATS, INFO, SHOW, DIFF, RESTORE, CHECK, DIRECT, RELABEL = range(1, 13)
KEPT = 1  # fuzz_ctl's pin made at init: the store's first snapshot


def ctl(sel, op, flags=0, id=0, cursor=0, expires=0, count=0, label=b"", data=b"", ver=0):
    # sel: bits 0-2 the target (0 root, 1 a, 2 b, 3 dir, 4 dir/c, 7 b read-write),
    # 0x10 len = the data given, 0x20 freeze first (FREEZE, DIRECT)
    head = struct.pack("<IQQQqII", flags, id, 0, cursor, expires, count, len(data))
    return bytes([sel, op, ver]) + head + label.ljust(LABEL, b"\0") + data


def rec_file(fid, path):
    p = path + b"\0"
    reclen = (40 + len(p) + 7) // 8 * 8
    return (struct.pack("<QQqIIII", fid, 100, 0, 0o100644, 0, 0, reclen) + p).ljust(reclen, b"\0")


def rec_answer(kind, count, data):
    head = struct.pack("<IIiIQQQqII", 1, 7, 0, 0, 0, 0, 0, 0, count, len(data))
    return bytes([kind]) + head + b"\0" * LABEL + data


def side_wb(ranges, forgo, payload, ctl_byte=0x05):
    # write-back with the right key (ctl & 3 == 1) and a sealed memfd (0x04)
    m = bytes([ctl_byte, len(ranges), len(forgo)])
    for off, ln in ranges + forgo:
        m += struct.pack("<QQ", off, ln)
    return m + struct.pack("<H", len(payload)) + payload


seeds = {
    "ctl": {
        "pin-a": ctl(0x10, PIN, count=1, label=b"seed", data=b"a\0"),
        "pin-two": ctl(0x10, PIN, count=2, data=b"a\0dir/c\0"),
        "pin-tree": ctl(0x10, PIN, flags=1, count=1, data=b"dir\0"),
        "pin-expires": ctl(0x10, PIN, count=1, expires=1, data=b"b\0"),
        "release": ctl(0, RELEASE, id=2),
        "freeze": ctl(0x22, FREEZE),
        "direct": ctl(0x27, DIRECT),
        "list": ctl(0, LIST),
        "stats": ctl(1, STATS),
        "info": ctl(0, INFO),
        "show": ctl(0, SHOW, id=KEPT),
        "diff": ctl(0, DIFF, id=KEPT),
        "diff-filter": ctl(0x10, DIFF, id=KEPT, count=1, data=b"b\0"),
        "restore": ctl(0x10, RESTORE, id=KEPT, count=1, data=b"a\0"),
        "check": ctl(0, CHECK),
        "relabel": ctl(0, RELABEL, id=KEPT, label=b"kept"),
        "bad-version": ctl(0, LIST, ver=255),
    },
    "side": {
        "wb-one": side_wb([(0, 16)], [], b"0123456789abcdef"),
        "wb-forgo": side_wb([(0, 8), (4096, 8)], [(8192, 4096)], b"abcdefgh" * 2),
        "wb-two": side_wb([(0, 4)], [], b"wxyz") + side_wb([(65536, 4)], [], b"WXYZ"),
        "handover-bad": bytes([0, 0, 0]) + b"k" * 16,
        "old-type": bytes([3, 0, 0]) + struct.pack("<IIII", 2, 1, 0, 0) + b"\0" * 16,
    },
    "rec": {
        "file": rec_answer(0, 2, rec_file(1, b"a") + rec_file(2, b"dir/c")),
        "line": rec_answer(4, 2, b"first problem\0second\0"),
        "snap": rec_answer(3, 1, struct.pack("<QQqqQQIIII", 1, 1, 0, 0, 1, 0, 0, 0, 0, 0)
                           + b"label".ljust(LABEL, b"\0")),
    },
}

for target, files in seeds.items():
    os.makedirs(os.path.join("corpus", target), exist_ok=True)
    for name, data in files.items():
        with open(os.path.join("corpus", target, name), "wb") as f:
            f.write(data)
