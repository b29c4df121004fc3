"""HTTP/1.1 responses read from a connected socket, as much of the protocol as a capture
needs (RFC 9112): the response head kept byte for byte as received, and the body
de-framed (Content-Length, chunked, or to the end of the connection).

Why not http.client: it parses heads with the email package and validates every header
sent, about 0.15 ms of CPU per URL on loopback, twice what the rest of a fetch costs;
and it hands back headers rebuilt from a parsed message, not the bytes the server sent.
The request head is built by fetch.py and sent as is, so the request record is exactly
what went out.
"""

from __future__ import annotations

import math
import re
import selectors
import socket
import ssl
import time
import zlib
from dataclasses import dataclass
from typing import Callable, Generator, TypeVar

T = TypeVar("T")

RECV_SIZE = 65536
MAX_HEAD = 65536  # a response head larger than this is refused, not buffered forever
MAX_LINE = 4096   # a chunk-size or trailer line
HEAD_END = re.compile(rb"\r?\n\r?\n")
INFORMATIONAL = re.compile(rb"HTTP/1\.[01] 1(?!01)[0-9][0-9]")  # 1xx but 101, which ends HTTP
CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")
FIELD = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]*:(.*)")  # a field name is a token (RFC 9110 5.1)
DIGITS = re.compile(r"[0-9]+")  # str.isdigit() takes "²", which int() refuses


class ResponseError(Exception):
    """The server's bytes are not an HTTP/1.x response that can be read to its end."""


class NoResponse(ResponseError):
    """The connection closed before the first byte of a response."""


class BodyCut(ResponseError):
    """The connection closed before the body's announced end."""


@dataclass
class Response:
    version: str                   # "HTTP/1.1" or "HTTP/1.0"
    status: int
    reason: str
    headers: list[tuple[str, str]]
    head: bytes                    # as received, through the blank line
    framing: str                   # "none", "length", "chunked" or "close"
    length: int = 0                # with "length"
    will_close: bool = False       # the connection cannot carry another request
    codings: tuple[str, ...] = ()  # transfer codings besides the final chunked, lowercased

    # Read as warcio's StatusAndHeaders are, so index.py and the catalog take a head just
    # captured and one read back from a WARC file alike.
    def get_header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return default

    def get_statuscode(self) -> str:
        return str(self.status)


@dataclass(frozen=True)
class Wait:
    """What a suspended exchange waits for: its socket to become readable or writable
    (selectors.EVENT_READ or EVENT_WRITE), at the latest until `until` (time.monotonic()),
    when the waiter throws TimeoutError into it."""
    sock: socket.socket
    events: int
    until: float


def wait_on(sock: socket.socket, events: int, timeout: float, deadline: float) -> Wait:
    """A Wait of at most `timeout` seconds and never past `deadline`; TimeoutError if the
    deadline has passed."""
    now = time.monotonic()
    if now >= deadline:
        raise TimeoutError("the response took longer than allowed")
    return Wait(sock, events, min(now + timeout, deadline))


def when_ready(call: Callable[[], T], sock: socket.socket, events: int, timeout: float,
               deadline: float) -> Generator[Wait, None, T]:
    """call(), an operation on a non-blocking socket, once it goes through: until then,
    a Wait for `events` each time the socket is not ready, or for the other direction
    when TLS needs it (a TLS read may have to write, and the other way round)."""
    while True:
        try:
            return call()
        except ssl.SSLWantReadError:
            wanted = selectors.EVENT_READ
        except ssl.SSLWantWriteError:
            wanted = selectors.EVENT_WRITE
        except BlockingIOError:
            wanted = events
        yield wait_on(sock, wanted, timeout, deadline)


def send_all(sock: socket.socket, data: bytes, timeout: float, deadline: float) -> Generator[Wait, None, None]:
    """Send all of data on a non-blocking socket, suspending while its buffer is full."""
    view = memoryview(data)
    while view:
        sent = yield from when_ready(lambda: sock.send(view), sock, selectors.EVENT_WRITE, timeout, deadline)
        view = view[sent:]


