"""WARC files: naming, rotation, ``.open`` -> final rename, warcinfo, repair, reading back.

A file is written as ``<prefix>-<timestamp>-<serial>-<host>.warc.gz.open`` under an
exclusive lock and renamed when closed. Records are written in groups (an exchange's
request, response or revisit, and metadata); a group is flushed and fsynced before the
caller may commit it to the catalog. Every group ends with a metadata record, which lets
``repair_open_file`` cut a crashed file back to its last whole group.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import io
import logging
import os
import uuid
import socket
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Callable, Iterator

from isal import isal_zlib
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import StatusAndHeaders

from archiver.capture.http1 import Response
from archiver.errors import WarcError
from archiver.capture.fetch import sha1_label


log = logging.getLogger("archiver")

OPEN_SUFFIX = ".open"
GROUP_CLOSING_TYPE = b"application/json"  # capture.METADATA_TYPE: no other record of a group has it
WARC_SUFFIX = ".warc.gz"


@dataclass(frozen=True)
class Written:
    """Where one record landed: final file name, offset and length of its gzip member."""
    warc: str
    offset: int
    length: int


# Bodies that are already compressed gain nothing from deflate but cost ~20 s per GB at
# level 9; they are stored in plain gzip members (still valid gzip, and fast).
PRECOMPRESSED_TYPES = ("image/", "video/", "audio/", "font/", "application/font", "application/zip",
                       "application/gzip", "application/x-gzip", "application/pdf", "application/octet-stream")
TEXT_LEVEL, STORED_LEVEL = 6, 0
FAST_DEFLATE_BELOW = 2048  # bytes; above it ISA-L's level 1 makes HTML 3-14% larger than zlib's level 6
WARC_VERSION = b"WARC/1.1\r\n"
RECORD_END = b"\r\n\r\n"
HTTP_CONTENT_TYPES = {"request": "application/http; msgtype=request",
                      "response": "application/http; msgtype=response",
                      "revisit": "application/http; msgtype=response"}


class WarcHeaders(dict):
    """WARC header fields in write order, read with ``get_header`` like warcio's headers.
    A repeated field (WARC-Protocol) is a list of values, written after the others."""

    get_header = dict.get  # (name, default=None); 30,000 calls per benchmark capture, no Python frame each


@dataclass
class Record:
    """One WARC record to write: its header fields and its block, which is an HTTP head
    (request, response, revisit) followed by the payload, streamed from a file or bytes.

    Digests are computed by whoever builds the record (a response's while it is
    downloaded); the writer only adds Content-Length and WARC-Warcinfo-ID.
    """
    rec_type: str
    rec_headers: WarcHeaders
    http_head: bytes = b""
    http_headers: Response | None = None  # the parsed HTTP head, for the catalog and index
    payload: IO[bytes] | bytes = b""
    payload_length: int = 0
    level: int = TEXT_LEVEL  # deflate level of the record's gzip member

    @property
    def length(self) -> int:
        return len(self.http_head) + self.payload_length

    def chunks(self) -> Iterator[bytes]:
        """The block: HTTP head, then the payload in pieces of at most 1 MB."""
        yield self.http_head
        if isinstance(self.payload, bytes):
            yield self.payload
            return
        self.payload.seek(0)
        left = self.payload_length
        while left > 0 and (chunk := self.payload.read(min(left, 1 << 20))):
            left -= len(chunk)
            yield chunk


def _compressor(level: int, size: int) -> "zlib._Compress":
    """A gzip-member compressor for a record of ``size`` bytes. A small record (requests,
    metadata, most redirects and stylesheets: seven records in ten on the capture
    benchmark) goes through ISA-L at its level 1, 2.4 times as fast as zlib's level 6 on
    these and 1% larger; a larger one through zlib, sized to it, as its window and hash
    tables cost more to set up than a small record costs to compress."""
    if level and size < FAST_DEFLATE_BELOW:
        return isal_zlib.compressobj(1, zlib.DEFLATED, 31)
    bits = max(9, min(15, size.bit_length())) if level else 9
    return zlib.compressobj(level, zlib.DEFLATED, 16 + bits, max(1, min(8, bits - 6)) if level else 1)


def record_head(record: Record) -> bytes:
    fields = record.rec_headers
    lines = [f"{k}: {v}\r\n" for k, v in fields.items() if not isinstance(v, list)]
    lines += [f"{k}: {v}\r\n" for k, values in fields.items() if isinstance(values, list) for v in values]
    if "Content-Type" not in fields and record.rec_type in HTTP_CONTENT_TYPES:
        lines.append(f"Content-Type: {HTTP_CONTENT_TYPES[record.rec_type]}\r\n")
    lines.append(f"Content-Length: {record.length}\r\n\r\n")
    return WARC_VERSION + "".join(lines).encode("utf-8")


def _write_member(out: IO[bytes], record: Record) -> int:
    """Write one record as one gzip member; return the member's length in bytes."""
    head = record_head(record)
    compressor = _compressor(record.level, len(head) + record.length)
    written = 0
    pieces = [compressor.compress(head)]
    for chunk in record.chunks():
        pieces.append(compressor.compress(chunk))
        if len(chunk) >= 1 << 20:  # a large payload goes out as it is read
            data = b"".join(pieces)
            out.write(data)
            written += len(data)
            pieces = []
    pieces += [compressor.compress(RECORD_END), compressor.flush()]
    data = b"".join(pieces)
    out.write(data)
    return written + len(data)


