"""Replay what archiver captured through a real pywb (see archiver/replay.py).

pywb reads archiver's own ``warcs/`` and ``indexes/`` folders; nothing is re-indexed by
pywb. The local site is stopped before the rewritten-replay checks, and pywb has no live
collection, so every 200 below comes out of the WARC files.

What pywb does with a gzip-compressed response in ``id_`` (identity) mode depends on the
request: if the client's Accept-Encoding names the stored Content-Encoding, pywb sends
the stored bytes untouched with ``Content-Encoding: gzip``; otherwise it decompresses them
and renames the header to ``X-Archive-Orig-Content-Encoding``. Both are checked. A response
the server sent chunked is stored de-chunked (with ``X-Archive-Orig-Transfer-Encoding``),
so its id_ body is the de-chunked body.
"""

from __future__ import annotations

import http.client
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urljoin, urlsplit

import lxml.html
import pytest
from warcio.archiveiterator import ArchiveIterator

from archiver import demo
from archiver.config import Config, load_config
from archiver.demo import _read_box
from archiver.capture.fetch import utcnow
from archiver.archive.writer import Writer
from archiver.pipeline import snapshot

from .conftest import run_snapshot, warc_files
from archiver.replay.pywb import Collection, Pywb, running_pywb
from .site import Site, gzipped, send_chunked

pytestmark = pytest.mark.slow

COLL = "archive"
ARTICLE = "/2026/11/ministry-opens-office/"
READ_1 = "/2026/10/pipeline-deal/"
READ_2 = "/2026/09/airbase-rumours/"        # served with Transfer-Encoding: chunked
EDITORIAL = "/sources/ministry-statement/"
NOT_CAPTURED = "/politics/"                  # only in the navigation: never followed
GZIPPED = "/static/site.css"                 # served with Content-Encoding: gzip

PNG = b"\x89PNG\r\n\x1a\n-local-test-image-"  # any fixed bytes: nothing decodes them
CSS = (b'@import "/static/print.css";\n'
       b'@font-face { font-family: T; src: url("/static/t.woff2") format("woff2"); }\n'
       b"body { background: url(/media/paper.png); }\n")
STATIC: dict[str, tuple[str, bytes]] = {
    "/static/print.css": ("text/css", b"@media print { nav { display: none; } }\n"),
    "/static/t.woff2": ("font/woff2", b"wOF2-test-font"),
    "/static/app.js": ("application/javascript", b"document.documentElement.className = 'js';\n"),
    "/favicon.ico": ("image/png", PNG + b"icon"),
    "/media/paper.png": ("image/png", PNG + b"paper"),
    "/media/office.png": ("image/png", PNG + b"office"),
    "/media/office-640.png": ("image/png", PNG + b"640"),
    "/media/office-1280.png": ("image/png", PNG + b"1280"),
    "/media/airbase.png": ("image/png", PNG + b"airbase"),
}
HEAD_REQUISITES = {GZIPPED, "/favicon.ico", "/static/app.js"}
CSS_REQUISITES = {"/static/print.css", "/static/t.woff2", "/media/paper.png"}


