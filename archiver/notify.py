"""Change events out to where people look: webhooks and Apprise targets.

When a tracked URL's history is updated, its new change events (the ``archiver changes
--json`` objects, with replay links) are put in a queue in the catalog, one row per
target (``NotifyStore``); a delivery thread sends what is due, and a failed delivery is
tried again with doubling waits, up to ``[notify] attempts``. The queue is the state, so
delivery is at least once across restarts, and an event is queued once per target
(its key is unique): a restart neither loses nor repeats one. Capture never waits for a
target: delivery runs on its own thread and connection.

Target URLs carry tokens and the webhook secret is a key: neither is ever logged,
written into a WARC or an export (config.public_dict leaves them out), or stored in the
queue (a target is known there by a digest of its URL). Delivery errors are named by
their kind (HTTP 500, ConnectTimeout), never by the exception's text, which would
repeat the URL.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable
from urllib.parse import quote, urlsplit

import requests

from archiver.catalog import Catalog
from archiver.version import __version__
from archiver.config import Config, NotifyConfig
from archiver.follower import is_source
from archiver.edits.report import change_event_json, replay_url
from archiver.seeds import Seed
from archiver.archive.warcfile import warc_date

log = logging.getLogger("archiver")

SHORT_FIELDS = 200  # before -> after shown in full up to this many characters
SAMPLE_EVENT = {"url": "https://news.example/2026/11/27/sample-article", "kind": "title",
                "before": "Minister denies report", "after": "Minister confirms report",
                "from": {"version": 1, "timestamp": "2026-11-27T09:00:00.000000Z", "warc": "sample.warc.gz",
                         "offset": 0},
                "to": {"version": 2, "timestamp": "2026-11-27T12:00:00.000000Z", "warc": "sample.warc.gz",
                       "offset": 0}, "unconfirmed": False, "sample": True}


# ---- targets and messages (pure) ---------------------------------------------------------

@dataclass(frozen=True)
class Target:
    kind: str  # webhook | apprise
    url: str  # secret: never logged
    number: int

    @property
    def id(self) -> str:
        """How the queue knows the target: a digest, not the URL (which holds tokens)."""
        return hashlib.sha256(f"{self.kind} {self.url}".encode()).hexdigest()[:32]

    @property
    def label(self) -> str:
        """What a log line may say: a webhook's host, an Apprise URL's scheme."""
        parts = urlsplit(self.url)
        where = (parts.hostname or "") if self.kind == "webhook" else f"{parts.scheme}://"
        return f"{self.kind} {self.number} ({where})"


def targets(cfg: NotifyConfig) -> list[Target]:
    return ([Target("webhook", u, i) for i, u in enumerate(cfg.webhooks, 1)]
            + [Target("apprise", u, i) for i, u in enumerate(cfg.apprise, 1)])


def event_of(row: Any, replay_base: str, diff_link: str = "") -> dict[str, Any]:
    """A change row as ``archiver changes --json`` gives it, with its evidence links: the
    replays of both captures, and the change page of archiver serve where there is one."""
    return with_links(change_event_json(row), replay_base, diff_link)


def with_links(event: dict[str, Any], replay_base: str, diff_link: str) -> dict[str, Any]:
    links = {"before": replay_url(replay_base, event["from"]["timestamp"], event["url"]),
             "after": replay_url(replay_base, event["to"]["timestamp"], event["url"])}
    if diff_link:
        links["diff"] = (f"{diff_link}/diff?url={quote(event['url'], safe='')}"
                         f"&from={event['from']['version']}&to={event['to']['version']}")
    return {**event, "links": links}


def event_key(event: dict[str, Any]) -> str:
    """The same change, whenever its history is rebuilt, has the same key."""
    ident = [event["url"], event["kind"], event["before"], event["after"], event["to"]["warc"], event["to"]["offset"]]
    return hashlib.sha256(json.dumps(ident, ensure_ascii=False).encode()).hexdigest()


def describe(event: dict[str, Any]) -> str:
    """What changed, in words: before -> after for a short field, the first changed
    sentence of a body edit."""
    kind, before, after = event["kind"], event["before"], event["after"]
    flag = " (unconfirmed: no second render has shown it yet)" if event.get("unconfirmed") else ""
    if kind == "body":
        if not after:
            return f"text deleted: \u201c{_cut(before)}\u201d{flag}"
        was = f" (was \u201c{_cut(before)}\u201d)" if before else ""
        return f"text changed: \u201c{_cut(after)}\u201d{was}{flag}"
    return f"{kind}: \u201c{_cut(before)}\u201d -> \u201c{_cut(after)}\u201d{flag}"


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SHORT_FIELDS else text[:SHORT_FIELDS - 1] + "\u2026"


def _link(event: dict[str, Any]) -> str:
    """Where a reader sees the change: archiver serve's change page, else the replay."""
    return event["links"].get("diff") or event["links"]["after"]


