#!/usr/bin/env python3
"""make_corpus.py - regenerates the seed corpus of fuzz_decode.c in tests/idm/corpus/
(run from anywhere: python3 tests/idm/make_corpus.py). The files it writes are committed."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")
MAGIC = 0x4D444956
VERSION = 1
SLOT = 128


def hdr(op, seq, length, flags=0, zone=0, status=0, magic=MAGIC, version=VERSION):
    return struct.pack("<IHHIIQIi", magic, version, op, flags, zone, seq, length, status)


def slot(h, payload=b""):
    s = h + payload
    return s + b"\0" * (SLOT - len(s))


def ring(start, nmsg, slots, raw_prod=None):
    sel = 0x80 if raw_prod is not None else nmsg
    return (bytes([0]) + struct.pack("<I", start) + bytes([sel]) +
            struct.pack("<I", raw_prod or 0) + b"".join(slots))


def ctrl(slots=4, slot_size=128, window=4096, magic=0x4C52544D):
    c = struct.pack("<IIIIIIQ", magic, 1, VERSION, slots, slot_size, 0, window)
    c += struct.pack("<QQQQ", 4096, 8192, 12288, 16384)
    return bytes([1]) + c + b"\0" * (256 - len(c))


SEEDS = {
    "ring_two_msgs": ring(0, 2, [slot(hdr(30, 1, 16), struct.pack("<QQ", 7, 4096)),
                                 slot(hdr(1, 2, 8), struct.pack("<II", 1, 42))]),
    "ring_wrap": ring(0xFFFFFFFE, 4, [slot(hdr(31, i, 8), struct.pack("<Q", i)) for i in range(4)]),
    "ring_full_tail": ring(0, 4, [slot(hdr(90, 9, 96, flags=2), b"\x01" * 96)] * 4),
    "ring_bad_len": ring(0, 1, [slot(hdr(30, 1, 97))]),
    "ring_bad_magic": ring(0, 1, [slot(hdr(30, 1, 0, magic=0x11111111))]),
    "ring_bad_prod": ring(5, 0, [slot(hdr(30, 1, 0))], raw_prod=0x7FFFFFFF),
    "ctrl_valid": ctrl(),
    "ctrl_huge": ctrl(slots=4096, slot_size=65536, window=1 << 30),
    "ctrl_bad_pow2": ctrl(slots=3),
    "trace_launch": bytes([2]) + hdr(90, 5, 80, flags=2) + struct.pack("<QQ", 0xabc, 0) +
                    struct.pack("<14I", 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14)[:64],
    "trace_props": bytes([2]) + hdr(2, 1, 928, flags=1) + b"\x41" * 928,
    "trace_unknown": bytes([2]) + hdr(999, 1, 4) + b"abcd",
}

if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(SEEDS)} seeds to {OUT}")
