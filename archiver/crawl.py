"""The crawl loop: a frontier with per-host politeness, exchanges in flight, and the
one thread that stores what comes back and follows it.

Seeds arrive in batches (one batch = one snapshot, with its own id). Within a batch no
URL is fetched twice, except to retry a 429, 503 or a failed connection. A batch is done
when every URL it reached has been stored; its seeds' histories are then updated.
``snapshot`` runs one batch until idle; the scheduler keeps a crawler running and feeds it.

What one page or server can make the crawl do is bounded, and every bound hit is written
into the capture's error (and logged): the new URLs one page leads to
(max_links_per_page), the URLs of a snapshot (max_urls_per_snapshot), the time spent on
one URL, retries included (total_timeout), and the addresses a redirect or link may
reach (allow_private_addresses: a seed may name any; what it leads to, only public ones
and the non-public address it was itself served from).
"""

from __future__ import annotations

import email.utils
import http.cookiejar
import heapq
import urllib.robotparser
import logging
import os
import queue
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Callable, Protocol
from urllib.parse import urljoin, urlsplit

from archiver.archive.writer import Writer, FetchResult, SnapshotSummary
from archiver.archive.records import Reached
from archiver.errors import UsageError
from archiver.page.article import Article, article_of, may_be_html
from archiver.page.extract import (BODY, PARSE_LIMIT, READ, REQUISITE, Link, css_links, decode_body, decode_text, is_html, parse_html,
                      requisites_of)
from archiver.capture.fetch import REDIRECT_STATUSES, Exchange, Fetcher, literal_address, snapshot_cookies
from archiver.capture.transport import is_public
from archiver.seeds import DEFAULT_PORTS, normalize_url, url_host
from archiver.archive.workdir import redaction_salt

log = logging.getLogger("archiver")

# Fetched exchanges are stored in batches: each batch costs one fsync of the WARC file,
# one of the ledger and three catalog transactions, whatever its size. A batch is stored
# when it is this large, when it holds this many body bytes (or fills the current WARC
# file: files are rotated between batches), when its first exchange has waited this
# long, or when nothing else is in flight.
STORE_BATCH = 256
STORE_BATCH_BYTES = 16_000_000
STORE_LATENCY = 0.25  # seconds
RETRY_STATUSES = (429, 503)
RETRY_BASE_SECONDS = 2.0
MAX_RETRY_AFTER = 120.0  # a longer Retry-After is not waited for within one snapshot


class Observer(Protocol):
    """What the crawl tells the observe stage (tracking.Observer); capture knows nothing
    of how edits are found, only that a changed page is fetched once more to confirm."""

    def observe(self, capture_id: int, tracked_url: str, final_url: str, header: Callable[[str], str],
                article: Article | None) -> None:
        """The page a tracked URL's redirect chain ended at, just stored."""

    def settle(self, tracked_url: str) -> tuple[Any, bool]:
        """All the URL's snapshot reached is stored: (its history, whether a second render
        must confirm a change)."""

    def snapshot_done(self) -> None:
        """A snapshot that observed pages is stored."""


class Unobserved:
    """Capture alone: no observations, nothing confirmed."""

    def observe(self, *args) -> None:
        pass

    def settle(self, tracked_url: str) -> tuple[Any, bool]:
        return None, False

    def snapshot_done(self) -> None:
        pass


@dataclass(frozen=True)
class Job:
    url: str
    reached: Reached
    is_page: bool          # parse it for cross-references (seed and cross-referenced pages)
    redirects: int = 0
    seed_chain: bool = False
    attempt: int = 0
    confirm: bool = False  # a second render of a page whose capture showed a change
    reach: frozenset[str] | None = None  # non-public addresses it may connect to (None: any, a seed)
    spent: float = 0.0  # seconds its earlier attempts took (retries share total_timeout)