def page(title: str, body: str) -> bytes:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="{GZIPPED}"><link rel="icon" href="/favicon.ico">
<script src="/static/app.js"></script></head>
<body><header><nav><a href="/">Home</a> <a href="{NOT_CAPTURED}">Politics</a></nav></header>
<main><article><h1>{title}</h1><div class="entry-content">{body}</div></article></main>
<footer>Copyright 2026 Test Monitor</footer></body></html>""".encode()


ARTICLE_HTML = page("Ministry Opens Office", (
    "<p>The ministry has opened a permanent representative office abroad, officials said on "
    f"Tuesday. It published <a href=\"{EDITORIAL}\">its statement</a> in the morning.</p>"
    + _read_box(READ_1, "Pipeline Deal Signed Despite Objections")
    + "<p>According to the agreement signed last month, the office will employ twelve staff "
    "and help train personnel on equipment bought since 2019.</p>"
    '<p><img src="/media/office.png" srcset="/media/office-640.png 640w, /media/office-1280.png 1280w" '
    'alt="The new office"></p>'
    + _read_box(READ_2, "Airbase Rumours Denied Again")
    + "<p>Critics called the step a first move towards a permanent presence, a claim the "
    "ministry denies.</p>"))
READ_1_HTML = page("Pipeline Deal Signed Despite Objections",
                   "<p>The pipeline deal was signed on Monday despite objections from the opposition.</p>")
READ_2_HTML = page("Airbase Rumours Denied Again",
                   "<p>The ministry denied the airbase rumours again; the story is long enough to be "
                   "sent in several chunks by the test server.</p>" + "<p>Filler paragraph.</p>" * 20
                   + '<p><img src="/media/airbase.png" alt="Airbase"></p>')
EDITORIAL_HTML = page("Statement of the Ministry", "<p>The ministry's statement, as published.</p>")

PAGES = {ARTICLE: ARTICLE_HTML, READ_1: READ_1_HTML, READ_2: READ_2_HTML, EDITORIAL: EDITORIAL_HTML}
PAGE_REQUISITES = {path: HEAD_REQUISITES | CSS_REQUISITES for path in PAGES}
PAGE_REQUISITES[ARTICLE] |= {"/media/office.png", "/media/office-640.png", "/media/office-1280.png"}
PAGE_REQUISITES[READ_2] |= {"/media/airbase.png"}
ALL_PATHS = set(PAGES) | set(STATIC) | {GZIPPED}


def serve_news_site(site: Site) -> dict[str, bytes]:
    """Set up the site; return path -> the body as the client sees it (decoded, de-chunked)."""
    for path, body in PAGES.items():
        if path != READ_2:
            site.page(path, body)
    site.routes[READ_2] = lambda h: send_chunked(h, READ_2_HTML, "text/html; charset=utf-8", size=97)
    site.page(GZIPPED, gzipped(CSS), "text/css", headers=(("Content-Encoding", "gzip"),))
    for path, (ctype, body) in STATIC.items():
        site.page(path, body, ctype)
    site.page(NOT_CAPTURED, page("Politics", "<p>Not part of the capture.</p>"))
    return {**PAGES, GZIPPED: CSS, **{path: body for path, (_, body) in STATIC.items()}}


# ---- reading what archiver wrote ----------------------------------------------------------

@dataclass(frozen=True)
class Recorded:
    url: str
    timestamp: str  # the 14 digits pywb addresses a capture by
    record: str     # response | revisit
    content_type: str


def recorded(config: Config) -> list[Recorded]:
    """Every response and revisit record in the archive's WARC files."""
    out = []
    for path in warc_files(config):
        with open(path, "rb") as f:
            for rec in ArchiveIterator(f):
                if rec.rec_type in ("response", "revisit"):
                    date = rec.rec_headers.get_header("WARC-Date")
                    out.append(Recorded(rec.rec_headers.get_header("WARC-Target-URI"),
                                        "".join(c for c in date if c.isdigit())[:14], rec.rec_type,
                                        rec.http_headers.get_header("Content-Type") or ""))
    return out


def only(records: list[Recorded], url: str, record: str = "response") -> Recorded:
    found = [r for r in records if r.url == url and r.record == record]
    assert len(found) == 1, (url, record, found)
    return found[0]


def collection(config: Config) -> dict[str, Collection]:
    return {COLL: Collection(config.storage.warc_dir, config.storage.index_dir)}


# ---- talking to pywb ------------------------------------------------------------------------

@dataclass
class Reply:
    url: str
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def get(pywb: Pywb, url: str, accept_encoding: str = "identity", max_redirects: int = 5) -> Reply:
    """GET through pywb with http.client, which neither decompresses nor hides anything;
    redirects are followed only while they stay on pywb."""
    for _ in range(max_redirects + 1):
        assert url.startswith(pywb.base + "/"), f"left pywb: {url}"
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            conn.request("GET", url[len(pywb.base):], headers={"Accept-Encoding": accept_encoding})
            resp = conn.getresponse()
            reply = Reply(url, resp.status, resp.msg, resp.read())
        finally:
            conn.close()
        if reply.status not in (301, 302, 303, 307, 308):
            return reply
        url = urljoin(url, reply.headers["Location"])
    raise AssertionError(f"more than {max_redirects} redirects ending at {url}")


REPLAY_PATH = re.compile(r"^/(?P<coll>[^/]+)/(?P<ts>\d{1,17})(?P<mod>[a-z]{2}_)?/(?P<url>.+)$")
CSS_REF = re.compile(r"""url\(\s*['"]?([^'")\s]+)['"]?\s*\)|@import\s+['"]([^'"]+)['"]""", re.I)


def original_of(pywb: Pywb, replay_url: str) -> str:
    m = REPLAY_PATH.match(urlsplit(replay_url).path)
    assert m and m["coll"] == COLL, replay_url
    return m["url"]


def archived(pywb: Pywb, url: str) -> bool:
    """A URL pywb rewrote to point into the collection (not pywb's own /static/ files)."""
    return url.startswith(f"{pywb.base}/{COLL}/")


