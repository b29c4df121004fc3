"""The only network code: one HTTP exchange, streamed to a spool file, as sent and received.

``Fetcher.fetch`` sends one GET (no redirect following: every hop is its own exchange),
reads the peer address and TLS details from the connection before the body is read, and
streams the raw body (content-encoding kept, chunked framing removed by the HTTP client)
into a temporary file while computing the WARC digests.
"""

from __future__ import annotations

import base64
import hashlib
import http.cookiejar
import socket
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Callable

import requests
import urllib3
from warcio.statusandheaders import StatusAndHeaders

from .config import CaptureConfig
from .errors import ConfigError

# Encodings we can undo with a size cap for link discovery; the stored bytes are never decoded.
DEFAULT_HEADERS = {"Accept-Encoding": "gzip, deflate", "Accept": "*/*"}
SPOOL_IN_MEMORY = 1_000_000
CHUNK = 65536
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
ENCODING_DER = 2  # _ssl.ENCODING_DER, for the certificate objects of the chain
RENAMED_HEADER_PREFIX = "X-Archive-Orig-"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def sha1_label(digest: "hashlib._Hash") -> str:
    """A digest as WARC writes it: ``sha1:`` + base32 (what pywb matches revisits on)."""
    return "sha1:" + base64.b32encode(digest.digest()).decode("ascii")


@dataclass
class TlsInfo:
    version: str
    cipher: str
    certificate_der: bytes
    chain_der: list[bytes] = field(default_factory=list)  # as the peer sent it, leaf first