def warcinfo_record(filename: str, fields: dict[str, str], date: str) -> Record:
    body = "".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode("utf-8")
    headers = WarcHeaders({"WARC-Type": "warcinfo", "WARC-Record-ID": new_record_id(), "WARC-Date": date,
                           "WARC-Filename": filename, "Content-Type": "application/warc-fields",
                           "WARC-Block-Digest": sha1_digest(body)})
    return Record("warcinfo", headers, payload=body, payload_length=len(body))


def sha1_digest(data: bytes) -> str:
    return sha1_label(hashlib.sha1(data))


def new_record_id() -> str:
    """A random (version 4) UUID URN."""
    return f"<urn:uuid:{uuid.uuid4()}>"


class OpenWarc:
    """One WARC file being written, locked so no other process repairs it meanwhile."""

    def __init__(self, path: Path, warcinfo: dict[str, str], clock: Callable[[], datetime]):
        self.path = path
        self.final_name = path.name[: -len(OPEN_SUFFIX)]
        self.file = open(path, "xb")
        fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.offset = 0
        record = warcinfo_record(self.final_name, warcinfo, warc_date(clock()))
        self.warcinfo_id = record.rec_headers["WARC-Record-ID"]
        self.offset += _write_member(self.file, record)
        self.last_write = time.monotonic()

    def size(self) -> int:
        return self.offset

    def write(self, records: list[Record]) -> list[Written]:
        """Append records, each its own gzip member; the caller syncs."""
        out = []
        for record in records:
            record.rec_headers["WARC-Warcinfo-ID"] = self.warcinfo_id
            length = _write_member(self.file, record)
            out.append(Written(self.final_name, self.offset, length))
            self.offset += length
        self.last_write = time.monotonic()
        return out

    def sync(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())

    def truncate(self, size: int) -> None:
        """Drop a partly written batch (best effort: the disk may be what failed)."""
        try:
            self.file.flush()
        except OSError:
            pass
        try:
            self.file.truncate(size)
            self.file.seek(size)
            self.offset = size
        except OSError:
            pass

    def close(self) -> Path:
        self.sync()
        final = self.path.with_name(self.final_name)
        os.rename(self.path, final)
        _fsync_dir(final.parent)
        self.file.close()  # releases the lock only after the rename
        return final


