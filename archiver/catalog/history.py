"""The history store: observations (the article extracted from each capture of a tracked
URL), the noise learned per site, and the versions and change events derived from them.
Rebuilt by reindex and reextract from the captures."""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .db import Database

SCHEMA = """
-- One row per capture of a tracked URL (the end of its redirect chain in a snapshot),
-- with the article extracted from it; rebuilt by reindex and reextract.
CREATE TABLE IF NOT EXISTS observations (
    capture_id INTEGER PRIMARY KEY REFERENCES captures (id) ON DELETE CASCADE,
    tracked_url TEXT NOT NULL,
    final_url TEXT NOT NULL,
    challenge TEXT NOT NULL,
    extractor TEXT NOT NULL,
    article TEXT,                 -- JSON, NULL when the capture holds no HTML page
    content_digest TEXT           -- diff.content_digest(article); NULL until a history build needs it
);
CREATE INDEX IF NOT EXISTS observations_url ON observations (tracked_url);
-- Keys of blocks a site renders anew on every request (noise.learn_noise), learned from
-- confirming fetches; derived from observations, so rebuilt with them.
CREATE TABLE IF NOT EXISTS noise (
    site TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (site, key)
);
-- Derived from observations by history.build_history, per tracked URL.
CREATE TABLE IF NOT EXISTS versions (
    tracked_url TEXT NOT NULL,
    number INTEGER NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    captures INTEGER NOT NULL,
    title TEXT NOT NULL,
    text_sha256 TEXT NOT NULL,
    kinds TEXT NOT NULL,          -- JSON list
    revert_of INTEGER,
    gone INTEGER NOT NULL,
    extractor TEXT NOT NULL,
    PRIMARY KEY (tracked_url, number)
);
CREATE TABLE IF NOT EXISTS changes (
    tracked_url TEXT NOT NULL,
    from_version INTEGER NOT NULL,
    to_version INTEGER NOT NULL,
    kind TEXT NOT NULL,
    before TEXT NOT NULL,
    after TEXT NOT NULL,
    from_warc TEXT NOT NULL,
    from_offset INTEGER NOT NULL,
    from_time TEXT NOT NULL,
    to_warc TEXT NOT NULL,
    to_offset INTEGER NOT NULL,
    to_time TEXT NOT NULL,
    unconfirmed INTEGER NOT NULL DEFAULT 0  -- 1 until a second render shows the change too
);
CREATE INDEX IF NOT EXISTS changes_time ON changes (to_time);
"""
TABLES = ("observations", "versions", "changes", "noise")


