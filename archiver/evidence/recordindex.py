"""The records ``archiver verify`` has read, kept on disk: memory stays bounded whatever
the archive's size.

A scratch SQLite database in the temporary folder (TMPDIR) holds one row per record
(id, place, type, target, digests, the ids it names) and the ledger entries that the
catalog keeps copies of; verify asks it for a record by id or by place, and for the
records whose pair or original is missing. It is deleted when verify ends.
"""

from __future__ import annotations

import operator
import sqlite3
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class SeenRecord:
    warc: str
    offset: int
    type: str
    target: str
    block_digest: str
    payload_digest: str
    concurrent_to: str
    refers_to: str
    id: str = ""
    head_digest: str = ""  # SHA-256 of the WARC head as stored (warcscan)


COLUMNS = [f.name for f in fields(SeenRecord)]
ID = COLUMNS.index("id")
values = operator.attrgetter(*COLUMNS)  # dataclasses.astuple deep-copies: 80 us a record
SCHEMA = f"""
CREATE TABLE records ({', '.join(COLUMNS)});
CREATE TABLE marks (seq INTEGER PRIMARY KEY, type TEXT, head TEXT, signature TEXT, hash TEXT);
"""
INDEXES = """
CREATE INDEX records_id ON records (id);
CREATE INDEX records_place ON records (warc, offset);
CREATE INDEX records_answers ON records (concurrent_to) WHERE type = 'request';
"""
INSERT = f"INSERT INTO records VALUES ({', '.join('?' * len(COLUMNS))})"
BATCH = 500  # ids per query (SQLite allows 999 parameters at least)
CACHE_KIB = 16 * 1024  # SQLite's page cache: what the index may hold in memory


class RecordIndex:
    def __init__(self, path: Path):
        self.db = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", f"cache_size=-{CACHE_KIB}", "temp_store=FILE"):
            self.db.execute(f"PRAGMA {pragma}")
        self.db.executescript(SCHEMA)
        self.db.execute("BEGIN")
        self.count = 0

    def add(self, record: SeenRecord) -> None:
        self.db.execute(INSERT, values(record))
        self.count += 1

    def indexed(self) -> None:
        """Every record is in: build the indexes the lookups use."""
        self.db.execute("COMMIT")
        self.db.executescript(INDEXES)

    def get(self, record_id: str) -> SeenRecord | None:
        """The record with this id (the last one read, should there be several)."""
        return self._one("WHERE id = ? ORDER BY rowid DESC LIMIT 1", (record_id,))

    def by_ids(self, ids: list[str]) -> dict[str, SeenRecord]:
        """The records with these ids (the last one read of each), in one query per 500
        ids: a query costs about 20 us, as much as a hundred records it returns."""
        found: dict[str, SeenRecord] = {}
        unique = list(dict.fromkeys(ids))
        for i in range(0, len(unique), BATCH):
            chunk = unique[i:i + BATCH]
            for row in self.db.execute(f"SELECT {', '.join(COLUMNS)} FROM records WHERE id IN "
                                       f"({', '.join('?' * len(chunk))}) ORDER BY rowid", chunk):
                found[row[ID]] = SeenRecord(*row)
        return found

    def at(self, warc: str, offset: int) -> SeenRecord | None:
        return self._one("WHERE warc = ? AND offset = ? ORDER BY rowid DESC LIMIT 1", (warc, offset))

    def duplicates(self) -> Iterator[tuple[SeenRecord, str, int]]:
        """(a record, the file and offset of the one read last before it with the same id)
        for every repeated id."""
        cols = ", ".join(f"a.{c}" for c in COLUMNS)
        rows = self.db.execute(f"SELECT {cols}, b.warc, b.offset FROM records a JOIN records b ON b.id = a.id "
                               "AND b.rowid = (SELECT MAX(c.rowid) FROM records c WHERE c.id = a.id "
                               "AND c.rowid < a.rowid) ORDER BY a.rowid")
        for row in rows:
            yield SeenRecord(*row[:len(COLUMNS)]), row[-2], row[-1]

    def where(self, condition: str) -> Iterator[SeenRecord]:
        """Records (aliased r) meeting an SQL condition, in the order they were read."""
        cols = ", ".join(f"r.{c}" for c in COLUMNS)
        for row in self.db.execute(f"SELECT {cols} FROM records r WHERE {condition} ORDER BY r.rowid"):
            yield SeenRecord(*row)

    def mark(self, seq: int, entry: dict) -> None:
        """Keep what the catalog's copies of the ledger head and checkpoints are compared with."""
        self.db.execute("INSERT OR REPLACE INTO marks VALUES (?, ?, ?, ?, ?)",
                        (seq, entry.get("type"), entry.get("head"), entry.get("signature", ""), entry.get("hash")))

    def marked(self, seq: int) -> dict | None:
        row = self.db.execute("SELECT type, head, signature, hash FROM marks WHERE seq = ?", (seq,)).fetchone()
        return dict(zip(("type", "head", "signature", "hash"), row)) if row else None

    def _one(self, sql: str, args: tuple) -> SeenRecord | None:
        row = self.db.execute(f"SELECT {', '.join(COLUMNS)} FROM records {sql}", args).fetchone()
        return SeenRecord(*row) if row else None

    def close(self) -> None:
        self.db.close()


def batched(items: Iterable[T], size: int = BATCH) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


Index = TypeVar("Index", bound="RecordIndex")


@contextmanager
def scratch_index(kind: type[Index] = RecordIndex) -> Iterator[Index]:  # type: ignore[assignment]
    """An index of ``kind`` in a temporary folder, deleted when done."""
    with tempfile.TemporaryDirectory(prefix="archiver-verify-") as tmp:
        index = kind(Path(tmp) / "records.sqlite")
        try:
            yield index
        finally:
            index.close()