def html_requisites(html: bytes, base: str) -> set[str]:
    """link href, script src, img/source src and srcset, and css url() of a rewritten page."""
    doc = lxml.html.document_fromstring(html)
    refs = [el.get("href") for el in doc.iter("link")]
    for el in doc.iter("script", "img", "source"):
        refs.append(el.get("src"))
        refs += [part.split()[0] for part in (el.get("srcset") or "").split(",") if part.strip()]
    for el in doc.xpath("//*[@style]"):
        refs += css_refs(el.get("style"))
    for el in doc.iter("style"):
        refs += css_refs(el.text or "")
    return {urljoin(base, r.strip()) for r in refs if r and r.strip()}


def css_refs(css: str) -> list[str]:
    return [m.group(1) or m.group(2) for m in CSS_REF.finditer(css)]


def replay_requisites(pywb: Pywb, page_url: str) -> dict[str, Reply]:
    """Load a page in mp_ mode, then every archived requisite its rewritten HTML and CSS
    (followed through @import) point at; returns original URL -> final reply."""
    reply = get(pywb, page_url)
    assert reply.status == 200, (page_url, reply.status, reply.body[:500])
    assert "html" in reply.headers.get("Content-Type", "")
    queue = sorted(u for u in html_requisites(reply.body, reply.url) if archived(pywb, u))
    found: dict[str, Reply] = {}
    while queue:
        url = queue.pop()
        original = original_of(pywb, url)
        if original in found:
            continue
        found[original] = reply = get(pywb, url)
        if reply.status == 200 and "css" in reply.headers.get("Content-Type", ""):
            more = (urljoin(reply.url, r) for r in css_refs(reply.body.decode("utf-8", "replace")))
            queue += [u for u in more if archived(pywb, u)]
    return found


# ---- the tests ------------------------------------------------------------------------------

def capture_news_site(site: Site, config: Config) -> dict[str, bytes]:
    sent = serve_news_site(site)
    summary = run_snapshot(config, site.url(ARTICLE))
    got = {r.url: (r.status, r.record) for r in summary.results}
    assert got == {site.url(p): (200, "response") for p in ALL_PATHS}
    assert site.hits[NOT_CAPTURED] == 0
    return sent


def test_id_replay_returns_the_bodies_the_server_sent(site, config, tmp_path):
    sent = capture_news_site(site, config)
    records = recorded(config)
    with running_pywb(collection(config), tmp_path / "pywb") as pywb:
        for path, body in sent.items():
            rec = only(records, site.url(path))
            reply = get(pywb, pywb.url(COLL, rec.timestamp, "id_", rec.url))
            assert reply.status == 200, (path, reply.body[:300])
            assert reply.body == body, path
            assert reply.headers["Memento-Datetime"]

        # Content-Encoding: gzip stored as sent. A client that accepts gzip gets the stored
        # bytes; one that does not gets them decoded, the header renamed.
        rec = only(records, site.url(GZIPPED))
        replay = pywb.url(COLL, rec.timestamp, "id_", rec.url)
        raw = get(pywb, replay, accept_encoding="gzip")
        assert raw.status == 200
        assert raw.headers["Content-Encoding"] == "gzip"
        assert raw.body == site.sent[GZIPPED] != CSS
        plain = get(pywb, replay)
        assert plain.headers["Content-Encoding"] is None
        assert plain.headers["X-Archive-Orig-Content-Encoding"] == "gzip"
        assert plain.body == CSS

        # Chunked on the wire, stored de-chunked with the header renamed.
        rec = only(records, site.url(READ_2))
        chunked = get(pywb, pywb.url(COLL, rec.timestamp, "id_", rec.url))
        assert chunked.headers["X-Archive-Orig-Transfer-Encoding"] == "chunked"
        assert chunked.body == READ_2_HTML

        # No live-web fallback: a page the live site serves but archiver never fetched.
        missing = get(pywb, pywb.url(COLL, rec.timestamp, "id_", site.url(NOT_CAPTURED)))
        assert missing.status == 404
        missing = get(pywb, pywb.url(COLL, rec.timestamp, "mp_", site.url(NOT_CAPTURED)))
        assert missing.status == 404
        assert site.hits[NOT_CAPTURED] == 0


