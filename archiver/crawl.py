"""The crawl loop: a frontier kept polite (capture/politeness.py), exchanges in flight
on fetch threads (capture/pool.py), and the one thread that stores what comes back, tells
the observe stage, and follows it (retries, redirects, cross-references, requisites).

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

import http.cookiejar
import logging
import os
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Protocol
from urllib.parse import urlsplit

from archiver.archive.writer import Writer, FetchResult, SnapshotSummary
from archiver.archive.records import Reached
from archiver.errors import UsageError
from archiver.page.article import Article, article_of, may_be_html
from archiver.page.extract import (BODY, PARSE_LIMIT, READ, REQUISITE, Link, css_links, decode_body, decode_text, is_html, parse_html,
                      requisites_of)
from archiver.capture.fetch import REDIRECT_STATUSES, Exchange, Fetcher, literal_address, snapshot_cookies
from archiver.capture.politeness import HostSlots, RobotsPolicy, retry_delay
from archiver.capture.pool import FetchPool
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


class Observer(Protocol):
    """What the crawl tells the observe stage (edits/observe.Observer); capture knows nothing
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
