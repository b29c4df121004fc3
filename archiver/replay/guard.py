"""The WSGI layer between the browser and pywb in ``archiver replay``: archived pages are
hostile input, kept apart from each other, from pywb's index API and from the network.

Every response gets one Content-Security-Policy of ours (pywb's own, which allows ``ws:``
and ``wss:`` to any host and covers ``mp_`` replies only, is switched off):

- An archived document, in any mode (``mp_``, ``id_``, ``if_``...), is sandboxed without
  ``allow-same-origin``: it runs in an opaque origin of its own, so it cannot read pywb's
  index API (cdx, timemap), pywb's frame or another document. Its fetches, sockets,
  frames, images and forms may go to the replay server alone (``'self'``), never to
  another host, ``ws:`` or not; it cannot open windows or navigate the top-level page.
- Its scripts run only inside pywb's frame (``Sec-Fetch-Dest: iframe``), whose own policy
  (``frame-src 'self'``) keeps the capture's navigations in the archive. A capture opened
  as a top-level page (an ``mp_`` or ``id_`` link) is shown without its scripts.
- Reading a response (fetch, XHR) is granted as the live web granted it, by origin: each
  original origin (scheme, host, port) gets a capability, ``/o-TOKEN`` before the replay
  path, a keyed hash of the origin under a key made when the server starts. pywb builds
  every URL of a page under the prefix it was served with, so a page holds its own
  origin's token only. A request carrying the token of its target's origin may be read by
  the page (``Access-Control-Allow-Origin: null``); any other may be loaded (images,
  scripts, styles, frames) but not read. A document requested under another token, or
  none (the links archiver prints), is redirected to its own origin's token. Fonts and
  module scripts, which browsers load in CORS mode but never show to scripts, are granted
  whatever the token.
- pywb's own pages (frame, banner, calendar, index API) cannot be framed.
- Archived ``Access-Control-*`` headers are renamed (``X-Archive-Orig-``): pywb passes them
  on in ``id_`` mode, where an archived ``Access-Control-Allow-Origin: *`` would let any
  page read that capture.

Runs in pywb's process (archiver/replay.py); pywb is imported only when a request comes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlsplit

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]

# Fetch, socket, frame and form targets: the replay server alone ('self' includes ws: to it).
_SAME_ORIGIN = "default-src 'self' 'unsafe-inline' 'unsafe-eval' data: blob: mediastream:; form-action 'self'"
CAPTURE_CSP = f"sandbox allow-scripts allow-forms; {_SAME_ORIGIN}"
CAPTURE_TOP_CSP = f"sandbox allow-forms; {_SAME_ORIGIN}"   # shown as a top-level page: no scripts
UI_CSP = f"{_SAME_ORIGIN}; frame-ancestors 'none'"

TOKEN_PATH = re.compile(r"^/o-([0-9a-f]{24})(?=/)")
DOCUMENTS = frozenset({"document", "iframe", "frame", "embed", "object"})  # Sec-Fetch-Dest of a page load
SHOWN_NOT_READ = frozenset({"font", "script"})  # CORS-mode loads whose bytes no script sees

# pywb's head insert is preceded by this (archiver/replay.py writes the template). In the
# sandbox's opaque origin, reading navigator.serviceWorker, localStorage, sessionStorage
# or document.cookie throws, and pywb's client-side rewriter (wombat) stops half-way
# through its set-up at the first of them: give the page what a browser gives a private
# window instead (no service worker, storage and cookies in memory, gone with the page).
SANDBOX_SHIM = """(function () {
  if (self.origin !== "null") return;
  function define(obj, name, get, set) {
    Object.defineProperty(obj, name, {get: get, set: set, configurable: true});
  }
  function memoryStorage() {
    var items = new Map();
    return {
      getItem: function (k) { k = String(k); return items.has(k) ? items.get(k) : null; },
      setItem: function (k, v) { items.set(String(k), String(v)); },
      removeItem: function (k) { items.delete(String(k)); },
      clear: function () { items.clear(); },
      key: function (i) { var keys = Array.from(items.keys()); return i < keys.length ? keys[i] : null; },
      get length() { return items.size; }
    };
  }
  var local = memoryStorage(), session = memoryStorage(), jar = new Map();
  define(Navigator.prototype, "serviceWorker", function () { return undefined; });
  define(window, "localStorage", function () { return local; });
  define(window, "sessionStorage", function () { return session; });
  define(Document.prototype, "cookie", function () {
    return Array.from(jar, function (kv) { return kv[0] + "=" + kv[1]; }).join("; ");
  }, function (value) {
    var pair = String(value).split(";")[0], at = pair.indexOf("=");
    if (at > 0) jar.set(pair.slice(0, at).trim(), pair.slice(at + 1).trim());
  });
})();"""


def origin_of(url: str) -> str:
    """scheme://host:port of an archived URL ("" if it has none)."""
    try:
        parts = urlsplit(url if "://" in url else "http://" + url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower(), 0)
    except ValueError:
        return ""
    return f"{parts.scheme.lower()}://{parts.hostname}:{port}" if parts.hostname else ""


