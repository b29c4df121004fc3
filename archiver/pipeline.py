"""Where the stages meet: fetch -> discover -> WARC records -> catalog -> result.

``Archive`` is an opened archive folder (catalog, WARC writer, crash repair).
``snapshot`` captures seeds, their cross-references and requisites once.
``reindex`` rebuilds the catalog and the CDXJ index from the WARC files alone.
"""

from __future__ import annotations

import json
import logging
import platform
import socket
import time
import urllib.robotparser
import uuid
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Callable, Iterable

from . import __version__
from .capture import Original, Reached, exchange_records, metadata_content
from .catalog import Catalog
from .config import Config
from .errors import UsageError
from .extract import READ, REQUISITE, Link, css_links, decode_body, page_links
from .fetch import REDIRECT_STATUSES, Exchange, Fetcher, utcnow
from .index import Placed, capture_row, cdxj_line, warc_captures, write_cdxj, write_cdxj_lines
from .seeds import normalize_url, url_host
from .history import History
from .tracking import PARSE_LIMIT, article_for, challenge_of, is_html, observe_from_warcs, record_observation, update_history, write_feed
from .warcfile import WARC_SUFFIX, WarcWriterPool, warc_date, find_abandoned, repair_open_file

log = logging.getLogger("archiver")



@dataclass(frozen=True)
class FetchResult:
    """One fetched URL, as reported to the user (one JSON line with --json)."""
    url: str
    status: int | None
    role: str
    record: str  # response | revisit | failed
    warc: str
    offset: int
    error: str = ""
    seed: str = ""

    def to_json(self) -> dict:
        out = asdict(self)
        out.pop("seed")
        return out


@dataclass
class SnapshotSummary:
    results: list[FetchResult] = field(default_factory=list)
    seeds_ok: dict[str, bool] = field(default_factory=dict)
    warcs: list[str] = field(default_factory=list)
    histories: dict[str, History] = field(default_factory=dict)

    @property
    def failed_seeds(self) -> list[str]:
        return [s for s, ok in self.seeds_ok.items() if not ok]


class Archive:
    """An archive folder opened for writing: repairs crashed files, then captures."""

    def __init__(self, config: Config, clock: Callable[[], datetime] = utcnow):
        self.config = config
        self.clock = clock
        self.catalog = Catalog(config.storage.catalog)
        self.repaired = repair_abandoned(config, self.catalog)
        self.closed_warcs: list[str] = []
        self.cdxj: dict[str, list[str]] = {}  # index lines of the open WARC, written when it closes
        self.writer = WarcWriterPool(
            config.storage.warc_dir, config.storage.warc_prefix, config.storage.warc_max_bytes,
            warcinfo_fields(config), clock, on_close=self._indexed)

    def _indexed(self, path: Path) -> None:
        write_cdxj_lines(path.name, self.cdxj.pop(path.name, []), self.config.storage.index_dir)
        self.closed_warcs.append(path.name)

    def store(self, batch: list[tuple[Exchange, Reached, list[Link]]]) -> list[tuple[FetchResult, int]]:
        """Write the exchanges' records and fsync once, then commit their catalog rows in
        one transaction; return what to report (and each capture's id)."""
        groups = [exchange_records(ex, reached, links, self._original(ex)) for ex, reached, links in batch]
        placed = self.writer.write_groups(groups)
        rows = [self._row(ex, reached, links, records, written)
                for (ex, reached, links), records, written in zip(batch, groups, placed)]
        ids = self.catalog.add_captures(rows)
        results = []
        for (ex, reached, _), (row, _), capture_id in zip(batch, rows, ids):
            assert capture_id is not None, "a new record cannot already be in the catalog"
            results.append((FetchResult(row.url, row.status, reached.role, row.record, row.warc, row.offset,
                                        ex.error, reached.seed), capture_id))
        return results

    def _row(self, ex: Exchange, reached: Reached, links: list[Link], records, written) -> tuple:
        meta = Placed(written[-1].offset, written[-1].length, records[-1].rec_headers)
        response = None
        if len(records) == 3:
            response = Placed(written[1].offset, written[1].length, records[1].rec_headers, records[1].http_headers)
            self.cdxj.setdefault(written[1].warc, []).append(cdxj_line(written[1].warc, response))
        return capture_row(written[-1].warc, meta, metadata_content(ex, reached, links), response)

    def _original(self, ex: Exchange) -> Original | None:
        if ex.response_head is None or ex.truncated:
            return None
        found = self.catalog.find_original(ex.url, ex.payload_digest)
        return Original(*found) if found else None

    def close(self) -> None:
        self.writer.close()
        self.catalog.close()


