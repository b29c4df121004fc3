"""The archive kept under tests/data/old-layout/: WARCs in the record layout archiver wrote
before capture metadata, DNS and TLS records got their own target URIs (commit c5a6521),
and the catalog that code built from them. test_record_layout.py checks that today's code
reindexes these files to the same catalog and replays them.

The site's content is here so the test knows what each URL must replay as. To make the
files again, with the old code: ``git archive c5a6521 | tar -x -C /tmp/old`` and then
``PYTHONPATH=/tmp/old python -m tests.old_layout OUT`` from this repository.
"""

from __future__ import annotations

import json
import socket
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "old-layout"
HOST = "golden.test"  # resolved to 127.0.0.1 while the files were made: its DNS record names it

CSS = b"body { background: url(/img.png) }\n"
PNG = b"\x89PNG\r\n\x1a\n-old-layout-image-"
ARTICLE = b"""<html><head><title>Old layout</title><link rel="stylesheet" href="/s.css"></head><body>
<div class="entry-content"><p>The first paragraph of an article written the old way, long enough to be the
body text. It cites <a href="/moved/">a moved page</a> and <a href="/missing/">a deleted one</a>.</p>
<p><img src="/img.png" alt="x"> A second paragraph, also long enough to count as article text here.</p>
</div></body></html>"""
NEW = b"<html><body><p>the page /moved/ points to</p></body></html>"
MISSING = b"this article was deleted"
SECURE = b"<html><body><p>served over TLS</p></body></html>"
FIRST = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


def make(out: Path) -> None:  # pragma: no cover - run by hand with the old code
    from archiver.archive.writer import Writer
    from archiver.config import load_config
    from archiver.pipeline import snapshot
    from archiver.catalog import Catalog
    from archiver.archive.workdir import init_archive

    from .site import Site, redirect
    from .tls import TlsSite, make_ca_and_leaf

    real = socket.getaddrinfo
    socket.getaddrinfo = lambda host, *a, **k: real("127.0.0.1" if host == HOST else host, *a, **k)
    site = Site()
    site.page("/article/", ARTICLE)
    site.page("/s.css", CSS, "text/css")
    site.page("/img.png", PNG, "image/png")
    site.routes["/moved/"] = redirect("/new/", 301)
    site.page("/new/", NEW)
    site.page("/missing/", MISSING, "text/plain", status=404)
    ca, chain, key, _ = make_ca_and_leaf(out.parent)
    secure = TlsSite(chain, key)
    secure.page("/secure/", SECURE)
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    port = site.server.server_address[1]
    init_archive(out, overrides={"per_host_delay": "0.0", "timeout": "5.0", "retries": "0", "processes": "1",
                                 "ca_bundle": f'"{ca}"'})
    config = load_config(out / "config.toml")
    seeds = [f"http://{HOST}:{port}/article/", secure.url("/secure/"),
             f"http://{HOST}:{dead.getsockname()[1]}/gone/"]
    for hours, urls in ((0, seeds), (1, seeds[:1])):
        archive = Writer(config, clock=lambda h=hours: FIRST + timedelta(hours=h))
        try:
            snapshot(archive, urls)
        finally:
            archive.close()
    catalog = Catalog(config.storage.catalog)
    captures, xrefs = catalog.captures.dump()
    catalog.close()
    (out / "catalog.json").write_text(json.dumps({"captures": captures, "xrefs": xrefs}, indent=1) + "\n")
    site.stop()
    secure.stop()


if __name__ == "__main__":  # pragma: no cover
    make(Path(sys.argv[1]))