class Reader:
    """Bytes from one non-blocking socket, with what was read past the current response
    kept for the next. Every method that needs more bytes is a coroutine: it yields a Wait
    while none have come (each at most `timeout`, and never past `deadline`, so a server
    dripping bytes cannot hold a fetch). The buffer is a bytearray read through an offset,
    so neither tiny chunks nor a head sent a byte at a time make the copying quadratic."""

    def __init__(self, sock: socket.socket, timeout: float):
        self.sock = sock
        self.timeout = timeout
        self.buffer = bytearray()
        self.pos = 0
        self.deadline = math.inf  # time.monotonic() value, set per response

    @property
    def buffered(self) -> int:
        """Bytes received and not read yet."""
        return len(self.buffer) - self.pos

    def recv(self) -> Generator[Wait, None, bytes]:
        return (yield from when_ready(lambda: self.sock.recv(RECV_SIZE), self.sock, selectors.EVENT_READ,
                                      self.timeout, self.deadline))

    def _fill(self) -> Generator[Wait, None, bool]:
        """Receive more after what is buffered; False at EOF."""
        del self.buffer[:self.pos]  # cheap: a bytearray drops its head by moving its start
        self.pos = 0
        more = yield from self.recv()
        self.buffer += more
        return bool(more)

    def _take(self, end: int) -> bytes:
        with memoryview(self.buffer) as view:
            taken = bytes(view[self.pos:end])
        self.pos = end
        return taken

    def read(self, limit: int) -> Generator[Wait, None, bytes]:
        """Up to limit bytes: what is buffered, else what one receive brings; b"" at EOF."""
        if self.buffered:
            return self._take(min(self.pos + limit, len(self.buffer)))
        data = yield from self.recv()  # the usual case for a body: handed on without a copy
        self.pos = 0
        if len(data) > limit:
            self.buffer = bytearray(data[limit:])
        else:
            self.buffer.clear()
        return data[:limit]

    def read_line(self) -> Generator[Wait, None, bytes]:
        """One line without its line ending (CRLF or LF)."""
        while (end := self.buffer.find(b"\n", self.pos, self.pos + MAX_LINE + 1)) < 0:
            if self.buffered > MAX_LINE:
                raise ResponseError(f"a chunk line over {MAX_LINE} bytes")
            if not (yield from self._fill()):
                raise BodyCut("connection closed mid-body")
        line = self._take(end)
        self.pos += 1  # the LF
        return line.rstrip(b"\r")

    def read_head(self) -> Generator[Wait, None, bytes]:
        """The next status line and headers, through the blank line that ends them;
        informational (1xx) responses before it are read and dropped, as browsers do
        (up to MAX_HEAD bytes of them)."""
        skipped = 0
        while INFORMATIONAL.match(head := (yield from self._head_bytes())):
            skipped += len(head)
            if skipped > MAX_HEAD:
                raise ResponseError(f"informational (1xx) responses over {MAX_HEAD // 1024} KB")
        return head

    def _head_bytes(self) -> Generator[Wait, None, bytes]:
        searched = self.pos  # the blank line is not in what was searched before (3 bytes of overlap)
        while True:
            while self.buffer[self.pos:self.pos + 1] in (b"\r", b"\n"):  # stray line ends after a body
                self.pos += 1
            if end := HEAD_END.search(self.buffer, max(self.pos, searched - 3)):
                return self._take(end.end())
            if self.buffered > MAX_HEAD:
                raise ResponseError(f"response head over {MAX_HEAD // 1024} KB")
            searched = self.buffered  # where the new bytes start once _fill has moved the rest
            if not (yield from self._fill()):
                raise (ResponseError("connection closed in the response head") if searched
                       else NoResponse("connection closed without a response"))


