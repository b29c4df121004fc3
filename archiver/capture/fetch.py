"""The only network code: one HTTP exchange through requests, streamed to a spool file,
as sent and received.

A Fetcher holds one requests.Session (one per crawl) with a transport adapter that
records the wire (transport.py): the request head as sent, the response head as received,
the peer address and TLS chain of the connection that served the response. The rest is
what requests users expect: HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY from the
environment, SOCKS (socks5h:// leaves name resolution to the proxy), proxy credentials
that go to the proxy only, REQUESTS_CA_BUNDLE, client certificates, IDNA 2008. The
request head an Exchange keeps has the user's credentials redacted (redact.py); the
bytes sent are untouched.

``Fetcher.fetch`` sends one GET (no redirect following: every hop is its own exchange)
and streams the body (content-encoding kept, chunked framing removed) into a temporary
file while computing the WARC digests. It blocks; the crawler runs fetches on threads.
Cookies: those of cookies_file are sent; those sites set are kept only in the jar the
caller passes (one per snapshot), never in the Fetcher.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import http.cookiejar
import ipaddress
import logging
import re
import socket
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Callable, Iterable
from urllib.parse import urlsplit

import requests
from requests.cookies import RequestsCookieJar, extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from requests.utils import select_proxy
from urllib3.exceptions import HTTPError as Urllib3Error  # ProtocolError, ReadTimeoutError...

from archiver.capture import http1
from archiver.capture.redact import COOKIE, CREDENTIALS, Redactor, new_salt
from archiver.capture.transport import (SPOOL_IN_MEMORY, AddressRefused, Deadline, RecordingAdapter, TlsInfo,
                                        Watchdog, is_public)
from archiver.config import CaptureConfig
from archiver.errors import ConfigError, os_error_text

log = logging.getLogger("archiver")

# Accept-Encoding: what we can undo with a size cap for link discovery (page/extract.decode_body);
# the stored bytes are never decoded.
DEFAULT_HEADERS = (("Accept-Encoding", "gzip, deflate, br"), ("Accept", "*/*"))
READ_SIZE = 65536
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
RENAMED_HEADER_PREFIX = "X-Archive-Orig-"
MIN_POOLS = 16  # hosts with kept-alive connections at least (more with a higher concurrency)
ANSWER_MAX_AGE = 30.0  # seconds a DNS answer the crawl recorded may serve a new connection
MAX_ANSWERS = 1024  # kept DNS answers before the stale ones are dropped
TRANSFER_ENCODING = re.compile(rb"(?im)^(transfer-encoding[ \t]*:)")


def sha1_label(digest: "hashlib._Hash") -> str:
    """A digest as WARC writes it: ``sha1:`` + base32 (what pywb matches revisits on)."""
    return "sha1:" + base64.b32encode(digest.digest()).decode("ascii")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def literal_address(url: str) -> str:
    """The IP address a URL names as its host, "" when it names a host name."""
    try:
        host = urlsplit(url).hostname or ""
        return str(ipaddress.ip_address(host))
    except ValueError:
        return ""


@dataclass
class Exchange:
    """One request and what came back: a response, or the error that stopped it."""
    url: str
    started: datetime
    request_head: bytes | None = None  # as sent, credentials redacted (b"": nothing went out); None: not attempted
    status: int | None = None
    response_head: http1.Response | None = None  # with Transfer-Encoding renamed, as stored
    response_head_bytes: bytes = b""  # status line and headers as received, ending in a blank line
    body: IO[bytes] | None = None
    body_length: int = 0
    payload_digest: str = ""
    block_digest: str = ""
    truncated: str = ""
    ip: str = ""  # the server's address; empty through a proxy
    tls: TlsInfo | None = None
    dns: tuple[str, list[str]] | None = None  # (host, every address it resolved to), once per host and snapshot
    error: str = ""
    raw: bool = False  # no response head: body holds the bytes the server sent instead
    refused: bool = False  # not attempted: the address is not one the fetch may reach
    trailer: bytes = b""  # a chunked body's trailer section, as received
    elapsed: float = 0.0  # seconds the fetch took

    def note(self, text: str) -> None:
        """Add to the error: a bound hit, an anomaly."""
        self.error = "; ".join(filter(None, (self.error, text)))

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
    """A requests Session configured once from CaptureConfig, shared by the fetch threads."""

    def __init__(self, cfg: CaptureConfig, clock: Callable[[], datetime] = utcnow, salt: str = ""):
        """salt: the archive's, for redaction markers (workdir.redaction_salt); a new one
        when not given."""

        self.cfg = cfg
        self.clock = clock
        self.session = _session(cfg)
        self.redactor = Redactor.of(salt or new_salt(), cfg.secret_headers, _user_cookie_names(cfg, self.session),
                                    keep=cfg.keep_secrets)
        self.scoped = _credential_headers(cfg)
        self.proxies = {"http": cfg.proxy, "https": cfg.proxy} if cfg.proxy else {}
        self.verify: bool | str | None = None if cfg.verify_tls else False  # None: REQUESTS_CA_BUNDLE or the default
        if cfg.verify_tls and cfg.ca_bundle:
            _check_ca_bundle(cfg.ca_bundle)
            self.verify = str(cfg.ca_bundle)
        self.cert = _client_cert(cfg)
        self.watchdog = Watchdog()
        self.lock = threading.Lock()
        self.answers: dict[tuple[str, int], tuple[float, list]] = {}  # see look_up

    def close(self) -> None:
        self.watchdog.close()
        self.session.close()

    def cancel(self) -> None:
        """Cut off every exchange in progress (from any thread): each ends at once."""
        self.watchdog.cut_all()

    def proxy_for(self, url: str) -> str | None:
        """The proxy a request for url goes through (the configured one, else the
        environment's, NO_PROXY honoured), None when it goes direct."""
        return self._settings(url)[1]

    def look_up(self, host: str, port: int) -> list:
        """getaddrinfo's answer for host, kept for the next connection to it if that comes
        within ANSWER_MAX_AGE: the crawl records each host's addresses once per snapshot,
        just before its first fetch there, which need not ask again. Only for direct
        fetches: through a proxy, the proxy resolves."""
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        now = time.monotonic()
        with self.lock:
            if len(self.answers) >= MAX_ANSWERS:  # answers no connection came for
                self.answers = {k: v for k, v in self.answers.items() if now - v[0] < ANSWER_MAX_AGE}
            self.answers[(host, port)] = (now, infos)
        return infos

    def take_answer(self, host: str, port: int) -> list | None:
        with self.lock:
            kept = self.answers.pop((host, port), None)
        return kept[1] if kept is not None and time.monotonic() - kept[0] < ANSWER_MAX_AGE else None

    def fetch(self, url: str, cookies: http.cookiejar.CookieJar | None = None, seconds: float | None = None,
              reach: frozenset[str] | None = None, credentials: bool = True) -> Exchange:
        """One exchange. ``cookies``: the snapshot's jar, sent with the request (with
        cookies_file's) and given what the response sets. ``seconds``: how long it may
        take (default total_timeout). ``reach``: the non-public addresses it may connect
        to (None: any, as for a seed). ``credentials``: whether the credentials set in
        ``[capture] headers`` go with it (only to the seed's own host)."""

        started, began = self.clock(), time.monotonic()
        try:
            request = self.session.prepare_request(requests.Request("GET", url, cookies=cookies))
        except (requests.RequestException, ValueError, UnicodeError) as e:
            return Exchange(url, started, error=f"invalid URL: {describe_error(e)}")
        if not credentials:
            for name, value in self.scoped:
                if request.headers.get(name) == value:  # ~/.netrc's Authorization is scoped by netrc itself
                    del request.headers[name]
        ex = Exchange(url, started)
        seconds = self.cfg.total_timeout if seconds is None else seconds
        deadline = Deadline(began + seconds, self.take_answer, head_at=began + min(self.cfg.head_timeout, seconds),
                            reach=reach, max_bytes=self.cfg.max_bytes)
        self.watchdog.watch(deadline)
        try:
            with deadline:
                self._exchange(request, cookies, ex, deadline)
        finally:
            self.watchdog.done(deadline)
            ex.elapsed = time.monotonic() - began
        return ex

    def _settings(self, url: str) -> tuple[dict[str, Any], str | None]:
        """requests' settings for url (proxies, verify, cert; the environment's where the
        configuration says nothing), and the proxy chosen."""

        settings = self.session.merge_environment_settings(url, dict(self.proxies), True, self.verify, self.cert)
        return settings, select_proxy(url, settings["proxies"])

    def _exchange(self, request: Any, cookies: http.cookiejar.CookieJar | None, ex: Exchange, deadline: Deadline) -> None:
        """Send the request and read the response into ex."""

        settings, proxy = self._settings(request.url)
        timeout = (min(self.cfg.timeout, self.cfg.total_timeout), self.cfg.timeout)  # (connect + TLS, each read)
        try:
            if proxy is not None and deadline.reach is not None:
                _check_name(request.url, deadline.reach)
                deadline.reach = None  # the connection is to the proxy, which connects on
            response = self._send(request, timeout, settings, deadline)
        except AddressRefused as e:
            ex.error, ex.refused = str(e), True
            return
        except (OSError, ValueError, http.client.HTTPException, http1.ResponseError) as e:  # requests' errors are OSErrors
            self._failed(ex, deadline, e, direct=proxy is None)
            return
        complete = False
        try:
            codings = self._head(ex, deadline, direct=proxy is None)
            complete = self._read_body(response.raw, ex, deadline, codings)
            ex.trailer = bytes(deadline.trailer) if deadline.trailer.strip() else b""  # fields, not the blank line alone
            if cookies is not None:
                extract_cookies_to_jar(cookies, request, response.raw)
        finally:
            deadline.connection = None  # released to the pool: no longer this exchange's to cut
            if not complete:
                response.raw.close()  # bytes may be left on the connection: it is not reused
            response.raw.release_conn()

    def _failed(self, ex: Exchange, deadline: Deadline, e: BaseException, direct: bool) -> None:
        """No response: why, the request as sent, and what the server sent instead of a
        response head, if anything (kept as evidence)."""
        ex.request_head = self._sent(deadline)
        if deadline.cut == "head":
            ex.error = f"timed out: no complete response head within {self.cfg.head_timeout:g} s (head_timeout)"
        else:
            ex.error = describe_error(TimeoutError("timed out") if deadline.cut else e)
        if deadline.raw is not None and deadline.raw.tell():
            ex.raw, ex.body, ex.body_length = True, deadline.raw, deadline.raw.tell()
            ex.truncated = deadline.raw_cut or ("time" if deadline.cut else "")
            ex.payload_digest = ex.block_digest = _spooled_digest(deadline.raw)
            ex.ip = getattr(deadline.connection, "peer_ip", "") if direct else ""
        elif deadline.raw is not None:
            deadline.raw.close()

    def _send(self, request: Any, timeout: tuple[float, float], settings: dict[str, Any], deadline: Deadline) -> Any:
        """The response. A kept-alive connection the server has meanwhile closed fails
        before any response byte: the request then goes once more, on a new connection."""

        adapter = self.session.get_adapter(request.url)
        try:
            return adapter.send(request, timeout=timeout, **settings)
        except (OSError, http.client.HTTPException):
            if deadline.fresh or deadline.head or deadline.cut or deadline.raw is not None:
                raise
            return adapter.send(request, timeout=timeout, **settings)

    def _sent(self, deadline: Deadline) -> bytes:
        """The request head as sent, as its record keeps it."""
        sent = getattr(deadline.connection, "sent", None)
        return self.redactor.head(bytes(sent or b""))

    def _head(self, ex: Exchange, deadline: Deadline, direct: bool) -> tuple[str, ...]:
        """The request head as sent, the response head as received, the connection's
        peer (only when it is the server's) and TLS session (only when it is with the
        server: https, tunnelled through a proxy or not); returns the body's transfer
        codings besides chunked."""
        conn = deadline.connection
        ex.request_head = self._sent(deadline)
        ex.ip = getattr(conn, "peer_ip", "") if direct else ""
        ex.tls = getattr(conn, "tls", None) if ex.url.startswith("https:") else None
        head = http1.parse_head(deadline.head)  # checked by the transport as it was read
        ex.status = head.status
        ex.response_head, ex.response_head_bytes = stored_head(head)
        ex.note(deadline.framing)
        return http1.transfer_codings(head)

    def _read_body(self, raw: Any, ex: Exchange, deadline: Deadline, codings: tuple[str, ...]) -> bool:
        """Stream the body to a spool file; True when it was read to its end."""
        head_digest = hashlib.sha1(ex.response_head_bytes)
        payload_digest = hashlib.sha1()
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
        ex.body = spool
        pieces: Iterable[bytes] = raw.stream(READ_SIZE, decode_content=False)
        if kept := http1.kept_codings(codings):
            ex.note(f"transfer coding {', '.join(kept)} kept as received")
        elif codings:
            pieces = http1.inflated(pieces)


        try:
            ex.truncated = self._copy(pieces, spool, (head_digest, payload_digest), deadline)
        except (OSError, ValueError, http.client.HTTPException, http1.ResponseError, Urllib3Error) as e:
            ex.truncated = "time" if deadline.cut or _timed_out(e) else "disconnect"
            if not deadline.cut:  # cut at total_timeout: the truncation says it all
                ex.note(f"body incomplete: {describe_error(e)}")
        ex.body_length = spool.tell()
        ex.payload_digest = sha1_label(payload_digest)
        ex.block_digest = sha1_label(head_digest)
        return not ex.truncated

    def _copy(self, pieces: Iterable[bytes], spool: IO[bytes], digests: tuple, deadline: Deadline) -> str:
        """Copy the body as it arrives; stop at max_bytes ("length") or at the deadline,
        total_timeout after the fetch began ("time")."""
        kept = 0
        for chunk in pieces:
            room = self.cfg.max_bytes - kept
            piece = chunk[:room]
            spool.write(piece)
            for d in digests:
                d.update(piece)
            kept += len(piece)
            if len(chunk) > room:
                return "length"
            if time.monotonic() >= deadline.at:
                return "time"
        return ""


def _check_name(url: str, reach: frozenset[str]) -> None:
    """Through a proxy, which connects, the address is not known here: a URL naming a
    non-public address, or localhost, is refused by its name."""
    host = (urlsplit(url).hostname or "").lower()
    address = literal_address(url) or ("127.0.0.1" if host == "localhost" or host.endswith(".localhost") else "")
    if address and not is_public(address) and address not in reach:
        raise AddressRefused(f"refused: {host} not a public address (allow_private_addresses)")


def _spooled_digest(spool: IO[bytes]) -> str:
    digest = hashlib.sha1()
    spool.seek(0)
    for chunk in iter(lambda: spool.read(READ_SIZE), b""):
        digest.update(chunk)
    return sha1_label(digest)


def stored_head(response: http1.Response) -> tuple[http1.Response, bytes]:
    """The status line and headers as received (header order, case and bytes kept), with
    Transfer-Encoding renamed because the body we store is de-framed."""
    if not any(name.lower() == "transfer-encoding" for name, _ in response.headers):
        return response, response.head
    head = TRANSFER_ENCODING.sub(RENAMED_HEADER_PREFIX.encode() + rb"\1", response.head)
    headers = [(RENAMED_HEADER_PREFIX + k if k.lower() == "transfer-encoding" else k, v) for k, v in response.headers]
    return replace(response, headers=headers, head=head), head


# ---- the session ------------------------------------------------------------------------

def _credential_headers(cfg: CaptureConfig) -> list[tuple[str, str]]:
    """The configured headers that carry the user's credentials: sent to the hosts of the
    seeds, never to the third-party hosts of their requisites and cross-references."""
    secret = {name.decode() for name in CREDENTIALS | {COOKIE}} | {name.lower() for name in cfg.secret_headers}
    return [(name, value) for name, value in cfg.headers if name.lower() in secret]


def _session(cfg: CaptureConfig) -> Any:


    session = requests.Session()
    configured = {name.lower() for name, _ in cfg.headers}  # replace defaults of the same name
    defaults = [("User-Agent", cfg.user_agent), *DEFAULT_HEADERS]
    session.headers = CaseInsensitiveDict([(k, v) for k, v in defaults if k.lower() not in configured]
                                          + list(cfg.headers))
    session.cookies = _session_cookies(cfg.cookies_file)
    pools = max(MIN_POOLS, 2 * cfg.concurrency)
    adapter = RecordingAdapter(pool_connections=pools, pool_maxsize=max(cfg.per_host_concurrency, 1), max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _session_cookies(path: Path | None) -> Any:
    """The Session's own jar: cookies_file's cookies, and none that sites set (they go
    to the snapshot's jar, see Fetcher.fetch)."""


    class KeepNone(http.cookiejar.DefaultCookiePolicy):
        def set_ok(self, cookie: Any, request: Any) -> bool:
            return False

    jar = RequestsCookieJar(policy=KeepNone())
    for cookie in _load_cookies(path) if path else ():
        jar.set_cookie(cookie)
    return jar


def _user_cookie_names(cfg: CaptureConfig, session: Any) -> set[str]:
    """Names of the user's own cookies: cookies_file's, and a configured Cookie header's."""
    names = {cookie.name for cookie in session.cookies}
    for header, value in cfg.headers:
        if header.lower() == "cookie":
            names |= {pair.partition("=")[0].strip() for pair in value.split(";")}
    return names


def snapshot_cookies() -> http.cookiejar.CookieJar:
    """An empty jar for the cookies sites set during one snapshot."""

    return RequestsCookieJar()


def _load_cookies(path: Path) -> Any:
    """The Netscape cookies.txt file, loaded once."""

    jar = http.cookiejar.MozillaCookieJar(str(path))
    try:
        jar.load(ignore_discard=True, ignore_expires=True)
    except (OSError, http.cookiejar.LoadError) as e:
        raise ConfigError(f"config: [capture] cookies_file {path}: {os_error_text(e, with_path=False)}") from e
    for cookie in jar:
        if cookie.expires == 0:  # how browsers and curl export a session cookie
            cookie.expires, cookie.discard = None, True
    expired = sorted({f"{c.name} ({c.domain})" for c in jar if c.is_expired()})
    if expired:
        log.warning("cookies_file %s: %d expired cookie(s) will not be sent: %s",
                    path, len(expired), ", ".join(expired[:10]))
    return [c for c in jar if not c.is_expired()]


def _check_ca_bundle(path: Path) -> None:
    """A bad ca_bundle is a configuration error at start, not a failure of every fetch."""
    try:
        ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"config: [capture] ca_bundle {path}: {os_error_text(e, with_path=False)}") from e


def _client_cert(cfg: CaptureConfig) -> str | tuple[str, str] | None:
    if not cfg.client_cert:
        return None
    cert = (str(cfg.client_cert), str(cfg.client_key)) if cfg.client_key else str(cfg.client_cert)
    try:
        ssl.create_default_context().load_cert_chain(*((cert,) if isinstance(cert, str) else cert))
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"config: [capture] client_cert {cfg.client_cert}: {os_error_text(e, with_path=False)}") from e
    return cert


