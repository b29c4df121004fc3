"""Reading a WARC file's records back for verification, with bounded memory whatever the
file holds: a hostile or damaged file cannot make it hold a whole header line or record.

Each record must be its own gzip member (as archiver writes them, and as an export copies
them). One pass decompresses a member a slice at a time; its WARC head (and a request's or
response's HTTP head) must end within HEAD_LIMIT bytes; the block is hashed as it streams
by and never kept; the member must end where its record does. The block and payload
digests are checked as warcio checks them (the payload after the HTTP head; none for a
revisit's payload), plus a revisit's block digest, and the head's SHA-256 is given for
comparison with the ledger. Reading stops at the first member that breaks a rule, with
where and why; what came before it is returned.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zlib
from dataclasses import dataclass
from typing import IO, Iterator

from warcio.statusandheaders import StatusAndHeaders, StatusAndHeadersParser, StatusAndHeadersParserException

HEAD_LIMIT = 256 * 1024  # bytes a WARC head, or an HTTP head, may take
READ_CHUNK = 1 << 20     # compressed bytes read from the file at a time
OUT_CHUNK = 1 << 20      # decompressed bytes taken from zlib at a time
FIRST_SLICE = 8 * 1024   # compressed bytes first given to a member's decompressor (doubling)
RECORD_END = b"\r\n\r\n"
TAIL_LIMIT = 64          # CR and LF bytes a record may be followed by in its member (warcio skips them)
HTTP_RECORDS = ("request", "response", "revisit")
WARC_PARSER = StatusAndHeadersParser(["WARC/1.0", "WARC/1.1"])
HTTP_PARSER = StatusAndHeadersParser([], verify=False)


class BadMember(Exception):
    """A member this reader will not read on from (internal: becomes WarcScan.stopped)."""


@dataclass(frozen=True)
class ScannedRecord:
    offset: int   # of its gzip member in the file
    length: int   # of its gzip member
    rec_type: str
    headers: StatusAndHeaders
    http: StatusAndHeaders | None
    head_digest: str             # "sha256:<hex>" of the WARC head as stored, blank line included
    problems: tuple[str, ...]    # digests that do not match

    def get(self, name: str) -> str:
        return self.headers.get_header(name) or ""


class WarcScan:
    """Iterate to get the records; then ``stopped`` is (offset, why) if reading stopped
    before the end of the file. ``max_output``: decompressed bytes allowed in all (a
    bound on the time a decompression bomb can take)."""

    def __init__(self, f: IO[bytes], max_output: int | None = None):
        self.input = _Input(f)
        self.max_output = max_output
        self.output = 0
        self.stopped: tuple[int, str] | None = None

    def __iter__(self) -> Iterator[ScannedRecord]:
        offset = 0
        while self.input.more():
            try:
                record = self._member(offset)
            except BadMember as e:
                self.stopped = (offset, str(e))
                return
            yield record
            offset += record.length

    def _member(self, offset: int) -> ScannedRecord:
        d = zlib.decompressobj(31)
        parser = _RecordParser()
        used, size, pending = 0, FIRST_SLICE, False
        while not d.eof:
            data = self.input.peek(size)
            if not data and not pending:
                raise BadMember("truncated gzip member: the file ends inside it")
            try:
                out = d.decompress(data, OUT_CHUNK)
            except zlib.error as e:
                raise BadMember(f"corrupt gzip member ({e})") from None
            taken = len(data) - len(d.unused_data if d.eof else d.unconsumed_tail)
            self.input.consume(taken)
            used, size, pending = used + taken, min(size * 2, READ_CHUNK), len(out) == OUT_CHUNK
            self._count(len(out))
            parser.feed(out)
        return parser.finish(offset, used)

    def _count(self, produced: int) -> None:
        self.output += produced
        if self.max_output is not None and self.output > self.max_output:
            raise BadMember(f"decompresses to more than {self.max_output:,} bytes: refused as a "
                            "decompression bomb")


class _Input:
    """The compressed file, read a chunk at a time and handed out in slices (no copies of
    the rest of a chunk per member: a file of small members would cost its size squared)."""

    def __init__(self, f: IO[bytes]):
        self.f = f
        self.buf = b""
        self.pos = 0

    def more(self) -> bool:
        return bool(self.peek(1))

    def peek(self, size: int) -> memoryview:
        if self.pos >= len(self.buf):
            self.buf, self.pos = self.f.read(READ_CHUNK), 0
        return memoryview(self.buf)[self.pos:self.pos + size]

    def consume(self, n: int) -> None:
        self.pos += n


class _RecordParser:
    """One member's decompressed bytes, fed in pieces: the WARC head, the block (hashed,
    with the HTTP head kept apart), then the record's end."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.headers: StatusAndHeaders | None = None
        self.length = 0          # the block's Content-Length
        self.seen = 0            # block bytes seen
        self.tail = b""          # bytes after the block
        self.http: _HttpHead | None = None
        self.block_hash = self.payload_hash = None
        self.problems: list[str] = []

    def feed(self, data: bytes) -> None:
        if self.headers is None:
            data = self._head(data)
            if self.headers is None:
                return
        block = data[:self.length - self.seen]
        if block:
            self._block(block)
        if len(block) < len(data):
            self.tail += data[len(block):]
            if len(self.tail) > TAIL_LIMIT or self.tail.strip(b"\r\n"):
                raise BadMember("the gzip member holds more than one record, or data after its record")

    def _head(self, data: bytes) -> bytes:
        """Collect the WARC head; return what follows it once it is complete."""
        start = max(0, len(self.head) - 3)
        self.head += data
        end = self.head.find(RECORD_END, start)
        if end < 0 or end > HEAD_LIMIT:
            if len(self.head) > HEAD_LIMIT:
                raise BadMember(f"WARC head longer than {HEAD_LIMIT // 1024} KiB, or not ended by a blank line")
            return b""
        rest = bytes(self.head[end + 4:])
        del self.head[end + 4:]
        self._parse_head()
        return rest

    def _parse_head(self) -> None:
        try:
            self.headers = WARC_PARSER.parse(io.BytesIO(bytes(self.head)))
        except (StatusAndHeadersParserException, EOFError) as e:
            raise BadMember(f"not a WARC record ({str(e)[:120]})") from None
        length = (self.headers.get_header("Content-Length") or "").strip()
        if not length.isascii() or not length.isdigit():
            raise BadMember(f"WARC record without a valid Content-Length ({length[:40]!r})")
        self.length = int(length)
        _normalise_target(self.headers)
        rec_type = self.headers.get_header("WARC-Type") or ""
        target = self.headers.get_header("WARC-Target-URI") or ""
        if rec_type in HTTP_RECORDS and target.startswith(("http:", "https:")) and self.length:
            self.http = _HttpHead()
        self.block_hash = self._hasher("WARC-Block-Digest")
        if rec_type != "revisit" and self.headers.get_header("WARC-Segment-Number") is None:
            self.payload_hash = self._hasher("WARC-Payload-Digest")

    def _hasher(self, name: str):
        label = self.headers.get_header(name) if self.headers else None
        if not label:
            return None
        algorithm = label.partition(":")[0].lower().replace("-", "")
        try:
            return hashlib.new(algorithm)
        except ValueError:
            self.problems.append(f"unknown digest algorithm in {name}: {label[:60]}")
            return None

    def _block(self, block: bytes) -> None:
        self.seen += len(block)
        if self.block_hash is not None:
            self.block_hash.update(block)
        if self.http is not None and not self.http.done:
            block = self.http.feed(block)
        if block and self.payload_hash is not None:
            self.payload_hash.update(block)

    def finish(self, offset: int, length: int) -> ScannedRecord:
        if self.headers is None:
            raise BadMember("gzip member without a whole WARC head")
        if self.seen < self.length:
            raise BadMember(f"record shorter than its Content-Length ({self.seen:,} of {self.length:,} bytes)")
        self._check("WARC-Block-Digest", self.block_hash, "block")
        self._check("WARC-Payload-Digest", self.payload_hash, "payload")
        return ScannedRecord(offset, length, self.headers.get_header("WARC-Type") or "", self.headers,
                             self.http.parsed() if self.http is not None else None,
                             "sha256:" + hashlib.sha256(self.head).hexdigest(), tuple(self.problems))

    def _check(self, name: str, hasher, what: str) -> None:
        label = self.headers.get_header(name) if self.headers else None
        if hasher is not None and label and not digest_matches(label, hasher.digest()):
            self.problems.append(f"{what} digest failed: {label[:80]}")


