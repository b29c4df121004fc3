"""The schedule store: when each tracked URL is due and how it last went, and hosts
backed off after failing. Not rebuilt by reindex: the WARCs do not hold it."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .db import Database

SCHEMA = """
-- Scheduler state: NOT rebuilt by reindex (it is not in the WARCs). Times are UNIX seconds.
CREATE TABLE IF NOT EXISTS schedule (
    url TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    added REAL NOT NULL,
    next_due REAL NOT NULL,
    last_started REAL,
    last_finished REAL,
    last_result TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS schedule_due ON schedule (next_due);
CREATE TABLE IF NOT EXISTS hosts (
    host TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,     -- consecutive: no response, 5xx, 429
    backoff_until REAL NOT NULL,
    last_error TEXT NOT NULL
);
"""


class Schedule:
    """catalog.schedule"""

    def __init__(self, catalog: Database):
        self.catalog, self.db = catalog, catalog.db

    def sync(self, urls: dict[str, str], now: float) -> tuple[int, int]:
        """Make the schedule hold exactly these URLs (url -> host); new ones are due now.
        Returns (added, removed)."""
        with self.catalog.transaction():  # the read too: another archiver run may be syncing the same seeds
            known = {r[0] for r in self.db.execute("SELECT url FROM schedule")}
            added = [(u, h, now, now) for u, h in urls.items() if u not in known]
            removed = [(u,) for u in known - urls.keys()]
            self.db.executemany("INSERT INTO schedule (url, host, added, next_due) VALUES (?, ?, ?, ?)", added)
            self.db.executemany("DELETE FROM schedule WHERE url = ?", removed)
        return len(added), len(removed)

    def due(self, now: float, limit: int, exclude: set[str]) -> list[str]:
        """Due URLs, most overdue first, skipping hosts that are backed off."""
        rows = self.db.execute(
            "SELECT s.url FROM schedule s LEFT JOIN hosts h ON h.host = s.host "
            "WHERE s.next_due <= ? AND (h.backoff_until IS NULL OR h.backoff_until <= ?) "
            "ORDER BY s.next_due LIMIT ?", (now, now, limit + len(exclude)))
        return [r[0] for r in rows if r[0] not in exclude][:limit]

    def mark_started(self, urls: list[str], now: float) -> None:
        with self.catalog.transaction():
            self.db.executemany("UPDATE schedule SET last_started = ? WHERE url = ?", [(now, u) for u in urls])

    def mark_finished(self, rows: list[tuple[str, float, str, float]]) -> None:
        """(url, next_due, result, finished) per seed of a finished snapshot."""
        with self.catalog.transaction():
            self.db.executemany("UPDATE schedule SET next_due = ?, last_result = ?, last_finished = ? WHERE url = ?",
                                [(due, result, finished, url) for url, due, result, finished in rows])

    def rows(self) -> list[sqlite3.Row]:
        return self.catalog.rows("SELECT * FROM schedule ORDER BY url")

    def added_at(self, url: str) -> float | None:
        row = self.db.execute("SELECT added FROM schedule WHERE url = ?", (url,)).fetchone()
        return row[0] if row else None

    def record_host_outcomes(self, outcomes: dict[str, str], now: float, threshold: int,
                             backoff: float, backoff_max: float) -> None:
        """host -> "" (answered) or an error; a host failing ``threshold`` times in a row is
        backed off, doubling while it keeps failing."""
        with self.catalog.transaction():
            for host, error in outcomes.items():
                if not error:
                    self.db.execute("DELETE FROM hosts WHERE host = ?", (host,))
                    continue
                row = self.db.execute("SELECT failures FROM hosts WHERE host = ?", (host,)).fetchone()
                failures = (row[0] if row else 0) + 1
                doublings = min(failures - threshold, 30)  # bounded: 2 ** 1000 overflows a float
                until = now + min(backoff * 2 ** doublings, backoff_max) if failures >= threshold else 0.0
                self.db.execute("INSERT OR REPLACE INTO hosts VALUES (?, ?, ?, ?)", (host, failures, until, error))

    def host_rows(self) -> list[sqlite3.Row]:
        return self.catalog.rows("SELECT * FROM hosts ORDER BY failures DESC, host")