class HostSlots:
    """Per-host politeness: at most ``limit`` requests in flight per host and ``delay``
    seconds between the end of one request and the start of the next. Hosts take turns:
    the host just served goes to the back of the line, so a host late in the order is not
    starved by the ones before it (a scheduler batch lasts until its last host is served)."""

    def __init__(self, delay: float, limit: int, clock: Callable[[], float] = time.monotonic):
        self.delay, self.limit, self.clock = delay, limit, clock
        self.queues: dict[str, deque[Job]] = {}
        self.busy: dict[str, int] = {}
        self.ready_at: dict[str, float] = {}   # politeness: next start allowed
        self.held_until: dict[str, float] = {}  # retry back-off or Retry-After
        self.later: list[tuple[float, int, Job]] = []  # (not before, order, job), a heap

    def add(self, job: Job, after: float = 0.0) -> None:
        """Queue a job; with ``after``, not before that many seconds from now."""
        if after > 0:
            heapq.heappush(self.later, (self.clock() + after, len(self.later), job))
            return
        self.queues.setdefault(url_host(job.url), deque()).append(job)

    def _release_due(self, now: float) -> None:
        while self.later and self.later[0][0] <= now:
            self.add(heapq.heappop(self.later)[2])

    def hold(self, host: str, seconds: float) -> None:
        """Send nothing to host for this long (a Retry-After, a retry back-off)."""
        self.held_until[host] = max(self.held_until.get(host, 0.0), self.clock() + seconds)

    def _free_at(self, host: str) -> float:
        return max(self.ready_at.get(host, 0.0), self.held_until.get(host, 0.0))

    def pending(self) -> bool:
        return bool(self.queues) or bool(self.later)  # only hosts with queued jobs are kept

    def take(self) -> Job | None:
        now = self.clock()
        self._release_due(now)
        for host, jobs in self.queues.items():
            if self.busy.get(host, 0) < self.limit and self._free_at(host) <= now:
                break
        else:
            return None
        self.busy[host] = self.busy.get(host, 0) + 1
        if self.delay:
            self.ready_at[host] = float("inf") if self.limit == 1 else now + self.delay
        job = jobs.popleft()
        del self.queues[host]
        if jobs:
            self.queues[host] = jobs  # to the back of the line
        return job

    def done(self, job: Job) -> None:
        host = url_host(job.url)
        self.busy[host] -= 1
        if self.delay:
            self.ready_at[host] = self.clock() + self.delay

    def seconds_until_ready(self) -> float | None:
        """Until a queued job may start; None when no queued host is free."""
        now = self.clock()
        waits = [max(0.0, self._free_at(h) - now) for h in self.queues if self.busy.get(h, 0) < self.limit]
        waits += [max(0.0, self.later[0][0] - now)] if self.later else []
        return min(waits) if waits else None


class FetchPool:
    """Fetches on worker threads (requests blocks), at most ``workers`` at once; what they
    return is handed back to the crawl thread through one queue, which wake-ups from other
    threads also go through."""

    def __init__(self, fetch: Callable[[Job], Exchange], workers: int, cancel: Callable[[], None] = lambda: None):
        self.fetch, self.workers, self.cancel = fetch, max(1, workers), cancel
        self.jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.results: queue.SimpleQueue[tuple[Job, Exchange | BaseException] | None] = queue.SimpleQueue()
        self.in_flight: dict[int, Job] = {}  # by id(job): submitted and not yet handed back
        self.threads: list[threading.Thread] = []

    def wake(self) -> None:
        """From any thread: end the current wait."""
        self.results.put(None)

    def submit(self, job: Job) -> None:
        self.in_flight[id(job)] = job
        if len(self.threads) < min(self.workers, len(self.in_flight)):
            thread = threading.Thread(target=self._work, name=f"fetch-{len(self.threads)}", daemon=True)
            thread.start()
            self.threads.append(thread)
        self.jobs.put(job)

    def _work(self) -> None:
        while (job := self.jobs.get()) is not None:
            try:
                outcome: Exchange | BaseException = self.fetch(job)
            except BaseException as e:  # noqa: BLE001 - a bug in a fetch: raised in the crawl thread
                outcome = e
            self.results.put((job, outcome))

    def wait(self, timeout: float | None) -> list[tuple[Job, Exchange | BaseException]]:
        """What has finished: wait for the first result, a wake-up, or the timeout."""
        try:
            item = self.results.get(timeout=None if timeout is None else max(0.0, timeout))
        except queue.Empty:
            return []
        finished = []
        while True:
            if item is not None:
                job, outcome = item
                if self.in_flight.pop(id(job), None) is not None:
                    finished.append(item)
                elif isinstance(outcome, Exchange):  # abandoned meanwhile
                    outcome.close()
            try:
                item = self.results.get_nowait()
            except queue.Empty:
                return finished

    def abandon(self) -> list[Job]:
        """Give up the fetches in flight: those not started are dropped, those running
        are cut off (each ends at once, its result dropped); return their jobs."""
        jobs = list(self.in_flight.values())
        self.in_flight.clear()
        while True:
            try:
                self.jobs.get_nowait()
            except queue.Empty:
                break
        self.cancel()
        self.wait(0)
        return jobs

    def close(self) -> None:
        self.abandon()
        for _ in self.threads:
            self.jobs.put(None)
        self.threads.clear()


