"""A real HTTP server on 127.0.0.1 (port 0) whose routes tests set up, hostile ones included.

Every request's path and headers are recorded, so tests can compare what archiver says
it sent and received with what the server saw.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

Handler = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Seen:
    path: str
    headers: list[tuple[str, str]]
    at: float  # time.monotonic() when the request arrived


@dataclass
class Site:
    host: str = "127.0.0.1"
    routes: dict[str, Handler] = field(default_factory=dict)
    hits: Counter = field(default_factory=Counter)
    seen: list[Seen] = field(default_factory=list)
    sent: dict[str, bytes] = field(default_factory=dict)  # path -> body bytes as sent on the wire

    def __post_init__(self) -> None:
        site = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                site.hits[self.path] += 1
                site.seen.append(Seen(self.path, list(self.headers.items()), time.monotonic()))
                handler = site.routes.get(self.path)
                if handler is None:
                    send(self, 404, b"not found", "text/plain")
                else:
                    handler(self)

            def log_message(self, *args) -> None:
                pass

        self.server = QuietServer((self.host, 0), RequestHandler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def page(self, path: str, body: bytes | str, ctype: str = "text/html; charset=utf-8",
             status: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.sent[path] = data
        self.routes[path] = lambda h: send(h, status, data, ctype, headers)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # clients that hang up (a killed archiver, a truncating fetch) are expected here


def send(h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str,
         headers: tuple[tuple[str, str], ...] = ()) -> None:
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body)))
    for k, v in headers:
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)


def send_chunked(h: BaseHTTPRequestHandler, body: bytes, ctype: str = "text/html", size: int = 100) -> None:
    h.send_response(200)
    h.send_header("Content-Type", ctype)
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    for i in range(0, len(body), size):
        piece = body[i:i + size]
        h.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
    h.wfile.write(b"0\r\n\r\n")


def gzipped(body: bytes) -> bytes:
    return gzip.compress(body, mtime=0)


def redirect(target: str, status: int = 302) -> Handler:
    return lambda h: send(h, status, b"", "text/plain", (("Location", target),))