def test_rewritten_pages_load_every_requisite_from_the_archive(site, config, tmp_path):
    capture_news_site(site, config)
    records = recorded(config)
    site.stop()
    with running_pywb(collection(config), tmp_path / "pywb") as pywb:
        for path, expected in PAGE_REQUISITES.items():
            rec = only(records, site.url(path))
            assert "html" in rec.content_type
            found = replay_requisites(pywb, pywb.url(COLL, rec.timestamp, "mp_", rec.url))
            assert set(found) == {site.url(p) for p in expected}, path
            bad = {u: r.status for u, r in found.items() if r.status != 200}
            assert not bad, (path, bad)
            for url, reply in found.items():
                ctype, body = STATIC.get(urlsplit(url).path, ("text/css", b""))
                if ctype.startswith(("image/", "font/")):  # CSS and JS come back rewritten
                    assert reply.body == body, url

        # The gzipped stylesheet, rewritten: decoded, its references pointing into pywb.
        rec = only(records, site.url(GZIPPED))
        css = get(pywb, pywb.url(COLL, rec.timestamp, "mp_", rec.url))
        assert css.status == 200 and css.headers["Content-Encoding"] is None
        refs = css_refs(css.body.decode())
        assert refs and all(r.startswith(f"/{COLL}/") for r in refs), refs


def test_revisits_replay_the_original_payload(site, config, tmp_path):
    sent = capture_news_site(site, config)
    # The second capture an hour "later": the same second would give the revisit and its
    # original the same 14-digit timestamp, and replay could not tell them apart.
    archive = Writer(config, clock=lambda: utcnow() + timedelta(hours=1))
    try:
        again = snapshot(archive, [site.url(ARTICLE)])
    finally:
        archive.close()
    assert {r.url: (r.status, r.record) for r in again.results} == \
        {site.url(p): (200, "revisit") for p in ALL_PATHS}
    records = recorded(config)
    site.stop()
    with running_pywb(collection(config), tmp_path / "pywb") as pywb:
        for path, body in sent.items():
            first = only(records, site.url(path), "response")
            revisit = only(records, site.url(path), "revisit")
            assert revisit.timestamp > first.timestamp
            reply = get(pywb, pywb.url(COLL, revisit.timestamp, "id_", revisit.url))
            assert reply.status == 200, (path, reply.body[:300])
            assert reply.body == body, path
            # pywb served the revisit (its date), with the original's payload.
            served = datetime.strptime(reply.headers["Memento-Datetime"], "%a, %d %b %Y %H:%M:%S GMT")
            assert served.strftime("%Y%m%d%H%M%S") == revisit.timestamp, path

        rec = only(records, site.url(GZIPPED), "revisit")
        raw = get(pywb, pywb.url(COLL, rec.timestamp, "id_", rec.url), accept_encoding="gzip")
        assert raw.body == site.sent[GZIPPED]

        # The revisited article, rewritten, still finds every requisite.
        rec = only(records, site.url(ARTICLE), "revisit")
        found = replay_requisites(pywb, pywb.url(COLL, rec.timestamp, "mp_", rec.url))
        assert set(found) == {site.url(p) for p in PAGE_REQUISITES[ARTICLE]}
        assert all(r.status == 200 for r in found.values()), {u: r.status for u, r in found.items()}


def test_demo_archive_replays(tmp_path):
    root = tmp_path / "demo"
    first, second = demo.run_demo(root)  # the demo site is shut down when this returns
    config = load_config(root / "config.toml")
    article_url = next(r.url for r in first.results if r.role == "seed")
    records = recorded(config)
    versions = [r for r in records if r.url == article_url]
    # The first capture and the edit are new payloads; each one's confirming fetch (role
    # confirm) got the same one again.
    assert [r.record for r in versions] == ["response", "revisit", "response", "revisit"]
    versions = versions[::2]
    assert versions[0].timestamp != versions[1].timestamp  # the demo starts its recapture in a new second
    with running_pywb(collection(config), tmp_path / "pywb") as pywb:
        for version, rec in zip((1, 2), versions):
            reply = get(pywb, pywb.url(COLL, rec.timestamp, "id_", article_url))
            assert reply.status == 200
            assert reply.body == demo.article(version)

        for rec in versions:
            found = replay_requisites(pywb, pywb.url(COLL, rec.timestamp, "mp_", article_url))
            expected = {urljoin(article_url, p) for p in demo.STATIC}
            assert set(found) == expected
            assert all(r.status == 200 for r in found.values()), {u: r.status for u, r in found.items()}
            for url, reply in found.items():
                ctype, body = demo.STATIC[urlsplit(url).path]
                if ctype.startswith(("image/", "font/")):  # CSS and JS come back rewritten
                    assert reply.body == body, url

        # Every cross-referenced demo page and requisite replays raw, byte for byte.
        for rec in records:
            if rec.record != "response" or rec.url == article_url:
                continue
            path = urlsplit(rec.url).path
            body = demo.STATIC[path][1] if path in demo.STATIC else demo._plain_page(demo.PAGES[path])
            reply = get(pywb, pywb.url(COLL, rec.timestamp, "id_", rec.url))
            assert (reply.status, reply.body) == (200, body), rec.url
