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
  connection at head_timeout while the response head has not all come, and at
  total_timeout: requests has per-read timeouts only, and a server dripping a byte at a
  time never lets one run out;
- what a server sends that is not an HTTP response head (HTTP/0.9, a garbage status
  line, a head the connection ends in) is kept, with what follows it until the server
  closes (up to max_bytes, within the head's deadline): those bytes are the answer;
- a chunked body's trailer section is kept as received (urllib3 reads and drops it);
- a Content-Length that is not a number, or several that disagree, frame nothing: the
  body is read to the end of the connection, which is not used again;
- a connection made for a redirect, cross-reference or requisite goes only to the
  addresses its Deadline permits (allow_private_addresses), checked on the address
  connected to, so a name that resolves to a private address on the second lookup
  (DNS rebinding) is refused too.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any, Callable

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from archiver.capture import http1
from archiver.errors import FetchError

SPOOL_IN_MEMORY = 1_000_000  # bytes of a body kept in memory before it goes to a spool file
MAX_INFORMATIONAL = 65536  # bytes of 1xx responses read and dropped before the final one
MAX_TRAILER = 65536  # bytes of a chunked body's trailer section
READ_SIZE = 65536
ENCODING_DER = 2  # _ssl.ENCODING_DER, for the certificate objects of the chain

_local = threading.local()  # .deadline: the exchange this thread is doing, if any


class AddressRefused(FetchError):
    """A connection to an address the fetch may not reach (allow_private_addresses)."""


def is_public(address: str) -> bool:
    """A global unicast address: not private, loopback, link-local (169.254.169.254, the
    cloud metadata service), shared, reserved or multicast; an IPv4-mapped IPv6 address
    is judged by its IPv4 address."""
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])  # an IPv6 scope is not part of it
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


@dataclass
class TlsInfo:
    version: str
    cipher: str
    certificate_der: bytes
    chain_der: list[bytes] = field(default_factory=list)  # as the peer sent it, leaf first


@dataclass(eq=False)
class Deadline:
    """One exchange in progress on this thread: when it must end, and what it went out on."""
    at: float  # time.monotonic(): the end of the whole exchange
    take_answer: Callable[[str, int], list | None]
    head_at: float = float("inf")  # the end, while the response head has not all come
    reach: frozenset[str] | None = None  # non-public addresses it may connect to; None: any
    max_bytes: int = 0      # of what is kept when the answer is not HTTP
    connection: Any = None  # the connection its request was written to
    head: bytes = b""       # the response head, as received
    cut: str = ""           # why the watchdog shut its connection: head (head_timeout), total, cancel
    fresh: bool = False     # a connection was opened for it (not one kept alive)
    raw: IO[bytes] | None = None  # the bytes received, when they are not an HTTP response
    raw_cut: str = ""       # why those stop short (a WARC-Truncated reason), if they do
    trailer: bytearray = field(default_factory=bytearray)  # a chunked body's trailer section
    framing: str = ""       # what was wrong with the response's framing (Content-Length)

    def __enter__(self) -> Deadline:
        _local.deadline = self
        return self

    def __exit__(self, *exc: object) -> None:
        _local.deadline = None

    def due(self) -> tuple[float, str]:
        """When the watchdog must cut the exchange off, and why."""
        if not self.head and self.head_at < self.at:
            return self.head_at, "head"
        return self.at, "total"

    def permits(self, address: str) -> bool:
        return self.reach is None or address in self.reach or is_public(address)

    def cut_off(self, why: str = "cancel") -> None:
        """Shut the connection down (from another thread): a read blocked on it returns."""
        self.cut = why
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
                for deadline in list(self.active):
                    at, why = deadline.due()
                    if at <= now:
                        self.active.discard(deadline)
                        deadline.cut_off(why)
                soonest = min((d.due()[0] for d in self.active), default=None)
                self.cond.wait(None if soonest is None else max(0.0, soonest - now))


# ---- responses --------------------------------------------------------------------------

class _HeadRecorder:
    """The socket file http.client reads a response from: what it reads is kept until
    the head has been read (``head`` is then None and reads pass straight through), and
    the trailer section after a chunked body's last chunk (urllib3 reads chunk-size and
    trailer lines with readline, chunk data with read)."""

    def __init__(self, fp: Any, deadline: Deadline | None):
        self.fp = fp
        self.deadline = deadline
        self.head: bytearray | None = bytearray()
        self.in_trailer = False
        self.kept = False  # keep_rest has run

    def readline(self, limit: int = -1) -> bytes:
        line = self.fp.readline(limit)
        if self.head is not None:
            self.head += line
        elif self.in_trailer:
            self._keep_trailer(line)
        elif _is_last_chunk(line):
            self.in_trailer = True
        return line

    def read(self, n: int = -1) -> bytes:
        data = self.fp.read(n)
        if self.head is not None:
            self.head += data
        return data

    def _keep_trailer(self, line: bytes) -> None:
        if self.deadline is None:
            return
        self.deadline.trailer += line
        if len(self.deadline.trailer) > MAX_TRAILER:
            raise http1.ResponseError(f"trailer section over {MAX_TRAILER // 1024} KB")

    def keep_rest(self, deadline: Deadline) -> None:
        """The head could not be read: keep what came and what the server sends after it
        until it closes (up to max_bytes, within the head's deadline), once."""
        if self.head is None or self.kept:
            return
        self.kept = True
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
        spool.write(self.head[:deadline.max_bytes])
        cut = self._drain(spool, deadline) if len(self.head) < deadline.max_bytes else "length"
        if not spool.tell():
            spool.close()
            return
        if deadline.raw is not None:
            deadline.raw.close()
        deadline.raw, deadline.raw_cut = spool, cut

    def _drain(self, spool: IO[bytes], deadline: Deadline) -> str:
        """Read to the end of the connection; return why it stopped short, if it did."""
        kept = spool.tell()
        read = getattr(self.fp, "read1", self.fp.read)
        while kept < deadline.max_bytes:
            try:
                data = read(min(READ_SIZE, deadline.max_bytes - kept))
            except (OSError, ValueError) as e:  # timed out, reset, or cut off by the watchdog
                return "time" if deadline.cut or isinstance(e, TimeoutError) else "disconnect"
            if not data:
                return ""
            spool.write(data)
            kept += len(data)
        return "length"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fp, name)