def parse_head(head: bytes) -> Response:
    """The response head: status, headers (obs-folded lines joined), and how the body
    is framed (RFC 9112 section 6.3; requests are always GET)."""
    lines = head.decode("latin-1").split("\n")
    version, status, reason = _status_line(lines[0].rstrip("\r"))
    headers = _header_fields(lines[1:])
    response = Response(version, status, reason, headers, head, "close")
    _frame(response)
    return response


def _status_line(line: str) -> tuple[str, int, str]:
    version, _, rest = line.partition(" ")
    code, _, reason = rest.partition(" ")
    if version not in ("HTTP/1.1", "HTTP/1.0") or not (len(code) == 3 and DIGITS.fullmatch(code)):
        raise ResponseError(f"not an HTTP/1.x status line: {line[:80]!r}")
    return version, int(code), reason.strip()


def _header_fields(lines: list[str]) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for line in lines:
        line = line.rstrip("\r")
        if line[:1] in (" ", "\t"):  # obs-fold: a continuation of the previous value
            if headers:
                name, value = headers[-1]
                headers[-1] = (name, f"{value} {line.strip()}".strip())
        elif field := FIELD.fullmatch(line):  # any other line stays in the stored head only
            headers.append((field[1], field[2].strip(" \t")))
    return headers


def _frame(response: Response) -> None:
    lists = _framing_lists(response.headers)
    codings, lengths, connection = lists["transfer-encoding"], lists["content-length"], lists["connection"]
    if response.status in (204, 304) or response.status < 200:  # < 200: 101, the end of HTTP
        response.framing = "none"
    elif codings:
        response.framing = "chunked" if codings[-1] == "chunked" else "close"
        response.codings = tuple(c for c in (codings[:-1] if response.framing == "chunked" else codings)
                                 if c != "identity")  # identity: no coding (RFC 2616's, still sent)
    elif len(set(lengths)) == 1 and DIGITS.fullmatch(lengths[0]):  # else: read to the end
        response.framing, response.length = "length", int(lengths[0])
    # Transfer-Encoding with Content-Length, or in HTTP/1.0, is how responses are smuggled:
    # what follows on that connection cannot be trusted (RFC 9112 6.1, 6.3).
    smuggling = bool(codings) and (response.version == "HTTP/1.0" or bool(lengths))
    response.will_close = (response.framing == "close" or response.status < 200 or "close" in connection
                           or smuggling or (response.version == "HTTP/1.0" and "keep-alive" not in connection))