@dataclass
class Batch:
    """One snapshot and what it has reached so far."""
    id: str
    summary: SnapshotSummary = field(default_factory=SnapshotSummary)
    seen: set[str] = field(default_factory=set)
    observed: set[str] = field(default_factory=set)
    ends: dict[str, Job] = field(default_factory=dict)  # seed -> the page its redirect chain ended at
    pending: dict[str, int] = field(default_factory=dict)  # seed -> its URLs not yet stored
    by_seed: dict[str, list[FetchResult]] = field(default_factory=dict)  # results per seed, until it is done
    cookies: http.cookiejar.CookieJar = field(default_factory=snapshot_cookies)  # what sites set, sent along the snapshot
    fetches: int = 0  # URLs queued (max_urls_per_snapshot)
    full: bool = False  # max_urls_per_snapshot reached (said once in the log)


class Crawler:
    """The fetches in flight (FetchPool, on threads), and the storing and following, in
    the thread that calls ``run``."""

    def __init__(self, archive: Writer, on_result: Callable[[FetchResult], None] = lambda r: None,
                 on_batch_done: Callable[[Batch], None] = lambda b: None,
                 on_seed_done: Callable[[Batch, str], None] = lambda b, s: None,
                 summaries: bool = True, observer: Observer = Unobserved(),
                 is_source: Callable[[str], bool] = lambda url: False):
        """``observer``: the observe stage, told of each tracked URL's page (see Observer).
        ``summaries=False`` (archiver run, which takes each seed from on_seed_done) keeps
        no batch summary: a batch lasts until its slowest seed is stored, and its summary
        would hold every other seed's results and history until then.
        ``is_source(seed)``: a followed feed, sitemap or front page (follower.py reads it):
        captured with its requisites, but neither an article nor a page to follow."""
        self.archive = archive
        self.summaries = summaries
        self.cfg = archive.config.capture
        self.on_result, self.on_batch_done, self.on_seed_done = on_result, on_batch_done, on_seed_done
        self.observer = observer
        self.is_source = is_source
        self.fetcher = Fetcher(self.cfg, archive.clock, redaction_salt(archive.config.root))
        self.slots = HostSlots(self.cfg.per_host_delay, self.cfg.per_host_concurrency)
        self.robots = RobotsPolicy(self.fetcher) if self.cfg.robots == "obey" else None
        self.batches: dict[str, Batch] = {}
        self.inbox: queue.SimpleQueue[list[str]] = queue.SimpleQueue()
        self.fetches = FetchPool(self._fetch, self.cfg.concurrency, self.fetcher.cancel)
        self._resolved: set[tuple[str, str]] = set()  # (snapshot, host) already resolved
        self._resolving = threading.Lock()  # for _resolved, shared by the fetch threads
        self.stopping = False
        self.unstored: list[tuple[Job, Exchange, tuple[Article | None, list[Link], bool]]] = []
        self.unstored_bytes = 0
        self.unstored_since = 0.0

    # ---- feeding (any thread) ----------------------------------------------------------

    def submit(self, seeds: list[str]) -> None:
        """Queue normalised seed URLs as one new batch and wake the crawl loop."""
        self.inbox.put(seeds)
        self.wake()

    def wake(self) -> None:
        self.fetches.wake()

    # ---- the loop (one thread) -----------------------------------------------------------

    def run(self, stop: threading.Event | None = None, grace: float = 10.0) -> None:
        """Crawl until idle (stop is None) or until stop is set; then let in-flight
        fetches finish for up to ``grace`` seconds and drop the rest."""
        try:
            while True:
                self._take_inbox()  # a submit after this leaves a wake-up for the next wait
                if stop is not None and stop.is_set():
                    break
                self._dispatch()
                if stop is None and not self._in_flight() and not self.slots.pending() and self.inbox.empty():
                    break
                self._wait_and_store(self._timeout())
            self.stopping = True
            self._finish_in_flight(grace)
        finally:
            try:
                for job in self.fetches.abandon():
                    log.warning("abandoned in-flight fetch of %s at shutdown", job.url)
            finally:
                self._store_unstored()  # what was fetched is stored, even when the loop failed

    def close(self) -> None:
        self.fetches.close()
        self.fetcher.close()

    def _in_flight(self) -> int:
        """Fetches submitted and not yet taken back."""
        return len(self.fetches.in_flight)

    def _dispatch(self) -> None:
        """Start queued fetches while there is room."""
        while self._in_flight() < self.cfg.concurrency and (job := self.slots.take()):
            self.fetches.submit(job)

    def _timeout(self) -> float | None:
        idle_close = self.archive.config.storage.warc_idle_close if self.archive.writer.current else None
        store_due = max(0.0, self.unstored_since + STORE_LATENCY - time.monotonic()) if self.unstored else None
        candidates = [t for t in (self.slots.seconds_until_ready() if self._in_flight() < self.cfg.concurrency
                                  else None, idle_close, store_due) if t is not None]
        return min(candidates) if candidates else None

    def _wait_and_store(self, timeout: float | None) -> None:
        finished = self.fetches.wait(timeout)
        for job, _ in finished:
            self.slots.done(job)
        results = [(job, ex) for job, ex in finished if not isinstance(ex, BaseException)]
        if results:
            self._take(results)
        if self.unstored and (not self._in_flight() or len(self.unstored) >= STORE_BATCH
                              or self.unstored_bytes >= min(STORE_BATCH_BYTES, self.archive.writer.room())
                              or time.monotonic() - self.unstored_since >= STORE_LATENCY):
            self._store_unstored()
        self.archive.writer.close_if_idle(self.archive.config.storage.warc_idle_close)
        for _, failure in finished:
            if isinstance(failure, BaseException):
                raise failure  # a bug in an exchange; what came back is taken, and stored by run()

    def _finish_in_flight(self, grace: float) -> None:
        deadline = time.monotonic() + grace
        while self._in_flight() and time.monotonic() < deadline:
            self._wait_and_store(max(0.0, deadline - time.monotonic()))

    def _take_inbox(self) -> None:
        while not self.inbox.empty():
            seeds = self.inbox.get()
            batch = Batch(os.urandom(16).hex())
            self.batches[batch.id] = batch
            for seed in seeds:
                batch.summary.seeds_ok[seed] = False
                batch.pending[seed] = 0
                self._enqueue(batch, Job(seed, Reached(seed, "seed", snapshot=batch.id, chain=True),
                                         is_page=not self.is_source(seed), seed_chain=True))
            if not seeds:
                self._finish_batch(batch)

    def _fetch(self, job: Job) -> Exchange:
        """The exchange (on a fetch thread), with the host's DNS answer the first time the
        snapshot reaches that host directly."""
        dns = self._resolve_once(job)
        if self.robots and not self.robots.allowed(job.url, self.cfg.user_agent, job.reach):
            ex = Exchange(job.url, self.archive.clock(), error="blocked by robots.txt")
        else:
            ex = self.fetcher.fetch(job.url, self.batches[job.reached.snapshot].cookies,
                                    seconds=self.cfg.total_timeout - job.spent, reach=job.reach,
                                    credentials=url_host(job.url) == url_host(job.reached.seed))
        ex.dns = dns
        return ex

    def _resolve_once(self, job: Job) -> tuple[str, list[str]] | None:
        """Through a proxy nothing is looked up here (the proxy resolves, and a local
        answer would be a leak, and false evidence)."""
        if self.fetcher.proxy_for(job.url):
            return None
        parts = urlsplit(job.url)
        key = (job.reached.snapshot, parts.hostname or "")
        with self._resolving:
            if key in self._resolved:
                return None
            self._resolved.add(key)
        host = parts.hostname or ""
        return host, resolve(self.fetcher, host, parts.port or DEFAULT_PORTS[parts.scheme])

    # ---- storing and following -------------------------------------------------------

    def _take(self, results: list[tuple[Job, Exchange]]) -> None:
        """Parse exchanges that came back and start fetching what they lead to; they are
        stored later, in a batch (see STORE_BATCH)."""
        if not self.unstored:
            self.unstored_since = time.monotonic()
        for job, ex in results:
            prepared = self._prepare(job, ex)
            self._follow(self.batches[job.reached.snapshot], job, ex, prepared[1])
            self.unstored.append((job, ex, prepared))
            self.unstored_bytes += ex.body_length
        if not self.stopping:
            self._dispatch()  # more exchanges start before this batch is stored

    def _store_unstored(self) -> None:
        """Store the exchanges taken so far as one batch (its cost: see STORE_BATCH), and
        only then report them."""
        taken, self.unstored, self.unstored_bytes = self.unstored, [], 0
        if not taken:
            return
        try:
            stored = self.archive.store([(ex, job.reached, links) for job, ex, (_, links, _) in taken])
            self._observe_stored(taken, [capture_id for _, capture_id in stored])
            for (job, _, _), (result, _) in zip(taken, stored):
                batch = self.batches[job.reached.snapshot]
                if self.summaries:
                    batch.summary.results.append(result)
                batch.by_seed.setdefault(job.reached.seed, []).append(result)
                self._job_done(batch, job.reached.seed)
                self.on_result(result)  # last: once reported, the seed's bookkeeping is done too
        finally:
            for _, ex, _ in taken:
                ex.close()

    def _observe_stored(self, taken: list, capture_ids: list[int]) -> None:
        """The articles of the seeds' pages just stored, and the histories of the seeds
        they complete: one transaction (a flock, BEGIN, COMMIT) per batch, not two per seed."""
        completing = Counter((job.reached.snapshot, job.reached.seed) for job, _, _ in taken)
        with self.archive.catalog.transaction():
            for (job, ex, (article, _, follows)), capture_id in zip(taken, capture_ids):
                if job.seed_chain and not follows and not self._retrying(job, ex):
                    batch = self.batches[job.reached.snapshot]
                    self._observe(batch, job, ex, article, capture_id)
                    batch.ends[job.reached.seed] = replace(job, url=ex.url)
            for (snapshot, seed), count in completing.items():
                batch = self.batches[snapshot]
                if batch.pending[seed] == count and seed in batch.observed:
                    history, unconfirmed = self.observer.settle(seed)
                    # The page may have been stored batches before its requisites were.
                    end = batch.ends.pop(seed, None)
                    if unconfirmed and end is not None and not end.confirm:
                        self._confirm(batch, end)
                    if self.summaries:
                        batch.summary.histories[seed] = history

    def _confirm(self, batch: Batch, end: Job) -> None:
        """Fetch the page whose capture showed a change (or was its first) once more, after
        the politeness delay: history keeps as edits only what both renders show (see
        history.py)."""
        delay = max(self.archive.config.detect.confirm_delay, self.cfg.per_host_delay)
        reached = replace(end.reached, role="confirm", via=end.url)
        batch.pending[end.reached.seed] += 1
        self.slots.add(Job(end.url, reached, is_page=True, seed_chain=True, confirm=True, reach=end.reach), after=delay)
        log.info("confirming the capture of %s with a second render in %.0f s", end.url, delay)

    def _prepare(self, job: Job, ex: Exchange) -> tuple[Article | None, list[Link], bool]:
        """(the article of a page, links found, whether a redirect will be followed). Parsing
        never costs the capture: a parser failure is recorded with the exchange, which is stored."""
        target = self._redirect_target(ex)
        follows = target is not None and job.redirects < self.cfg.max_redirects and not job.confirm
        if target and not follows and not job.confirm:
            ex.error = f"stopped after {self.cfg.max_redirects} redirects (max_redirects)"
        body = self._parseable_body(ex)
        try:
            article, links = self._read(job, ex, body)
        except Exception as e:  # noqa: BLE001 - a bug in a parser must not lose the response
            log.error("could not parse %s: %s: %s", ex.url, type(e).__name__, e)
            ex.error = ex.error or f"not parsed: {type(e).__name__}: {e}"
            article, links = None, []
        return article, links, follows

    def _parseable_body(self, ex: Exchange) -> bytes | None:
        """The decoded body of a 2xx HTML page or stylesheet, for links and extraction."""
        ctype = ex.header("Content-Type").lower()
        if ex.status is None or not 200 <= ex.status < 300 or not ("html" in ctype or "css" in ctype or not ctype):
            return None
        return decode_body(ex.read_body(PARSE_LIMIT), ex.header("Content-Encoding"))

    def _read(self, job: Job, ex: Exchange, body: bytes | None) -> tuple[Article | None, list[Link]]:
        """The links of a page or stylesheet, and the article of a page (seeds and
        cross-referenced pages), from one parse: requisites first, as the article
        extractor drops scripts and styles from the tree."""
        if body is None:
            return None, []
        ctype = ex.header("Content-Type").lower()
        if "css" in ctype:
            return None, css_links(body, ex.url, ctype)
        if not is_html(ctype, body):
            return None, []
        doc = parse_html(decode_text(body, ctype))
        requisites = requisites_of(doc, ex.url)
        if not job.is_page:
            return None, requisites
        article = article_of(doc if may_be_html(body, ctype) else None, ex.url, self.cfg.cta_texts)
        # Cross-references as the article extractor sees them, so what is followed is
        # exactly what edit detection tracks.
        refs = [(READ, r) for r in article.read_refs] + [(BODY, r) for r in article.links]
        return article, [Link(r.url, kind, r.text, i) for i, (kind, r) in enumerate(refs)] + requisites

    def _observe(self, batch: Batch, job: Job, ex: Exchange, article: Article | None, capture_id: int) -> None:
        self.observer.observe(capture_id, job.reached.seed, ex.url, ex.header, article)
        batch.observed.add(job.reached.seed)

    def _follow(self, batch: Batch, job: Job, ex: Exchange, links: list[Link]) -> None:
        if job.confirm:
            return  # evidence of one decision: its page's links and requisites are captured already
        if self._transient(job, ex):
            if self._retrying(job, ex):
                self._retry(batch, job, ex)
                return
            ex.note(f"not retried: {self.cfg.total_timeout:g} s spent on this URL (total_timeout)")
        target = self._redirect_target(ex)
        if target and job.redirects < self.cfg.max_redirects:
            self._follow_redirect(batch, job, ex, target)
        elif job.seed_chain:
            batch.summary.seeds_ok[job.reached.seed] = ex.status is not None
        self._follow_links(batch, job, ex, links)

    def _follow_links(self, batch: Batch, job: Job, ex: Exchange, links: list[Link]) -> None:
        """Queue the requisites and cross-references not seen yet: up to
        max_links_per_page of each kind from this page (so neither crowds out the other),
        and max_urls_per_snapshot in all."""
        hops, reach = job.reached.hops, self._reach_from(ex)
        followed: Counter[bool] = Counter()  # by is_page: cross-references, requisites
        over_page: set[str] = set()
        over_snapshot: set[str] = set()
        for link in links:
            if link.url in batch.seen:  # as _enqueue would find; most shared requisites, before a Job is made
                continue
            if link.kind == REQUISITE and self.cfg.requisites:
                reached, is_page = replace(job.reached, role=REQUISITE, via=ex.url, chain=False), False
            elif link.kind in self.cfg.follow and hops < self.cfg.depth:
                reached, is_page = replace(job.reached, role=link.kind, via=ex.url, hops=hops + 1, chain=False), True
            else:
                continue
            if followed[is_page] >= self.cfg.max_links_per_page:
                over_page.add(link.url)
            elif batch.fetches >= self.cfg.max_urls_per_snapshot:
                over_snapshot.add(link.url)
            elif self._enqueue(batch, Job(link.url, reached, is_page=is_page, reach=reach)):
                followed[is_page] += 1
        self._note_bounds(batch, ex, len(over_page), len(over_snapshot))

    def _note_bounds(self, batch: Batch, ex: Exchange, over_page: int, over_snapshot: int) -> None:
        """Links a bound kept from being fetched: said in the capture's error and the log."""
        if over_page:
            ex.note(f"{over_page} links not followed (max_links_per_page {self.cfg.max_links_per_page})")
            log.warning("%s: %d links not followed (max_links_per_page %d)", ex.url, over_page,
                        self.cfg.max_links_per_page)
        if over_snapshot:
            ex.note(f"{over_snapshot} links not followed (max_urls_per_snapshot {self.cfg.max_urls_per_snapshot})")
            if not batch.full:
                batch.full = True
                log.warning("snapshot %s reached max_urls_per_snapshot (%d): the links of further pages are "
                            "listed in their capture metadata, not fetched", batch.id, self.cfg.max_urls_per_snapshot)

    def _reach_from(self, ex: Exchange) -> frozenset[str] | None:
        """The non-public addresses what a response leads to may connect to: the one it
        came from, if it is one (a page on a private host may lead within it); any with
        allow_private_addresses."""
        if self.cfg.allow_private_addresses:
            return None
        address = ex.ip or literal_address(ex.url)  # through a proxy, the address the URL names
        return frozenset({address}) if address and not is_public(address) else frozenset()

    def _transient(self, job: Job, ex: Exchange) -> bool:
        """429, 503 and failed connections that received nothing are worth another
        attempt, each response kept as evidence (a server that sent something else than
        HTTP has answered)."""
        failed = ex.status is None and ex.request_head is not None and not ex.raw
        return (ex.status in RETRY_STATUSES or failed) and job.attempt < self.cfg.retries and not job.confirm

    def _retrying(self, job: Job, ex: Exchange) -> bool:
        """Transient, and the URL's attempts have not taken total_timeout yet."""
        return self._transient(job, ex) and job.spent + ex.elapsed < self.cfg.total_timeout

    def _retry(self, batch: Batch, job: Job, ex: Exchange) -> None:
        delay = retry_delay(ex.header("Retry-After"), job.attempt, self.archive.clock())
        self.slots.hold(url_host(job.url), delay)
        log.info("retrying %s in %.0f s (attempt %d of %d)", job.url, delay, job.attempt + 2, self.cfg.retries + 1)
        batch.pending[job.reached.seed] += 1
        self.slots.add(replace(job, attempt=job.attempt + 1, spent=job.spent + ex.elapsed))

    @staticmethod
    def _redirect_target(ex: Exchange) -> str | None:
        if ex.status not in REDIRECT_STATUSES or not ex.header("Location"):
            return None
        try:
            return normalize_url(ex.header("Location"), ex.url)
        except UsageError:
            return None

    def _follow_redirect(self, batch: Batch, job: Job, ex: Exchange, target: str) -> None:
        reached = replace(job.reached, role="redirect", via=ex.url)
        hop = replace(job, url=target, reached=reached, redirects=job.redirects + 1, attempt=0, spent=0.0,
                      reach=self._reach_from(ex))
        if self._enqueue(batch, hop):
            return
        if ex.header("Set-Cookie"):
            # Back to a URL fetched before, with a cookie it did not have: a consent wall
            # that sets its cookie and sends the reader back to the article. Fetched again
            # (max_redirects bounds it).
            batch.pending[job.reached.seed] += 1
            self.slots.add(hop)
        elif job.seed_chain:
            batch.summary.seeds_ok[job.reached.seed] = True  # a loop: the chain's responses are captured

    def _enqueue(self, batch: Batch, job: Job) -> bool:
        if job.url in batch.seen:
            return False
        batch.seen.add(job.url)
        batch.pending[job.reached.seed] += 1
        batch.fetches += 1
        self.slots.add(job)
        return True

    def _job_done(self, batch: Batch, seed: str) -> None:
        batch.pending[seed] -= 1
        if batch.pending[seed] == 0:
            self._finish_seed(batch, seed)
            self._finish_batch_if_done(batch)

    def _finish_batch_if_done(self, batch: Batch) -> None:
        """Done when none of its seeds has a URL left to store."""
        if not any(batch.pending.values()):
            self._finish_batch(batch)

    def _finish_seed(self, batch: Batch, seed: str) -> None:
        """Every URL the seed reached is stored, and its history is up to date."""
        self.on_seed_done(batch, seed)
        batch.by_seed.pop(seed, None)  # kept for on_seed_done only

    def _finish_batch(self, batch: Batch) -> None:
        del self.batches[batch.id]
        if self.archive.since_checkpoint:
            self.archive.checkpoint()
        with self._resolving:
            self._resolved = {key for key in self._resolved if key[0] != batch.id}
        if batch.observed:
            self.observer.snapshot_done()
        batch.summary.warcs = sorted({r.warc for r in batch.summary.results})
        self.on_batch_done(batch)


