"""Following in ``archiver run``: a stored capture of a followed source -> new seeds.

A followed source is a seed line with ``follow=KIND`` (feed, sitemap, front, or auto:
told from what it serves). ``archiver run`` captures it like any page (the feed is
evidence of what was published and when); once its capture is stored, its body is read
back from the WARC and parsed (follow.py), and every article URL it lists for the first
time is appended to ``seeds/followed.txt`` (with the source's tags), so the adaptive
schedule takes it from the next look for due URLs. What each source listed, and when an
entry left it, is kept in the catalog (``FollowStore``): an entry is never added twice,
even after a restart, and one that disappears from a feed while older ones stay is
logged as a retraction signal. A source that cannot be read is recorded as failed.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import zlib
from datetime import datetime
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from archiver.config import Config
from archiver.errors import ConfigError
from archiver.archive.warcfile import OPEN_SUFFIX, read_response
from archiver.archive.workdir import redaction_salt
from archiver.archive.writer import FetchResult
from archiver.capture.fetch import Fetcher, literal_address
from archiver.catalog import Catalog
from archiver.capture.politeness import RobotsPolicy
from archiver.page.extract import decode_body
from archiver.capture.transport import is_public
from archiver.follow import KINDS, MAX_INDEX_DEPTH, Entry, Fetched, Listing, discover, parse_source
from archiver.seeds import Seed, add_seed, append_seed_lines, normalize_url, seed_line

log = logging.getLogger("archiver")

FOLLOWED_FILE = "followed.txt"  # in seeds/: the articles sources brought in

SCHEMA = """
CREATE TABLE IF NOT EXISTS follow_entries (
    source TEXT NOT NULL,
    url TEXT NOT NULL,
    published TEXT NOT NULL,        -- as the source dated it ("" when it did not)
    title TEXT NOT NULL,
    first_seen REAL NOT NULL,
    tracked INTEGER NOT NULL,       -- 1: appended to seeds/, 0: left out by match= or max=
    gone_at REAL,                   -- when it was first missing from the source
    retracted INTEGER NOT NULL DEFAULT 0,  -- gone while an older entry stayed: a retraction signal
    PRIMARY KEY (source, url)
);
CREATE INDEX IF NOT EXISTS follow_entries_url ON follow_entries (url);
CREATE TABLE IF NOT EXISTS follow_sources (
    source TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    last_read REAL NOT NULL,
    entries INTEGER NOT NULL,
    added INTEGER NOT NULL,
    left_out INTEGER NOT NULL,      -- new entries waiting for its next readings (max_per_run)
    error TEXT NOT NULL
);
"""


class FollowStore:
    """The follow tables, over the catalog's connection and its transactions."""

    def __init__(self, catalog: Catalog):
        self.catalog, self.db = catalog, catalog.db
        catalog.add_tables(SCHEMA, "follow_sources")

    def _exists(self) -> bool:
        return self.catalog.has_table("follow_sources")

    def known(self, source: str) -> dict[str, tuple[int, float | None]]:
        """url -> (tracked, gone_at) of every entry the source has listed."""
        rows = self.db.execute("SELECT url, tracked, gone_at FROM follow_entries WHERE source = ?", (source,))
        return {url: (tracked, gone) for url, tracked, gone in rows}

    def record(self, source: str, listing: Listing, tracked: set[str], now: float, added: int,
               left: int) -> list[str]:
        """Store what the source lists now; return the URLs that left it while an older
        entry stayed (retraction signals), noted once each."""
        known = self.known(source)
        listed = {e.url for e in listing.entries}
        new = [e for e in listing.entries if e.url not in known or (e.url in tracked and not known[e.url][0])]
        with self.catalog.transaction():
            self.db.executemany(
                "INSERT INTO follow_entries (source, url, published, title, first_seen, tracked) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (source, url) DO UPDATE SET tracked = excluded.tracked",
                [(source, e.url, e.published, e.title, now, int(e.url in tracked)) for e in new])
            self.db.executemany("UPDATE follow_entries SET gone_at = NULL WHERE source = ? AND url = ?",
                                [(source, u) for u in listed if u in known and known[u][1] is not None])
            retracted = self._mark_gone(source, listing, known, listed, now)
            self._source_row(source, listing, now, added, left)
        return retracted

    def _mark_gone(self, source: str, listing: Listing, known: dict, listed: set[str], now: float) -> list[str]:
        gone = [u for u, (_, at) in known.items() if u not in listed and at is None]
        if not gone or listing.kind not in ("feed", "sitemap"):
            return []
        oldest = min((e.published for e in listing.entries if e.published), default="")
        dates = dict(self.db.execute("SELECT url, published FROM follow_entries WHERE source = ?", (source,)))
        retracted = [u for u in gone if oldest and dates.get(u, "") > oldest]
        self.db.executemany("UPDATE follow_entries SET gone_at = ?, retracted = ? WHERE source = ? AND url = ?",
                            [(now, int(u in retracted), source, u) for u in gone])
        return retracted

    def _source_row(self, source: str, listing: Listing, now: float, added: int, left: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO follow_sources VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (source, listing.kind, now, len(listing.entries), added, left, listing.error))

    def failed(self, source: str, kind: str, error: str, now: float) -> None:
        with self.catalog.transaction():
            self._source_row(source, Listing(kind, error=error), now, 0, 0)

    def left_out(self, source: str) -> int:
        """New entries its last reading left for the next ones (max_per_run); a source
        never read counts as one with entries left."""
        row = self.db.execute("SELECT left_out, error FROM follow_sources WHERE source = ?", (source,)).fetchone()
        return 1 if row is None or row[1] else row[0]

    def unchanged(self, source: str, now: float) -> None:
        with self.catalog.transaction():
            self.db.execute("UPDATE follow_sources SET last_read = ?, added = 0 WHERE source = ?", (now, source))

    def sources(self) -> list[dict]:
        if not self._exists():
            return []
        rows = self.db.execute("SELECT s.*, (SELECT count(*) FROM follow_entries e WHERE e.source = s.source "
                               "AND e.retracted) FROM follow_sources s ORDER BY s.source").fetchall()
        return [{"source": r[0], "kind": r[1], "last_read": r[2], "entries": r[3], "added": r[4], "left_out": r[5],
                 "error": r[6], "retraction_signals": r[7]} for r in rows]

    def published_all(self) -> dict[str, str]:
        """url -> when the first source to list it said it was published."""
        if not self._exists():
            return {}
        rows = self.db.execute("SELECT url, published FROM follow_entries WHERE published != '' "
                               "ORDER BY first_seen DESC")
        return dict(rows.fetchall())