def _framing_lists(headers: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Transfer-Encoding, Content-Length and Connection as lists over all their fields,
    lowercased, empty elements dropped."""
    lists: dict[str, list[str]] = {"transfer-encoding": [], "content-length": [], "connection": []}
    for name, value in headers:
        found = lists.get(name.lower())
        if found is not None:
            found += [e for e in (e.strip(" \t").lower() for e in value.split(",")) if e]
    return lists


INFLATED = ("gzip", "x-gzip", "deflate")  # the transfer codings a body is decoded of
INFLATE_PIECE = 1 << 20  # bytes of decoded output at a time: a small gzip body may inflate a thousandfold
GZIP_MAGIC = b"\x1f\x8b"


def body_of(reader: Reader, response: Response) -> Body | Inflated:
    """The body as the message carries it (RFC 9112 6, 7): de-framed, and decoded of a
    gzip or deflate transfer coding (a hop's coding, unlike Content-Encoding, which is
    kept). Other transfer codings are left as received (see Response.codings)."""
    body = Body(reader, response)
    return Inflated(body) if response.codings and not kept_codings(response) else body


def kept_codings(response: Response) -> tuple[str, ...]:
    """The transfer codings body_of leaves on the body: all of them unless there is one,
    gzip or deflate."""
    return () if len(response.codings) == 1 and response.codings[0] in INFLATED else response.codings


class Body:
    """A response body read piece by piece as it arrives, de-framed."""

    def __init__(self, reader: Reader, response: Response):
        self.reader = reader
        self.framing = response.framing
        self.left = response.length  # with "length"; in the current chunk with "chunked"
        self.chunk_size = b""  # the size field of the current chunk, once one has started
        self.done = response.framing == "none"

    def next_piece(self) -> Generator[Wait, None, bytes]:
        """The next piece, b"" at the end; BodyCut if the connection ends early."""
        if self.done:
            return b""
        if self.framing == "close":
            piece = yield from self.reader.read(RECV_SIZE)
            self.done = not piece
            return piece
        if self.framing == "chunked" and not self.left:
            yield from self._next_chunk()
            if self.done:
                return b""
        if self.framing == "length" and not self.left:
            self.done = True
            return b""
        piece = yield from self.reader.read(min(self.left, RECV_SIZE))
        if not piece:
            raise BodyCut(f"connection closed mid-body, {self.left} bytes short")
        self.left -= len(piece)
        return piece

    def _next_chunk(self) -> Generator[Wait, None, None]:
        """Read up to the next chunk's data (or through the trailer after the last)."""
        if self.chunk_size and (yield from self.reader.read_line()):
            raise ResponseError(f"chunk data longer than its size {self.chunk_size.decode()}")
        self.chunk_size = (yield from self.reader.read_line()).split(b";", 1)[0].strip()
        if not CHUNK_SIZE.fullmatch(self.chunk_size):
            raise ResponseError(f"bad chunk size {self.chunk_size[:40]!r}")
        self.left = int(self.chunk_size, 16)
        if self.left:
            return
        trailers = 0
        while line := (yield from self.reader.read_line()):  # trailer fields, up to the blank line
            trailers += len(line)
            if trailers > MAX_HEAD:
                raise ResponseError(f"trailer fields over {MAX_HEAD // 1024} KB")
        self.done = True


class Inflated:
    """A body decoded of its gzip or deflate transfer coding, piece by piece: gzip of one
    member or several (RFC 1952), deflate with its zlib header or, as some servers send
    it, without."""

    def __init__(self, body: Body):
        self.body = body
        self.inflater: zlib._Decompress | None = None  # made when the first bytes show which
        self.pending = b""  # input the inflater has not taken yet
        self.done = False

    def next_piece(self) -> Generator[Wait, None, bytes]:
        if self.done:
            return b""
        while True:
            ended = False
            deciding = self.inflater is None or self.inflater.eof  # on what the next bytes start
            while not ended and (not self.pending or (deciding and len(self.pending) < 2)):
                more = yield from self.body.next_piece()
                self.pending, ended = self.pending + more, not more
            if self.inflater is None or (self.inflater.eof and self.pending.startswith(GZIP_MAGIC)):
                if not self.pending:  # no (further) coded data
                    break
                self.inflater = zlib.decompressobj(_window_bits(self.pending))
            elif self.inflater.eof:
                break
            try:
                piece = self.inflater.decompress(self.pending, INFLATE_PIECE)
            except zlib.error as e:
                raise ResponseError(f"bad gzip or deflate transfer coding: {e}") from e
            self.pending = self.inflater.unconsumed_tail or self.inflater.unused_data
            if piece:
                return piece
            if ended and not self.inflater.eof:
                raise ResponseError("body ended before its gzip or deflate transfer coding did")
        if self.inflater is None:
            raise ResponseError("empty body with a gzip or deflate transfer coding")
        self.done = True
        extra = len(self.pending)
        while rest := (yield from self.body.next_piece()):  # to the body's end, so the connection can go on
            extra += len(rest)
        if extra:
            raise ResponseError(f"{extra} bytes after the end of the gzip or deflate transfer coding")
        return b""


def _window_bits(start: bytes) -> int:
    """zlib's wbits for coded data starting so: gzip, zlib (RFC 1950's header check), or
    raw deflate."""
    if start.startswith(GZIP_MAGIC):
        return 31
    if len(start) >= 2 and start[0] & 0x0F == 8 and (start[0] << 8 | start[1]) % 31 == 0:
        return 15
    return -15

