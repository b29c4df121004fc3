"""requests' transport, recorded: the adapter a Fetcher mounts on its Session.

requests and urllib3 move the bytes; the classes here only watch them, per connection
and without any global patch (the seam requests offers: an HTTPAdapter that hands
urllib3 connection classes of its own to its pool managers, SOCKS ones included):

- a connection keeps the bytes of the request head it sent (``sent``), its peer address
  and the TLS session it opened (read from its own socket when it connects);
- its response class keeps the status line and headers as read from the socket, byte
  for byte, and drops informational (1xx) responses before the final one, as browsers
  do (http.client drops 100 only; a 103 would be taken for the response);
- a direct connection connects to the addresses the crawl already resolved and recorded
  for the host (Fetcher.look_up), so the DNS record names what was used;
- a Deadline per exchange, kept by the thread doing it, lets a watchdog shut its
  connection at total_timeout: requests has per-read timeouts only, and a server
  dripping a byte at a time never lets one run out.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError
from urllib3.util import connection as urllib3_connection

from .fetch import TlsInfo

MAX_INFORMATIONAL = 65536  # bytes of 1xx responses read and dropped before the final one
ENCODING_DER = 2  # _ssl.ENCODING_DER, for the certificate objects of the chain

_local = threading.local()  # .deadline: the exchange this thread is doing, if any


@dataclass(eq=False)
class Deadline:
    """One exchange in progress on this thread: when it must end, and what it went out on."""
    at: float  # time.monotonic()
    take_answer: Callable[[str, int], list | None]
    connection: Any = None  # the connection its request was written to
    head: bytes = b""       # the response head, as received
    cut: bool = False       # the watchdog shut its connection at the deadline
    fresh: bool = False     # a connection was opened for it (not one kept alive)

    def __enter__(self) -> Deadline:
        _local.deadline = self
        return self

    def __exit__(self, *exc: object) -> None:
        _local.deadline = None

    def cut_off(self) -> None:
        """Shut the connection down (from another thread): a read blocked on it returns."""
        self.cut = True
        sock = getattr(self.connection, "sock", None)
        sock = getattr(sock, "socket", sock)  # TLS in TLS (an https proxy): the outer socket
        if isinstance(sock, socket.socket):
            try:  # the plain socket's shutdown, not SSLSocket's, which drops its TLS object
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass


def current() -> Deadline | None:
    return getattr(_local, "deadline", None)


class Watchdog:
    """One thread per Fetcher that cuts off exchanges still running at their deadline."""

    def __init__(self) -> None:
        self.active: set[Deadline] = set()
        self.cond = threading.Condition()
        self.thread: threading.Thread | None = None
        self.closed = False

    def watch(self, deadline: Deadline) -> None:
        with self.cond:
            self.active.add(deadline)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="fetch-deadlines", daemon=True)
                self.thread.start()
            self.cond.notify()

    def done(self, deadline: Deadline) -> None:
        with self.cond:
            self.active.discard(deadline)

    def cut_all(self) -> None:
        """Cut off every exchange in progress (the crawl is abandoning them)."""
        with self.cond:
            for deadline in self.active:
                deadline.cut_off()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify()

    def _run(self) -> None:
        with self.cond:
            while not self.closed:
                now = time.monotonic()
                for deadline in [d for d in self.active if d.at <= now]:
                    self.active.discard(deadline)
                    deadline.cut_off()
                soonest = min((d.at for d in self.active), default=None)
                self.cond.wait(None if soonest is None else max(0.0, soonest - now))


# ---- responses --------------------------------------------------------------------------

class _HeadRecorder:
    """The socket file http.client reads a response from: what it reads is kept until
    the head has been read (``head`` is then None and reads pass straight through)."""

    def __init__(self, fp: Any):
        self.fp = fp
        self.head: bytearray | None = bytearray()

    def readline(self, limit: int = -1) -> bytes:
        line = self.fp.readline(limit)
        if self.head is not None:
            self.head += line
        return line

    def read(self, n: int = -1) -> bytes:
        data = self.fp.read(n)
        if self.head is not None:
            self.head += data
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fp, name)


class RecordedResponse(http.client.HTTPResponse):
    """http.client's response, with the head kept as received (``head_bytes``)."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any):
        super().__init__(sock, *args, **kwargs)
        self.fp = _HeadRecorder(self.fp)
        self.head_bytes = b""

    def _read_status(self) -> tuple[str, int, str]:
        skipped = 0
        while True:
            skipped += len(self.fp.head or b"")
            if skipped > MAX_INFORMATIONAL:
                raise http.client.HTTPException(f"informational (1xx) responses over {MAX_INFORMATIONAL // 1024} KB")
            if self.fp.head is not None:
                self.fp.head.clear()
            version, status, reason = super()._read_status()
            if not 100 <= status < 200 or status == 101:
                return version, status, reason
            while self.fp.readline(65537) not in (b"\r\n", b"\n", b""):  # its headers
                pass

    def begin(self) -> None:
        super().begin()
        if self.fp.head is None:
            return
        self.head_bytes = bytes(self.fp.head)
        self.fp.head = None
        if _smuggling_shape(self):
            self.will_close = True  # http.client then closes the connection after this body
        deadline = current()
        if deadline is not None:
            deadline.head = self.head_bytes


