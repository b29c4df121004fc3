#!/usr/bin/env python3
"""Following a site with 10,000 entries per feed, discovery, and notification delivery.

Everything runs in this process against servers on 127.0.0.1:

 1. parse: a 10,000-item RSS feed and a 10,000-URL sitemap through follow.parse_source
    (best of 3).
 2. archiver run reading the feed (a Runner with an injected clock, batch 1 so that
    the look takes the feed alone): the first reading (capture, read back from the
    WARC, parse, 10,000 seed lines appended, entries stored), the seeds re-read at the
    next look (10,001 seeds), the look for due URLs before and after, and the second
    reading of the unchanged feed (a revisit: parsed, nothing added) and of the feed
    with 10 new entries. The readings run on the crawler's thread, between two stores:
    their time is what other captures wait.
 3. discovery: follow.discover on a site announcing its feed (<link rel=alternate>) and
    its sitemap (robots.txt), and on one that only has /sitemap.xml (usual paths).
 4. delivery: 1,000 queued change events to a local webhook (signed), and 200 through
    Apprise's json:// target, one POST each: events per second.

Usage: python bench/follow_10k.py [--entries 10000]
Results: a table on stdout and JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _util import environment, table, write_results  # noqa: E402

from archiver.catalog import Catalog  # noqa: E402
from archiver.config import load_config  # noqa: E402
from archiver.follow import discover, parse_source  # noqa: E402
from archiver.follower import fetcher_get  # noqa: E402
from archiver.notify import NotifyStore, deliver_due, targets  # noqa: E402
from archiver.schedule.runner import Runner  # noqa: E402
from archiver.archive.workdir import init_archive  # noqa: E402

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


class Server:
    """GET: the bodies in ``pages``; POST: counted."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[str, bytes]] = {}
        self.posts = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                ctype, body = server.pages.get(self.path, ("text/plain", b""))
                self._send(200 if self.path in server.pages else 404, ctype, body)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.posts += 1
                self._send(200, "text/plain", b"")

            def _send(self, status: int, ctype: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"


def rss(base: str, n: int, start: int = 0) -> bytes:
    items = "".join(f"<item><title>Story {i}</title><link>{base}/news/{i}</link>"
                    f"<pubDate>Thu, 26 Nov 2026 08:00:00 GMT</pubDate></item>" for i in range(start, start + n))
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>N</title>{items}</channel></rss>'.encode()


def urlset(base: str, n: int) -> bytes:
    urls = "".join(f"<url><loc>{base}/s/{i}</loc><lastmod>2026-11-20</lastmod></url>" for i in range(n))
    return f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'.encode()


def timed(fn) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def best(fn, rounds: int = 3) -> float:
    return min(timed(fn) for _ in range(rounds))


def archive(root: Path, **settings: str):
    base = {"per_host_delay": "0.0", "requisites": "false", "depth": "0", "confirm": "false", "jitter": "0.0",
            "batch": "1", "retries": "0", "max_per_run": "100000", "max_links_per_page": "100000"}
    init_archive(root, overrides={**base, **settings})
    (root / "seeds" / "example.txt").write_text("")
    return load_config(root / "config.toml")


def parse_phase(server: Server, n: int, limits) -> dict:
    feed, sitemap = rss(server.base, n), urlset(server.base, n)
    return {"feed_bytes": len(feed), "sitemap_bytes": len(sitemap),
            "parse_feed_s": best(lambda: parse_source(feed, server.base + "/rss", "auto", "", limits)),
            "parse_sitemap_s": best(lambda: parse_source(sitemap, server.base + "/s.xml", "auto", "", limits))}


def reading(runner: Runner) -> tuple[float, float]:
    """One look (the feed alone is due, batch 1): (until its capture is stored, until its
    reading on the follow thread is done). The crawl thread waits for the first only."""
    began = time.perf_counter()
    runner.dispatch()
    runner.crawler.run()
    stored = time.perf_counter() - began
    runner.follower.wait()
    return stored, time.perf_counter() - began


def run_phase(server: Server, root: Path, n: int) -> dict:
    config = archive(root / "run")
    server.pages["/rss"] = ("application/rss+xml", rss(server.base, n))
    (config.seeds_dir / "feeds.txt").write_text(f"{server.base}/rss follow=feed every=1m\n")
    clock = type("Clock", (), {"now": T0, "__call__": lambda self: self.now})()
    runner = Runner(config, clock=clock)
    out: dict = {}
    try:
        runner.sync_seeds()
        out["look_before_s"] = best(lambda: runner.dispatch_catalog.schedule.due(clock.now.timestamp(), 200, set()), 5)
        out["first_stored_s"], out["first_reading_s"] = reading(runner)
        out["seed_lines"] = len((config.seeds_dir / "followed.txt").read_text().splitlines())
        clock.now += timedelta(minutes=2)
        out["seeds_reload_s"] = timed(runner.sync_seeds)
        out["look_after_s"] = best(lambda: runner.dispatch_catalog.schedule.due(clock.now.timestamp(), 200, set()), 5)
        runner.dispatch_catalog.db.execute("UPDATE schedule SET next_due = next_due + 86400 WHERE url != ?",
                                           (server.base + "/rss",))
        out["unchanged_stored_s"], out["unchanged_reading_s"] = reading(runner)
        server.pages["/rss"] = ("application/rss+xml", rss(server.base, n + 10))
        clock.now += timedelta(minutes=2)
        out["ten_new_stored_s"], out["ten_new_reading_s"] = reading(runner)
        out["seed_lines_after"] = len((config.seeds_dir / "followed.txt").read_text().splitlines())
    finally:
        runner.close()
    return out


def discovery_phase(server: Server, root: Path) -> dict:
    config = archive(root / "disc")
    server.pages["/"] = ("text/html", b'<html><head><link rel="alternate" type="application/rss+xml" '
                                      b'href="/rss"></head><body></body></html>')
    server.pages["/robots.txt"] = ("text/plain", f"Sitemap: {server.base}/s.xml\n".encode())
    server.pages["/s.xml"] = ("application/xml", urlset(server.base, 10))
    get, close = fetcher_get(config)
    try:
        announced = discovered(server.base + "/", get, config)
        del server.pages["/robots.txt"], server.pages["/"]
        server.pages["/sitemap.xml"] = server.pages.pop("/s.xml")
        usual = discovered(server.base + "/", get, config)
    finally:
        close()
    return {"announced": announced, "usual_paths": usual}


def discovered(url: str, get, config) -> dict:
    """One discovery: its time, its requests, what it found."""
    asked: list[str] = []

    def counted(u: str):
        asked.append(u)
        return get(u)
    began = time.perf_counter()
    found = discover(url, counted, config.follow)
    return {"s": time.perf_counter() - began, "requests": len(asked), "found": found}


def with_notify(root: Path, template: str, **values) -> None:
    """config.toml from the template, with these [notify] settings."""
    head, sep, section = template.partition("[notify]\n")
    for key, value in values.items():
        section = re.sub(rf"^{key} = .*$", f"{key} = {json.dumps(value)}", section, count=1, flags=re.M)
    (root / "config.toml").write_text(head + sep + section)


def delivery_phase(server: Server, root: Path, events: int, apprise_events: int) -> dict:
    config = archive(root / "deliver")
    template = (config.root / "config.toml").read_text()
    event = {"url": "https://news.example/a", "kind": "title", "before": "A", "after": "B",
             "from": {"version": 1, "timestamp": "x", "warc": "w", "offset": 0},
             "to": {"version": 2, "timestamp": "y", "warc": "w", "offset": 1},
             "links": {"before": "http://r/a", "after": "http://r/b"}}
    out = {}
    for name, settings, count in (("webhook", {"webhooks": [server.base + "/hook"], "secret": "k"}, events),
                                  ("apprise", {"apprise": [f"json://{server.base[7:]}/apprise"]}, apprise_events)):
        with_notify(config.root, template, **settings)
        cfg = load_config(config.root / "config.toml")
        catalog = Catalog(cfg.storage.catalog)
        store = NotifyStore(catalog)
        [target] = targets(cfg.notify)
        rows = [(target.id, f"{name}-{i}", json.dumps(dict(event, before=str(i)))) for i in range(count)]
        enqueue_s = timed(lambda: store.enqueue(rows, T0.timestamp()))
        posts = server.posts
        deliver_s = timed(lambda: deliver_due(store, cfg.notify, T0.timestamp()))
        catalog.close()
        out[name] = {"events": count, "delivered": server.posts - posts, "enqueue_s": enqueue_s,
                     "deliver_s": deliver_s, "events_per_s": count / deliver_s}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--apprise-events", type=int, default=200)
    args = parser.parse_args()
    server = Server()
    with tempfile.TemporaryDirectory(prefix="follow-bench-") as tmp:
        root = Path(tmp)
        limits = archive(root / "limits").follow
        result = {"entries": args.entries, "parse": parse_phase(server, args.entries, limits),
                  "run": run_phase(server, root, args.entries), "discovery": discovery_phase(server, root),
                  "delivery": delivery_phase(server, root, args.events, args.apprise_events),
                  "environment": environment()}
    p, r, d, dl = result["parse"], result["run"], result["discovery"], result["delivery"]
    ms = lambda s: f"{s * 1000:.1f} ms"  # noqa: E731
    rows = [["parse a feed of N entries", ms(p["parse_feed_s"])],
            ["parse a sitemap of N URLs", ms(p["parse_sitemap_s"])],
            ["first reading: capture stored / read (parse, N seed lines)",
             f"{ms(r['first_stored_s'])} / {ms(r['first_reading_s'])}"],
            ["seeds re-read at the next look (N+1 seeds)", ms(r["seeds_reload_s"])],
            ["look for due URLs before / after", f"{ms(r['look_before_s'])} / {ms(r['look_after_s'])}"],
            ["unchanged feed (revisit): stored / read", f"{ms(r['unchanged_stored_s'])} / "
                                                         f"{ms(r['unchanged_reading_s'])}"],
            ["10 new entries: stored / read", f"{ms(r['ten_new_stored_s'])} / {ms(r['ten_new_reading_s'])}"],
            ["discovery: page + robots.txt", f"{ms(d['announced']['s'])}, {d['announced']['requests']} requests, "
                                             f"{len(d['announced']['found'])} found"],
            ["discovery: usual paths", f"{ms(d['usual_paths']['s'])}, {d['usual_paths']['requests']} requests, "
                                       f"{len(d['usual_paths']['found'])} found"],
            ["webhook delivery", f"{dl['webhook']['events_per_s']:.0f} events/s ({dl['webhook']['delivered']} POSTs)"],
            ["apprise json:// delivery", f"{dl['apprise']['events_per_s']:.0f} events/s "
                                         f"({dl['apprise']['delivered']} POSTs)"]]
    print(table(rows, [f"N = {args.entries}", "time"]))
    print(f"seed lines: {r['seed_lines']} after the first reading, {r['seed_lines_after']} after the third")
    print(f"results: {write_results('follow_10k', result)}")


if __name__ == "__main__":
    main()