# ---- the runner's side: a captured source -> new seeds ---------------------------------

def check_source(seed: Seed) -> None:
    """follow=, match= and max= of a seed line, checked (ConfigError names the line)."""
    where = f"{seed.source}:{seed.line}"
    kind = seed.option("follow")
    if kind is None:
        if seed.option("match") is not None or seed.option("max") is not None:
            raise ConfigError(f"{where}: match= and max= are options of a followed source (follow=KIND)")
        return
    if kind not in KINDS:
        raise ConfigError(f"{where}: follow={kind!r}: use one of {', '.join(KINDS)}")
    try:
        re.compile(seed.option("match") or "")
    except re.error as e:
        raise ConfigError(f"{where}: match=: not a regular expression: {e}") from None
    if (n := seed.option("max")) is not None and not (n.isdigit() and int(n) >= 1):
        raise ConfigError(f"{where}: max={n!r}: a number of articles, at least 1")


def stored_body(catalog: Catalog, warc_dir: Path, result: FetchResult | None,
                limit: int) -> tuple[bytes | None, str, str]:
    """(decoded body, Content-Type, error) of a source's capture, read back from its
    WARC record (a revisit's from the record it revisits): what is parsed is what was
    archived."""
    if result is None or result.status is None:
        return None, "", (result.error if result else "") or "no response"
    if not 200 <= result.status < 300:
        return None, "", f"HTTP {result.status}"
    warc, offset = result.warc, result.offset
    if result.record == "revisit":
        refers = catalog.captures.refers_to(warc, offset)
        location = catalog.captures.location_of(refers) if refers else None
        if location is None:
            return None, "", "the record it revisits is not in the catalog"
        warc, offset = location
    headers, raw = read_response(_warc_path(warc_dir, warc), offset, limit + 1)
    body = _decoded(raw, headers.get_header("Content-Encoding") or "", limit)
    return body, headers.get_header("Content-Type") or "", ""


def _warc_path(warc_dir: Path, name: str) -> Path:
    """A WARC file by its final name, or the open file of that name its writer still holds."""
    path = warc_dir / name
    return path if path.exists() else path.with_name(name + OPEN_SUFFIX)


def _decoded(raw: bytes, encoding: str, limit: int) -> bytes:
    """gzip undone up to limit (+1, so an oversize body is seen as one); other codings
    as extract.decode_body undoes them."""
    if encoding.strip().lower() in ("gzip", "x-gzip"):
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            return inflater.decompress(raw, limit + 1)
        except zlib.error:
            return raw
    return decode_body(raw, encoding)


