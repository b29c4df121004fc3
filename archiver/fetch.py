"""The only network code: one HTTP exchange, streamed to a spool file, as sent and received.

``Fetcher.exchange`` sends one GET (no redirect following: every hop is its own
exchange) on a kept-alive or new connection, whose peer address and TLS details were
read when it was opened, and streams the raw body (content-encoding kept, chunked
framing removed) into a temporary file while computing the WARC digests. The request
head is built here and sent byte for byte, so the request record holds exactly what
went out; the response head is kept as received (http1.py reads it).

Sockets are non-blocking, and an exchange is a coroutine (a generator) that yields an
http1.Wait whenever it must wait for its socket: the crawler runs many at once from one
thread (crawl.FetchLoop), and ``Fetcher.fetch`` runs one to its end (run_blocking).
Fetch threads cost more CPU than the fetching itself (bench/fetch_models.py).

Why not requests or http.client: on loopback, requests cost 0.6 ms of CPU per URL,
urllib3 0.2 ms and our Fetcher over http.client 0.25 ms. We use none of what they add
(redirects, cookies that persist, content decoding), and the capture benchmark against
wget is CPU-bound.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import ipaddress
import logging
import os
import re
import select
import selectors
import socket
import ssl
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Callable, Generator, TypeVar
from urllib.parse import unquote, urlsplit

from . import http1
from .config import CaptureConfig
from .errors import ConfigError, os_error_text
from .seeds import DEFAULT_PORTS
from .warcfile import sha1_label

log = logging.getLogger("archiver")
T = TypeVar("T")

# Encodings we can undo with a size cap for link discovery; the stored bytes are never decoded.
DEFAULT_HEADERS = (("Accept-Encoding", "gzip, deflate"), ("Accept", "*/*"))
SPOOL_IN_MEMORY = 1_000_000
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
ENCODING_DER = 2  # _ssl.ENCODING_DER, for the certificate objects of the chain
RENAMED_HEADER_PREFIX = "X-Archive-Orig-"
MIN_IDLE = 16  # kept-alive connections held at least (more with a higher concurrency)
ANSWER_MAX_AGE = 30.0  # seconds a DNS answer the crawl recorded may serve a new connection
MAX_ANSWERS = 1024  # kept DNS answers before the stale ones are dropped
# A kept-alive connection the server has meanwhile closed fails like this before any
# response byte arrives; the request is then sent once more on a new connection.
STALE_CONNECTION = (http1.NoResponse, BrokenPipeError, ConnectionResetError)
TRANSFER_ENCODING = re.compile(rb"(?im)^(transfer-encoding[ \t]*:)")
# Control, space or non-ASCII in a request target; a negated class compiles in 3 ms less than the ranges.
UNSENDABLE = re.compile(r"[^\x21-\x7e]")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


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
    request_head: bytes | None = None  # as sent; None: nothing was sent (e.g. robots.txt said no)
    status: int | None = None
    response_head: http1.Response | None = None  # with Transfer-Encoding renamed, as stored
    response_head_bytes: bytes = b""  # status line and headers as received, ending in a blank line
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


Exchanging = Generator["http1.Wait", None, Exchange]  # Fetcher.exchange: waits, then the exchange


@dataclass(frozen=True)
class Target:
    """Where a URL's request goes: the origin's connection key and the request line's target."""
    scheme: str
    host: str
    port: int
    netloc: str  # the Host header
    path: str    # the request target: path and query, or the absolute URL through an HTTP proxy

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port


class Connection:
    """A connected socket with its peer address and TLS session, read once when it was
    opened, and the reader that keeps what arrived past the last response."""

    def __init__(self, sock: socket.socket, ip: str, tls: TlsInfo | None, timeout: float):
        self.sock = sock
        self.ip = ip
        self.tls = tls
        self.reader = http1.Reader(sock, timeout)

    def close(self) -> None:
        self.sock.close()