def archived_url(environ: Mapping[str, Any], collections: Iterable[str]) -> str | None:
    """The archived URL pywb answers this request with; None for pywb's own pages, static
    files and index API. A target pywb cannot parse counts as archived (the safe side)."""
    from pywb.rewrite.wburl import WbUrl  # pywb is there: this runs inside its process

    coll, _, rest = environ.get("PATH_INFO", "").lstrip("/").partition("/")
    if coll not in collections or rest in ("", "cdx") or rest.startswith("timemap/"):
        return None
    prefix = f"{environ.get('SCRIPT_NAME', '')}/{coll}/"
    raw = environ.get("REQUEST_URI", "")
    if raw.startswith(prefix):  # what pywb parses itself: the raw target, query included
        rest = raw[len(prefix):]
    try:
        wb_url = WbUrl(rest.replace("#", "%23"))
    except Exception:  # noqa: BLE001 - whatever pywb's parser rejects
        return ""
    if wb_url.type in (WbUrl.QUERY, WbUrl.URL_QUERY) or (wb_url.mod == "" and wb_url.is_replay()):
        return None  # the calendar, or pywb's frame around a capture
    return wb_url.url


class Guard:
    """pywb behind the isolation policy of the module's docstring."""

    def __init__(self, app: WSGIApp, collections: Iterable[str], key: bytes | None = None) -> None:
        self.app = app
        self.collections = frozenset(collections)
        self.key = key or os.urandom(32)

    def token(self, origin: str) -> str:
        return hmac.new(self.key, origin.encode(), hashlib.sha256).hexdigest()[:24] if origin else ""

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        token = take_token(environ)
        target = archived_url(environ, self.collections)
        if target is None:
            return self.app(environ, self._start(start_response, UI_CSP, []))
        dest = environ.get("HTTP_SEC_FETCH_DEST", "")
        own = self.token(origin_of(target))
        if dest in DOCUMENTS and own and token != own:
            return redirect(environ, own, start_response)
        policy = CAPTURE_CSP if dest == "iframe" else CAPTURE_TOP_CSP
        readable = (own and token == own) or dest in SHOWN_NOT_READ
        ours = list(GRANT) if readable and environ.get("HTTP_ORIGIN") == "null" else []
        if environ.get("REQUEST_METHOD") == "OPTIONS" and environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD"):
            return preflight(environ, policy, ours, start_response)
        return self.app(environ, self._start(start_response, policy, ours))

    @staticmethod
    def _start(start_response: Callable, policy: str, ours: list[tuple[str, str]]) -> Callable:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
            return start_response(status, policy_headers(headers, policy, ours), exc_info)
        return start


GRANT = (("Access-Control-Allow-Origin", "null"), ("Access-Control-Allow-Credentials", "true"))


def take_token(environ: dict) -> str:
    """Move a leading /o-TOKEN from PATH_INFO into SCRIPT_NAME (pywb then builds every URL of
    the page under it) and return the token; "" when there is none."""
    path = environ.get("PATH_INFO", "")
    m = TOKEN_PATH.match(path)
    if not m:
        return ""
    environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + m.group(0)
    environ["PATH_INFO"] = path[m.end():]
    return m.group(1)


def redirect(environ: dict, token: str, start_response: Callable) -> Iterable[bytes]:
    """The same request under the token of its target's origin."""
    raw, script = environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/"), environ.get("SCRIPT_NAME", "")
    path = raw[len(script):] if raw.startswith(script + "/") else raw
    start_response("302 Found", policy_headers([("Location", f"/o-{token}{path}"), ("Content-Length", "0")],
                                               CAPTURE_TOP_CSP, []))
    return [b""]


def preflight(environ: dict, policy: str, ours: list[tuple[str, str]], start_response: Callable) -> Iterable[bytes]:
    """The answer to a CORS preflight: what was asked, if the page may read the reply."""
    if ours:
        ours = ours + [("Access-Control-Allow-Methods", environ["HTTP_ACCESS_CONTROL_REQUEST_METHOD"]),
                       ("Access-Control-Allow-Headers", environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "")),
                       ("Access-Control-Max-Age", "600")]
    start_response("204 No Content", policy_headers([("Content-Length", "0")], policy, ours))
    return [b""]


def policy_headers(headers: list[tuple[str, str]], policy: str,
                   ours: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """pywb's response headers with any CSP dropped and archived Access-Control-* headers
    renamed; then our policy and our own headers."""
    out = []
    for name, value in headers:
        lower = name.lower()
        if lower in ("content-security-policy", "content-security-policy-report-only"):
            continue
        out.append((f"X-Archive-Orig-{name}" if lower.startswith("access-control-") else name, value))
    out.append(("Content-Security-Policy", policy))
    if policy != UI_CSP:  # the reply depends on these: a cached one must not answer another
        out.append(("Vary", "Sec-Fetch-Dest, Origin"))
    return out + ours