class _HttpHead:
    """The HTTP head at the start of a block, where warcio's parser would end it: at the
    first line holding only white space after the status line (or at the block's end)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.scanned = 0   # where the first line not yet looked at starts
        self.done = False

    def feed(self, block: bytes) -> bytes:
        """Take what belongs to the head; return the payload bytes after it."""
        self.data += block
        while (newline := self.data.find(b"\n", self.scanned)) >= 0:
            blank = not self.data[self.scanned:newline + 1].strip()
            self.scanned = newline + 1
            if blank:  # the end of the head (a blank status line ends it too, as in warcio)
                self.done = True
                rest = bytes(self.data[self.scanned:])
                del self.data[self.scanned:]
                return rest
        if len(self.data) > HEAD_LIMIT:
            raise BadMember(f"HTTP head longer than {HEAD_LIMIT // 1024} KiB")
        return b""

    def parsed(self) -> StatusAndHeaders | None:
        try:
            return HTTP_PARSER.parse(io.BytesIO(bytes(self.data)))
        except EOFError:  # an empty head (a revisit may have none)
            return None


def _normalise_target(headers: StatusAndHeaders) -> None:
    """As warcio does on reading (<uri> from wget 1.19, spaces), so index lines match."""
    uri = headers.get_header("WARC-Target-URI")
    if uri is not None and uri.startswith("<") and uri.endswith(">"):
        uri = uri[1:-1]
        headers.replace_header("WARC-Target-URI", uri)
    if uri is not None and " " in uri:
        headers.replace_header("WARC-Target-URI", uri.replace(" ", "%20"))


def digest_matches(label: str, digest: bytes) -> bool:
    """A WARC digest label ("sha1:" + base32, base16 or base64) against a digest."""
    value = label.partition(":")[2].strip()
    encodings = (base64.b32encode(digest).decode(), base64.b16encode(digest).decode(),
                 base64.b64encode(digest).decode(), base64.urlsafe_b64encode(digest).decode())
    return value in encodings or value.upper() in encodings[:2]