class Fetcher:
    """Kept-alive connections per origin, shared by the exchanges, configured once from
    CaptureConfig. It sends the cookies of cookies_file and never keeps cookies that sites set."""

    def __init__(self, cfg: CaptureConfig, clock: Callable[[], datetime] = utcnow):
        self.cfg = cfg
        self.clock = clock
        configured = {name.lower() for name, _ in cfg.headers}  # replace defaults of the same name
        defaults = [("User-Agent", cfg.user_agent), *DEFAULT_HEADERS]
        self.headers = [(k, v) for k, v in defaults if k.lower() not in configured] + list(cfg.headers)
        self.cookies = _load_cookies(cfg.cookies_file) if cfg.cookies_file else None
        self.proxy = _proxy(cfg.proxy) if cfg.proxy else None
        # Loading the default CA bundle costs 17 ms, so it waits for the first https URL;
        # a configured ca_bundle is loaded now, so a bad one is a config error at start.
        self._tls: ssl.SSLContext | None = _tls_context(cfg) if cfg.ca_bundle else None
        # Kept-alive connections, least recently used origin first; at most max_idle in all,
        # so a crawl across thousands of hosts does not keep a socket open to each.
        self.idle: OrderedDict[tuple[str, str, int], list[Connection]] = OrderedDict()
        self.idle_count = 0
        self.max_idle = max(MIN_IDLE, 2 * cfg.concurrency)
        self.lock = threading.Lock()
        self.answers: dict[tuple[str, int], tuple[float, list]] = {}  # see look_up

    def close(self) -> None:
        with self.lock:
            connections = [c for conns in self.idle.values() for c in conns]
            self.idle.clear()
            self.idle_count = 0
        for conn in connections:
            conn.close()

    def fetch(self, url: str) -> Exchange:
        """One exchange, waited for in this thread (robots.txt, tests); the crawler runs
        many ``exchange`` coroutines at once instead."""
        return run_blocking(self.exchange(url))

    def exchange(self, url: str) -> Exchanging:
        """One exchange as a coroutine: it yields an http1.Wait whenever it must wait for
        its socket, and returns the Exchange."""
        started = self.clock()
        try:
            target = self._target(url)
            head = request_head_bytes(target.path, self._request_headers(url, target))
        except ValueError as e:
            return Exchange(url, started, error=f"invalid URL: {e}")
        ex = Exchange(url, started, request_head=head)
        deadline = time.monotonic() + self.cfg.total_timeout  # for all of it: connection, retry, response
        try:
            conn, response = yield from self._send(target, head, deadline)
        except (OSError, UnicodeError, http1.ResponseError) as e:  # UnicodeError: a host name IDNA refuses
            ex.error = describe_error(e)
            return ex
        complete = False
        try:
            complete = yield from self._read_response(conn, response, ex)
        finally:
            if complete and not response.will_close and not conn.reader.buffered:
                self._keep(target.origin, conn)
            else:
                conn.close()
        return ex

    def look_up(self, host: str, port: int) -> Generator[http1.Wait, None, list]:
        """getaddrinfo's answer for host, kept for the next connection to it if that comes
        within ANSWER_MAX_AGE: the crawl records each host's addresses once per snapshot,
        just before its first fetch there, which need not ask again."""
        infos = yield from lookup(host, port, self.cfg.timeout, time.monotonic() + self.cfg.timeout)
        if self.proxy is None:  # else connections go to the proxy, not to these addresses
            now = time.monotonic()
            if len(self.answers) >= MAX_ANSWERS:  # answers no connection came for
                self.answers = {k: v for k, v in self.answers.items() if now - v[0] < ANSWER_MAX_AGE}
            self.answers[(host, port)] = (now, infos)
        return infos

    # ---- the request ------------------------------------------------------------------

    def _target(self, url: str) -> Target:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url}")
        port = parts.port or DEFAULT_PORTS[scheme]
        netloc = parts.netloc.rpartition("@")[2]
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if self.proxy is not None and scheme == "http":
            path = url.split("#", 1)[0]  # an HTTP proxy takes the absolute URL
        if UNSENDABLE.search(path):
            raise ValueError(f"a space, control or non-ASCII character in the request target {path[:200]!r}")
        return Target(scheme, parts.hostname, port, netloc, path)

    def _request_headers(self, url: str, target: Target) -> list[tuple[str, str]]:
        """The request's headers in the order sent, Host first, as every browser does."""
        headers = [("Host", target.netloc), *self.headers]
        if self.cookies is not None:
            cookie = _cookie_header(self.cookies, url)
            if cookie:
                headers.append(("Cookie", cookie))
        if self.proxy is not None and target.scheme == "http" and self.proxy.authorization:
            headers.append(("Proxy-Authorization", self.proxy.authorization))
        return headers

    def _send(self, target: Target, head: bytes, deadline: float
              ) -> Generator[http1.Wait, None, tuple[Connection, http1.Response]]:
        """Send on a kept-alive connection if there is one (once more on a new one if the
        server had closed it), else on a new connection; return it with the response head."""
        conn = self._take(target.origin)
        if conn is not None:
            try:
                return conn, (yield from self._exchange(conn, head, deadline))
            except STALE_CONNECTION:
                conn.close()
            except BaseException:
                conn.close()
                raise
        conn = yield from self._connect(target, deadline)
        try:
            return conn, (yield from self._exchange(conn, head, deadline))
        except BaseException:
            conn.close()
            raise

    def _exchange(self, conn: Connection, head: bytes, deadline: float) -> Generator[http1.Wait, None, http1.Response]:
        conn.reader.deadline = deadline
        yield from http1.send_all(conn.sock, head, self.cfg.timeout, deadline)
        return http1.parse_head((yield from conn.reader.read_head()))

    def _connect(self, target: Target, deadline: float) -> Generator[http1.Wait, None, Connection]:
        """A new connection to the origin, or through the proxy to it (a CONNECT tunnel
        for https), with TLS when the URL says so; each step within timeout and what is
        left of the deadline."""
        host, port = (target.host, target.port) if self.proxy is None else (self.proxy.host, self.proxy.port)
        sock = yield from self._open(host, port, deadline)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            ip = sock.getpeername()[0]
            if target.scheme == "https":
                if self.proxy is not None:
                    yield from self._tunnel(sock, target, deadline)
                sock = self._tls_context().wrap_socket(sock, server_hostname=target.host,
                                                       do_handshake_on_connect=False)
                yield from self._handshake(sock, deadline)
            return Connection(sock, ip, _tls_info(sock), self.cfg.timeout)
        except BaseException:
            sock.close()
            raise

    def _open(self, host: str, port: int, deadline: float) -> Generator[http1.Wait, None, socket.socket]:
        """A connected non-blocking socket to the first address of host that answers, as
        socket.create_connection does."""
        error: OSError = OSError(f"no address for {host}")
        kept = self.answers.pop((host, port), None)
        fresh = kept is not None and time.monotonic() - kept[0] < ANSWER_MAX_AGE
        infos = kept[1] if fresh else (yield from lookup(host, port, self.cfg.timeout, deadline))
        for family, kind, proto, _, address in infos:
            try:
                sock = socket.socket(family, kind, proto)
            except OSError as e:  # e.g. an IPv6 address on a kernel without IPv6
                error = e
                continue
            try:
                sock.setblocking(False)
                code = sock.connect_ex(address)
                if code == errno.EINPROGRESS:
                    try:
                        yield http1.wait_on(sock, selectors.EVENT_WRITE, self.cfg.timeout, deadline)
                    except TimeoutError as e:  # on to the next address, as create_connection does
                        sock.close()
                        error = e
                        continue
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if not code:
                    return sock
                error = OSError(code, os.strerror(code))  # ConnectionRefusedError for ECONNREFUSED
            except BaseException:
                sock.close()
                raise
            sock.close()
        raise error

    def _handshake(self, sock: ssl.SSLSocket, deadline: float) -> Generator[http1.Wait, None, None]:
        yield from http1.when_ready(sock.do_handshake, sock, selectors.EVENT_READ, self.cfg.timeout, deadline)

    def _tls_context(self) -> ssl.SSLContext:
        with self.lock:
            if self._tls is None:
                self._tls = _tls_context(self.cfg)
            return self._tls

    def _tunnel(self, sock: socket.socket, target: Target, deadline: float) -> Generator[http1.Wait, None, None]:
        assert self.proxy is not None
        authority = f"[{target.host}]:{target.port}" if ":" in target.host else f"{target.host}:{target.port}"
        headers = [("Host", authority)]
        if self.proxy.authorization:
            headers.append(("Proxy-Authorization", self.proxy.authorization))
        yield from http1.send_all(sock, request_head_bytes(authority, headers, method="CONNECT"),
                                  self.cfg.timeout, deadline)
        reader = http1.Reader(sock, self.cfg.timeout)
        reader.deadline = deadline
        response = http1.parse_head((yield from reader.read_head()))
        if not 200 <= response.status < 300:
            raise OSError(f"proxy refused the tunnel to {authority}: {response.status} {response.reason}")

    def _take(self, origin: tuple[str, str, int]) -> Connection | None:
        """An idle connection to the origin on which nothing has arrived since its last
        response: bytes there (the rest of an overlong body, a 408 before the server hangs
        up) would be read as the next response. Others are closed."""
        while True:
            with self.lock:
                conns = self.idle.get(origin)
                if not conns:
                    return None
                self.idle_count -= 1
                conn = conns.pop()
                if not conns:
                    del self.idle[origin]
            if not _readable(conn.sock):
                return conn
            conn.close()

    def _keep(self, origin: tuple[str, str, int], conn: Connection) -> None:
        """Keep a connection for the origin's next request; close the least recently used
        idle ones beyond max_idle."""
        evicted = []
        with self.lock:
            conns = self.idle.setdefault(origin, [])
            self.idle.move_to_end(origin)
            if len(conns) >= max(self.cfg.per_host_concurrency, 1):
                evicted.append(conn)
            else:
                conns.append(conn)
                self.idle_count += 1
            while self.idle_count > self.max_idle:
                oldest, old_conns = next(iter(self.idle.items()))
                evicted.append(old_conns.pop(0))
                self.idle_count -= 1
                if not old_conns:
                    del self.idle[oldest]
        for c in evicted:
            c.close()

    # ---- the response -----------------------------------------------------------------

    def _read_response(self, conn: Connection, response: http1.Response, ex: Exchange) -> Generator[http1.Wait, None, bool]:
        """Fill ex from the response; True when the body was read to its end (the
        connection can then be reused)."""
        ex.ip, ex.tls = conn.ip, conn.tls
        ex.status = response.status
        ex.response_head, ex.response_head_bytes = stored_head(response)
        head_digest = hashlib.sha1(ex.response_head_bytes)
        payload_digest = hashlib.sha1()
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
        ex.body = spool
        if kept := http1.kept_codings(response):
            ex.error = f"transfer coding {', '.join(kept)} kept as received"
        try:
            ex.truncated = yield from self._stream_body(conn, response, spool, (head_digest, payload_digest))
        except (OSError, http1.ResponseError) as e:
            ex.truncated = "time" if isinstance(e, TimeoutError) else "disconnect"
            ex.error = "; ".join(filter(None, (ex.error, f"body incomplete: {describe_error(e)}")))
        ex.body_length = spool.tell()
        ex.payload_digest = sha1_label(payload_digest)
        ex.block_digest = sha1_label(head_digest)
        return not ex.truncated

    def _stream_body(self, conn: Connection, response: http1.Response, spool: IO[bytes],
                     digests: tuple) -> Generator[http1.Wait, None, str]:
        """Copy the body as it arrives; stop at max_bytes ("length") or at the response's
        deadline, total_timeout after the fetch began ("time")."""
        body = http1.body_of(conn.reader, response)
        kept = 0
        try:
            while chunk := (yield from body.next_piece()):
                room = self.cfg.max_bytes - kept
                piece = chunk[:room]
                spool.write(piece)
                for d in digests:
                    d.update(piece)
                kept += len(piece)
                if len(chunk) > room:
                    return "length"
        except TimeoutError:
            if time.monotonic() >= conn.reader.deadline:
                return "time"
            raise
        return ""


