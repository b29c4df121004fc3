"""The built-in demo site: a small news site on localhost whose article can be edited.

Text written for this project. It has what real targets have: READ boxes in the
*Inline Related Posts* markup, in-body source links, navigation and a sidebar that must
not be followed, a stylesheet with fonts, images and an @import, srcset images, a script
and an icon.
"""

from __future__ import annotations

import base64
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from archiver import library

PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")

ARTICLE_PATH = "/2026/11/defence-office-opens-in-marenburg/"

PARAGRAPHS_V1 = [
    "The Ministry of Defence of Ruritania has opened a permanent representative office in "
    "Marenburg, the capital of neighbouring Borduria, officials said on Tuesday.",
    "According to the agreement signed last month, the office will employ 12 staff and help "
    "train Bordurian personnel on equipment bought from Ruritania since 2019.",
    "Critics in the Bordurian parliament called the step a first move towards a permanent "
    "military presence, a claim the ministry denies.",
]
PARAGRAPHS_V2 = [
    PARAGRAPHS_V1[0],
    "According to the agreement signed last month, the office will employ 40 staff and help "
    "train Bordurian personnel on equipment bought from Ruritania since 2019.",
    PARAGRAPHS_V1[2],
]
TITLE_V1 = "Ruritanian Defence Ministry Opens Office in Marenburg"
TITLE_V2 = "Ruritanian Defence Ministry Expands Presence in Marenburg"


def _read_box(href: str, title: str) -> str:
    return (f'<div style="clear:both; margin-top:0em; margin-bottom:1em;"><a href="{href}" target="_blank" '
            f'rel="nofollow" class="u0f3e"><div style="padding-left:1em; padding-right:1em;">'
            f'<span class="ctaText">READ</span>&nbsp; <span class="postTitle">{title}</span></div></a></div>')


def _page(title: str, body: str) -> bytes:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} | Marenburg Monitor</title>
<link rel="stylesheet" href="/static/site.css"><link rel="icon" href="/favicon.ico">
<script src="/static/app.js"></script></head>
<body><header><nav><a href="/">Home</a> <a href="/politics/">Politics</a> <a href="/about/">About</a></nav></header>
<main><article><h1>{title}</h1><div class="entry-content">{body}</div></article></main>
<aside class="sidebar"><h3>Trending</h3><a href="/trending/1/">Weather warning</a></aside>
<footer>Copyright &copy; 2026 Marenburg Monitor</footer></body></html>""".encode()


def article(version: int) -> bytes:
    paragraphs = PARAGRAPHS_V1 if version == 1 else PARAGRAPHS_V2
    title = TITLE_V1 if version == 1 else TITLE_V2
    body = (f"<p>{paragraphs[0]} The ministry published <a href=\"/sources/ministry-statement/\">its "
            f"statement</a> in the morning.</p>"
            + _read_box("/2026/10/pipeline-deal/", "Pipeline Deal Signed Despite Objections")
            + f"<p>{paragraphs[1]}</p>"
            '<p><img src="/media/office.png" srcset="/media/office-640.png 640w, /media/office-1280.png 1280w" '
            'alt="The new office"></p>'
            + _read_box("/2026/09/airbase-rumours/", "Airbase Rumours Denied Again")
            + f"<p>{paragraphs[2]} See the <a href=\"/reports/parliament-debate/\">debate record</a>.</p>")
    return _page(title, body)


def _plain_page(title: str) -> bytes:
    return _page(title, f"<p>{title}. This page is part of the archiver demo site and is "
                        f"referenced from the main article.</p>")


STATIC = {
    "/static/site.css": ("text/css", b'@import "/static/print.css";\n'
                         b'@font-face { font-family: Demo; src: url("/static/demo.woff2") format("woff2"); }\n'
                         b'body { font-family: Demo, serif; background: url(/media/paper.png); }\n'),
    "/static/print.css": ("text/css", b"@media print { nav, aside { display: none; } }\n"),
    "/static/app.js": ("application/javascript", b"document.documentElement.className = 'js';\n"),
    "/static/demo.woff2": ("font/woff2", b"wOF2-demo-font-bytes"),
    "/favicon.ico": ("image/png", PNG_1PX),
    "/media/office.png": ("image/png", PNG_1PX),
    "/media/office-640.png": ("image/png", PNG_1PX),
    "/media/office-1280.png": ("image/png", PNG_1PX),
    "/media/paper.png": ("image/png", PNG_1PX),
}
PAGES = {
    "/2026/10/pipeline-deal/": "Pipeline Deal Signed Despite Objections",
    "/2026/09/airbase-rumours/": "Airbase Rumours Denied Again",
    "/sources/ministry-statement/": "Statement of the Ministry of Defence",
    "/reports/parliament-debate/": "Record of the Parliament Debate",
    "/": "Marenburg Monitor",
}


class DemoSite:
    """The demo site on 127.0.0.1 (port 0 = any free port), served from a thread."""

    def __init__(self, port: int = 0):
        self.version = 1
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                ctype, body = site.resource(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body or b"not found")))
                self.end_headers()
                self.wfile.write(body or b"not found")

            def log_message(self, *args) -> None:  # keep the demo's output readable
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def article_url(self) -> str:
        return self.base + ARTICLE_PATH

    def resource(self, path: str) -> tuple[str, bytes | None]:
        if path == ARTICLE_PATH:
            return "text/html; charset=utf-8", article(self.version)
        if path in STATIC:
            return STATIC[path]
        if path in PAGES:
            return "text/html; charset=utf-8", _plain_page(PAGES[path])
        return "text/plain", None

    def __enter__(self) -> "DemoSite":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _next_second() -> None:
    """Replay addresses captures by the second (14-digit timestamps): start the second
    capture in a later second so both versions can be replayed."""
    time.sleep(1.0 - time.time() % 1.0 + 0.01)


def run_demo(directory, on_result=lambda r: None) -> list:
    """Create an archive in ``directory``, capture the demo article, edit it, capture
    again, through the library as a Python caller would. Returns the two snapshot
    summaries."""
    archive = library.init(directory, overrides={"per_host_delay": "0.0", "confirm_delay": "0.5"})
    archive.keygen()  # so the demo's ledger checkpoints are signed
    summaries = []
    with DemoSite() as site:
        for version in (1, 2):
            site.version = version
            if version == 2:
                _next_second()
            summaries.append(archive.snapshot([site.article_url], on_result))
    return summaries
