"""archiver's WARCs replay through the field's own tools, indexed by the tools themselves.

A page, its stylesheet and image, a 404, a 301 and a fetch that was refused are captured
twice (the second time as revisits, an hour later). The WARC files are then indexed three
ways nobody in archiver controls: pywb's own indexer (``wb-manager add``, as the README
tells users), ``cdxj-indexer``, and ``wacz create`` (its index read directly, and the
package unpacked into pywb by ``wb-manager add --unpack-wacz``). One pywb serves all
three collections. Every capture must replay with its own status and body, at both
times; the refused fetch must not replay at all. An archive in the layout written before
(tests/data/old-layout, see tests/old_layout.py) still reindexes to the catalog that
code built and replays through ``archiver replay``'s index.
"""

from __future__ import annotations

import gzip
import http.client
import json
import shutil
import socket
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from warcio.archiveiterator import ArchiveIterator

from archiver.archive.writer import Writer
from archiver.catalog import Catalog
from archiver.config import Config
from archiver.pipeline import reindex, snapshot
from archiver.replay.pywb import Collection, Pywb, running_pywb

from . import old_layout
from .conftest import make_archive, warc_files, warcio_check
from .site import Site, send

pytestmark = pytest.mark.slow

HOST = "news.test"  # resolved to 127.0.0.1 for the capture: its DNS record is written
PAGE, CSS, IMG, MOVED, TARGET, MISSING = "/story/", "/site.css", "/photo.png", "/moved/", "/target/", "/missing/"
STORY = (b"<html><head><title>Story</title><link rel='stylesheet' href='/site.css'></head><body>"
         b"<div class='entry-content'><p>The ministry opened an office abroad, officials said on Tuesday, in a "
         b"statement that <a href='/moved/'>moved</a> and a page <a href='/missing/'>deleted since</a>.</p>"
         b"<p><img src='/photo.png' alt='office'> The office will employ twelve people, the statement said.</p>"
         b"</div></body></html>")
EXPECTED = {  # path -> (status, body, Content-Type) as the server sent them
    PAGE: (200, STORY, "text/html; charset=utf-8"),
    CSS: (200, b"body { color: #222; background: url(/photo.png) }\n", "text/css"),
    IMG: (200, b"\x89PNG\r\n\x1a\n-record-layout-photo-", "image/png"),
    MOVED: (301, b"<html><body>moved to /target/</body></html>", "text/html"),
    TARGET: (200, b"<html><body><p>where the moved page went</p></body></html>", "text/html; charset=utf-8"),
    MISSING: (404, b"<html><body>this article was deleted</body></html>", "text/html"),
}
FIRST = datetime(2026, 3, 2, 9, 0, 0, tzinfo=timezone.utc)
TIMES = [FIRST, FIRST + timedelta(hours=1)]  # the second capture: revisits of the first


@dataclass
class Captured:
    config: Config
    base: str    # http://news.test:PORT
    failed: str  # a URL whose fetch was refused

    def stamps(self) -> list[str]:
        return [t.strftime("%Y%m%d%H%M%S") for t in TIMES]


def serve(site: Site) -> None:
    for path, (status, body, ctype) in EXPECTED.items():
        if path == MOVED:
            site.routes[path] = lambda h, b=body: send(h, 301, b, "text/html", (("Location", TARGET),))
        else:
            site.page(path, body, ctype, status=status)


@pytest.fixture(scope="module")
def captured(tmp_path_factory) -> Captured:
    real = socket.getaddrinfo
    patch = pytest.MonkeyPatch()
    patch.setattr(socket, "getaddrinfo", lambda host, *a, **k: real("127.0.0.1" if host == HOST else host, *a, **k))
    site, dead = Site(), socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound and never listening: a connection is refused
    try:
        serve(site)
        config = make_archive(tmp_path_factory.mktemp("layout") / "archive")
        base = f"http://{HOST}:{site.server.server_address[1]}"
        failed = f"http://{HOST}:{dead.getsockname()[1]}/gone/"
        for when in TIMES:
            archive = Writer(config, clock=lambda w=when: w)
            try:
                summary = snapshot(archive, [base + PAGE, failed])
            finally:
                archive.close()
            got = {r.url: (r.status, r.record) for r in summary.results}
            record = "response" if when == FIRST else "revisit"
            assert got == {**{base + p: (s, record) for p, (s, _, _) in EXPECTED.items()}, failed: (None, "failed")}
    finally:
        site.stop()
        dead.close()
        patch.undo()
    return Captured(config, base, failed)