def lookup(host: str, port: int, timeout: float, deadline: float) -> Generator[http1.Wait, None, list]:
    """getaddrinfo for a TCP connection, without holding up other exchanges: a host name is
    looked up in a thread of its own (getaddrinfo cannot be waited on), which signals on a
    socket pair; an IP address needs no lookup."""
    if _is_ip_address(host):
        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    outcome: list = []
    done, signal = socket.socketpair()

    def look_up() -> None:  # closes `signal`: the exchange may have stopped waiting
        try:
            outcome.append(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))
        except BaseException as e:  # noqa: BLE001 - handed to the exchange
            outcome.append(e)
        try:
            signal.send(b"x")
        except OSError:  # the exchange gave up waiting
            pass
        signal.close()

    try:
        try:
            threading.Thread(target=look_up, name="dns", daemon=True).start()
        except RuntimeError as e:  # no more threads: this fetch fails, not the crawl
            signal.close()
            raise OSError(f"DNS lookup not started: {e}") from e
        while not outcome:
            yield http1.wait_on(done, selectors.EVENT_READ, timeout, deadline)
    finally:
        done.close()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def run_blocking(task: Generator[http1.Wait, None, T]) -> T:
    """Run a coroutine of this module to its end in this thread, waiting on each socket it
    waits for (and throwing TimeoutError into it when a wait ends unanswered)."""
    failure: BaseException | None = None
    while True:
        try:
            wait = task.throw(failure) if failure else next(task)
        except StopIteration as done:
            return done.value
        failure = None if _wait_for(wait) else TimeoutError("timed out")