class WarcWriterPool:
    """Writes record groups to the current WARC file, rotating by size and idle time.

    ``on_close`` is called with the final path of every file closed (to index it).
    """

    def __init__(self, warc_dir: Path, prefix: str, max_bytes: int, warcinfo: dict[str, str],
                 clock: Callable[[], datetime], on_close: Callable[[Path], None] = lambda p: None):
        self.warc_dir, self.prefix, self.max_bytes = warc_dir, prefix, max_bytes
        self.warcinfo, self.clock, self.on_close = warcinfo, clock, on_close
        self.current: OpenWarc | None = None
        self.serial = 0
        self.host = _safe_host()

    def write_groups(self, groups: list[list[Record]]) -> list[list[Written]]:
        """Write record groups to one file, then fsync once: every group returned is on
        disk. The file is rotated before the groups (a batch may run a little past
        max_bytes, a record never spans files). A failed write is cut back off the file."""
        if self.current is not None and self.current.size() >= self.max_bytes:
            self.close()
        if self.current is None:
            self.current = self._open_new()
        start = self.current.size()
        try:
            out = [self.current.write(records) for records in groups]
            self.current.sync()
        except OSError as e:
            self.current.truncate(start)
            raise WarcError(f"cannot write {self.current.path.name}: {e.strerror or e}") from e
        return out

    def room(self) -> int:
        """Bytes the current file may still take before it is rotated."""
        return self.max_bytes - (self.current.size() if self.current is not None else 0)

    def close_if_idle(self, idle_seconds: float) -> None:
        if self.current is not None and time.monotonic() - self.current.last_write >= idle_seconds:
            self.close()

    def close(self) -> None:
        if self.current is not None:
            final = self.current.close()  # fsyncs before the rename
            self.current = None
            self.on_close(final)

    def _open_new(self) -> OpenWarc:
        self.warc_dir.mkdir(parents=True, exist_ok=True)
        stamp = self.clock().strftime("%Y%m%d%H%M%S%f")[:17]
        with creation_lock(self.warc_dir):
            while True:
                self.serial += 1
                name = f"{self.prefix}-{stamp}-{os.getpid()}{self.serial:05d}-{self.host}{WARC_SUFFIX}"
                if not (self.warc_dir / name).exists():
                    try:
                        return OpenWarc(self.warc_dir / (name + OPEN_SUFFIX), self.warcinfo, self.clock)
                    except FileExistsError:
                        continue


CREATION_LOCK = ".creating.lock"


