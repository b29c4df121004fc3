"""An exported WACZ opened for checking, with bounded memory, temporary disk and time
whatever the file holds.

Nothing is extracted: members are read as streams. Before zipfile reads the central
directory, its size and entry count are read from the end record and refused when larger
than an export's can be; members are refused when encrypted, compressed other than by
deflate, or claiming more bytes than their kind may have (datapackage files) or than
deflate can make of their compressed size in honest data; JSON is parsed from bounded
bytes with its nesting bounded; text members are read a bounded line at a time.
"""

from __future__ import annotations

import json
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator

from archiver.errors import ArchiverError, os_error_text

MAX_MEMBERS = 16                  # an export has 6 or 7
MAX_CENTRAL_DIRECTORY = 1 << 16   # bytes: 16 entries with long names and extra fields
MAX_JSON = {"datapackage.json": 1 << 20, "datapackage-digest.json": 1 << 16}
MAX_LINE = 1 << 20                # bytes in a line of the index, pages or ledger
MAX_DEPTH = 32                    # nesting of JSON arrays and objects
MAX_RATIO = 100                   # what a member may decompress to, times its compressed size ...
RATIO_FLOOR = 1 << 20             # ... plus this (small members compress better)
EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
EOCD64 = struct.Struct("<4sQ2H2L4Q")
LOCATOR64 = struct.Struct("<4sLQL")
TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')
READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, struct.error, NotImplementedError,
               RuntimeError)


class BadPackage(ArchiverError):
    """A package (or one of its members) that cannot be read further: where, and why."""

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}")
        self.where, self.message = where, message


@dataclass(frozen=True)
class Member:
    name: str
    size: int   # as its zip entry declares it (zipfile never returns more)


class Package:
    """The zip, opened after its central directory was found small enough."""

    def __init__(self, path: Path):
        self.path = path
        try:
            with open(path, "rb") as f:
                check_central_directory(f, path.name)
            self.zip = zipfile.ZipFile(path)
        except OSError as e:
            raise BadPackage(path.name, f"cannot read it: {os_error_text(e, with_path=False)}") from None
        except (zipfile.BadZipFile, ValueError, struct.error, EOFError) as e:
            raise BadPackage(path.name, f"not a readable WACZ (zip) file: {e}") from None
        self.members = self._members()

    def __enter__(self) -> Package:
        return self

    def __exit__(self, *exc) -> None:
        self.zip.close()

    def _members(self) -> dict[str, Member]:
        infos = self.zip.infolist()
        if len(infos) > MAX_MEMBERS:
            raise BadPackage(self.path.name, f"{len(infos)} files: an export holds at most {MAX_MEMBERS}")
        members: dict[str, Member] = {}
        for info in infos:
            if info.filename in members:
                raise BadPackage(info.filename, "is in the zip twice (readers would disagree on which one counts)")
            members[info.filename] = Member(info.filename, info.file_size)
        return members

    def open(self, name: str, stored: bool = False) -> IO[bytes]:
        """A member as a stream, refused if it may not be read (see the module's doc)."""
        info = self.zip.getinfo(name)
        if info.flag_bits & 0x1:
            raise BadPackage(name, "is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise BadPackage(name, f"compressed with method {info.compress_type}: an export uses deflate or none")
        if stored and info.compress_type != zipfile.ZIP_STORED:
            raise BadPackage(name, "is compressed in the zip: a WACZ stores its WARC files as they are")
        if info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > RATIO_FLOOR + MAX_RATIO * info.compress_size:
            raise BadPackage(name, f"claims {info.file_size:,} bytes from {info.compress_size:,} compressed: "
                                   "refused as a decompression bomb")
        try:
            return self.zip.open(info)
        except READ_ERRORS as e:
            raise BadPackage(name, f"cannot be read: {e}") from None

    def json(self, name: str) -> Any:
        """A small JSON member (the datapackage files), parsed within MAX_JSON and MAX_DEPTH."""
        limit = MAX_JSON[name]
        if self.members[name].size > limit:
            raise BadPackage(name, f"{self.members[name].size:,} bytes: more than the {limit:,} it may have")
        with self.open(name) as f:
            data = read_all(f, name, limit)
        return parse_json(data, name)

    def lines(self, name: str) -> Iterator[tuple[int, bytes]]:
        """(line number, line without its newline) of a text member, each at most MAX_LINE."""
        with self.open(name) as f:
            number = 0
            while True:
                try:
                    line = f.readline(MAX_LINE + 1)
                except READ_ERRORS as e:
                    raise BadPackage(f"{name}:{number + 1}", f"cannot be read: {e}") from None
                if not line:
                    return
                number += 1
                if len(line) > MAX_LINE:
                    raise BadPackage(f"{name}:{number}", f"a line longer than {MAX_LINE:,} bytes")
                yield number, line.rstrip(b"\n")


def read_all(f: IO[bytes], name: str, limit: int) -> bytes:
    try:
        data = f.read(limit + 1)
    except READ_ERRORS as e:
        raise BadPackage(name, f"cannot be read: {e}") from None
    if len(data) > limit:
        raise BadPackage(name, f"more than the {limit:,} bytes it may have")
    return data


def parse_json(data: bytes, where: str) -> Any:
    if not nesting_within(data, MAX_DEPTH):
        raise BadPackage(where, f"JSON nested more than {MAX_DEPTH} deep")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise BadPackage(where, f"not JSON ({str(e)[:120]})") from None


def nesting_within(data: bytes, limit: int) -> bool:
    depth = 0
    for token in TOKENS.finditer(data):
        char = token.group()[:1]
        if char in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return False
        elif char in (b"]", b"}"):
            depth -= 1
    return True


def check_central_directory(f: IO[bytes], name: str) -> None:
    """Refuse a zip whose central directory is larger than an export's can be (entries,
    bytes) before zipfile reads it whole into memory: the end records are found as
    zipfile finds them (the last 22 bytes, else the last signature in the last 64 KiB,
    and a ZIP64 record right before them)."""
    size = f.seek(0, 2)
    start = max(0, size - (1 << 16) - EOCD.size)
    f.seek(start)
    tail = f.read((1 << 16) + EOCD.size)  # bounded: a device file (/dev/zero) has no end
    at = len(tail) - EOCD.size
    if not (at >= 0 and tail[at:at + 4] == b"PK\x05\x06" and tail[-2:] == b"\0\0"):
        at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < EOCD.size:
        raise BadPackage(name, "not a readable WACZ (zip) file: no end of central directory")
    entries, cd_size = EOCD.unpack_from(tail, at)[4:6]
    f.seek(max(0, start + at - LOCATOR64.size - EOCD64.size))
    before = f.read(LOCATOR64.size + EOCD64.size) if start + at >= LOCATOR64.size + EOCD64.size else b""
    if before[EOCD64.size:EOCD64.size + 4] == b"PK\x06\x07" and before[:4] == b"PK\x06\x06":
        entries, cd_size = EOCD64.unpack_from(before)[7:9]
    if entries > MAX_MEMBERS or cd_size > MAX_CENTRAL_DIRECTORY:
        raise BadPackage(name, f"{entries:,} files in a {cd_size:,}-byte directory: an export holds at most "
                               f"{MAX_MEMBERS} files")
