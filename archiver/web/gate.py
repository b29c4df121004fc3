"""WSGI layers in front of the interface and the replay server: the access token, and the
replay proxy to the pywb child.

The token (``[serve] token``), when set, must come with every request: as
``Authorization: Bearer TOKEN``, as the cookie the first visit gets, or as ``?token=TOKEN``
(which sets that cookie, HttpOnly and SameSite=Strict, and redirects to the URL without
it, so the token stays out of the history and of shared links).
"""

from __future__ import annotations

import hmac
import http.client
import re
import threading
from http.cookies import SimpleCookie
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]
COOKIE = "archiver_token"
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                        "trailer", "transfer-encoding", "upgrade"})
CHUNK = 64 * 1024
PROXY_TIMEOUT = 120.0


class TokenGate:
    """Refuse every request that does not carry the token (or, on the replay server, a
    capability pywb handed to a request that did: see Capabilities)."""

    def __init__(self, app: WSGIApp, token: str, capabilities: "Capabilities | None" = None):
        self.token, self.capabilities = token.encode(), capabilities
        self.app = capabilities.learning(app) if capabilities else app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        in_query = [v for k, v in query if k == "token"]
        if in_query and self._ok(in_query[0]) and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            return self._set_cookie(environ, [(k, v) for k, v in query if k != "token"], start_response)
        if self._ok(_bearer(environ)) or self._ok(_cookie(environ)) or (
                self.capabilities is not None and self.capabilities.allow(environ)):
            return self.app(environ, start_response)
        body = b"archiver serve: this server needs its access token ([serve] token)\n"
        start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"),
                                            ("Content-Length", str(len(body))),
                                            ("WWW-Authenticate", 'Bearer realm="archiver"')])
        return [body]

    def _ok(self, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.token)

    def _set_cookie(self, environ: dict, rest: list[tuple[str, str]], start_response: Callable) -> Iterable[bytes]:
        path = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "/"))
        location = path + ("?" + urlencode(rest) if rest else "")
        cookie = f"{COOKIE}={self.token.decode()}; Path=/; HttpOnly; SameSite=Strict"
        start_response("303 See Other", [("Location", location), ("Set-Cookie", cookie), ("Content-Length", "0")])
        return [b""]


class Capabilities:
    """The replay server's ``/o-TOKEN/`` prefixes (replay/guard.py: a keyed hash of an archived
    origin, under which pywb builds every URL of a capture of it) that pywb has handed out,
    in a redirect, to a request that carried the access token.

    A capture runs sandboxed in an opaque origin: its own requests (stylesheets, images,
    pywb's scripts under its prefix) are cross-site and carry no SameSite cookie, so they
    cannot carry the access token. They carry its prefix instead, which no one learns
    without the token: a request under a prefix handed out is let through.
    """

    PREFIX = re.compile(r"^/o-([0-9a-f]{24})/")

    def __init__(self) -> None:
        self.known: set[str] = set()
        self.lock = threading.Lock()

    def allow(self, environ: dict) -> bool:
        m = self.PREFIX.match(environ.get("PATH_INFO", ""))
        with self.lock:
            return m is not None and m.group(1) in self.known

    def learning(self, app: WSGIApp) -> WSGIApp:
        """app, noting the prefix of every redirect it answers with."""
        def learn(environ: dict, start_response: Callable) -> Iterable[bytes]:
            def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
                location = next((v for k, v in headers if k.lower() == "location"), "")
                m = self.PREFIX.match(urlsplit(location).path) if status.startswith("3") else None
                if m:
                    with self.lock:
                        self.known.add(m.group(1))
                return start_response(status, headers, exc_info)
            return app(environ, start)
        return learn


def _bearer(environ: dict) -> str:
    scheme, _, value = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _cookie(environ: dict) -> str:
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(environ.get("HTTP_COOKIE", ""))
    except Exception:  # noqa: BLE001 - a malformed Cookie header is no token
        return ""
    return cookies[COOKIE].value if COOKIE in cookies else ""


class ReplayProxy:
    """Every request, as it came (raw target, Host, Sec-Fetch-* and Origin headers, which
    replay/guard.py decides by), to pywb on the loopback address; its answer streamed back."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=PROXY_TIMEOUT)
        try:
            conn.request(environ["REQUEST_METHOD"], _target(environ), body=_body(environ), headers=_headers(environ))
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            body = f"archiver serve: the replay server did not answer ({e})\n".encode()
            start_response("502 Bad Gateway", [("Content-Type", "text/plain; charset=utf-8"),
                                               ("Content-Length", str(len(body)))])
            return [body]
        headers = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
        start_response(f"{response.status} {response.reason}", headers)
        return _stream(conn, response)


def _target(environ: dict) -> str:
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if raw:
        return raw
    query = environ.get("QUERY_STRING", "")
    return environ.get("PATH_INFO", "/") + ("?" + query if query else "")


def _headers(environ: dict) -> dict[str, str]:
    headers = {key[5:].replace("_", "-").title(): value for key, value in environ.items()
               if key.startswith("HTTP_") and key[5:].replace("_", "-").lower() not in HOP_BY_HOP}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").title()] = environ[key]
    headers.pop("Cookie", None)  # the interface's token cookie is not the archived page's business
    return headers


def _body(environ: dict) -> bytes | None:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length else None


def _stream(conn: http.client.HTTPConnection, response: Any) -> Iterator[bytes]:
    try:
        while chunk := response.read(CHUNK):
            yield chunk
    finally:
        conn.close()
