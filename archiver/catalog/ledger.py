"""The ledger state: which ledger entry holds each capture (rebuilt by reindex from the
ledger file), and the ledger's latest head and every checkpoint, kept here on purpose so
a truncated or rewritten ledger file is detected (not rebuilt)."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Iterator

from .captures import COLUMNS, CaptureRow

if TYPE_CHECKING:
    from .db import Database

SCHEMA = """
-- Which ledger entry holds each capture; rebuilt by reindex from the ledger file.
CREATE TABLE IF NOT EXISTS ledgered (
    capture_id INTEGER PRIMARY KEY REFERENCES captures (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL
);
-- Kept outside the ledger file on purpose (NOT rebuilt): the latest head and every
-- checkpoint, so a truncated or rewritten ledger is detected.
CREATE TABLE IF NOT EXISTS ledger_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    count INTEGER NOT NULL,
    head TEXT NOT NULL,
    public_key TEXT NOT NULL,
    signature TEXT NOT NULL
);
"""


class LedgerState:
    """catalog.ledger"""

    def __init__(self, catalog: Database):
        self.catalog, self.db = catalog, catalog.db

    def mark(self, pairs: list[tuple[int, int]], head: tuple[int, str]) -> None:
        """(capture id, ledger seq) pairs, and the ledger's new head."""
        with self.catalog.transaction():
            self.db.executemany("INSERT OR REPLACE INTO ledgered (capture_id, seq) VALUES (?, ?)", pairs)
            self.db.execute("INSERT INTO ledger_head (id, seq, hash) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE "
                            "SET seq = excluded.seq, hash = excluded.hash WHERE excluded.seq > ledger_head.seq", head)

    def unledgered(self) -> list[CaptureRow]:
        rows = self.db.execute(
            f"SELECT {', '.join('c.' + c for c in COLUMNS)}, c.id FROM captures c "
            "LEFT JOIN ledgered l ON l.capture_id = c.id WHERE l.capture_id IS NULL ORDER BY c.id").fetchall()
        return [CaptureRow(*r[:-1]) for r in rows]

    def add_checkpoint(self, entry: dict) -> None:
        with self.catalog.transaction():
            self.db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?, ?)",
                            (entry["seq"], entry["time"], entry["count"], entry["head"],
                             entry.get("public_key", ""), entry.get("signature", "")))

    def recorded_key(self) -> str | None:
        """The public key of the first signed checkpoint or key entry kept here: once an
        archive has signed, it has a key."""
        row = self.db.execute("SELECT public_key FROM checkpoints WHERE public_key != '' ORDER BY seq LIMIT 1").fetchone()
        return row[0] if row else None

    def head(self) -> tuple[int, str] | None:
        head = self.db.execute("SELECT seq, hash FROM ledger_head WHERE id = 1").fetchone()
        return tuple(head) if head else None

    def iter_checkpoints(self) -> Iterator[sqlite3.Row]:
        """Every checkpoint (and key entry) kept here, a row at a time."""
        cur = self.db.cursor()
        cur.row_factory = sqlite3.Row
        yield from cur.execute("SELECT * FROM checkpoints ORDER BY seq")