def warcinfo_fields(config: Config) -> dict[str, str]:
    return {
        "software": f"archiver/{__version__} (warcio/{version('warcio')}, requests/{version('requests')}, "
                    f"Python/{platform.python_version()})",
        "hostname": socket.gethostname(),
        "operator": config.capture.operator or "(not configured)",
        "robots": config.capture.robots,
        "http-header-user-agent": config.capture.user_agent,
        "format": "WARC File Format 1.1",
        "conformsTo": "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/",
        "archiver-config": json.dumps(config.public_dict(), sort_keys=True),
    }


def repair_abandoned(config: Config, catalog: Catalog) -> list[tuple[str, int]]:
    """Close every ``.open`` file a crashed process left, cutting its torn tail, and
    catalog any whole group the crash kept from being committed."""
    repaired: list[tuple[str, int]] = []
    warc_dir = config.storage.warc_dir
    if not warc_dir.exists():
        return repaired
    for path in find_abandoned(warc_dir):
        final, dropped = repair_open_file(path)
        for row, xrefs in warc_captures(final):
            catalog.add_capture(row, xrefs)
        write_cdxj(final, config.storage.index_dir)
        _observe_repaired(config, catalog)
        log.warning("repaired %s, left open by a crashed process (dropped %d torn bytes)", final.name, dropped)
        repaired.append((final.name, dropped))
    return repaired


def open_catalog(config: Config) -> Catalog:
    """The catalog, after closing any WARC file a crashed process left open."""
    catalog = Catalog(config.storage.catalog)
    repair_abandoned(config, catalog)
    return catalog


def _observe_repaired(config: Config, catalog: Catalog) -> None:
    for url in observe_from_warcs(catalog, config):
        update_history(catalog, url)


def reindex(config: Config, on_file: Callable[[str], None] = lambda name: None) -> tuple[int, int]:
    """Rebuild captures, cross-references and CDXJ files from the WARC files alone.
    Returns (files, captures)."""
    catalog = Catalog(config.storage.catalog)
    try:
        repair_abandoned(config, catalog)
        catalog.clear_captured()
        files = sorted(config.storage.warc_dir.glob("*" + WARC_SUFFIX))
        count = 0
        for path in files:
            on_file(path.name)
            for row, xrefs in warc_captures(path):
                count += catalog.add_capture(row, xrefs) is not None
            write_cdxj(path, config.storage.index_dir)
        for url in sorted(observe_from_warcs(catalog, config, only_missing=False)):
            update_history(catalog, url)
        return len(files), count
    finally:
        catalog.close()


# ---- one snapshot -----------------------------------------------------------------------

@dataclass(frozen=True)
class Job:
    url: str
    reached: Reached
    is_page: bool          # parse it for cross-references (seed and cross-referenced pages)
    redirects: int = 0
    seed_chain: bool = False


class HostSlots:
    """Per-host politeness: at most ``limit`` requests in flight per host and ``delay``
    seconds between the end of one request and the start of the next."""

    def __init__(self, delay: float, limit: int, clock: Callable[[], float] = time.monotonic):
        self.delay, self.limit, self.clock = delay, limit, clock
        self.queues: dict[str, deque[Job]] = {}
        self.busy: dict[str, int] = {}
        self.ready_at: dict[str, float] = {}

    def add(self, job: Job) -> None:
        self.queues.setdefault(url_host(job.url), deque()).append(job)

    def pending(self) -> bool:
        return any(self.queues.values())

    def take(self) -> Job | None:
        now = self.clock()
        for host, queue in self.queues.items():
            if queue and self.busy.get(host, 0) < self.limit and self.ready_at.get(host, 0) <= now:
                self.busy[host] = self.busy.get(host, 0) + 1
                if self.delay:
                    self.ready_at[host] = float("inf") if self.limit == 1 else now + self.delay
                return queue.popleft()
        return None

    def done(self, job: Job) -> None:
        host = url_host(job.url)
        self.busy[host] -= 1
        if self.delay:
            self.ready_at[host] = self.clock() + self.delay

    def seconds_until_ready(self) -> float:
        now = self.clock()
        waits = [max(0.0, self.ready_at.get(h, 0) - now) for h, q in self.queues.items()
                 if q and self.busy.get(h, 0) < self.limit]
        return min(waits) if waits else 0.0


