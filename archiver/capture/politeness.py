"""Politeness toward the hosts a crawl reaches: per-host slots and delays, robots.txt,
and how long to wait before a retry."""

from __future__ import annotations

import email.utils
import heapq
import threading
import time
import urllib.robotparser
from collections import deque
from datetime import datetime
from typing import Callable, Generic, Protocol, TypeVar
from urllib.parse import urljoin

from archiver.capture.fetch import REDIRECT_STATUSES, Fetcher
from archiver.page.extract import decode_body
from archiver.seeds import url_host

RETRY_BASE_SECONDS = 2.0
MAX_RETRY_AFTER = 120.0  # a longer Retry-After is not waited for within one snapshot


class Queued(Protocol):
    url: str


J = TypeVar("J", bound=Queued)


class HostSlots(Generic[J]):
    """Per-host politeness: at most ``limit`` requests in flight per host and ``delay``
    seconds between the end of one request and the start of the next. Hosts take turns:
    the host just served goes to the back of the line, so a host late in the order is not
    starved by the ones before it (a scheduler batch lasts until its last host is served)."""

    def __init__(self, delay: float, limit: int, clock: Callable[[], float] = time.monotonic):
        self.delay, self.limit, self.clock = delay, limit, clock
        self.queues: dict[str, deque[J]] = {}
        self.busy: dict[str, int] = {}
        self.ready_at: dict[str, float] = {}   # politeness: next start allowed
        self.held_until: dict[str, float] = {}  # retry back-off or Retry-After
        self.later: list[tuple[float, int, J]] = []  # (not before, order, job), a heap

    def add(self, job: J, after: float = 0.0) -> None:
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

    def take(self) -> J | None:
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

    def done(self, job: J) -> None:
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
