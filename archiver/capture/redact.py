"""The user's credentials out of request records: the header kept, its value replaced by
a marker that a holder of the secret can check.

A request may carry credentials of the person running the archive: Authorization (from
``[capture] headers`` or ~/.netrc), Proxy-Authorization (a plain http:// request through
a proxy that asks for a password), the headers named in ``[capture] secret_headers``, and
the cookies of ``cookies_file`` (or of a Cookie header in ``[capture] headers``). Their
values are written into the request record as

    [redacted sha256:<salt>:<hex>]

where hex is SHA-256 over the bytes ``<salt>:<value as sent>``. The salt is the
archive's (workdir.redaction_salt), so one secret has one marker throughout an archive
and none that a table made for another archive would find. A cookie is redacted alone,
``name=<marker>`` over its value, so the cookies sites set stay readable.

Only the record's copy changes: the bytes on the wire are what requests wrote, and the
record's WARC-Block-Digest is computed over the head it holds.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from typing import Iterable

SALT = re.compile(r"[0-9a-f]{32}")
MARKER = re.compile(r"\[redacted sha256:([0-9a-f]{32}):([0-9a-f]{64})\]")
ALWAYS = frozenset({b"proxy-authorization"})  # the proxy's: kept by no opt-in
CREDENTIALS = frozenset({b"authorization"})
COOKIE = b"cookie"
OWS = b" \t"


def new_salt() -> str:
    return os.urandom(16).hex()


def digest(salt: str, secret: bytes) -> str:
    return hashlib.sha256(salt.encode("ascii") + b":" + secret).hexdigest()


def marker(salt: str, secret: bytes) -> bytes:
    return f"[redacted sha256:{salt}:{digest(salt, secret)}]".encode("ascii")


def proves(marker_text: str, secret: str | bytes) -> bool:
    """True when secret (as sent: a whole header value such as "Bearer x", or a cookie's
    value) is the value the marker stands for."""
    m = MARKER.search(marker_text)
    if m is None:
        raise ValueError("not a redaction marker: expected [redacted sha256:<salt>:<hex>]")
    value = secret.encode("utf-8", "surrogateescape") if isinstance(secret, str) else secret
    return hmac.compare_digest(digest(m[1], value), m[2])


@dataclass(frozen=True)
class Redactor:
    """Rewrites request heads for their records."""
    salt: str
    headers: frozenset[bytes]  # lower-case names of headers whose whole value is a credential
    cookies: frozenset[bytes]  # names of the user's own cookies

    @classmethod
    def of(cls, salt: str, secret_headers: Iterable[str], cookie_names: Iterable[str], keep: bool) -> Redactor:
        """keep: the opt-in ([capture] keep_secrets) that leaves the site's credentials
        in clear; the proxy's are redacted whatever it says."""
        if keep:
            return cls(salt, ALWAYS, frozenset())
        names = {h.strip().lower().encode("latin-1") for h in secret_headers}
        return cls(salt, ALWAYS | CREDENTIALS | names,
                   frozenset(n.encode("utf-8", "surrogateescape") for n in cookie_names))

    def head(self, head: bytes) -> bytes:
        """The request head as its record keeps it (the same bytes when it has no
        credentials). A head cut short by a failed send is redacted as far as it goes."""
        body_at = head.find(b"\r\n\r\n")
        fields, rest = (head[:body_at], head[body_at:]) if body_at >= 0 else (head, b"")
        start, *lines = fields.split(b"\r\n")
        return b"\r\n".join([start, *(self._field(f) for f in _unfolded(lines))]) + rest

    def _field(self, field: bytes) -> bytes:
        name, colon, value = field.partition(b":")
        key = name.strip().lower()
        if not colon or (key not in self.headers and (key != COOKIE or not self.cookies)):
            return field
        if key == COOKIE and key not in self.headers:
            return name + colon + b";".join(self._cookie(pair) for pair in value.split(b";"))
        return name + colon + _leading_space(value) + marker(self.salt, value.strip(OWS))

    def _cookie(self, pair: bytes) -> bytes:
        name, eq, value = pair.strip(OWS).partition(b"=")
        if not eq or name.strip(OWS) not in self.cookies:  # a cookie without a value carries nothing
            return pair
        return _leading_space(pair) + name + eq + marker(self.salt, value)


def _leading_space(text: bytes) -> bytes:
    return text[:len(text) - len(text.lstrip(OWS))]


def _unfolded(lines: list[bytes]) -> list[bytes]:
    """Header fields, each with its continuation lines (obsolete folding) joined on."""
    fields: list[bytes] = []
    for line in lines:
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1] += b"\r\n" + line
        else:
            fields.append(line)
    return fields
