"""WARC files: naming, rotation, ``.open`` -> final rename, warcinfo, repair, reading back.

A file is written as ``<prefix>-<timestamp>-<serial>-<host>.warc.gz.open`` under an
exclusive lock and renamed when closed. Records are written in groups (an exchange's
request, response or revisit, and metadata); a group is flushed and fsynced before the
caller may commit it to the catalog. Every group ends with a metadata record, which lets
``repair_open_file`` cut a crashed file back to its last whole group.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
import socket
import time
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Callable, Iterator

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from .errors import WarcError

log = logging.getLogger("archiver")

OPEN_SUFFIX = ".open"
GROUP_CLOSING_TYPE = b"application/json"  # capture.METADATA_TYPE
WARC_SUFFIX = ".warc.gz"


@dataclass(frozen=True)
class Written:
    """Where one record landed: final file name, offset and length of its gzip member."""
    warc: str
    offset: int
    length: int


# Bodies that are already compressed gain nothing from deflate but cost ~20 s per GB at
# warcio's level 9; they are stored in plain gzip members (still valid gzip, and fast).
PRECOMPRESSED_TYPES = ("image/", "video/", "audio/", "font/", "application/font", "application/zip",
                       "application/gzip", "application/x-gzip", "application/pdf", "application/octet-stream")
TEXT_LEVEL, STORED_LEVEL = 6, 0


class GzipMember:
    """A file-like that writes one gzip member at the given level (one per record)."""

    def __init__(self, out: IO[bytes], level: int):
        self.out = out
        self.compressor = zlib.compressobj(level, zlib.DEFLATED, zlib.MAX_WBITS + 16)

    def write(self, data: bytes) -> None:
        self.out.write(self.compressor.compress(data))

    def flush(self) -> None:
        pass  # warcio flushes after every record; the member ends in finish()

    def finish(self) -> None:
        self.out.write(self.compressor.flush())


def compression_level(record: ArcWarcRecord) -> int:
    http = record.http_headers
    if record.rec_type != "response" or http is None:
        return TEXT_LEVEL
    ctype = (http.get_header("Content-Type") or "").lower()
    encoded = (http.get_header("Content-Encoding") or "identity").lower() != "identity"
    return STORED_LEVEL if encoded or ctype.startswith(PRECOMPRESSED_TYPES) else TEXT_LEVEL


class OpenWarc:
    """One WARC file being written, locked so no other process repairs it meanwhile."""

    def __init__(self, path: Path, warcinfo: dict[str, str], clock: Callable[[], datetime]):
        self.path = path
        self.final_name = path.name[: -len(OPEN_SUFFIX)]
        self.file = open(path, "xb")
        fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.writer = WARCWriter(self.file, gzip=False, warc_version="WARC/1.1")
        record = self.writer.create_warcinfo_record(self.final_name, warcinfo)
        record.rec_headers.replace_header("WARC-Date", warc_date(clock()))
        self.warcinfo_id = record.rec_headers.get_header("WARC-Record-ID")
        self._write_member(record)
        self.last_write = time.monotonic()

    def size(self) -> int:
        return self.file.tell()

    def write(self, records: list[ArcWarcRecord]) -> list[Written]:
        """Append records, each its own gzip member; the caller syncs."""
        out = []
        for record in records:
            record.rec_headers.replace_header("WARC-Warcinfo-ID", self.warcinfo_id)
            start = self.file.tell()
            self._write_member(record)
            out.append(Written(self.final_name, start, self.file.tell() - start))
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
        except OSError:
            pass

    def _write_member(self, record: ArcWarcRecord) -> None:
        member = GzipMember(self.file, compression_level(record))
        self.writer._write_warc_record(member, record)  # warcio's own per-record writer, our gzip level
        member.finish()

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

    def write_groups(self, groups: list[list[ArcWarcRecord]]) -> list[list[Written]]:
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
        while True:
            self.serial += 1
            name = f"{self.prefix}-{stamp}-{os.getpid()}{self.serial:05d}-{self.host}{WARC_SUFFIX}"
            if not (self.warc_dir / name).exists():
                try:
                    return OpenWarc(self.warc_dir / (name + OPEN_SUFFIX), self.warcinfo, self.clock)
                except FileExistsError:
                    continue


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


def iter_records(path: Path) -> Iterator[tuple[int, int, ArcWarcRecord, bytes]]:
    """(offset, length, record, content) for every record of a WARC file. Content is kept
    for warcinfo and metadata records only; other payloads are read through and dropped."""
    with open(path, "rb") as f:
        it = ArchiveIterator(f, check_digests=False)
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
            record = next(iter(ArchiveIterator(f, check_digests=False)))
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
            it = ArchiveIterator(f, check_digests=False)
            record = next(iter(it))
            record.content_stream().read()
            records.append(record)
            written.append(Written(path.name, offset, it.get_record_length()))
    return records, written


# ---- crash repair -----------------------------------------------------------------------

def find_abandoned(warc_dir: Path) -> list[Path]:
    """``.open`` files whose writer is gone (their lock can be taken)."""
    abandoned = []
    for path in sorted(warc_dir.glob("*" + WARC_SUFFIX + OPEN_SUFFIX)):
        with open(path, "rb") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live process is still writing it
            fcntl.flock(f, fcntl.LOCK_UN)
        abandoned.append(path)
    return abandoned


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