class Snapshot:
    """One capture run over some seeds: a frontier, a thread pool, one writer."""

    def __init__(self, archive: Archive, on_result: Callable[[FetchResult], None]):
        self.archive = archive
        self.cfg = archive.config.capture
        self.on_result = on_result
        self.fetcher = Fetcher(self.cfg, archive.clock)
        self.slots = HostSlots(self.cfg.per_host_delay, self.cfg.per_host_concurrency)
        self.robots = RobotsPolicy(self.fetcher) if self.cfg.robots == "obey" else None
        self.seen: set[str] = set()
        self.observed: set[str] = set()
        self.summary = SnapshotSummary()

    def run(self, seeds: Iterable[str]) -> SnapshotSummary:
        snapshot_id = uuid.uuid4().hex
        for seed in seeds:
            self.summary.seeds_ok[seed] = False
            self._enqueue(Job(seed, Reached(seed, "seed", snapshot=snapshot_id), is_page=True, seed_chain=True))
        with ThreadPoolExecutor(self.cfg.concurrency, thread_name_prefix="fetch") as pool:
            self._drain(pool)
        self.fetcher.close()
        return self.summary

    def _drain(self, pool: ThreadPoolExecutor) -> None:
        in_flight: dict[Future, Job] = {}
        while self.slots.pending() or in_flight:
            while len(in_flight) < self.cfg.concurrency and (job := self.slots.take()):
                in_flight[pool.submit(self._fetch, job)] = job
            if not in_flight:
                time.sleep(self.slots.seconds_until_ready())  # politeness wait, nothing else to do
                continue
            timeout = self.slots.seconds_until_ready() if self.slots.pending() else None
            done, _ = wait(in_flight, timeout=timeout or None, return_when=FIRST_COMPLETED)
            batch = []
            for future in done:
                job = in_flight.pop(future)
                self.slots.done(job)
                batch.append((job, future.result()))
            if batch:
                self._handle(batch)

    def _fetch(self, job: Job) -> Exchange:
        if self.robots and not self.robots.allowed(job.url, self.cfg.user_agent):
            return Exchange(job.url, self.archive.clock(), error="blocked by robots.txt")
        return self.fetcher.fetch(job.url)

    def _handle(self, batch: list[tuple[Job, Exchange]]) -> None:
        """Store the exchanges that came back together, then report and follow them."""
        try:
            prepared = [self._prepare(job, ex) for job, ex in batch]
            stored = self.archive.store([(ex, job.reached, links) for (job, ex), (_, links, _) in zip(batch, prepared)])
            for (job, ex), (body, links, follows), (result, capture_id) in zip(batch, prepared, stored):
                if job.seed_chain and not follows:
                    self._observe(job, ex, body, capture_id)
                self.summary.results.append(result)
                self.on_result(result)
                self._follow(job, ex, links)
        finally:
            for _, ex in batch:
                ex.close()

    def _prepare(self, job: Job, ex: Exchange) -> tuple[bytes | None, list[Link], bool]:
        """(decoded body, links found, whether a redirect will be followed)."""
        target = self._redirect_target(ex)
        follows = target is not None and job.redirects < self.cfg.max_redirects
        if target and not follows:
            ex.error = f"stopped after {self.cfg.max_redirects} redirects (max_redirects)"
        body = self._parseable_body(ex)
        return body, self._links(job, ex, body), follows

    def _parseable_body(self, ex: Exchange) -> bytes | None:
        """The decoded body of a 2xx HTML page or stylesheet, for links and extraction."""
        ctype = ex.header("Content-Type").lower()
        if ex.status is None or not 200 <= ex.status < 300 or not ("html" in ctype or "css" in ctype or not ctype):
            return None
        return decode_body(ex.read_body(PARSE_LIMIT), ex.header("Content-Encoding"))

    def _links(self, job: Job, ex: Exchange, body: bytes | None) -> list[Link]:
        if body is None:
            return []
        ctype = ex.header("Content-Type").lower()
        if "css" in ctype:
            return css_links(body, ex.url, ctype)
        if is_html(ctype, body):
            links = page_links(body, ex.url, ctype, self.cfg.cta_texts)
            return links if job.is_page else [link for link in links if link.kind == REQUISITE]
        return []

    def _observe(self, job: Job, ex: Exchange, body: bytes | None, capture_id: int) -> None:
        article = article_for(ex.status, ex.header("Content-Type"), body, ex.url, self.cfg.cta_texts)
        record_observation(self.archive.catalog, capture_id, job.reached.seed, ex.url,
                           challenge_of(ex.header), article)
        self.observed.add(job.reached.seed)

    def _follow(self, job: Job, ex: Exchange, links: list[Link]) -> None:
        target = self._redirect_target(ex)
        if target and job.redirects < self.cfg.max_redirects:
            self._follow_redirect(job, ex.url, target)
        elif job.seed_chain:
            self.summary.seeds_ok[job.reached.seed] = ex.status is not None
        hops = job.reached.hops
        for link in links:
            if link.kind == REQUISITE and self.cfg.requisites:
                self._enqueue(Job(link.url, replace(job.reached, role=REQUISITE, via=ex.url), is_page=False))
            elif link.kind in self.cfg.follow and hops < self.cfg.depth:
                self._enqueue(Job(link.url, replace(job.reached, role=link.kind, via=ex.url, hops=hops + 1),
                                  is_page=True))

    @staticmethod
    def _redirect_target(ex: Exchange) -> str | None:
        if ex.status not in REDIRECT_STATUSES or not ex.header("Location"):
            return None
        try:
            return normalize_url(ex.header("Location"), ex.url)
        except UsageError:
            return None

    def _follow_redirect(self, job: Job, via: str, target: str) -> None:
        reached = replace(job.reached, role="redirect", via=via)
        if not self._enqueue(replace(job, url=target, reached=reached, redirects=job.redirects + 1)) and job.seed_chain:
            self.summary.seeds_ok[job.reached.seed] = True  # a loop: the chain's responses are captured

    def _enqueue(self, job: Job) -> bool:
        if job.url in self.seen:
            return False
        self.seen.add(job.url)
        self.slots.add(job)
        return True