# ---- errors -----------------------------------------------------------------------------

def _error_labels() -> tuple[tuple[type[BaseException], str], ...]:
    """(exception type, one-line label), most specific first."""
    return (
        (socket.gaierror, "DNS lookup failed"),
        (ConnectionRefusedError, "connection refused"),
        (http.client.RemoteDisconnected, "connection closed without a response"),  # a ConnectionResetError
        (ConnectionResetError, "connection reset"),
        (ssl.SSLCertVerificationError, "TLS certificate verification failed"),
        (ssl.SSLError, "TLS error"),
        (TimeoutError, "timed out"),
        (http.client.IncompleteRead, "connection closed mid-body"),
    )


WRAPPERS = ("requests.", "urllib3.")  # whose exceptions wrap the one that says what happened
# user:password@ in a URL an error message quotes (a proxy's): the message goes into the
# capture's record, the catalog and the log.
URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]*@")


def _causes(e: BaseException) -> list[BaseException]:
    """The exception and those it wraps, outermost first: requests wraps urllib3's, which
    wrap the socket's (as an argument, a ``reason`` or a cause)."""
    chain: list[BaseException] = []
    current: BaseException | None = e
    while current is not None and current not in chain and len(chain) < 12:
        chain.append(current)
        inner = getattr(current, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((a for a in current.args if isinstance(a, BaseException)), None)
        current = inner or current.__cause__
    return chain


def describe_error(e: BaseException) -> str:
    """One line saying why no (complete) response came back."""
    chain = _causes(e)
    for kind, label in _error_labels():
        for cause in chain:
            if isinstance(cause, kind):
                return f"{label} ({type(cause).__name__})"
    inner = next((c for c in chain if not type(c).__module__.startswith(WRAPPERS)), chain[-1])
    text = str(inner)
    first = URL_USERINFO.sub(r"\1***@", text.splitlines()[0]) if text else type(inner).__name__
    return f"{type(inner).__name__}: {first[:200]}"


def _timed_out(e: BaseException) -> bool:
    return any(isinstance(cause, TimeoutError) for cause in _causes(e))
