"""``archiver run``: keep every tracked URL under watch.

Due times live in the catalog (``schedule`` table), so start-up is one query however many
URLs are tracked, and a restart resumes where the last run stopped: whatever is overdue
is due once, at the first look. One APScheduler job looks for due URLs every ``tick``
seconds and hands them to the crawler, which runs in the main thread. Each tracked URL
is locked (across processes) from dispatch until its snapshot is stored.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from archiver.archive.writer import FetchResult
from archiver.catalog import Catalog
from archiver.config import Config
from archiver.errors import ArchiverError
from archiver.crawl import Batch
from archiver.capture.fetch import utcnow
from archiver.archive.locks import UrlLocks
from archiver.follower import Follower, check_source, is_source
from archiver.notify import DeliveryThread, Notifier, deliver_now
from archiver.pipeline import crawler, open_archive
from archiver.schedule.policy import Schedule, next_due, schedule_of
from archiver.seeds import Seed, load_seeds, url_host

log = logging.getLogger("archiver")


@dataclass(frozen=True)
class Tracked:
    seed: Seed
    schedule: Schedule


def tracked_seeds(config: Config) -> dict[str, Tracked]:
    """seeds/*.txt, each with its schedule (ConfigError names a bad line)."""
    seeds = load_seeds(config.seeds_dir)
    for s in seeds:
        check_source(s)
    return {s.url: Tracked(s, schedule_of(s, config.schedule)) for s in seeds}


def seeds_fingerprint(config: Config) -> tuple:
    return tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in config.seeds_dir.glob("*.txt")))


class Runner:
    """The long-running service: dispatcher (APScheduler job) + crawler (main thread)."""

    def __init__(self, config: Config, clock: Callable[[], datetime] = utcnow,
                 on_result: Callable[[FetchResult], None] = lambda r: None, rng: random.Random | None = None):
        self.config, self.clock = config, clock
        self.rng = rng or random.Random()
        self.archive = open_archive(config, clock)
        self.crawler = crawler(self.archive, on_result, on_seed_done=self._seed_done, summaries=False,
                               is_source=self._is_source)
        self.locks = UrlLocks(config.storage.lock_dir)
        self.dispatch_catalog = Catalog(config.storage.catalog)  # the dispatcher thread's own connection
        self.stop = threading.Event()
        self.running: set[str] = set()
        self._running_lock = threading.Lock()
        self.tracked: dict[str, Tracked] = {}
        self._fingerprint: tuple = ()
        self.dispatched = 0
        self.follower = Follower(config, clock, self._is_tracked, self.crawler.submit)
        self.notifier = Notifier(config, self.archive.catalog, clock)
        self.delivery = DeliveryThread(config, self.notifier.queued, clock)

    # ---- dispatcher (APScheduler's thread, or the caller for --once) -------------------

    def sync_seeds(self) -> None:
        """Re-read seeds/ when it changed; a bad line is reported once and the URLs
        tracked so far stay under watch. At the first reading it is raised: the command
        fails, naming the line."""
        fingerprint = seeds_fingerprint(self.config)
        if fingerprint == self._fingerprint:
            return
        first, self._fingerprint = not self._fingerprint, fingerprint
        try:
            self.tracked = tracked_seeds(self.config)
        except ArchiverError as e:
            if first:
                raise
            log.error("seed files not reloaded: %s", e)
            return
        added, removed = self.dispatch_catalog.schedule.sync(
            {url: url_host(url) for url in self.tracked}, self.clock().timestamp())
        log.info("tracking %d URLs (%d new, %d no longer tracked)", len(self.tracked), added, removed)

    def dispatch(self) -> int:
        """Hand due URLs (not already running here or elsewhere) to the crawler, keeping at
        most two batches waiting in it: a backlog beyond that would only be queued in
        memory, and would make every look at the schedule slower."""
        if self.stop.is_set():
            return 0
        self.sync_seeds()
        now = self.clock().timestamp()
        with self._running_lock:
            room = min(self.config.schedule.batch, 2 * self.config.schedule.batch - len(self.running))
            due = self.dispatch_catalog.schedule.due(now, room, self.running) if room > 0 else []
            taken = [url for url in due if self.locks.acquire(url)]
            self.running.update(taken)  # from here on, every taken URL is released when its snapshot is stored
        if taken:
            self.crawler.submit(taken)
            self.dispatched += len(taken)
            log.info("dispatching %d due URL(s)", len(taken))
            self.dispatch_catalog.schedule.mark_started(taken, now)
        return len(taken)

    # ---- crawler thread --------------------------------------------------------------------

    def _seed_done(self, batch: Batch, seed: str) -> None:
        """A seed's snapshot is stored: schedule it again, record how its hosts answered,
        bring in what a followed source lists, queue notifications of its changes."""
        if self.follower.is_child(seed):  # a sitemap index's child, captured for its source
            self.follower.read(seed, None, _last_of_chain(batch, seed))
            return
        now = self.clock()
        tracked = self.tracked.get(seed)
        schedule = tracked.schedule if tracked else schedule_of(Seed(seed), self.config.schedule)
        due = next_due(schedule, self.config.schedule, now, self._quiet_since(seed), self.rng)
        self.archive.catalog.schedule.mark_finished([(seed, due.timestamp(), _result_of(batch, seed), now.timestamp())])
        sc = self.config.schedule
        self.archive.catalog.schedule.record_host_outcomes(_host_outcomes(batch, seed), now.timestamp(), sc.host_failures,
                                                  sc.host_backoff, sc.host_backoff_max)
        if tracked is not None and is_source(tracked.seed):
            self.follower.read(seed, tracked.seed, _last_of_chain(batch, seed))
        self.notifier.enqueue([seed], self._seed_of)
        with self._running_lock:
            self.running.discard(seed)
            self.locks.release(seed)

    def _is_source(self, url: str) -> bool:
        """A followed source, or a child sitemap of one."""
        seed = self._seed_of(url)
        return (seed is not None and is_source(seed)) or self.follower.is_child(url)

    def _is_tracked(self, url: str) -> bool:
        return url in self.tracked

    def _seed_of(self, url: str) -> Seed | None:
        tracked = self.tracked.get(url)
        return tracked.seed if tracked else None

    def _quiet_since(self, url: str) -> datetime:
        """When the article last changed (its newest version began), else when first tracked."""
        changed = self.archive.catalog.history.last_change(url)
        if changed:
            return datetime.strptime(changed, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        added = self.archive.catalog.schedule.added_at(url)
        return datetime.fromtimestamp(added, timezone.utc) if added is not None else self.clock()

    # ---- running -----------------------------------------------------------------------------

    def run_once(self) -> int:
        """Capture everything due now, a batch at a time, then return (for cron and tests)."""
        try:
            self.sync_seeds()
            self.notifier.catch_up(self._seed_of)
            count = 0
            while True:  # until nothing is due and no reading of a source brought anything
                taken = self.dispatch()
                count += taken
                self.crawler.run()
                if not self.follower.wait() and not taken:
                    break
            deliver_now(self.config, self.archive.catalog, self.clock)
            return count
        finally:
            self.close()

    def run_forever(self) -> None:
        """Until SIGTERM or SIGINT: then stop dispatching, let in-flight fetches finish
        within the grace period, close the WARC files."""
        try:
            self.sync_seeds()  # in this thread: a bad seed line stops the start
            self.notifier.catch_up(self._seed_of)
        except BaseException:
            self.close()
            raise
        self.delivery.start()
        scheduler = BackgroundScheduler(timezone=timezone.utc)
        scheduler.add_job(self.dispatch, IntervalTrigger(seconds=self.config.schedule.tick),
                          next_run_time=datetime.now(timezone.utc), coalesce=True, max_instances=1,
                          misfire_grace_time=None, id="dispatch")
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        scheduler.start()
        try:
            self.crawler.run(self.stop, grace=self.config.schedule.shutdown_grace)
        finally:
            scheduler.shutdown(wait=True)  # a dispatch in progress finishes before close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.close()

    def _on_signal(self, signum: int, frame) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        self.stop.set()
        self.crawler.wake()

    def close(self) -> None:
        self.delivery.stop(self.config.schedule.shutdown_grace)
        self.follower.close(self.config.schedule.shutdown_grace)
        self.crawler.close()
        self.archive.close()  # closes (renames) the open WARC file
        self.dispatch_catalog.close()
        self.locks.release_all()


def _last_of_chain(batch: Batch, seed: str) -> FetchResult | None:
    """The last response of the seed's own redirect chain."""
    chain = [r for r in batch.by_seed.get(seed, []) if r.role in ("seed", "redirect")]
    return chain[-1] if chain else None


def _result_of(batch: Batch, seed: str) -> str:
    chain = [r for r in batch.by_seed.get(seed, []) if r.role in ("seed", "redirect")]
    if not chain:
        return "not captured"
    last = chain[-1]
    return f"HTTP {last.status}" if last.status is not None else f"failed: {last.error}"


def _host_outcomes(batch: Batch, seed: str) -> dict[str, str]:
    """The host of the seed's own chain: "" if its last answer was a real answer (404
    included), else the error. Requisites and cross-references elsewhere do not count."""
    outcomes: dict[str, str] = {}
    for r in batch.by_seed.get(seed, []):
        if r.role not in ("seed", "redirect"):
            continue
        failed = r.status is None or r.status >= 500 or r.status == 429
        outcomes[url_host(r.url)] = (r.error or f"HTTP {r.status}") if failed else ""
    return outcomes