class RobotsPolicy:
    """robots.txt per host, fetched once per snapshot (only with robots = "obey")."""

    def __init__(self, fetcher: Fetcher):
        self.fetcher = fetcher
        self.parsers: dict[str, urllib.robotparser.RobotFileParser] = {}

    def allowed(self, url: str, agent: str) -> bool:
        scheme, host = url.split("://", 1)[0], url_host(url)
        if host not in self.parsers:
            parser = urllib.robotparser.RobotFileParser()
            ex = self.fetcher.fetch(f"{scheme}://{host}/robots.txt")
            try:
                text = decode_body(ex.read_body(1_000_000), ex.header("Content-Encoding")).decode("utf-8", "replace")
                parser.parse(text.splitlines() if ex.status == 200 else [])
            finally:
                ex.close()
            self.parsers[host] = parser
        return self.parsers[host].can_fetch(agent, url)


def snapshot(archive: Archive, urls: Iterable[str],
             on_result: Callable[[FetchResult], None] = lambda r: None) -> SnapshotSummary:
    """Capture each URL, its cross-references and requisites, once; close the WARC file."""
    seeds = list(dict.fromkeys(normalize_url(u) for u in urls))
    run = Snapshot(archive, on_result)
    summary = run.run(seeds)
    archive.writer.close()
    for seed in sorted(run.observed):
        summary.histories[seed] = update_history(archive.catalog, seed)
    write_feed(archive.catalog, archive.config, warc_date(archive.clock()))
    summary.warcs = sorted({r.warc for r in summary.results})
    return summary