@contextmanager
def creation_lock(warc_dir: Path) -> Iterator[None]:
    """Held while a writer creates and locks a new ``.open`` file, and while files are
    tested for abandonment: a file just created, not yet locked, is never taken for one a
    crashed process left."""
    with open(warc_dir / CREATION_LOCK, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


@functools.lru_cache(maxsize=256)  # the records of an exchange all carry the date it began
def warc_date(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _safe_host() -> str:
    return "".join(c if c.isalnum() or c in ".-" else "-" for c in socket.gethostname()) or "host"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- reading back -----------------------------------------------------------------------

SMALL_RECORD_TYPES = ("warcinfo", "metadata")


def _reader(f: IO[bytes]) -> ArchiveIterator:
    """warcio's record reader from f's position."""
    return ArchiveIterator(f, check_digests=False)


def iter_records(path: Path) -> Iterator[tuple[int, int, ArcWarcRecord, bytes]]:
    """(offset, length, record, content) for every record of a WARC file. Content is kept
    for warcinfo and metadata records only; other payloads are read through and dropped."""

    with open(path, "rb") as f:
        it = _reader(f)
        try:
            for record in it:
                content = record.content_stream().read() if record.rec_type in SMALL_RECORD_TYPES else b""
                # Asking for offset and length reads the rest of the record (in chunks).
                yield it.get_record_offset(), it.get_record_length(), record, content
        except (ArchiveLoadFailed, zlib.error, EOFError, OSError, ValueError) as e:
            log.error("%s@%s: unreadable from here on (%s); archiver verify tells more",
                      path.name, f.tell(), e)


def read_response(path: Path, offset: int, limit: int) -> tuple[StatusAndHeaders, bytes]:
    """HTTP headers and up to ``limit`` raw payload bytes (as sent, still content-encoded)
    of the response or revisit record at ``offset``."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            record = next(iter(_reader(f)))
            return record.http_headers, record.raw_stream.read(limit)
    except (OSError, StopIteration) as e:
        raise WarcError(f"{path.name}: cannot read the record at offset {offset}: {e}") from e


def group_records(path: Path, row) -> tuple[list[ArcWarcRecord], list[Written]]:
    """The response (or revisit) record of a catalog row and its closing metadata record,
    read back with where they sit, for a ledger entry written after the fact."""
    offsets = [row.offset, row.metadata_offset] if row.offset != row.metadata_offset else [row.offset]
    records, written = [], []
    with open(path, "rb") as f:
        for offset in offsets:
            f.seek(offset)
            it = _reader(f)
            record = next(iter(it))
            record.content_stream().read()
            records.append(record)
            written.append(Written(path.name, offset, it.get_record_length()))
    return records, written


# ---- crash repair -----------------------------------------------------------------------

def find_abandoned(warc_dir: Path) -> list[Path]:
    """``.open`` files whose writer is gone (their lock can be taken)."""
    abandoned = []
    with creation_lock(warc_dir):
        for path in sorted(warc_dir.glob("*" + WARC_SUFFIX + OPEN_SUFFIX)):
            if not is_live(path):
                abandoned.append(path)
    return abandoned


def is_live(path: Path) -> bool:
    """True while a process holds the ``.open`` file's lock. A file closed (renamed) by
    its writer since it was listed counts as live: there is nothing to repair."""
    try:
        with open(path, "rb") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
            return False
    except FileNotFoundError:
        return True


def repair_open_file(path: Path, before_close: Callable[[Path, str], None]) -> tuple[Path, int]:
    """Cut an abandoned ``.open`` file back to its last whole record group, let the caller
    catalog it (``before_close(path, final_name)``, still locked), then close it.

    Returns the final path and the number of bytes dropped. A torn record, or a group
    whose closing metadata record never made it, was never committed to the catalog.
    """
    with open(path, "r+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        keep = _last_group_end(f)
        size = f.seek(0, io.SEEK_END)
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
        final = path.with_name(path.name[: -len(OPEN_SUFFIX)])
        before_close(path, final.name)  # a second crash here leaves an .open file: repaired again
        os.rename(path, final)
    _fsync_dir(path.parent)
    return final, size - keep


def _last_group_end(f: IO[bytes]) -> int:
    """End offset of the last whole gzip member holding a warcinfo record or the metadata
    record (Content-Type application/json) that closes an exchange's group."""
    keep = 0
    for start, end in list(iter_gzip_members(f)):
        f.seek(start)
        head = zlib.decompressobj(31).decompress(f.read(min(end - start, 4096)), 2048)
        rec_type = _warc_header(head, b"warc-type")
        if rec_type == b"warcinfo" or (rec_type == b"metadata" and
                                       _warc_header(head, b"content-type") == GROUP_CLOSING_TYPE):
            keep = end
    return keep


def iter_gzip_members(f: IO[bytes]) -> Iterator[tuple[int, int]]:
    """(start, end) of each complete gzip member, checked to its CRC; stops at the first torn one."""
    f.seek(0)
    start = offset = 0  # offset: file position of the first byte of `data`
    d = zlib.decompressobj(31)
    data = b""
    while True:
        if not data:
            data = f.read(1 << 20)
            if not data:
                return
        try:
            d.decompress(data, 1 << 20)  # output is only checked, never kept
        except zlib.error:
            return
        if d.eof:
            end = offset + len(data) - len(d.unused_data)
            yield start, end
            start = offset = end
            data, d = d.unused_data, zlib.decompressobj(31)
        else:
            offset += len(data) - len(d.unconsumed_tail)
            data = d.unconsumed_tail


def _warc_header(head: bytes, name: bytes) -> bytes:
    for line in head.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(name + b":"):
            return line.split(b":", 1)[1].strip()
    return b""