def tool(name: str, *args: str, cwd: Path) -> None:
    proc = subprocess.run([str(Path(sys.executable).with_name(name)), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---- the records themselves ----------------------------------------------------------------

def all_records(config: Config) -> list:
    out = []
    for path in warc_files(config):
        with open(path, "rb") as f:
            out += [(r.rec_type, r.rec_headers, r.content_stream().read()) for r in ArchiveIterator(f)]
    return out


def test_only_the_exchange_carries_the_page_url(captured):
    records = all_records(captured.config)
    for path in warc_files(captured.config):
        assert warcio_check(path).returncode == 0, path
    by_id = {h.get_header("WARC-Record-ID"): (t, h) for t, h, _ in records}
    for rec_type, h, body in records:
        target = h.get_header("WARC-Target-URI") or ""
        if rec_type == "metadata":
            assert target.startswith("urn:archiver:capture:"), target
            url = target.removeprefix("urn:archiver:capture:")
            content = json.loads(body)
            assert {"seed", "role", "via", "hops", "links"} <= content.keys()
            if url == captured.failed:
                assert "refused" in content["error"] and h.get_header("WARC-Refers-To") is None
            else:
                described = by_id[h.get_header("WARC-Refers-To")]
                assert described[0] in ("response", "revisit") and described[1].get_header("WARC-Target-URI") == url
        elif rec_type == "resource":
            assert (target, h.get_header("Content-Type")) == (f"dns:{HOST}", "text/dns")
            stamp, *answers = body.decode().splitlines()
            assert stamp in captured.stamps() and answers == [f"{HOST}.\tIN\tA\t127.0.0.1"]
        elif rec_type == "revisit":
            assert h.get_header("WARC-Truncated") == "length"
        else:
            assert rec_type in ("warcinfo", "request", "response"), rec_type
    assert sum(t == "resource" for t, _, _ in records) == 2  # one lookup per host and snapshot


# ---- replay through the field's indexers -----------------------------------------------------

def get(pywb: Pywb, path: str, accept_encoding: str = "identity") -> tuple[int, http.client.HTTPMessage, bytes]:
    """One GET through pywb; redirects are not followed."""
    host, port = urlsplit(pywb.base).hostname, urlsplit(pywb.base).port
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("GET", path, headers={"Accept-Encoding": accept_encoding})
        resp = conn.getresponse()
        return resp.status, resp.msg, resp.read()
    finally:
        conn.close()


def indexed_by_the_tools(captured: Captured, work: Path) -> dict[str, Collection]:
    """Three collections of the same WARC files, each indexed by a tool of the field."""
    warcs = [str(p) for p in warc_files(captured.config)]
    work.mkdir()
    tool("wb-manager", "init", "pywb", cwd=work)
    tool("wb-manager", "add", "pywb", *warcs, cwd=work)
    cdxj = work / "cdxj"
    cdxj.mkdir()
    tool("cdxj-indexer", "--sort", "-o", str(cdxj / "index.cdxj"), *warcs, cwd=captured.config.storage.warc_dir)
    tool("wacz", "create", "-o", str(work / "archive.wacz"), *warcs, cwd=work)
    tool("wb-manager", "init", "wacz", cwd=work)
    tool("wb-manager", "add", "--unpack-wacz", "wacz", str(work / "archive.wacz"), cwd=work)
    colls = work / "collections"
    return {"pywb": Collection(colls / "pywb" / "archive", colls / "pywb" / "indexes"),
            "cdxj": Collection(captured.config.storage.warc_dir, cdxj),
            "wacz": Collection(colls / "wacz" / "archive", colls / "wacz" / "indexes")}


def check_index(lines: list[str], warc_dir: Path, captured: Captured) -> None:
    """Every line for one of the captured URLs points at that URL's own response or
    revisit; the refused fetch has no line."""
    seen = set()
    for line in lines:
        fields = json.loads(line.split(" ", 2)[2])
        url = fields["url"]
        assert url != captured.failed, line
        if not url.startswith(captured.base):
            continue
        with open(warc_dir / fields["filename"], "rb") as f:
            f.seek(int(fields["offset"]))
            record = next(iter(ArchiveIterator(f)))
            assert record.rec_type in ("response", "revisit"), line
            assert record.rec_headers.get_header("WARC-Target-URI") == url, line
        seen.add((url, line.split(" ", 2)[1]))
    assert seen == {(captured.base + p, s) for p in EXPECTED for s in captured.stamps()}


def wacz_index(wacz: Path) -> list[str]:
    with zipfile.ZipFile(wacz) as z:
        name = next(n for n in z.namelist() if n.startswith("indexes/") and n.endswith((".cdx", ".cdx.gz", ".cdxj")))
        data = z.read(name)
    return (gzip.decompress(data) if name.endswith(".gz") else data).decode().splitlines()


def test_the_fields_indexers_point_every_url_at_its_own_capture(captured, tmp_path):
    collections = indexed_by_the_tools(captured, tmp_path / "tools")
    for name, coll in collections.items():
        lines = [line for p in coll.index_dir.glob("*.cdx*") for line in p.read_text().splitlines()]
        check_index(lines, coll.warc_dir, captured)
    wacz = tmp_path / "tools" / "archive.wacz"
    unpacked = tmp_path / "wacz"
    with zipfile.ZipFile(wacz) as z:
        z.extractall(unpacked)
    check_index(wacz_index(wacz), unpacked / "archive", captured)

    with running_pywb(collections, tmp_path / "pywb") as pywb:
        for name in collections:
            replays_every_capture(pywb, name, captured)


def replays_every_capture(pywb: Pywb, coll: str, captured: Captured) -> None:
    for stamp in captured.stamps():
        for path, (status, body, ctype) in EXPECTED.items():
            url = captured.base + path
            got = get(pywb, f"/{coll}/{stamp}id_/{url}")
            if status == 301 and stamp != captured.stamps()[0]:
                body = b""  # pywb replays a revisited redirect without its payload, by design (resolvingloader.py)
            assert (got[0], got[2]) == (status, body), (coll, stamp, path, got[0], got[2][:200])
            assert got[1]["Content-Type"] == ctype, (coll, path)
            memento = datetime.strptime(got[1]["Memento-Datetime"], "%a, %d %b %Y %H:%M:%S GMT")
            assert memento.strftime("%Y%m%d%H%M%S") == stamp, (coll, path)  # this capture, not the other

        status, headers, html = get(pywb, f"/{coll}/{stamp}mp_/{captured.base}{PAGE}")
        assert status == 200 and "text/html" in headers["Content-Type"] and b"opened an office abroad" in html
        status, headers, css = get(pywb, f"/{coll}/{stamp}mp_/{captured.base}{CSS}")
        assert status == 200 and "text/css" in headers["Content-Type"] and b"color: #222" in css
        assert f"/{coll}/".encode() in css  # its url() rewritten into the collection
        status, headers, png = get(pywb, f"/{coll}/{stamp}mp_/{captured.base}{IMG}")
        assert (status, headers["Content-Type"], png) == (200, "image/png", EXPECTED[IMG][1])
        status, headers, _ = get(pywb, f"/{coll}/{stamp}mp_/{captured.base}{MOVED}")
        assert status == 301 and headers["Location"].endswith(f"{captured.base}{TARGET}"), (coll, headers)
        status, _, body = get(pywb, f"/{coll}/{stamp}mp_/{captured.base}{MISSING}")
        assert status == 404 and b"this article was deleted" in body

        for mode in ("id_", "mp_"):  # the refused fetch is not in the archive
            status, _, body = get(pywb, f"/{coll}/{stamp}{mode}/{captured.failed}")
            assert status == 404 and b'"seed"' not in body, (coll, mode, body[:200])

    for path in EXPECTED:  # pywb's CDX API: the page's captures and nothing else under its URL
        status, _, body = get(pywb, f"/{coll}/cdx?output=json&url={quote(captured.base + path, safe='')}")
        assert status == 200
        found = [json.loads(line) for line in body.decode().splitlines()]
        assert sorted(c["timestamp"] for c in found) == captured.stamps(), (coll, path, found)
        assert all(c["mime"] != "application/json" for c in found), (coll, path, found)
    status, _, body = get(pywb, f"/{coll}/cdx?output=json&url={quote(captured.failed, safe='')}")
    assert body.strip() == b"", (coll, body)


# ---- archives written in the old layout -------------------------------------------------------

def test_an_old_layout_archive_reindexes_to_its_catalog_and_replays(tmp_path):
    config = make_archive(tmp_path / "old")
    config.storage.warc_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(old_layout.DATA.glob("*.warc.gz")):
        shutil.copy(path, config.storage.warc_dir / path.name)
    expected = json.loads((old_layout.DATA / "catalog.json").read_text())
    result = reindex(config)
    assert (result.files, result.captures, result.damaged) == (2, len(expected["captures"]), [])
    catalog = Catalog(config.storage.catalog)
    captures, xrefs = catalog.captures.dump()
    catalog.close()
    assert [list(row) for row in captures] == expected["captures"]
    assert [list(row) for row in xrefs] == expected["xrefs"]

    rows = {(r[0], r[7][:19]): r for r in expected["captures"]}
    pages = {"/article/": (200, old_layout.ARTICLE), "/s.css": (200, old_layout.CSS),
             "/img.png": (200, old_layout.PNG), "/moved/": (301, b""), "/new/": (200, old_layout.NEW),
             "/missing/": (404, old_layout.MISSING)}
    base = next(r[0] for r in expected["captures"] if r[0].endswith("/article/")).removesuffix("/article/")
    secure = next(r[0] for r in expected["captures"] if r[0].startswith("https://"))
    gone = next(r[0] for r in expected["captures"] if r[9] == "failed")
    with running_pywb({"archive": Collection(config.storage.warc_dir, config.storage.index_dir)},
                      tmp_path / "pywb") as pywb:
        for stamp, when in (("20260301120000", "2026-03-01T12:00:00"), ("20260301130000", "2026-03-01T13:00:00")):
            for path, (status, body) in pages.items():
                assert (base + path, when) in rows
                got = get(pywb, f"/archive/{stamp}id_/{base}{path}")
                assert (got[0], got[2]) == (status, body), (stamp, path, got[0], got[2][:200])
        got = get(pywb, f"/archive/20260301120000id_/{secure}")
        assert (got[0], got[2]) == (200, old_layout.SECURE)
        assert get(pywb, f"/archive/20260301120000id_/{gone}")[0] == 404