def message(events: list[dict[str, Any]]) -> tuple[str, str]:
    """(title, body) of one message about one event, or a digest of several."""
    if len(events) == 1:
        e = events[0]
        return f"archiver: {e['kind']} changed on {e['url']}", f"{describe(e)}\ndiff: {_link(e)}"
    lines = [f"- {e['url']}: {describe(e)}\n  diff: {_link(e)}" for e in events]
    return f"archiver: {len(events)} changes", "\n".join(lines)


def wanted(event: dict[str, Any], seed: Seed | None, cfg: NotifyConfig) -> bool:
    """Whether the [notify] filters (tags, sites, kinds) let the event through."""
    if cfg.kinds and event["kind"] not in cfg.kinds:
        return False
    host = (urlsplit(event["url"]).hostname or "").lower()
    if cfg.sites and not any(host == s or host.endswith("." + s) for s in cfg.sites):
        return False
    tags = {v for k, v in seed.options if k == "tag"} if seed else set()
    return not cfg.tags or bool(tags & set(cfg.tags))


# ---- sending ----------------------------------------------------------------------------

def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send(target: Target, events: list[dict[str, Any]], cfg: NotifyConfig, digest: bool = False) -> str:
    """Deliver; "" on success, else what went wrong (never the URL)."""
    if target.kind == "webhook":
        payload = {"events": events} if digest else events[0]
        return post_webhook(target.url, json.dumps(payload, ensure_ascii=False).encode(), cfg)
    return send_apprise(target.url, *message(events))


def post_webhook(url: str, body: bytes, cfg: NotifyConfig) -> str:
    headers = {"Content-Type": "application/json", "User-Agent": f"archiver/{__version__}"}
    if cfg.secret:
        headers["X-Archiver-Signature"] = signature(cfg.secret, body)
    try:
        response = requests.post(url, data=body, headers=headers, timeout=cfg.timeout, allow_redirects=False)
        response.close()
    except requests.RequestException as e:
        return type(e).__name__
    return "" if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"


def send_apprise(url: str, title: str, body: str) -> str:
    import apprise  # its plugins for a hundred services load with it: only for archives that use it

    logging.getLogger("apprise").setLevel(logging.CRITICAL + 1)  # its messages may name the URL
    notifier = apprise.Apprise()
    if not notifier.add(url):
        return "not an Apprise URL it supports"
    return "" if notifier.notify(title=title, body=body) else "not delivered"


def send_samples(cfg: NotifyConfig, replay_base: str) -> list[tuple[Target, str]]:
    """archiver notify test: a sample event to every target, now; (target, error) each."""
    event = with_links(SAMPLE_EVENT, replay_base, cfg.diff_link)
    return [(t, send(t, [event], cfg)) for t in targets(cfg)]


