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
import socket
import time
from dataclasses import dataclass
from typing import Iterator

RECV_SIZE = 65536
MAX_HEAD = 65536  # a response head larger than this is refused, not buffered forever
MAX_LINE = 4096   # a chunk-size or trailer line
HEAD_END = re.compile(rb"\r?\n\r?\n")
INFORMATIONAL = re.compile(rb"HTTP/1\.[01] 1(?!01)[0-9][0-9]")  # 1xx but 101, which ends HTTP
CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")


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

    def header(self, name: str) -> str:
        """The last value of a header (case-insensitive), or ""."""
        name = name.lower()
        for key, value in reversed(self.headers):
            if key.lower() == name:
                return value
        return ""


class Reader:
    """Bytes from one socket, with what was read past the current response kept for the
    next, and a deadline for the whole response: each wait for more bytes is bounded by
    what is left of it, so a server dripping bytes cannot hold a fetch."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.pending = b""
        self.deadline = math.inf  # time.monotonic() value

    def recv(self) -> bytes:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the response took longer than allowed")
        if left < (self.sock.gettimeout() or math.inf):
            self.sock.settimeout(left)
        return self.sock.recv(RECV_SIZE)

    def read(self, limit: int) -> bytes:
        """Up to limit bytes: what is buffered, else what one receive brings; b"" at EOF."""
        data = self.pending or self.recv()
        self.pending = data[limit:]
        return data[:limit]

    def read_line(self) -> bytes:
        """One line without its line ending (CRLF or LF)."""
        data = self.pending
        while (end := data.find(b"\n")) < 0:
            if len(data) > MAX_LINE:
                raise ResponseError(f"a chunk line over {MAX_LINE} bytes")
            more = self.recv()
            if not more:
                raise BodyCut("connection closed mid-body")
            data += more
        if end > MAX_LINE:
            raise ResponseError(f"a chunk line over {MAX_LINE} bytes")
        self.pending = data[end + 1:]
        return data[:end].rstrip(b"\r")

    def read_head(self) -> bytes:
        """The next status line and headers, through the blank line that ends them;
        informational (1xx) responses before it are read and dropped, as browsers do."""
        while INFORMATIONAL.match(head := self._head_bytes()):
            pass
        return head

    def _head_bytes(self) -> bytes:
        data = self.pending.lstrip(b"\r\n")  # stray line endings after a previous body
        while not (end := HEAD_END.search(data)):
            if len(data) > MAX_HEAD:
                raise ResponseError(f"response head over {MAX_HEAD // 1024} KB")
            more = self.recv()
            if not more:
                raise (ResponseError("connection closed in the response head") if data
                       else NoResponse("connection closed without a response"))
            data = (data + more).lstrip(b"\r\n")
        self.pending = data[end.end():]
        return data[:end.end()]


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
    if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise ResponseError(f"not an HTTP/1.x status line: {line[:80]!r}")
    return version, int(code), reason.strip()


def _header_fields(lines: list[str]) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for line in lines:
        line = line.rstrip("\r")
        if line[:1] in (" ", "\t") and headers:  # obs-fold: a continuation of the previous value
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}".strip())
            continue
        name, colon, value = line.partition(":")
        if colon and name.strip():  # a line without a name stays in the stored head only
            headers.append((name.strip(), value.strip(" \t")))
    return headers


def _frame(response: Response) -> None:
    if response.status in (204, 304) or response.status < 200:  # < 200: 101, the end of HTTP
        response.framing = "none"
    elif coding := response.header("Transfer-Encoding").lower():
        response.framing = "chunked" if coding.rsplit(",", 1)[-1].strip() == "chunked" else "close"
    elif (length := _content_length(response)) is not None:
        response.framing, response.length = "length", length
    connection = response.header("Connection").lower()
    response.will_close = (response.framing == "close" or response.status < 200 or "close" in connection
                           or (response.version == "HTTP/1.0" and "keep-alive" not in connection))


def _content_length(response: Response) -> int | None:
    """The Content-Length, or None (read to the end) when absent or not one number."""
    values = {v.strip() for k, field in response.headers if k.lower() == "content-length"
              for v in field.split(",")}
    if len(values) != 1:
        return None
    value = values.pop()
    return int(value) if value.isdigit() else None


def body_pieces(reader: Reader, response: Response) -> Iterator[bytes]:
    """The body as it arrives, de-framed; raises BodyCut if the connection ends early."""
    if response.framing == "length":
        yield from _exactly(reader, response.length)
    elif response.framing == "chunked":
        yield from _chunks(reader)
    elif response.framing == "close":
        while piece := reader.read(RECV_SIZE):
            yield piece


def _exactly(reader: Reader, count: int) -> Iterator[bytes]:
    while count > 0:
        piece = reader.read(min(count, RECV_SIZE))
        if not piece:
            raise BodyCut(f"connection closed mid-body, {count} bytes short")
        count -= len(piece)
        yield piece


def _chunks(reader: Reader) -> Iterator[bytes]:
    while True:
        size_field = reader.read_line().split(b";", 1)[0].strip()
        if not CHUNK_SIZE.fullmatch(size_field):
            raise ResponseError(f"bad chunk size {size_field[:40]!r}")
        size = int(size_field, 16)
        if size == 0:
            break
        yield from _exactly(reader, size)
        reader.read_line()
    while reader.read_line():  # trailer fields, up to the blank line
        pass
