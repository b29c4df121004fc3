"""Crafted WACZ packages that try to exhaust a verifier: huge members compressed small,
gzip bombs inside valid WARC records, endless header lines, huge central directories.

Gigabytes are never compressed here: after a full flush a deflate stream holds no history,
so a 1 MiB chunk compressed after one always gives the same bytes, and N copies of the
chunk are N copies of those bytes (about 1 kB each). The CRC and digests are computed over
the real content, so each package is what a careful adversary would make. Used by
tests/test_wacz_bounds.py and bench/verify_bombs.py.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from pathlib import Path

from .forge import WARC

MiB = 1 << 20
LOCAL = struct.Struct("<4s5H3L2H")
CENTRAL = struct.Struct("<4s6H3L5H2L")
END = struct.Struct("<4s4H2LH")
STORED, DEFLATED = 0, 8


def deflate_repeated(prefix: bytes, chunk: bytes, count: int, suffix: bytes = b"") -> tuple[bytes, int, int]:
    """(raw deflate stream, CRC-32, size) of prefix + chunk * count + suffix."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    piece = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    assert c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH) == piece  # no history after a full flush
    tail = c.compress(suffix) + c.flush()
    crc = zlib.crc32(prefix)
    for _ in range(count):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(suffix, crc)
    return head + piece * count + tail, crc, len(prefix) + len(chunk) * count + len(suffix)


def gzip_member(prefix: bytes, chunk: bytes, count: int, suffix: bytes = b"") -> bytes:
    deflated, crc, size = deflate_repeated(prefix, chunk, count, suffix)
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + deflated + struct.pack("<2L", crc, size & 0xFFFFFFFF)


def write_raw_zip(path: Path, entries: list[tuple[str, int, bytes, int, int]], repeat_last: int = 1) -> None:
    """A zip of (name, method, data as stored, CRC-32, size) entries; the last one's
    central directory entry repeated repeat_last times (a directory of many files)."""
    with open(path, "wb") as f:
        central = []
        for name, method, data, crc, size in entries:
            offset = f.tell()
            f.write(LOCAL.pack(b"PK\x03\x04", 20, 0x800, method, 0, 0x21, crc, len(data), size, len(name.encode()), 0))
            f.write(name.encode() + data)
            central.append(CENTRAL.pack(b"PK\x01\x02", 20, 20, 0x800, method, 0, 0x21, crc, len(data), size,
                                        len(name.encode()), 0, 0, 0, 0, 0, offset) + name.encode())
        central += central[-1:] * (repeat_last - 1)
        start = f.tell()
        f.writelines(central)
        count = min(len(central), 0xFFFF)
        f.write(END.pack(b"PK\x05\x06", 0, 0, count, count, f.tell() - start, start, 0))


def entry(name: str, data: bytes) -> tuple[str, int, bytes, int, int]:
    return name, STORED, data, zlib.crc32(data), len(data)


def huge_datapackage(path: Path, members: dict[str, bytes], size: int = 2 << 30) -> None:
    """datapackage.json of size bytes of white space (what json.loads skips), deflated."""
    data, crc, length = deflate_repeated(b"", b" " * MiB, size // MiB, b"{}")
    write_raw_zip(path, [entry(n, d) for n, d in members.items() if n != "datapackage.json"]
                  + [("datapackage.json", DEFLATED, data, crc, length)])


def zip_bomb(path: Path, members: dict[str, bytes], size: int = 2 << 30) -> None:
    """The WARC member deflated in the zip, size bytes of zeros (a reader extracting it
    fills its temporary folder)."""
    data, crc, length = deflate_repeated(b"", bytes(MiB), size // MiB)
    write_raw_zip(path, [entry(n, d) for n, d in members.items() if n != WARC] + [(WARC, DEFLATED, data, crc, length)])


def bomb_record(size: int) -> bytes:
    """A valid WARC resource record (digest, CRC and all) of size zero bytes, one gzip member."""
    digest = hashlib.sha1()
    chunk = bytes(MiB)
    for _ in range(size // MiB):
        digest.update(chunk)
    head = (f"WARC/1.1\r\nWARC-Type: resource\r\nWARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000001>\r\n"
            f"WARC-Target-URI: http://bomb.example/\r\nWARC-Date: 2026-01-01T00:00:00Z\r\n"
            f"Content-Type: application/octet-stream\r\nWARC-Block-Digest: sha1:{base64.b32encode(digest.digest()).decode()}\r\n"
            f"Content-Length: {size // MiB * MiB}\r\n\r\n").encode()
    return gzip_member(head, chunk, size // MiB, b"\r\n\r\n")


def gzip_bomb(path: Path, members: dict[str, bytes], size: int = 2 << 30) -> None:
    """The genuine WARC stored as it should be, followed by a record of size zeros."""
    warc = members[WARC] + bomb_record(size)
    write_raw_zip(path, [entry(n, d) for n, d in members.items() if n != WARC] + [entry(WARC, warc)])


def endless_head(path: Path, members: dict[str, bytes], size: int = 1 << 30) -> None:
    """A gzip member holding a WARC head that is one line of size bytes (no line end)."""
    warc = members[WARC] + gzip_member(b"WARC/1.1\r\nWARC-Type: resource\r\nX-Long: ", b"a" * MiB, size // MiB)
    write_raw_zip(path, [entry(n, d) for n, d in members.items() if n != WARC] + [entry(WARC, warc)])


def many_files(path: Path, members: dict[str, bytes], count: int = 200_000) -> None:
    """A central directory naming the same small file count times."""
    write_raw_zip(path, [entry(n, d) for n, d in members.items()], repeat_last=count)
