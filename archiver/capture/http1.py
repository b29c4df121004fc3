"""HTTP/1.1 response heads as the WARC records and the catalog read them (RFC 9112): the
status line and header fields of a head kept byte for byte as received, and the transfer
codings its body carries. requests and urllib3 do the exchange (transport.py); this is
what they do not hand back: the fields as they came (each one, in order, obs-folded
values joined, names as sent), which the stored head must match.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Iterable, Iterator

FIELD = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]*:(.*)")  # a field name is a token (RFC 9110 5.1)
DIGITS = re.compile(r"[0-9]+")  # str.isdigit() takes "²", which int() refuses


class ResponseError(Exception):
    """The server's bytes are not an HTTP/1.x response that can be read to its end."""


@dataclass
class Response:
    version: str                   # "HTTP/1.1" or "HTTP/1.0"
    status: int
    reason: str
    headers: list[tuple[str, str]]
    head: bytes                    # as received, through the blank line

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


def parse_head(head: bytes) -> Response:
    """The response head: status and headers (obs-folded lines joined)."""
    lines = head.decode("latin-1").split("\n")
    version, status, reason = _status_line(lines[0].rstrip("\r"))
    return Response(version, status, reason, _header_fields(lines[1:]), head)


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


MAX_LENGTH_DIGITS = 18  # a Content-Length of more digits is not one any body has


def content_length(values: list[str]) -> tuple[int | None, str]:
    """The body length the Content-Length field values give (each field may hold a
    list, RFC 9110 8.6), and what is wrong with them: not a number (int() alone would
    take "+5", "1_0" or "５"), or values that disagree. None: no usable length, the body
    runs to the end of the connection."""
    items = [item.strip(" \t") for value in values for item in value.split(",")]
    bad = next((item for item in items if not (DIGITS.fullmatch(item) and len(item) <= MAX_LENGTH_DIGITS)), None)
    if bad is not None:
        return None, f"framing: Content-Length {bad[:40]!r} is not a length (the body is read to the end of the connection)"
    lengths = sorted({int(item) for item in items})
    if len(lengths) > 1:
        return None, (f"framing: conflicting Content-Length values {', '.join(map(str, lengths[:5]))} "
                      "(the body is read to the end of the connection)")
    return lengths[0], ""


# ---- transfer codings other than chunked (urllib3 removes chunked, and only chunked) -----

INFLATED = ("gzip", "x-gzip", "deflate")  # the transfer codings a body is decoded of
INFLATE_PIECE = 1 << 20  # bytes of decoded output at a time: a small gzip body may inflate a thousandfold
GZIP_MAGIC = b"\x1f\x8b"


def transfer_codings(response: Response) -> tuple[str, ...]:
    """The transfer codings besides a final chunked, lowercased, identity left out."""
    codings = [e for name, value in response.headers if name.lower() == "transfer-encoding"
               for e in (e.strip(" \t").lower() for e in value.split(",")) if e]
    if codings and codings[-1] == "chunked":
        codings.pop()
    return tuple(c for c in codings if c != "identity")  # identity: no coding (RFC 2616's, still sent)


def kept_codings(codings: tuple[str, ...]) -> tuple[str, ...]:
    """The transfer codings left on the body: all of them unless there is one, gzip or deflate."""
    return () if len(codings) == 1 and codings[0] in INFLATED else codings


def inflated(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """A body decoded of its gzip or deflate transfer coding, piece by piece: gzip of one
    member or several (RFC 1952), deflate with its zlib header or, as some servers send
    it, without. A transfer coding is the hop's, not the resource's (RFC 9112 7)."""
    source = iter(pieces)
    pending, ended = b"", False
    inflater = None  # made when the first bytes show which
    while True:
        deciding = inflater is None or inflater.eof
        while not ended and (not pending or (deciding and len(pending) < 2)):
            more = next(source, b"")
            pending, ended = pending + more, not more
        if inflater is None or (inflater.eof and pending.startswith(GZIP_MAGIC)):
            if not pending:
                break
            inflater = zlib.decompressobj(_window_bits(pending))
        elif inflater.eof:
            break
        try:
            piece = inflater.decompress(pending, INFLATE_PIECE)
        except zlib.error as e:
            raise ResponseError(f"bad gzip or deflate transfer coding: {e}") from e
        pending = inflater.unconsumed_tail or inflater.unused_data
        if piece:
            yield piece
        elif ended and not inflater.eof:
            raise ResponseError("body ended before its gzip or deflate transfer coding did")
    if inflater is None:
        raise ResponseError("empty body with a gzip or deflate transfer coding")
    extra = len(pending) + sum(len(rest) for rest in source)  # to the body's end, so the connection can go on
    if extra:
        raise ResponseError(f"{extra} bytes after the end of the gzip or deflate transfer coding")


def _window_bits(start: bytes) -> int:
    """zlib's wbits for coded data starting so: gzip, zlib (RFC 1950's header check), or
    raw deflate."""
    if start.startswith(GZIP_MAGIC):
        return 31
    if len(start) >= 2 and start[0] & 0x0F == 8 and (start[0] << 8 | start[1]) % 31 == 0:
        return 15
    return -15