# ---- the queue (catalog tables of its own) ---------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS notify_queue (
    id INTEGER PRIMARY KEY,
    target TEXT NOT NULL,           -- Target.id: a digest of the URL, never the URL
    event_key TEXT NOT NULL,
    event TEXT NOT NULL,            -- JSON, as POSTed
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',  -- pending | sent | failed (given up)
    last_error TEXT NOT NULL DEFAULT '',
    done_at REAL,
    UNIQUE (target, event_key)
);
CREATE INDEX IF NOT EXISTS notify_due ON notify_queue (state, target, next_try);
CREATE TABLE IF NOT EXISTS notify_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
)
"""


class NotifyStore:
    """The delivery queue, over the catalog's connection and its transactions."""

    def __init__(self, catalog: Catalog):
        self.catalog, self.db = catalog, catalog.db
        catalog.add_tables(SCHEMA, "notify_queue")

    def _exists(self) -> bool:
        return self.catalog.has_table("notify_queue")

    def since(self, now: str) -> str:
        """Change events from this time on are notified: when targets were first configured
        (an archive's older changes are not sent to a target added today)."""
        with self.catalog.transaction():
            self.db.execute("INSERT OR IGNORE INTO notify_meta VALUES ('since', ?)", (now,))
            return self.db.execute("SELECT value FROM notify_meta WHERE key = 'since'").fetchone()[0]

    def enqueue(self, rows: list[tuple[str, str, str]], now: float) -> int:
        """(target id, event key, event JSON) rows not queued before; how many were new."""
        with self.catalog.transaction():
            before = self.db.total_changes
            self.db.executemany("INSERT OR IGNORE INTO notify_queue (target, event_key, event, created, next_try) "
                                "VALUES (?, ?, ?, ?, ?)", [(t, k, e, now, now) for t, k, e in rows])
            return self.db.total_changes - before

    def _rows(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        cursor = self.db.cursor()
        cursor.row_factory = sqlite3.Row
        return cursor.execute(sql, args).fetchall()

    def due(self, target: str, now: float) -> list[sqlite3.Row]:
        return self._rows("SELECT id, event, created, attempts FROM notify_queue WHERE state = 'pending' "
                               "AND target = ? AND next_try <= ? ORDER BY id", (target, now))

    def oldest_pending(self, target: str) -> float | None:
        row = self.db.execute("SELECT min(created) FROM notify_queue WHERE state = 'pending' AND target = ?",
                              (target,)).fetchone()
        return row[0]

    def next_try(self) -> float | None:
        return self.db.execute("SELECT min(next_try) FROM notify_queue WHERE state = 'pending'").fetchone()[0]

    def sent(self, ids: list[int], now: float) -> None:
        with self.catalog.transaction():
            self.db.executemany("UPDATE notify_queue SET state = 'sent', done_at = ?, attempts = attempts + 1, "
                                "last_error = '' WHERE id = ?", [(now, i) for i in ids])

    def retry(self, rows: list[tuple[int, int]], error: str, now: float, cfg: NotifyConfig) -> int:
        """(id, attempts so far) of failed deliveries: tried again after a doubling wait,
        or given up after cfg.attempts; how many were given up."""
        updates = []
        for row_id, attempts in rows:
            tries = attempts + 1
            wait = min(cfg.retry * 2 ** min(tries - 1, 40), cfg.retry_max)
            state = "failed" if tries >= cfg.attempts else "pending"
            updates.append((tries, now + wait, state, error, now if state == "failed" else None, row_id))
        with self.catalog.transaction():
            self.db.executemany("UPDATE notify_queue SET attempts = ?, next_try = ?, state = ?, last_error = ?, "
                                "done_at = ? WHERE id = ?", updates)
        return sum(u[2] == "failed" for u in updates)

    def counts(self) -> dict[str, int]:
        if not self._exists():
            return {"pending": 0, "failed": 0, "sent": 0}
        found = dict(self.db.execute("SELECT state, count(*) FROM notify_queue GROUP BY state").fetchall())
        return {state: found.get(state, 0) for state in ("pending", "failed", "sent")}

    def failures(self, limit: int = 20) -> list[dict[str, Any]]:
        if not self._exists():
            return []
        rows = self.db.execute("SELECT target, event, attempts, last_error, state FROM notify_queue "
                               "WHERE last_error != '' AND state != 'sent' ORDER BY id DESC LIMIT ?", (limit,))
        return [{"target": t, "url": json.loads(e)["url"], "attempts": a, "error": err, "state": s}
                for t, e, a, err, s in rows]


# ---- the runner's side ----------------------------------------------------------------

class Notifier:
    """Queues the change events of the URLs whose history was just updated."""

    def __init__(self, config: Config, catalog: Catalog, clock: Callable[[], datetime]):
        self.cfg, self.replay_base, self.clock = config.notify, config.replay.base, clock
        self.catalog = catalog
        self.targets = targets(config.notify)
        self.store = NotifyStore(catalog) if self.targets else None
        self._since = self.store.since(warc_date(clock())) if self.store else ""
        self.queued = threading.Event()  # set when something was queued: the delivery thread wakes

    def enqueue(self, urls: Iterable[str], seed_of: Callable[[str], Seed | None]) -> int:
        """Queue the new change events of these tracked URLs. Followed sources (feeds,
        front pages) are not articles: their changes are not sent."""
        if self.store is None:
            return 0
        rows = []
        for row in self.catalog.history.changes_of(list(urls), self._since):
            seed = seed_of(row["tracked_url"])
            if seed is not None and is_source(seed):
                continue
            event = event_of(row, self.replay_base, self.cfg.diff_link)
            if wanted(event, seed, self.cfg):
                text, key = json.dumps(event, ensure_ascii=False), event_key(event)
                rows += [(t.id, key, text) for t in self.targets]
        added = self.store.enqueue(rows, self.clock().timestamp()) if rows else 0
        if added:
            log.info("queued %d notification(s)", added)
            self.queued.set()
        return added

    def catch_up(self, seed_of: Callable[[str], Seed | None]) -> int:
        """At start: queue what a stop between a history update and its queueing left out."""
        if self.store is None:
            return 0
        urls = self.catalog.history.changed_urls(self._since)
        return sum(self.enqueue(urls[i:i + 500], seed_of) for i in range(0, len(urls), 500))


@dataclass
class Delivered:
    sent: int = 0
    failed: int = 0  # tries that failed
    given_up: int = 0


def deliver_due(store: NotifyStore, cfg: NotifyConfig, now: float) -> Delivered:
    """Send what is due to every target; a failing target waits alone (its back-off)."""
    outcome = Delivered()
    for target in targets(cfg):
        rows = store.due(target.id, now)
        if not rows:
            continue
        if cfg.digest:
            oldest = store.oldest_pending(target.id)
            if oldest is not None and now < oldest + cfg.digest:
                continue
            _deliver(store, target, cfg, [rows], now, outcome, digest=True)
        else:
            _deliver(store, target, cfg, [[r] for r in rows], now, outcome)
    return outcome


def _deliver(store: NotifyStore, target: Target, cfg: NotifyConfig, groups: list[list[sqlite3.Row]], now: float,
             outcome: Delivered, digest: bool = False) -> None:
    for i, group in enumerate(groups):
        error = send(target, [json.loads(r["event"]) for r in group], cfg, digest)
        if not error:
            store.sent([r["id"] for r in group], now)
            outcome.sent += len(group)
            continue
        rest = [r for g in groups[i:] for r in g]  # the target is failing: the rest waits with it
        outcome.failed += len(group)
        outcome.given_up += store.retry([(r["id"], r["attempts"]) for r in rest], error, now, cfg)
        log.warning("notification to %s failed (%s): %d event(s) will be tried again", target.label, error, len(rest))
        return


class DeliveryThread:
    """Delivers on its own thread and catalog connection, so that no target, however
    slow or down, holds up capture; woken when something is queued."""

    def __init__(self, config: Config, queued: threading.Event, clock: Callable[[], datetime]):
        self.config, self.queued, self.clock = config, queued, clock
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="notify", daemon=True)

    def start(self) -> None:
        if targets(self.config.notify):
            self.thread.start()

    def stop(self, wait: float) -> None:
        self.stopping.set()
        self.queued.set()
        if self.thread.is_alive():
            self.thread.join(wait)

    def _run(self) -> None:
        catalog = Catalog(self.config.storage.catalog)
        try:
            store = NotifyStore(catalog)
            while not self.stopping.is_set():
                self.queued.clear()
                deliver_due(store, self.config.notify, self.clock().timestamp())
                self.queued.wait(self._wait(store))
        except Exception:  # noqa: BLE001 - a bug here must not stop capture; it is logged
            log.exception("notification delivery stopped")
        finally:
            catalog.close()

    def _wait(self, store: NotifyStore) -> float:
        due = store.next_try()
        if due is None:
            return 3600.0
        if self.config.notify.digest:
            return max(1.0, min(self.config.notify.digest, due - self.clock().timestamp()))
        return max(1.0, due - self.clock().timestamp())


def deliver_now(config: Config, catalog: Catalog, clock: Callable[[], datetime]) -> Delivered:
    """What ``archiver run --once`` does at its end: one round of deliveries."""
    if not targets(config.notify):
        return Delivered()
    return deliver_due(NotifyStore(catalog), config.notify, clock().timestamp())