def _wait_for(wait: http1.Wait) -> bool:
    """Whether the socket became ready before wait.until."""
    return _ready(wait.sock, wait.events, max(0.0, wait.until - time.monotonic()))


def _readable(sock: socket.socket) -> bool:
    """Bytes, an end of file or an error wait on an idle connection."""
    return (isinstance(sock, ssl.SSLSocket) and sock.pending() > 0) or _ready(sock, selectors.EVENT_READ, 0.0)


def _ready(sock: socket.socket, events: int, seconds: float) -> bool:
    poller = select.poll()  # not select(): it fails on descriptors past 1023
    poller.register(sock, select.POLLIN if events == selectors.EVENT_READ else select.POLLOUT)
    return bool(poller.poll(seconds * 1000))


def request_head_bytes(target: str, headers: list[tuple[str, str]], method: str = "GET") -> bytes:
    """The request line and headers, as sent and as the request record stores them. Header
    values are sent as UTF-8, as browsers send cookies (the target is ASCII, see _target)."""
    lines = [f"{method} {target} HTTP/1.1"] + [f"{name}: {value}" for name, value in headers]
    if any("\r" in line or "\n" in line for line in lines):
        raise ValueError("a line break inside a request header")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def stored_head(response: http1.Response) -> tuple[http1.Response, bytes]:
    """The status line and headers as received (header order, case and bytes kept), with
    Transfer-Encoding renamed because the body we store is de-framed."""
    if not any(name.lower() == "transfer-encoding" for name, _ in response.headers):
        return response, response.head
    head = TRANSFER_ENCODING.sub(RENAMED_HEADER_PREFIX.encode() + rb"\1", response.head)
    headers = [(RENAMED_HEADER_PREFIX + k if k.lower() == "transfer-encoding" else k, v) for k, v in response.headers]
    return replace(response, headers=headers, head=head), head


