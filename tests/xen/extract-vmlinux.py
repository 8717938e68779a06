#!/usr/bin/env python3
# tests/xen/extract-vmlinux.py - writes the ELF kernel found inside a bzImage (xz, gzip, or
# lz4 with the lz4 tool), so that `xl create` need not decompress it for every guest domain (a
# few seconds each under TCG). Usage: extract-vmlinux.py BZIMAGE OUT. Exit status 1 when no
# complete ELF is found.
import gzip
import lzma
import shutil
import struct
import subprocess
import sys
import zlib


def candidates(data):
    """Yields decompressed payloads found at each xz or gzip magic in data."""
    kinds = [(b"\xfd7zXZ\x00", "xz"), (b"\x1f\x8b\x08", "gz")]
    if shutil.which("lz4"):
        kinds.append((b"\x02\x21\x4c\x18", "lz4"))  # the kernel's legacy lz4 frame
    for magic, kind in kinds:
        pos = data.find(magic)
        while pos >= 0:
            try:
                if kind == "xz":
                    yield lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[pos:])
                elif kind == "gz":
                    yield zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[pos:])
                else:
                    # lz4 complains about the size word the kernel appends; the ELF check below
                    # decides whether the output is whole.
                    yield subprocess.run(["lz4", "-dc"], input=data[pos:], capture_output=True,
                                         check=False).stdout
            except (lzma.LZMAError, zlib.error, EOFError, gzip.BadGzipFile):
                pass
            pos = data.find(magic, pos + 1)


def complete_elf(d):
    """True when d is a 64-bit ELF whose section headers lie inside it."""
    if len(d) < 64 or d[:5] != b"\x7fELF\x02":
        return False
    shoff, = struct.unpack_from("<Q", d, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", d, 0x3A)
    return shoff + shentsize * shnum <= len(d)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, "rb") as f:
        data = f.read()
    if complete_elf(data):
        out = data
    else:
        out = next((d for d in candidates(data) if complete_elf(d)), None)
    if out is None:
        print(f"extract-vmlinux: no ELF kernel inside {src}", file=sys.stderr)
        return 1
    with open(dst, "wb") as f:
        f.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
