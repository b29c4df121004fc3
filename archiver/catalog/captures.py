"""The captures store: one row per fetched URL (its WARC record's place, digests and
status) and the cross-references found in it. Rebuilt by reindex from the WARC files."""

from __future__ import annotations

import operator
import sqlite3
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from .db import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS captures (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    seed TEXT NOT NULL,
    role TEXT NOT NULL,
    via TEXT NOT NULL,
    hops INTEGER NOT NULL,
    snapshot TEXT NOT NULL,
    chain INTEGER NOT NULL,        -- 1 for the hops of the seed's own redirect chain
    fetched_at TEXT NOT NULL,
    status INTEGER,
    record TEXT NOT NULL,          -- response | revisit | failed
    warc TEXT NOT NULL,            -- final file name, never the .open one
    offset INTEGER NOT NULL,       -- of the response/revisit record, or the metadata record of a failure
    length INTEGER NOT NULL,
    metadata_offset INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    payload_digest TEXT NOT NULL,
    block_digest TEXT NOT NULL,
    ip TEXT NOT NULL,
    mime TEXT NOT NULL,
    refers_to TEXT NOT NULL,
    truncated TEXT NOT NULL,
    error TEXT NOT NULL,
    UNIQUE (warc, offset)
);
CREATE INDEX IF NOT EXISTS captures_url ON captures (url, payload_digest);
CREATE INDEX IF NOT EXISTS captures_seed ON captures (seed, fetched_at);
CREATE TABLE IF NOT EXISTS xrefs (
    capture_id INTEGER NOT NULL REFERENCES captures (id) ON DELETE CASCADE,
    target TEXT NOT NULL,
    kind TEXT NOT NULL,            -- read | body | requisite
    text TEXT NOT NULL,
    position INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS xrefs_capture ON xrefs (capture_id);
"""


@dataclass(frozen=True)
class CaptureRow:
    url: str
    seed: str
    role: str
    via: str
    hops: int
    snapshot: str
    chain: int
    fetched_at: str
    status: int | None
    record: str
    warc: str
    offset: int
    length: int
    metadata_offset: int
    record_id: str = ""
    payload_digest: str = ""
    block_digest: str = ""
    ip: str = ""
    mime: str = ""
    refers_to: str = ""
    truncated: str = ""
    error: str = ""


@dataclass(frozen=True)
class XrefRow:
    target: str
    kind: str
    text: str
    position: int


COLUMNS = [f.name for f in fields(CaptureRow)]
capture_values = operator.attrgetter(*COLUMNS)  # dataclasses.astuple deep-copies: 40 µs a row
xref_values = operator.attrgetter(*(f.name for f in fields(XrefRow)))


class Captures:
    """catalog.captures"""

    def __init__(self, catalog: Database):
        self.catalog, self.db = catalog, catalog.db

    def add(self, row: CaptureRow, xrefs: list[XrefRow]) -> int | None:
        return self.add_many([(row, xrefs)])[0]

    def add_many(self, rows: list[tuple[CaptureRow, list[XrefRow]]]) -> list[int | None]:
        """Insert captures and their cross-references in one transaction; each one's id,
        or None where a row for the same record already exists."""
        ids: list[int | None] = []
        with self.catalog.transaction():
            for row, xrefs in rows:
                cur = self.db.execute(
                    f"INSERT OR IGNORE INTO captures ({', '.join(COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(COLUMNS))})", capture_values(row))
                if cur.rowcount == 0:
                    ids.append(None)
                    continue
                ids.append(cur.lastrowid)
                self.db.executemany(
                    "INSERT INTO xrefs (capture_id, target, kind, text, position) VALUES (?, ?, ?, ?, ?)",
                    [(cur.lastrowid, *xref_values(x)) for x in xrefs])
        return ids

    def find_originals(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, str, str]]:
        """For (url, payload digest) pairs: (record id, url, date) of the first stored
        response with that URL and payload, where there is one. One query per 500 URLs."""
        urls = sorted({url for url, _ in keys})
        wanted = set(keys)
        found: dict[tuple[str, str], tuple[str, str, str]] = {}
        for i in range(0, len(urls), 500):
            chunk = urls[i:i + 500]
            rows = self.db.execute(
                f"SELECT url, payload_digest, record_id, fetched_at FROM captures WHERE url IN "
                f"({', '.join('?' * len(chunk))}) AND record = 'response' AND truncated = '' "
                f"ORDER BY fetched_at DESC", chunk)
            for url, digest, record_id, fetched_at in rows:  # the earliest comes last and wins
                if (url, digest) in wanted:
                    found[(url, digest)] = (record_id, url, fetched_at)
        return found

    def iter(self) -> Iterator[CaptureRow]:
        """Every capture, a row at a time (in the order they were added), for checks over
        the whole catalog that must not hold it in memory."""
        for r in self.db.execute(f"SELECT {', '.join(COLUMNS)} FROM captures ORDER BY id"):
            yield CaptureRow(*r)

    def rows(self, url: str | None = None) -> list[CaptureRow]:
        where, args = ("WHERE url = ? OR seed = ?", (url, url)) if url else ("", ())
        rows = self.db.execute(
            f"SELECT {', '.join(COLUMNS)} FROM captures {where} ORDER BY fetched_at, warc, offset", args)
        return [CaptureRow(*r) for r in rows]

    def chain_ends(self) -> list[sqlite3.Row]:
        """The last fetch of each tracked URL's own chain (redirect hops, retries) per
        snapshot, and of its confirming fetch (role confirm) apart."""
        return self.catalog.rows(
            "SELECT c.id, c.seed, c.url, c.record, c.refers_to, c.warc, c.offset, c.status FROM captures c "
            "WHERE c.chain = 1 AND c.fetched_at = (SELECT MAX(d.fetched_at) FROM captures d "
            " WHERE d.snapshot = c.snapshot AND d.seed = c.seed AND d.chain = 1 "
            " AND (d.role = 'confirm') = (c.role = 'confirm')) ORDER BY c.fetched_at, c.id")

    def refers_to(self, warc: str, offset: int) -> str | None:
        """The record a revisit at this place refers to."""
        row = self.db.execute("SELECT refers_to FROM captures WHERE warc = ? AND offset = ?", (warc, offset)).fetchone()
        return row[0] if row else None

    def location_of(self, record_id: str) -> tuple[str, int] | None:
        return self.db.execute("SELECT warc, offset FROM captures WHERE record_id = ?", (record_id,)).fetchone()

    def id_at(self, warc: str, offset: int) -> int | None:
        row = self.db.execute("SELECT id FROM captures WHERE warc = ? AND offset = ?", (warc, offset)).fetchone()
        return row[0] if row else None

    def dump(self) -> tuple[list[tuple], list[tuple]]:
        """Every captured row, without ids, in a stable order (to compare catalogs)."""
        caps = self.db.execute(
            f"SELECT {', '.join(COLUMNS)} FROM captures ORDER BY warc, offset").fetchall()
        refs = self.db.execute(
            "SELECT c.warc, c.offset, x.target, x.kind, x.text, x.position FROM xrefs x "
            "JOIN captures c ON c.id = x.capture_id ORDER BY c.warc, c.offset, x.position, x.target").fetchall()
        return caps, refs



def iter_rows(rows: list[CaptureRow]) -> Iterator[dict]:
    for row in rows:
        yield dict(zip(COLUMNS, capture_values(row)))