def _tls_info(sock: socket.socket) -> TlsInfo | None:
    """The TLS session of a connection, None for plain HTTP."""
    if not isinstance(sock, ssl.SSLSocket):
        return None
    cipher = sock.cipher()
    return TlsInfo(sock.version() or "", cipher[0] if cipher else "", sock.getpeercert(binary_form=True) or b"",
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


def _tls_context(cfg: CaptureConfig) -> ssl.SSLContext:
    if not cfg.verify_tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cafile=str(cfg.ca_bundle) if cfg.ca_bundle else None)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"config: [capture] ca_bundle {cfg.ca_bundle}: {os_error_text(e, with_path=False)}") from e


# ---- errors -----------------------------------------------------------------------------

ERROR_LABELS = (  # (exception type, one-line label), most specific first
    (socket.gaierror, "DNS lookup failed"),
    (ConnectionRefusedError, "connection refused"),
    (ConnectionResetError, "connection reset"),
    (ssl.SSLCertVerificationError, "TLS certificate verification failed"),
    (ssl.SSLError, "TLS error"),
    (TimeoutError, "timed out"),
    (http1.NoResponse, "connection closed without a response"),
    (http1.BodyCut, "connection closed mid-body"),
)


def describe_error(e: BaseException) -> str:
    """One line saying why no (complete) response came back."""
    for kind, label in ERROR_LABELS:
        if isinstance(e, kind):
            return f"{label} ({type(e).__name__})"
    text = str(e)
    first = text.splitlines()[0] if text else type(e).__name__
    return f"{type(e).__name__}: {first[:200]}"


# ---- proxy and cookies ------------------------------------------------------------------

@dataclass(frozen=True)
class Proxy:
    host: str
    port: int
    authorization: str  # "Basic ..." when the proxy URL carries credentials


def _proxy(url: str) -> Proxy:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(f"config: [capture] proxy {url!r}: expected http://[user:password@]host:port")
    auth = ""
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        auth = "Basic " + base64.b64encode(pair).decode("ascii")
    return Proxy(parts.hostname, parts.port or 80, auth)


def _load_cookies(path: Path):
    """The Netscape cookies.txt file, loaded once."""
    import http.cookiejar  # only archives with a cookies_file pay for it

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
    return jar


def _cookie_header(jar, url: str) -> str:
    import urllib.request

    request = urllib.request.Request(url)
    jar.add_cookie_header(request)
    return request.get_header("Cookie") or ""