def _smuggling_shape(response: http.client.HTTPResponse) -> bool:
    """Transfer-Encoding with Content-Length, or in HTTP/1.0: what follows on that
    connection cannot be trusted (RFC 9112 6.1, 6.3)."""
    headers = response.msg
    return bool(headers.get_all("Transfer-Encoding")) and (
        response.version == 10 or bool(headers.get_all("Content-Length")))


# ---- connections ------------------------------------------------------------------------

class _Recording:
    """Mixed into urllib3's connection classes: keeps what the request head sent, the
    peer address and the TLS session of the connection."""
    response_class = RecordedResponse
    sent: bytearray | None = None
    peer_ip = ""
    tls: TlsInfo | None = None

    def connect(self) -> None:
        deadline = current()
        if deadline is not None:
            deadline.fresh = True
        super().connect()  # type: ignore[misc]
        sock = self.sock  # type: ignore[attr-defined]
        try:
            self.peer_ip = str(sock.getpeername()[0])
        except (OSError, AttributeError, IndexError, TypeError):
            self.peer_ip = ""
        self.tls = tls_info(sock)

    def putrequest(self, *args: Any, **kwargs: Any) -> None:
        self.sent = bytearray()
        deadline = current()
        if deadline is not None:
            deadline.connection = self
        super().putrequest(*args, **kwargs)  # type: ignore[misc]

    def putheader(self, header: str, *values: Any) -> None:
        # Header values go out as UTF-8, as browsers send cookies (http.client: latin-1 only).
        super().putheader(header, *(v.encode("utf-8", "surrogateescape") if isinstance(v, str) and not v.isascii()
                                    else v for v in values))  # type: ignore[misc]

    def send(self, data: Any) -> None:
        if self.sent is not None and isinstance(data, (bytes, bytearray)):
            self.sent += data
        super().send(data)  # type: ignore[misc]


class _Direct:
    """A direct connection to the addresses the crawl resolved (and recorded) for the
    host, when it has them: the host is not looked up a second time."""

    def _new_conn(self) -> socket.socket:
        deadline = current()
        answer = deadline.take_answer(self._dns_host, self.port) if deadline else None  # type: ignore[attr-defined]
        if not answer:
            return super()._new_conn()  # type: ignore[misc]
        error: OSError = OSError("no address")
        for *_, address in answer:  # in order, as socket.create_connection does
            try:
                return urllib3_connection.create_connection(
                    (address[0], address[1]), self.timeout,  # type: ignore[attr-defined]
                    source_address=self.source_address, socket_options=self.socket_options)  # type: ignore[attr-defined]
            except OSError as e:
                error = e
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}") from error


class _HTTPConnection(_Recording, _Direct, HTTPConnection):
    pass


class _HTTPSConnection(_Recording, _Direct, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


POOLS = {"http": _HTTPPool, "https": _HTTPSPool}
_socks_pools: dict[str, type] = {}


def socks_pools() -> dict[str, type]:
    """The SOCKS pool classes (PySocks is imported when a SOCKS proxy is first used)."""
    if not _socks_pools:
        from urllib3.contrib.socks import (SOCKSConnection, SOCKSHTTPConnectionPool, SOCKSHTTPSConnection,
                                           SOCKSHTTPSConnectionPool)

        connection = type("_SOCKSConnection", (_Recording, SOCKSConnection), {})
        tls_connection = type("_SOCKSHTTPSConnection", (_Recording, SOCKSHTTPSConnection), {})
        _socks_pools["http"] = type("_SOCKSHTTPPool", (SOCKSHTTPConnectionPool,), {"ConnectionCls": connection})
        _socks_pools["https"] = type("_SOCKSHTTPSPool", (SOCKSHTTPSConnectionPool,), {"ConnectionCls": tls_connection})
    return _socks_pools


class RecordingAdapter(HTTPAdapter):
    """requests' HTTPAdapter whose pools (direct, through an HTTP(S) proxy, through SOCKS)
    make connections of the classes above."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = socks_pools() if proxy.lower().startswith("socks") else POOLS
        return manager


def tls_info(sock: Any) -> TlsInfo | None:
    """The TLS session of a connection's socket, None for plain HTTP."""
    if not hasattr(sock, "getpeercert") or not hasattr(sock, "cipher"):
        return None
    cipher = sock.cipher()
    return TlsInfo(sock.version() or "", cipher[0] if cipher else "", sock.getpeercert(binary_form=True) or b"",
                   _peer_chain(sock))


def _peer_chain(sock: Any) -> list[bytes]:
    """The certificate chain the peer sent: public from Python 3.13, a private method of
    the same object since 3.10; empty where neither exists."""
    inner = getattr(sock, "_sslobj", None) or getattr(sock, "sslobj", None)
    getter = getattr(sock, "get_unverified_chain", None) or getattr(inner, "get_unverified_chain", None)
    if getter is None:
        return []
    try:
        chain = getter() or []
    except (ssl.SSLError, ValueError):
        return []
    return [c if isinstance(c, bytes) else c.public_bytes(ENCODING_DER) for c in chain]