def _is_last_chunk(line: bytes) -> bool:
    """The chunk-size line of the last chunk, as urllib3 reads it (hex digits, an
    extension after ";")."""
    try:
        return int(line.split(b";", 1)[0], 16) == 0
    except ValueError:
        return False


class RecordedResponse(http.client.HTTPResponse):
    """http.client's response, with the head kept as received (``head_bytes``)."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any):
        super().__init__(sock, *args, **kwargs)
        self.fp = _HeadRecorder(self.fp, current())
        self.recorder = self.fp
        self.head_bytes = b""
        self.beginning = False  # in begin(): not a CONNECT's answer, which http.client reads itself

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

    def _close_conn(self) -> None:
        deadline = self.recorder.deadline
        if self.beginning and deadline is not None:  # http.client gives up on the head
            self.recorder.keep_rest(deadline)
        super()._close_conn()

    def begin(self) -> None:
        recorder = self.recorder
        if recorder.head is None:
            return super().begin()
        self.beginning = True
        try:
            super().begin()
            _whole_head(bytes(recorder.head))
        except BaseException:
            if recorder.deadline is not None:
                recorder.keep_rest(recorder.deadline)
            raise
        finally:
            self.beginning = False
        self.head_bytes = bytes(recorder.head)
        recorder.head = None
        framing = self._frame()
        if recorder.deadline is not None:
            recorder.deadline.head = self.head_bytes
            recorder.deadline.framing = framing

    def _frame(self) -> str:
        """Content-Length as the body is read by: one value, or none (to the end of the
        connection) when it is not a number or several disagree; a connection whose
        framing was in doubt is not used again (RFC 9112 6.1, 6.3). Returns what was
        wrong, for the capture's error."""
        encoded, lengths = self.msg.get_all("Transfer-Encoding"), self.msg.get_all("Content-Length")
        if encoded and (lengths or self.version == 10):
            self.will_close = True  # http.client then closes the connection after this body
        if not lengths:
            return ""
        if encoded:
            return "framing: both Transfer-Encoding and Content-Length (the connection is not used again)"
        length, anomaly = http1.content_length(lengths)
        del self.msg["Content-Length"]
        if anomaly:
            self.will_close = True
        else:
            self.msg["Content-Length"] = str(length)  # "5, 5", or two fields of 5: one
        if self.length != 0:  # 0: a status or method without a body
            self.length = length
        return anomaly


def _whole_head(head: bytes) -> http1.Response:
    """The head http.client has read, if it is one: ended by a blank line (http.client
    takes the end of the connection for one), with an HTTP/1.x status line."""
    if not head.endswith((b"\n\n", b"\n\r\n")):
        raise http1.ResponseError("connection closed in the response head")
    return http1.parse_head(head)


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
            if self.sock is not None and self.peer_ip and not deadline.permits(self.peer_ip):  # type: ignore[attr-defined]
                raise AddressRefused(f"refused: {self.peer_ip} not a public address (allow_private_addresses)")
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
    host, when it has them: the host is not looked up a second time. When the Deadline
    restricts the addresses, only those it permits are tried."""

    def _new_conn(self) -> socket.socket:
        deadline = current()
        host, port = self._dns_host, self.port  # type: ignore[attr-defined]
        answer = deadline.take_answer(host, port) if deadline else None
        if deadline is not None and deadline.reach is not None:
            answer = self._permitted(deadline, answer or self._look_up())
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

    def _look_up(self) -> list:
        try:
            return socket.getaddrinfo(self._dns_host, self.port, 0, socket.SOCK_STREAM)  # type: ignore[attr-defined]
        except socket.gaierror as e:
            raise NameResolutionError(self.host, self, e) from e  # type: ignore[attr-defined, arg-type]

    def _permitted(self, deadline: Deadline, answer: list) -> list:
        """The addresses of the answer the exchange may connect to; never none."""
        permitted = [info for info in answer if deadline.permits(str(info[4][0]))]
        if not permitted:
            host, address = self._dns_host, str(answer[0][4][0]) if answer else "no address"  # type: ignore[attr-defined]
            where = host if host == address else f"{host} is at {address},"
            raise AddressRefused(f"refused: {where} not a public address (allow_private_addresses)")
        return permitted


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