def resolve(fetcher: Fetcher, host: str, port: int) -> list[str]:
    """Every address getaddrinfo gives for the host (the fetch that follows connects to
    them without asking again)."""
    try:
        infos = fetcher.look_up(host, port)
    except (OSError, UnicodeError) as e:
        return [f"error: {e}"]
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def retry_delay(retry_after: str, attempt: int, now: datetime) -> float:
    """Seconds before a retry: the server's Retry-After (seconds or HTTP date) if it gave
    one, else exponential back-off; capped at MAX_RETRY_AFTER."""
    seconds = RETRY_BASE_SECONDS * 2 ** attempt
    value = retry_after.strip()
    if value.isdigit():
        seconds = float(value)
    elif value:
        try:
            when = email.utils.parsedate_to_datetime(value)
            seconds = (when - now).total_seconds() if when.tzinfo else seconds
        except (TypeError, ValueError):
            pass
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


ROBOTS_MAX_AGE = 24 * 3600.0  # seconds a host's robots.txt is kept, as Google keeps it
ROBOTS_RETRY = 3600.0  # after a 5xx or no answer: the rules kept so far are used an hour more
ROBOTS_REDIRECTS = 5  # RFC 9309 2.3.1.2: at least five


class RobotsPolicy:
    """robots.txt per host, fetched again once a day: `archiver run` goes on for months
    (only with robots = "obey")."""

    def __init__(self, fetcher: Fetcher, clock: Callable[[], float] = time.monotonic):
        self.fetcher = fetcher
        self.clock = clock
        self.new_parser = urllib.robotparser.RobotFileParser
        self.parsers: dict[str, tuple[urllib.robotparser.RobotFileParser, float]] = {}  # host -> (parser, when to fetch again)
        self.locks: dict[str, threading.Lock] = {}  # per host: one fetch thread asks for its robots.txt

    def allowed(self, url: str, agent: str, reach: frozenset[str] | None = None) -> bool:
        """Whether robots.txt lets agent fetch url. ``reach``: the addresses the fetch of
        url may reach; a robots.txt it may not reach says nothing (the fetch of url is
        then refused, and recorded, itself)."""
        scheme, host = url.split("://", 1)[0], url_host(url)
        with self.locks.setdefault(host, threading.Lock()):
            kept = self.parsers.get(host)
            if kept is None or self.clock() >= kept[1]:
                fetched = self._fetch(scheme, host, kept, reach)
                if fetched is None:
                    return True
                kept = self.parsers[host] = fetched
        return kept[0].can_fetch(agent, url)

    def _fetch(self, scheme: str, host: str, kept: tuple[urllib.robotparser.RobotFileParser, float] | None,
               reach: frozenset[str] | None = None) -> tuple[urllib.robotparser.RobotFileParser, float] | None:
        """(the rules, when to fetch them again), as RFC 9309 2.3.1 says: redirects are
        followed (up to five), a 4xx means no rules; unreachable (a 5xx, 429, a cut body,
        no answer, too many redirects) keeps the rules fetched before, or disallows all
        when there are none, and is tried again in an hour. None: the host is at an
        address the fetch may not reach (a redirect there is unreachable)."""
        now = self.clock()
        url = f"{scheme}://{host}/robots.txt"
        for hop in range(ROBOTS_REDIRECTS + 1):
            ex = self.fetcher.fetch(url, reach=reach, credentials=False)  # robots.txt is public
            if ex.refused and hop == 0:
                return None
            location = ex.header("Location") if ex.status in REDIRECT_STATUSES else ""
            if not location:
                break
            ex.close()
            url = urljoin(url, location)
        try:
            status = ex.status
            if status is None or status >= 500 or status == 429 or status in REDIRECT_STATUSES or ex.truncated:
                return (kept[0] if kept else self._rules(["User-agent: *", "Disallow: /"])), now + ROBOTS_RETRY
            body = decode_body(ex.read_body(1_000_000), ex.header("Content-Encoding"))
            return self._rules(body.decode("utf-8", "replace").splitlines() if status == 200 else []), \
                now + ROBOTS_MAX_AGE
        finally:
            ex.close()

    def _rules(self, lines: list[str]) -> urllib.robotparser.RobotFileParser:
        parser = self.new_parser()
        parser.parse(lines)
        return parser