def is_source(seed: Seed) -> bool:
    return seed.option("follow") is not None


def may_reach(url: str, source: str, allow_private: bool) -> bool:
    """Whether a URL a source lists may become a seed: a seed may reach any address, so
    a hostile feed must not name an internal one (169.254.169.254, localhost, 10.x) that
    its own host is not. A host name that resolves to one is not caught here."""
    host = (urlsplit(url).hostname or "").lower()
    if allow_private or host == (urlsplit(source).hostname or "").lower():
        return True
    if host == "localhost" or host.endswith(".localhost"):
        return False
    return is_public(host) or not literal_address(url)


def new_seed_lines(source: Seed, listing: Listing, known: dict[str, tuple[int, float | None]],
                   tracked: Callable[[str], bool], max_new: int,
                   allow_private: bool = False) -> tuple[list[tuple[Entry, str]], int]:
    """((entry, seed line) of the entries to track now, how many more wait for the next
    readings): not taken before, matching match=, not tracked already, at most max_new."""
    pattern = re.compile(source.option("match") or "")
    tags = [("tag", v) for k, v in source.options if k == "tag"]
    wanted = [e for e in listing.entries if not (e.url in known and known[e.url][0]) and not tracked(e.url)
              and pattern.search(e.url) and may_reach(e.url, source.url, allow_private)]
    return [(e, seed_line(e.url, tags)) for e in wanted[:max_new]], max(0, len(wanted) - max_new)


class Follower:
    """Reads each stored capture of a followed source and brings its new articles in,
    on a thread of its own with its own catalog connection: feedparser takes seconds
    over a feed of 10,000 entries, and the crawl thread goes on storing meanwhile."""

    def __init__(self, config: Config, clock: Callable[[], datetime], tracked: Callable[[str], bool],
                 submit: Callable[[list[str]], None]):
        self.config, self.limits, self.clock = config, config.follow, clock
        self.tracked, self.submit = tracked, submit
        self.children: dict[str, tuple[Seed, int]] = {}  # a sitemap index's child -> (its source, depth)
        self.read_this_run: dict[str, int] = {}  # source -> child sitemaps read (max_sitemaps)
        self.appended: set[str] = set()  # by this process: seeds/ may not have been read again yet
        self.lock = threading.Lock()  # children: asked by the crawl thread, changed by the reader
        self.jobs: queue.SimpleQueue[tuple[str, Seed | None, FetchResult | None] | None] = queue.SimpleQueue()
        self.idle = threading.Condition()
        self.queued = self.done = self.seen_done = 0
        self.thread: threading.Thread | None = None

    def is_child(self, url: str) -> bool:
        with self.lock:
            return url in self.children

    def read(self, url: str, seed: Seed | None, result: FetchResult | None) -> None:
        """Queue the reading of a stored capture: of the followed source ``seed``, or
        (seed None) of a child sitemap of one."""
        if self.thread is None:
            self.thread = threading.Thread(target=self._work, name="follow", daemon=True)
            self.thread.start()
        with self.idle:
            self.queued += 1
        self.jobs.put((url, seed, result))

    def wait(self) -> int:
        """Until every queued reading is done; how many were done since the last wait."""
        with self.idle:
            self.idle.wait_for(lambda: self.done == self.queued)
            done, self.seen_done = self.done - self.seen_done, self.done
            return done

    def close(self, wait: float) -> None:
        if self.thread is not None:
            self.jobs.put(None)
            self.thread.join(wait)

    def _work(self) -> None:
        catalog = Catalog(self.config.storage.catalog)
        try:
            store = FollowStore(catalog)
            while (job := self.jobs.get()) is not None:
                try:
                    self._read(store, *job)
                except Exception as e:  # noqa: BLE001 - one source must not stop the others, nor archiver run
                    log.error("followed source %s not read: %s: %s", job[0], type(e).__name__, e)
                finally:
                    with self.idle:
                        self.done += 1
                        self.idle.notify_all()
        finally:
            catalog.close()

    def _read(self, store: FollowStore, url: str, seed: Seed | None, result: FetchResult | None) -> None:
        if seed is None:
            with self.lock:
                source, depth = self.children.pop(url)
        else:
            source, depth = seed, 0
            self.read_this_run.pop(url, None)  # a new reading of the source: its children count afresh
        now = self.clock().timestamp()
        if result is not None and result.record == "revisit" and not store.left_out(url):
            store.unchanged(url, now)  # the same bytes as last time, all of it taken then
            return
        body, ctype, error = stored_body(store.catalog, self.config.storage.warc_dir, result, self.limits.max_bytes)
        kind = (source.option("follow") or "auto") if depth == 0 else "sitemap"
        listing = Listing(kind, error=error) if body is None else parse_source(body, url, kind, ctype, self.limits)
        if listing.error and not listing.entries and not listing.sitemaps:
            store.failed(url, listing.kind, listing.error, now)
            log.warning("followed source %s failed: %s", url, listing.error)
            return
        children = self._take(store, source, url, listing, depth, now)
        if children:
            self.submit(children)

    def _take(self, store: FollowStore, source: Seed, url: str, listing: Listing, depth: int,
              now: float) -> list[str]:
        max_new = int(source.option("max") or self.limits.max_per_run)
        chosen, left = new_seed_lines(source, listing, store.known(url),
                                      lambda u: self.tracked(u) or u in self.appended, max_new,
                                      self.config.capture.allow_private_addresses)
        append_seed_lines(self.config.seeds_dir / FOLLOWED_FILE, [line for _, line in chosen])
        self.appended.update(e.url for e, _ in chosen)
        retracted = store.record(url, listing, {e.url for e, _ in chosen}, now, len(chosen), left)
        for gone in retracted:
            log.warning("%s is no longer listed by %s while older entries are (a retraction signal)", gone, url)
        if listing.error:
            log.warning("followed source %s: %s", url, listing.error)
        if chosen:
            log.info("%s lists %d new article(s), now tracked%s", url, len(chosen),
                     f" ({left} more at its next readings: max_per_run {max_new})" if left else "")
        return self._children(source, listing, depth)

    def _children(self, source: Seed, listing: Listing, depth: int) -> list[str]:
        """A sitemap index's children to capture next, within the index depth and the
        source's max_sitemaps for this reading (an endless index stops there)."""
        if not listing.sitemaps:
            return []
        if depth + 1 > MAX_INDEX_DEPTH:
            log.warning("%s: sitemap index nested deeper than %d: not followed", source.url, MAX_INDEX_DEPTH)
            return []
        room = self.limits.max_sitemaps - self.read_this_run.get(source.url, 0)
        allow = self.config.capture.allow_private_addresses
        with self.lock:
            fresh = [u for u in listing.sitemaps if u not in self.children
                     and may_reach(u, source.url, allow)][:max(room, 0)]
            self.children.update((child, (source, depth + 1)) for child in fresh)
        if len(fresh) < len(listing.sitemaps):
            log.warning("%s: %d child sitemap(s) not read this time (max_sitemaps %d)", source.url,
                        len(listing.sitemaps) - len(fresh), self.limits.max_sitemaps)
        self.read_this_run[source.url] = self.read_this_run.get(source.url, 0) + len(fresh)
        return fresh