@dataclass
class Exchange:
    """One request and what came back: a response, or the error that stopped it."""
    url: str
    started: datetime
    request_head: StatusAndHeaders | None = None  # None: nothing was sent (e.g. robots.txt said no)
    status: int | None = None
    response_head: StatusAndHeaders | None = None
    body: IO[bytes] | None = None
    body_length: int = 0
    payload_digest: str = ""
    block_digest: str = ""
    truncated: str = ""
    ip: str = ""
    tls: TlsInfo | None = None
    dns: tuple[str, list[str]] | None = None  # (host, every address it resolved to), once per host and snapshot
    error: str = ""

    def header(self, name: str) -> str:
        if self.response_head is None:
            return ""
        return self.response_head.get_header(name) or ""

    def read_body(self, limit: int) -> bytes:
        if self.body is None:
            return b""
        self.body.seek(0)
        return self.body.read(limit)

    def close(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None


class Fetcher:
    """A requests session configured once from CaptureConfig, shared by the fetch threads.
    It sends the cookies of cookies_file and never keeps cookies that sites set."""

    def __init__(self, cfg: CaptureConfig, clock: Callable[[], datetime] = utcnow):
        self.cfg = cfg
        self.clock = clock
        self.session = requests.Session()
        self.session.headers["User-Agent"] = cfg.user_agent
        self.session.headers.update(DEFAULT_HEADERS)
        self.session.headers.update(dict(cfg.headers))
        self.session.verify = str(cfg.ca_bundle) if cfg.verify_tls and cfg.ca_bundle else cfg.verify_tls
        if cfg.proxy:
            self.session.proxies = {"http": cfg.proxy, "https": cfg.proxy}
        if cfg.cookies_file:
            self.session.cookies.update(_load_cookies(cfg.cookies_file))
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=max(cfg.concurrency, 10), max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def close(self) -> None:
        self.session.close()

    def fetch(self, url: str) -> Exchange:
        started = self.clock()
        try:
            prep = self._prepare(url)
        except (requests.RequestException, ValueError) as e:
            return Exchange(url, started, error=describe_error(e))
        ex = Exchange(url=prep.url or url, started=started, request_head=_request_head(prep))
        try:
            resp = self._send(prep)
        except requests.RequestException as e:
            ex.error = describe_error(e)
            return ex
        with resp:  # Set-Cookie answers are stored, not replayed: captures stay independent
            self._read_response(resp, ex)
        return ex

    def _send(self, prep: requests.PreparedRequest) -> requests.Response:
        """Straight to the transport adapter: Session.send, even with allow_redirects=False,
        reads (and decodes) the body of a redirect to look ahead at the next hop, which
        would leave us nothing to store and no connection to read the peer from."""
        adapter = self.session.get_adapter(prep.url or "")
        return adapter.send(prep, stream=True, timeout=(self.cfg.timeout, self.cfg.timeout),
                            verify=self.session.verify if self.session.verify is not None else True,
                            proxies=self.session.proxies)

    def _prepare(self, url: str) -> requests.PreparedRequest:
        prep = self.session.prepare_request(requests.Request("GET", url))
        # Send Host ourselves so the headers we record are the headers that went out.
        prep.headers["Host"] = urllib3.util.parse_url(prep.url or url).netloc or ""
        return prep

    def _read_response(self, resp: requests.Response, ex: Exchange) -> None:
        ex.ip, ex.tls = _peer(resp.raw)
        ex.status = resp.status_code
        ex.response_head = _response_head(resp.raw)
        head_digest = hashlib.sha1(ex.response_head.to_ascii_bytes())
        payload_digest = hashlib.sha1()
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
        ex.body = spool
        try:
            ex.truncated = self._stream_body(resp.raw, spool, (head_digest, payload_digest))
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as e:
            ex.truncated = "time" if "timed out" in str(e).lower() else "disconnect"
            ex.error = f"body incomplete: {describe_error(e)}"
        ex.body_length = spool.tell()
        ex.payload_digest = sha1_label(payload_digest)
        ex.block_digest = sha1_label(head_digest)

    def _stream_body(self, raw: urllib3.HTTPResponse, spool: IO[bytes], digests: tuple) -> str:
        """Copy the body as it arrives; stop at max_bytes ("length") or total_timeout
        ("time"). read1 returns whatever has arrived, and each wait for more is bounded by
        what is left of the deadline, so a server dripping bytes cannot hold a fetch."""
        deadline = time.monotonic() + self.cfg.total_timeout
        sock = getattr(getattr(raw, "_connection", None), "sock", None)
        kept = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "time"
            if sock is not None:
                sock.settimeout(min(self.cfg.timeout, max(left, 0.01)))
            try:
                chunk = raw.read1(CHUNK, decode_content=False)
            except (urllib3.exceptions.ReadTimeoutError, socket.timeout):
                if time.monotonic() >= deadline:
                    return "time"
                raise
            if not chunk:
                return ""
            room = self.cfg.max_bytes - kept
            piece = chunk[:room]
            spool.write(piece)
            for d in digests:
                d.update(piece)
            kept += len(piece)
            if len(chunk) > room:
                return "length"


def _request_head(prep: requests.PreparedRequest) -> StatusAndHeaders:
    return StatusAndHeaders(f"GET {prep.path_url} HTTP/1.1", list(prep.headers.items()),
                            is_http_request=True)


def _response_head(raw: urllib3.HTTPResponse) -> StatusAndHeaders:
    """Status line and headers as received; Transfer-Encoding renamed because the HTTP
    client removed the chunked framing from the body we store."""
    orig = raw._original_response  # http.client.HTTPResponse: header order and case as sent
    version = "HTTP/1.0" if orig is not None and orig.version == 10 else "HTTP/1.1"
    pairs = list(orig.msg.items()) if orig is not None else list(raw.headers.items())
    headers = [(RENAMED_HEADER_PREFIX + k if k.lower() == "transfer-encoding" else k, v) for k, v in pairs]
    reason = (orig.reason if orig is not None else raw.reason) or ""
    return StatusAndHeaders(f"{raw.status} {reason}".rstrip(), headers, protocol=version)


def _peer(raw: urllib3.HTTPResponse) -> tuple[str, TlsInfo | None]:
    """Peer address and TLS session of the connection that carries this response."""
    conn = getattr(raw, "_connection", None)
    sock = getattr(conn, "sock", None)
    if sock is None:
        return "", None
    try:
        ip = sock.getpeername()[0]
    except OSError:
        ip = ""
    if not isinstance(sock, ssl.SSLSocket):
        return ip, None
    cipher = sock.cipher()
    return ip, TlsInfo(sock.version() or "", cipher[0] if cipher else "", sock.getpeercert(binary_form=True) or b"",
                       _peer_chain(sock))


def _peer_chain(sock: ssl.SSLSocket) -> list[bytes]:
    """The certificate chain the peer sent: public from Python 3.13, a private method of
    the same object since 3.10; empty where neither exists."""
    getter = getattr(sock, "get_unverified_chain", None) or \
        getattr(getattr(sock, "_sslobj", None), "get_unverified_chain", None)
    if getter is None:
        return []
    try:
        chain = getter() or []
    except (ssl.SSLError, ValueError):
        return []
    return [c if isinstance(c, bytes) else c.public_bytes(ENCODING_DER) for c in chain]


def describe_error(e: BaseException) -> str:
    """One line saying why no (complete) response came back."""
    text = str(e)
    for needle, label in (("Name or service not known", "DNS lookup failed"),
                          ("nodename nor servname", "DNS lookup failed"),
                          ("Temporary failure in name resolution", "DNS lookup failed"),
                          ("Connection refused", "connection refused"),
                          ("Connection reset", "connection reset"),
                          ("CERTIFICATE_VERIFY_FAILED", "TLS certificate verification failed"),
                          ("SSLError", "TLS error"),
                          ("timed out", "timed out"),
                          ("Read timed out", "timed out")):
        if needle in text:
            return f"{label} ({type(e).__name__})"
    if isinstance(e, (socket.timeout, requests.Timeout)):
        return f"timed out ({type(e).__name__})"
    first = text.splitlines()[0] if text else type(e).__name__
    return f"{type(e).__name__}: {first[:200]}"


def _load_cookies(path) -> http.cookiejar.MozillaCookieJar:
    jar = http.cookiejar.MozillaCookieJar(str(path))
    try:
        jar.load(ignore_discard=True, ignore_expires=True)
    except (OSError, http.cookiejar.LoadError) as e:
        raise ConfigError(f"config: [capture] cookies_file {path}: {e}") from e
    return jar