class History:
    """catalog.history"""

    def __init__(self, catalog: Database):
        self.catalog, self.db = catalog, catalog.db

    def add_missing_columns(self) -> None:
        """Columns added since a catalog was created (its tables are rebuilt by reindex,
        but an old catalog must still open)."""
        have = {row[1] for row in self.db.execute("PRAGMA table_info(observations)")}
        if "content_digest" not in have:
            self.catalog.add_column("observations", "content_digest TEXT")
        if "unconfirmed" not in {row[1] for row in self.db.execute("PRAGMA table_info(changes)")}:
            self.catalog.add_column("changes", "unconfirmed INTEGER NOT NULL DEFAULT 0")

    def add_observation(self, capture_id: int, tracked_url: str, final_url: str, challenge: str,
                        extractor: str, article_json: str | None) -> None:
        with self.catalog.transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO observations (capture_id, tracked_url, final_url, challenge, extractor, article) "
                "VALUES (?, ?, ?, ?, ?, ?)", (capture_id, tracked_url, final_url, challenge, extractor, article_json))

    def observations(self, tracked_url: str) -> list[sqlite3.Row]:
        return self.catalog.rows(
            "SELECT o.*, c.warc, c.offset, c.fetched_at, c.status, c.error, c.role FROM observations o "
            "JOIN captures c ON c.id = o.capture_id WHERE o.tracked_url = ? ORDER BY c.fetched_at, c.id",
            (tracked_url,))

    def add_noise(self, site: str, keys: frozenset[str]) -> None:
        with self.catalog.transaction():
            self.db.executemany("INSERT OR IGNORE INTO noise (site, key) VALUES (?, ?)", [(site, k) for k in keys])

    def has_noise(self) -> bool:
        return self.db.execute("SELECT 1 FROM noise LIMIT 1").fetchone() is not None

    def noise(self, site: str) -> frozenset[str]:
        return frozenset(r[0] for r in self.db.execute("SELECT key FROM noise WHERE site = ?", (site,)))

    def replace(self, tracked_url: str, versions: list[tuple], changes: list[tuple],
                        digests: list[tuple[str, str, int]]) -> None:
        """A tracked URL's versions and changes, and the content digests (digest, warc,
        offset) of its observations worked out while building them."""
        with self.catalog.transaction():
            self.db.executemany("UPDATE observations SET content_digest = ? WHERE capture_id = "
                                "(SELECT id FROM captures WHERE warc = ? AND offset = ?)", digests)
            self.db.execute("DELETE FROM versions WHERE tracked_url = ?", (tracked_url,))
            self.db.execute("DELETE FROM changes WHERE tracked_url = ?", (tracked_url,))
            self.db.executemany(f"INSERT INTO versions VALUES ({', '.join('?' * 11)})", versions)
            self.db.executemany(f"INSERT INTO changes VALUES ({', '.join('?' * 13)})", changes)

    def changes_since(self, since: str) -> list[sqlite3.Row]:
        return self.catalog.rows("SELECT * FROM changes WHERE to_time >= ? ORDER BY to_time, tracked_url", (since,))

    def changes_of(self, urls: list[str], since: str) -> list[sqlite3.Row]:
        """The change rows of these tracked URLs from since on, in the order they were stored."""
        if not urls:
            return []
        return self.catalog.rows(f"SELECT * FROM changes WHERE to_time >= ? AND tracked_url IN "
                                 f"({', '.join('?' * len(urls))}) ORDER BY to_time, rowid", (since, *urls))

    def changed_urls(self, since: str) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT tracked_url FROM changes WHERE to_time >= ?", (since,))]

    def latest_changes(self, limit: int) -> list[sqlite3.Row]:
        rows = self.catalog.rows("SELECT * FROM changes ORDER BY to_time DESC, tracked_url LIMIT ?", (limit,))
        return rows[::-1]

    def article_titles(self) -> dict[tuple[str, int], str]:
        """(warc, offset) of each observed capture -> the title of its article."""
        rows = self.db.execute("SELECT c.warc, c.offset, o.article FROM observations o JOIN captures c "
                               "ON c.id = o.capture_id WHERE o.article IS NOT NULL")
        return {(w, o): json.loads(a).get("title", "") for w, o, a in rows}

    def clear(self) -> None:
        self.catalog.clear(TABLES)

    def made_by_other(self, tracked_url: str, extractor: str) -> set[int]:
        """Capture ids of the URL's observations holding an article another extractor made."""
        return {r[0] for r in self.db.execute(
            "SELECT capture_id FROM observations WHERE tracked_url = ? AND article IS NOT NULL AND extractor != ?",
            (tracked_url, extractor))}

    def observed_capture_ids(self) -> set[int]:
        return {r[0] for r in self.db.execute("SELECT capture_id FROM observations")}

    def last_observed(self) -> dict[str, str]:
        """tracked URL -> time of its newest capture that was observed."""
        return dict(self.db.execute(
            "SELECT o.tracked_url, MAX(c.fetched_at) FROM observations o JOIN captures c ON c.id = o.capture_id "
            "GROUP BY o.tracked_url").fetchall())

    def last_change(self, url: str) -> str | None:
        row = self.db.execute("SELECT MAX(first_seen) FROM versions WHERE tracked_url = ?", (url,)).fetchone()
        return row[0] if row else None