# ---- archiver follow --------------------------------------------------------------------

def fetcher_get(config: Config) -> tuple[Callable[[str], Fetched], Callable[[], None]]:
    """(get, close): discovery's fetches, through the capture's Fetcher (its proxy,
    headers, TLS settings, address checks) and robots.txt when the archive obeys it."""
    fetcher = Fetcher(config.capture, salt=redaction_salt(config.root))
    robots = RobotsPolicy(fetcher) if config.capture.robots == "obey" else None

    def get(url: str) -> Fetched:
        if robots and not robots.allowed(url, config.capture.user_agent):
            return Fetched(None, "", b"")
        ex = fetcher.fetch(url, credentials=False)
        try:
            body = decode_body(ex.read_body(config.follow.max_bytes), ex.header("Content-Encoding"))
            return Fetched(ex.status, ex.header("Content-Type"), body)
        finally:
            ex.close()
    return get, fetcher.close


def follow_site(config: Config, url: str, kind: str, options: list[tuple[str, str]],
                target: Path | None = None) -> list[tuple[str, str]]:
    """Append a seed line per source to follow: url itself with --kind, else what
    discovery finds (url as a front page when it finds nothing). (url, kind) of each."""
    url = normalize_url(url)
    if kind == "auto":
        get, close = fetcher_get(config)
        try:
            allow = config.capture.allow_private_addresses
            found = [(u, k) for u, k in discover(url, get, config.follow) if may_reach(u, url, allow)] \
                or [(url, "front")]
        finally:
            close()
    else:
        found = [(url, kind)]
    target = target or config.seeds_dir / "follow.txt"
    for source, source_kind in found:
        seed = Seed(source, (("follow", source_kind), *options), str(target))
        check_source(seed)
        add_seed(config.seeds_dir, target, source, list(seed.options))
    return found
