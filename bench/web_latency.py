#!/usr/bin/env python3
"""Response time of archiver serve's pages on a large archive.

Two archives, each served by archiver.web.running (the interface, its replay proxy and
pywb, as `archiver serve` runs them), asked over HTTP from this process, one request at
a time on a new connection:

  large   100,000 tracked URLs (seeds/bench.txt, 1,000 sites, 20 tags) with a capture, an
          observation, a version each (every 10th a second version and its change) and a
          schedule row; plus one article with 1,000 versions: 998 observations made from
          a real capture's article with its figures changed, then 2 real captures of a
          local site (its WARC records are what the change page's evidence reads)
  small   10 tracked URLs, and the same article captured twice

For each page: one cold request first (the list's first request copies the seed files
into the interface's temporary table), then --repeat timed requests: median and p95.

Usage: python bench/web_latency.py [--urls 100000] [--versions 1000] [--repeat 30]
Results: a table on stdout, JSON in bench/results/web_latency-<UTC stamp>.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import OneBody, environment, table, write_results  # noqa: E402

from archiver.catalog import CaptureRow  # noqa: E402
from archiver.config import load_config  # noqa: E402
from archiver.pipeline import open_archive, open_catalog, snapshot  # noqa: E402
from archiver.edits.observe import article_from_json, record_observation, update_history  # noqa: E402
from archiver.web import running  # noqa: E402
from archiver.archive.workdir import init_archive  # noqa: E402

PARAGRAPHS = ["The council approved the budget on Tuesday after a debate of {n} hours, officials said.",
              "The plan sets aside money for {n} new teachers and the repair of two schools.",
              "Opposition members said the figures were not credible and asked for an audit."]


def article_page(figure: int) -> bytes:
    """The article, its figures set to ``figure``."""
    return ("<!DOCTYPE html><html><head><title>Council Approves Budget</title></head><body><article>"
            "<h1>Council Approves Budget</h1>"
            + "".join(f"<p>{p.format(n=figure)}</p>" for p in PARAGRAPHS)
            + "</article></body></html>").encode()


def make_archive(root: Path, urls: int, versions: int, server: OneBody):
    init_archive(root, overrides={"per_host_delay": "0.0", "confirm": "false", "replay_port": "0"})
    (root / "seeds" / "example.txt").unlink()
    config = load_config(root / "config.toml")
    article = f"{server.base}/2026/12/council-approves-budget/"
    tracked = [f"https://site{n % 1000}.example/2026/{n // 1000:03d}/story-{n}/" for n in range(urls - 1)]
    lines = [f"{u} tag=t{n % 20}" for n, u in enumerate(tracked)] + [f"{article} tag=council"]
    (config.seeds_dir / "bench.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    fill(config, tracked)
    capture_article(config, article, versions, server)
    return config, article, tracked


def fill(config, tracked: list[str]) -> None:
    """A capture, observation, version (every 10th: two, and the change) and schedule row per URL."""
    catalog = open_catalog(config)
    try:
        for start in range(0, len(tracked), 10_000):
            batch = tracked[start:start + 10_000]
            rows = [(CaptureRow(u, u, "seed", "", 0, f"s{start}", 1, "2026-11-01T00:00:00Z", 200, "response",
                                "filler.warc.gz", start + i, 1000, start + i), []) for i, u in enumerate(batch)]
            ids = catalog.captures.add_many(rows)
            with catalog.transaction():
                catalog.db.executemany("INSERT INTO observations (capture_id, tracked_url, final_url, challenge, "
                                       "extractor, article) VALUES (?, ?, ?, '', 'bench', NULL)",
                                       [(i, u, u) for i, u in zip(ids, batch)])
                catalog.db.executemany(f"INSERT INTO versions VALUES ({', '.join('?' * 11)})", [
                    (u, 1, "2026-11-01T00:00:00Z", "2026-11-01T00:00:00Z", 1, f"Story {start + i} of the day",
                     "0" * 64, "[]", None, 0, "bench") for i, u in enumerate(batch)])
                edited = [u for i, u in enumerate(batch) if (start + i) % 10 == 0]
                catalog.db.executemany(f"INSERT INTO versions VALUES ({', '.join('?' * 11)})", [
                    (u, 2, "2026-11-15T00:00:00Z", "2026-11-15T00:00:00Z", 1, "Story of the day, updated",
                     "1" * 64, '["title"]', None, 0, "bench") for u in edited])
                catalog.db.executemany(f"INSERT INTO changes VALUES ({', '.join('?' * 13)})", [
                    (u, 1, 2, "title", "Story of the day", "Story of the day, updated", "filler.warc.gz", 0,
                     "2026-11-01T00:00:00Z", "filler.warc.gz", 0, "2026-11-15T00:00:00Z", 0) for u in edited])
        catalog.schedule.sync({u: urlsplit(u).hostname for u in tracked}, time.time() + 3600)
    finally:
        catalog.close()


def capture_article(config, url: str, versions: int, server: OneBody) -> None:
    """versions - 2 synthetic earlier versions, then two real captures (the last change)."""
    archive = open_archive(config)
    try:
        snapshot(archive, [url])
    finally:
        archive.close()
    catalog = open_catalog(config)
    try:
        [real] = [r for r in catalog.history.observations(url)]
        article = article_from_json(real["article"])
        for n in range(versions - 2):
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_735_689_600 + n * 6 * 3600)) + ".000000Z"
            row = CaptureRow(url, url, "seed", "", 0, f"old-{n}", 1, stamp, 200, "response", "old.warc.gz", n,
                             1000, n)
            [capture_id] = catalog.captures.add_many([(row, [])])
            paragraphs = tuple(p.format(n=1000 + n) for p in PARAGRAPHS)
            record_observation(catalog, capture_id, url, url, "", replace(article, paragraphs=paragraphs))
        update_history(catalog, url)
    finally:
        catalog.close()
    server.body = article_page(2)
    archive = open_archive(config)
    try:
        snapshot(archive, [url])
    finally:
        archive.close()


def timed(base: str, path: str, repeat: int) -> dict:
    cold = request(base, path)
    times = [request(base, path) for _ in range(repeat)]
    return {"cold_ms": round(cold * 1000, 1), "median_ms": round(statistics.median(times) * 1000, 1),
            "p95_ms": round(statistics.quantiles(times, n=20)[18] * 1000, 1), "requests": repeat}


def request(base: str, path: str) -> float:
    parts = urlsplit(base)
    start = time.perf_counter()
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise SystemExit(f"GET {path}: {response.status}\n{body[:500]!r}")
    return time.perf_counter() - start


def pages(article: str, tracked: list[str]) -> list[tuple[str, str]]:
    q = lambda **kw: "?" + urlencode(kw)  # noqa: E731
    return [("list, first page", "/"), ("list, page 1000", "/" + q(page=1000) if len(tracked) > 50_000 else "/"),
            ("list, one tag", "/" + q(tag="t7")), ("list, title search", "/" + q(q="updated")),
            ("list, changed since", "/" + q(since="2026-11-10")),
            ("change page (last change)", "/diff" + q(url=article)), ("history page", "/history" + q(url=article))]


def measure(name: str, root: Path, urls: int, versions: int, server: OneBody, repeat: int) -> list[dict]:
    start = time.perf_counter()
    config, article, tracked = make_archive(root, urls, versions, server)
    print(f"{name}: archive made in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    rows = []
    with running(config, "127.0.0.1", 0) as addresses:
        for label, path in pages(article, tracked):
            result = {"archive": name, "tracked": urls, "versions": versions, "page": label, "path": path,
                      **timed(addresses.interface, path, repeat)}
            print(json.dumps(result), file=sys.stderr)
            rows.append(result)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", type=int, default=100_000)
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    server = OneBody()
    rows = []
    with tempfile.TemporaryDirectory(prefix="web-latency-") as tmp:
        for name, urls, versions in (("small", 10, 2), ("large", args.urls, args.versions)):
            server.body = article_page(1)
            rows += measure(name, Path(tmp) / name, urls, versions, server, args.repeat)
    server.shutdown()
    print(table([[r["page"], f"{r['tracked']:,}", r["versions"], r["cold_ms"], r["median_ms"], r["p95_ms"]]
                 for r in rows], ["page", "tracked URLs", "versions", "first ms", "median ms", "p95 ms"]))
    path = write_results("web_latency", {"environment": environment(), "repeat": args.repeat, "rows": rows})
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
